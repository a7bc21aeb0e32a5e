/* security/token: JSON Web Token verification (RS256, ES256, HS256) against a JWKS file and/or a
 * shared secret, and the claims → principal mapping. OpenSSL 3 does every signature check;
 * jansson parses the header, the payload and the JWKS. */
#include "security/token.h"
#include "util/ct.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A JWKS of a few keys is a few KB; a secret file is a few dozen bytes. Anything far bigger is
 * the wrong file, and reading it whole would only cost memory. */
#define TOKEN_JWKS_MAX_BYTES (1024 * 1024)
#define TOKEN_SECRET_MAX_BYTES (64 * 1024)
#define TOKEN_SECRET_MIN_BYTES 32 /* RFC 7518 3.2: an HS256 key at least as long as the hash */
#define TOKEN_JWKS_MAX_KEYS 64
#define TOKEN_KID_MAX 256
#define TOKEN_RSA_MIN_BITS 2048
#define TOKEN_RSA_MAX_BITS 8192 /* a bigger modulus only makes each verification slower */
#define TOKEN_MAX_SCOPES 256
#define TOKEN_SCOPE_MAX_BYTES 256

typedef enum { TOKEN_KEY_RSA, TOKEN_KEY_EC } token_key_type;

typedef struct token_key {
  char *kid;           /* owned; NULL when the JWK has none */
  token_key_type type; /* RSA verifies RS256 only, EC (P-256) ES256 only */
  EVP_PKEY *pkey;      /* owned */
} token_key;

struct token_keyset {
  token_key *keys; /* owned, n_keys of them: the JWKS keys usable for signatures */
  size_t n_keys;
  unsigned char *secret; /* owned; NULL when no secret file was given */
  size_t secret_len;
};

/* ---- base64url (RFC 7515 section 2: no padding) ---- */

static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Decodes s[0..len) strictly: only the 64 URL-safe characters, no padding, no length that
 * leaves a lone character, and the unused low bits of the last character zero (so each byte
 * string has exactly one encoding). *out (malloc'd, one spare NUL byte) and *out_len on success. */
static bool b64url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len) {
  if (len % 4 == 1) return false;
  size_t n = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
  unsigned char *buf = malloc(n + 1);
  if (buf == NULL) return false;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64url_value((unsigned char)s[i]);
    if (v < 0) {
      free(buf);
      return false;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) { /* non-zero leftover bits: a second spelling of the same bytes */
    free(buf);
    return false;
  }
  buf[o] = '\0';
  *out = buf;
  *out_len = o;
  return true;
}

/* ---- loading ---- */

/* Reads a whole regular file of at most max bytes into *out (malloc'd). */
static inferd_status token_read_file(const char *what, const char *path, size_t max, unsigned char **out, size_t *out_len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return status_make(INFERD_INVALID_ARGUMENT, "%s %s: %s", what, path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return status_make(INFERD_INVALID_ARGUMENT, "%s %s: not a regular file", what, path);
  }
  if ((unsigned long long)st.st_size > max) {
    fclose(f);
    return status_make(INFERD_INVALID_ARGUMENT, "%s %s: larger than %zu bytes", what, path, max);
  }
  unsigned char *buf = malloc(max + 1);
  if (buf == NULL) {
    fclose(f);
    return status_make(INFERD_INTERNAL, "out of memory reading %s", path);
  }
  /* read up to max + 1 so a file that grew since fstat is still caught */
  size_t n = fread(buf, 1, max + 1, f);
  bool err = ferror(f);
  fclose(f);
  if (err) {
    free(buf);
    return status_make(INFERD_INVALID_ARGUMENT, "%s %s: read error", what, path);
  }
  if (n > max) {
    free(buf);
    return status_make(INFERD_INVALID_ARGUMENT, "%s %s: larger than %zu bytes", what, path, max);
  }
  *out = buf;
  *out_len = n;
  return status_ok();
}

