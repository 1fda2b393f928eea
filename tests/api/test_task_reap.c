/* Tasks that finish give their thread back: 100,000 one-shot tasks and 20,000 on-demand topics
 * leave VmSize and the mapping count flat. The natural pattern (a task posts, then returns;
 * the owner starts the key again on the post) gets 0 every time, yet racing starts never run
 * a key twice at once and a long-running task that has reported costs a start one short wait.
 * An on-demand producer that cannot start is counted, logged with its topic, and retried. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

/* Thread creation costs 10-50 times more under ASan/TSan: fewer rounds keep each run well
 * under a minute; a leak of one stack per task (8 MiB, 2 mappings) still shows at once. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#endif
#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#if __has_feature(thread_sanitizer)
#define SANITIZED 1
#define TSAN 1
#endif
#endif
#ifdef SANITIZED
enum { ONE_SHOTS = 10000, TOPICS = 8000 };
#else
enum { ONE_SHOTS = 100000, TOPICS = 20000 };
#endif
/* Slack: glibc keeps up to 40 MiB of stacks (5 threads') cached for reuse. TSan's own
 * allocator grows in steps as threads come and go (seen: +210-320 MB and 1,600-2,500
 * mappings, once in 10,000 or 40,000 threads, flat between): there VmSize gets more slack
 * and the mappings that count are the thread stacks (a leak is 8 MiB and one stack a task). */
#ifdef TSAN
enum { SLACK_KB = 1024 * 1024 };
#else
enum { SLACK_KB = 48 * 1024 };
#endif
enum { SLACK_MAPS = 16 };
enum { IN_FLIGHT = 4 };

/* ---- address space ---- */
/* A number from /proc/self/status ("VmSize:" in kB, "Threads:"), or -1. */
static long status_field(const char *name) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(name);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, name, n) == 0 && sscanf(line + n, "%ld", &v) == 1) break;
  if (f) fclose(f);
  return v;
}

typedef struct footprint {
  long kb, maps, stacks;
} footprint;

/* The mappings, and among them the thread stacks: read-write, right above a one-page guard. */
static footprint map_count(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  footprint fp = {0};
  char line[512], perms[8];
  unsigned long lo, hi, guard_end = 0;
  while (f && fgets(line, sizeof line, f)) {
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3) continue;
    fp.maps++;
    fp.stacks += lo == guard_end && strcmp(perms, "rw-p") == 0;
    guard_end = strcmp(perms, "---p") == 0 && hi - lo == 4096 ? hi : 0;
  }
  if (f) fclose(f);
  return fp;
}

static int threads_at_most(void *arg) { return status_field("Threads:") <= *(long *)arg; }

/* Taken once the process is back to `threads` threads: a detached thread that has returned is
 * still exiting for a moment, and its stack is reusable only once it is gone. */
static footprint settled_footprint(long threads) {
  th_wait(threads_at_most, &threads, 10000);
  footprint fp = map_count();
  fp.kb = status_field("VmSize:");
  return fp;
}

static void check_flat(const char *what, footprint warm, footprint end) {
  printf("%s: VmSize %ld -> %ld kB, mappings %ld -> %ld, thread stacks %ld -> %ld\n", what, warm.kb,
         end.kb, warm.maps, end.maps, warm.stacks, end.stacks);
  CHECK(warm.kb > 0 && warm.maps > 0);
  CHECK(end.kb - warm.kb <= SLACK_KB);
  CHECK(end.stacks - warm.stacks <= SLACK_MAPS);
#ifndef TSAN
  CHECK(end.maps - warm.maps <= SLACK_MAPS);
#endif
}

/* ---- completions counted by the tasks, awaited with a deadline ---- */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static long completed;

static void complete_one(void) {
  pthread_mutex_lock(&done_lock);
  completed++;
  pthread_cond_broadcast(&done_cond);
  pthread_mutex_unlock(&done_lock);
}

/* Wait until at least n completions (10 s at most); 1 if reached. */
static int await_completed(long n) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&done_lock);
  int timed_out = 0;
  while (completed < n && !timed_out)
    timed_out = pthread_cond_timedwait(&done_cond, &done_lock, &until) != 0;
  int reached = completed >= n;
  pthread_mutex_unlock(&done_lock);
  return reached;
}

