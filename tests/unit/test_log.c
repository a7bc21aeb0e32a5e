/* Log lines (util/log.h): an access line or log line is one valid JSON object, whatever the
 * sizes and bytes of its fields, and never passes its buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "util/log.h"

#define GUARD 256

static char *repeat(const char *unit, size_t times) {
  size_t n = strlen(unit);
  char *s = malloc(n * times + 1);
  assert_non_null(s);
  for (size_t i = 0; i < times; i++) memcpy(s + i * n, unit, n);
  s[n * times] = '\0';
  return s;
}

/* Formats r into a LOG_ACCESS_LINE_MAX buffer with guard bytes after it (so that an overflow
 * shows without ASan too), checks the line is bounded, ends in one newline, and is one valid
 * JSON object; returns the object. */
static size_t last_len; /* the length of the line format_checked saw last */

static json_t *format_checked(const access_record *r) {
  static char mem[LOG_ACCESS_LINE_MAX + GUARD];
  memset(mem, 0xA5, sizeof mem);
  size_t n = log_access_format(r, mem, LOG_ACCESS_LINE_MAX);
  for (size_t i = LOG_ACCESS_LINE_MAX; i < sizeof mem; i++)
    if ((unsigned char)mem[i] != 0xA5) fail_msg("log_access_format wrote past its buffer at %zu", i);
  assert_true(n > 0 && n < LOG_ACCESS_LINE_MAX);
  last_len = n;
  assert_int_equal(mem[n - 1], '\n');
  assert_ptr_equal(memchr(mem, '\n', n), mem + n - 1);
  json_error_t err;
  json_t *v = json_loadb(mem, n - 1, 0, &err);
  if (!v) fail_msg("not one valid JSON object: %s at %d: %.*s", err.text, err.position, (int)n, mem);
  assert_true(json_is_object(v));
  return v;
}

static access_record record(const char *path) {
  access_record r = {
      .request_id = "req-1",
      .method = "GET",
      .path = path,
      .model = "churn",
      .version = "1",
      .status = 404,
      .latency_us = 123,
      .bytes_in = 77,
      .bytes_out = 42,
  };
  return r;
}

static void check_tail_fields(json_t *v, const access_record *r) {
  assert_string_equal(json_string_value(json_object_get(v, "type")), "access");
  assert_string_equal(json_string_value(json_object_get(v, "request_id")), r->request_id);
  assert_string_equal(json_string_value(json_object_get(v, "method")), r->method);
  assert_int_equal(json_integer_value(json_object_get(v, "status")), r->status);
  assert_int_equal(json_integer_value(json_object_get(v, "latency_us")), r->latency_us);
  assert_int_equal(json_integer_value(json_object_get(v, "bytes_in")), r->bytes_in);
  assert_int_equal(json_integer_value(json_object_get(v, "bytes_out")), r->bytes_out);
}

static void test_short_line_whole(void **state) {
  (void)state;
  access_record r = record("/v2/models/churn/ready");
  json_t *v = format_checked(&r);
  check_tail_fields(v, &r);
  assert_string_equal(json_string_value(json_object_get(v, "path")), r.path);
  assert_string_equal(json_string_value(json_object_get(v, "model")), "churn");
  assert_string_equal(json_string_value(json_object_get(v, "version")), "1");
  assert_null(json_object_get(v, "truncated"));
  json_decref(v);
  r.model = NULL;
  r.version = NULL;
  v = format_checked(&r);
  assert_true(json_is_null(json_object_get(v, "model")));
  assert_true(json_is_null(json_object_get(v, "version")));
  json_decref(v);
}

/* The path of issue 9's crash: 8,000 bytes, then 1,100 quotes (two bytes each escaped). */
static void check_long_path(const char *unit, size_t times) {
  char *path = repeat(unit, times);
  char *full = malloc(strlen(path) + 32);
  sprintf(full, "/v2/models/%s/ready", path);
  access_record r = record(full);
  json_t *v = format_checked(&r);
  check_tail_fields(v, &r);
  assert_true(json_is_true(json_object_get(v, "truncated")));
  const char *p = json_string_value(json_object_get(v, "path"));
  assert_non_null(p);
  size_t n = strlen(p);
  /* cut with the marker, a prefix of the real path, and not cut shorter than it had to be */
  assert_true(n > 3 && strcmp(p + n - 3, "...") == 0);
  assert_memory_equal(p, full, n - 3);
  /* the path was given all the room there was: the line is full but for less than one escaped
   * character (6 bytes) and the marker */
  assert_true(last_len >= LOG_ACCESS_LINE_MAX - 1 - 6 - 3);
  assert_string_equal(json_string_value(json_object_get(v, "model")), "churn");
  json_decref(v);
  free(full);
  free(path);
}

static void test_8000_byte_path(void **state) {
  (void)state;
  check_long_path("a", 8000);
}

static void test_1100_quotes(void **state) {
  (void)state;
  check_long_path("\"", 1700); /* issue 9's 1,100 quotes fit the line since it grew to 3 KiB */
}

