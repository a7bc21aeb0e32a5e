/* W3C Trace Context parsing and formatting against the spec's valid and invalid examples, the
 * sampling rule, the ids, the export URL, and the spans one traced request makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "observability/trace.h"
#include "observability/trace_context.h"
#include "observability/trace_record.h"

static const char *const SPEC_EXAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void test_traceparent_valid(void **state) {
  (void)state;
  trace_context c;
  assert_true(trace_parent_parse(SPEC_EXAMPLE, &c));
  static const uint8_t tid[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                  0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  static const uint8_t sid[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
  assert_memory_equal(c.trace_id, tid, 16);
  assert_memory_equal(c.span_id, sid, 8);
  assert_int_equal(c.flags, 1);
  char out[TRACEPARENT_LEN + 1];
  trace_parent_format(c.trace_id, c.span_id, c.flags, out);
  assert_string_equal(out, SPEC_EXAMPLE);
  /* not sampled */
  assert_true(trace_parent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c));
  assert_int_equal(c.flags, 0);
  /* unknown flag bits are read (only the sampled bit means anything) */
  assert_true(trace_parent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &c));
  assert_int_equal(c.flags & TRACE_FLAG_SAMPLED, 1);
  /* surrounding whitespace (a header's OWS) */
  assert_true(trace_parent_parse(" \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", &c));
  /* a later version: read by the 00 layout, more fields after a dash allowed */
  assert_true(trace_parent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c));
  assert_true(trace_parent_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like", &c));
}

static void test_traceparent_invalid(void **state) {
  (void)state;
  static const char *const bad[] = {
      NULL,
      "",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* all-zero trace id */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* all-zero parent id */
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase trace id */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", /* uppercase parent id */
      "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* uppercase version */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", /* uppercase flags */
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  /* trace id 31 digits */
      "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01", /* trace id 33 digits */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  /* parent id 15 digits */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01", /* parent id 17 digits */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  /* flags 1 digit */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", /* flags 3 digits */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* version 00 with more */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what", /* later version, no dash */
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* wrong separators */
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01", /* not hex */
      "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version 1 digit */
      "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    trace_context c = {.flags = 0x42};
    if (trace_parent_parse(bad[i], &c)) fail_msg("accepted invalid traceparent '%s'", bad[i] ? bad[i] : "(null)");
    assert_int_equal(c.flags, 0x42); /* untouched */
  }
}