static void token_key_clear(token_key *k) {
  free(k->kid);
  EVP_PKEY_free(k->pkey);
}

/* A JWK member that must be a strict base64url string; *out NULL when absent. */
static inferd_status jwk_b64_member(const json_t *jwk, const char *name, const char *path, const char *kid, bool required,
                                    unsigned char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  json_t *v = json_object_get(jwk, name);
  if (v == NULL) {
    if (!required) return status_ok();
    return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s' has no \"%s\"", path, kid, name);
  }
  if (!json_is_string(v) || json_string_length(v) == 0 ||
      !b64url_decode(json_string_value(v), json_string_length(v), out, out_len))
    return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': \"%s\" is not a base64url string", path, kid, name);
  return status_ok();
}

/* Makes an EVP_PKEY from OSSL_PARAMs (RSA n/e, or an EC group and public point) and checks it
 * is a sound public key: OpenSSL refuses an EC point off the curve, an even RSA exponent. */
static EVP_PKEY *token_pkey_fromdata(const char *type, OSSL_PARAM *params) {
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  EVP_PKEY *pkey = NULL;
  if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
    EVP_PKEY_CTX_free(ctx);
    return NULL;
  }
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
  int ok = check != NULL && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!ok) {
    EVP_PKEY_free(pkey);
    return NULL;
  }
  return pkey;
}

static inferd_status jwk_rsa(const json_t *jwk, const char *path, const char *kid, EVP_PKEY **out) {
  unsigned char *n = NULL, *e = NULL;
  size_t n_len, e_len;
  inferd_status st = jwk_b64_member(jwk, "n", path, kid, true, &n, &n_len);
  if (status_is_ok(&st)) st = jwk_b64_member(jwk, "e", path, kid, true, &e, &e_len);
  if (!status_is_ok(&st)) {
    free(n);
    free(e);
    return st;
  }
  size_t nz = 0;
  while (nz < n_len && n[nz] == 0) nz++; /* some issuers keep a leading zero byte */
  size_t bits = (n_len - nz) * 8;
  if (nz < n_len) {
    for (unsigned char top = n[nz]; !(top & 0x80); top <<= 1) bits--;
  }
  if (bits < TOKEN_RSA_MIN_BITS || bits > TOKEN_RSA_MAX_BITS || e_len == 0 || e_len > 8) {
    free(n);
    free(e);
    if (e_len == 0 || e_len > 8)
      return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': RSA exponent \"e\" of %zu bytes is not usable", path, kid, e_len);
    return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': RSA modulus of %zu bits (from %d to %d are accepted)", path,
                       kid, bits, TOKEN_RSA_MIN_BITS, TOKEN_RSA_MAX_BITS);
  }
  BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL), *bn_e = BN_bin2bn(e, (int)e_len, NULL);
  free(n);
  free(e);
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
    params = OSSL_PARAM_BLD_to_param(bld);
  *out = params ? token_pkey_fromdata("RSA", params) : NULL;
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  if (*out == NULL) return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': not a valid RSA public key", path, kid);
  return status_ok();
}

static inferd_status jwk_ec(const json_t *jwk, const char *path, const char *kid, EVP_PKEY **out) {
  json_t *crv = json_object_get(jwk, "crv");
  if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0)
    return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': EC keys must have \"crv\": \"P-256\" (ES256)", path, kid);
  unsigned char *x = NULL, *y = NULL;
  size_t x_len, y_len;
  inferd_status st = jwk_b64_member(jwk, "x", path, kid, true, &x, &x_len);
  if (status_is_ok(&st)) st = jwk_b64_member(jwk, "y", path, kid, true, &y, &y_len);
  if (status_is_ok(&st) && (x_len != 32 || y_len != 32))
    st = status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': P-256 \"x\" and \"y\" must be 32 bytes each", path, kid);
  if (!status_is_ok(&st)) {
    free(x);
    free(y);
    return st;
  }
  unsigned char point[65]; /* SEC 1 uncompressed: 0x04 || x || y */
  point[0] = 0x04;
  memcpy(point + 1, x, 32);
  memcpy(point + 33, y, 32);
  free(x);
  free(y);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
      OSSL_PARAM_construct_end(),
  };
  *out = token_pkey_fromdata("EC", params);
  if (*out == NULL) return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': not a point on P-256", path, kid);
  return status_ok();
}

