/* Stress: sends to stale, never-issued and closing ids return errors and never crash (also
 * under TSan). Six threads hammer pw_send / pw_send_buf / pw_close / pw_set_slow_policy /
 * pw_call for ~3 s with
 *   (a) stale ids: connections opened, closed, and seen gone (PW_ENOCONN) before the hammer;
 *   (b) never-issued ids: 0, random values with a loop index past the loops, other loop
 *       indexes, even generations, slots past the table, generations not reached yet;
 *   (c) live ids of churn connections that a churn thread opens and closes meanwhile;
 * while one good connection keeps receiving an ordered stream. Then the hammer goes on while
 * the server stops, and after pw_server_stop (before pw_server_free) every call answers
 * PW_ESTOPPED or PW_ENOCONN.
 * Checked: (a) and (b) always give exactly PW_ENOCONN (PW_ESTOPPED once stopping); (c) gives
 * 0, PW_ENOCONN or PW_EAGAIN, and once an id gave PW_ENOCONN it never gives 0 again; the
 * good stream arrives whole and in order; accepted sends = messages_sent + dropped_closed
 * + dropped_new + dropped_oldest, with dropped_closed > 0; every pw_call that returned 0 ran
 * exactly once; every wrapped buffer's free_fn ran exactly once; on_close once per on_open.
 * Only main uses check.h; other threads count problems in an atomic and print details. */
#include <poll.h>
#include <pthread.h>
#include <pushwire.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/wsclient.h"
#include "../support/check.h"
#include "../support/clock.h"

enum {
  NHAMMER = 6,
  HAMMER_MS = 3000,    /* the hammer with the server running */
  AFTER_STOP_MS = 200, /* the hammer goes on this long after pw_server_stop returned */
  NPRE = 64,           /* connections closed before the hammer: the stale ids */
  MAX_CHURN = 1 << 16,
  CHURN_POOL = 8,  /* per churn thread */
  NCHURN = 3,      /* churn threads (opening and closing is latency bound) */
  MIN_CHURN = 100, /* the hammer lasts until this many churn connections were opened */
  MAX_HAMMER_MS = 20000,
  NNEVER = 64, /* never-issued ids */
};

/* ---- callbacks (loop thread) ----------------------------------------------------------------- */
static pw_server *srv;
static _Atomic pw_conn_id good_id;
static _Atomic pw_conn_id pre_ids[NPRE];
static _Atomic int pre_closed[NPRE];
static _Atomic pw_conn_id churn_ids[MAX_CHURN];
static _Atomic int churn_opens;
static _Atomic int opens, closes, good_close_code;

static void on_open(pw_server *s, pw_conn_id id, const pw_request *req, void *user) {
  int k;
  atomic_fetch_add(&opens, 1);
  if (strcmp(req->path, "/good") == 0) {
    atomic_store(&good_id, id);
  } else if (sscanf(req->path, "/pre/%d", &k) == 1 && k >= 0 && k < NPRE) {
    atomic_store(&pre_ids[k], id);
  } else if (sscanf(req->path, "/churn/%d", &k) == 1 && k >= 0 && k < MAX_CHURN) {
    atomic_store(&churn_ids[k], id);
    atomic_fetch_add(&churn_opens, 1);
  } else {
    PROBLEM("unexpected path %s", req->path);
  }
}

static void on_close(pw_server *s, pw_conn_id id, int code, const char *reason, void *user) {
  atomic_fetch_add(&closes, 1);
  if (id == atomic_load(&good_id)) atomic_store(&good_close_code, code);
  for (int k = 0; k < NPRE; k++)
    if (atomic_load(&pre_ids[k]) == id) atomic_store(&pre_closed[k], 1);
}

/* ---- accounting shared by every thread ---------------------------------------------------- */
static _Atomic uint64_t accepted_sends; /* pw_send / pw_send_buf that returned 0 */
static _Atomic uint64_t eagain_answers; /* every PW_EAGAIN from another thread */
static _Atomic uint64_t calls_accepted, calls_run;
static _Atomic uint64_t wraps_made, wraps_freed;
static _Atomic int stopping; /* pw_server_stop has been called */
static _Atomic int stopped;  /* pw_server_stop has returned */

