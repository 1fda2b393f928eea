/* idle_conns: open N idle WebSocket connections to a server and measure its memory.
 *
 *   idle_conns --port P --conns N [--host 127.0.0.1] [--server-pid PID] [--hold SECONDS]
 *              [--batch B] [--timeout SECONDS] [--path /]
 *
 * Opens N TCP connections (at most B connecting/handshaking at once, so the server's
 * listen backlog is never overflowed), sends an RFC 6455 upgrade request on each and
 * checks for a "101" response, then keeps them open and silent (it only answers pings
 * from the server with pongs). With --server-pid it reads VmRSS from /proc/PID/status
 * before connecting and after all handshakes have completed plus a 1 s settle, and
 * prints the memory cost per idle connection. Then it holds the connections for
 * --hold seconds (default 0), reports any the server dropped, and exits.
 *
 * Exit status: 0 if all N connections were established (and none dropped during the
 * hold), 1 otherwise, 2 on usage or setup errors.
 *
 * Plain C11 + POSIX/Linux (epoll), no libraries beyond libc.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum conn_state {
    ST_UNUSED = 0,  /* not started yet */
    ST_CONNECTING,  /* non-blocking connect in progress */
    ST_SENDING,     /* writing the upgrade request */
    ST_READING,     /* reading the HTTP response head */
    ST_OPEN,        /* 101 received: idle WebSocket connection */
    ST_FAILED,      /* never established */
    ST_DROPPED      /* established, then closed by the server */
};

#define RESP_MAX 2048
#define REQ_MAX 512

struct conn {
    int fd;
    enum conn_state state;
    double started;  /* monotonic seconds when connect() was called */
    uint16_t req_len, req_off;
    uint16_t resp_len;
    char *buf; /* request, then response head; freed once open */
    /* After the handshake: a tiny frame reader to answer pings. */
    uint8_t fr_hdr[14];
    uint8_t fr_hdr_len; /* header bytes collected */
    bool in_payload;
    uint64_t fr_left;   /* payload bytes left in the current frame */
    uint8_t fr_opcode;
    uint8_t ping_len;   /* bytes of ping payload collected */
    uint8_t ping_buf[125];
};

struct stats {
    long established, failed, dropped;
    long fail_connect, fail_status, fail_closed, fail_timeout, fail_other;
    long pings_answered;
    int errors_printed;
};

static struct conn *conns;
static struct stats st;
static int epfd = -1;
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { (void)sig; interrupted = 1; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: idle_conns --port P --conns N [--host 127.0.0.1] [--server-pid PID]\n"
        "                  [--hold SECONDS] [--batch B] [--timeout SECONDS] [--path /]\n"
        "  --batch    connections connecting/handshaking at once (default 500)\n"
        "  --timeout  per-connection handshake timeout in seconds (default 10)\n");
}

static long parse_long(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "idle_conns: bad value for %s: '%s'\n", name, s);
        exit(2);
    }
    return v;
}

/* VmRSS of a process in KiB, or -1. */
static long read_vmrss_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

static void raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("idle_conns: getrlimit");
        return;
    }
    if ((long)rl.rlim_cur >= want)
        return;
    struct rlimit nrl = rl;
    nrl.rlim_cur = (rlim_t)want;
    if ((long)nrl.rlim_max < want)
        nrl.rlim_max = (rlim_t)want; /* works as root (CAP_SYS_RESOURCE) */
    if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
        return;
    /* Fall back to the hard limit. */
    nrl = rl;
    nrl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
        fprintf(stderr, "idle_conns: warning: could only raise RLIMIT_NOFILE to %ld (wanted %ld)\n",
                (long)rl.rlim_max, want);
    else
        fprintf(stderr, "idle_conns: warning: RLIMIT_NOFILE stays at %ld (wanted %ld)\n",
                (long)rl.rlim_cur, want);
}

