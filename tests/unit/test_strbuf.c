/* The truncating appender (util/strbuf.h): never past its capacity, JSON strings always whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "util/strbuf.h"

/* A buffer with guard bytes on both sides, so a write outside [0, cap) shows even without ASan. */
#define GUARD 64
typedef struct {
  unsigned char mem[GUARD + 4096 + GUARD];
  size_t cap;
} guarded;

static char *guarded_init(guarded *g, size_t cap) {
  assert_true(cap <= 4096);
  memset(g->mem, 0xA5, sizeof g->mem);
  g->cap = cap;
  return (char *)g->mem + GUARD;
}

static void assert_guards(const guarded *g) {
  for (size_t i = 0; i < GUARD; i++) assert_int_equal(g->mem[i], 0xA5);
  for (size_t i = GUARD + g->cap; i < sizeof g->mem; i++) assert_int_equal(g->mem[i], 0xA5);
}

static void test_append_fits_and_truncates(void **state) {
  (void)state;
  char buf[8];
  sbuf b;
  sbuf_init(&b, buf, sizeof buf);
  assert_int_equal(sbuf_room(&b), 7);
  assert_true(sbuf_append(&b, "abc"));
  assert_true(sbuf_appendc(&b, 'd'));
  assert_string_equal(buf, "abcd");
  assert_false(b.truncated);
  assert_false(sbuf_append(&b, "efghij"));
  assert_true(b.truncated);
  assert_int_equal(b.len, 7);
  assert_string_equal(buf, "abcdefg");
  assert_int_equal(sbuf_room(&b), 0);
  assert_false(sbuf_append(&b, "x"));
  assert_false(sbuf_appendc(&b, 'x'));
  assert_false(sbuf_appendf(&b, "%d", 5));
  assert_string_equal(buf, "abcdefg");
}

static void test_appendf(void **state) {
  (void)state;
  char buf[16];
  sbuf b;
  sbuf_init(&b, buf, sizeof buf);
  assert_true(sbuf_appendf(&b, "%s=%d", "n", 42));
  assert_string_equal(buf, "n=42");
  /* the case the access log overflowed on: a format longer than the room left */
  assert_false(sbuf_appendf(&b, ",%s", "a long value that does not fit"));
  assert_true(b.truncated);
  assert_int_equal(b.len, 15);
  assert_int_equal(strlen(buf), 15);
  assert_false(sbuf_appendf(&b, "%s", "more"));
  assert_int_equal(b.len, 15);
}

static void test_zero_capacity(void **state) {
  (void)state;
  guarded g;
  char *buf = guarded_init(&g, 0);
  sbuf b;
  sbuf_init(&b, buf, 0);
  assert_int_equal(sbuf_room(&b), 0);
  assert_false(sbuf_append(&b, "x"));
  assert_false(sbuf_appendf(&b, "%d", 1));
  assert_false(sbuf_append_json_string(&b, "x", SIZE_MAX));
  assert_false(sbuf_append_json_string(&b, NULL, SIZE_MAX));
  assert_int_equal(b.len, 0);
  assert_true(b.truncated);
  assert_guards(&g);
}

/* Parses a JSON string literal (as a JSON document) and returns its value; fails the test when
 * the literal is not valid JSON or not valid UTF-8. */
static char *json_value(const char *literal) {
  json_error_t err;
  json_t *v = json_loads(literal, JSON_DECODE_ANY, &err);
  if (!v) fail_msg("not valid JSON: %s (%s)", literal, err.text);
  assert_true(json_is_string(v));
  char *s = strdup(json_string_value(v));
  json_decref(v);
  return s;
}

static void test_json_escapes(void **state) {
  (void)state;
  char buf[256];
  sbuf b;
  sbuf_init(&b, buf, sizeof buf);
  const char in[] = "q\"b\\n\nr\rt\tc\x01" "d\x7f" "e\xc3\xa9" "x";
  assert_true(sbuf_append_json_string(&b, in, SIZE_MAX));
  assert_string_equal(buf, "\"q\\\"b\\\\n\\nr\\rt\\tc\\u0001d\\u007fe\xc3\xa9x\"");
  char *v = json_value(buf);
  assert_string_equal(v, in);
  free(v);
  sbuf_init(&b, buf, sizeof buf);
  assert_true(sbuf_append_json_string(&b, NULL, SIZE_MAX));
  assert_string_equal(buf, "null");
  sbuf_init(&b, buf, sizeof buf);
  assert_true(sbuf_append_json_string(&b, "", 2));
  assert_string_equal(buf, "\"\"");
}