/* ---- the ids ------------------------------------------------------------------------------- */
static pw_conn_id stale[NPRE];
static pw_conn_id never[NNEVER];
static _Atomic uint8_t churn_dead[MAX_CHURN]; /* some call answered PW_ENOCONN for it */

enum { CAT_STALE, CAT_NEVER, CAT_CHURN, CAT_GOOD };
static const char *const CAT_NAME[] = {"stale", "never-issued", "churn", "good"};

static void build_never(pw_conn_id good) {
  uint64_t rng = 0xA0761D6478BD642Full;
  uint32_t slot = (uint32_t)(good >> 32) & 0xFFFFFF, gen = (uint32_t)good;
  int n = 0;
  never[n++] = 0;
  for (int i = 0; i < 8; i++) never[n++] = th_rand(&rng) | (1ull << 56); /* loop index >= 1 */
  for (int li = 1; li <= 255 && n < 16; li += 37)
    never[n++] = ((uint64_t)li << 56) | (good & 0x00FFFFFFFFFFFFFFull); /* no such loop */
  never[n++] = good + 1; /* even generations: the good slot is live with good's odd one */
  never[n++] = (good & ~0xFFFFFFFFull) | 0xFFFFFFFEull;
  for (int k = 0; k < 8; k++) /* a freed slot's generation is stale + 1: even, never an id */
    never[n++] = stale[k * (NPRE / 8)] + 1;
  never[n++] = (1000ull << 32) | 1; /* a slot in the first chunk that is never used (LIFO) */
  for (int i = 0; i < 6; i++)       /* the good slot stays taken: later gens */
    never[n++] = ((uint64_t)slot << 32) | (gen + 2u * (uint32_t)(i + 1));
  for (int i = 0; i < 4; i++) /* past any generation this run reaches */
    never[n++] = ((uint64_t)slot << 32) | (0x7FFFFFF1u + 2u * (uint32_t)i);
  never[n++] = (0xFFFFFFull << 32) | 1; /* slots past the table */
  never[n++] = (0x800000ull << 32) | 1;
  never[n++] = (0x1000ull << 32) | 1;
  never[n++] = (0x2345ull << 32) | 3;
  never[n++] = UINT64_MAX;
  never[n++] = 0x00FFFFFFFFFFFFFFull;
  while (n < NNEVER) /* random loop-0 ids with an even generation */
    never[n++] = th_rand(&rng) & 0x00FFFFFFFFFFFFFEull;
}

/* ---- pw_call target -------------------------------------------------------------------------- */
static void call_fn(pw_server *s, void *arg) {
  atomic_fetch_add(&calls_run, 1);
  /* On the loop thread: the direct path must refuse a stale id as well. */
  int r = pw_send(s, stale[(uintptr_t)arg % NPRE], "x", 1, PW_TEXT);
  if (r != PW_ENOCONN && r != PW_ESTOPPED)
    PROBLEM("pw_send to a stale id on the loop thread returned %s", pw_err_name(r));
}

/* ---- the hammer ------------------------------------------------------------------------------ */
static _Atomic int hammer_quit;

typedef struct hammer {
  pthread_t thread;
  unsigned index;
  uint64_t calls, by_cat[4];
} hammer;

static hammer hammers[NHAMMER];

static void wrap_free(void *data, void *ctx) {
  free(data);
  atomic_fetch_add(&wraps_freed, 1);
}

static pw_buf *new_wrap(uint64_t *rng) {
  size_t len = 1 + th_rand(rng) % 300;
  char *mem = malloc(len);
  memset(mem, 'w', len);
  pw_buf *b = pw_buf_wrap(mem, len, wrap_free, NULL, th_rand(rng) & 1 ? PW_BINARY : PW_TEXT);
  if (!b) {
    free(mem);
    PROBLEM("pw_buf_wrap failed");
    return NULL;
  }
  atomic_fetch_add(&wraps_made, 1);
  return b;
}

/* The answers a call may give. PW_ESTOPPED only once the stop has begun (main sets
 * `stopping` before it calls pw_server_stop, so a call that saw the server stopping sees
 * the flag afterwards); after pw_server_stop returned, nothing but refusals. */
static int allowed(int cat, int r, int was_dead, int was_stopped) {
  if (r == PW_ESTOPPED) return atomic_load(&stopping);
  if (was_stopped) return r == PW_ENOCONN;
  if (cat == CAT_STALE || cat == CAT_NEVER || was_dead) return r == PW_ENOCONN;
  return r == 0 || r == PW_ENOCONN || r == PW_EAGAIN;
}

