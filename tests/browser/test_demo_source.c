/* The demo page's data source (daemon/demo.c) on its own: each topic at its rate with values of
 * the shape the page reads, demo_stop prompt (the threads wake at once, not after a period) and
 * final, misuse refused, a failing publish tolerated, and a restart after a stop.
 *
 * Checked to fail without each defence (edit demo.c, run ctest -R browser.demo_source, revert):
 *  - no pthread_cond_broadcast in stop_and_join: "demo_stop took 998 ms", over 500;
 *  - claim_running not checked: the second demo_start returned 0, not -1 (then a hang);
 *  - sine period 100 ms instead of 50: 16 sine values in 1.6 s, outside 20..40. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../support/check.h"
#include "../support/clock.h"
#include "demo.h"

enum { SINE, CPU, LOG, COUNTER, NTOPICS };
static const char *const topic_names[NTOPICS] = {"demo.sine", "demo.cpu", "demo.log",
                                                 "demo.counter"};

static struct {
  pthread_mutex_t lock;
  int count[NTOPICS];
  unsigned long long last_counter;
  int fail; /* publish answers -1 (as a full or stopping server would) */
} rec = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int topic_index(const char *topic) {
  for (int i = 0; i < NTOPICS; i++)
    if (strcmp(topic, topic_names[i]) == 0) return i;
  return -1;
}

/* The value's shape, as examples/www/demo.js reads it. Runs on the producer threads. */
static void check_value(int topic, const char *json) {
  unsigned long long t, n, seq;
  double v;
  char level[16];
  int ok = 0;
  switch (topic) {
  case SINE: ok = sscanf(json, "{\"t\":%llu,\"v\":%lf}", &t, &v) == 2 && v >= -1 && v <= 1; break;
  case CPU: ok = sscanf(json, "{\"t\":%llu,\"v\":%lf}", &t, &v) == 2 && v >= 0 && v <= 1; break;
  case COUNTER:
    ok = sscanf(json, "{\"t\":%llu,\"n\":%llu}", &t, &n) == 2 && n == rec.last_counter + 1;
    rec.last_counter = n;
    break;
  case LOG:
    ok = sscanf(json, "{\"t\":%llu,\"seq\":%llu,\"level\":\"%15[a-z]\",\"msg\":\"", &t, &seq,
                level) == 3 &&
         json[strlen(json) - 1] == '}';
    break;
  }
  if (!ok || t + 5000 < wall_ms() || t > wall_ms() + 5000)
    PROBLEM("bad %s value: %s", topic_names[topic], json);
}

static int record(void *ctx, const char *topic, const char *json, size_t len) {
  int i = topic_index(topic);
  if (ctx != &rec || i < 0 || strlen(json) != len) {
    PROBLEM("unexpected publish: ctx %p topic %s len %zu", ctx, topic, len);
    return -1;
  }
  pthread_mutex_lock(&rec.lock);
  rec.count[i]++;
  check_value(i, json);
  int fail = rec.fail;
  pthread_mutex_unlock(&rec.lock);
  return fail ? -1 : 0;
}

static void snapshot(int out[NTOPICS]) {
  pthread_mutex_lock(&rec.lock);
  memcpy(out, rec.count, sizeof rec.count);
  pthread_mutex_unlock(&rec.lock);
}

static void reset(int fail) {
  pthread_mutex_lock(&rec.lock);
  memset(rec.count, 0, sizeof rec.count);
  rec.last_counter = 0;
  rec.fail = fail;
  pthread_mutex_unlock(&rec.lock);
}

static void wait_for_counter_tick(int seen) {
  int c[NTOPICS];
  for (int waited = 0; waited < 1500; waited += 2) {
    snapshot(c);
    if (c[COUNTER] > seen) return;
    sleep_ms(2);
  }
  CHECK(!"demo.counter ticked within 1.5 s");
}

/* Runs the source for 1.6 s and checks each topic's rate, then that demo_stop is prompt and final. */
static void run_once(int fail) {
  reset(fail);
  CHECK_EQ_INT(demo_start(record, &rec), 0);
  CHECK_EQ_INT(demo_start(record, &rec), -1); /* one source per process */
  sleep_ms(1600);
  int c[NTOPICS];
  snapshot(c);
  CHECK(c[SINE] >= 20 && c[SINE] <= 40); /* 20 Hz: 33; a loaded machine skips ticks */
  CHECK(c[CPU] >= 3 && c[CPU] <= 8);     /* 4 Hz after a baseline tick: 6 */
  CHECK(c[LOG] >= 1 && c[LOG] <= 3);     /* at 0 and 1000 ms */
  CHECK(c[COUNTER] >= 1 && c[COUNTER] <= 3);
  if (c[SINE] < 20 || c[SINE] > 40 || c[CPU] < 3)
    fprintf(stderr, "  counts: sine %d cpu %d log %d counter %d\n", c[SINE], c[CPU], c[LOG],
            c[COUNTER]);

  wait_for_counter_tick(c[COUNTER]); /* the counter thread now sleeps ~1 s: stop must wake it */
  unsigned long long t0 = now_ms();
  demo_stop();
  unsigned long long took = now_ms() - t0;
  CHECK(took < 500);
  if (took >= 500) fprintf(stderr, "  demo_stop took %llu ms\n", took);

  int after[NTOPICS];
  snapshot(c);
  sleep_ms(300);
  snapshot(after);
  CHECK_MEM(c, after, sizeof c); /* nothing published after demo_stop returned */
}

int main(void) {
  CHECK_EQ_INT(demo_start(NULL, NULL), -1);
  demo_stop(); /* not running: a no-op */
  run_once(0);
  run_once(1); /* publish failing: the source goes on at its rates, and restarts after a stop */
  demo_stop();
  CHECK_EQ_INT(check_problems(), 0);
  return CHECK_DONE();
}
