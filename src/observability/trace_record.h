/* observability/trace_record: what the trace stage keeps of one sampled request for the exporter
 * (fixed size, so the export queue is one preallocated ring), and the spans made from it. */
#ifndef INFERD_TRACE_RECORD_H
#define INFERD_TRACE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "observability/trace_context.h"
#include "observability/trace_otlp.h"

#define TRACE_RECORD_SPANS 5 /* request, queue, batch, compute, the batch's own */

typedef struct trace_record {
  uint8_t trace_id[16], span_id[8], parent_id[8];
  bool has_parent;
  uint8_t flags;
  /* child spans' ids */
  uint8_t queue_id[8], batch_id[8], compute_id[8];
  char tracestate[TRACESTATE_MAX + 1];
  char request_id[130];
  char protocol[8];
  char model[256];
  char version[24];
  char arm[32];
  int code;        /* inferd_code */
  int wire_status; /* the HTTP status or gRPC code the code maps to */
  char status_msg[256];
  /* times on the Unix clock, ns */
  int64_t start, enqueue, run_start, input_ns, infer_ns, output_ns, end;
  /* the batch it ran in (batch_seq 0: it never ran) */
  uint64_t batch_seq;
  int64_t batch_rows;
  int batch_requests;
  bool batch_reporter;
} trace_record;

/* The spans of r into out[TRACE_RECORD_SPANS]; returns how many. Strings point into r. The
 * batch span's ids come from trace_batch_ids(salt, r->batch_seq). */
size_t trace_record_spans(const trace_record *r, uint64_t salt, otlp_span *out);

#endif
