/* TLS engine over memory BIOs (OpenSSL 3): the server context with atomic reload, and a
 * per-connection engine that never blocks. The design notes and what the connection glue must
 * do are in tls.h. */
#include "tls.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* ---- error text ---------------------------------------------------------------------- */

/* Append the reasons queued in this thread's OpenSSL error queue (up to three, so the cause
 * and its context both show) to buf, and leave the queue empty for the next caller. */
static void append_openssl_reasons(char *buf, size_t cap, size_t used) {
  unsigned long e;
  int shown = 0;
  while ((e = ERR_get_error()) != 0) {
    if (shown++ >= 3 || used + 1 >= cap) continue;
    char one[256];
    ERR_error_string_n(e, one, sizeof one);
    int n = snprintf(buf + used, cap - used, "%s%s", shown == 1 ? ": " : "; ", one);
    if (n > 0) used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
  }
}

/* A sentence for a failed context build: printf-style text, then OpenSSL's reasons. */
static int ctx_error(char *err, size_t cap, int code, const char *fmt, ...) {
  if (err && cap) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    append_openssl_reasons(err, cap, used);
  }
  ERR_clear_error();
  return code;
}

/* ---- building one SSL_CTX ------------------------------------------------------------- */

/* The paths a context is built from; owned copies. */
typedef struct tls_paths {
  char *cert_file, *key_file, *ca_file;
  int require_client_cert;
} tls_paths;