static void *hammer_main(void *arg) {
  hammer *H = arg;
  uint64_t rng = 0x9E3779B97F4A7C15ull * (H->index + 7);
  pw_buf *copy = pw_buf_new("hammer", 6, PW_TEXT);
  pw_buf *wrap = new_wrap(&rng);
  char text[64];
  memset(text, 'h', sizeof text);
  while (!atomic_load(&hammer_quit)) {
    int cat;
    pw_conn_id id;
    int churn_n = -1;
    uint64_t pick = th_rand(&rng) % 100;
    if (pick < 30) {
      cat = CAT_STALE, id = stale[th_rand(&rng) % NPRE];
    } else if (pick < 60) {
      cat = CAT_NEVER, id = never[th_rand(&rng) % NNEVER];
    } else {
      int n = atomic_load(&churn_opens);
      if (n == 0) continue;
      /* mostly the newest ones (likely open), sometimes any */
      churn_n = th_rand(&rng) & 1 ? n - 1 - (int)(th_rand(&rng) % (n < 24 ? (uint64_t)n : 24))
                                  : (int)(th_rand(&rng) % (uint64_t)n);
      id = atomic_load(&churn_ids[churn_n]);
      cat = CAT_CHURN;
      if (id == 0) continue;      /* numbered but not open yet */
      if (th_rand(&rng) % 8 == 0) /* its slot's next, even generation: never an id */
        cat = CAT_NEVER, id = id + 1, churn_n = -1;
    }
    int was_stopped = atomic_load(&stopped);
    int was_dead = churn_n >= 0 && atomic_load(&churn_dead[churn_n]);
    int op = (int)(th_rand(&rng) % 9), r;
    const char *opname;
    switch (op) {
    case 0:
    case 1:
      opname = "pw_send";
      r = pw_send(srv, id, text, 1 + th_rand(&rng) % sizeof text, PW_TEXT);
      break;
    case 2:
      opname = "pw_send(PW_BLOCK)";
      r = pw_send(srv, id, text, 1 + th_rand(&rng) % sizeof text, PW_BINARY | PW_BLOCK);
      break;
    case 3:
      opname = "pw_send_buf(copy)";
      r = pw_send_buf(srv, id, copy, th_rand(&rng) & 1 ? PW_BLOCK : 0);
      break;
    case 4:
      opname = "pw_send_buf(wrap)";
      r = wrap ? pw_send_buf(srv, id, wrap, 0) : PW_ENOCONN;
      if (th_rand(&rng) % 64 == 0) { /* a fresh wrapped buffer now and then */
        pw_buf_unref(wrap);
        wrap = new_wrap(&rng);
      }
      break;
    case 5: {
      static const int codes[] = {1000, 1001, 1008, 3000, 4000, 4999};
      static const char *const reasons[] = {NULL, "", "hammer", "bye"};
      opname = "pw_close";
      if (cat == CAT_CHURN && th_rand(&rng) % 4 != 0) { /* do not close everything at once */
        opname = "pw_set_slow_policy";
        r = pw_set_slow_policy(srv, id, PW_SLOW_CLOSE, 0);
      } else {
        r = pw_close(srv, id, codes[th_rand(&rng) % 6], reasons[th_rand(&rng) % 4]);
      }
      break;
    }
    case 6:
    case 7:
      opname = "pw_set_slow_policy";
      r = pw_set_slow_policy(srv, id, (pw_slow_policy)(th_rand(&rng) % 3),
                             th_rand(&rng) & 1 ? 0 : 512 + th_rand(&rng) % 65536);
      break;
    default:
      opname = "pw_call";
      r = pw_call(srv, call_fn, (void *)(uintptr_t)th_rand(&rng));
      if (r == 0) atomic_fetch_add(&calls_accepted, 1);
      if (r == PW_EAGAIN) atomic_fetch_add(&eagain_answers, 1);
      if (r == PW_ESTOPPED ? !atomic_load(&stopping) : (was_stopped || (r != 0 && r != PW_EAGAIN)))
        PROBLEM("pw_call returned %s (stopped %d)", pw_err_name(r), was_stopped);
      H->calls++;
      continue;
    }
    H->calls++;
    H->by_cat[cat]++;
    if (r == 0 && op <= 4) atomic_fetch_add(&accepted_sends, 1);
    if (r == PW_EAGAIN) atomic_fetch_add(&eagain_answers, 1);
    if (r == PW_ENOCONN && churn_n >= 0) atomic_store(&churn_dead[churn_n], 1);
    if (!allowed(cat, r, was_dead, was_stopped))
      PROBLEM("%s to %s id %016llx returned %s (stopped before: %d)", opname,
              was_dead ? "dead churn" : CAT_NAME[cat], (unsigned long long)id, pw_err_name(r),
              was_stopped);
  }
  pw_buf_unref(copy);
  pw_buf_unref(wrap);
  return NULL;
}

