/* pw_options_check names the bad field, its value and what is allowed; pw_server_new refuses
 * the same options and logs the same line; good and zero (default) options pass.
 * Checked to fail before pw_options_check existed (pw_server_new returned NULL, logged
 * nothing), and with a row of options.c's table removed (that field's bad value passed). */
#include <pushwire.h>
#include <stdio.h>
#include <string.h>

#include "../support/check.h"

static char logged[512];

static void keep_log(int level, const char *msg, void *user) {
  (void)level, (void)user;
  snprintf(logged, sizeof logged, "%s", msg);
}

/* opt is bad: the check says so naming `field`, and pw_server_new logs that very line. */
static void expect_bad(pw_options opt, const char *field) {
  char err[256];
  CHECK_EQ_INT(pw_options_check(&opt, err, sizeof err), PW_EINVAL);
  if (!strstr(err, field)) fprintf(stderr, "  for %s the message was: %s\n", field, err);
  CHECK(strstr(err, field) != NULL);
  logged[0] = 0;
  opt.log = keep_log;
  pw_server *srv = pw_server_new(&opt, NULL, NULL);
  CHECK(srv == NULL);
  pw_server_free(srv);
  CHECK(strcmp(logged, err) == 0);
}

static void test_ranges(void) {
  expect_bad((pw_options){.threads = 65}, "pw_options.threads = 65: must be 1..64");
  expect_bad((pw_options){.threads = -2}, "threads");
  expect_bad((pw_options){.port = 70000}, "pw_options.port = 70000");
  expect_bad((pw_options){.port = -2}, "port");
  expect_bad((pw_options){.tls.port = -1}, "pw_options.tls.port = -1: must be 0..65535");
  expect_bad((pw_options){.max_connections = -5}, "max_connections");
  expect_bad((pw_options){.backlog = -1}, "backlog");
  expect_bad((pw_options){.log_level = 9}, "log_level");
  expect_bad((pw_options){.slow_policy = (pw_slow_policy)7}, "slow_policy");
  expect_bad((pw_options){.event_policy = (pw_event_policy)-1}, "event_policy");
  expect_bad((pw_options){.deliver_close = (pw_deliver)2}, "deliver_close");
  expect_bad((pw_options){.deliver_refused = (pw_deliver)3}, "deliver_refused");
  expect_bad((pw_options){.inbox_capacity = (size_t)1 << 30}, "inbox_capacity");
  expect_bad((pw_options){.deflate.server_max_window_bits = 16},
             "deflate.server_max_window_bits = 16: must be 0 (the default) or 8..15");
  expect_bad((pw_options){.deflate.level = 10}, "deflate.level");
  expect_bad((pw_options){.deflate.mem_level = -1}, "deflate.mem_level");
  expect_bad((pw_options){.tls.require_client_cert = 2, .tls.ca_file = "ca.pem"},
             "tls.require_client_cert = 2");
}

/* The deflate ranges live only here (options.c's table), no longer in src/deflate.c too:
 * every edge of each, with the window bits' 0 and 8 allowed (the default; 8 means 9). */
static void test_deflate_edges(void) {
  static const int bad_bits[] = {-1, 1, 7, 16}, bad_levels[] = {-1, 10};
  for (size_t i = 0; i < 4; i++) {
    expect_bad((pw_options){.deflate.server_max_window_bits = bad_bits[i]},
               "deflate.server_max_window_bits");
    expect_bad((pw_options){.deflate.client_max_window_bits = bad_bits[i]},
               "deflate.client_max_window_bits");
  }
  for (size_t i = 0; i < 2; i++) {
    expect_bad((pw_options){.deflate.level = bad_levels[i]}, "deflate.level");
    expect_bad((pw_options){.deflate.mem_level = bad_levels[i]}, "deflate.mem_level");
  }
  static const int good_bits[] = {0, 8, 9, 15};
  for (size_t i = 0; i < 4; i++) {
    pw_options o = {.deflate = {.server_max_window_bits = good_bits[i],
                                .client_max_window_bits = good_bits[i],
                                .level = i == 3 ? 9 : 1,
                                .mem_level = i == 3 ? 9 : 1}};
    CHECK_EQ_INT(pw_options_check(&o, NULL, 0), 0);
  }
}

static void test_combinations(void) {
  expect_bad((pw_options){.port = -1}, "needs tls.cert_file");
  expect_bad((pw_options){.tls.cert_file = "cert.pem"}, "tls.key_file");
  expect_bad((pw_options){.tls.require_client_cert = 1}, "tls.ca_file");
}

static void test_good(void) {
  char err[64] = "x";
  CHECK_EQ_INT(pw_options_check(NULL, err, sizeof err), 0);
  CHECK_EQ_INT(err[0], 0);
  CHECK_EQ_INT(pw_options_check(&(pw_options){0}, NULL, 0), 0);
  pw_options o = {
      .threads = 64,
      .port = 65535,
      .log_level = PW_LOG_DEBUG,
      .idle_timeout_ms = -1,
      .send_timeout_ms = -1,
      .deflate = {.enable = 1, .server_max_window_bits = 8, .level = 9, .mem_level = 1}};
  CHECK_EQ_INT(pw_options_check(&o, err, sizeof err), 0);
  /* a message cut to the caller's buffer, still NUL-terminated */
  char tiny[8];
  CHECK_EQ_INT(pw_options_check(&(pw_options){.threads = 99}, tiny, sizeof tiny), PW_EINVAL);
  CHECK_EQ_SIZE(strlen(tiny), sizeof tiny - 1);
}

int main(void) {
  test_ranges();
  test_deflate_edges();
  test_combinations();
  test_good();
  return CHECK_DONE();
}