static void test_tracestate(void **state) {
  (void)state;
  char out[TRACESTATE_MAX + 1];
  assert_true(trace_state_parse("congo=t61rcWkgMzE", out));
  assert_string_equal(out, "congo=t61rcWkgMzE");
  assert_true(trace_state_parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", out));
  assert_true(trace_state_parse(" rojo=00f067aa0ba902b7 ,\t, congo=t61rcWkgMzE ", out)); /* OWS, empty member */
  assert_string_equal(out, "rojo=00f067aa0ba902b7 ,\t, congo=t61rcWkgMzE");
  assert_true(trace_state_parse("fw529a3039@dt=value with space", out)); /* multi-tenant key */
  assert_true(trace_state_parse("a_b-c*d/e=1", out));
  assert_true(trace_state_parse("", out));
  static const char *const bad[] = {
      "Congo=1",           /* uppercase key */
      "1abc=1",            /* simple key starting with a digit */
      "congo",             /* no value */
      "congo=",            /* empty value */
      "congo=a=b",         /* '=' in value */
      "congo=trailing ",   /* value ending in a space... trimmed as OWS of the list: see below */
      "rojo=1,rojo=2",     /* duplicate key */
      "@dt=1",             /* empty tenant */
      "t@=1",              /* empty system */
      "t@Dt=1",            /* system id starting uppercase */
      "t@abcdefghijklmno=1", /* system id of 15 */
      "congo=caf\xc3\xa9", /* non-ASCII */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (i == 5) continue; /* "congo=trailing " is valid: the space is list OWS, trimmed */
    if (trace_state_parse(bad[i], out)) fail_msg("accepted invalid tracestate '%s'", bad[i]);
  }
  assert_true(trace_state_parse(bad[5], out));
  assert_string_equal(out, "congo=trailing");
  /* 32 members pass, 33 do not */
  char list[1024] = "";
  for (int i = 0; i < 33; i++) {
    char m[16];
    snprintf(m, sizeof m, "%sk%d=v", i ? "," : "", i);
    if (i == 32) {
      assert_true(trace_state_parse(list, out));
    }
    strcat(list, m);
  }
  assert_false(trace_state_parse(list, out));
  /* longer than 512 */
  char longv[600];
  memset(longv, 'x', sizeof longv);
  memcpy(longv, "k=", 2);
  longv[599] = '\0';
  assert_false(trace_state_parse(longv, out));
}

static void test_sampling(void **state) {
  (void)state;
  uint8_t tid[16] = {0};
  trace_context sampled = {.flags = 1}, unsampled = {.flags = 0};
  assert_true(trace_should_sample(&sampled, tid, 0.0));   /* the caller's sampled flag wins */
  assert_false(trace_should_sample(&unsampled, tid, 1.0)); /* and so does its unsampled one */
  tid[8] = 0x7f, tid[15] = 0xff;
  assert_true(trace_should_sample(NULL, tid, 0.5));
  tid[8] = 0x80, tid[15] = 0x01;
  assert_false(trace_should_sample(NULL, tid, 0.5));
  assert_true(trace_should_sample(NULL, tid, 1.0));
  assert_false(trace_should_sample(NULL, tid, 0.0));
  /* the ratio holds over random ids */
  trace_rng r;
  trace_rng_seed(&r, 12345);
  int hits = 0;
  for (int i = 0; i < 20000; i++) {
    trace_new_trace_id(&r, tid);
    hits += trace_should_sample(NULL, tid, 0.25);
  }
  assert_in_range(hits, 4600, 5400);
}

static void test_ids(void **state) {
  (void)state;
  trace_rng r;
  trace_rng_seed(&r, 0); /* a zero seed still makes ids */
  uint8_t a[16], b[16], s[8];
  trace_new_trace_id(&r, a);
  trace_new_trace_id(&r, b);
  assert_memory_not_equal(a, b, 16);
  trace_new_span_id(&r, s);
  static const uint8_t zero[16] = {0};
  assert_memory_not_equal(s, zero, 8);
  uint8_t t1[16], s1[8], t2[16], s2[8], t3[16], s3[8];
  trace_batch_ids(99, 7, t1, s1);
  trace_batch_ids(99, 7, t2, s2);
  trace_batch_ids(99, 8, t3, s3);
  assert_memory_equal(t1, t2, 16); /* every request of a batch computes the same link */
  assert_memory_equal(s1, s2, 8);
  assert_memory_not_equal(t1, t3, 16);
  assert_memory_not_equal(s1, s3, 8);
  char hex[33];
  trace_hex((const uint8_t *)"\x01\xab", 2, hex);
  assert_string_equal(hex, "01ab");
  char timing[96];
  trace_server_timing(1234567, 89000, timing, sizeof timing);
  assert_string_equal(timing, "queue;dur=1.235, compute;dur=0.089");
  trace_server_timing(0, INT64_C(12345678901), timing, sizeof timing);
  assert_string_equal(timing, "queue;dur=0.000, compute;dur=12345.679");
  trace_server_timing(-5, 999, timing, sizeof timing); /* rounds to the µs; never negative */
  assert_string_equal(timing, "queue;dur=0.000, compute;dur=0.001");
  trace_server_timing(1000000, 1000000, timing, 12); /* cut to the room given */
  assert_string_equal(timing, "queue;dur=1");
}

static void test_export_url(void **state) {
  (void)state;
  char url[256];
  inferd_status st = trace_export_url("http://127.0.0.1:4318", url, sizeof url);
  assert_true(status_is_ok(&st));
  assert_string_equal(url, "http://127.0.0.1:4318/v1/traces");
  st = trace_export_url("https://collector:4318/", url, sizeof url);
  assert_string_equal(url, "https://collector:4318/v1/traces");
  st = trace_export_url("http://collector:4318/custom/path", url, sizeof url);
  assert_string_equal(url, "http://collector:4318/custom/path");
  st = trace_export_url("collector:4318", url, sizeof url);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "--otlp-endpoint"));
  st = trace_export_url("http://", url, sizeof url);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
}