/* Whether the JWK is meant for something other than verifying signatures ("use": "enc", or
 * "key_ops" without "verify"): such keys are left out of the set, not refused, since identity
 * providers (Keycloak, for one) publish their encryption keys in the same document. */
static inferd_status jwk_not_for_signatures(const json_t *jwk, const char *path, const char *kid, bool *skip) {
  *skip = false;
  json_t *use = json_object_get(jwk, "use");
  if (use != NULL) {
    if (json_is_string(use) && strcmp(json_string_value(use), "enc") == 0) {
      *skip = true;
      return status_ok();
    }
    if (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)
      return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': \"use\" must be \"sig\" or \"enc\"", path, kid);
  }
  json_t *ops = json_object_get(jwk, "key_ops");
  if (ops != NULL) {
    if (!json_is_array(ops)) return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': \"key_ops\" is not an array", path, kid);
    bool verify = false;
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
      if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0) verify = true;
    }
    if (!verify) *skip = true;
  }
  return status_ok();
}

/* One JWK into k, or *skip when it is not a signature key. */
static inferd_status jwk_load(const json_t *jwk, size_t index, const char *path, token_key *k, bool *skip) {
  char label[TOKEN_KID_MAX + 32];
  *skip = false;
  if (!json_is_object(jwk)) return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: keys[%zu] is not an object", path, index);
  json_t *kid = json_object_get(jwk, "kid");
  if (kid != NULL && (!json_is_string(kid) || json_string_length(kid) == 0 || json_string_length(kid) > TOKEN_KID_MAX))
    return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: keys[%zu]: \"kid\" must be a string of 1 to %d bytes", path, index,
                       TOKEN_KID_MAX);
  if (kid != NULL)
    snprintf(label, sizeof label, "%s", json_string_value(kid));
  else
    snprintf(label, sizeof label, "keys[%zu] (no kid)", index);
  /* a private key in the file is a leak whatever the key is for: refused before anything else */
  if (json_object_get(jwk, "d") != NULL)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "JWKS %s: key '%s' holds private key material (\"d\"): publish only the public key", path, label);
  TRY(jwk_not_for_signatures(jwk, path, label, skip));
  if (*skip) return status_ok();
  json_t *kty = json_object_get(jwk, "kty");
  json_t *alg = json_object_get(jwk, "alg");
  if (alg != NULL && !json_is_string(alg))
    return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': \"alg\" is not a string", path, label);
  const char *alg_s = alg ? json_string_value(alg) : NULL;
  const char *kty_s = json_is_string(kty) ? json_string_value(kty) : "";
  if (strcmp(kty_s, "RSA") == 0) {
    if (alg_s && strcmp(alg_s, "RS256") != 0)
      return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': RSA keys are used for RS256 only, not \"%s\"", path, label, alg_s);
    k->type = TOKEN_KEY_RSA;
    TRY(jwk_rsa(jwk, path, label, &k->pkey));
  } else if (strcmp(kty_s, "EC") == 0) {
    if (alg_s && strcmp(alg_s, "ES256") != 0)
      return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': EC keys are used for ES256 only, not \"%s\"", path, label, alg_s);
    k->type = TOKEN_KEY_EC;
    TRY(jwk_ec(jwk, path, label, &k->pkey));
  } else if (strcmp(kty_s, "oct") == 0) {
    return status_make(INFERD_INVALID_ARGUMENT,
                       "JWKS %s: key '%s' is a symmetric (\"oct\") key: give the HS256 secret with --jwt-secret-file", path, label);
  } else {
    return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: key '%s': \"kty\" must be \"RSA\" or \"EC\"", path, label);
  }
  if (kid != NULL && (k->kid = strdup(json_string_value(kid))) == NULL) {
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
    return status_make(INFERD_INTERNAL, "out of memory loading %s", path);
  }
  return status_ok();
}

