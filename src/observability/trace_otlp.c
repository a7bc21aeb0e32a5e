/* observability/trace_otlp: OTLP's protobuf wire format by hand (varints, length-delimited
 * fields, fixed64 times; field numbers from opentelemetry/proto/{collector/trace,trace,common,
 * resource}/v1) and its JSON mapping (lowerCamelCase keys, hex ids, 64-bit integers as strings). */
#include "observability/trace_otlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observability/trace_context.h"

void otlp_buf_reset(otlp_buf *b) {
  b->len = 0;
  b->failed = false;
}

void otlp_buf_free(otlp_buf *b) {
  free(b->p);
  *b = (otlp_buf){0};
}

static bool reserve(otlp_buf *b, size_t more) {
  if (b->failed) return false;
  if (b->len + more <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (p == NULL) {
    b->failed = true;
    return false;
  }
  b->p = p;
  b->cap = cap;
  return true;
}

static void put(otlp_buf *b, const void *d, size_t n) {
  if (!reserve(b, n)) return;
  memcpy(b->p + b->len, d, n);
  b->len += n;
}

/* ---- protobuf ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, n++;
  return n;
}

static void varint_at(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p = (uint8_t)v;
}

static void pb_varint(otlp_buf *b, uint64_t v) {
  if (!reserve(b, 10)) return;
  varint_at(b->p + b->len, v);
  b->len += varint_size(v);
}

static void pb_tag(otlp_buf *b, int field, int wt) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wt); }

static void pb_bytes(otlp_buf *b, int field, const void *d, size_t n) {
  pb_tag(b, field, WT_LEN);
  pb_varint(b, n);
  put(b, d, n);
}

static void pb_string(otlp_buf *b, int field, const char *s) {
  if (s && *s) pb_bytes(b, field, s, strlen(s));
}

static void pb_fixed64(otlp_buf *b, int field, uint64_t v) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
  pb_tag(b, field, WT_I64);
  put(b, le, 8);
}

static void pb_fixed32(otlp_buf *b, int field, uint32_t v) {
  uint8_t le[4];
  for (int i = 0; i < 4; i++) le[i] = (uint8_t)(v >> (8 * i));
  pb_tag(b, field, WT_I32);
  put(b, le, 4);
}

/* A nested message: its tag and one byte for the length now; pb_end writes the length once the
 * body is known, moving the body when the length needs more than one byte. */
static size_t pb_begin(otlp_buf *b, int field) {
  pb_tag(b, field, WT_LEN);
  if (!reserve(b, 1)) return 0;
  b->p[b->len++] = 0;
  return b->len;
}

static void pb_end(otlp_buf *b, size_t body) {
  if (b->failed) return;
  size_t n = b->len - body, extra = varint_size(n) - 1;
  if (extra && !reserve(b, extra)) return;
  memmove(b->p + body + extra, b->p + body, n);
  varint_at(b->p + body - 1, n);
  b->len += extra;
}

/* KeyValue { string key = 1; AnyValue value = 2 }, AnyValue { string_value = 1; bool_value = 2;
 * int_value = 3 } */
static void pb_attr(otlp_buf *b, int field, const otlp_attr *a) {
  size_t kv = pb_begin(b, field);
  pb_string(b, 1, a->key);
  size_t v = pb_begin(b, 2);
  if (a->kind == OTLP_ATTR_STRING) {
    pb_bytes(b, 1, a->s ? a->s : "", a->s ? strlen(a->s) : 0);
  } else if (a->kind == OTLP_ATTR_BOOL) {
    pb_tag(b, 2, WT_VARINT);
    pb_varint(b, a->i ? 1 : 0);
  } else {
    pb_tag(b, 3, WT_VARINT);
    pb_varint(b, (uint64_t)a->i);
  }
  pb_end(b, v);
  pb_end(b, kv);
}

/* Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6,
 * start_time_unix_nano 7, end_time_unix_nano 8, attributes 9, links 13, status 15, flags 16.
 * Link: trace_id 1, span_id 2. Status: message 2, code 3. */
static void pb_span(otlp_buf *b, const otlp_span *s) {
  size_t sp = pb_begin(b, 2); /* ScopeSpans.spans */
  pb_bytes(b, 1, s->trace_id, 16);
  pb_bytes(b, 2, s->span_id, 8);
  pb_string(b, 3, s->trace_state);
  if (s->has_parent) pb_bytes(b, 4, s->parent_span_id, 8);
  pb_string(b, 5, s->name);
  pb_tag(b, 6, WT_VARINT);
  pb_varint(b, (uint64_t)s->kind);
  pb_fixed64(b, 7, (uint64_t)s->start_unix_ns);
  pb_fixed64(b, 8, (uint64_t)s->end_unix_ns);
  for (int i = 0; i < s->n_attrs; i++) pb_attr(b, 9, &s->attrs[i]);
  if (s->has_link) {
    size_t l = pb_begin(b, 13);
    pb_bytes(b, 1, s->link_trace_id, 16);
    pb_bytes(b, 2, s->link_span_id, 8);
    pb_end(b, l);
  }
  if (s->status_code != OTLP_STATUS_UNSET) {
    size_t st = pb_begin(b, 15);
    pb_string(b, 2, s->status_message);
    pb_tag(b, 3, WT_VARINT);
    pb_varint(b, (uint64_t)s->status_code);
    pb_end(b, st);
  }
  pb_fixed32(b, 16, s->flags);
  pb_end(b, sp);
}

/* ExportTraceServiceRequest { resource_spans = 1 }; ResourceSpans { resource = 1;
 * scope_spans = 2 }; Resource { attributes = 1 }; ScopeSpans { scope = 1; spans = 2 };
 * InstrumentationScope { name = 1; version = 2 } */
bool otlp_encode_proto(const otlp_resource *res, const otlp_span *spans, size_t n, otlp_buf *b) {
  otlp_buf_reset(b);
  size_t rs = pb_begin(b, 1);
  size_t r = pb_begin(b, 1);
  otlp_attr name = {.key = "service.name", .kind = OTLP_ATTR_STRING, .s = res->service_name};
  otlp_attr version = {.key = "service.version", .kind = OTLP_ATTR_STRING, .s = res->service_version};
  pb_attr(b, 1, &name);
  if (res->service_version) pb_attr(b, 1, &version);
  pb_end(b, r);
  size_t ss = pb_begin(b, 2);
  size_t sc = pb_begin(b, 1);
  pb_string(b, 1, res->scope_name);
  pb_string(b, 2, res->scope_version);
  pb_end(b, sc);
  for (size_t i = 0; i < n; i++) pb_span(b, &spans[i]);
  pb_end(b, ss);
  pb_end(b, rs);
  return !b->failed;
}

/* ---- JSON ---- */

static void js(otlp_buf *b, const char *s) { put(b, s, strlen(s)); }

static void js_string(otlp_buf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      put(b, e, 2);
    } else if (*p < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
      put(b, e, 6);
    } else {
      put(b, p, 1);
    }
  }
  put(b, "\"", 1);
}

