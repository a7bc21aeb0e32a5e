/* observability/trace_context: W3C Trace Context (traceparent, tracestate) parsed and formatted,
 * trace and span ids made, and the head-sampling decision. Pure: no clock, no global state. */
#ifndef INFERD_TRACE_CONTEXT_H
#define INFERD_TRACE_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_FLAG_SAMPLED 0x01
#define TRACEPARENT_LEN 55       /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define TRACESTATE_MAX 512       /* the length every participant must propagate */
#define TRACESTATE_MAX_MEMBERS 32

typedef struct trace_context {
  uint8_t trace_id[16];
  uint8_t span_id[8]; /* the caller's span (parent-id in traceparent) */
  uint8_t flags;      /* trace-flags as received (only TRACE_FLAG_SAMPLED means anything in 00) */
} trace_context;

/* Parses a traceparent header value. False (ctx untouched) when it is not a valid one: wrong
 * lengths or separators, uppercase or non-hex digits, version ff, an all-zero trace or parent
 * id, or (version 00) anything after the flags. A later version is read by its 00 prefix when
 * what follows is "-..." as the spec requires. Leading and trailing spaces/tabs are allowed. */
bool trace_parent_parse(const char *s, trace_context *ctx);

/* "00-<trace id>-<span id>-<flags>" into out[TRACEPARENT_LEN + 1]. */
void trace_parent_format(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                         char out[TRACEPARENT_LEN + 1]);

/* Checks a tracestate value (list members key=value separated by commas, optional spaces,
 * empty members allowed) and copies it, trimmed, into out[TRACESTATE_MAX + 1]. False when it is
 * invalid (bad key or value, over 32 members, a duplicate key, longer than 512 bytes): the spec
 * lets a participant drop a tracestate it cannot parse, which is what the caller does. */
bool trace_state_parse(const char *s, char out[TRACESTATE_MAX + 1]);

/* Lower-case hex of n bytes into out[2n + 1]. */
void trace_hex(const uint8_t *bytes, size_t n, char *out);

/* A per-thread generator of ids: xorshift64*, seeded once from getrandom. Ids need to be
 * unique and unguessable enough to avoid collisions, not secret. */
typedef struct trace_rng {
  uint64_t state;
} trace_rng;
void trace_rng_seed(trace_rng *r, uint64_t seed);
uint64_t trace_rng_next(trace_rng *r);
/* Random ids, never all zero (an all-zero id is invalid). */
void trace_new_trace_id(trace_rng *r, uint8_t out[16]);
void trace_new_span_id(trace_rng *r, uint8_t out[8]);

/* Head sampling (OpenTelemetry's ParentBased(TraceIdRatioBased)): with a parent context the
 * parent's sampled flag decides, so a request whose caller sampled is always sampled; without,
 * the trace id does: its last 8 bytes as a number below ratio * 2^64 (the same id gets the same
 * answer on every replica). ratio is clamped to [0, 1]. */
bool trace_should_sample(const trace_context *parent, const uint8_t trace_id[16], double ratio);

/* The batch span's ids, from the scheduler's batch id and a per-process salt: every request of
 * the batch computes the same link without talking to the others. Never all zero. */
void trace_batch_ids(uint64_t salt, uint64_t batch_id, uint8_t trace_id[16], uint8_t span_id[8]);

/* "queue;dur=0.123, compute;dur=4.560" (milliseconds) into out[cap]. */
void trace_server_timing(int64_t queue_ns, int64_t compute_ns, char *out, size_t cap);

#endif
