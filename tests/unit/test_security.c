/* security/: scopes, the API key format and hash, the key store file, CORS origins, the keys
 * CLI's durations and rates, and the one scope table (every HTTP route and gRPC method declares
 * a scope; only the health probes are open). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "frontends/grpc/call.h"
#include "frontends/http/routes.h"
#include "security/apikey.h"
#include "security/auth.h"
#include "security/cors.h"
#include "security/keys_cli.h"
#include "security/keystore.h"
#include "security/scope.h"

static void test_scope_grants(void **state) {
  (void)state;
  assert_true(scope_grants("read", "read"));
  assert_false(scope_grants("read", "admin"));
  assert_false(scope_grants("admin", "read")); /* no implications */
  assert_false(scope_grants("admin", "infer:iris"));
  assert_true(scope_grants("*", "admin"));
  assert_true(scope_grants("*", "infer:iris"));
  assert_true(scope_grants("infer:*", "infer:iris"));
  assert_false(scope_grants("infer:*", "read"));
  assert_false(scope_grants("infer:*", "infer:"));
  assert_true(scope_grants("infer:iris", "infer:iris"));
  assert_false(scope_grants("infer:iris", "infer:iris2"));
  assert_false(scope_grants("infer:iris2", "infer:iris"));
  assert_false(scope_grants("infer:iris", "infer:Iris"));
  assert_true(scope_grants("infer:fraud-*", "infer:fraud-v2"));
  assert_false(scope_grants("infer:fraud-*", "infer:fraud"));
  assert_false(scope_grants("infer:fraud-*", "infer:churn"));
  /* "infer" (a route that infers, model unknown yet): any infer scope */
  assert_true(scope_grants("infer:iris", "infer"));
  assert_false(scope_grants("read", "infer"));
  assert_false(scope_grants("", "read"));
  assert_false(scope_grants(NULL, "read"));
  assert_false(scope_grants("reader", "read"));
  assert_false(scope_grants("rea", "read"));
}

static void test_scope_allows_and_needed(void **state) {
  (void)state;
  principal *p = principal_create(PRINCIPAL_API_KEY, "k");
  assert_false(scope_allows(p, "read"));
  principal_add_scope(p, "infer:a");
  principal_add_scope(p, "read");
  assert_true(scope_allows(p, "read"));
  assert_true(scope_allows(p, "infer:a"));
  assert_false(scope_allows(p, "infer:b"));
  assert_false(scope_allows(p, "metrics"));
  assert_false(scope_allows(NULL, "read"));
  char buf[64];
  /* the admit stage's shortcut decides as scope_allows on the spelled-out scope */
  const char *haves[] = {"infer:a", "infer:*", "infer:ab*", "*", "read", "infer:", "infer:a*"};
  const char *models[] = {"a", "ab", "abc", "b", "", "a*"};
  for (size_t h = 0; h < sizeof haves / sizeof haves[0]; h++) {
    principal *q = principal_create(PRINCIPAL_API_KEY, "q");
    principal_add_scope(q, haves[h]);
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
      char need[64];
      snprintf(need, sizeof need, "infer:%s", models[m]);
      bool want = *models[m] && scope_allows(q, need);
      if (scope_allows_infer(q, models[m]) != want) fail_msg("%s for model '%s': want %d", haves[h], models[m], want);
    }
    principal_unref(q);
  }
  assert_string_equal(scope_needed(SCOPE_INFER, "iris", buf, sizeof buf), "infer:iris");
  assert_string_equal(scope_needed(SCOPE_INFER, "", buf, sizeof buf), "infer");
  assert_string_equal(scope_needed(SCOPE_READ, "iris", buf, sizeof buf), "read");
  principal_unref(p);
}

static void test_scope_validate(void **state) {
  (void)state;
  const char *good[] = {"read", "metrics", "jobs", "admin", "*", "infer:*", "infer:iris", "infer:fraud-*", "infer:a.b_c"};
  const char *bad[] = {"", "reed", "Read", "infer", "infer:", "infer:a b", "infer:a,b", "infer:*x", "infer:a*b", "**", "infer:\x01"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    inferd_status st = scope_validate(good[i]);
    assert_true(status_is_ok(&st));
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    inferd_status st = scope_validate(bad[i]);
    assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  }
}

