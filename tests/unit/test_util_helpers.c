/* The helpers that used to be copied between files and now live once in util/: strict JSON
 * keys, the allocation arena, fs_is_dir and the monotonic clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/arena.h"
#include "util/ct.h"
#include "util/fs.h"
#include "util/jsonkeys.h"
#include "util/monotime.h"

static void test_jsonkeys(void **state) {
  (void)state;
  static const char *const allowed[] = {"name", "dims", "datatype", NULL};
  json_t *ok = json_pack("{s:s, s:[i]}", "name", "x", "dims", 3);
  json_t *bad = json_pack("{s:s, s:i}", "name", "x", "dim", 3);
  json_t *empty = json_object();
  assert_null(jsonkeys_unknown(ok, allowed));
  assert_string_equal(jsonkeys_unknown(bad, allowed), "dim");
  assert_null(jsonkeys_unknown(empty, allowed));
  static const char *const none[] = {NULL};
  assert_string_equal(jsonkeys_unknown(ok, none), "name"); /* nothing allowed: the first key */
  char buf[64];
  jsonkeys_list(allowed, buf, sizeof buf);
  assert_string_equal(buf, "name, dims, datatype");
  jsonkeys_list(allowed, buf, 8); /* truncated, still terminated */
  assert_true(strlen(buf) < 8);
  json_decref(ok);
  json_decref(bad);
  json_decref(empty);
}

static void test_arena(void **state) {
  (void)state;
  arena a = {0};
  unsigned char *z = arena_alloc(&a, 64);
  assert_non_null(z);
  for (int i = 0; i < 64; i++) assert_int_equal(z[i], 0); /* zeroed, as protobuf-c structs need */
  char *s = arena_strdup(&a, "label");
  assert_string_equal(s, "label");
  assert_non_null(arena_alloc(&a, 0)); /* a zero-size allocation is still a distinct pointer */
  assert_int_equal(a.n, 3);
  arena_free(&a);
  assert_int_equal(a.n, 0);
  assert_null(a.p);
  assert_non_null(arena_alloc(&a, 8)); /* usable again after a free */
  arena_free(&a);
}

static void test_fs_is_dir(void **state) {
  (void)state;
  assert_true(fs_is_dir("src"));                /* ctest runs in the source folder */
  assert_false(fs_is_dir("CMakeLists.txt"));    /* a file */
  assert_false(fs_is_dir("no/such/folder/here"));
}

static void test_monotime(void **state) {
  (void)state;
  int64_t a = monotime_ns(), b = monotime_ns();
  assert_true(a > 0 && b >= a);
}

/* ct_equal: equal buffers of every length around the word size, and a difference in every
 * byte position (the word loop and the tail loop each must see it). */
static void test_ct_equal(void **state) {
  (void)state;
  unsigned char a[40], b[40];
  for (size_t i = 0; i < sizeof a; i++) a[i] = b[i] = (unsigned char)(i * 37 + 1);
  for (size_t n = 0; n <= sizeof a; n++) {
    assert_true(ct_equal(a, b, n));
    for (size_t k = 0; k < n; k++)
      for (unsigned bit = 0; bit < 8; bit++) {
        b[k] ^= (unsigned char)(1u << bit);
        if (ct_equal(a, b, n)) fail_msg("length %zu: a difference in byte %zu, bit %u, was not seen", n, k, bit);
        b[k] ^= (unsigned char)(1u << bit);
      }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jsonkeys),
      cmocka_unit_test(test_ct_equal),
      cmocka_unit_test(test_arena),
      cmocka_unit_test(test_fs_is_dir),
      cmocka_unit_test(test_monotime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