static void paths_free(tls_paths *p) {
  free(p->cert_file);
  free(p->key_file);
  free(p->ca_file);
  memset(p, 0, sizeof *p);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int paths_copy(tls_paths *out, const struct pw_tls_options *cfg) {
  memset(out, 0, sizeof *out);
  out->cert_file = dup_or_null(cfg->cert_file);
  out->key_file = dup_or_null(cfg->key_file);
  out->ca_file = dup_or_null(cfg->ca_file);
  out->require_client_cert = cfg->require_client_cert;
  if (!out->cert_file || !out->key_file || (cfg->ca_file && !out->ca_file)) {
    paths_free(out);
    return PW_ENOMEM;
  }
  return 0;
}

static int config_check(const struct pw_tls_options *cfg, char *err, size_t cap) {
  if (!cfg || !cfg->cert_file || !*cfg->cert_file || !cfg->key_file || !*cfg->key_file)
    return ctx_error(err, cap, PW_EINVAL, "TLS needs a certificate file and a key file");
  if (cfg->require_client_cert && (!cfg->ca_file || !*cfg->ca_file))
    return ctx_error(err, cap, PW_EINVAL,
                     "require_client_cert needs ca_file (the CAs client certificates are "
                     "verified against)");
  return 0;
}

/* RFC 7301 3.2: select "http/1.1" if offered; if the client offered ALPN but not it, a fatal
 * no_application_protocol alert (see tls.h for why not carrying on without ALPN). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned int in_len, void *arg) {
  static const char ours[] = "http/1.1";
  for (unsigned int i = 0; i < in_len;) {
    unsigned int len = in[i];
    if (i + 1 + len > in_len)
      break; /* malformed list: OpenSSL checks this too, but never read past it */
    if (len == sizeof ours - 1 && memcmp(in + i + 1, ours, len) == 0) {
      *out = in + i + 1;
      *out_len = (unsigned char)len;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* An encrypted key file must fail with a message, never prompt on the terminal (OpenSSL's
 * default password callback would read /dev/tty and block the caller). */
static int no_password(char *buf, int size, int rwflag, void *u) { return 0; }

static void set_protocol_rules(SSL_CTX *sc) {
  SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION);
  SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
  /* Tickets only (see tls.h); the id context is still needed so that a session carrying a
   * verified client certificate may be resumed at all. */
  SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(sc, (const unsigned char *)"pushwire", 8);
  SSL_CTX_set_alpn_select_cb(sc, alpn_select, NULL);
  SSL_CTX_set_default_passwd_cb(sc, no_password);
}

static int load_identity(SSL_CTX *sc, const tls_paths *p, char *err, size_t cap) {
  if (SSL_CTX_use_certificate_chain_file(sc, p->cert_file) != 1)
    return ctx_error(err, cap, PW_EINVAL, "cannot load certificate chain from %s", p->cert_file);
  if (SSL_CTX_use_PrivateKey_file(sc, p->key_file, SSL_FILETYPE_PEM) != 1) {
    /* The commonest mistake (a renewed certificate beside the old key) gets its own words. */
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
      return ctx_error(err, cap, PW_EINVAL, "private key %s does not match certificate %s",
                       p->key_file, p->cert_file);
    return ctx_error(err, cap, PW_EINVAL, "cannot load private key from %s", p->key_file);
  }
  if (SSL_CTX_check_private_key(sc) != 1)
    return ctx_error(err, cap, PW_EINVAL, "private key %s does not match certificate %s",
                     p->key_file, p->cert_file);
  return 0;
}

static int load_client_ca(SSL_CTX *sc, const tls_paths *p, char *err, size_t cap) {
  if (!p->ca_file) return 0;
  if (SSL_CTX_load_verify_locations(sc, p->ca_file, NULL) != 1)
    return ctx_error(err, cap, PW_EINVAL, "cannot load client CA file %s", p->ca_file);
  /* The names sent in CertificateRequest, so a client with several certificates picks one
   * these CAs signed. */
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(p->ca_file);
  if (!names) return ctx_error(err, cap, PW_EINVAL, "no CA certificate in %s", p->ca_file);
  SSL_CTX_set_client_CA_list(sc, names);
  int mode = SSL_VERIFY_PEER | (p->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
  SSL_CTX_set_verify(sc, mode, NULL);
  return 0;
}

/* A complete SSL_CTX from the files, or NULL with *rc and err set. Never modified after. */
static SSL_CTX *build_ssl_ctx(const tls_paths *p, int *rc, char *err, size_t cap) {
  ERR_clear_error();
  SSL_CTX *sc = SSL_CTX_new(TLS_server_method());
  if (!sc) {
    *rc = ctx_error(err, cap, PW_ENOMEM, "cannot create a TLS context");
    return NULL;
  }
  set_protocol_rules(sc);
  if ((*rc = load_identity(sc, p, err, cap)) != 0 || (*rc = load_client_ca(sc, p, err, cap)) != 0) {
    SSL_CTX_free(sc);
    return NULL;
  }
  return sc;
}

/* ---- the server context: current SSL_CTX, swapped on reload --------------------------- */

struct pw__tls_ctx {
  pthread_mutex_t lock; /* guards everything below: a pointer swap or a reference taken */
  SSL_CTX *current;     /* one reference held by this holder */
  tls_paths paths;      /* what current was built from */
  unsigned generation;
};

int pw__tls_ctx_new(const struct pw_tls_options *cfg, pw__tls_ctx **out, char *err,
                    size_t err_cap) {
  if (!out) return ctx_error(err, err_cap, PW_EINVAL, "no place for the TLS context");
  *out = NULL;
  int rc = config_check(cfg, err, err_cap);
  if (rc) return rc;
  pw__tls_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx || paths_copy(&ctx->paths, cfg) != 0) {
    free(ctx);
    return ctx_error(err, err_cap, PW_ENOMEM, "out of memory");
  }
  ctx->current = build_ssl_ctx(&ctx->paths, &rc, err, err_cap);
  if (!ctx->current || pthread_mutex_init(&ctx->lock, NULL) != 0) {
    SSL_CTX_free(ctx->current);
    paths_free(&ctx->paths);
    free(ctx);
    return rc ? rc : ctx_error(err, err_cap, PW_ENOMEM, "cannot create a mutex");
  }
  ctx->generation = 1;
  *out = ctx;
  return 0;
}

int pw__tls_ctx_reload(pw__tls_ctx *ctx, const struct pw_tls_options *cfg, char *err,
                       size_t err_cap) {
  if (!ctx) return ctx_error(err, err_cap, PW_EINVAL, "no TLS context");
  tls_paths fresh;
  int rc = 0;
  if (cfg) {
    if ((rc = config_check(cfg, err, err_cap)) != 0) return rc;
    if (paths_copy(&fresh, cfg) != 0) return ctx_error(err, err_cap, PW_ENOMEM, "out of memory");
  } else {
    pthread_mutex_lock(&ctx->lock);
    rc = paths_copy(
        &fresh, &(struct pw_tls_options){.cert_file = ctx->paths.cert_file,
                                         .key_file = ctx->paths.key_file,
                                         .ca_file = ctx->paths.ca_file,
                                         .require_client_cert = ctx->paths.require_client_cert});
    pthread_mutex_unlock(&ctx->lock);
    if (rc) return ctx_error(err, err_cap, PW_ENOMEM, "out of memory");
  }
  /* The slow part (file reads, key checks) runs outside the lock: accepts go on meanwhile. */
  SSL_CTX *next = build_ssl_ctx(&fresh, &rc, err, err_cap);
  if (!next) {
    paths_free(&fresh);
    return rc;
  }
  pthread_mutex_lock(&ctx->lock);
  SSL_CTX *old = ctx->current;
  tls_paths old_paths = ctx->paths;
  ctx->current = next;
  ctx->paths = fresh;
  ctx->generation++;
  pthread_mutex_unlock(&ctx->lock);
  SSL_CTX_free(old); /* the holder's reference; connections made with it keep theirs */
  paths_free(&old_paths);
  return 0;
}

unsigned pw__tls_ctx_generation(pw__tls_ctx *ctx) {
  if (!ctx) return 0;
  pthread_mutex_lock(&ctx->lock);
  unsigned g = ctx->generation;
  pthread_mutex_unlock(&ctx->lock);
  return g;
}

void pw__tls_ctx_free(pw__tls_ctx *ctx) {
  if (!ctx) return;
  SSL_CTX_free(ctx->current);
  paths_free(&ctx->paths);
  pthread_mutex_destroy(&ctx->lock);
  free(ctx);
}

/* A reference to the current SSL_CTX, taken under the lock so a concurrent reload cannot
 * free it between the load and the increment. */
static SSL_CTX *ctx_acquire(pw__tls_ctx *ctx) {
  pthread_mutex_lock(&ctx->lock);
  SSL_CTX *sc = ctx->current;
  int ok = SSL_CTX_up_ref(sc);
  pthread_mutex_unlock(&ctx->lock);
  return ok ? sc : NULL;
}

/* ---- one connection ------------------------------------------------------------------- */

struct pw__tls_conn {
  SSL *ssl;           /* owns the two memory BIOs (SSL_set_bio) and a reference to its SSL_CTX */
  unsigned long err;  /* first OpenSSL error of the failure, 0 if none was queued */
  int failure;        /* 0 or the sticky PW__TLS_E* result */
  uint8_t fed_any;    /* some ciphertext arrived: the plain-HTTP check is done */
  uint8_t hs_done;    /* handshake complete */
  uint8_t got_eof;    /* the peer's close_notify was read */
  uint8_t sent_close; /* our close_notify is queued (or there was nothing to close) */
};

/* Record a failure once: its first OpenSSL error, the thread's queue left empty. */
static int conn_fail(pw__tls_conn *c, int result) {
  if (!c->failure) {
    c->failure = result;
    c->err = ERR_get_error();
  }
  ERR_clear_error();
  return c->failure;
}

pw__tls_conn *pw__tls_conn_new(pw__tls_ctx *ctx) {
  if (!ctx) return NULL;
  pw__tls_conn *c = calloc(1, sizeof *c);
  SSL_CTX *sc = c ? ctx_acquire(ctx) : NULL;
  if (!sc) {
    free(c);
    return NULL;
  }
  c->ssl = SSL_new(sc); /* takes its own reference */
  SSL_CTX_free(sc);
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !rbio || !wbio) {
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_bio(c->ssl, rbio, wbio);
  SSL_set_accept_state(c->ssl);
  return c;
}

void pw__tls_conn_free(pw__tls_conn *c) {
  if (!c) return;
  SSL_free(c->ssl);
  free(c);
}

/* "GET /", "POST ", "OPTIONS "...: an upper-case token then a space. No TLS record can start
 * with 'A'..'Z' (content types are 20..24; an SSLv2-style hello has the top bit set), so the
 * first byte decides; the rest only tells HTTP from other garbage. */
static int looks_like_http(const uint8_t *p, size_t n) {
  if (p[0] < 'A' || p[0] > 'Z') return 0;
  for (size_t i = 1; i < n && i < 8; i++) {
    if (p[i] == ' ') return 1;
    if (p[i] < 'A' || p[i] > 'Z') return 0;
  }
  return n < 8; /* could still be a method: decide now, the first byte already rules TLS out */
}

/* A drained memory BIO keeps its largest size forever; past PW__TLS_BIO_KEEP, swap it for an
 * empty one so one big message does not pin its size for the connection's life. */
static BIO *fresh_bio_if_big(BIO *bio) {
  BUF_MEM *bm = NULL;
  if (BIO_ctrl_pending(bio) != 0 || BIO_get_mem_ptr(bio, &bm) != 1 || !bm ||
      bm->max <= PW__TLS_BIO_KEEP)
    return NULL;
  return BIO_new(BIO_s_mem()); /* NULL (no memory) just keeps the old one */
}

static int advance_handshake(pw__tls_conn *c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->hs_done = 1;
    return 0;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0; /* waiting for the client: no timer here, the glue's handshake timeout rules */
  return conn_fail(c, PW__TLS_EHANDSHAKE);
}

int pw__tls_conn_feed(pw__tls_conn *c, const void *cipher, size_t n) {
  if (!c || (!cipher && n)) return PW_EINVAL;
  if (c->failure) return c->failure;
  if (n == 0) return 0;
  if (!c->fed_any) {
    c->fed_any = 1;
    if (looks_like_http(cipher, n)) return c->failure = PW__TLS_EPLAIN;
  }
  BIO *rbio = SSL_get_rbio(c->ssl);
  for (const char *p = cipher; n > 0;) {
    int chunk = n > INT_MAX ? INT_MAX : (int)n;
    if (BIO_write(rbio, p, chunk) != chunk)
      return conn_fail(c, PW_ENOMEM); /* sticky: part of the stream would be missing */
    p += chunk;
    n -= (size_t)chunk;
  }
  return c->hs_done ? 0 : advance_handshake(c);
}

long pw__tls_conn_read(pw__tls_conn *c, uint8_t *buf, size_t cap) {
  if (!c || (!buf && cap)) return PW_EINVAL;
  if (c->failure) return c->failure;
  if (c->got_eof) return PW__TLS_EOF;
  if (!c->hs_done) return 0;
  size_t got = 0;
  while (got < cap && got < LONG_MAX - PW__TLS_RECORD_MAX) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(c->ssl, buf + got, cap - got, &n)) {
      got += n;
      continue;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_ZERO_RETURN) c->got_eof = 1;
    else if (e != SSL_ERROR_WANT_READ)
      conn_fail(c, PW__TLS_EPROTO); /* reported now, or after the bytes read before it */
    break;
  }
  BIO *fresh = fresh_bio_if_big(SSL_get_rbio(c->ssl));
  if (fresh) SSL_set0_rbio(c->ssl, fresh);
  if (got > 0) return (long)got;
  return c->failure ? c->failure : c->got_eof ? PW__TLS_EOF : 0;
}

