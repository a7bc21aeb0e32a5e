/* observability/trace_otlp: finished spans encoded as an OTLP ExportTraceServiceRequest, in
 * protobuf (hand-encoded: the few messages OTLP/HTTP needs) or OTLP/JSON. Pure: a test decodes
 * the bytes with an independent implementation. */
#ifndef INFERD_TRACE_OTLP_H
#define INFERD_TRACE_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* opentelemetry.proto.trace.v1.Span.SpanKind and Status.StatusCode */
enum { OTLP_SPAN_KIND_INTERNAL = 1, OTLP_SPAN_KIND_SERVER = 2 };
enum { OTLP_STATUS_UNSET = 0, OTLP_STATUS_OK = 1, OTLP_STATUS_ERROR = 2 };

typedef enum { OTLP_ATTR_STRING, OTLP_ATTR_INT, OTLP_ATTR_BOOL } otlp_attr_kind;

typedef struct otlp_attr {
  const char *key;
  otlp_attr_kind kind;
  const char *s; /* OTLP_ATTR_STRING */
  int64_t i;     /* OTLP_ATTR_INT; OTLP_ATTR_BOOL: 0 or 1 */
} otlp_attr;

#define OTLP_MAX_ATTRS 10

typedef struct otlp_span {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_span_id[8];
  bool has_parent;
  const char *trace_state; /* NULL or "": none */
  const char *name;
  int kind;
  uint32_t flags; /* Span.flags: the W3C trace flags in the low byte */
  int64_t start_unix_ns, end_unix_ns;
  otlp_attr attrs[OTLP_MAX_ATTRS];
  int n_attrs;
  bool has_link; /* one link at most: the request's batch */
  uint8_t link_trace_id[16];
  uint8_t link_span_id[8];
  int status_code;
  const char *status_message; /* NULL or "": none */
} otlp_span;

typedef struct otlp_resource {
  const char *service_name;
  const char *service_version;
  const char *scope_name;
  const char *scope_version;
} otlp_resource;

/* A growable byte buffer; `failed` once an allocation failed (the bytes are then unusable). */
typedef struct otlp_buf {
  uint8_t *p; /* owned */
  size_t len, cap;
  bool failed;
} otlp_buf;
void otlp_buf_reset(otlp_buf *b);
void otlp_buf_free(otlp_buf *b);

/* Appends one ExportTraceServiceRequest holding spans[0..n) under one resource and scope to b
 * (after reset). False when out of memory. */
bool otlp_encode_proto(const otlp_resource *res, const otlp_span *spans, size_t n, otlp_buf *b);
bool otlp_encode_json(const otlp_resource *res, const otlp_span *spans, size_t n, otlp_buf *b);

#endif
