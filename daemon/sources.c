/* Sources outside HTTP (sources.h): a Unix socket, --exec programs and --stdin. Each is a pw
 * task that polls its descriptors with a short timeout, so it notices pw_task_should_stop()
 * within STOP_POLL_MS; when asked to stop it first reads what is already waiting (a producer
 * that wrote before SIGTERM is not lost), publishes it, then returns. */
#include "sources.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deliver.h"
#include "log.h"

extern char **environ;

#define STOP_POLL_MS 200
#define UNIX_MAX_CLIENTS 64
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define STABLE_RUN_MS 10000 /* a program that ran this long restarts with the minimum delay */
#define KILL_GRACE_MS 2000  /* SIGTERM, then SIGKILL after this */

/* ---- lines ----------------------------------------------------------------------------------- */
/* Splits a byte stream into lines. A line longer than `max` is dropped whole (logged), never
 * cut into pieces that would each look like a message. */
typedef struct line_reader {
  char *buf;
  size_t len, cap, max;
  int discarding;   /* inside an overlong line: skip to its newline */
  const char *what; /* for the log: "unix", "exec[0]", "stdin" */
} line_reader;

typedef void (*line_fn)(void *ctx, char *line, size_t len);

/* A line ended: hand it over unless it was dropped. Blank lines are skipped. */
static void end_line(line_reader *lr, line_fn fn, void *ctx) {
  if (lr->len > 0 && lr->buf[lr->len - 1] == '\r') lr->len--;
  if (lr->len > 0 && !lr->discarding) {
    lr->buf[lr->len] = '\0';
    fn(ctx, lr->buf, lr->len);
  }
  lr->len = 0;
  lr->discarding = 0;
}

/* Append one byte run; 0, or -1 out of memory (the reader then drops the current line). */
static int line_append(line_reader *lr, const char *p, size_t n) {
  if (lr->discarding) return 0;
  if (lr->len + n > lr->max) {
    pwd_log(PW_LOG_WARN, "%s: line longer than %zu bytes dropped", lr->what, lr->max);
    lr->discarding = 1;
    return 0;
  }
  if (lr->len + n + 1 > lr->cap) {
    size_t cap = (lr->len + n + 1) * 2;
    if (cap > lr->max + 1) cap = lr->max + 1;
    char *grown = realloc(lr->buf, cap);
    if (!grown) return lr->discarding = 1, -1;
    lr->buf = grown, lr->cap = cap;
  }
  memcpy(lr->buf + lr->len, p, n);
  lr->len += n;
  return 0;
}

static void lines_feed(line_reader *lr, const char *data, size_t n, line_fn fn, void *ctx) {
  while (n > 0) {
    const char *nl = memchr(data, '\n', n);
    size_t chunk = nl ? (size_t)(nl - data) : n;
    line_append(lr, data, chunk);
    if (!nl) break;
    end_line(lr, fn, ctx);
    data = nl + 1, n -= chunk + 1;
  }
}

/* The input is over. At its end (EOF) a last line without its newline is still a line; when
 * we stop reading mid-stream it is a fragment of a line still being written: dropped. */
static void lines_finish(line_reader *lr, line_fn fn, void *ctx, int at_eof) {
  if (!at_eof && lr->len > 0)
    pwd_log(PW_LOG_WARN, "%s: stopping: %zu bytes of an unfinished line dropped", lr->what,
            lr->len);
  if (at_eof) end_line(lr, fn, ctx);
  free(lr->buf);
  memset(lr, 0, sizeof *lr);
}

/* Read once from fd into the reader: >0 bytes read, 0 end of input, -1 nothing now/error. */
static ssize_t read_into(int fd, line_reader *lr, line_fn fn, void *ctx) {
  char chunk[65536];
  ssize_t n = read(fd, chunk, sizeof chunk);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return -1;
  if (n < 0) return 0; /* a read error ends this input like EOF */
  lines_feed(lr, chunk, (size_t)n, fn, ctx);
  return n;
}

/* Is fd readable right now (or within ms)? */
static int readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) > 0;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the Unix socket ------------------------------------------------------------------------- */
typedef struct unix_client {
  pwd_daemon *d;
  int fd;
  line_reader lines;
} unix_client;

typedef struct unix_source {
  pwd_daemon *d;
  int listen_fd; /* -1: none */
  char *path;    /* bound by us: removed at cleanup */
  unix_client clients[UNIX_MAX_CLIENTS];
  size_t nclients;
} unix_source;

