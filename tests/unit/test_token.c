/* The JWT verifier (security/token.h): keys made and tokens signed here with OpenSSL, then every
 * refusal (alg none, confusion, unknown kid, size, crit, tampering, malformed encodings), every
 * claim rule with its clock edges, and the JWKS load rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "security/token.h"

#define NOW 1800000000LL
static const char SECRET[] = "0123456789abcdef0123456789abcdef-test-secret";

static EVP_PKEY *rsa1, *rsa2, *ec1, *ec2;
static char dir[64];
static char jwks_path[128], jwks1_path[128], secret_path[128]; /* r1+e1, r1 only, the secret */
static token_keyset *ks_all, *ks_jwks, *ks_one, *ks_secret;

/* ---- encoding and signing, independent of the code under test ---- */

static char *b64url(const unsigned char *p, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *out = malloc(n * 4 / 3 + 4), *o = out;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = tbl[v >> 18];
    *o++ = tbl[(v >> 12) & 63];
    *o++ = tbl[(v >> 6) & 63];
    *o++ = tbl[v & 63];
  }
  if (n - i == 1) {
    *o++ = tbl[p[i] >> 2];
    *o++ = tbl[(p[i] & 3) << 4];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
    *o++ = tbl[v >> 10];
    *o++ = tbl[(v >> 4) & 63];
    *o++ = tbl[(v & 15) << 2];
  }
  *o = '\0';
  return out;
}

static char *b64s(const char *s) { return b64url((const unsigned char *)s, strlen(s)); }

static char *bn_b64(EVP_PKEY *k, const char *param, int pad) {
  BIGNUM *bn = NULL;
  assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
  unsigned char buf[1024];
  int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
  BN_free(bn);
  return b64url(buf, (size_t)n);
}

typedef enum { SIGN_RS, SIGN_ES, SIGN_HS, SIGN_NONE } signer;

/* The signature over `input` with key (SIGN_RS/ES) or the HMAC secret (SIGN_HS), base64url. */
static char *sign(signer how, EVP_PKEY *key, const unsigned char *secret, size_t secret_len, const char *input) {
  unsigned char sig[1024];
  size_t sig_len = sizeof sig;
  if (how == SIGN_NONE) return strdup("");
  if (how == SIGN_HS) {
    unsigned int l = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)input, strlen(input), sig, &l);
    return b64url(sig, l);
  }
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
  assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)), 1);
  EVP_MD_CTX_free(md);
  if (how == SIGN_ES) { /* DER → r || s */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
    assert_non_null(es);
    unsigned char raw[64];
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    ECDSA_SIG_free(es);
    return b64url(raw, 64);
  }
  return b64url(sig, sig_len);
}

/* header.payload.signature from JSON texts. */
static char *make_token(const char *header, const char *payload, signer how, EVP_PKEY *key) {
  char *h = b64s(header), *p = b64s(payload);
  size_t n = strlen(h) + strlen(p) + 2;
  char *input = malloc(n);
  snprintf(input, n, "%s.%s", h, p);
  char *s = sign(how, key, (const unsigned char *)SECRET, strlen(SECRET), input);
  char *tok = malloc(n + strlen(s) + 1);
  sprintf(tok, "%s.%s", input, s);
  free(h);
  free(p);
  free(input);
  free(s);
  return tok;
}

/* A payload with the usual claims; extra is spliced in (",\"k\": v" or ""). */
static char *payload_with(const char *extra) {
  static char buf[16384];
  snprintf(buf, sizeof buf, "{\"sub\":\"alice\",\"exp\":%lld,\"scope\":\"infer:iris read\"%s}", NOW + 600, extra);
  return buf;
}

static const char *HDR_RS = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"r1\"}";
static const char *HDR_ES = "{\"alg\":\"ES256\",\"kid\":\"e1\"}";
static const char *HDR_HS = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* ---- fixtures ---- */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static char *rsa_jwk(EVP_PKEY *k, const char *kid, const char *extra) {
  char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
  char *out = malloc(strlen(n) + 512);
  sprintf(out, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, n, e, extra);
  free(n);
  free(e);
  return out;
}

static char *ec_jwk(EVP_PKEY *k, const char *kid, const char *extra) {
  char *x = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32), *y = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
  char *out = malloc(512);
  sprintf(out, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}", kid, x, y, extra);
  free(x);
  free(y);
  return out;
}

