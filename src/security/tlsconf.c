/* security/tlsconf: TLS server contexts from PEM files, swapped on reload (tlsconf.h). */
#include "security/tlsconf.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Certificate and key files are small; a bigger one is a mistake (a wrong path, a log). */
#define PEM_MAX_BYTES (1024 * 1024)

/* TLS 1.2's suites: forward secret AEAD only (the Mozilla "intermediate" list). TLS 1.3's
 * three default suites are all fine as they are. */
static const char TLS12_CIPHERS[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct tlsconf {
  tlsconf_options opts; /* the paths, owned */
  pthread_mutex_t mu;   /* guards what follows; held only to copy a pointer or the PEM texts */
  SSL_CTX *ctx;         /* the current context; each SSL holds its own reference */
  char *cert_pem, *key_pem, *ca_pem;
  uint64_t generation;
};

static inferd_status read_file(const char *what, const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return status_make(INFERD_INVALID_ARGUMENT, "%s %s: cannot open: %s", what, path, strerror(errno));
  char *buf = malloc(PEM_MAX_BYTES + 1);
  if (buf == NULL) {
    fclose(f);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  size_t n = fread(buf, 1, PEM_MAX_BYTES + 1, f);
  bool err = ferror(f);
  fclose(f);
  if (err || n > PEM_MAX_BYTES) {
    free(buf);
    return status_make(INFERD_INVALID_ARGUMENT, "%s %s: %s", what, path, err ? "cannot read it" : "larger than 1 MiB");
  }
  buf[n] = '\0';
  *out = buf;
  return status_ok();
}

/* OpenSSL's reason for the last failure, for a message that names the file; clears the queue
 * (it is per thread and would otherwise grow). */
static const char *ssl_reason(char *buf, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(buf, cap, "%s", r ? r : "not valid PEM");
  ERR_clear_error();
  return buf;
}

/* ALPN: HTTP/1.1 is what the port speaks; a client that offers only other protocols (h2 alone)
 * is told so in the handshake rather than sent bytes it cannot read. No ALPN at all is fine. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char h11[] = "\x08http/1.1";
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static inferd_status load_certs(const tlsconf_options *o, SSL_CTX *ctx, const char *cert_pem, const char *key_pem,
                                const char *ca_pem) {
  char why[160];
  BIO *b = BIO_new_mem_buf(cert_pem, -1);
  if (b == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  X509 *leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
  inferd_status st = status_ok();
  if (leaf == NULL)
    st = status_make(INFERD_INVALID_ARGUMENT, "--tls-cert %s: no certificate in it (%s)", o->cert_file, ssl_reason(why, sizeof why));
  else if (SSL_CTX_use_certificate(ctx, leaf) != 1)
    st = status_make(INFERD_INVALID_ARGUMENT, "--tls-cert %s: %s", o->cert_file, ssl_reason(why, sizeof why));
  X509_free(leaf);
  /* the rest of the file: the chain sent after the leaf */
  X509 *extra;
  while (status_is_ok(&st) && (extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      st = status_make(INFERD_INVALID_ARGUMENT, "--tls-cert %s: a chain certificate: %s", o->cert_file, ssl_reason(why, sizeof why));
    }
  ERR_clear_error(); /* the end of the file reads as an error */
  BIO_free(b);
  if (!status_is_ok(&st)) return st;

  b = BIO_new_mem_buf(key_pem, -1);
  if (b == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  if (key == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "--tls-key %s: no unencrypted private key in it (%s)", o->key_file,
                       ssl_reason(why, sizeof why));
  int ok = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1)
    return status_make(INFERD_INVALID_ARGUMENT, "--tls-key %s does not match the certificate in --tls-cert %s (%s)", o->key_file,
                       o->cert_file, ssl_reason(why, sizeof why));

  if (ca_pem == NULL) return status_ok();
  b = BIO_new_mem_buf(ca_pem, -1);
  if (b == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  int n = 0;
  X509 *ca;
  while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    /* trusted for verification, and named in the CertificateRequest so a client with several
     * certificates picks the right one */
    if (X509_STORE_add_cert(store, ca) != 1 || SSL_CTX_add_client_CA(ctx, ca) != 1) {
      X509_free(ca);
      BIO_free(b);
      return status_make(INFERD_INVALID_ARGUMENT, "--tls-client-ca %s: %s", o->client_ca_file, ssl_reason(why, sizeof why));
    }
    X509_free(ca);
    n++;
  }
  ERR_clear_error();
  BIO_free(b);
  if (n == 0) return status_make(INFERD_INVALID_ARGUMENT, "--tls-client-ca %s: no certificate in it", o->client_ca_file);
  return status_ok();
}

static inferd_status build_ctx(const tlsconf_options *o, const char *cert_pem, const char *key_pem, const char *ca_pem,
                               SSL_CTX **out) {
  *out = NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    ERR_clear_error();
    return status_make(INFERD_INTERNAL, "cannot create a TLS context");
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
  /* no renegotiation (a client could make the server redo the expensive part at will) */
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  /* conn.c writes from an evbuffer that may move between attempts, in pieces; and an idle
   * keep-alive connection should not hold two 16 KiB record buffers */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  /* read what the socket has in one read(), not a record header and then its body */
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
  /* sessions resume only within this server, and across a reload only with the same context */
  static const unsigned char sid[] = "inferd";
  SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
  inferd_status st = load_certs(o, ctx, cert_pem, key_pem, ca_pem);
  if (status_is_ok(&st) && ca_pem) {
    int mode = SSL_VERIFY_PEER;
    if (o->client_auth == TLSCONF_CLIENT_REQUIRED) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT); /* a server certificate is no client's */
  }
  if (!status_is_ok(&st)) {
    SSL_CTX_free(ctx);
    return st;
  }
  *out = ctx;
  return status_ok();
}

/* Reads the files and builds a context from them; nothing of t changes on failure. */
static inferd_status load(tlsconf *t) {
  const tlsconf_options *o = &t->opts;
  char *cert = NULL, *key = NULL, *ca = NULL;
  SSL_CTX *ctx = NULL;
  inferd_status st = read_file("--tls-cert", o->cert_file, &cert);
  if (status_is_ok(&st)) st = read_file("--tls-key", o->key_file, &key);
  if (status_is_ok(&st) && o->client_ca_file) st = read_file("--tls-client-ca", o->client_ca_file, &ca);
  if (status_is_ok(&st)) st = build_ctx(o, cert, key, ca, &ctx);
  if (!status_is_ok(&st)) {
    free(cert);
    if (key) OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(ca);
    return st;
  }
  pthread_mutex_lock(&t->mu);
  SSL_CTX *old = t->ctx;
  char *old_cert = t->cert_pem, *old_key = t->key_pem, *old_ca = t->ca_pem;
  t->ctx = ctx;
  t->cert_pem = cert;
  t->key_pem = key;
  t->ca_pem = ca;
  t->generation++;
  pthread_mutex_unlock(&t->mu);
  SSL_CTX_free(old); /* only our reference: connections made from it hold their own */
  free(old_cert);
  if (old_key) OPENSSL_cleanse(old_key, strlen(old_key));
  free(old_key);
  free(old_ca);
  return status_ok();
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

inferd_status tlsconf_create(const tlsconf_options *o, tlsconf **out) {
  *out = NULL;
  if (o->cert_file == NULL || o->key_file == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "TLS needs both --tls-cert and --tls-key");
  tlsconf *t = calloc(1, sizeof *t);
  if (t == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  pthread_mutex_init(&t->mu, NULL);
  t->opts.cert_file = strdup(o->cert_file);
  t->opts.key_file = strdup(o->key_file);
  t->opts.client_ca_file = dup_or_null(o->client_ca_file);
  t->opts.client_auth = o->client_ca_file ? o->client_auth : TLSCONF_CLIENT_NONE;
  inferd_status st = status_ok();
  if (!t->opts.cert_file || !t->opts.key_file || (o->client_ca_file && !t->opts.client_ca_file))
    st = status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st)) st = load(t);
  if (!status_is_ok(&st)) {
    tlsconf_destroy(t);
    return st;
  }
  *out = t;
  return st;
}

inferd_status tlsconf_reload(tlsconf *t) { return load(t); }

void tlsconf_destroy(tlsconf *t) {
  if (t == NULL) return;
  SSL_CTX_free(t->ctx);
  free(t->cert_pem);
  if (t->key_pem) OPENSSL_cleanse(t->key_pem, strlen(t->key_pem));
  free(t->key_pem);
  free(t->ca_pem);
  free((char *)t->opts.cert_file);
  free((char *)t->opts.key_file);
  free((char *)t->opts.client_ca_file);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

tlsconf_client_auth tlsconf_client_mode(const tlsconf *t) { return t->opts.client_auth; }

SSL *tlsconf_new_ssl(tlsconf *t, int fd) {
  pthread_mutex_lock(&t->mu);
  SSL_CTX *ctx = t->ctx;
  SSL_CTX_up_ref(ctx);
  pthread_mutex_unlock(&t->mu);
  SSL *ssl = SSL_new(ctx); /* takes its own reference */
  SSL_CTX_free(ctx);
  if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

char *tlsconf_peer_subject(SSL *ssl) {
  if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER)) return NULL;
  X509 *peer = SSL_get0_peer_certificate(ssl);
  if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK) return NULL;
  BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL) return NULL;
  char *out = NULL;
  /* the flags gRPC core uses for its x509_subject, so both protocols name a client alike */
  if (X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
    char *p;
    long n = BIO_get_mem_data(b, &p);
    out = malloc((size_t)n + 1);
    if (out) {
      memcpy(out, p, (size_t)n);
      out[n] = '\0';
    }
  }
  BIO_free(b);
  ERR_clear_error();
  return out;
}

uint64_t tlsconf_generation(tlsconf *t) {
  pthread_mutex_lock(&t->mu);
  uint64_t g = t->generation;
  pthread_mutex_unlock(&t->mu);
  return g;
}

bool tlsconf_pem(tlsconf *t, uint64_t *generation, char **cert_chain, char **key, char **client_ca) {
  pthread_mutex_lock(&t->mu);
  *generation = t->generation;
  *cert_chain = strdup(t->cert_pem);
  *key = strdup(t->key_pem);
  *client_ca = dup_or_null(t->ca_pem);
  pthread_mutex_unlock(&t->mu);
  if (*cert_chain && *key && (*client_ca || t->opts.client_ca_file == NULL)) return true;
  tlsconf_pem_free(*cert_chain, *key, *client_ca);
  return false;
}

void tlsconf_pem_free(char *cert_chain, char *key, char *client_ca) {
  free(cert_chain);
  if (key) OPENSSL_cleanse(key, strlen(key));
  free(key);
  free(client_ca);
}
