/* cache/: the LRU's policy (byte bound, recency, TTL, keys in flight and their waiters) with the
 * time as an argument, the canonical request form and its key, and response_cache's config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cache/cache_key.h"
#include "cache/cache_lru.h"
#include "core/model_config.h"

#define MS (INT64_C(1000000))

static int freed;
static void free_value(void *v) {
  freed++;
  free(v);
}

static void key_of(int i, uint8_t key[CACHE_KEY_SIZE]) {
  memset(key, 0, CACHE_KEY_SIZE);
  /* spread over buckets and shards like a real hash would */
  uint64_t a = (uint64_t)i * 0x9e3779b97f4a7c15u, b = (uint64_t)i * 0xc2b2ae3d27d4eb4fu + 1;
  memcpy(key, &a, 8);
  memcpy(key + 8, &b, 8);
}

static int *value_of(int i) {
  int *v = malloc(sizeof *v);
  *v = i;
  return v;
}

static void copy_int(const void *value, void *arg) { *(int *)arg = *(const int *)value; }

/* Stores i with its value (bytes long) as a leader would: begin (a miss), then finish. */
static void put(cache_lru *c, int i, size_t bytes, int64_t now) {
  uint8_t k[CACHE_KEY_SIZE];
  key_of(i, k);
  int got = -1;
  assert_int_equal(cache_lru_begin(c, k, now, copy_int, &got, NULL), CACHE_LRU_LEAD);
  assert_null(cache_lru_finish(c, k, now, value_of(i), bytes));
}

static cache_lru_result get(cache_lru *c, int i, int64_t now, int *got) {
  uint8_t k[CACHE_KEY_SIZE];
  key_of(i, k);
  *got = -1;
  cache_lru_result r = cache_lru_begin(c, k, now, copy_int, got, NULL);
  /* a miss made the key in flight: finish it without a value, as a failed run would */
  if (r == CACHE_LRU_LEAD) assert_null(cache_lru_finish(c, k, now, NULL, 0));
  return r;
}

static void test_hit_and_miss(void **state) {
  (void)state;
  cache_lru_counters ctr = {0};
  cache_lru *c = cache_lru_create(1 << 20, 0, free_value, &ctr);
  int got;
  assert_int_equal(get(c, 1, 0, &got), CACHE_LRU_LEAD);
  put(c, 1, 100, 0);
  assert_int_equal(get(c, 1, 0, &got), CACHE_LRU_HIT);
  assert_int_equal(got, 1);
  assert_int_equal(get(c, 2, 0, &got), CACHE_LRU_LEAD);
  assert_int_equal(ctr.entries, 1);
  assert_int_equal(ctr.bytes, 100 + CACHE_LRU_ENTRY_OVERHEAD);
  freed = 0;
  cache_lru_destroy(c);
  assert_int_equal(freed, 1);
  assert_int_equal(ctr.entries, 0);
  assert_int_equal(ctr.bytes, 0);
}

/* The bound holds after every store, and the least recently used go first. */
static void test_byte_bound_and_lru_order(void **state) {
  (void)state;
  const int64_t max = 10 * (100 + CACHE_LRU_ENTRY_OVERHEAD); /* room for exactly 10 */
  cache_lru_counters ctr = {0};
  cache_lru *c = cache_lru_create(max, 0, free_value, &ctr);
  int got;
  for (int i = 0; i < 10; i++) put(c, i, 100, 0);
  assert_int_equal(ctr.entries, 10);
  assert_int_equal(get(c, 0, 0, &got), CACHE_LRU_HIT); /* 0 is now the most recent */
  for (int i = 10; i < 15; i++) {
    put(c, i, 100, 0);
    int64_t e, b;
    cache_lru_usage(c, &e, &b);
    assert_true(b <= max);
  }
  /* 1..5 were the least recently used: gone; 0 and 6..14 stay */
  for (int i = 1; i <= 5; i++) assert_int_equal(get(c, i, 0, &got), CACHE_LRU_LEAD);
  assert_int_equal(get(c, 0, 0, &got), CACHE_LRU_HIT);
  for (int i = 6; i < 15; i++) assert_int_equal(get(c, i, 0, &got), CACHE_LRU_HIT);
  assert_int_equal(ctr.evictions, 5);
  /* a value larger than the whole budget is never kept (and freed at once) */
  freed = 0;
  put(c, 99, (size_t)max, 0);
  assert_int_equal(freed, 1);
  assert_int_equal(get(c, 99, 0, &got), CACHE_LRU_LEAD);
  assert_int_equal(ctr.entries, 10);
  cache_lru_destroy(c);
}

static void test_ttl(void **state) {
  (void)state;
  cache_lru_counters ctr = {0};
  cache_lru *c = cache_lru_create(1 << 20, 100 * MS, free_value, &ctr);
  int got;
  put(c, 1, 10, 0);
  assert_int_equal(get(c, 1, 99 * MS, &got), CACHE_LRU_HIT);
  assert_int_equal(get(c, 1, 100 * MS, &got), CACHE_LRU_LEAD); /* expired: dropped, a miss */
  assert_int_equal(ctr.expirations, 1);
  assert_int_equal(ctr.entries, 0);
  put(c, 1, 10, 200 * MS); /* stored again, with a new life */
  assert_int_equal(get(c, 1, 250 * MS, &got), CACHE_LRU_HIT);
  cache_lru_destroy(c);
}

