/* TLS engine costs (src/tls.c), in memory so only CPU is measured: server CPU per handshake
 * (full and resumed, ECDSA P-256 and RSA 2048 certificates made at run time with `openssl
 * req`), encryption throughput for 64 B and 16 KiB records and for 64 B messages packed by
 * writev, decryption of 16 KiB records, and the heap an idle TLS connection keeps.
 * Usage: tls_bench [--quick]. CPU times are the calling thread's (CLOCK_THREAD_CPUTIME_ID)
 * spent inside the engine's calls only; the client's work is not counted. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

/* ---- counting OpenSSL's heap (for the idle-connection figure) ---------------------------- */

static long heap_live;
static void *count_malloc(size_t n, const char *f, int l) {
  void *p = malloc(n);
  if (p) heap_live += (long)malloc_usable_size(p);
  return p;
}
static void *count_realloc(void *old, size_t n, const char *f, int l) {
  long before = old ? (long)malloc_usable_size(old) : 0;
  void *p = realloc(old, n);
  if (p) heap_live += (long)malloc_usable_size(p) - before;
  else if (n == 0) heap_live -= before;
  return p;
}
static void count_free(void *p, const char *f, int l) {
  if (p) heap_live -= (long)malloc_usable_size(p);
  free(p);
}

/* ---- timing: only the server engine's calls are charged ---------------------------------- */

static double server_ns; /* CPU ns spent in engine calls since the last reset */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}
#define CHARGE(expr)              \
  do {                            \
    double t0_ = cpu_now();       \
    expr;                         \
    server_ns += cpu_now() - t0_; \
  } while (0)

static void die(const char *what) {
  fprintf(stderr, "tls_bench: %s\n", what);
  exit(1);
}

/* ---- a client in memory ------------------------------------------------------------------ */

static SSL_CTX *client_ctx(int max_version, const char *suites) {
  SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
  if (max_version) SSL_CTX_set_max_proto_version(cc, max_version);
  if (suites) SSL_CTX_set_ciphersuites(cc, suites);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(cc, alpn, sizeof alpn - 1);
  return cc; /* no verification: the tests do that; here only cost counts */
}

static SSL *client_new(SSL_CTX *cc, SSL_SESSION *sess) {
  SSL *s = SSL_new(cc);
  SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_connect_state(s);
  SSL_set_tlsext_host_name(s, "localhost");
  if (sess) SSL_set_session(s, sess);
  return s;
}

/* Client ciphertext into the server, decrypted plaintext dropped. */
static void to_server(SSL *cli, pw__tls_conn *srv) {
  static uint8_t buf[1 << 16], plain[1 << 16];
  BIO *w = SSL_get_wbio(cli);
  int n;
  while ((n = BIO_read(w, buf, sizeof buf)) > 0) {
    int rc;
    CHARGE(rc = pw__tls_conn_feed(srv, buf, (size_t)n));
    if (rc < 0) die("server engine failed");
    long r;
    do CHARGE(r = pw__tls_conn_read(srv, plain, sizeof plain));
    while (r > 0);
  }
}

static void to_client(pw__tls_conn *srv, SSL *cli) {
  const uint8_t *p;
  size_t n;
  for (;;) {
    CHARGE(n = pw__tls_conn_out(srv, &p));
    if (!n) break;
    BIO_write(SSL_get_rbio(cli), p, (int)n);
    CHARGE(pw__tls_conn_out_consume(srv, n));
  }
}

static void handshake(SSL *cli, pw__tls_conn *srv) {
  for (int i = 0; i < 20; i++) {
    int done = SSL_do_handshake(cli) == 1;
    to_server(cli, srv);
    to_client(srv, cli);
    if (done && pw__tls_conn_state(srv) == PW__TLS_OPEN) {
      uint8_t b;
      size_t n;
      SSL_read_ex(cli, &b, 1, &n); /* takes the tickets */
      ERR_clear_error();
      return;
    }
  }
  die("handshake did not complete");
}

/* ---- handshakes -------------------------------------------------------------------------- */

