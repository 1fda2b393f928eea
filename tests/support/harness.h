/* Shared pieces of the C API tests: a server on port 0 whose open/close callbacks record
 * ids and close codes (read safely from the test thread), and waiting with a deadline. */
#ifndef PW_TEST_HARNESS_H
#define PW_TEST_HARNESS_H

#include <pushwire.h>

#define TH_MAX 1024

typedef struct th_events {
  int opens, closes;
  pw_conn_id opened[TH_MAX];
  pw_conn_id closed[TH_MAX];
  int close_codes[TH_MAX];
} th_events;

/* Callbacks that record into the harness (on_message may be set by the test). */
void th_on_open(pw_server *srv, pw_conn_id id, const pw_request *req, void *user);
void th_on_close(pw_server *srv, pw_conn_id id, int code, const char *reason, void *user);
/* Start a server on port 0 with these options (NULL = defaults) and the recording callbacks
 * plus on_message (may be NULL). Resets the records. */
pw_server *th_start(pw_options *opt,
                    void (*on_message)(pw_server *, pw_conn_id, const void *, size_t, int, void *));
/* Forget every record (th_start does it): for a test that makes its own server with
 * th_on_open/th_on_close among its callbacks. */
void th_reset(void);
/* A copy of the records, taken under the lock. */
th_events th_snapshot(void);
/* Wait up to timeout_ms for the n-th open (1-based); its id or 0. */
pw_conn_id th_wait_open(int n, int timeout_ms);
/* Wait up to timeout_ms for at least n closes; 1 if reached. */
int th_wait_closes(int n, int timeout_ms);
/* The close code reported for id, or -1. */
int th_close_code(pw_conn_id id);
/* Wait up to timeout_ms for cond(arg) to be true; 1 if it was. */
int th_wait(int (*cond)(void *arg), void *arg, int timeout_ms);
/* Wait up to timeout_ms until pw_topic_subscribers(srv, topic) is n: 1 if it was. The count
 * is a snapshot that a subscribe from another thread reaches once its loop has made it, so
 * this is also a barrier: publishes after it reach those subscribers. */
int th_wait_subscribers(pw_server *srv, const char *topic, int n, int timeout_ms);
/* Hold srv's loop thread in a pw_call until th_release_loop() (or 3 s, so a failed test cannot
 * hang): what a test uses to fill the inbox, or to act while the loop can do nothing. 1 once
 * the loop is held (waited for up to 3 s), 0 if it never was. One hold at a time. */
int th_hold_loop(pw_server *srv);
/* 1 while the loop is held. */
int th_loop_held(void);
void th_release_loop(void);
/* A fast pseudo-random sequence (xorshift64*) for tests that need repeatable randomness. */
uint64_t th_rand(uint64_t *state);

#endif