static int setup(void **state) {
  (void)state;
  rsa1 = EVP_RSA_gen(2048);
  rsa2 = EVP_RSA_gen(2048);
  ec1 = EVP_EC_gen("P-256");
  ec2 = EVP_EC_gen("P-256");
  if (!rsa1 || !rsa2 || !ec1 || !ec2) return -1;
  strcpy(dir, "/tmp/test_token.XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(jwks_path, sizeof jwks_path, "%s/jwks.json", dir);
  snprintf(jwks1_path, sizeof jwks1_path, "%s/one.json", dir);
  snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
  char *r = rsa_jwk(rsa1, "r1", ",\"use\":\"sig\",\"alg\":\"RS256\""), *e = ec_jwk(ec1, "e1", "");
  char *enc = rsa_jwk(rsa2, "enc-key", ",\"use\":\"enc\",\"alg\":\"RSA-OAEP\""); /* left out */
  char buf[8192];
  snprintf(buf, sizeof buf, "{\"keys\":[%s,%s,%s]}", r, enc, e);
  write_file(jwks_path, buf);
  char *r_nokid = rsa_jwk(rsa1, "r1", "");
  snprintf(buf, sizeof buf, "{\"keys\":[%s]}", r_nokid);
  write_file(jwks1_path, buf);
  free(r);
  free(e);
  free(enc);
  free(r_nokid);
  snprintf(buf, sizeof buf, "%s\n", SECRET); /* the final newline is not part of the secret */
  write_file(secret_path, buf);
  inferd_status st = token_keyset_load(jwks_path, secret_path, &ks_all);
  if (!status_is_ok(&st)) return fprintf(stderr, "%s\n", st.msg), -1;
  st = token_keyset_load(jwks_path, NULL, &ks_jwks);
  if (!status_is_ok(&st)) return -1;
  st = token_keyset_load(jwks1_path, NULL, &ks_one);
  if (!status_is_ok(&st)) return -1;
  st = token_keyset_load(NULL, secret_path, &ks_secret);
  if (!status_is_ok(&st)) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  token_keyset_free(ks_all);
  token_keyset_free(ks_jwks);
  token_keyset_free(ks_one);
  token_keyset_free(ks_secret);
  EVP_PKEY_free(rsa1);
  EVP_PKEY_free(rsa2);
  EVP_PKEY_free(ec1);
  EVP_PKEY_free(ec2);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- assertions ---- */

static principal *accept_tok(const token_keyset *ks, const token_options *o, const char *tok, int64_t now) {
  principal *p = NULL;
  inferd_status st = token_verify(ks, o, tok, now, &p);
  if (!status_is_ok(&st)) fail_msg("refused: %s", st.msg);
  assert_non_null(p);
  return p;
}

/* Refused with UNAUTHENTICATED, a reason containing `why`, no principal, and nothing of the
 * token in the reason (its segments, or the subject it claims). */
static void refuse_tok(const token_keyset *ks, const token_options *o, const char *tok, int64_t now, const char *why) {
  principal *p = (principal *)0x1;
  inferd_status st = token_verify(ks, o, tok, now, &p);
  if (st.code != INFERD_UNAUTHENTICATED) fail_msg("expected a refusal containing '%s', got code %d: %s", why, st.code, st.msg);
  assert_null(p);
  if (strstr(st.msg, why) == NULL) fail_msg("reason '%s' does not say '%s'", st.msg, why);
  assert_null(strstr(st.msg, "alice"));
  size_t n = strlen(tok);
  for (size_t i = 0; n >= 12 && i + 12 <= n; i += 6) {
    char win[13];
    memcpy(win, tok + i, 12);
    win[12] = '\0';
    if (strstr(st.msg, win)) fail_msg("reason '%s' echoes the token", st.msg);
  }
}

/* ---- valid tokens ---- */

static void test_valid_rs_es_hs(void **state) {
  (void)state;
  struct {
    const char *hdr;
    signer how;
    EVP_PKEY *key;
  } cases[] = {{HDR_RS, SIGN_RS, rsa1}, {HDR_ES, SIGN_ES, ec1}, {HDR_HS, SIGN_HS, NULL}};
  for (size_t i = 0; i < 3; i++) {
    char *tok = make_token(cases[i].hdr, payload_with(""), cases[i].how, cases[i].key);
    principal *p = accept_tok(ks_all, NULL, tok, NOW);
    assert_int_equal(p->kind, PRINCIPAL_JWT);
    assert_string_equal(p->name, "alice");
    assert_int_equal(p->n_scopes, 2);
    assert_string_equal(p->scopes[0], "infer:iris");
    assert_string_equal(p->scopes[1], "read");
    assert_int_equal(p->expires_at, NOW + 600 + TOKEN_DEFAULT_LEEWAY_S); /* when it stops being accepted */
    principal_unref(p);
    free(tok);
  }
}

/* ---- header refusals ---- */

static void test_alg_none_any_case(void **state) {
  (void)state;
  const char *algs[] = {"none", "None", "NONE", "nOnE"};
  for (size_t i = 0; i < 4; i++) {
    char hdr[64];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"}", algs[i]);
    char *tok = make_token(hdr, payload_with(""), SIGN_NONE, NULL);
    refuse_tok(ks_all, NULL, tok, NOW, "alg none");
    free(tok);
    /* with a signature attached it is still none */
    tok = make_token(hdr, payload_with(""), SIGN_HS, NULL);
    refuse_tok(ks_all, NULL, tok, NOW, "alg none");
    free(tok);
  }
}

static void test_unsupported_algs(void **state) {
  (void)state;
  const char *hdrs[] = {"{\"alg\":\"RS512\",\"kid\":\"r1\"}", "{\"alg\":\"HS384\"}", "{\"alg\":\"PS256\",\"kid\":\"r1\"}",
                        "{\"alg\":\"rs256\",\"kid\":\"r1\"}", "{\"alg\":\"EdDSA\"}"};
  for (size_t i = 0; i < 5; i++) {
    char *tok = make_token(hdrs[i], payload_with(""), SIGN_RS, rsa1);
    refuse_tok(ks_all, NULL, tok, NOW, "algorithm not supported");
    free(tok);
  }
  char *tok = make_token("{\"typ\":\"JWT\"}", payload_with(""), SIGN_HS, NULL);
  refuse_tok(ks_all, NULL, tok, NOW, "no \"alg\"");
  free(tok);
  tok = make_token("{\"alg\":256}", payload_with(""), SIGN_HS, NULL);
  refuse_tok(ks_all, NULL, tok, NOW, "no \"alg\"");
  free(tok);
}

/* The classic confusion: the RSA public key's PEM (which an attacker can fetch) as an HMAC
 * secret. A JWKS key is never an HMAC secret, whatever the kid says. */
static void test_hs_rs_confusion(void **state) {
  (void)state;
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, rsa1);
  char *pem;
  long pem_len = BIO_get_mem_data(b, &pem);
  const char *hdrs[] = {"{\"alg\":\"HS256\",\"kid\":\"r1\"}", "{\"alg\":\"HS256\"}"};
  for (size_t i = 0; i < 2; i++) {
    char *h = b64s(hdrs[i]), *p = b64s(payload_with(""));
    char input[2048];
    snprintf(input, sizeof input, "%s.%s", h, p);
    char *s = sign(SIGN_HS, NULL, (const unsigned char *)pem, (size_t)pem_len, input);
    char tok[4096];
    snprintf(tok, sizeof tok, "%s.%s", input, s);
    refuse_tok(ks_jwks, NULL, tok, NOW, "no shared secret is configured");
    refuse_tok(ks_all, NULL, tok, NOW, "signature does not verify");
    free(h);
    free(p);
    free(s);
  }
  BIO_free(b);
}