/* Server CPU per handshake, full and resumed, in microseconds. */
static void bench_handshakes(pw__tls_ctx *ctx, const char *label, int max_version, int n) {
  SSL_CTX *cc = client_ctx(max_version, NULL);
  double full = 0, resumed = 0;
  int reused = 0;
  for (int i = 0; i < n; i++) {
    SSL *cli = client_new(cc, NULL);
    server_ns = 0;
    pw__tls_conn *srv;
    CHARGE(srv = pw__tls_conn_new(ctx));
    handshake(cli, srv);
    CHARGE(pw__tls_conn_free(srv));
    full += server_ns;
    SSL_SESSION *sess = SSL_get1_session(cli);
    SSL_shutdown(cli);
    SSL_free(cli);

    cli = client_new(cc, sess);
    server_ns = 0;
    CHARGE(srv = pw__tls_conn_new(ctx));
    handshake(cli, srv);
    reused += pw__tls_conn_resumed(srv);
    CHARGE(pw__tls_conn_free(srv));
    resumed += server_ns;
    SSL_SESSION_free(sess);
    SSL_shutdown(cli);
    SSL_free(cli);
  }
  printf("%-12s %-7s full %6.1f us (%5.0f/s per core)  resumed %6.1f us (%6.0f/s) [%d/%d]\n", label,
         max_version == TLS1_2_VERSION ? "TLS1.2" : "TLS1.3", full / n / 1e3, 1e9 * n / full,
         resumed / n / 1e3, 1e9 * n / resumed, reused, n);
  SSL_CTX_free(cc);
}

/* ---- bulk data --------------------------------------------------------------------------- */

typedef struct conn_pair {
  SSL *cli;
  pw__tls_conn *srv;
} conn_pair;

static conn_pair open_pair(pw__tls_ctx *ctx, const char *suites) {
  SSL_CTX *cc = client_ctx(0, suites);
  conn_pair cp = {client_new(cc, NULL), pw__tls_conn_new(ctx)};
  SSL_CTX_free(cc);
  handshake(cp.cli, cp.srv);
  return cp;
}

/* Encrypt `total` plaintext bytes as messages of `size` (one write, one record each), or
 * packed `batch` messages per writev; the output is taken as the glue would (out+consume). */
static void bench_encrypt(pw__tls_ctx *ctx, const char *suites, size_t size, size_t batch,
                          size_t total) {
  conn_pair cp = open_pair(ctx, suites);
  static uint8_t msg[1 << 14];
  struct iovec iov[256];
  for (size_t i = 0; i < batch && i < 256; i++) iov[i] = (struct iovec){msg, size};
  size_t wire = 0, msgs = total / size;
  const uint8_t *p;
  double t0 = cpu_now(); /* only the engine runs in this loop: no per-call clock reads */
  for (size_t done = 0; done < msgs;) {
    size_t k = batch ? batch : 1;
    int rc = batch ? pw__tls_conn_writev(cp.srv, iov, k) : pw__tls_conn_write(cp.srv, msg, size);
    if (rc) die("write failed");
    done += k;
    size_t n = pw__tls_conn_out(cp.srv, &p);
    pw__tls_conn_out_consume(cp.srv, n);
    wire += n;
  }
  server_ns = cpu_now() - t0;
  double s = server_ns / 1e9;
  printf("encrypt %-22s %6zu B msgs%s: %8.1f MB/s plaintext, %6.2f M msgs/s, %5.0f ns/msg, "
         "wire +%.1f%%\n",
         SSL_get_cipher_name(cp.cli), size, batch ? " (writev x256)" : "        ", total / s / 1e6,
         msgs / s / 1e6, server_ns / msgs, 100.0 * (wire - total) / total);
  SSL_free(cp.cli);
  pw__tls_conn_free(cp.srv);
}

/* Decrypt `total` bytes the client sent as 16 KiB records. */
static void bench_decrypt(pw__tls_ctx *ctx, const char *suites, size_t total) {
  conn_pair cp = open_pair(ctx, suites);
  static uint8_t msg[1 << 14];
  size_t written;
  server_ns = 0;
  for (size_t done = 0; done < total; done += sizeof msg) {
    SSL_write_ex(cp.cli, msg, sizeof msg, &written);
    if ((done / sizeof msg) % 4 == 3) to_server(cp.cli, cp.srv);
  }
  to_server(cp.cli, cp.srv);
  printf("decrypt %-22s  16384 B records        : %8.1f MB/s plaintext\n",
         SSL_get_cipher_name(cp.cli), total / (server_ns / 1e9) / 1e6);
  SSL_free(cp.cli);
  pw__tls_conn_free(cp.srv);
}