static inferd_status token_jwks_load(token_keyset *ks, const char *path) {
  unsigned char *text;
  size_t len;
  TRY(token_read_file("JWKS", path, TOKEN_JWKS_MAX_BYTES, &text, &len));
  json_error_t jerr;
  json_t *doc = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (doc == NULL) return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: not JSON (line %d: %s)", path, jerr.line, jerr.text);
  json_t *keys = json_object_get(doc, "keys");
  inferd_status st = status_ok();
  if (!json_is_array(keys)) {
    st = status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: no \"keys\" array", path);
  } else if (json_array_size(keys) > TOKEN_JWKS_MAX_KEYS) {
    st = status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: %zu keys (at most %d)", path, json_array_size(keys), TOKEN_JWKS_MAX_KEYS);
  } else if ((ks->keys = calloc(json_array_size(keys) + 1, sizeof *ks->keys)) == NULL) {
    st = status_make(INFERD_INTERNAL, "out of memory loading %s", path);
  }
  for (size_t i = 0; status_is_ok(&st) && i < json_array_size(keys); i++) {
    bool skip;
    token_key *k = &ks->keys[ks->n_keys];
    st = jwk_load(json_array_get(keys, i), i, path, k, &skip);
    if (status_is_ok(&st) && !skip) ks->n_keys++;
  }
  json_decref(doc);
  TRY(st);
  if (ks->n_keys == 0) return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: no RSA or EC P-256 signature key", path);
  /* A token picks its key by kid; with several keys a key without one, or two with the same
   * one, could never be chosen unambiguously. */
  for (size_t i = 0; i < ks->n_keys && ks->n_keys > 1; i++) {
    if (ks->keys[i].kid == NULL)
      return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: a key has no \"kid\" (every key needs one when there are several)", path);
    for (size_t j = 0; j < i; j++) {
      if (strcmp(ks->keys[i].kid, ks->keys[j].kid) == 0)
        return status_make(INFERD_INVALID_ARGUMENT, "JWKS %s: two keys have the kid '%s'", path, ks->keys[i].kid);
    }
  }
  return status_ok();
}

static inferd_status token_secret_load(token_keyset *ks, const char *path) {
  unsigned char *text;
  size_t len;
  TRY(token_read_file("JWT secret file", path, TOKEN_SECRET_MAX_BYTES, &text, &len));
  /* editors add a final newline; the secret is what comes before it */
  if (len > 0 && text[len - 1] == '\n') len--;
  if (len > 0 && text[len - 1] == '\r') len--;
  if (len < TOKEN_SECRET_MIN_BYTES) {
    OPENSSL_cleanse(text, len);
    free(text);
    return status_make(INFERD_INVALID_ARGUMENT, "JWT secret file %s: %zu bytes, HS256 needs a secret of at least %d", path, len,
                       TOKEN_SECRET_MIN_BYTES);
  }
  ks->secret = text;
  ks->secret_len = len;
  return status_ok();
}

inferd_status token_keyset_load(const char *jwks_path, const char *secret_path, token_keyset **out) {
  *out = NULL;
  if (jwks_path == NULL && secret_path == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "JWT verification needs a JWKS file or a secret file");
  token_keyset *ks = calloc(1, sizeof *ks);
  if (ks == NULL) return status_make(INFERD_INTERNAL, "out of memory loading the JWT keys");
  inferd_status st = status_ok();
  if (jwks_path != NULL) st = token_jwks_load(ks, jwks_path);
  if (status_is_ok(&st) && secret_path != NULL) st = token_secret_load(ks, secret_path);
  if (!status_is_ok(&st)) {
    token_keyset_free(ks);
    return st;
  }
  *out = ks;
  return status_ok();
}