static int write_ok(const pw__tls_conn *c) { return c->hs_done && !c->sent_close; }

static int seal(pw__tls_conn *c, const void *plain, size_t n) {
  size_t written = 0;
  ERR_clear_error();
  if (SSL_write_ex(c->ssl, plain, n, &written) == 1 && written == n) return 0;
  return conn_fail(c, PW__TLS_EPROTO); /* a memory BIO never says "retry": out of memory */
}

int pw__tls_conn_write(pw__tls_conn *c, const void *plain, size_t n) {
  if (!c || (!plain && n)) return PW_EINVAL;
  if (c->failure) return c->failure;
  if (!write_ok(c)) return PW_ESTATE;
  return n ? seal(c, plain, n) : 0;
}

/* Pack the batch into records: small pieces are copied into one record-sized stage, a long
 * piece at a record boundary is encrypted where it lies (whole records only; its tail joins
 * the stage). */
int pw__tls_conn_writev(pw__tls_conn *c, const struct iovec *iov, size_t iovcnt) {
  if (!c || (!iov && iovcnt)) return PW_EINVAL;
  if (c->failure) return c->failure;
  if (!write_ok(c)) return PW_ESTATE;
  uint8_t stage[PW__TLS_RECORD_MAX];
  size_t staged = 0;
  int rc = 0;
  for (size_t i = 0; i < iovcnt && rc == 0; i++) {
    const uint8_t *p = iov[i].iov_base;
    size_t left = iov[i].iov_len;
    if (!p && left) return PW_EINVAL;
    while (left > 0 && rc == 0) {
      if (staged == 0 && left >= PW__TLS_RECORD_MAX) {
        size_t whole = left - left % PW__TLS_RECORD_MAX;
        rc = seal(c, p, whole);
        p += whole, left -= whole;
        continue;
      }
      size_t take = PW__TLS_RECORD_MAX - staged < left ? PW__TLS_RECORD_MAX - staged : left;
      memcpy(stage + staged, p, take);
      staged += take, p += take, left -= take;
      if (staged == PW__TLS_RECORD_MAX) {
        rc = seal(c, stage, staged);
        staged = 0;
      }
    }
  }
  if (rc == 0 && staged > 0) rc = seal(c, stage, staged);
  return rc;
}