/* ---- churn: connections that open and close under the hammer ---------------------------- */
static _Atomic int churn_quit;
static _Atomic int churn_numbers; /* handed out to the churn threads */
static _Atomic unsigned long churn_endings[4];

static void churn_end(wsc *w, int n, uint64_t *rng) {
  int how = (int)(th_rand(rng) % 4);
  atomic_fetch_add(&churn_endings[how], 1);
  if (how == 2 || how == 3) {
    int r = pw_close(srv, atomic_load(&churn_ids[n]), 4001, "churn");
    if (r == PW_EAGAIN) atomic_fetch_add(&eagain_answers, 1);
    if (r != 0 && r != PW_ENOCONN && r != PW_EAGAIN)
      PROBLEM("churn: pw_close returned %s", pw_err_name(r));
  }
  if (how == 1 || how == 3) { /* a close handshake (ours, or answering the server's) */
    if (how == 1) wsc_send(w, 8, 1, "\x03\xe8", 2);
    uint64_t deadline = now_ms() + 1500;
    wsc_frame f;
    while (now_ms() < deadline && wsc_recv(w, &f, 100) == 0) {
      int op = f.opcode;
      if (op == 8 && how == 3) wsc_send(w, 8, 1, f.payload, f.len >= 2 ? 2 : 0);
      free(f.payload);
      if (op == 8) {
        wsc_wait_eof(w, 1000);
        break;
      }
    }
  }
  wsc_close(w); /* how 0 and 2: the socket just goes */
}

static void *churn_main(void *arg) {
  uint64_t rng = 0xD1B54A32D192ED03ull * (1 + (uintptr_t)arg);
  wsc pool[CHURN_POOL];
  int nums[CHURN_POOL], npool = 0, port = pw_server_port(srv);
  while (!atomic_load(&churn_quit)) {
    if (npool < CHURN_POOL && atomic_load(&churn_numbers) < MAX_CHURN &&
        (th_rand(&rng) & 1 || npool == 0)) {
      char path[32];
      int n = atomic_fetch_add(&churn_numbers, 1);
      snprintf(path, sizeof path, "/churn/%d", n);
      if (wsc_connect(&pool[npool], port, path) == 0) nums[npool++] = n;
      else PROBLEM("churn: connect %d failed", n);
    } else if (npool > 0) {
      int i = (int)(th_rand(&rng) % (uint64_t)npool);
      churn_end(&pool[i], nums[i], &rng);
      pool[i] = pool[--npool], nums[i] = nums[npool];
    }
    if (th_rand(&rng) & 1) sleep_ms(1);
  }
  while (npool > 0) --npool, churn_end(&pool[npool], nums[npool], &rng);
  return NULL;
}

/* ---- the good connection: an ordered stream that must arrive whole ---------------------- */
static wsc good;
static _Atomic int sender_quit, reader_quit;
static _Atomic uint64_t good_sent, good_received;

static void *sender_main(void *arg) {
  pw_conn_id id = atomic_load(&good_id);
  uint64_t seq = 0;
  while (!atomic_load(&sender_quit)) {
    char msg[32];
    int len = snprintf(msg, sizeof msg, "good %llu", (unsigned long long)seq);
    int r = pw_send(srv, id, msg, (size_t)len, PW_TEXT | PW_BLOCK);
    if (r == PW_EAGAIN) {
      atomic_fetch_add(&eagain_answers, 1);
      continue;
    }
    if (r != 0) {
      PROBLEM("pw_send to the good connection returned %s", pw_err_name(r));
      break;
    }
    atomic_fetch_add(&accepted_sends, 1);
    atomic_store(&good_sent, ++seq);
    if (seq % 64 == 0) sleep_ms(1); /* a steady stream, not a flood */
  }
  return NULL;
}