static void reset_completed(void) {
  pthread_mutex_lock(&done_lock);
  completed = 0;
  pthread_mutex_unlock(&done_lock);
}

/* ---- 100,000 one-shot tasks ---- */
static void one_shot(pw_server *srv, void *arg) { complete_one(); }

/* Checked to fail with the old lazy join (a returned task kept its thread until the next start
 * of its own key), and with the threads neither detached nor joined: VmSize grew by 8 MiB a
 * task, to 256 GiB and 65,530 mappings, and 67,264 starts answered PW_ENOMEM. */
static void test_one_shot_tasks_reaped(void) {
  reset_completed();
  pw_server *srv = th_start(NULL, NULL);
  long threads = status_field("Threads:"); /* this one and the loop's */
  int failed = 0;
  footprint warm = {0};
  for (long i = 0; i < ONE_SHOTS; i++) {
    if (i == ONE_SHOTS / 10) await_completed(i), warm = settled_footprint(threads);
    char key[32];
    snprintf(key, sizeof key, "one:%ld", i);
    failed += pw_task_start(srv, key, one_shot, NULL) != 0;
    if (!await_completed(i + 1 - IN_FLIGHT - failed)) break;
  }
  CHECK(await_completed(ONE_SHOTS - failed));
  footprint end = settled_footprint(threads);
  CHECK_EQ_INT(failed, 0);
  check_flat("one-shot tasks", warm, end);
  pw_server_free(srv);
}

/* ---- 20,000 on-demand topics ---- */
static void short_topic(pw_server *srv, const char *topic, void *arg) {
  while (!pw_task_sleep(10000)) {} /* until its subscriber leaves */
  complete_one();
}

static pw_conn_id connect_one(pw_server *srv, wsc *c, int nth) {
  if (wsc_connect(c, pw_server_port(srv), "/") != 0) return 0;
  return th_wait_open(nth, 3000);
}

/* Checked to fail with the old lazy join: each producer (key topic:<name>, never started
 * again) kept its thread, and VmSize grew by 8 MiB a topic (16 -> 164 GB). */
static void test_on_demand_topics_reaped(void) {
  reset_completed();
  pw_server *srv = th_start(NULL, NULL);
  long threads = status_field("Threads:");
  CHECK_EQ_INT(pw_topic_on_demand(srv, "user:*", short_topic, NULL), 0);
  wsc c;
  pw_conn_id id = connect_one(srv, &c, 1);
  CHECK(id != 0);
  footprint warm = {0};
  long i = 0;
  for (; id && i < TOPICS; i++) {
    if (i == TOPICS / 10) await_completed(i), warm = settled_footprint(threads);
    char topic[32];
    snprintf(topic, sizeof topic, "user:%ld", i);
    CHECK_EQ_INT(pw_subscribe(srv, id, topic), 0);
    CHECK_EQ_INT(pw_unsubscribe(srv, id, topic), 0);
    if (!await_completed(i + 1 - IN_FLIGHT)) break;
  }
  CHECK(await_completed(TOPICS));
  footprint end = settled_footprint(threads);
  check_flat("on-demand topics", warm, end);
  pw_stats st;
  CHECK_EQ_INT(pw_server_stats(srv, &st), 0);
  CHECK_EQ_INT(st.producers_failed, 0);
  wsc_close(&c);
  pw_server_free(srv);
}

/* ---- the natural pattern: post "done", return, the owner starts the next run ---- */
enum { CYCLES = 1000, DONE_EVENT = 77 };

static void posts_then_returns(pw_server *srv, void *arg) { pw_post_event(srv, DONE_EVENT, arg); }

/* Checked to fail without the wait for a reported run (PW_EALREADY at once): 83 (the old
 * task.c) to 430 (this one without the wait) of the 1,000 starts answered PW_EALREADY. */