size_t pw__tls_conn_out(pw__tls_conn *c, const uint8_t **p) {
  char *data = NULL;
  long n = c ? BIO_get_mem_data(SSL_get_wbio(c->ssl), &data) : 0;
  if (p) *p = (const uint8_t *)data;
  return n > 0 ? (size_t)n : 0;
}

/* Skip n sent bytes without copying them (BIO_seek moves the read position of a memory BIO);
 * reading them into a scratch buffer is the fallback should seeking be refused. */
static void skip_output(BIO *wbio, size_t n) {
  long pos = BIO_tell(wbio);
  if (pos >= 0 && n <= (size_t)(LONG_MAX - pos) && BIO_seek(wbio, pos + (long)n) >= 0) return;
  uint8_t scratch[4096];
  while (n > 0) {
    int r = BIO_read(wbio, scratch, n < sizeof scratch ? (int)n : (int)sizeof scratch);
    if (r <= 0) break;
    n -= (size_t)r;
  }
}

void pw__tls_conn_out_consume(pw__tls_conn *c, size_t n) {
  if (!c || n == 0) return;
  size_t pending = pw__tls_conn_out(c, NULL);
  BIO *wbio = SSL_get_wbio(c->ssl);
  skip_output(wbio, n < pending ? n : pending);
  ERR_clear_error();
  BIO *fresh = fresh_bio_if_big(wbio);
  if (fresh) SSL_set0_wbio(c->ssl, fresh);
}