/* The first miss leads; identical begins while it runs wait; finish hands them back in order,
 * and later begins hit. A failed run stores nothing and still returns its waiters. */
static void test_in_flight_waiters(void **state) {
  (void)state;
  cache_lru *c = cache_lru_create(1 << 20, 0, free_value, NULL);
  uint8_t k[CACHE_KEY_SIZE];
  key_of(7, k);
  int got = -1;
  cache_waiter w[3];
  int items[3] = {0, 1, 2};
  assert_int_equal(cache_lru_begin(c, k, 0, copy_int, &got, &(cache_waiter){0}), CACHE_LRU_LEAD);
  for (int i = 0; i < 3; i++) {
    w[i].item = &items[i];
    assert_int_equal(cache_lru_begin(c, k, 0, copy_int, &got, &w[i]), CACHE_LRU_WAIT);
  }
  /* without a waiter node a caller that cannot wait runs too, and never finishes */
  assert_int_equal(cache_lru_begin(c, k, 0, copy_int, &got, NULL), CACHE_LRU_LEAD);
  cache_waiter *back = cache_lru_finish(c, k, 0, value_of(70), 4);
  for (int i = 0; i < 3; i++, back = back->next) {
    assert_non_null(back);
    assert_ptr_equal(back, &w[i]);
  }
  assert_null(back);
  assert_int_equal(cache_lru_begin(c, k, 0, copy_int, &got, NULL), CACHE_LRU_HIT);
  assert_int_equal(got, 70);
  /* a failed lead */
  key_of(8, k);
  assert_int_equal(cache_lru_begin(c, k, 0, copy_int, &got, NULL), CACHE_LRU_LEAD);
  assert_int_equal(cache_lru_begin(c, k, 0, copy_int, &got, &w[0]), CACHE_LRU_WAIT);
  assert_ptr_equal(cache_lru_finish(c, k, 0, NULL, 0), &w[0]);
  assert_int_equal(cache_lru_begin(c, k, 0, copy_int, &got, NULL), CACHE_LRU_LEAD); /* nothing stored */
  assert_null(cache_lru_finish(c, k, 0, NULL, 0));
  cache_lru_destroy(c);
}

/* Many keys: the table grows and every one is still found. */
static void test_many_keys(void **state) {
  (void)state;
  cache_lru *c = cache_lru_create(INT64_C(64) << 20, 0, free_value, NULL);
  int got;
  for (int i = 0; i < 5000; i++) put(c, i, 16, 0);
  for (int i = 0; i < 5000; i++) {
    assert_int_equal(get(c, i, 0, &got), CACHE_LRU_HIT);
    assert_int_equal(got, i);
  }
  int64_t e, b;
  cache_lru_usage(c, &e, &b);
  assert_int_equal(e, 5000);
  cache_lru_destroy(c);
}

/* --- the canonical form ---------------------------------------------------------------------- */

static tensor make(const char *name, inferd_datatype dt, int64_t rows, int64_t cols, const void *data, size_t n) {
  tensor t;
  int64_t shape[2] = {rows, cols};
  assert_true(status_is_ok((inferd_status[]){tensor_init(&t, name, dt, shape, 2)}));
  assert_true(status_is_ok((inferd_status[]){tensor_alloc(&t, n)}));
  memcpy(t.data, data, n);
  return t;
}

static void key(const uint8_t *id, tensor *in, size_t n_in, const char **outs, size_t n_out, uint8_t k[CACHE_KEY_SIZE]) {
  inferd_status st = cache_key_compute(id, in, n_in, (char *const *)outs, n_out, k);
  assert_true(status_is_ok(&st));
}