static void test_record_spans(void **state) {
  (void)state;
  trace_record r = {.has_parent = true, .flags = 1, .code = 0, .wire_status = 200, .start = 1000, .enqueue = 2000,
                    .run_start = 5000, .input_ns = 100, .infer_ns = 700, .output_ns = 200, .end = 7000,
                    .batch_seq = 42, .batch_rows = 3, .batch_requests = 2, .batch_reporter = true};
  memset(r.trace_id, 0x11, 16);
  memset(r.span_id, 0x22, 8);
  memset(r.parent_id, 0x33, 8);
  memset(r.queue_id, 0x44, 8);
  memset(r.batch_id, 0x55, 8);
  memset(r.compute_id, 0x66, 8);
  strcpy(r.model, "m");
  strcpy(r.protocol, "http");
  otlp_span s[TRACE_RECORD_SPANS];
  assert_int_equal(trace_record_spans(&r, 9, s), 5);
  assert_string_equal(s[0].name, "infer");
  assert_int_equal(s[0].kind, OTLP_SPAN_KIND_SERVER);
  assert_memory_equal(s[0].parent_span_id, r.parent_id, 8);
  assert_true(s[0].has_link);
  assert_memory_equal(s[1].parent_span_id, r.span_id, 8); /* queue under the request */
  assert_int_equal(s[1].start_unix_ns, 2000);
  assert_int_equal(s[1].end_unix_ns, 5000);
  assert_memory_equal(s[2].parent_span_id, r.span_id, 8); /* batch under the request */
  assert_int_equal(s[2].end_unix_ns, 6000);
  assert_memory_equal(s[3].parent_span_id, r.batch_id, 8); /* compute under batch */
  assert_int_equal(s[3].start_unix_ns, 5100);
  assert_int_equal(s[3].end_unix_ns, 5800);
  assert_memory_equal(s[4].trace_id, s[0].link_trace_id, 16); /* the batch's own span, linked */
  assert_memory_equal(s[4].span_id, s[0].link_span_id, 8);
  assert_false(s[4].has_parent);
  r.batch_reporter = false;
  assert_int_equal(trace_record_spans(&r, 9, s), 4);
  r.batch_seq = 0; /* never ran: the request and its queue wait */
  assert_int_equal(trace_record_spans(&r, 9, s), 2);
  assert_false(s[0].has_link);
}

/* OTLP/JSON with real-sized values parses, and keeps its 64-bit numbers as strings. */
static void test_otlp_json(void **state) {
  (void)state;
  otlp_resource res = {.service_name = "svc \"quoted\"", .service_version = "1", .scope_name = "inferd", .scope_version = "1"};
  otlp_span s[2] = {{.name = "infer", .kind = OTLP_SPAN_KIND_SERVER, .flags = 1, .start_unix_ns = INT64_C(1796000111725324990),
                     .end_unix_ns = INT64_C(1796000111725999999), .n_attrs = 1, .has_link = true,
                     .status_code = OTLP_STATUS_ERROR, .status_message = "line\nbreak"},
                    {.name = "queue", .kind = OTLP_SPAN_KIND_INTERNAL, .has_parent = true,
                     .start_unix_ns = INT64_C(1796000111725324991), .end_unix_ns = INT64_C(1796000111725324999)}};
  s[0].attrs[0] = (otlp_attr){.key = "inferd.batch.size", .kind = OTLP_ATTR_INT, .i = INT64_C(-9223372036854775807)};
  otlp_buf b = {0};
  assert_true(otlp_encode_json(&res, s, 2, &b));
  json_error_t err;
  json_t *doc = json_loadb((const char *)b.p, b.len, 0, &err);
  if (doc == NULL) fail_msg("OTLP/JSON does not parse: %s at %d: %.*s", err.text, err.position, (int)b.len, b.p);
  json_t *spans = json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0),
                                                                "scopeSpans"), 0), "spans");
  assert_int_equal(json_array_size(spans), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(spans, 0), "startTimeUnixNano")),
                      "1796000111725324990");
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(spans, 0), "status"), "message")),
                      "line\nbreak");
  json_decref(doc);
  otlp_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_traceparent_valid), cmocka_unit_test(test_traceparent_invalid),
      cmocka_unit_test(test_tracestate),        cmocka_unit_test(test_sampling),
      cmocka_unit_test(test_ids),               cmocka_unit_test(test_export_url),
      cmocka_unit_test(test_record_spans),      cmocka_unit_test(test_otlp_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