static void test_key_type_must_match_alg(void **state) {
  (void)state;
  /* RS256 naming the EC key, ES256 naming the RSA key */
  char *tok = make_token("{\"alg\":\"RS256\",\"kid\":\"e1\"}", payload_with(""), SIGN_RS, rsa1);
  refuse_tok(ks_all, NULL, tok, NOW, "does not match its key");
  free(tok);
  tok = make_token("{\"alg\":\"ES256\",\"kid\":\"r1\"}", payload_with(""), SIGN_ES, ec1);
  refuse_tok(ks_all, NULL, tok, NOW, "does not match its key");
  free(tok);
  /* RS256 or ES256 with only a secret configured */
  tok = make_token(HDR_RS, payload_with(""), SIGN_RS, rsa1);
  refuse_tok(ks_secret, NULL, tok, NOW, "no JWKS is configured");
  free(tok);
}

static void test_kid_rules(void **state) {
  (void)state;
  char *tok = make_token("{\"alg\":\"RS256\",\"kid\":\"r9\"}", payload_with(""), SIGN_RS, rsa1);
  refuse_tok(ks_all, NULL, tok, NOW, "unknown kid");
  free(tok);
  /* the encryption key is not in the set, though its kid is in the file */
  tok = make_token("{\"alg\":\"RS256\",\"kid\":\"enc-key\"}", payload_with(""), SIGN_RS, rsa2);
  refuse_tok(ks_all, NULL, tok, NOW, "unknown kid");
  free(tok);
  /* no kid: refused with two keys, the one key used with one */
  tok = make_token("{\"alg\":\"RS256\"}", payload_with(""), SIGN_RS, rsa1);
  refuse_tok(ks_all, NULL, tok, NOW, "names no kid");
  principal_unref(accept_tok(ks_one, NULL, tok, NOW));
  free(tok);
  tok = make_token("{\"alg\":\"RS256\",\"kid\":5}", payload_with(""), SIGN_RS, rsa1);
  refuse_tok(ks_all, NULL, tok, NOW, "\"kid\" is not a string");
  free(tok);
  /* HS256 ignores kid: it only ever uses the secret */
  tok = make_token("{\"alg\":\"HS256\",\"kid\":\"whatever\"}", payload_with(""), SIGN_HS, NULL);
  principal_unref(accept_tok(ks_all, NULL, tok, NOW));
  free(tok);
}

static void test_crit_refused(void **state) {
  (void)state;
  char *tok = make_token("{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"exp\"]}", payload_with(""), SIGN_RS, rsa1);
  refuse_tok(ks_all, NULL, tok, NOW, "crit");
  free(tok);
  tok = make_token("{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}", payload_with(""), SIGN_HS, NULL);
  refuse_tok(ks_all, NULL, tok, NOW, "crit");
  free(tok);
}

static void test_size_limit(void **state) {
  (void)state;
  char *tok = make_token(HDR_HS, payload_with(""), SIGN_HS, NULL);
  size_t n = strlen(tok);
  token_options o = {.max_token_bytes = n};
  principal_unref(accept_tok(ks_all, &o, tok, NOW)); /* exactly at the limit */
  o.max_token_bytes = n - 1;
  refuse_tok(ks_all, &o, tok, NOW, "too large");
  free(tok);
  /* the default limit (8192), checked before decoding: not even base64 */
  char *big = malloc(TOKEN_DEFAULT_MAX_BYTES + 2);
  memset(big, '!', TOKEN_DEFAULT_MAX_BYTES + 1);
  big[TOKEN_DEFAULT_MAX_BYTES + 1] = '\0';
  refuse_tok(ks_all, NULL, big, NOW, "too large");
  free(big);
  /* a valid token padded by a big claim */
  char extra[9000];
  snprintf(extra, sizeof extra, ",\"pad\":\"%08000d\"", 0);
  tok = make_token(HDR_HS, payload_with(extra), SIGN_HS, NULL);
  refuse_tok(ks_all, NULL, tok, NOW, "too large");
  o.max_token_bytes = 16384;
  principal_unref(accept_tok(ks_all, &o, tok, NOW));
  free(tok);
}