static void *reader_main(void *arg) {
  uint64_t expect = 0;
  while (!atomic_load(&reader_quit)) {
    wsc_frame f;
    if (wsc_recv(&good, &f, 100) != 0) continue; /* timeout (EOF is caught by the close) */
    if (f.opcode == 1) {
      char want[32];
      int len = snprintf(want, sizeof want, "good %llu", (unsigned long long)expect);
      if (f.len != (size_t)len || memcmp(f.payload, want, (size_t)len) != 0)
        PROBLEM("good connection: got \"%.*s\", expected \"%s\"", (int)f.len, f.payload, want);
      expect++;
      atomic_store(&good_received, expect);
    } else if (f.opcode == 9) {
      wsc_send(&good, 10, 1, f.payload, f.len);
    } else if (f.opcode == 8) {
      if (!atomic_load(&stopping)) PROBLEM("good connection closed early");
      wsc_send(&good, 8, 1, f.payload, f.len >= 2 ? 2 : 0);
      free(f.payload);
      if (wsc_wait_eof(&good, 5000) != 0) PROBLEM("good connection: no EOF after close");
      wsc_close(&good); /* the server lingers until our EOF */
      break;
    } else {
      PROBLEM("good connection: opcode %d", f.opcode);
    }
    free(f.payload);
  }
  return NULL;
}

/* ---- main --------------------------------------------------------------------------------- */
static int wait_until(_Atomic int *v, int want, int ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  while (atomic_load(v) < want && now_ms() < end) sleep_ms(1);
  return atomic_load(v) >= want;
}

/* Every call on `id` after the stop: PW_ESTOPPED or PW_ENOCONN, never a crash. */
static void calls_after_stop(pw_conn_id id, pw_buf *buf) {
  int r[5];
  r[0] = pw_send(srv, id, "late", 4, PW_TEXT);
  r[1] = pw_send(srv, id, "late", 4, PW_BINARY | PW_BLOCK);
  r[2] = pw_send_buf(srv, id, buf, PW_BLOCK);
  r[3] = pw_close(srv, id, PW_CLOSE_NORMAL, "late");
  r[4] = pw_set_slow_policy(srv, id, PW_SLOW_DROP_OLDEST, 4096);
  for (int i = 0; i < 5; i++) CHECK(r[i] == PW_ESTOPPED || r[i] == PW_ENOCONN);
}