static void test_path_of_control_and_multibyte(void **state) {
  (void)state;
  check_long_path("\x01", 2000);   /* six bytes each escaped */
  check_long_path("\xc3\xa9", 3000); /* never cut inside a character */
  check_long_path("\xe2\x82\xac\\", 1000);
}

static void test_path_just_fits(void **state) {
  (void)state;
  /* every path length around the cut: whole up to some length, cut with the marker past it */
  size_t last_whole = 0;
  for (size_t len = LOG_ACCESS_LINE_MAX - 1100; len <= LOG_ACCESS_LINE_MAX + 50; len++) {
    char *path = repeat("b", len);
    access_record r = record(path);
    json_t *v = format_checked(&r);
    const char *p = json_string_value(json_object_get(v, "path"));
    if (json_object_get(v, "truncated") == NULL) {
      assert_string_equal(p, path);
      last_whole = len;
    } else {
      assert_true(last_whole > 0 && len > last_whole);
    }
    json_decref(v);
    free(path);
  }
  assert_true(last_whole > LOG_ACCESS_LINE_MAX - 600 && last_whole < LOG_ACCESS_LINE_MAX - 100);
}

/* gRPC names the model from the request: 255 bytes (the frontends' array) of the worst bytes,
 * with a long request id and method, still leave a valid line. */
static void test_every_field_at_its_worst(void **state) {
  (void)state;
  char *model = repeat("\x02", 255);
  char *version = repeat("\"", 31);
  char *id = repeat("\"", 128);
  char *method = repeat("\x7f", 100);
  char *path = repeat("\x03", 8000);
  access_record r = record(path);
  r.model = model;
  r.version = version;
  r.request_id = id;
  r.method = method;
  r.status = INT32_MIN;
  r.latency_us = INT64_MIN;
  r.bytes_in = SIZE_MAX / 2; /* the most a JSON parser takes back (int64) */
  r.bytes_out = SIZE_MAX / 2;
  json_t *v = format_checked(&r);
  assert_true(json_is_true(json_object_get(v, "truncated")));
  assert_string_equal(json_string_value(json_object_get(v, "request_id")), id);
  assert_int_equal(json_integer_value(json_object_get(v, "latency_us")), INT64_MIN);
  assert_non_null(json_string_value(json_object_get(v, "model")));
  assert_non_null(json_string_value(json_object_get(v, "path")));
  json_decref(v);
  free(model);
  free(version);
  free(id);
  free(method);
  free(path);
}

static void test_small_buffers_stay_inside(void **state) {
  (void)state;
  char *path = repeat("\"", 1100);
  access_record r = record(path);
  for (size_t cap = 0; cap < 600; cap++) {
    char mem[600 + GUARD];
    memset(mem, 0xA5, sizeof mem);
    size_t n = log_access_format(&r, mem, cap);
    for (size_t i = cap; i < sizeof mem; i++) assert_int_equal((unsigned char)mem[i], 0xA5);
    if (cap > 0) assert_true(n < cap);
  }
  free(path);
}

/* log_msg writes to stderr: read its line back through a pipe. */
static json_t *log_msg_line(const char *model, const char *msg) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  log_msg(LOG_WARN, model, "%s", msg);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fds[1]);
  static char buf[16384];
  size_t n = 0;
  ssize_t k;
  while ((k = read(fds[0], buf + n, sizeof buf - n)) > 0) n += (size_t)k;
  close(fds[0]);
  assert_true(n > 0 && n <= 2048);
  assert_int_equal(buf[n - 1], '\n');
  assert_ptr_equal(memchr(buf, '\n', n), buf + n - 1);
  json_error_t err;
  json_t *v = json_loadb(buf, n - 1, 0, &err);
  if (!v) fail_msg("log line is not valid JSON: %s: %.*s", err.text, (int)n, buf);
  assert_string_equal(json_string_value(json_object_get(v, "level")), "warn");
  return v;
}

static void test_log_msg_long_fields(void **state) {
  (void)state;
  json_t *v = log_msg_line("churn", "plain");
  assert_string_equal(json_string_value(json_object_get(v, "msg")), "plain");
  assert_null(json_object_get(v, "truncated"));
  json_decref(v);
  char *quotes = repeat("\"", 1000);
  char *model = repeat("\x01", 1000);
  v = log_msg_line(model, quotes);
  assert_true(json_is_true(json_object_get(v, "truncated")));
  json_decref(v);
  char *big = repeat("m", 5000); /* longer than the message buffer */
  v = log_msg_line(NULL, big);
  assert_true(json_is_true(json_object_get(v, "truncated")));
  assert_null(json_object_get(v, "model"));
  json_decref(v);
  free(quotes);
  free(model);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_short_line_whole),
      cmocka_unit_test(test_8000_byte_path),
      cmocka_unit_test(test_1100_quotes),
      cmocka_unit_test(test_path_of_control_and_multibyte),
      cmocka_unit_test(test_path_just_fits),
      cmocka_unit_test(test_every_field_at_its_worst),
      cmocka_unit_test(test_small_buffers_stay_inside),
      cmocka_unit_test(test_log_msg_long_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
