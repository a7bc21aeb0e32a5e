/* The access-log formatter (util/log.c): every field of a line but the numbers comes from the
 * client (request id header, method, path, model name from the path). Whatever they hold, the
 * line must stay inside its LOG_ACCESS_LINE_MAX buffer, be one line ending in '\n', and be a
 * JSON object (log.h's contract): every field given back as sent, or, when the line says
 * "truncated", cut to a prefix ending in "..."; the numbers exact.
 *
 * Input: 16 bytes of numbers (status, latency, sizes), then the fields separated by '\x01'
 * in the order request_id, method, path, model, version (a missing field is NULL). */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static void fail(const char *what, const char *line, size_t n) {
  fprintf(stderr, "access log line: %s: %.*s\n", what, (int)n, line);
  abort();
}

static bool utf8_ok(const char *s) {
  json_t *j = json_string(s);
  json_decref(j);
  return j != NULL;
}

/* A field as sent (when it is UTF-8: other bytes are replaced), or, on a truncated line, a
 * prefix of it ending in "...". */
static void check_field(json_t *doc, bool truncated, const char *key, const char *sent, const char *line, size_t n) {
  json_t *v = json_object_get(doc, key);
  if (sent == NULL) {
    if (!json_is_null(v)) fail(key, line, n);
    return;
  }
  if (!json_is_string(v)) fail(key, line, n);
  if (!utf8_ok(sent)) return;
  const char *got = json_string_value(v);
  size_t len = strlen(got);
  if (strcmp(got, sent) == 0) return;
  if (truncated && len >= 3 && strcmp(got + len - 3, "...") == 0 && strncmp(got, sent, len - 3) == 0) return;
  fail(key, line, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 16) return 0;
  access_record r = {0};
  int32_t status;
  uint32_t sizes;
  int64_t latency;
  memcpy(&status, data, 4);
  memcpy(&sizes, data + 4, 4);
  memcpy(&latency, data + 8, 8);
  r.status = status;
  r.latency_us = latency;
  r.bytes_in = sizes & 0xffff;
  r.bytes_out = (size_t)sizes << 20;
  data += 16;
  size -= 16;

  /* the fields, NUL-terminated copies (a NUL in the input ends a field early, as in C) */
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  const char *fields[5] = {0};
  char *p = text;
  for (int i = 0; i < 5 && p; i++) {
    fields[i] = p;
    p = strchr(p, '\x01');
    if (p) *p++ = '\0';
  }
  r.request_id = fields[0] ? fields[0] : "";
  r.method = fields[1] ? fields[1] : "GET";
  r.path = fields[2] ? fields[2] : "/";
  r.model = fields[3];
  r.version = fields[4];

  /* exactly the capacity the frontends give it, on the heap so ASan sees one byte past it */
  const size_t cap = LOG_ACCESS_LINE_MAX;
  char *line = malloc(cap);
  size_t n = log_access_format(&r, line, cap);
  if (n == 0 || n >= cap) fail("length outside the buffer", line, n >= cap ? cap : n);
  if (line[n - 1] != '\n') fail("no newline at the end", line, n);
  if (memchr(line, '\n', n - 1)) fail("a newline inside the line", line, n);

  json_error_t err;
  json_t *doc = json_loadb(line, n, 0, &err);
  if (!json_is_object(doc)) fail(err.text, line, n);
  bool truncated = json_is_true(json_object_get(doc, "truncated"));
  check_field(doc, truncated, "request_id", r.request_id, line, n);
  check_field(doc, truncated, "method", r.method, line, n);
  check_field(doc, truncated, "path", r.path, line, n);
  check_field(doc, truncated, "model", r.model, line, n);
  check_field(doc, truncated, "version", r.version, line, n);
  if (json_integer_value(json_object_get(doc, "status")) != r.status ||
      json_integer_value(json_object_get(doc, "latency_us")) != r.latency_us ||
      json_integer_value(json_object_get(doc, "bytes_in")) != (json_int_t)r.bytes_in ||
      json_integer_value(json_object_get(doc, "bytes_out")) != (json_int_t)r.bytes_out)
    fail("numbers", line, n);
  json_decref(doc);
  free(line);
  free(text);
  return 0;
}