typedef struct exec_source {
  pwd_daemon *d;
  const pwd_exec *spec;
  char name[32]; /* "exec[N]": task key and log prefix */
} exec_source;

struct pwd_sources {
  unix_source unix_src;
  exec_source *execs;
  size_t nexec;
};

/* A line from a client: "<topic> <payload>". Errors go back to the client, best effort (it
 * may not read; it is never waited for). */
static void unix_line(void *ctx, char *line, size_t len) {
  unix_client *c = ctx;
  pwd_daemon *d = c->d;
  char *space = memchr(line, ' ', len);
  int r = PWD_EBADTOPIC;
  if (space) {
    *space = '\0';
    r = pwd_publish(d, PWD_SRC_UNIX, line, space + 1, len - (size_t)(space + 1 - line), 0);
  } else {
    pwd_count(&d->metrics.refused[PWD_SRC_UNIX], 1);
  }
  if (r == 0) return;
  char msg[200];
  int n = snprintf(msg, sizeof msg, "error: %s\n",
                   space ? pwd_publish_strerror(r) : "expected '<topic> <payload>'");
  ssize_t w = send(c->fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)w;
}

static void close_client(unix_source *u, size_t i, int at_eof) {
  lines_finish(&u->clients[i].lines, unix_line, &u->clients[i], at_eof);
  close(u->clients[i].fd);
  u->clients[i] = u->clients[--u->nclients];
}

/* Read a client; at its end (EOF or error) forget it. `all`: until nothing is left now. */
static void read_client(unix_source *u, size_t i, int all) {
  ssize_t n;
  do n = read_into(u->clients[i].fd, &u->clients[i].lines, unix_line, &u->clients[i]);
  while (all && n > 0);
  if (n == 0) close_client(u, i, 1);
}

static void accept_client(unix_source *u) {
  int fd = accept4(u->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return;
  if (u->nclients == UNIX_MAX_CLIENTS) {
    static const char full[] = "error: too many clients\n";
    ssize_t w = send(fd, full, sizeof full - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    close(fd);
    return;
  }
  unix_client *c = &u->clients[u->nclients++];
  memset(c, 0, sizeof *c);
  c->d = u->d;
  c->fd = fd;
  c->lines.max = u->d->cfg->max_message + 256; /* payload plus "<topic> " */
  c->lines.what = "unix";
}

static void unix_task(pw_server *srv, void *arg) {
  unix_source *u = arg;
  while (!pw_task_should_stop()) {
    struct pollfd p[1 + UNIX_MAX_CLIENTS] = {{.fd = u->listen_fd, .events = POLLIN}};
    for (size_t i = 0; i < u->nclients; i++)
      p[1 + i] = (struct pollfd){.fd = u->clients[i].fd, .events = POLLIN};
    size_t polled = u->nclients;
    if (poll(p, 1 + polled, STOP_POLL_MS) <= 0) continue;
    for (size_t i = polled; i-- > 0;) /* backwards: close_client moves the last one into i */
      if (p[1 + i].revents) read_client(u, i, 0);
    if (p[0].revents & POLLIN) accept_client(u);
  }
  /* Stopping: publish what clients had sent before, then let them go. */
  while (readable(u->listen_fd, 0) && u->nclients < UNIX_MAX_CLIENTS) accept_client(u);
  for (size_t i = u->nclients; i-- > 0;) read_client(u, i, 1);
  while (u->nclients > 0) close_client(u, u->nclients - 1, 0);
}

/* Is there a socket at path that nobody listens on (left by a crash)? Only then may it go. */
static int stale_socket(const char *path, const struct sockaddr_un *addr) {
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int refused = fd >= 0 && connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0 &&
                errno == ECONNREFUSED;
  if (fd >= 0) close(fd);
  return refused;
}

static int unix_listen(unix_source *u, const char *path, char *err, size_t errlen) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path)
    return snprintf(err, errlen, "--unix %s: path longer than %zu bytes", path,
                    sizeof addr.sun_path - 1),
           -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&addr, sizeof addr);
  if (r != 0 && errno == EADDRINUSE && stale_socket(path, &addr))
    r = unlink(path) == 0 ? bind(fd, (struct sockaddr *)&addr, sizeof addr) : -1;
  if (r == 0)
    chmod(path, 0660); /* owner and group: the socket's permissions are its access control */
  if (r != 0 || listen(fd, 64) != 0) {
    snprintf(err, errlen, "cannot listen on unix socket %s: %s", path,
             errno == EADDRINUSE ? "address already in use" : strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  u->listen_fd = fd;
  u->path = strdup(path);
  return 0;
}

/* ---- --exec programs ------------------------------------------------------------------------- */
static void exec_line(void *ctx, char *line, size_t len) {
  exec_source *e = ctx;
  int r = pwd_publish(e->d, PWD_SRC_EXEC, e->spec->topic, line, len, 0);
  if (r != 0) pwd_log(PW_LOG_WARN, "%s: line not published: %s", e->name, pwd_publish_strerror(r));
}

/* Run the command with its stdout on a pipe, in its own process group (so stopping it also
 * stops what it started), with default signal dispositions and an empty mask (this process
 * blocks SIGTERM and ignores SIGPIPE; a child must not inherit that). */
static pid_t spawn(const char *command, int *out_fd) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  char *argv[] = {"sh", "-c", (char *)command, NULL};
  pid_t pid = -1;
  int r = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(p[1]);
  if (r != 0) return close(p[0]), errno = r, -1;
  *out_fd = p[0];
  return pid;
}