static void test_scope_for_pattern_denies_by_default(void **state) {
  (void)state;
  assert_string_equal(scope_for_pattern("/metrics"), "metrics");
  assert_string_equal(scope_for_pattern("/v1/jobs"), "jobs");
  assert_string_equal(scope_for_pattern("/v1/jobs/{id}"), "jobs");
  assert_string_equal(scope_for_pattern("/v2/models/{model}/anything"), "admin");
  assert_string_equal(scope_for_pattern("/v1/jobsearch"), "admin");
  assert_string_equal(scope_for_pattern(NULL), "admin");
  assert_true(scope_is_open(SCOPE_OPEN));
  assert_false(scope_is_open(SCOPE_READ));
  assert_false(scope_is_open(NULL));
}

static void test_apikey_format_and_hash(void **state) {
  (void)state;
  char key[APIKEY_LEN + 1], id[APIKEY_ID_HEX + 1], id2[APIKEY_ID_HEX + 1];
  inferd_status st = apikey_generate(key, id);
  assert_true(status_is_ok(&st));
  assert_int_equal(strlen(key), APIKEY_LEN);
  st = apikey_parse(key, id2);
  assert_true(status_is_ok(&st));
  assert_string_equal(id, id2);
  char other[APIKEY_LEN + 1];
  apikey_generate(other, id2);
  assert_string_not_equal(key, other);
  /* malformed: never OK, never quoting the key */
  char bad[APIKEY_LEN + 8];
  const char *cases[] = {"", "ifd_", "abc", "ifd_0123456789abcdef_", "IFD_0123456789abcdef_" /* prefix case */};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    st = apikey_parse(cases[i], id2);
    assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  }
  snprintf(bad, sizeof bad, "%s0", key); /* one too long */
  st = apikey_parse(bad, id2);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  assert_null(strstr(st.msg, key + 21));
  memcpy(bad, key, sizeof key);
  bad[30] = 'G'; /* not hex */
  st = apikey_parse(bad, id2);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  memcpy(bad, key, sizeof key);
  bad[20] = '-'; /* the separator */
  st = apikey_parse(bad, id2);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);

  uint8_t h1[APIKEY_HASH_BYTES], h2[APIKEY_HASH_BYTES], h3[APIKEY_HASH_BYTES];
  apikey_hash(key, h1);
  apikey_hash(key, h2);
  apikey_hash(other, h3);
  assert_true(apikey_hash_equal(h1, h2));
  assert_false(apikey_hash_equal(h1, h3));
  char text[80];
  apikey_hash_format(h1, text);
  assert_int_equal(strncmp(text, "sha256:", 7), 0);
  assert_int_equal(strlen(text), 71);
  uint8_t back[APIKEY_HASH_BYTES];
  assert_true(apikey_hash_parse(text, back));
  assert_memory_equal(back, h1, sizeof back);
  assert_false(apikey_hash_parse("sha256:00", back));
  assert_false(apikey_hash_parse("md5:00", back));
  text[10] = 'Z';
  assert_false(apikey_hash_parse(text, back));
  /* a known vector: SHA-256("abc") */
  apikey_hash("abc", h1);
  apikey_hash_format(h1, text);
  assert_string_equal(text, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* A store with one key entry for `key` plus the given extra fields. */
static keystore *store_for(const char *key, const char *extra, inferd_status *st) {
  char id[APIKEY_ID_HEX + 1], hex[80], text[2048];
  uint8_t h[APIKEY_HASH_BYTES];
  apikey_parse(key, id);
  apikey_hash(key, h);
  apikey_hash_format(h, hex);
  snprintf(text, sizeof text,
           "{\"keys\": [{\"id\": \"%s\", \"name\": \"svc\", \"hash\": \"%s\", \"scopes\": [\"infer:iris\", \"read\"]%s}]}", id,
           hex, extra);
  keystore *ks = NULL;
  *st = keystore_parse(text, strlen(text), "keys.json", &ks);
  return ks;
}

static void test_keystore_check_key(void **state) {
  (void)state;
  char key[APIKEY_LEN + 1], id[APIKEY_ID_HEX + 1];
  apikey_generate(key, id);
  inferd_status st;
  keystore *ks = store_for(key, ", \"rate\": 5, \"burst\": 10, \"concurrency\": 2, \"records_per_min\": 600, "
                                "\"created\": \"2026-01-01T00:00:00Z\", \"expires\": \"2030-01-01T00:00:00Z\"", &st);
  assert_true(status_is_ok(&st));
  const principal *p = NULL;
  st = keystore_check_key(ks, key, 1800000000, &p);
  assert_true(status_is_ok(&st));
  assert_string_equal(p->name, "svc");
  assert_int_equal(p->kind, PRINCIPAL_API_KEY);
  assert_int_equal(p->n_scopes, 2);
  assert_true(p->rate_per_s == 5 && p->burst == 10);
  assert_int_equal(p->max_concurrent, 2);
  assert_int_equal(p->records_per_min, 600);
  int64_t exp;
  assert_true(keystore_time_parse("2030-01-01T00:00:00Z", &exp));
  assert_int_equal(p->expires_at, exp);
  principal_unref(p);
  /* expired: at and after the second it expires */
  st = keystore_check_key(ks, key, exp, &p);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  assert_non_null(strstr(st.msg, "expired"));
  st = keystore_check_key(ks, key, exp - 1, &p);
  assert_true(status_is_ok(&st));
  principal_unref(p);
  /* a wrong secret with the right id: "unknown", never "expired" or "revoked" */
  char wrong[APIKEY_LEN + 1];
  memcpy(wrong, key, sizeof wrong);
  wrong[APIKEY_LEN - 1] = wrong[APIKEY_LEN - 1] == '0' ? '1' : '0';
  st = keystore_check_key(ks, wrong, exp + 10, &p);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  assert_string_equal(st.msg, "unknown API key");
  /* another key entirely */
  char other[APIKEY_LEN + 1], oid[APIKEY_ID_HEX + 1];
  apikey_generate(other, oid);
  st = keystore_check_key(ks, other, 0, &p);
  assert_string_equal(st.msg, "unknown API key");
  st = keystore_check_key(ks, "ifd_junk", 0, &p);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  assert_null(strstr(st.msg, "junk"));
  keystore_free(ks);

  ks = store_for(key, ", \"revoked\": true", &st);
  assert_true(status_is_ok(&st));
  st = keystore_check_key(ks, key, 0, &p);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  assert_non_null(strstr(st.msg, "revoked"));
  st = keystore_check_key(ks, wrong, 0, &p); /* a guesser is not told the id was revoked */
  assert_string_equal(st.msg, "unknown API key");
  keystore_free(ks);
}

static void test_keystore_parse_errors_name_the_field(void **state) {
  (void)state;
  static const struct {
    const char *text, *needle;
  } cases[] = {
      {"", "not JSON"},
      {"[]", "must be an object"},
      {"{\"keys\": {}}", "\"keys\" must be an array"},
      {"{\"keys\": [], \"x\": 1}", "unknown field 'x'"},
      {"{\"keys\": [1]}", "keys[0] must be an object"},
      {"{\"keys\": [{\"name\": \"a\", \"scopes\": []}]}", "keys[0].id"},
      {"{\"keys\": [{\"name\": \"a\", \"id\": \"0123456789ABCDEF\", \"hash\": \"x\", \"scopes\": []}]}", "keys[0].id"},
      {"{\"keys\": [{\"name\": \"a\", \"id\": \"0123456789abcdef\", \"hash\": \"sha256:00\", \"scopes\": []}]}", "keys[0].hash"},
      {"{\"keys\": [{\"name\": \"\", \"certificate_subject\": \"CN=a\", \"scopes\": []}]}", "keys[0].name"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": [\"reed\"]}]}", "keys[0].scopes[0]"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": \"read\"}]}", "keys[0].scopes"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": [], \"rate\": -1}]}", "keys[0].rate"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": [], \"concurrency\": 1.5}]}", "whole"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": [], \"expires\": \"tomorrow\"}]}", "keys[0].expires"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": [], \"expires\": \"2026-02-31T00:00:00Z\"}]}", "keys[0].expires"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": [], \"revoked\": 1}]}", "keys[0].revoked"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": [], \"secret\": \"x\"}]}", "unknown field 'secret'"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"id\": \"0123456789abcdef\", \"scopes\": []}]}", "not both"},
      {"{\"keys\": [{\"name\": \"a\", \"certificate_subject\": \"CN=a\", \"scopes\": []},"
       " {\"name\": \"b\", \"certificate_subject\": \"CN=a\", \"scopes\": []}]}", "keys[1].certificate_subject"},
      {"{\"keys\": [{\"name\": \"a\", \"id\": \"0123456789abcdef\", \"hash\": \"sha256:"
       "0000000000000000000000000000000000000000000000000000000000000000\", \"scopes\": []},"
       " {\"name\": \"b\", \"id\": \"0123456789abcdef\", \"hash\": \"sha256:"
       "0000000000000000000000000000000000000000000000000000000000000000\", \"scopes\": []}]}", "keys[1].id"},
      {"{\"keys\": [], \"keys\": []}", "not JSON"}, /* duplicate keys */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    keystore *ks = NULL;
    inferd_status st = keystore_parse(cases[i].text, strlen(cases[i].text), "keys.json", &ks);
    if (st.code != INFERD_INVALID_ARGUMENT || strstr(st.msg, cases[i].needle) == NULL || strstr(st.msg, "keys.json") == NULL)
      fail_msg("case %zu: got %d '%s', wanted '%s'", i, st.code, st.msg, cases[i].needle);
    assert_null(ks);
  }
  keystore *ks = NULL;
  inferd_status st = keystore_parse("{\"keys\": []}", 12, "k", &ks);
  assert_true(status_is_ok(&st));
  assert_int_equal(ks->n, 0);
  keystore_free(ks);
}

static void test_keystore_certificate_subjects(void **state) {
  (void)state;
  const char *text = "{\"keys\": [{\"name\": \"edge\", \"certificate_subject\": \"CN=edge,O=Acme\", \"scopes\": [\"read\"]},"
                     "{\"name\": \"old\", \"certificate_subject\": \"CN=old\", \"scopes\": [\"read\"], \"revoked\": true}]}";
  keystore *ks = NULL;
  inferd_status st = keystore_parse(text, strlen(text), "k", &ks);
  assert_true(status_is_ok(&st));
  const principal *p = NULL;
  st = keystore_check_subject(ks, "CN=edge,O=Acme", 0, &p);
  assert_true(status_is_ok(&st));
  assert_string_equal(p->name, "edge");
  assert_int_equal(p->kind, PRINCIPAL_CERT);
  principal_unref(p);
  st = keystore_check_subject(ks, "CN=edge", 0, &p);
  assert_int_equal(st.code, INFERD_UNAUTHENTICATED);
  st = keystore_check_subject(ks, "CN=old", 0, &p);
  assert_non_null(strstr(st.msg, "revoked"));
  /* a subject entry is no API key */
  char key[APIKEY_LEN + 1], id[APIKEY_ID_HEX + 1];
  apikey_generate(key, id);
  st = keystore_check_key(ks, key, 0, &p);
  assert_string_equal(st.msg, "unknown API key");
  keystore_free(ks);
}

static void test_time_roundtrip(void **state) {
  (void)state;
  int64_t t;
  assert_true(keystore_time_parse("1970-01-01T00:00:00Z", &t));
  assert_int_equal(t, 0);
  assert_true(keystore_time_parse("2026-11-30T01:02:03Z", &t));
  char buf[32];
  keystore_time_format(t, buf);
  assert_string_equal(buf, "2026-11-30T01:02:03Z");
  assert_false(keystore_time_parse("2026-11-30T01:02:03", &t));
  assert_false(keystore_time_parse("2026-11-30T01:02:03+01:00", &t));
  assert_false(keystore_time_parse("2026-13-01T00:00:00Z", &t));
  assert_false(keystore_time_parse("2026-11-30T01:02:03Zx", &t));
}

static void test_cors(void **state) {
  (void)state;
  cors_policy *c = NULL;
  inferd_status st = cors_parse(NULL, &c);
  assert_true(status_is_ok(&st));
  assert_null(c);
  assert_false(cors_allows(NULL, "https://a.example"));
  st = cors_parse("https://a.example, http://localhost:3000", &c);
  assert_true(status_is_ok(&st));
  assert_true(cors_allows(c, "https://a.example"));
  assert_true(cors_allows(c, "HTTPS://A.EXAMPLE"));
  assert_true(cors_allows(c, "http://localhost:3000"));
  assert_false(cors_allows(c, "http://localhost:3001"));
  assert_false(cors_allows(c, "https://a.example.evil"));
  assert_false(cors_allows(c, "http://a.example"));
  assert_false(cors_allows(c, "null"));
  assert_false(cors_allows(c, NULL));
  cors_free(c);
  st = cors_parse("*", &c);
  assert_true(status_is_ok(&st));
  assert_true(cors_allows(c, "https://anything.example"));
  assert_false(cors_allows(c, "null"));
  assert_false(cors_allows(c, "not an origin"));
  cors_free(c);
  const char *bad[] = {"a.example", "https://a.example/path", "https://", "https://u@a.example", ",", "ftp//x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    st = cors_parse(bad[i], &c);
    if (st.code != INFERD_INVALID_ARGUMENT) fail_msg("'%s' was accepted", bad[i]);
  }
  assert_true(cors_headers_token_list("authorization, content-type"));
  assert_false(cors_headers_token_list("x\r\nSet-Cookie: a"));
}

static void test_durations_and_rates(void **state) {
  (void)state;
  int64_t d;
  assert_true(keys_parse_duration("90d", &d));
  assert_int_equal(d, 90 * 86400);
  assert_true(keys_parse_duration("12h", &d));
  assert_int_equal(d, 12 * 3600);
  assert_true(keys_parse_duration("30m", &d));
  assert_int_equal(d, 1800);
  assert_true(keys_parse_duration("45", &d));
  assert_int_equal(d, 45);
  assert_true(keys_parse_duration("2w", &d));
  assert_int_equal(d, 14 * 86400);
  const char *bad[] = {"", "d", "0", "-1d", "10x", "1dd", "nan", "inf", "0.5s"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (keys_parse_duration(bad[i], &d)) fail_msg("duration '%s' accepted", bad[i]);
}

/* The one table: every route and RPC names its scope, and only the health probes are open. */
static bool open_allowed(const char *path) {
  static const char *const probes[] = {"/v2/health/live", "/v2/health/ready", "/health", "/ping",
                                       "/inference.GRPCInferenceService/ServerLive",
                                       "/inference.GRPCInferenceService/ServerReady", "/grpc.health.v1.Health/Check",
                                       "/grpc.health.v1.Health/Watch"};
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
    if (strcmp(path, probes[i]) == 0) return true;
  return false;
}

static void test_every_route_and_method_declares_a_scope(void **state) {
  (void)state;
  size_t n;
  const route *r = http_routes_table(&n);
  assert_true(n > 20);
  for (size_t i = 0; i < n; i++) {
    if (r[i].scope == NULL) fail_msg("route %s declares no scope", r[i].pattern);
    if (scope_is_open(r[i].scope) && !open_allowed(r[i].pattern)) fail_msg("route %s is open", r[i].pattern);
    if (strstr(r[i].pattern, "/repository/") && strcmp(r[i].scope, SCOPE_ADMIN) != 0)
      fail_msg("repository route %s is not admin", r[i].pattern);
    if (strcmp(r[i].scope, SCOPE_INFER) == 0 && !(r[i].methods & ROUTE_POST)) fail_msg("infer route %s", r[i].pattern);
  }
  const rpc_method *tables[] = {inference_service_methods, health_service_methods, model_service_methods};
  size_t count = 0;
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (const rpc_method *m = tables[t]; m->path; m++, count++) {
      if (m->scope == NULL) fail_msg("gRPC method %s declares no scope", m->path);
      if (scope_is_open(m->scope) && !open_allowed(m->path)) fail_msg("gRPC method %s is open", m->path);
      if (strstr(m->path, "/Repository") && strcmp(m->scope, SCOPE_ADMIN) != 0) fail_msg("%s is not admin", m->path);
      const char *method = strrchr(m->path, '/');
      if ((strstr(method, "Infer") || strstr(method, "Predict")) && strcmp(m->scope, SCOPE_INFER) != 0)
        fail_msg("%s is not an inference method", m->path);
    }
  assert_true(count >= 18);
}

/* The authenticator's credential rules, without a file (auth off), and the challenge. */
static const char *no_meta(void *ctx, const char *name) {
  (void)ctx;
  (void)name;
  return NULL;
}

static void test_auth_off_admits_everyone(void **state) {
  (void)state;
  auth *a = NULL;
  auth_options o = {0};
  inferd_status st = auth_create(&o, &a);
  assert_true(status_is_ok(&st));
  assert_false(auth_enabled(a));
  const principal *p = (const principal *)1;
  bool invalid = true;
  st = auth_authenticate(a, no_meta, NULL, NULL, 0, &p, &invalid);
  assert_true(status_is_ok(&st));
  assert_null(p);
  st = auth_check(a, NULL, SCOPE_ADMIN, NULL);
  assert_true(status_is_ok(&st));
  auth_destroy(a);
  assert_string_equal(auth_challenge(false), "Bearer realm=\"inferd\"");
  assert_string_equal(auth_challenge(true), "Bearer realm=\"inferd\", error=\"invalid_token\"");
  /* issuer without keys is a configuration mistake */
  auth_options bad = {.jwt_issuer = "https://idp.example"};
  a = (auth *)1;
  st = auth_create(&bad, &a);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "--jwt-issuer"));
  assert_null(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scope_grants),
      cmocka_unit_test(test_scope_allows_and_needed),
      cmocka_unit_test(test_scope_validate),
      cmocka_unit_test(test_scope_for_pattern_denies_by_default),
      cmocka_unit_test(test_apikey_format_and_hash),
      cmocka_unit_test(test_keystore_check_key),
      cmocka_unit_test(test_keystore_parse_errors_name_the_field),
      cmocka_unit_test(test_keystore_certificate_subjects),
      cmocka_unit_test(test_time_roundtrip),
      cmocka_unit_test(test_cors),
      cmocka_unit_test(test_durations_and_rates),
      cmocka_unit_test(test_every_route_and_method_declares_a_scope),
      cmocka_unit_test(test_auth_off_admits_everyone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