static void test_json_invalid_utf8_replaced(void **state) {
  (void)state;
  char buf[256];
  sbuf b;
  /* a lone continuation byte, a truncated sequence, an overlong form, a surrogate, past U+10FFFF */
  const char *bad[] = {"a\x80z", "a\xc3", "a\xc0\xafz", "a\xed\xa0\x80z", "a\xf4\x90\x80\x80z", "\xff"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sbuf_init(&b, buf, sizeof buf);
    assert_true(sbuf_append_json_string(&b, bad[i], SIZE_MAX));
    assert_non_null(strstr(buf, "\\ufffd"));
    free(json_value(buf));
  }
  sbuf_init(&b, buf, sizeof buf); /* 4-byte sequences pass as they are */
  assert_true(sbuf_append_json_string(&b, "\xf0\x9f\x98\x80", SIZE_MAX));
  assert_string_equal(buf, "\"\xf0\x9f\x98\x80\"");
}

static void test_json_cut_with_marker(void **state) {
  (void)state;
  char buf[64];
  sbuf b;
  sbuf_init(&b, buf, sizeof buf);
  assert_false(sbuf_append_json_string(&b, "abcdefghij", 10));
  assert_true(b.truncated);
  assert_string_equal(buf, "\"abcde...\"");
  /* never inside an escape */
  sbuf_init(&b, buf, sizeof buf);
  assert_false(sbuf_append_json_string(&b, "\"\"\"\"\"", 9));
  assert_string_equal(buf, "\"\\\"\\\"...\"");
  /* not even "..." fits: nothing */
  sbuf_init(&b, buf, sizeof buf);
  assert_true(sbuf_append(&b, "k:"));
  assert_false(sbuf_append_json_string(&b, "abcdef", 4));
  assert_string_equal(buf, "k:");
  /* the room, not only max, bounds it */
  char small[12];
  sbuf_init(&b, small, sizeof small);
  assert_true(sbuf_append(&b, "xx"));
  assert_false(sbuf_append_json_string(&b, "0123456789", SIZE_MAX));
  assert_string_equal(small, "xx\"0123...\"");
}

/* Every capacity, every max, inputs of every kind: the appender stays inside its buffer, the
 * result is NUL-terminated at len, and each string it appends whole is valid JSON. */
static void test_never_past_capacity(void **state) {
  (void)state;
  char input[3 * 1100 + 1];
  size_t k = 0;
  for (size_t i = 0; i < 1100; i++) { /* quotes, control bytes, multi-byte and invalid UTF-8 */
    static const char *units[] = {"\"", "\x01", "\xc3\xa9", "a", "\\", "\xff", "\xe2\x82\xac"};
    const char *u = units[i % 7];
    size_t n = strlen(u);
    if (k + n >= sizeof input) break;
    memcpy(input + k, u, n);
    k += n;
  }
  input[k] = '\0';
  for (size_t cap = 0; cap <= 300; cap++) {
    for (size_t max = 0; max <= 310; max += 7) {
      guarded g;
      char *buf = guarded_init(&g, cap);
      sbuf b;
      sbuf_init(&b, buf, cap);
      sbuf_append(&b, "{\"k\":");
      size_t before = b.len;
      sbuf_append_json_string(&b, input + (max % 13), max);
      assert_true(b.len - before <= max);
      sbuf_appendf(&b, ",\"n\":%zu}", cap);
      assert_guards(&g);
      if (cap > 0) {
        assert_true(b.len < cap);
        assert_int_equal(strlen(buf), b.len);
      }
      if (!b.truncated) {
        json_error_t err;
        json_t *v = json_loads(buf, 0, &err);
        if (!v) fail_msg("cap %zu max %zu: not valid JSON: %s", cap, max, buf);
        json_decref(v);
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_fits_and_truncates),
      cmocka_unit_test(test_appendf),
      cmocka_unit_test(test_zero_capacity),
      cmocka_unit_test(test_json_escapes),
      cmocka_unit_test(test_json_invalid_utf8_replaced),
      cmocka_unit_test(test_json_cut_with_marker),
      cmocka_unit_test(test_never_past_capacity),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