/* ---- signature refusals ---- */

static void test_tampered(void **state) {
  (void)state;
  signer hows[] = {SIGN_RS, SIGN_ES, SIGN_HS};
  const char *hdrs[] = {HDR_RS, HDR_ES, HDR_HS};
  EVP_PKEY *keys[] = {rsa1, ec1, NULL};
  for (size_t i = 0; i < 3; i++) {
    char *tok = make_token(hdrs[i], payload_with(""), hows[i], keys[i]);
    /* the payload swapped for one granting more, the signature kept */
    char *evil = b64s("{\"sub\":\"alice\",\"exp\":1900000000,\"scope\":\"admin infer:*\"}");
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    char forged[4096];
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - tok), tok, evil, d2);
    refuse_tok(ks_all, NULL, forged, NOW, "signature does not verify");
    /* one bit of the signature flipped (a middle character, so the encoding stays canonical) */
    char *copy = strdup(tok);
    char *sig = strrchr(copy, '.') + 1;
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    refuse_tok(ks_all, NULL, copy, NOW, "signature does not verify");
    /* signature cut */
    strcpy(copy, tok);
    copy[strlen(copy) - 4] = '\0';
    refuse_tok(ks_all, NULL, copy, NOW, "signature");
    free(copy);
    free(evil);
    free(tok);
  }
  /* an HMAC cut short (a prefix of the right MAC), and one byte longer */
  {
    char *h = b64s(HDR_HS), *p = b64s(payload_with(""));
    char input[2048], forged[4096];
    snprintf(input, sizeof input, "%s.%s", h, p);
    unsigned char mac[33] = {0};
    unsigned int l = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)input, strlen(input), mac, &l);
    size_t lens[] = {1, 16, 31, 33};
    for (size_t i = 0; i < 4; i++) {
      char *s = b64url(mac, lens[i]);
      snprintf(forged, sizeof forged, "%s.%s", input, s);
      refuse_tok(ks_all, NULL, forged, NOW, "signature does not verify");
      free(s);
    }
    free(h);
    free(p);
  }
  /* signed by another key under r1's / e1's kid */
  char *tok = make_token(HDR_RS, payload_with(""), SIGN_RS, rsa2);
  refuse_tok(ks_all, NULL, tok, NOW, "signature does not verify");
  free(tok);
  tok = make_token(HDR_ES, payload_with(""), SIGN_ES, ec2);
  refuse_tok(ks_all, NULL, tok, NOW, "signature does not verify");
  free(tok);
}

/* ES256 is exactly 64 bytes of r || s: not DER, not 63 or 65 bytes. */
static void test_es256_signature_shape(void **state) {
  (void)state;
  char *h = b64s(HDR_ES), *p = b64s(payload_with(""));
  char input[2048];
  snprintf(input, sizeof input, "%s.%s", h, p);
  unsigned char der[128];
  size_t der_len = sizeof der;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ec1), 1);
  assert_int_equal(EVP_DigestSign(md, der, &der_len, (const unsigned char *)input, strlen(input)), 1);
  EVP_MD_CTX_free(md);
  char *s = b64url(der, der_len);
  char tok[4096];
  snprintf(tok, sizeof tok, "%s.%s", input, s);
  refuse_tok(ks_all, NULL, tok, NOW, "ES256 needs 64 bytes");
  free(s);
  unsigned char raw[65] = {1};
  for (size_t n = 63; n <= 65; n += 2) {
    s = b64url(raw, n);
    snprintf(tok, sizeof tok, "%s.%s", input, s);
    refuse_tok(ks_all, NULL, tok, NOW, "ES256 needs 64 bytes");
    free(s);
  }
  /* r = s = 0 and r = s = 0xff..: 64 bytes, never valid */
  memset(raw, 0, 64);
  s = b64url(raw, 64);
  snprintf(tok, sizeof tok, "%s.%s", input, s);
  refuse_tok(ks_all, NULL, tok, NOW, "signature does not verify");
  free(s);
  memset(raw, 0xff, 64);
  s = b64url(raw, 64);
  snprintf(tok, sizeof tok, "%s.%s", input, s);
  refuse_tok(ks_all, NULL, tok, NOW, "signature does not verify");
  free(s);
  free(h);
  free(p);
}

/* ---- malformed encodings ---- */