int main(void) {
  uint64_t t_start = now_ms();
  pw_options o = {.port = 0, .close_timeout_ms = 1000};
  pw_callbacks cb = {.on_open = on_open, .on_close = on_close};
  srv = pw_server_new(&o, &cb, NULL);
  CHECK(srv != NULL);
  if (!srv) return CHECK_DONE();
  CHECK_EQ_INT(pw_server_start(srv), 0);
  int port = pw_server_port(srv);

  CHECK_EQ_INT(wsc_connect(&good, port, "/good"), 0);
  CHECK(wait_until(&opens, 1, 5000));
  pw_conn_id gid = atomic_load(&good_id);
  CHECK(gid != 0);
  /* The good reader may lag under a sanitizer: give it room, not a slow-consumer close. */
  CHECK_EQ_INT(pw_set_slow_policy(srv, gid, PW_SLOW_CLOSE, 64u << 20), 0);

  /* (a) stale ids: open NPRE connections, end them four ways, wait until they are gone. */
  wsc pre[NPRE];
  for (int k = 0; k < NPRE; k++) {
    char path[32];
    snprintf(path, sizeof path, "/pre/%d", k);
    CHECK_EQ_INT(wsc_connect(&pre[k], port, path), 0);
  }
  CHECK(wait_until(&opens, 1 + NPRE, 5000));
  for (int k = 0; k < NPRE; k++) {
    pw_conn_id id = atomic_load(&pre_ids[k]);
    wsc_frame f;
    switch (k % 4) {
    case 0: /* the client just goes */ wsc_close(&pre[k]); break;
    case 1: /* the client closes cleanly */
      wsc_send(&pre[k], 8, 1, "\x03\xe8", 2);
      if (wsc_recv(&pre[k], &f, 3000) == 0) free(f.payload);
      wsc_wait_eof(&pre[k], 3000);
      wsc_close(&pre[k]);
      break;
    case 2: /* the server closes, the client answers */
      CHECK_EQ_INT(pw_close(srv, id, 4000, "pre"), 0);
      if (wsc_recv(&pre[k], &f, 3000) == 0) {
        wsc_send(&pre[k], 8, 1, f.payload, 2);
        free(f.payload);
      }
      wsc_wait_eof(&pre[k], 3000);
      wsc_close(&pre[k]);
      break;
    case 3: /* the server closes, the client never answers: the close timeout ends it */
      CHECK_EQ_INT(pw_close(srv, id, 4000, "pre"), 0);
      break;
    }
  }
  for (int k = 0; k < NPRE; k++) {
    uint64_t end = now_ms() + 5000;
    while (!atomic_load(&pre_closed[k]) && now_ms() < end) sleep_ms(1);
    CHECK(atomic_load(&pre_closed[k]));
    if (k % 4 == 3) wsc_close(&pre[k]);
  }
  /* Closed (on_close ran) is not yet gone for other threads: the slot is freed with the
   * memory, a moment later. Wait until each id is refused, then it must stay refused. */
  int gone = 0;
  for (int k = 0; k < NPRE; k++) {
    stale[k] = atomic_load(&pre_ids[k]);
    uint64_t end = now_ms() + 5000;
    int r;
    while ((r = pw_send(srv, stale[k], "s", 1, PW_TEXT)) != PW_ENOCONN && now_ms() < end) {
      if (r == 0) atomic_fetch_add(&accepted_sends, 1);
      sleep_ms(1);
    }
    gone += r == PW_ENOCONN;
  }
  CHECK_EQ_INT(gone, NPRE);
  build_never(gid);
  for (int i = 0; i < NNEVER; i++) /* never-issued ids really are never-issued */
    for (int k = 0; k < NPRE; k++) CHECK(never[i] != stale[k] || never[i] == 0);

  /* The hammer, with the churn and the good stream. */
  pthread_t churn[NCHURN], sender, reader;
  pthread_create(&reader, NULL, reader_main, NULL);
  pthread_create(&sender, NULL, sender_main, NULL);
  for (int i = 0; i < NCHURN; i++) pthread_create(&churn[i], NULL, churn_main, (void *)(intptr_t)i);
  for (unsigned i = 0; i < NHAMMER; i++) {
    hammers[i].index = i;
    pthread_create(&hammers[i].thread, NULL, hammer_main, &hammers[i]);
  }
  uint64_t t_hammer = now_ms();
  /* At least HAMMER_MS, and until MIN_CHURN connections came and went (TSan is slow). */
  sleep_ms(HAMMER_MS);
  while (atomic_load(&churn_opens) < MIN_CHURN && now_ms() - t_hammer < MAX_HAMMER_MS) sleep_ms(10);
  atomic_store(&churn_quit, 1);
  for (int i = 0; i < NCHURN; i++) pthread_join(churn[i], NULL);
  atomic_store(&sender_quit, 1);
  pthread_join(sender, NULL);
  uint64_t end = now_ms() + 20000;
  while (atomic_load(&good_received) < atomic_load(&good_sent) && now_ms() < end &&
         check_problems() == 0)
    sleep_ms(2);
  CHECK_EQ_INT(atomic_load(&good_received), atomic_load(&good_sent));
  CHECK(atomic_load(&good_sent) > 0);

  /* Stop while the hammer goes on; after the stop every answer is PW_ESTOPPED/PW_ENOCONN. */
  atomic_store(&stopping, 1);
  uint64_t t_stop = now_ms();
  CHECK_EQ_INT(pw_server_stop(srv), 0);
  double stop_secs = (double)(now_ms() - t_stop) / 1000.0;
  atomic_store(&stopped, 1);
  sleep_ms(AFTER_STOP_MS);
  atomic_store(&hammer_quit, 1);
  uint64_t calls = 0, by_cat[4] = {0};
  for (int i = 0; i < NHAMMER; i++) {
    pthread_join(hammers[i].thread, NULL);
    calls += hammers[i].calls;
    for (int c = 0; c < 4; c++) by_cat[c] += hammers[i].by_cat[c];
  }
  double hammer_secs = (double)(now_ms() - t_hammer) / 1000.0;
  atomic_store(&reader_quit, 1);
  pthread_join(reader, NULL);

  /* From this thread too, after pw_server_stop and before pw_server_free. */
  pw_buf *buf = pw_buf_new("late", 4, PW_BINARY);
  calls_after_stop(gid, buf);
  for (int k = 0; k < NPRE; k++) calls_after_stop(stale[k], buf);
  for (int i = 0; i < NNEVER; i++) calls_after_stop(never[i], buf);
  for (int n = 0; n < atomic_load(&churn_opens); n += 7) calls_after_stop(churn_ids[n], buf);
  CHECK_EQ_INT(pw_call(srv, call_fn, NULL), PW_ESTOPPED);
  CHECK_EQ_INT(pw_send(srv, gid, "x", 1, 0x40), PW_EINVAL);
  CHECK_EQ_INT(pw_send_buf(srv, gid, NULL, 0), PW_EINVAL);
  CHECK_EQ_INT(pw_close(srv, gid, 999, NULL), PW_EINVAL);
  CHECK_EQ_INT(pw_set_slow_policy(srv, gid, (pw_slow_policy)7, 0), PW_EINVAL);
  CHECK_EQ_INT(pw_server_stop(srv), 0); /* idempotent */

  pw_stats st;
  CHECK_EQ_INT(pw_server_stats(srv, &st), 0);
  uint64_t accepted = atomic_load(&accepted_sends);
  CHECK_EQ_INT(st.messages_sent + st.dropped_closed + st.dropped_new + st.dropped_oldest, accepted);
  CHECK(st.dropped_closed > 0);
  CHECK_EQ_INT(st.rejected, atomic_load(&eagain_answers));
  CHECK_EQ_INT(st.connections, 0);
  CHECK_EQ_INT(st.queued_bytes, 0);
  CHECK_EQ_INT(st.inbox_bytes, 0);
  CHECK_EQ_INT(st.connections_total, atomic_load(&opens));
  CHECK_EQ_INT(atomic_load(&calls_run), atomic_load(&calls_accepted));
  CHECK_EQ_INT(atomic_load(&closes), atomic_load(&opens));
  CHECK_EQ_INT(atomic_load(&good_close_code), 1001);
  CHECK(by_cat[CAT_STALE] > 0 && by_cat[CAT_NEVER] > 0 && by_cat[CAT_CHURN] > 0);
  CHECK(atomic_load(&churn_opens) >= MIN_CHURN);
  CHECK_EQ_INT(check_problems(), 0);

  printf("hammer: %llu calls in %.2f s by %d threads (stale %llu, never-issued %llu, churn "
         "%llu, pw_call %llu accepted); stop took %.2f s\n",
         (unsigned long long)calls, hammer_secs, NHAMMER, (unsigned long long)by_cat[CAT_STALE],
         (unsigned long long)by_cat[CAT_NEVER], (unsigned long long)by_cat[CAT_CHURN],
         (unsigned long long)atomic_load(&calls_accepted), stop_secs);
  printf("churn: %d connections (endings: rst %lu, clean %lu, pw_close+rst %lu, "
         "pw_close answered %lu); good stream: %llu messages\n",
         atomic_load(&churn_opens), churn_endings[0], churn_endings[1], churn_endings[2],
         churn_endings[3], (unsigned long long)atomic_load(&good_received));
  printf("stats: accepted sends %llu = sent %llu + dropped_closed %llu + dropped_new %llu + "
         "dropped_oldest %llu; slow_closed %llu, rejected %llu, batch %.1f\n",
         (unsigned long long)accepted, (unsigned long long)st.messages_sent,
         (unsigned long long)st.dropped_closed, (unsigned long long)st.dropped_new,
         (unsigned long long)st.dropped_oldest, (unsigned long long)st.slow_closed,
         (unsigned long long)st.rejected,
         st.wakeups ? (double)st.commands / (double)st.wakeups : 0.0);

  pw_server_free(srv);
  pw_buf_unref(buf);
  wsc_close(&good);
  CHECK_EQ_INT(atomic_load(&wraps_freed), atomic_load(&wraps_made)); /* free_fn exactly once */
  printf("wrapped buffers: %llu made, %llu freed; total %.2f s\n",
         (unsigned long long)atomic_load(&wraps_made),
         (unsigned long long)atomic_load(&wraps_freed), (double)(now_ms() - t_start) / 1000.0);
  return CHECK_DONE();
}