void token_keyset_free(token_keyset *ks) {
  if (ks == NULL) return;
  for (size_t i = 0; i < ks->n_keys; i++) token_key_clear(&ks->keys[i]);
  free(ks->keys);
  if (ks->secret) OPENSSL_cleanse(ks->secret, ks->secret_len);
  free(ks->secret);
  free(ks);
}

size_t token_keyset_count(const token_keyset *ks) { return ks ? ks->n_keys : 0; }
bool token_keyset_has_secret(const token_keyset *ks) { return ks && ks->secret != NULL; }

/* ---- verification ---- */

static inferd_status refuse(const char *fmt, const char *arg) {
  return status_make(INFERD_UNAUTHENTICATED, fmt, arg);
}
#define REFUSE(msg) status_make(INFERD_UNAUTHENTICATED, "%s", msg)

typedef enum { ALG_RS256, ALG_ES256, ALG_HS256 } token_alg;

/* Parses a base64url JSON object segment; NULL when any step fails. */
static json_t *segment_json(const char *s, size_t len) {
  unsigned char *raw;
  size_t raw_len;
  if (len == 0 || !b64url_decode(s, len, &raw, &raw_len)) return NULL;
  /* duplicate names are refused: two "sub"s, or two "alg"s, would let two readers of one
   * token see different claims */
  json_t *j = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
  free(raw);
  if (j != NULL && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static bool ascii_ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = *a, y = *b;
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    if (x != y) return false;
  }
  return *a == *b;
}

static inferd_status header_check(const json_t *hdr, token_alg *alg, const char **kid) {
  json_t *a = json_object_get(hdr, "alg");
  if (!json_is_string(a)) return REFUSE("malformed JWT: the header has no \"alg\"");
  const char *s = json_string_value(a);
  /* "none" in any spelling: an unsigned token is never accepted */
  if (ascii_ieq(s, "none")) return REFUSE("JWT alg none is refused: tokens must be signed");
  if (strcmp(s, "RS256") == 0)
    *alg = ALG_RS256;
  else if (strcmp(s, "ES256") == 0)
    *alg = ALG_ES256;
  else if (strcmp(s, "HS256") == 0)
    *alg = ALG_HS256;
  else
    return REFUSE("JWT algorithm not supported (RS256, ES256 and HS256 are)");
  /* RFC 7515 4.1.11: a recipient must refuse a token with critical extensions it does not
   * understand, and we understand none (b64: false among them) */
  if (json_object_get(hdr, "crit") != NULL) return REFUSE("JWT \"crit\" header is not supported");
  json_t *k = json_object_get(hdr, "kid");
  if (k != NULL && !json_is_string(k)) return REFUSE("malformed JWT: \"kid\" is not a string");
  *kid = k ? json_string_value(k) : NULL;
  return status_ok();
}

static const char *key_type_name(token_key_type t) { return t == TOKEN_KEY_RSA ? "an RSA key" : "an EC key"; }

/* The JWKS key a RS256/ES256 token is checked with. The key is chosen by kid alone and then
 * must be of the algorithm's type: an RS256 token never reaches an EC key, nor the reverse,
 * and a JWKS key is never an HMAC secret (HS256 uses only the configured secret). A token
 * without a kid is accepted only when the set holds exactly one key: with several, guessing
 * would mean trying each, which costs a signature check per key and hides rotation mistakes. */
