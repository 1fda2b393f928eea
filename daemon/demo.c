/* pushwired's built-in demo source (--demo): one producer thread per demo topic, each on its own
 * fixed-rate schedule, publishing small JSON values through the daemon's publish callback.
 *
 * Design notes:
 * - The threads sleep on one condition variable (on the monotonic clock, so a wall-clock jump
 *   neither stalls nor floods them): demo_stop wakes them at once instead of waiting out a period.
 * - Schedules are absolute (next += period), so a 20 Hz topic stays at 20 Hz however long a
 *   publish takes; a thread that fell far behind (suspended process) skips the missed ticks
 *   rather than publishing them in a burst.
 * - "t" in every value is wall-clock milliseconds, so the page can draw time axes and show the
 *   delivery delay; the sine is a function of that time, continuous across daemon restarts.
 * - Values are best effort: a publish that fails (no room, server stopping) is simply dropped,
 *   like a sensor reading nobody took. */
#include "demo.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SINE_PERIOD_MS 50u /* 20 Hz */
#define CPU_PERIOD_MS 250u /* 4 Hz: /proc/stat counts in 10 ms ticks, finer is noise */
#define LOG_PERIOD_MS 1000u
#define COUNTER_PERIOD_MS 1000u
#define SINE_WAVE_SECONDS 4.0 /* one full wave every 4 s: a few waves fit the page's chart */
#define JSON_MAX 256
#define TWO_PI 6.283185307179586

typedef struct producer producer;
typedef int (*tick_fn)(producer *p, uint64_t now_ms, char *json, size_t cap);

struct producer {
  const char *topic;
  unsigned period_ms;
  tick_fn tick; /* writes this tick's JSON value, returns its length (0: nothing this tick) */
  pthread_t thread;
  uint64_t seq;                           /* ticks so far */
  unsigned long long cpu_busy, cpu_total; /* previous /proc/stat sample (demo.cpu) */
  bool have_cpu_sample;
  uint32_t rng; /* xorshift state, never 0 (demo.log) */
};

static int sine_tick(producer *p, uint64_t now_ms, char *json, size_t cap);
static int cpu_tick(producer *p, uint64_t now_ms, char *json, size_t cap);
static int log_tick(producer *p, uint64_t now_ms, char *json, size_t cap);
static int counter_tick(producer *p, uint64_t now_ms, char *json, size_t cap);

/* The one demo source of the process: demo_start/demo_stop take no handle (agreed interface). */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake; /* on CLOCK_MONOTONIC; valid while running */
  bool running;        /* demo_start succeeded and demo_stop has not joined yet */
  bool stopping;       /* set under lock by demo_stop: threads leave their loops */
  demo_publish_fn publish;
  void *ctx;
  producer producers[4];
  size_t started; /* threads created, joined by demo_stop */
} demo = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const producer producer_templates[4] = {
    {.topic = "demo.sine", .period_ms = SINE_PERIOD_MS, .tick = sine_tick},
    {.topic = "demo.cpu", .period_ms = CPU_PERIOD_MS, .tick = cpu_tick},
    {.topic = "demo.log", .period_ms = LOG_PERIOD_MS, .tick = log_tick},
    {.topic = "demo.counter", .period_ms = COUNTER_PERIOD_MS, .tick = counter_tick},
};