/* ---- idle memory ------------------------------------------------------------------------- */

static void bench_idle_memory(pw__tls_ctx *ctx, const char *label, int n) {
  pw__tls_conn **conns = calloc((size_t)n, sizeof *conns);
  SSL_CTX *cc = client_ctx(0, NULL);
  long before = heap_live;
  for (int i = 0; i < n; i++) {
    SSL *cli = client_new(cc, NULL);
    conns[i] = pw__tls_conn_new(ctx);
    handshake(cli, conns[i]);
    SSL_free(cli); /* clients gone: what is left is the servers' */
  }
  long idle = heap_live - before;
  for (int i = 0; i < n; i++) pw__tls_conn_free(conns[i]);
  printf("idle TLS connection (%s): %ld B of OpenSSL heap each (%d connections, after the "
         "handshake, tickets sent)\n",
         label, idle / n, n);
  SSL_CTX_free(cc);
  free(conns);
}

/* ---- certificates ------------------------------------------------------------------------ */

static char dir[64];

static void make_cert(const char *name, const char *newkey) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey %s -nodes -days 2 -subj /CN=localhost "
           "-addext subjectAltName=DNS:localhost -keyout %s/%s.key -out %s/%s.pem 2>/dev/null",
           newkey, dir, name, dir, name);
  if (system(cmd) != 0) die("openssl req failed (is the openssl tool installed? scripts/deps)");
}

static pw__tls_ctx *ctx_for(const char *name) {
  char cert[128], key[128], err[512];
  snprintf(cert, sizeof cert, "%s/%s.pem", dir, name);
  snprintf(key, sizeof key, "%s/%s.key", dir, name);
  struct pw_tls_options cfg = {.cert_file = cert, .key_file = key};
  pw__tls_ctx *ctx = NULL;
  if (pw__tls_ctx_new(&cfg, &ctx, err, sizeof err) != 0) die(err);
  return ctx;
}

/* The heap figure runs in a child: the counting allocator it needs would slow the timings. */
static void idle_memory_in_child(int n) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free))
      die("CRYPTO_set_mem_functions refused");
    pw__tls_ctx *ec = ctx_for("ec");
    bench_idle_memory(ec, "ECDSA P-256", n);
    pw__tls_ctx_free(ec);
    fflush(stdout);
    _exit(0);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
    die("the memory child failed");
}

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  snprintf(dir, sizeof dir, "/tmp/pw-tls-bench-XXXXXX");
  if (!mkdtemp(dir)) die("mkdtemp failed");
  make_cert("ec", "ec -pkeyopt ec_paramgen_curve:P-256");
  make_cert("rsa", "rsa:2048");
  idle_memory_in_child(quick ? 100 : 1000);
  pw__tls_ctx *ec = ctx_for("ec"), *rsa = ctx_for("rsa");
  printf("%s, server CPU only (client work not counted)\n", OpenSSL_version(OPENSSL_VERSION));

  int hs = quick ? 50 : 500;
  bench_handshakes(ec, "ECDSA P-256", 0, hs);
  bench_handshakes(ec, "ECDSA P-256", TLS1_2_VERSION, hs);
  bench_handshakes(rsa, "RSA 2048", 0, hs);
  bench_handshakes(rsa, "RSA 2048", TLS1_2_VERSION, hs);

  size_t total = quick ? (16u << 20) : (256u << 20);
  const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                          "TLS_CHACHA20_POLY1305_SHA256"};
  for (int i = 0; i < 3; i++) {
    bench_encrypt(ec, suites[i], 64, 0, total / 16);
    bench_encrypt(ec, suites[i], 64, 256, total / 4);
    bench_encrypt(ec, suites[i], 16384, 0, total);
    bench_decrypt(ec, suites[i], total);
  }

  pw__tls_ctx_free(ec);
  pw__tls_ctx_free(rsa);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return 0;
}