static void test_post_then_restart(void) {
  pw_server *srv = th_start(NULL, NULL);
  int refused = 0, events = 0;
  CHECK_EQ_INT(pw_task_start(srv, "cycle", posts_then_returns, NULL), 0);
  for (int i = 0; i < CYCLES; i++) {
    pw_event ev;
    if (pw_next_event(srv, &ev, 5000) != 1) break;
    events += ev.type == PW_EV_USER && ev.user_type == DONE_EVENT;
    pw_event_release(&ev);
    if (i == CYCLES - 1) break;
    int r;
    while ((r = pw_task_start(srv, "cycle", posts_then_returns, NULL)) == PW_EALREADY)
      refused++, sleep_ms(1); /* keep the test going to count every refusal */
    CHECK_EQ_INT(r, 0);
  }
  printf("post-then-restart: %d events, %d starts refused\n", events, refused);
  CHECK_EQ_INT(events, CYCLES);
  CHECK_EQ_INT(refused, 0);
  pw_server_free(srv);
}

/* ---- racing starts while runs post and return: never two runs of a key at once ---- */
enum { RACERS = 4, RACE_MS = 1500 };
static _Atomic int in_progress, max_in_progress, race_runs;

static void race_run(pw_server *srv, void *arg) {
  int now = atomic_fetch_add(&in_progress, 1) + 1;
  for (int seen = atomic_load(&max_in_progress); now > seen;)
    atomic_compare_exchange_weak(&max_in_progress, &seen, now);
  atomic_fetch_add(&race_runs, 1);
  sched_yield();
  pw_post_event(srv, DONE_EVENT, NULL); /* reported: a racing start may wait for the return */
  sleep_ms(1); /* work after the report (cleanup): a start that did not wait would overlap */
  atomic_fetch_sub(&in_progress, 1);
}

typedef struct racer {
  pw_server *srv;
  int started, refused, other;
} racer;

static void *race_starts(void *arg) {
  racer *r = arg;
  for (uint64_t end = now_ms() + RACE_MS; now_ms() < end;) {
    int rc = pw_task_start(r->srv, "race", race_run, NULL);
    r->started += rc == 0;
    r->refused += rc == PW_EALREADY;
    r->other += rc != 0 && rc != PW_EALREADY;
  }
  return NULL;
}

static int race_idle(void *arg) { return !pw_task_running(arg, "race"); }

/* Checked to fail with a start that takes a reported run as over (starting the next run at
 * once instead of waiting for the return): max_in_progress reached 2. */
static void test_racing_starts_one_run(void) {
  pw_options o = {.max_events = 1 << 20};
  pw_server *srv = th_start(&o, NULL);
  racer r[RACERS] = {0};
  pthread_t t[RACERS];
  for (int i = 0; i < RACERS; i++) r[i].srv = srv, pthread_create(&t[i], NULL, race_starts, &r[i]);
  int started = 0, refused = 0, other = 0;
  for (int i = 0; i < RACERS; i++) {
    pthread_join(t[i], NULL);
    started += r[i].started, refused += r[i].refused, other += r[i].other;
  }
  CHECK(th_wait(race_idle, srv, 5000));
  pw_server_free(srv);
  printf("racing starts: %d started, %d refused, most at once %d\n", started, refused,
         atomic_load(&max_in_progress));
  CHECK(started > 0);
  CHECK_EQ_INT(other, 0);
  CHECK_EQ_INT(atomic_load(&race_runs), started); /* every 0 is exactly one run */
  CHECK_EQ_INT(atomic_load(&max_in_progress), 1);
}

/* ---- a long-running task that has reported: one bounded wait, then PW_EALREADY at once ---- */
static void posts_then_runs(pw_server *srv, void *arg) {
  pw_post_event(srv, DONE_EVENT, NULL);
  while (!pw_task_sleep(10000)) {}
}

static int has_event(void *arg) {
  pw_stats st;
  return pw_server_stats(arg, &st) == 0 && st.events_waiting > 0;
}

/* Checked to fail with the reported mark kept after a start waited in vain: the ten starts
 * took ten bounded waits (over 1 s). */