/* ---- time ---- */

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void timespec_add_ms(struct timespec *ts, unsigned ms) {
  ts->tv_sec += ms / 1000u;
  ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static bool timespec_before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The next deadline after `next`; if that is already past, now (skip, don't burst). */
static void schedule_next(struct timespec *next, unsigned period_ms) {
  struct timespec now;
  timespec_add_ms(next, period_ms);
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (timespec_before(next, &now)) *next = now;
}

/* ---- the four topics ---- */

static int sine_tick(producer *p, uint64_t now_ms, char *json, size_t cap) {
  double v = sin(TWO_PI * (double)(now_ms % 3600000u) / (SINE_WAVE_SECONDS * 1000.0));
  return snprintf(json, cap, "{\"t\":%llu,\"v\":%.4f}", (unsigned long long)now_ms, v);
}

/* Busy and total jiffies from /proc/stat's first ("cpu ") line; false if unreadable (not Linux,
 * no /proc in a container): the CPU topic then stays silent rather than publishing made-up load. */
static bool read_cpu_jiffies(unsigned long long *busy, unsigned long long *total) {
  unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return false;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                 &iowait, &irq, &softirq, &steal);
  fclose(f);
  if (n < 4) return false;
  if (n < 8) iowait = irq = softirq = steal = 0; /* very old kernels have fewer columns */
  *total = user + nice + sys + idle + iowait + irq + softirq + steal; /* guest is inside user */
  *busy = *total - idle - iowait;
  return true;
}

/* Load is a difference of two samples: the first tick only takes the baseline. */
static int cpu_tick(producer *p, uint64_t now_ms, char *json, size_t cap) {
  unsigned long long busy, total;
  if (!read_cpu_jiffies(&busy, &total)) return 0;
  bool had = p->have_cpu_sample;
  unsigned long long dbusy = busy - p->cpu_busy, dtotal = total - p->cpu_total;
  p->cpu_busy = busy;
  p->cpu_total = total;
  p->have_cpu_sample = true;
  if (!had || dtotal == 0 || dbusy > dtotal) return 0; /* no baseline, or counters went odd */
  double load = (double)dbusy / (double)dtotal;
  return snprintf(json, cap, "{\"t\":%llu,\"v\":%.3f}", (unsigned long long)now_ms, load);
}

static uint32_t xorshift32(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* A synthetic service log: the lines need no JSON escaping (no quotes or backslashes). */
static int log_tick(producer *p, uint64_t now_ms, char *json, size_t cap) {
  static const char *const formats[] = {
      "GET /api/orders/%u 200 in %u ms",      "user %u signed in from 10.0.%u.7",
      "cache miss for item:%u (%u entries)",  "payment %u authorised after %u ms",
      "slow query on orders: %u rows, %u ms",
  };
  uint32_t r = xorshift32(&p->rng);
  size_t kind = r % (sizeof formats / sizeof formats[0]);
  const char *level = kind == 4 ? "warn" : "info";
  char msg[96];
  snprintf(msg, sizeof msg, formats[kind], 1000u + (r >> 8) % 9000u, (r >> 4) % 250u + 1u);
  return snprintf(json, cap, "{\"t\":%llu,\"seq\":%llu,\"level\":\"%s\",\"msg\":\"%s\"}",
                  (unsigned long long)now_ms, (unsigned long long)p->seq, level, msg);
}

static int counter_tick(producer *p, uint64_t now_ms, char *json, size_t cap) {
  return snprintf(json, cap, "{\"t\":%llu,\"n\":%llu}", (unsigned long long)now_ms,
                  (unsigned long long)p->seq);
}

/* ---- threads ---- */

static void publish_tick(producer *p) {
  char json[JSON_MAX];
  p->seq++;
  int n = p->tick(p, wall_ms(), json, sizeof json);
  if (n > 0 && (size_t)n < sizeof json) (void)demo.publish(demo.ctx, p->topic, json, (size_t)n);
}

static void *producer_main(void *arg) {
  producer *p = arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  pthread_mutex_lock(&demo.lock);
  while (!demo.stopping) {
    pthread_mutex_unlock(&demo.lock);
    publish_tick(p); /* outside the lock: publish may block on backpressure */
    schedule_next(&next, p->period_ms);
    pthread_mutex_lock(&demo.lock);
    while (!demo.stopping && pthread_cond_timedwait(&demo.wake, &demo.lock, &next) != ETIMEDOUT) {}
  }
  pthread_mutex_unlock(&demo.lock);
  return NULL;
}

static int init_wake_cond(void) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0) return -1;
  int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(&demo.wake, &attr);
  pthread_condattr_destroy(&attr);
  return rc == 0 ? 0 : -1;
}

/* Tells the threads to leave, joins them and forgets them. Caller holds no lock. */
static void stop_and_join(void) {
  pthread_mutex_lock(&demo.lock);
  demo.stopping = true;
  pthread_cond_broadcast(&demo.wake);
  pthread_mutex_unlock(&demo.lock);
  for (size_t i = 0; i < demo.started; i++) pthread_join(demo.producers[i].thread, NULL);
  demo.started = 0;
  pthread_cond_destroy(&demo.wake);
  pthread_mutex_lock(&demo.lock);
  demo.running = false;
  pthread_mutex_unlock(&demo.lock);
}

static int claim_running(void) {
  pthread_mutex_lock(&demo.lock);
  bool was = demo.running;
  demo.running = true;
  demo.stopping = false;
  pthread_mutex_unlock(&demo.lock);
  return was ? -1 : 0;
}

int demo_start(demo_publish_fn publish, void *ctx) {
  if (!publish || claim_running() != 0) return -1; /* one demo source per process */
  if (init_wake_cond() != 0) {
    pthread_mutex_lock(&demo.lock);
    demo.running = false;
    pthread_mutex_unlock(&demo.lock);
    return -1;
  }
  demo.publish = publish; /* written before pthread_create: the threads see it */
  demo.ctx = ctx;
  memcpy(demo.producers, producer_templates, sizeof demo.producers);
  for (size_t i = 0; i < sizeof demo.producers / sizeof demo.producers[0]; i++) {
    /* seeded from the clock, so a restarted daemon tells a new story; odd, so never the stuck 0 */
    demo.producers[i].rng = (uint32_t)((wall_ms() + i) * 2654435761u) | 1u;
    if (pthread_create(&demo.producers[i].thread, NULL, producer_main, &demo.producers[i]) != 0) {
      stop_and_join(); /* all or nothing */
      return -1;
    }
    demo.started++;
  }
  return 0;
}

void demo_stop(void) {
  pthread_mutex_lock(&demo.lock);
  bool running = demo.running;
  pthread_mutex_unlock(&demo.lock);
  if (running) stop_and_join();
}