/* xorshift64* PRNG, for the Sec-WebSocket-Key and frame masks. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void base64_16(const uint8_t in[16], char out[25])
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    uint32_t v = (uint32_t)in[15] << 16;
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
    out[o] = '\0';
}

static void conn_error(struct conn *c, long idx, const char *what, int err)
{
    if (st.errors_printed < 10) {
        if (err)
            fprintf(stderr, "idle_conns: connection %ld: %s: %s\n", idx, what, strerror(err));
        else
            fprintf(stderr, "idle_conns: connection %ld: %s\n", idx, what);
        if (++st.errors_printed == 10)
            fprintf(stderr, "idle_conns: (further errors not shown)\n");
    }
    (void)c;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->buf);
    c->buf = NULL;
}

static void conn_fail(struct conn *c, long idx, long *counter, const char *what, int err)
{
    conn_error(c, idx, what, err);
    conn_close(c);
    c->state = ST_FAILED;
    st.failed++;
    (*counter)++;
}

static int set_events(struct conn *c, long idx, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)idx };
    return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static const char *g_host_hdr;
static const char *g_path = "/";

static void build_request(struct conn *c)
{
    uint8_t key[16];
    uint64_t a = rng_next(), b = rng_next();
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
    char key64[25];
    base64_16(key, key64);
    int n = snprintf(c->buf, REQ_MAX,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     g_path, g_host_hdr, key64);
    c->req_len = (uint16_t)n;
    c->req_off = 0;
}

/* Start connection idx: socket, epoll registration, non-blocking connect. */
static void conn_start(struct conn *c, long idx, const struct sockaddr_in *sa)
{
    c->started = now_s();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        conn_fail(c, idx, &st.fail_connect, "socket", errno);
        return;
    }
    c->fd = fd;
    c->buf = malloc(RESP_MAX > REQ_MAX ? RESP_MAX : REQ_MAX);
    if (!c->buf) {
        conn_fail(c, idx, &st.fail_other, "out of memory", 0);
        return;
    }
    build_request(c);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLRDHUP, .data.u64 = (uint64_t)idx };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        conn_fail(c, idx, &st.fail_other, "epoll_ctl ADD", errno);
        return;
    }
    int r;
    do {
        r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    } while (r != 0 && errno == EINTR);
    if (r != 0 && errno != EINPROGRESS) {
        conn_fail(c, idx, &st.fail_connect, "connect", errno);
        return;
    }
    c->state = ST_CONNECTING; /* EPOLLOUT fires when connected (or at once if r == 0) */
}

