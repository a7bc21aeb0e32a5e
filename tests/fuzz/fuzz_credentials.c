/* Credentials as a client sends them (security/): the API key check against a key store
 * (apikey_parse, the SHA-256 compare, keystore_check_key), the key store file's parser, CORS
 * origins and scope matching. Beyond the sanitizers: no input but the one real key is ever
 * accepted (0 bypasses), and no refusal quotes what was sent.
 *
 * Input: byte 0 picks the target (mod 4): 0 a presented key, 1 a key store file, 2 an Origin
 * header against a fixed allow-list, 3 "have\x01need" scopes; the rest is the text. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "security/apikey.h"
#include "security/cors.h"
#include "security/keystore.h"
#include "security/scope.h"

/* The one key the store holds; its id is also the id of the store's other (revoked) entry's
 * neighbour, so inputs near it reach the hash compare. */
static const char REAL_KEY[] = "ifd_0123456789abcdef_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static keystore *store(void) {
  static keystore *ks;
  if (ks) return ks;
  uint8_t h[APIKEY_HASH_BYTES];
  char hex[80], text[1024];
  apikey_hash(REAL_KEY, h);
  apikey_hash_format(h, hex);
  snprintf(text, sizeof text,
           "{\"keys\": [{\"id\": \"0123456789abcdef\", \"name\": \"real\", \"hash\": \"%s\", \"scopes\": [\"read\"]},"
           " {\"id\": \"fedcba9876543210\", \"name\": \"gone\", \"hash\": \"%s\", \"scopes\": [\"*\"], \"revoked\": true},"
           " {\"name\": \"edge\", \"certificate_subject\": \"CN=edge\", \"scopes\": [\"read\"]}]}",
           hex, hex);
  inferd_status st = keystore_parse(text, strlen(text), "fuzz", &ks);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "fuzz_credentials: %s\n", st.msg);
    abort();
  }
  return ks;
}

static void check_key(const char *s, size_t n) {
  const principal *p = NULL;
  inferd_status st = keystore_check_key(store(), s, 1000, &p);
  if (status_is_ok(&st)) {
    if (strcmp(s, REAL_KEY) != 0 || p == NULL || strcmp(p->name, "real") != 0) {
      fprintf(stderr, "bypass: accepted %zu bytes as '%s'\n", n, p ? p->name : "?");
      abort();
    }
    principal_unref(p);
    return;
  }
  if (st.code != INFERD_UNAUTHENTICATED) abort();
  if (n >= 8 && strstr(st.msg, s)) {
    fprintf(stderr, "the refusal quotes the credential: %s\n", st.msg);
    abort();
  }
  st = keystore_check_subject(store(), s, 1000, &p);
  if (status_is_ok(&st)) {
    if (strcmp(s, "CN=edge") != 0) abort();
    principal_unref(p);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  char *s = malloc(size);
  memcpy(s, data + 1, size - 1);
  s[size - 1] = '\0';
  size_t n = strlen(s);
  switch (data[0] % 4) {
    case 0:
      check_key(s, n);
      break;
    case 1: {
      keystore *ks = NULL;
      inferd_status st = keystore_parse((const char *)data + 1, size - 1, "fuzz", &ks);
      if (status_is_ok(&st) != (ks != NULL)) abort();
      if (ks) {
        const principal *p = NULL;
        st = keystore_check_key(ks, REAL_KEY, 1000, &p);
        if (status_is_ok(&st)) principal_unref(p);
        keystore_free(ks);
      }
      break;
    }
    case 2: {
      static cors_policy *c;
      if (c == NULL) {
        inferd_status st = cors_parse("https://app.example, http://localhost:3000", &c);
        if (!status_is_ok(&st)) abort();
      }
      bool ok = cors_allows(c, s);
      if (ok && strcasecmp(s, "https://app.example") != 0 && strcasecmp(s, "http://localhost:3000") != 0) abort();
      cors_policy *d = NULL; /* the flag's parser on the same text */
      inferd_status st = cors_parse(s, &d);
      if (status_is_ok(&st)) cors_free(d);
      (void)cors_headers_token_list(s);
      break;
    }
    default: {
      char *sep = memchr(s, '\x01', n);
      const char *have = s, *need = "read";
      if (sep) {
        *sep = '\0';
        need = sep + 1;
      }
      bool g = scope_grants(have, need);
      /* only "*" and "infer:" wildcards grant what they do not spell out */
      if (g && strcmp(have, need) != 0 && strcmp(have, "*") != 0 && strncmp(have, "infer:", 6) != 0) abort();
      if (g && strcmp(have, "*") != 0 && strncmp(need, "infer", 5) != 0 && strcmp(have, need) != 0) abort();
      (void)scope_validate(have);
      break;
    }
  }
  free(s);
  return 0;
}