static void js_hex(otlp_buf *b, const uint8_t *d, size_t n) {
  char h[33];
  trace_hex(d, n, h);
  put(b, "\"", 1);
  put(b, h, 2 * n);
  put(b, "\"", 1);
}

static void js_attr(otlp_buf *b, const otlp_attr *a) {
  char num[64];
  js(b, "{\"key\":");
  js_string(b, a->key);
  js(b, ",\"value\":{");
  if (a->kind == OTLP_ATTR_STRING) {
    js(b, "\"stringValue\":");
    js_string(b, a->s);
  } else if (a->kind == OTLP_ATTR_BOOL) {
    js(b, a->i ? "\"boolValue\":true" : "\"boolValue\":false");
  } else {
    snprintf(num, sizeof num, "\"intValue\":\"%lld\"", (long long)a->i);
    js(b, num);
  }
  js(b, "}}");
}

static void js_span(otlp_buf *b, const otlp_span *s) {
  char num[192];
  js(b, "{\"traceId\":");
  js_hex(b, s->trace_id, 16);
  js(b, ",\"spanId\":");
  js_hex(b, s->span_id, 8);
  if (s->trace_state && *s->trace_state) {
    js(b, ",\"traceState\":");
    js_string(b, s->trace_state);
  }
  if (s->has_parent) {
    js(b, ",\"parentSpanId\":");
    js_hex(b, s->parent_span_id, 8);
  }
  js(b, ",\"name\":");
  js_string(b, s->name);
  snprintf(num, sizeof num, ",\"kind\":%d,\"flags\":%u,\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\"",
           s->kind, s->flags, (long long)s->start_unix_ns, (long long)s->end_unix_ns);
  js(b, num);
  js(b, ",\"attributes\":[");
  for (int i = 0; i < s->n_attrs; i++) {
    if (i) js(b, ",");
    js_attr(b, &s->attrs[i]);
  }
  js(b, "]");
  if (s->has_link) {
    js(b, ",\"links\":[{\"traceId\":");
    js_hex(b, s->link_trace_id, 16);
    js(b, ",\"spanId\":");
    js_hex(b, s->link_span_id, 8);
    js(b, "}]");
  }
  if (s->status_code != OTLP_STATUS_UNSET) {
    snprintf(num, sizeof num, ",\"status\":{\"code\":%d", s->status_code);
    js(b, num);
    if (s->status_message && *s->status_message) {
      js(b, ",\"message\":");
      js_string(b, s->status_message);
    }
    js(b, "}");
  }
  js(b, "}");
}

bool otlp_encode_json(const otlp_resource *res, const otlp_span *spans, size_t n, otlp_buf *b) {
  otlp_buf_reset(b);
  otlp_attr name = {.key = "service.name", .kind = OTLP_ATTR_STRING, .s = res->service_name};
  otlp_attr version = {.key = "service.version", .kind = OTLP_ATTR_STRING, .s = res->service_version};
  js(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  js_attr(b, &name);
  if (res->service_version) {
    js(b, ",");
    js_attr(b, &version);
  }
  js(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":");
  js_string(b, res->scope_name);
  js(b, ",\"version\":");
  js_string(b, res->scope_version);
  js(b, "},\"spans\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) js(b, ",");
    js_span(b, &spans[i]);
  }
  js(b, "]}]}]}");
  return !b->failed;
}