static void test_canonical_key(void **state) {
  (void)state;
  uint8_t id[CACHE_KEY_SIZE] = {1}, id2[CACHE_KEY_SIZE] = {2};
  float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  tensor ab[2] = {make("a", DT_FP32, 1, 4, a, sizeof a), make("b", DT_FP32, 1, 4, b, sizeof b)};
  tensor ba[2] = {make("b", DT_FP32, 1, 4, b, sizeof b), make("a", DT_FP32, 1, 4, a, sizeof a)};
  const char *o12[] = {"sum", "diff"}, *o21[] = {"diff", "sum"}, *o1[] = {"sum"};
  uint8_t k1[16], k2[16], k3[16];
  /* the order of inputs and of outputs does not matter */
  key(id, ab, 2, o12, 2, k1);
  key(id, ba, 2, o21, 2, k2);
  assert_memory_equal(k1, k2, 16);
  /* each of these does */
  key(id2, ab, 2, o12, 2, k3); /* another version */
  assert_memory_not_equal(k1, k3, 16);
  key(id, ab, 2, o1, 1, k3); /* other outputs */
  assert_memory_not_equal(k1, k3, 16);
  ab[1].data[0] ^= 1; /* one bit of the data */
  key(id, ab, 2, o12, 2, k3);
  assert_memory_not_equal(k1, k3, 16);
  ab[1].data[0] ^= 1;
  ab[1].shape[0] = 2, ab[1].shape[1] = 2; /* the shape, same bytes */
  key(id, ab, 2, o12, 2, k3);
  assert_memory_not_equal(k1, k3, 16);
  ab[1].shape[0] = 1, ab[1].shape[1] = 4;
  ab[1].datatype = DT_INT32; /* the datatype, same bytes */
  key(id, ab, 2, o12, 2, k3);
  assert_memory_not_equal(k1, k3, 16);
  ab[1].datatype = DT_FP32;
  key(id, ab, 2, o12, 2, k3);
  assert_memory_equal(k1, k3, 16);
  /* names and data cannot trade bytes: "ab"+"c" against "a"+"bc" */
  tensor x = make("ab", DT_UINT8, 1, 1, "c", 1), y = make("a", DT_UINT8, 1, 1, "b", 1);
  key(id, &x, 1, o1, 1, k1);
  key(id, &y, 1, o1, 1, k2);
  assert_memory_not_equal(k1, k2, 16);
  tensor_clear(&x), tensor_clear(&y);
  tensors_free(NULL, 0);
  for (int i = 0; i < 2; i++) tensor_clear(&ab[i]), tensor_clear(&ba[i]);
}

static void test_identity_of_file(void **state) {
  (void)state;
  char path[] = "/tmp/inferd-test-cache-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  fputs("model bytes v1", f);
  fclose(f);
  uint8_t a[16], b[16], c[16];
  assert_true(status_is_ok((inferd_status[]){cache_identity_of_file("m", "1", path, a)}));
  assert_true(status_is_ok((inferd_status[]){cache_identity_of_file("m", "1", path, b)}));
  assert_memory_equal(a, b, 16); /* the same file: the same identity (replicas agree) */
  assert_true(status_is_ok((inferd_status[]){cache_identity_of_file("m", "2", path, c)}));
  assert_memory_not_equal(a, c, 16);
  f = fopen(path, "wb");
  fputs("model bytes v2", f);
  fclose(f);
  assert_true(status_is_ok((inferd_status[]){cache_identity_of_file("m", "1", path, c)}));
  assert_memory_not_equal(a, c, 16); /* a new file: a new identity */
  unlink(path);
  inferd_status st = cache_identity_of_file("m", "1", path, c);
  assert_int_not_equal(st.code, INFERD_OK);
}

/* --- config.json "response_cache" ------------------------------------------------------------- */

static void parse_ok(const char *text, model_config **cfg) {
  inferd_status st = model_config_parse(text, strlen(text), cfg);
  if (!status_is_ok(&st)) fail_msg("%s: %s", text, st.msg);
}

static void parse_err(const char *text, const char *needle) {
  model_config *cfg = NULL;
  inferd_status st = model_config_parse(text, strlen(text), &cfg);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  if (strstr(st.msg, needle) == NULL) fail_msg("'%s' not in '%s'", needle, st.msg);
}

static void test_config(void **state) {
  (void)state;
  model_config *cfg;
  parse_ok("{}", &cfg);
  assert_false(cfg->response_cache.enabled);
  model_config_destroy(cfg);
  parse_ok("{\"response_cache\": {}}", &cfg);
  assert_true(cfg->response_cache.enabled);
  assert_int_equal(cfg->response_cache.max_bytes, INT64_C(64) << 20);
  assert_int_equal(cfg->response_cache.ttl_ms, 0);
  model_config_destroy(cfg);
  parse_ok("{\"response_cache\": {\"enable\": true, \"max_bytes\": 1048576, \"ttl_ms\": 60000}}", &cfg);
  assert_true(cfg->response_cache.enabled);
  assert_int_equal(cfg->response_cache.max_bytes, 1048576);
  assert_int_equal(cfg->response_cache.ttl_ms, 60000);
  model_config_destroy(cfg);
  parse_ok("{\"response_cache\": {\"enable\": false}}", &cfg);
  assert_false(cfg->response_cache.enabled);
  model_config_destroy(cfg);
  parse_err("{\"response_cache\": true}", "response_cache must be an object");
  parse_err("{\"response_cache\": {\"enable\": 1}}", "response_cache.enable");
  parse_err("{\"response_cache\": {\"max_bytes\": 10}}", "response_cache.max_bytes");
  parse_err("{\"response_cache\": {\"ttl_ms\": -1}}", "response_cache.ttl_ms");
  parse_err("{\"response_cache\": {\"ttl\": 5}}", "unknown field response_cache.ttl");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hit_and_miss),     cmocka_unit_test(test_byte_bound_and_lru_order),
      cmocka_unit_test(test_ttl),              cmocka_unit_test(test_in_flight_waiters),
      cmocka_unit_test(test_many_keys),        cmocka_unit_test(test_canonical_key),
      cmocka_unit_test(test_identity_of_file), cmocka_unit_test(test_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