static void handle_handshake_io(struct conn *c, long idx, uint32_t events)
{
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            conn_fail(c, idx, &st.fail_connect, "connect", err);
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        c->state = ST_SENDING;
    }
    if (c->state == ST_SENDING) {
        while (c->req_off < c->req_len) {
            ssize_t n = send(c->fd, c->buf + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                conn_fail(c, idx, &st.fail_closed, "send request", errno);
                return;
            }
            c->req_off = (uint16_t)(c->req_off + n);
        }
        c->state = ST_READING;
        c->resp_len = 0;
        if (set_events(c, idx, EPOLLIN | EPOLLRDHUP) != 0) {
            conn_fail(c, idx, &st.fail_other, "epoll_ctl MOD", errno);
            return;
        }
        return; /* wait for EPOLLIN */
    }
    if (c->state == ST_READING) {
        for (;;) {
            if (c->resp_len >= RESP_MAX - 1) {
                conn_fail(c, idx, &st.fail_status, "response head too large", 0);
                return;
            }
            /* Read at most up to the end of the head: peek, then consume exactly. */
            ssize_t n = recv(c->fd, c->buf + c->resp_len, (size_t)(RESP_MAX - 1 - c->resp_len), MSG_PEEK);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                conn_fail(c, idx, &st.fail_closed, "recv response", errno);
                return;
            }
            if (n == 0) {
                c->buf[c->resp_len] = '\0';
                char what[160];
                snprintf(what, sizeof what, "server closed during handshake (got %u bytes: %.60s)",
                         c->resp_len, c->buf);
                conn_fail(c, idx, &st.fail_closed, what, 0);
                return;
            }
            size_t have = (size_t)c->resp_len + (size_t)n;
            c->buf[have] = '\0';
            char *end = strstr(c->buf, "\r\n\r\n");
            size_t take = end ? (size_t)(end + 4 - c->buf) - c->resp_len : (size_t)n;
            ssize_t m = recv(c->fd, c->buf + c->resp_len, take, 0);
            if (m != (ssize_t)take) {
                conn_fail(c, idx, &st.fail_other, "recv after peek", m < 0 ? errno : 0);
                return;
            }
            c->resp_len = (uint16_t)(c->resp_len + take);
            if (!end)
                continue;
            /* Status line: "HTTP/1.1 101 ..." */
            c->buf[c->resp_len] = '\0';
            char *sp = strchr(c->buf, ' ');
            if (strncmp(c->buf, "HTTP/1.1 ", 9) != 0 || !sp || strncmp(sp + 1, "101", 3) != 0 ||
                (sp[4] != ' ' && sp[4] != '\r')) {
                char what[160];
                char *eol = strstr(c->buf, "\r\n");
                int l = eol ? (int)(eol - c->buf) : 60;
                snprintf(what, sizeof what, "handshake refused: %.*s", l > 100 ? 100 : l, c->buf);
                conn_fail(c, idx, &st.fail_status, what, 0);
                return;
            }
            free(c->buf);
            c->buf = NULL;
            c->state = ST_OPEN;
            c->fr_hdr_len = 0;
            c->fr_left = 0;
            c->in_payload = false;
            st.established++;
            return;
        }
    }
}

/* Send a masked pong (client frames must be masked). Best effort. */
static void send_pong(struct conn *c)
{
    uint8_t frame[2 + 4 + 125];
    size_t n = c->ping_len;
    frame[0] = 0x8A; /* FIN | pong */
    frame[1] = (uint8_t)(0x80 | n);
    uint32_t mask = (uint32_t)rng_next();
    memcpy(frame + 2, &mask, 4);
    for (size_t i = 0; i < n; i++)
        frame[6 + i] = c->ping_buf[i] ^ frame[2 + (i & 3)];
    ssize_t r = send(c->fd, frame, 6 + n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == (ssize_t)(6 + n))
        st.pings_answered++;
}

static void conn_drop(struct conn *c, long idx, const char *why)
{
    conn_error(c, idx, why, 0);
    conn_close(c);
    c->state = ST_DROPPED;
    st.dropped++;
}

/* Data from the server on an open connection: answer pings, notice closes. */
static void handle_open_io(struct conn *c, long idx, uint32_t events)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_drop(c, idx, "connection reset by server");
            return;
        }
        if (n == 0) {
            conn_drop(c, idx, "server closed an idle connection");
            return;
        }
        for (ssize_t i = 0; i < n;) {
            if (!c->in_payload) {
                c->fr_hdr[c->fr_hdr_len++] = buf[i++];
                if (c->fr_hdr_len < 2)
                    continue;
                uint8_t len7 = c->fr_hdr[1] & 0x7F;
                size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((c->fr_hdr[1] & 0x80) ? 4 : 0);
                if (c->fr_hdr_len < need)
                    continue;
                uint64_t len = len7;
                if (len7 == 126)
                    len = (uint64_t)c->fr_hdr[2] << 8 | c->fr_hdr[3];
                else if (len7 == 127) {
                    len = 0;
                    for (int k = 0; k < 8; k++)
                        len = len << 8 | c->fr_hdr[2 + k];
                }
                c->fr_opcode = c->fr_hdr[0] & 0x0F;
                c->fr_hdr_len = 0;
                c->fr_left = len;
                c->ping_len = 0;
                c->in_payload = true;
                if (c->fr_opcode == 0x8) {
                    conn_drop(c, idx, "server sent a close frame to an idle connection");
                    return;
                }
            } else {
                size_t take = (size_t)(n - i);
                if ((uint64_t)take > c->fr_left)
                    take = (size_t)c->fr_left;
                if (c->fr_opcode == 0x9) {
                    for (size_t k = 0; k < take && c->ping_len < sizeof c->ping_buf; k++)
                        c->ping_buf[c->ping_len++] = buf[i + (ssize_t)k];
                }
                i += (ssize_t)take;
                c->fr_left -= take;
            }
            if (c->in_payload && c->fr_left == 0) {
                if (c->fr_opcode == 0x9)
                    send_pong(c);
                c->in_payload = false;
            }
        }
    }
    if (events & (EPOLLHUP | EPOLLERR)) {
        conn_drop(c, idx, "connection error/hangup");
        return;
    }
}