/* Has pid exited within ms? Then *status is its wait status (and it is reaped). */
static int exited_within(pid_t pid, int ms, int *status) {
  for (long long end = now_ms() + ms;;) {
    if (waitpid(pid, status, WNOHANG) == pid) return 1;
    if (now_ms() >= end) return 0;
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
}

/* End the program: give it `patience` ms to exit by itself, then SIGTERM, then SIGKILL after
 * the grace time. Whatever is left of its process group gets the same signals. Returns its
 * wait status. */
static int reap(pid_t pid, int patience) {
  int status = 0;
  if (!exited_within(pid, patience, &status)) {
    kill(-pid, SIGTERM);
    if (!exited_within(pid, KILL_GRACE_MS, &status)) {
      kill(-pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    }
  }
  kill(-pid, SIGTERM); /* children it left behind; ESRCH when there are none */
  return status;
}

/* Has the program exited (not reaped: reap() collects the status)? */
static int has_exited(pid_t pid) {
  siginfo_t info = {0};
  return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

/* One run of the program: publish its lines until its output ends or the task is asked to
 * stop. Returns the wait status, or -1 if it could not start. */
static int run_once(exec_source *e) {
  int fd;
  pid_t pid = spawn(e->spec->command, &fd);
  if (pid < 0) {
    pwd_log(PW_LOG_ERROR, "%s: cannot run '%s': %s", e->name, e->spec->command, strerror(errno));
    return -1;
  }
  pwd_log(PW_LOG_INFO, "%s: started '%s' (pid %d), lines go to topic '%s'", e->name,
          e->spec->command, (int)pid, e->spec->topic);
  line_reader lr = {.max = e->d->cfg->max_message, .what = e->name};
  int eof = 0;
  while (!eof && !pw_task_should_stop()) {
    if (readable(fd, STOP_POLL_MS)) eof = read_into(fd, &lr, exec_line, e) == 0;
    /* The program ended but something it started keeps the pipe open: treat a quiet pipe
     * after its exit as the end. */
    else eof = has_exited(pid);
  }
  while (!eof && readable(fd, 0)) eof = read_into(fd, &lr, exec_line, e) == 0; /* what is there */
  lines_finish(&lr, exec_line, e, eof);
  close(fd);
  /* At the end of its output a program is normally exiting: let it, unless we are stopping. */
  return reap(pid, pw_task_should_stop() ? 0 : 1000);
}

static void describe_status(int status, char *out, size_t cap) {
  if (status < 0) snprintf(out, cap, "did not start");
  else if (WIFEXITED(status)) snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) snprintf(out, cap, "killed by signal %d", WTERMSIG(status));
  else snprintf(out, cap, "ended");
}

/* Run, and run again after each exit: the delay doubles from BACKOFF_MIN_MS to BACKOFF_MAX_MS,
 * and starts over once a run lasted STABLE_RUN_MS (a crash loop backs off, a rare exit does
 * not wait long). */
static void exec_task(pw_server *srv, void *arg) {
  exec_source *e = arg;
  int delay = BACKOFF_MIN_MS;
  while (!pw_task_should_stop()) {
    long long started = now_ms();
    int status = run_once(e);
    if (pw_task_should_stop()) break;
    if (now_ms() - started >= STABLE_RUN_MS) delay = BACKOFF_MIN_MS;
    char how[64];
    describe_status(status, how, sizeof how);
    pwd_log(PW_LOG_WARN, "%s: '%s' %s; restarting in %d ms", e->name, e->spec->command, how, delay);
    pwd_count(&e->d->metrics.exec_restarts, 1);
    if (pw_task_sleep(delay)) break;
    delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
  }
}

/* ---- --stdin --------------------------------------------------------------------------------- */
static void stdin_line(void *ctx, char *line, size_t len) {
  pwd_daemon *d = ctx;
  int r = pwd_publish(d, PWD_SRC_STDIN, d->cfg->stdin_topic, line, len, 0);
  if (r != 0) pwd_log(PW_LOG_WARN, "stdin: line not published: %s", pwd_publish_strerror(r));
}

static void stdin_task(pw_server *srv, void *arg) {
  pwd_daemon *d = arg;
  line_reader lr = {.max = d->cfg->max_message, .what = "stdin"};
  int eof = 0;
  while (!eof && !pw_task_should_stop())
    if (readable(STDIN_FILENO, STOP_POLL_MS))
      eof = read_into(STDIN_FILENO, &lr, stdin_line, d) == 0;
  while (!eof && readable(STDIN_FILENO, 0)) eof = read_into(STDIN_FILENO, &lr, stdin_line, d) == 0;
  lines_finish(&lr, stdin_line, d, eof);
  if (eof) pwd_log(PW_LOG_INFO, "stdin: end of input, the stdin source is done");
}

/* ---- lifecycle ------------------------------------------------------------------------------- */
int pwd_sources_prepare(pwd_daemon *d, char *err, size_t errlen) {
  pwd_sources *s = calloc(1, sizeof *s);
  if (!s) return snprintf(err, errlen, "out of memory"), -1;
  d->sources = s;
  s->unix_src.listen_fd = -1;
  s->unix_src.d = d;
  if (d->cfg->unix_path && unix_listen(&s->unix_src, d->cfg->unix_path, err, errlen) != 0)
    return -1;
  if (d->cfg->nexec && !(s->execs = calloc(d->cfg->nexec, sizeof *s->execs)))
    return snprintf(err, errlen, "out of memory"), -1;
  for (; s->nexec < d->cfg->nexec; s->nexec++) {
    exec_source *e = &s->execs[s->nexec];
    e->d = d;
    e->spec = &d->cfg->execs[s->nexec];
    snprintf(e->name, sizeof e->name, "exec[%zu]", s->nexec);
  }
  return 0;
}

static int start_task(pwd_daemon *d, const char *key, pw_task_fn fn, void *arg, char *err,
                      size_t errlen) {
  int r = pw_task_start(d->srv, key, fn, arg);
  if (r != 0) snprintf(err, errlen, "cannot start the %s source: %s", key, pw_strerror(r));
  return r;
}

int pwd_sources_start(pwd_daemon *d, char *err, size_t errlen) {
  pwd_sources *s = d->sources;
  if (s->unix_src.listen_fd >= 0) {
    if (start_task(d, "unix", unix_task, &s->unix_src, err, errlen)) return -1;
    pwd_log(PW_LOG_INFO, "unix socket %s: accepting '<topic> <payload>' lines", s->unix_src.path);
  }
  for (size_t i = 0; i < s->nexec; i++)
    if (start_task(d, s->execs[i].name, exec_task, &s->execs[i], err, errlen)) return -1;
  if (d->cfg->stdin_topic && start_task(d, "stdin", stdin_task, d, err, errlen)) return -1;
  return 0;
}

void pwd_sources_stop(pwd_daemon *d) {
  pwd_sources *s = d->sources;
  if (!s) return;
  if (s->unix_src.listen_fd >= 0) pw_task_stop(d->srv, "unix");
  for (size_t i = 0; i < s->nexec; i++) pw_task_stop(d->srv, s->execs[i].name);
  if (d->cfg->stdin_topic) pw_task_stop(d->srv, "stdin");
}

void pwd_sources_cleanup(pwd_daemon *d) {
  pwd_sources *s = d->sources;
  if (!s) return;
  if (s->unix_src.listen_fd >= 0) close(s->unix_src.listen_fd);
  if (s->unix_src.path) unlink(s->unix_src.path);
  free(s->unix_src.path);
  free(s->execs);
  free(s);
  d->sources = NULL;
}