static void test_malformed(void **state) {
  (void)state;
  char *good = make_token(HDR_HS, payload_with(""), SIGN_HS, NULL);
  principal_unref(accept_tok(ks_all, NULL, good, NOW));
  char *d1 = strchr(good, '.');
  char *d2 = strchr(d1 + 1, '.');
  char buf[4096];
  refuse_tok(ks_all, NULL, "", NOW, "empty");
  refuse_tok(ks_all, NULL, "abc", NOW, "three base64url parts");
  refuse_tok(ks_all, NULL, "a.b", NOW, "three base64url parts");
  snprintf(buf, sizeof buf, "%s.", good);
  refuse_tok(ks_all, NULL, buf, NOW, "three base64url parts");
  snprintf(buf, sizeof buf, "%s.extra", good);
  refuse_tok(ks_all, NULL, buf, NOW, "three base64url parts");
  /* an empty header, an empty payload, an empty signature */
  snprintf(buf, sizeof buf, "%s", d1);
  refuse_tok(ks_all, NULL, buf, NOW, "header");
  snprintf(buf, sizeof buf, "%.*s.%s", (int)(d1 - good), good, d2);
  refuse_tok(ks_all, NULL, buf, NOW, "signature does not verify"); /* the empty payload was not signed */
  snprintf(buf, sizeof buf, "%.*s.", (int)(d2 - good), good);
  refuse_tok(ks_all, NULL, buf, NOW, "signature is not base64url");
  /* stray characters: padding, the standard alphabet's + and /, whitespace, inside each part */
  const char *strays[] = {"=", "+", "/", " ", "\n", "%", "\x80"};
  size_t where[] = {2, (size_t)(d1 - good) + 3, (size_t)(d2 - good) + 3};
  for (size_t i = 0; i < sizeof strays / sizeof *strays; i++) {
    for (size_t w = 0; w < 3; w++) {
      snprintf(buf, sizeof buf, "%.*s%s%s", (int)where[w], good, strays[i], good + where[w]);
      refuse_tok(ks_all, NULL, buf, NOW, "");
    }
  }
  /* padding at the end of the signature: the same bytes, not the canonical spelling */
  size_t sig_len = strlen(d2 + 1);
  snprintf(buf, sizeof buf, "%s%s", good, sig_len % 4 == 3 ? "=" : "==");
  refuse_tok(ks_all, NULL, buf, NOW, "signature is not base64url");
  /* a non-canonical last character (unused bits set): 43 chars for 32 bytes leaves 2 spare bits */
  strcpy(buf, good);
  char *last = buf + strlen(buf) - 1;
  const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t v = (size_t)(strchr(alpha, *last) - alpha);
  *last = alpha[v | 1];
  refuse_tok(ks_all, NULL, buf, NOW, "signature is not base64url");
  /* a length no base64 has (4k + 1) */
  snprintf(buf, sizeof buf, "%s%s", good, sig_len % 4 == 3 ? "AA" : sig_len % 4 == 2 ? "AAA" : "A");
  refuse_tok(ks_all, NULL, buf, NOW, "signature is not base64url");
  free(good);

  /* JSON that is not an object, not JSON, or has a name twice */
  const char *bad_headers[] = {"[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"", "{\"alg\":\"HS256\",\"alg\":\"none\"}", "",
                               "{\"alg\":\"HS256\"} x"};
  for (size_t i = 0; i < sizeof bad_headers / sizeof *bad_headers; i++) {
    char *tok = make_token(bad_headers[i], payload_with(""), SIGN_HS, NULL);
    refuse_tok(ks_all, NULL, tok, NOW, "header");
    free(tok);
  }
  /* a correctly signed payload that is not an object or names a claim twice */
  const char *bad_payloads[] = {"[1]", "not json", "{\"sub\":\"alice\",\"sub\":\"admin\",\"exp\":1900000000}", "{\"a\":\"\\u0000\"}"};
  for (size_t i = 0; i < sizeof bad_payloads / sizeof *bad_payloads; i++) {
    char *tok = make_token(HDR_HS, bad_payloads[i], SIGN_HS, NULL);
    refuse_tok(ks_all, NULL, tok, NOW, "payload is not base64url-encoded JSON");
    free(tok);
  }
  refuse_tok(NULL, NULL, "a.b.c", NOW, "not configured");
}

/* ---- claims ---- */

static void expect(const token_options *o, const char *payload, int64_t now, const char *why) {
  char *tok = make_token(HDR_HS, payload, SIGN_HS, NULL);
  if (why == NULL)
    principal_unref(accept_tok(ks_all, o, tok, now));
  else
    refuse_tok(ks_all, o, tok, now, why);
  free(tok);
}

static void test_exp_edges(void **state) {
  (void)state;
  const char *p = "{\"sub\":\"alice\",\"exp\":1800000000}";
  token_options def = {0}, none = {.leeway_s = -1}, five = {.leeway_s = 5};
  expect(&def, p, NOW + 29, NULL); /* default leeway: 30 s */
  expect(&def, p, NOW + 30, "expired");
  expect(&none, p, NOW - 1, NULL);
  expect(&none, p, NOW, "expired"); /* valid only before exp */
  expect(&five, p, NOW + 4, NULL);
  expect(&five, p, NOW + 5, "expired");
  expect(NULL, p, NOW + 29, NULL);
  expect(&none, "{\"sub\":\"alice\",\"exp\":1800000000.9}", NOW - 1, NULL); /* fractional NumericDate */
  expect(&none, "{\"sub\":\"alice\",\"exp\":1800000000.9}", NOW, "expired");
  expect(&def, "{\"sub\":\"alice\",\"exp\":9223372036854775807}", NOW, NULL); /* no overflow with the leeway */
  expect(&def, "{\"sub\":\"alice\",\"exp\":1e300}", NOW, NULL);
  expect(&def, "{\"sub\":\"alice\",\"exp\":-9223372036854775807}", NOW, "expired");
  expect(&def, "{\"sub\":\"alice\",\"exp\":-1e300}", NOW, "expired");
  expect(&def, "{\"sub\":\"alice\"}", NOW, "no \"exp\"");
  /* the principal expires when the token stops being accepted: exp plus the leeway, saturated */
  struct {
    const token_options *o;
    const char *payload;
    int64_t want;
  } ex[] = {{&none, p, NOW}, {&five, p, NOW + 5}, {&def, p, NOW + 30},
            {&def, "{\"sub\":\"alice\",\"exp\":9223372036854775807}", INT64_MAX}};
  for (size_t i = 0; i < 4; i++) {
    char *tok = make_token(HDR_HS, ex[i].payload, SIGN_HS, NULL);
    principal *pr = accept_tok(ks_all, ex[i].o, tok, NOW - 1);
    assert_int_equal(pr->expires_at, ex[i].want);
    principal_unref(pr);
    free(tok);
  }
  expect(&def, "{\"sub\":\"alice\",\"exp\":\"1900000000\"}", NOW, "\"exp\" is not a number");
  expect(&def, "{\"sub\":\"alice\",\"exp\":null}", NOW, "\"exp\" is not a number");
}

static void test_nbf_edges(void **state) {
  (void)state;
  const char *p = "{\"sub\":\"alice\",\"exp\":1900000000,\"nbf\":1800000000}";
  token_options def = {0}, none = {.leeway_s = -1};
  expect(&def, p, NOW - 30, NULL);
  expect(&def, p, NOW - 31, "not yet valid");
  expect(&none, p, NOW, NULL);
  expect(&none, p, NOW - 1, "not yet valid");
  expect(&def, "{\"sub\":\"alice\",\"exp\":1900000000,\"nbf\":-9223372036854775807}", NOW, NULL);
  expect(&def, "{\"sub\":\"alice\",\"exp\":1900000000,\"nbf\":9223372036854775807}", NOW, "not yet valid");
  expect(&def, "{\"sub\":\"alice\",\"exp\":1900000000,\"nbf\":true}", NOW, "\"nbf\" is not a number");
  /* iat is not checked, whatever it says */
  expect(&def, "{\"sub\":\"alice\",\"exp\":1900000000,\"iat\":\"yesterday\"}", NOW, NULL);
}

static void test_issuer(void **state) {
  (void)state;
  token_options o = {.issuer = "https://idp.example/"};
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"iss\":\"https://idp.example/\"}", NOW, NULL);
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"iss\":\"https://idp.example\"}", NOW, "issuer");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"iss\":\"https://evil.example/\"}", NOW, "issuer");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"iss\":[\"https://idp.example/\"]}", NOW, "issuer");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000}", NOW, "no \"iss\"");
  expect(NULL, "{\"sub\":\"alice\",\"exp\":1900000000,\"iss\":\"anyone\"}", NOW, NULL); /* not configured */
}