static void handle_event(long idx, uint32_t events)
{
    struct conn *c = &conns[idx];
    switch (c->state) {
    case ST_CONNECTING:
    case ST_SENDING:
    case ST_READING:
        handle_handshake_io(c, idx, events);
        break;
    case ST_OPEN:
        handle_open_io(c, idx, events);
        break;
    default:
        break;
    }
}

/* Poll once for up to timeout_ms; dispatch events. */
static void pump(struct epoll_event *evs, int maxev, int timeout_ms)
{
    int n = epoll_wait(epfd, evs, maxev, timeout_ms);
    if (n < 0) {
        if (errno != EINTR) {
            perror("idle_conns: epoll_wait");
            exit(2);
        }
        return;
    }
    for (int i = 0; i < n; i++)
        handle_event((long)evs[i].data.u64, evs[i].events);
}

/* Service events for `seconds`, or until interrupted. */
static void pump_for(struct epoll_event *evs, int maxev, double seconds)
{
    double end = now_s() + seconds;
    while (!interrupted) {
        double left = end - now_s();
        if (left <= 0)
            break;
        pump(evs, maxev, (int)(left * 1000) + 1);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = -1, nconns = -1, server_pid = -1, batch = 500;
    double hold = 0, timeout = 10;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "idle_conns: missing value for %s\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--port"))
            port = parse_long(a, v, 1, 65535);
        else if (!strcmp(a, "--conns"))
            nconns = parse_long(a, v, 1, 10000000);
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--server-pid"))
            server_pid = parse_long(a, v, 1, 1L << 30);
        else if (!strcmp(a, "--hold"))
            hold = (double)parse_long(a, v, 0, 86400);
        else if (!strcmp(a, "--batch"))
            batch = parse_long(a, v, 1, 100000);
        else if (!strcmp(a, "--timeout"))
            timeout = (double)parse_long(a, v, 1, 3600);
        else if (!strcmp(a, "--path"))
            g_path = v;
        else {
            fprintf(stderr, "idle_conns: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (port < 0 || nconns < 0) {
        usage(stderr);
        return 2;
    }

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "idle_conns: --host must be an IPv4 address: '%s'\n", host);
        return 2;
    }
    static char host_hdr[128];
    snprintf(host_hdr, sizeof host_hdr, "%s:%ld", host, port);
    g_host_hdr = host_hdr;

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sact;
    memset(&sact, 0, sizeof sact);
    sact.sa_handler = on_signal;
    sigaction(SIGINT, &sact, NULL);
    sigaction(SIGTERM, &sact, NULL);

    raise_nofile(nconns + 100);
    rng_state ^= (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);

    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) {
        fprintf(stderr, "idle_conns: out of memory\n");
        return 2;
    }
    for (long i = 0; i < nconns; i++)
        conns[i].fd = -1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("idle_conns: epoll_create1");
        return 2;
    }

    long rss_before = -1, rss_after = -1, rss_end = -1;
    if (server_pid > 0) {
        rss_before = read_vmrss_kib(server_pid);
        if (rss_before < 0) {
            fprintf(stderr, "idle_conns: cannot read VmRSS of pid %ld\n", server_pid);
            return 2;
        }
    }

    printf("idle_conns: %ld connections to %s:%ld, %ld in flight at a time\n",
           nconns, host, port, batch);
    fflush(stdout);

    enum { MAXEV = 1024 };
    static struct epoll_event evs[MAXEV];
    double t0 = now_s();
    long next = 0;     /* next connection to start */
    long checked = 0;  /* timeout scan position: connections before it are finished */
    for (;;) {
        if (interrupted)
            break;
        /* Count in flight and enforce the handshake timeout. */
        long in_flight = 0;
        double t = now_s();
        while (checked < next && (conns[checked].state == ST_OPEN || conns[checked].state == ST_FAILED ||
                                  conns[checked].state == ST_DROPPED))
            checked++;
        for (long i = checked; i < next; i++) {
            struct conn *c = &conns[i];
            if (c->state == ST_CONNECTING || c->state == ST_SENDING || c->state == ST_READING) {
                if (t - c->started > timeout)
                    conn_fail(c, i, &st.fail_timeout, "handshake timed out", 0);
                else
                    in_flight++;
            }
        }
        while (next < nconns && in_flight < batch) {
            conn_start(&conns[next], next, &sa);
            if (conns[next].state != ST_FAILED)
                in_flight++;
            next++;
        }
        if (next >= nconns && in_flight == 0)
            break;
        pump(evs, MAXEV, 100);
    }
    double t_conn = now_s() - t0;

    /* Let the server settle (and service any early pings). */
    pump_for(evs, MAXEV, 1.0);
    if (server_pid > 0)
        rss_after = read_vmrss_kib(server_pid);

    long est_at_measure = st.established - st.dropped;
    printf("connections established: %ld\n", st.established);
    printf("connections failed: %ld", st.failed);
    if (st.failed)
        printf(" (connect %ld, refused/bad status %ld, closed %ld, timeout %ld, other %ld)",
               st.fail_connect, st.fail_status, st.fail_closed, st.fail_timeout, st.fail_other);
    printf("\n");
    printf("time to establish: %.2f s (%.0f handshakes/s)\n", t_conn,
           t_conn > 0 ? (double)st.established / t_conn : 0.0);
    if (server_pid > 0) {
        printf("server pid %ld VmRSS before: %ld KiB\n", server_pid, rss_before);
        printf("server pid %ld VmRSS after (%ld open, 1 s settle): %ld KiB\n", server_pid,
               est_at_measure, rss_after);
        if (rss_after >= 0 && est_at_measure > 0)
            printf("bytes per idle connection: %.0f\n",
                   (double)(rss_after - rss_before) * 1024.0 / (double)est_at_measure);
        else
            printf("bytes per idle connection: n/a\n");
    } else {
        printf("bytes per idle connection: n/a (no --server-pid)\n");
    }
    fflush(stdout);

    if (hold > 0 && !interrupted) {
        printf("holding %ld connections idle for %.0f s...\n", est_at_measure, hold);
        fflush(stdout);
        pump_for(evs, MAXEV, hold);
        if (server_pid > 0) {
            rss_end = read_vmrss_kib(server_pid);
            printf("server pid %ld VmRSS after hold: %ld KiB\n", server_pid, rss_end);
        }
        printf("pings answered during hold: %ld\n", st.pings_answered);
    }
    if (st.dropped)
        printf("connections dropped by the server while idle: %ld\n", st.dropped);
    fflush(stdout);

    for (long i = 0; i < nconns; i++)
        conn_close(&conns[i]);
    close(epfd);
    free(conns);

    if (interrupted) {
        fprintf(stderr, "idle_conns: interrupted\n");
        return 1;
    }
    return (st.established >= nconns && st.dropped == 0) ? 0 : 1;
}
