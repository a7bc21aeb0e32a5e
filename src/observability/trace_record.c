/* observability/trace_record: one sampled request's record turned into its OTLP spans: the
 * request's server span, its queue, batch and compute children, and (from the batch's reporter)
 * the batch's own span, which every request's span links to. */
#include "observability/trace_record.h"

#include <string.h>

#include "core/status.h"

static const char *code_name(int code) {
  static const char *const names[] = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "METHOD_NOT_ALLOWED", "TOO_LARGE",
                                      "UNSUPPORTED_MEDIA", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
                                      "INTERNAL", "REQUEST_TIMEOUT", "UNAUTHENTICATED", "PERMISSION_DENIED",
                                      "RATE_LIMITED"};
  return code >= 0 && code < (int)(sizeof names / sizeof names[0]) ? names[code] : "UNKNOWN";
}

static void attr_s(otlp_span *s, const char *k, const char *v) {
  if (s->n_attrs < OTLP_MAX_ATTRS) s->attrs[s->n_attrs++] = (otlp_attr){.key = k, .kind = OTLP_ATTR_STRING, .s = v};
}

static void attr_i(otlp_span *s, const char *k, int64_t v) {
  if (s->n_attrs < OTLP_MAX_ATTRS) s->attrs[s->n_attrs++] = (otlp_attr){.key = k, .kind = OTLP_ATTR_INT, .i = v};
}

static otlp_span child(const trace_record *r, const uint8_t id[8], const uint8_t parent[8], const char *name,
                       int64_t start, int64_t end) {
  otlp_span s = {.name = name, .kind = OTLP_SPAN_KIND_INTERNAL, .flags = r->flags, .start_unix_ns = start,
                 .end_unix_ns = end < start ? start : end, .has_parent = true};
  memcpy(s.trace_id, r->trace_id, 16);
  memcpy(s.span_id, id, 8);
  memcpy(s.parent_span_id, parent, 8);
  return s;
}

size_t trace_record_spans(const trace_record *r, uint64_t salt, otlp_span *out) {
  size_t n = 0;
  bool ran = r->batch_seq != 0;
  int64_t run_end = r->run_start + r->input_ns + r->infer_ns + r->output_ns;
  uint8_t batch_trace[16], batch_span[8];
  if (ran) trace_batch_ids(salt, r->batch_seq, batch_trace, batch_span);

  otlp_span *s = &out[n++];
  *s = (otlp_span){.name = "infer", .kind = OTLP_SPAN_KIND_SERVER, .flags = r->flags, .start_unix_ns = r->start,
                   .end_unix_ns = r->end < r->start ? r->start : r->end, .has_parent = r->has_parent,
                   .trace_state = r->tracestate};
  memcpy(s->trace_id, r->trace_id, 16);
  memcpy(s->span_id, r->span_id, 8);
  memcpy(s->parent_span_id, r->parent_id, 8);
  attr_s(s, "inferd.model", r->model);
  attr_s(s, "inferd.model.version", r->version);
  attr_s(s, "inferd.protocol", r->protocol);
  attr_s(s, "inferd.status", code_name(r->code));
  attr_s(s, "inferd.request_id", r->request_id);
  attr_i(s, strcmp(r->protocol, "grpc") == 0 ? "rpc.grpc.status_code" : "http.response.status_code", r->wire_status);
  if (r->arm[0]) attr_s(s, "inferd.arm", r->arm);
  if (r->code != INFERD_OK) {
    s->status_code = OTLP_STATUS_ERROR;
    s->status_message = r->status_msg;
  }
  if (ran) {
    s->has_link = true;
    memcpy(s->link_trace_id, batch_trace, 16);
    memcpy(s->link_span_id, batch_span, 8);
  }

  out[n++] = child(r, r->queue_id, r->span_id, "queue", r->enqueue, r->run_start);
  if (!ran) return n;
  s = &out[n++];
  *s = child(r, r->batch_id, r->span_id, "batch", r->run_start, run_end);
  attr_i(s, "inferd.batch.size", r->batch_rows);
  attr_i(s, "inferd.batch.requests", r->batch_requests);
  out[n++] = child(r, r->compute_id, r->batch_id, "compute", r->run_start + r->input_ns,
                   r->run_start + r->input_ns + r->infer_ns);
  if (r->batch_reporter) {
    s = &out[n++];
    *s = (otlp_span){.name = "batch", .kind = OTLP_SPAN_KIND_INTERNAL, .flags = TRACE_FLAG_SAMPLED,
                     .start_unix_ns = r->run_start, .end_unix_ns = run_end};
    memcpy(s->trace_id, batch_trace, 16);
    memcpy(s->span_id, batch_span, 8);
    attr_s(s, "inferd.model", r->model);
    attr_s(s, "inferd.model.version", r->version);
    attr_i(s, "inferd.batch.size", r->batch_rows);
    attr_i(s, "inferd.batch.requests", r->batch_requests);
  }
  return n;
}
