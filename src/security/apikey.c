/* security/apikey: the key format, generation and hashing (apikey.h), with OpenSSL. */
#include "security/apikey.h"
#include "util/ct.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

static bool is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

inferd_status apikey_parse(const char *key, char id[APIKEY_ID_HEX + 1]) {
  size_t n = strnlen(key, APIKEY_LEN + 1);
  if (n != APIKEY_LEN || strncmp(key, APIKEY_PREFIX, 4) != 0 || key[4 + APIKEY_ID_HEX] != '_' ||
      !is_hex(key + 4, APIKEY_ID_HEX) || !is_hex(key + 5 + APIKEY_ID_HEX, APIKEY_SECRET_HEX))
    return status_make(INFERD_UNAUTHENTICATED, "malformed API key (expected ifd_<16 hex>_<64 hex>, as `inferd keys create` prints)");
  memcpy(id, key + 4, APIKEY_ID_HEX);
  id[APIKEY_ID_HEX] = '\0';
  return status_ok();
}

static void to_hex(const uint8_t *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

inferd_status apikey_generate(char key[APIKEY_LEN + 1], char id[APIKEY_ID_HEX + 1]) {
  uint8_t raw[APIKEY_ID_HEX / 2 + APIKEY_SECRET_HEX / 2];
  if (RAND_bytes(raw, sizeof raw) != 1) return status_make(INFERD_INTERNAL, "the system's random generator failed");
  char idhex[APIKEY_ID_HEX + 1], secret[APIKEY_SECRET_HEX + 1];
  to_hex(raw, APIKEY_ID_HEX / 2, idhex);
  to_hex(raw + APIKEY_ID_HEX / 2, APIKEY_SECRET_HEX / 2, secret);
  memcpy(key, APIKEY_PREFIX, 4);
  memcpy(key + 4, idhex, APIKEY_ID_HEX);
  key[4 + APIKEY_ID_HEX] = '_';
  memcpy(key + 5 + APIKEY_ID_HEX, secret, APIKEY_SECRET_HEX + 1);
  memcpy(id, idhex, APIKEY_ID_HEX + 1);
  OPENSSL_cleanse(raw, sizeof raw);
  OPENSSL_cleanse(secret, sizeof secret);
  return status_ok();
}

/* SHA-256 fetched from the provider once: EVP_sha256() makes OpenSSL 3 look the
 * implementation up on every digest, which cost ~6,000 instructions a request (callgrind,
 * bench/instructions_per_request.sh). Never freed: it lives as long as the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

inferd_status apikey_hash(const char *key, uint8_t out[APIKEY_HASH_BYTES]) {
  pthread_once(&sha256_once, sha256_fetch);
  unsigned int len = 0;
  if (EVP_Digest(key, strlen(key), out, &len, sha256_md ? sha256_md : EVP_sha256(), NULL) != 1 || len != APIKEY_HASH_BYTES)
    return status_make(INFERD_INTERNAL, "SHA-256 failed");
  return status_ok();
}

bool apikey_hash_equal(const uint8_t a[APIKEY_HASH_BYTES], const uint8_t b[APIKEY_HASH_BYTES]) {
  return ct_equal(a, b, APIKEY_HASH_BYTES);
}

void apikey_hash_format(const uint8_t h[APIKEY_HASH_BYTES], char buf[8 + 2 * APIKEY_HASH_BYTES + 1]) {
  memcpy(buf, "sha256:", 7);
  to_hex(h, APIKEY_HASH_BYTES, buf + 7);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool apikey_hash_parse(const char *text, uint8_t out[APIKEY_HASH_BYTES]) {
  if (strncmp(text, "sha256:", 7) != 0 || strlen(text) != 7 + 2 * APIKEY_HASH_BYTES) return false;
  for (size_t i = 0; i < APIKEY_HASH_BYTES; i++) {
    int hi = hexval(text[7 + 2 * i]), lo = hexval(text[8 + 2 * i]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (uint8_t)(hi * 16 + lo);
  }
  return true;
}