static inferd_status select_key(const token_keyset *ks, token_alg alg, const char *kid, const token_key **out) {
  if (ks->n_keys == 0) return REFUSE("JWT signed with RS256/ES256 but no JWKS is configured");
  const token_key *k = NULL;
  if (kid != NULL) {
    for (size_t i = 0; i < ks->n_keys && k == NULL; i++) {
      if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0) k = &ks->keys[i];
    }
    if (k == NULL) return REFUSE("JWT kid is not in the JWKS (unknown kid)");
  } else {
    if (ks->n_keys > 1) return REFUSE("JWT names no kid and the JWKS holds several keys");
    k = &ks->keys[0];
  }
  token_key_type want = alg == ALG_RS256 ? TOKEN_KEY_RSA : TOKEN_KEY_EC;
  if (k->type != want)
    return refuse("JWT algorithm does not match its key: %s is not used for that algorithm", key_type_name(k->type));
  *out = k;
  return status_ok();
}

/* ES256's signature is r || s, 32 bytes each (RFC 7518 3.4); OpenSSL verifies DER. */
static unsigned char *es256_to_der(const unsigned char *sig, int *der_len) {
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
  unsigned char *der = NULL;
  if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return NULL;
  }
  *der_len = i2d_ECDSA_SIG(es, &der);
  ECDSA_SIG_free(es);
  if (*der_len <= 0) return NULL;
  return der;
}

static bool verify_pkey(EVP_PKEY *pkey, const unsigned char *sig, size_t sig_len, const char *input, size_t input_len) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  bool ok = md != NULL && EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
            EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

static inferd_status verify_signature(const token_keyset *ks, token_alg alg, const char *kid, const unsigned char *sig,
                                      size_t sig_len, const char *input, size_t input_len) {
  if (alg == ALG_HS256) {
    if (ks->secret == NULL) return REFUSE("JWT signed with HS256 but no shared secret is configured");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), ks->secret, (int)ks->secret_len, (const unsigned char *)input, input_len, mac, &mac_len) == NULL)
      return status_make(INFERD_INTERNAL, "HMAC failed");
    bool ok = sig_len == mac_len && ct_equal(mac, sig, mac_len);
    OPENSSL_cleanse(mac, sizeof mac);
    return ok ? status_ok() : REFUSE("JWT signature does not verify");
  }
  const token_key *k = NULL;
  TRY(select_key(ks, alg, kid, &k));
  if (alg == ALG_ES256) {
    if (sig_len != 64) return REFUSE("JWT signature does not verify (ES256 needs 64 bytes)");
    int der_len;
    unsigned char *der = es256_to_der(sig, &der_len);
    if (der == NULL) return status_make(INFERD_INTERNAL, "ES256 signature conversion failed");
    bool ok = verify_pkey(k->pkey, der, (size_t)der_len, input, input_len);
    OPENSSL_free(der);
    return ok ? status_ok() : REFUSE("JWT signature does not verify");
  }
  if (sig_len != (size_t)EVP_PKEY_get_size(k->pkey)) return REFUSE("JWT signature does not verify (wrong length for the key)");
  return verify_pkey(k->pkey, sig, sig_len, input, input_len) ? status_ok() : REFUSE("JWT signature does not verify");
}

/* A NumericDate claim (RFC 7519 2: seconds, possibly fractional) as whole seconds, saturated
 * to the int64 range. -1 absent, -2 not a number, 0 found. */
static int numeric_date(const json_t *payload, const char *name, int64_t *out) {
  json_t *v = json_object_get(payload, name);
  if (v == NULL) return -1;
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return 0;
  }
  if (!json_is_real(v)) return -2;
  double d = json_real_value(v);
  if (isnan(d)) return -2;
  if (d >= 9.2e18)
    *out = INT64_MAX;
  else if (d <= -9.2e18)
    *out = INT64_MIN;
  else
    *out = (int64_t)floor(d);
  return 0;
}

static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

