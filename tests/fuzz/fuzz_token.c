/* libFuzzer harness for the JWT verifier (src/security/token.c) against a fixed key set (an RSA
 * and an EC P-256 JWKS key, an HS256 secret: fuzz_token_keys.h, from make_token_corpus.py).
 * Byte 0: bit 0 set, the rest is header.payload and the harness appends the right HS256
 * signature (so the claim rules are reached, which a mutated signature never would); bit 1, an
 * issuer and audience are required; bit 2, scopes come from "permissions"; bit 3, no leeway;
 * bit 4, a 512-byte size limit. Checks: only OK or UNAUTHENTICATED; the reason never holds 16
 * bytes of the token; a second verification decides the same; an accepted token is within the
 * size limit, three parts, its header's alg RS256/ES256/HS256, and its principal agrees with the
 * payload as decoded here: the subject, "exp" still in force, the scopes a clean list. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_token_keys.h"
#include "security/token.h"

#define CHECK(cond)                                         \
  do {                                                      \
    if (!(cond)) {                                          \
      fprintf(stderr, "check failed: %s\n", #cond);         \
      abort();                                              \
    }                                                       \
  } while (0)

#define NOW 1800000000LL

static token_keyset *keyset;

static void write_temp(char *path, const char *text) {
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char jwks[] = "/tmp/fuzz_token_jwks.XXXXXX", secret[] = "/tmp/fuzz_token_secret.XXXXXX";
  write_temp(jwks, FUZZ_TOKEN_JWKS);
  write_temp(secret, FUZZ_TOKEN_SECRET);
  inferd_status st = token_keyset_load(jwks, secret, &keyset);
  unlink(jwks);
  unlink(secret);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "fuzz_token: %s\n", st.msg);
    abort();
  }
  return 0;
}

/* A lenient base64url decoder for the oracle (the verifier's strict one is what is tested). */
static json_t *decode_segment(const char *s, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char *out = malloc(n + 1);
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = memchr(tbl, s[i], 64);
    if (p == NULL || s[i] == '\0') {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)(p - tbl);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  json_t *j = json_loadb((const char *)out, o, 0, NULL);
  free(out);
  return j;
}

static void check_accepted(const char *tok, size_t len, const token_options *o, const principal *p) {
  CHECK(len <= (o->max_token_bytes ? o->max_token_bytes : TOKEN_DEFAULT_MAX_BYTES));
  const char *d1 = memchr(tok, '.', len);
  CHECK(d1 != NULL);
  const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
  CHECK(d2 != NULL && memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) == NULL);
  json_t *hdr = decode_segment(tok, (size_t)(d1 - tok));
  json_t *pl = decode_segment(d1 + 1, (size_t)(d2 - d1 - 1));
  CHECK(hdr && pl);
  const char *alg = json_string_value(json_object_get(hdr, "alg"));
  CHECK(alg && (!strcmp(alg, "RS256") || !strcmp(alg, "ES256") || !strcmp(alg, "HS256")));
  CHECK(json_object_get(hdr, "crit") == NULL);
  CHECK(p->kind == PRINCIPAL_JWT);
  const char *sub = json_string_value(json_object_get(pl, "sub"));
  CHECK(sub && strcmp(sub, p->name) == 0 && p->name[0] != '\0');
  for (const char *c = p->name; *c; c++) CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
  int64_t leeway = o->leeway_s < 0 ? 0 : TOKEN_DEFAULT_LEEWAY_S;
  json_t *exp = json_object_get(pl, "exp");
  CHECK(json_is_number(exp));
  CHECK(json_number_value(exp) > (double)(NOW - leeway) - 1.0);
  CHECK(p->expires_at > NOW); /* exp + leeway: still in force */
  if (o->issuer) CHECK(json_is_string(json_object_get(pl, "iss")) && !strcmp(json_string_value(json_object_get(pl, "iss")), o->issuer));
  for (size_t i = 0; i < p->n_scopes; i++) {
    CHECK(p->scopes[i][0] != '\0');
    for (const char *c = p->scopes[i]; *c; c++) CHECK((unsigned char)*c > 0x20 && *c != 0x7f);
  }
  json_decref(hdr);
  json_decref(pl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  token_options o = {0};
  if (mode & 2) {
    o.issuer = "https://idp.example/";
    o.audience = "inferd";
  }
  if (mode & 4) o.scope_claim = "permissions";
  if (mode & 8) o.leeway_s = -1;
  if (mode & 16) o.max_token_bytes = 512;

  size_t n = size - 1;
  char *tok = malloc(n + 64);
  memcpy(tok, data + 1, n);
  if (mode & 1) { /* header.payload: sign it with the key set's secret */
    unsigned char mac[32];
    unsigned int l = 0;
    HMAC(EVP_sha256(), FUZZ_TOKEN_SECRET, (int)strlen(FUZZ_TOKEN_SECRET), data + 1, n, mac, &l);
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    tok[n++] = '.';
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned i = 0; i < l; i++) {
      acc = (acc << 8) | mac[i];
      bits += 8;
      while (bits >= 6) {
        bits -= 6;
        tok[n++] = tbl[(acc >> bits) & 63];
      }
    }
    if (bits) tok[n++] = tbl[(acc << (6 - bits)) & 63];
  }
  tok[n] = '\0';
  size_t len = strlen(tok); /* an embedded NUL ends the token, as it would a C string */

  principal *p = NULL;
  inferd_status st = token_verify(keyset, &o, tok, NOW, &p);
  CHECK(st.code == INFERD_OK || st.code == INFERD_UNAUTHENTICATED);
  CHECK((st.code == INFERD_OK) == (p != NULL));
  for (size_t i = 0; i + 16 <= len; i += 8) {
    char win[17];
    memcpy(win, tok + i, 16);
    win[16] = '\0';
    CHECK(strstr(st.msg, win) == NULL);
  }
  principal *p2 = NULL;
  inferd_status st2 = token_verify(keyset, &o, tok, NOW, &p2);
  CHECK(st2.code == st.code && strcmp(st.msg, st2.msg) == 0);
  if (p) {
    check_accepted(tok, len, &o, p);
    CHECK(p2 && strcmp(p->name, p2->name) == 0 && p->n_scopes == p2->n_scopes);
  }
  principal_unref(p);
  principal_unref(p2);
  free(tok);
  return 0;
}