static void test_audience(void **state) {
  (void)state;
  token_options o = {.audience = "inferd"};
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":\"inferd\"}", NOW, NULL);
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":[\"other\",\"inferd\"]}", NOW, NULL);
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":\"inferd2\"}", NOW, "audience");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":[\"other\"]}", NOW, "audience");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":[]}", NOW, "audience");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":[\"inferd\",7]}", NOW, "\"aud\" holds a value");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":{\"inferd\":1}}", NOW, "\"aud\" is not a string");
  expect(&o, "{\"sub\":\"alice\",\"exp\":1900000000}", NOW, "no \"aud\"");
  expect(NULL, "{\"sub\":\"alice\",\"exp\":1900000000,\"aud\":\"whoever\"}", NOW, NULL);
}

static void test_subject(void **state) {
  (void)state;
  expect(NULL, "{\"exp\":1900000000}", NOW, "no \"sub\"");
  expect(NULL, "{\"sub\":\"\",\"exp\":1900000000}", NOW, "\"sub\" is not a non-empty string");
  expect(NULL, "{\"sub\":42,\"exp\":1900000000}", NOW, "\"sub\" is not a non-empty string");
  expect(NULL, "{\"sub\":\"a\\nb\",\"exp\":1900000000}", NOW, "control characters");
  expect(NULL, "{\"sub\":\"svc-\u00e9t\u00e9 team\",\"exp\":1900000000}", NOW, NULL);
  char p[512], name[200];
  memset(name, 'n', 127);
  name[127] = '\0';
  snprintf(p, sizeof p, "{\"sub\":\"%s\",\"exp\":1900000000}", name);
  char *tok = make_token(HDR_HS, p, SIGN_HS, NULL);
  principal *pr = accept_tok(ks_all, NULL, tok, NOW);
  assert_string_equal(pr->name, name); /* 127 bytes: whole, never cut */
  principal_unref(pr);
  free(tok);
  name[127] = 'n';
  name[128] = '\0';
  snprintf(p, sizeof p, "{\"sub\":\"%s\",\"exp\":1900000000}", name);
  expect(NULL, p, NOW, "too long");
}

static void scopes_are(const token_options *o, const char *payload, const char *const *want, size_t n) {
  char *tok = make_token(HDR_HS, payload, SIGN_HS, NULL);
  principal *p = accept_tok(ks_all, o, tok, NOW);
  if (p->n_scopes != n) fail_msg("%s: %zu scopes, expected %zu", payload, p->n_scopes, n);
  for (size_t i = 0; i < n; i++) assert_string_equal(p->scopes[i], want[i]);
  principal_unref(p);
  free(tok);
}