static inferd_status check_times(const json_t *payload, int64_t now, int64_t leeway, int64_t *exp) {
  int r = numeric_date(payload, "exp", exp);
  if (r == -1) return REFUSE("JWT has no \"exp\" (tokens without an expiry are refused)");
  if (r == -2) return REFUSE("malformed JWT: \"exp\" is not a number");
  /* RFC 7519 4.1.4: valid while now is before exp; the leeway absorbs clock skew */
  if (now >= sat_add(*exp, leeway)) return REFUSE("JWT expired");
  int64_t nbf;
  r = numeric_date(payload, "nbf", &nbf);
  if (r == -2) return REFUSE("malformed JWT: \"nbf\" is not a number");
  if (r == 0 && now < sat_add(nbf, -leeway)) return REFUSE("JWT not yet valid (nbf is in the future)");
  return status_ok();
}

static inferd_status check_issuer_audience(const json_t *payload, const token_options *o) {
  if (o->issuer != NULL) {
    json_t *iss = json_object_get(payload, "iss");
    if (iss == NULL) return REFUSE("JWT has no \"iss\" (an issuer is required)");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), o->issuer) != 0) return REFUSE("JWT issuer (iss) is not the one expected");
  }
  if (o->audience != NULL) {
    json_t *aud = json_object_get(payload, "aud");
    if (aud == NULL) return REFUSE("JWT has no \"aud\" (an audience is required)");
    bool found = false;
    if (json_is_string(aud)) {
      found = strcmp(json_string_value(aud), o->audience) == 0;
    } else if (json_is_array(aud)) {
      size_t i;
      json_t *a;
      json_array_foreach(aud, i, a) {
        if (!json_is_string(a)) return REFUSE("malformed JWT: \"aud\" holds a value that is not a string");
        if (strcmp(json_string_value(a), o->audience) == 0) found = true;
      }
    } else {
      return REFUSE("malformed JWT: \"aud\" is not a string or an array of strings");
    }
    if (!found) return REFUSE("JWT audience (aud) does not include this server");
  }
  return status_ok();
}

/* Printable ASCII, or any UTF-8 beyond it (jansson has checked it is valid): no control
 * characters, so a name or scope can go in a log line or a header safely. */
static bool text_ok(const char *s, size_t len, bool allow_space) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || (!allow_space && c == ' ')) return false;
  }
  return true;
}

static inferd_status add_scope(principal *p, const char *s, size_t len) {
  if (len == 0) return status_ok();
  if (len > TOKEN_SCOPE_MAX_BYTES || !text_ok(s, len, false)) return REFUSE("malformed JWT: a scope is too long or holds spaces or control characters");
  if (p->n_scopes >= TOKEN_MAX_SCOPES) return REFUSE("malformed JWT: too many scopes");
  char buf[TOKEN_SCOPE_MAX_BYTES + 1];
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (principal_add_scope(p, buf) != 0) return status_make(INFERD_INTERNAL, "out of memory");
  return status_ok();
}

/* A scope claim: a space-separated string (OAuth 2.0's "scope", also Azure AD's "scp") or an
 * array of strings (Okta's "scp"). */
static inferd_status scopes_from(principal *p, const json_t *v, const char *claim) {
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len) return refuse("malformed JWT: \"%s\" holds a NUL", claim);
    for (size_t i = 0; i < len;) {
      size_t j = i;
      while (j < len && s[j] != ' ') j++;
      TRY(add_scope(p, s + i, j - i));
      i = j + 1;
    }
    return status_ok();
  }
  if (json_is_array(v)) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e))
        return refuse("malformed JWT: \"%s\" holds a value that is not a string", claim);
      TRY(add_scope(p, json_string_value(e), json_string_length(e)));
    }
    return status_ok();
  }
  return refuse("malformed JWT: \"%s\" is not a string or an array of strings", claim);
}