int pw__tls_conn_shutdown(pw__tls_conn *c) {
  if (!c) return PW_EINVAL;
  if (c->failure || c->sent_close) return 0;
  c->sent_close = 1;
  if (!c->hs_done)
    return 0; /* nothing to protect yet: SSL_shutdown would only complain "in init" */
  ERR_clear_error();
  SSL_shutdown(c->ssl); /* queues close_notify; we never wait for the peer's */
  ERR_clear_error();
  return 0;
}

pw__tls_state pw__tls_conn_state(const pw__tls_conn *c) {
  if (!c || c->failure) return PW__TLS_FAILED;
  if (c->got_eof || c->sent_close) return PW__TLS_CLOSED;
  return c->hs_done ? PW__TLS_OPEN : PW__TLS_HANDSHAKING;
}

const char *pw__tls_conn_alpn(const pw__tls_conn *c) {
  const unsigned char *p = NULL;
  unsigned int n = 0;
  if (c) SSL_get0_alpn_selected(c->ssl, &p, &n);
  return n == 8 && memcmp(p, "http/1.1", 8) == 0 ? "http/1.1" : NULL;
}

int pw__tls_conn_resumed(const pw__tls_conn *c) {
  return c && c->hs_done && SSL_session_reused(c->ssl) == 1;
}

const char *pw__tls_conn_version(const pw__tls_conn *c) {
  return c && c->hs_done ? SSL_get_version(c->ssl) : "";
}

size_t pw__tls_conn_peer_subject(const pw__tls_conn *c, char *buf, size_t cap) {
  X509 *peer = c && c->hs_done ? SSL_get0_peer_certificate(c->ssl) : NULL;
  BIO *mem = peer ? BIO_new(BIO_s_mem()) : NULL;
  size_t len = 0;
  if (mem && X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
    char *data = NULL;
    long n = BIO_get_mem_data(mem, &data);
    if (n > 0 && cap > 0) {
      len = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
      memcpy(buf, data, len);
    }
  }
  if (cap > 0) buf[len] = '\0';
  BIO_free(mem);
  ERR_clear_error();
  return len;
}

/* Why the handshake or a record failed, in words: a certificate verification result says
 * more than the generic "certificate verify failed". */
static const char *failure_reason(const pw__tls_conn *c, char *tmp, size_t cap) {
  long v = SSL_get_verify_result(c->ssl);
  const char *reason = c->err ? ERR_reason_error_string(c->err) : NULL;
  if (v != X509_V_OK && c->failure == PW__TLS_EHANDSHAKE) {
    snprintf(tmp, cap, "%s (%s)", reason ? reason : "certificate verify failed",
             X509_verify_cert_error_string(v));
    return tmp;
  }
  if (reason) return reason;
  if (c->err) {
    ERR_error_string_n(c->err, tmp, cap);
    return tmp;
  }
  return "no reason given by OpenSSL";
}

const char *pw__tls_conn_strerror(const pw__tls_conn *c, char *buf, size_t cap) {
  if (!buf || cap == 0) return "";
  char tmp[256];
  int f = c ? c->failure : 0;
  if (f == PW_ENOMEM) snprintf(buf, cap, "TLS: out of memory");
  else if (f == PW__TLS_EPLAIN)
    snprintf(buf, cap,
             "plain HTTP request on the TLS port (the client must use https:// or "
             "wss://)");
  else if (f == PW__TLS_EHANDSHAKE || f == PW__TLS_EPROTO)
    snprintf(buf, cap, "%s: %s", f == PW__TLS_EHANDSHAKE ? "TLS handshake failed" : "TLS error",
             failure_reason(c, tmp, sizeof tmp));
  else snprintf(buf, cap, "no error");
  return buf;
}
