/* security/auth's per-connection memo of a verified credential: a repeat of the same key is
 * answered without the digest, another key or a changed key store is verified again, and a
 * key's expiry and revocation still count on the very next request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "security/apikey.h"
#include "security/auth.h"
#include "security/keystore.h"

typedef struct {
  const char *authz, *xkey;
} hdrs;

static const char *meta(void *ctx, const char *name) {
  const hdrs *h = ctx;
  if (strcasecmp(name, "authorization") == 0) return h->authz;
  if (strcasecmp(name, "x-api-key") == 0) return h->xkey;
  return NULL;
}

/* One entry of the key file for key, named name, with extra fields. */
static void entry(char *out, size_t cap, const char *key, const char *name, const char *extra) {
  char id[APIKEY_ID_HEX + 1], hex[80];
  uint8_t h[APIKEY_HASH_BYTES];
  apikey_parse(key, id);
  apikey_hash(key, h);
  apikey_hash_format(h, hex);
  snprintf(out, cap, "{\"id\": \"%s\", \"name\": \"%s\", \"hash\": \"%s\", \"scopes\": [\"infer:*\"]%s}", id, name, hex,
           extra);
}

/* Replaces the file whole (a rename, as `inferd keys` does). */
static void write_keys(const char *path, const char *e1, const char *e2, const char *e3) {
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  assert_non_null(f);
  fprintf(f, "{\"keys\": [%s, %s, %s]}", e1, e2, e3);
  fclose(f);
  assert_int_equal(rename(tmp, path), 0);
}

/* The caller of h at `now` is accepted, as `name` (NULL: not checked), and the memo has had
 * `hits` hits afterwards (-1: not checked). */
static void accepted(auth *a, auth_memo **m, hdrs *h, int64_t now, const char *name, long hits) {
  const principal *p = NULL;
  bool invalid = true;
  inferd_status st = auth_authenticate_memo(a, m, meta, h, NULL, now, &p, &invalid);
  if (!status_is_ok(&st)) fail_msg("refused: %s", st.msg);
  assert_false(invalid);
  assert_non_null(p);
  if (name) assert_string_equal(p->name, name);
  if (hits >= 0) assert_int_equal(auth_memo_hits(*m), hits);
  principal_unref(p);
}

/* The caller of h at `now` is refused (401) with a message naming `why` (NULL: not checked), and
 * what the memo held is dropped. Returns whether the credential was called invalid. */
static bool refused(auth *a, auth_memo **m, hdrs *h, int64_t now, const char *why) {
  const principal *p = NULL;
  bool invalid = false;
  inferd_status st = auth_authenticate_memo(a, m, meta, h, NULL, now, &p, &invalid);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  if (why) assert_non_null(strstr(st.msg, why));
  assert_null(*m);
  return invalid;
}

static void test_memo(void **state) {
  (void)state;
  char dir[] = "/tmp/inferd-memo-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/keys.json", dir);
  char k1[APIKEY_LEN + 1], k2[APIKEY_LEN + 1], k3[APIKEY_LEN + 1], id[APIKEY_ID_HEX + 1];
  apikey_generate(k1, id);
  apikey_generate(k2, id);
  apikey_generate(k3, id);
  char e1[512], e2[512], e3[512];
  entry(e1, sizeof e1, k1, "one", "");
  entry(e2, sizeof e2, k2, "two", "");
  entry(e3, sizeof e3, k3, "three", ", \"expires\": \"2030-01-01T00:00:00Z\"");
  int64_t exp;
  assert_true(keystore_time_parse("2030-01-01T00:00:00Z", &exp));
  write_keys(path, e1, e2, e3);

  auth *a = NULL;
  auth_options o = {.api_keys_path = path, .poll_ms = 10};
  inferd_status st = auth_create(&o, &a);
  assert_true(status_is_ok(&st));
  auth_memo *m = NULL;
  int64_t now = exp - 100;

  /* a hit: the same key again, by either header, is the same principal without a check */
  hdrs h = {.xkey = k1};
  accepted(a, &m, &h, now, "one", 0);
  accepted(a, &m, &h, now, "one", 1);
  char bearer[APIKEY_LEN + 16];
  snprintf(bearer, sizeof bearer, "Bearer %s", k1);
  hdrs hb = {.authz = bearer};
  accepted(a, &m, &hb, now, NULL, 2);

  /* a miss: another key is verified (and remembered instead) */
  hdrs h2 = {.xkey = k2};
  accepted(a, &m, &h2, now, "two", 2);
  accepted(a, &m, &h, now, "one", 2);

  /* the right id with a wrong secret (the same length) is refused, not taken for the memo */
  char wrong[APIKEY_LEN + 1];
  memcpy(wrong, k1, sizeof wrong);
  wrong[APIKEY_LEN - 1] = wrong[APIKEY_LEN - 1] == '0' ? '1' : '0';
  hdrs hw = {.xkey = wrong};
  assert_true(refused(a, &m, &hw, now, NULL)); /* a refusal drops what was remembered */

  /* expiry is checked on every request, memo or not */
  hdrs h3 = {.xkey = k3};
  accepted(a, &m, &h3, exp - 1, NULL, -1);
  accepted(a, &m, &h3, exp - 1, NULL, 1);
  refused(a, &m, &h3, exp, "expired");

  /* a new snapshot (k1 revoked) ends the memo: the next request is checked against it */
  accepted(a, &m, &h, now, NULL, -1);
  accepted(a, &m, &h, now, NULL, 1);
  long gen = auth_generation(a);
  entry(e1, sizeof e1, k1, "one", ", \"revoked\": true");
  write_keys(path, e1, e2, e3);
  for (int i = 0; i < 500 && auth_generation(a) == gen; i++) usleep(10000);
  assert_true(auth_generation(a) > gen);
  refused(a, &m, &h, now, "revoked");

  /* a reload that changes nothing for k2 still makes it verified once more */
  accepted(a, &m, &h2, now, NULL, -1);
  gen = auth_generation(a);
  auth_reload(a);
  for (int i = 0; i < 500 && auth_generation(a) == gen; i++) usleep(10000);
  assert_true(auth_generation(a) > gen);
  accepted(a, &m, &h2, now, NULL, 0);
  accepted(a, &m, &h2, now, NULL, 1);

  auth_memo_free(m);
  auth_destroy(a);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_memo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