static inferd_status claims_to_principal(const json_t *payload, const token_options *o, int64_t expires_at, principal **out) {
  json_t *sub = json_object_get(payload, "sub");
  if (sub == NULL) return REFUSE("JWT has no \"sub\" (the subject names the caller)");
  if (!json_is_string(sub) || json_string_length(sub) == 0) return REFUSE("malformed JWT: \"sub\" is not a non-empty string");
  size_t sub_len = json_string_length(sub);
  if (sub_len >= PRINCIPAL_NAME_MAX) return REFUSE("JWT \"sub\" is too long (at most 127 bytes)");
  if (strlen(json_string_value(sub)) != sub_len || !text_ok(json_string_value(sub), sub_len, true))
    return REFUSE("malformed JWT: \"sub\" holds control characters");
  principal *p = principal_create(PRINCIPAL_JWT, json_string_value(sub));
  if (p == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  p->expires_at = expires_at;
  inferd_status st = status_ok();
  if (o->scope_claim != NULL) {
    json_t *v = json_object_get(payload, o->scope_claim);
    if (v != NULL) st = scopes_from(p, v, o->scope_claim);
  } else {
    json_t *v = json_object_get(payload, "scope");
    const char *name = "scope";
    if (v == NULL) {
      v = json_object_get(payload, "scp");
      name = "scp";
    }
    if (v != NULL) st = scopes_from(p, v, name);
  }
  if (!status_is_ok(&st)) {
    principal_unref(p);
    return st;
  }
  *out = p;
  return status_ok();
}

inferd_status token_verify(const token_keyset *ks, const token_options *o, const char *token, int64_t now, principal **out) {
  *out = NULL;
  static const token_options defaults = {0};
  if (o == NULL) o = &defaults;
  if (ks == NULL) return REFUSE("JWT verification is not configured");
  size_t max = o->max_token_bytes ? o->max_token_bytes : TOKEN_DEFAULT_MAX_BYTES;
  int64_t leeway = o->leeway_s == 0 ? TOKEN_DEFAULT_LEEWAY_S : o->leeway_s < 0 ? 0 : o->leeway_s;
  if (token == NULL || token[0] == '\0') return REFUSE("malformed JWT: empty");
  /* the size is checked before anything is decoded or parsed */
  size_t len = strnlen(token, max + 1);
  if (len > max) return status_make(INFERD_UNAUTHENTICATED, "JWT too large (over %zu bytes)", max);
  const char *dot1 = memchr(token, '.', len);
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
  if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
    return REFUSE("malformed JWT: not three base64url parts separated by dots");
  size_t h_len = (size_t)(dot1 - token), p_len = (size_t)(dot2 - dot1 - 1), s_len = len - (size_t)(dot2 + 1 - token);

  json_t *hdr = segment_json(token, h_len);
  if (hdr == NULL) return REFUSE("malformed JWT: the header is not base64url-encoded JSON object");
  token_alg alg = ALG_HS256;
  const char *kid = NULL;
  inferd_status st = header_check(hdr, &alg, &kid);
  unsigned char *sig = NULL;
  size_t sig_len = 0;
  if (status_is_ok(&st) && (s_len == 0 || !b64url_decode(dot2 + 1, s_len, &sig, &sig_len)))
    st = REFUSE("malformed JWT: the signature is not base64url");
  if (status_is_ok(&st)) st = verify_signature(ks, alg, kid, sig, sig_len, token, (size_t)(dot2 - token));
  free(sig);
  json_decref(hdr); /* kid pointed into it: not used past here */
  if (!status_is_ok(&st)) return st;

  /* only a signed payload is parsed */
  json_t *payload = segment_json(dot1 + 1, p_len);
  if (payload == NULL) return REFUSE("malformed JWT: the payload is not base64url-encoded JSON object");
  int64_t exp = 0;
  st = check_times(payload, now, leeway, &exp);
  if (status_is_ok(&st)) st = check_issuer_audience(payload, o);
  /* the principal expires when this verifier would stop accepting the token, leeway included,
   * so that a later check of expires_at (the admit stage's, for every credential) agrees */
  if (status_is_ok(&st)) st = claims_to_principal(payload, o, sat_add(exp, leeway), out);
  json_decref(payload);
  return st;
}
