/* security/apikey: the API key format and its hash. A key is "ifd_<id>_<secret>": 16 hex
 * digits of id (stored in the clear, so a lookup is by id, not by trying every hash) and 64 hex
 * digits (256 random bits) of secret. The key store keeps only SHA-256 of the whole key; with
 * that much entropy in the secret a plain digest cannot be reversed or guessed, and a
 * comparison of digests in constant time (util/ct.h) tells a timing observer nothing. */
#ifndef INFERD_APIKEY_H
#define INFERD_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define APIKEY_PREFIX "ifd_"
#define APIKEY_ID_HEX 16
#define APIKEY_SECRET_HEX 64
#define APIKEY_LEN (4 + APIKEY_ID_HEX + 1 + APIKEY_SECRET_HEX)
#define APIKEY_HASH_BYTES 32

/* Splits a presented key: OK with id (APIKEY_ID_HEX hex digits and a NUL) filled, or
 * UNAUTHENTICATED "malformed API key" (the message never quotes the key). */
inferd_status apikey_parse(const char *key, char id[APIKEY_ID_HEX + 1]);
/* A new random key (OpenSSL's RAND_bytes) into key[APIKEY_LEN + 1], its id into id. */
inferd_status apikey_generate(char key[APIKEY_LEN + 1], char id[APIKEY_ID_HEX + 1]);
/* SHA-256 of the whole key string. */
inferd_status apikey_hash(const char *key, uint8_t out[APIKEY_HASH_BYTES]);
/* Constant-time comparison of two digests. */
bool apikey_hash_equal(const uint8_t a[APIKEY_HASH_BYTES], const uint8_t b[APIKEY_HASH_BYTES]);
/* "sha256:<64 hex>" into buf[8 + 64 + 1], and back (false when text is not that form). */
void apikey_hash_format(const uint8_t h[APIKEY_HASH_BYTES], char buf[8 + 2 * APIKEY_HASH_BYTES + 1]);
bool apikey_hash_parse(const char *text, uint8_t out[APIKEY_HASH_BYTES]);

#endif