static void test_long_runner_waits_once(void) {
  pw_server *srv = th_start(NULL, NULL);
  CHECK_EQ_INT(pw_task_start(srv, "long", posts_then_runs, NULL), 0);
  CHECK(th_wait(has_event, srv, 3000));
  uint64_t t0 = now_ms();
  CHECK_EQ_INT(pw_task_start(srv, "long", posts_then_runs, NULL), PW_EALREADY);
  uint64_t waited = now_ms() - t0;
  CHECK(waited >= 90); /* it had reported: the start gave it the bound (100 ms) to return */
  t0 = now_ms();
  for (int i = 0; i < 10; i++)
    CHECK_EQ_INT(pw_task_start(srv, "long", posts_then_runs, NULL), PW_EALREADY);
  uint64_t ten = now_ms() - t0;
  printf("long runner: first start %llu ms, ten more %llu ms\n", (unsigned long long)waited,
         (unsigned long long)ten);
  CHECK(ten < 500); /* no report since: no more waiting */
  CHECK_EQ_INT(pw_task_stop(srv, "long"), 0);
  pw_server_free(srv);
}

/* ---- an on-demand producer that cannot start ---- */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int failure_lines;

static void capture_log(int level, const char *msg, void *user) {
  pthread_mutex_lock(&log_lock);
  failure_lines += strstr(msg, "producer for topic-f ") != NULL;
  pthread_mutex_unlock(&log_lock);
}

static int logged_failures(void) {
  pthread_mutex_lock(&log_lock);
  int n = failure_lines;
  pthread_mutex_unlock(&log_lock);
  return n;
}

static void hold_key(pw_server *srv, void *arg) {
  while (!pw_task_sleep(10000)) {}
}

static _Atomic int producer_started;

static void counted_producer(pw_server *srv, const char *topic, void *arg) {
  atomic_fetch_add(&producer_started, 1);
  while (!pw_task_sleep(10000)) {}
}

static int failed_once(void *arg) {
  pw_stats st;
  return pw_server_stats(arg, &st) == 0 && st.producers_failed == 1;
}

static int producer_up(void *arg) { return atomic_load(&producer_started) == 1; }

/* Two connections on different loops (the loop index is the id's top byte). */
static int connect_two_loops(pw_server *srv, wsc *c, pw_conn_id *ids) {
  int n = 0;
  ids[0] = connect_one(srv, &c[n], n + 1), n++;
  while (ids[0] && n < 16) {
    pw_conn_id id = connect_one(srv, &c[n], n + 1);
    n++;
    if (!id) break;
    if (id >> 56 != ids[0] >> 56) return ids[1] = id, n;
  }
  return ids[1] = 0, n;
}

/* Checked to fail without the retry (a start tried only when the topic's loop count went
 * 0 -> 1): the producer never started for the subscriber on the second loop; and without
 * the counter, producers_failed stayed 0. */
static void test_producer_failure_reported(void) {
  atomic_store(&producer_started, 0);
  pw_options o = {.threads = 2, .log = capture_log, .log_level = PW_LOG_ERROR};
  pw_server *srv = th_start(&o, NULL);
  CHECK_EQ_INT(pw_topic_on_demand(srv, "topic-f", counted_producer, NULL), 0);
  CHECK_EQ_INT(pw_task_start(srv, "topic:topic-f", hold_key, NULL), 0); /* takes its key */
  wsc c[16];
  pw_conn_id ids[2];
  int n = connect_two_loops(srv, c, ids);
  CHECK(ids[1] != 0);
  CHECK_EQ_INT(pw_subscribe(srv, ids[0], "topic-f"), 0);
  CHECK(th_wait(failed_once, srv, 3000)); /* counted */
  CHECK_EQ_INT(logged_failures(), 1);     /* one line, naming the topic */
  CHECK_EQ_INT(atomic_load(&producer_started), 0);
  CHECK_EQ_INT(pw_task_stop(srv, "topic:topic-f"), 0);
  CHECK_EQ_INT(pw_subscribe(srv, ids[1], "topic-f"), 0); /* first subscriber on the other loop */
  CHECK(th_wait(producer_up, srv, 3000));                /* retried: now it runs */
  CHECK(failed_once(srv));
  for (int i = 0; i < n; i++) wsc_close(&c[i]);
  pw_server_free(srv);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  /* One malloc arena: glibc adds one (64 MiB of address space) whenever threads contend, up
   * to 8 per core, which would blur the figures without being a leak. */
  mallopt(M_ARENA_MAX, 1);
  test_post_then_restart();
  test_racing_starts_one_run();
  test_long_runner_waits_once();
  test_producer_failure_reported();
  test_one_shot_tasks_reaped();
  test_on_demand_topics_reaped();
  return CHECK_DONE();
}
