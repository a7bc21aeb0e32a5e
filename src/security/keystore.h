/* security/keystore: the API key file (--api-keys), parsed into an immutable store. The file is
 * JSON holding only hashes of keys (apikey.h), each entry with a name, scopes, created, an
 * optional expiry, revoked, and optional limits; an entry may instead name a TLS client
 * certificate subject, which then authenticates as that entry. Pure: text in, a store out;
 * lookups take the time as an argument (tests/unit/test_security_keystore.c). The file format
 * is in docs/security.md. */
#ifndef INFERD_KEYSTORE_H
#define INFERD_KEYSTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/principal.h"
#include "core/status.h"
#include "security/apikey.h"

typedef struct keystore_entry {
  char id[APIKEY_ID_HEX + 1];          /* "" for a certificate entry */
  uint8_t hash[APIKEY_HASH_BYTES];     /* SHA-256 of the key */
  char *certificate_subject;           /* owned; NULL for a key entry */
  int64_t created, expires;            /* unix seconds; expires 0: never */
  bool revoked;
  principal *who;                      /* one reference, the store's: name, scopes, limits */
} keystore_entry;

typedef struct keystore {
  keystore_entry *entries; /* owned */
  size_t n;
} keystore;

/* Parses the file's text; `source` names it in messages. INVALID_ARGUMENT naming the entry and
 * field ("keys[2].scopes[0]: unknown scope 'reed' ...") when anything is wrong: unknown
 * fields, a bad hash, duplicate ids or subjects, an entry with neither a key nor a subject. */
inferd_status keystore_parse(const char *text, size_t len, const char *source, keystore **out);
/* The same from a parsed document (the CLI checks what it is about to write). */
inferd_status keystore_from_json(const json_t *doc, const char *source, keystore **out);
void keystore_free(keystore *ks);

/* Authenticates a presented API key at `now`: OK with *out a new reference to its principal, or
 * UNAUTHENTICATED saying why (malformed, unknown, revoked, expired) without quoting the key.
 * The secret is compared as a digest in constant time; "revoked" and "expired" are told only
 * to a caller who holds the real key. */
inferd_status keystore_check_key(const keystore *ks, const char *key, int64_t now, const principal **out);
/* A verified client certificate's subject: the entry naming it (exact string), as for a key. */
inferd_status keystore_check_subject(const keystore *ks, const char *subject, int64_t now, const principal **out);

/* "2026-11-30T01:02:03Z" <-> unix seconds (UTC only, as the file and the CLI write it). */
bool keystore_time_parse(const char *text, int64_t *out);
void keystore_time_format(int64_t t, char buf[32]);

#endif