static void test_scopes(void **state) {
  (void)state;
  const char *two[] = {"infer:iris", "read"};
  scopes_are(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scope\":\"infer:iris read\"}", two, 2);
  scopes_are(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scope\":\"  infer:iris   read \"}", two, 2);
  scopes_are(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scp\":[\"infer:iris\",\"read\"]}", two, 2);
  scopes_are(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scp\":\"infer:iris read\"}", two, 2);
  /* "scope" wins over "scp" */
  scopes_are(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scope\":\"infer:iris read\",\"scp\":[\"admin\"]}", two, 2);
  scopes_are(NULL, "{\"sub\":\"a\",\"exp\":1900000000}", NULL, 0);
  scopes_are(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scope\":\"\"}", NULL, 0);
  token_options perms = {.scope_claim = "permissions"};
  scopes_are(&perms, "{\"sub\":\"a\",\"exp\":1900000000,\"permissions\":[\"infer:iris\",\"read\"],\"scope\":\"admin\"}", two, 2);
  scopes_are(&perms, "{\"sub\":\"a\",\"exp\":1900000000,\"permissions\":\"infer:iris read\"}", two, 2);
  scopes_are(&perms, "{\"sub\":\"a\",\"exp\":1900000000,\"scope\":\"admin\"}", NULL, 0); /* only the configured claim */
  expect(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scope\":7}", NOW, "\"scope\" is not a string or an array");
  expect(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scp\":[\"read\",null]}", NOW, "\"scp\" holds a value that is not a string");
  expect(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scp\":[\"re ad\"]}", NOW, "control characters");
  expect(&perms, "{\"sub\":\"a\",\"exp\":1900000000,\"permissions\":{}}", NOW, "\"permissions\" is not a string");
  expect(NULL, "{\"sub\":\"a\",\"exp\":1900000000,\"scope\":\"read\\tadmin\"}", NOW, "control characters");
}

/* ---- loading ---- */

/* The JWKS {"keys": [keys]} written and loaded: NULL want means it loads, else the message
 * names the file and contains want. */
static void jwks_case(const char *keys, const char *want) {
  char path[160], text[16384];
  snprintf(path, sizeof path, "%s/case.json", dir);
  snprintf(text, sizeof text, "{\"keys\":[%s]}", keys);
  write_file(path, text);
  token_keyset *ks = NULL;
  inferd_status st = token_keyset_load(path, NULL, &ks);
  if (want == NULL) {
    if (!status_is_ok(&st)) fail_msg("refused: %s", st.msg);
    token_keyset_free(ks);
    return;
  }
  if (status_is_ok(&st)) fail_msg("loaded a JWKS that should fail with '%s'", want);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_null(ks);
  if (!strstr(st.msg, path) || !strstr(st.msg, want)) fail_msg("'%s' should name %s and say '%s'", st.msg, path, want);
}

static void test_jwks_load_rules(void **state) {
  (void)state;
  EVP_PKEY *weak = EVP_RSA_gen(1024), *p384 = EVP_EC_gen("P-384");
  char *r = rsa_jwk(rsa1, "r1", ""), *e = ec_jwk(ec1, "e1", ""), *w = rsa_jwk(weak, "weak-1", "");
  char buf[8192];
  jwks_case(r, NULL);
  jwks_case(w, "'weak-1': RSA modulus of 1024 bits");
  char *ra = rsa_jwk(rsa1, "r-512", ",\"alg\":\"RS512\"");
  jwks_case(ra, "'r-512': RSA keys are used for RS256 only");
  char *ea = ec_jwk(ec1, "e-rs", ",\"alg\":\"RS256\"");
  jwks_case(ea, "'e-rs': EC keys are used for ES256 only");
  char *x = bn_b64(p384, OSSL_PKEY_PARAM_EC_PUB_X, 48), *y = bn_b64(p384, OSSL_PKEY_PARAM_EC_PUB_Y, 48);
  snprintf(buf, sizeof buf, "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
  jwks_case(buf, "'p384': EC keys must have \"crv\": \"P-256\"");
  snprintf(buf, sizeof buf, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"long\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
  jwks_case(buf, "'long': P-256 \"x\" and \"y\" must be 32 bytes");
  free(x);
  free(y);
  /* a point off the curve: x with y = x */
  x = bn_b64(ec1, OSSL_PKEY_PARAM_EC_PUB_X, 32);
  snprintf(buf, sizeof buf, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"off\",\"x\":\"%s\",\"y\":\"%s\"}", x, x);
  jwks_case(buf, "'off': not a point on P-256");
  free(x);
  jwks_case("{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0\"}", "'hmac' is a symmetric (\"oct\") key");
  jwks_case("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"AAAA\"}", "'ed': \"kty\" must be \"RSA\" or \"EC\"");
  jwks_case("{\"kid\":\"nokty\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", "'nokty': \"kty\"");
  jwks_case("{\"kty\":\"RSA\",\"kid\":\"bad-n\",\"n\":\"not+base64\",\"e\":\"AQAB\"}", "'bad-n': \"n\" is not a base64url");
  jwks_case("{\"kty\":\"RSA\",\"kid\":\"pad-n\",\"n\":\"AQAB==\",\"e\":\"AQAB\"}", "'pad-n': \"n\" is not a base64url");
  jwks_case("{\"kty\":\"RSA\",\"kid\":\"no-e\",\"n\":\"AQAB\"}", "'no-e' has no \"e\"");
  snprintf(buf, sizeof buf, "%s", r);
  buf[strlen(buf) - 1] = '\0';
  strcat(buf, ",\"d\":\"AQAB\"}");
  jwks_case(buf, "'r1' holds private key material");
  snprintf(buf, sizeof buf, "{\"kty\":\"RSA\",\"kid\":\"priv-enc\",\"use\":\"enc\",\"key_ops\":[\"sign\"],\"d\":\"AQAB\"}");
  jwks_case(buf, "'priv-enc' holds private key material"); /* even on a key that would be left out */
  char *r_even = rsa_jwk(rsa1, "even-e", "");
  char *epos = strstr(r_even, "\"e\":\"AQAB\"");
  assert_non_null(epos);
  memcpy(epos, "\"e\":\"AQAC\"", 10); /* e = 65538: even, refused by OpenSSL's public key check */
  jwks_case(r_even, "'even-e': not a valid RSA public key");
  free(r_even);
  snprintf(buf, sizeof buf, "%s,%s", r, r);
  jwks_case(buf, "two keys have the kid 'r1'");
  char *r_nokid = rsa_jwk(rsa1, "X", ""), *k = strstr(r_nokid, "\"kid\":\"X\",");
  memmove(k, k + 10, strlen(k + 10) + 1);
  jwks_case(r_nokid, NULL); /* one key without a kid is fine */
  snprintf(buf, sizeof buf, "%s,%s", r_nokid, e);
  jwks_case(buf, "a key has no \"kid\"");
  free(r_nokid);
  snprintf(buf, sizeof buf, "{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sign\"}");
  jwks_case(buf, "'r1': \"use\" must be \"sig\" or \"enc\"");
  jwks_case("{\"kty\":\"RSA\",\"kid\":7}", "keys[0]: \"kid\" must be a string");
  jwks_case("7", "keys[0] is not an object");
  jwks_case("", "no RSA or EC P-256 signature key");
  /* only encryption keys, or keys whose key_ops lack verify: nothing to verify with */
  char *enc = rsa_jwk(rsa1, "enc", ",\"use\":\"enc\""), *ops = ec_jwk(ec1, "ops", ",\"key_ops\":[\"encrypt\"]");
  snprintf(buf, sizeof buf, "%s,%s", enc, ops);
  jwks_case(buf, "no RSA or EC P-256 signature key");
  snprintf(buf, sizeof buf, "%s,%s,%s", enc, ops, e);
  jwks_case(buf, NULL);
  free(enc);
  free(ops);

  /* not a JWKS at all */
  char path[160];
  snprintf(path, sizeof path, "%s/notjson.json", dir);
  write_file(path, "{\"keys\": [");
  token_keyset *ks = NULL;
  inferd_status st = token_keyset_load(path, NULL, &ks);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "not JSON"));
  write_file(path, "{\"kids\": []}");
  st = token_keyset_load(path, NULL, &ks);
  assert_non_null(strstr(st.msg, "no \"keys\" array"));
  st = token_keyset_load("/nonexistent/jwks.json", NULL, &ks);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "/nonexistent/jwks.json"));
  st = token_keyset_load(dir, NULL, &ks);
  assert_non_null(strstr(st.msg, "not a regular file"));
  st = token_keyset_load(NULL, NULL, &ks);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_null(ks);

  assert_int_equal(token_keyset_count(ks_all), 2); /* the enc key left out */
  assert_true(token_keyset_has_secret(ks_all));
  assert_false(token_keyset_has_secret(ks_jwks));
  free(r);
  free(e);
  free(w);
  free(ra);
  free(ea);
  EVP_PKEY_free(weak);
  EVP_PKEY_free(p384);
}

static void test_secret_load_rules(void **state) {
  (void)state;
  char path[160];
  snprintf(path, sizeof path, "%s/short", dir);
  write_file(path, "0123456789abcdef0123456789abcde\n"); /* 31 bytes and a newline */
  token_keyset *ks = NULL;
  inferd_status st = token_keyset_load(NULL, path, &ks);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  if (!strstr(st.msg, path) || !strstr(st.msg, "31 bytes")) fail_msg("%s", st.msg);
  /* the secret is the bytes before one final newline: a token signed with the newline fails */
  snprintf(path, sizeof path, "%s/crlf", dir);
  char text[128];
  snprintf(text, sizeof text, "%s\r\n", SECRET);
  write_file(path, text);
  st = token_keyset_load(NULL, path, &ks);
  assert_true(status_is_ok(&st));
  char *tok = make_token(HDR_HS, payload_with(""), SIGN_HS, NULL);
  principal_unref(accept_tok(ks, NULL, tok, NOW));
  token_keyset_free(ks);
  snprintf(text, sizeof text, "%sX", SECRET);
  write_file(path, text);
  st = token_keyset_load(NULL, path, &ks);
  assert_true(status_is_ok(&st));
  refuse_tok(ks, NULL, tok, NOW, "signature does not verify");
  token_keyset_free(ks);
  free(tok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_rs_es_hs),
      cmocka_unit_test(test_alg_none_any_case),
      cmocka_unit_test(test_unsupported_algs),
      cmocka_unit_test(test_hs_rs_confusion),
      cmocka_unit_test(test_key_type_must_match_alg),
      cmocka_unit_test(test_kid_rules),
      cmocka_unit_test(test_crit_refused),
      cmocka_unit_test(test_size_limit),
      cmocka_unit_test(test_tampered),
      cmocka_unit_test(test_es256_signature_shape),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_exp_edges),
      cmocka_unit_test(test_nbf_edges),
      cmocka_unit_test(test_issuer),
      cmocka_unit_test(test_audience),
      cmocka_unit_test(test_subject),
      cmocka_unit_test(test_scopes),
      cmocka_unit_test(test_jwks_load_rules),
      cmocka_unit_test(test_secret_load_rules),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
