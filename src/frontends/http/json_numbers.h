/* A fast path for the bulk of a V2 JSON request: the "data" arrays of numbers. A general JSON
 * parser builds a node per number (jansson: a malloc each, ~0.4 µs per element); this scanner
 * reads such arrays straight into values, strictly by JSON's grammar plus the literals NaN,
 * Infinity and -Infinity (which the server writes for such values; jansson refuses them).
 * Anything it does not handle (strings, null, objects, an integer beyond 64 bits, a syntax
 * error) makes it decline, and the caller parses with jansson, which then also words the
 * error. */
#ifndef INFERD_JSON_NUMBERS_H
#define INFERD_JSON_NUMBERS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JS_INT, JS_REAL, JS_TRUE, JS_FALSE, JS_OTHER } jnum_scalar_kind;

/* One leaf of a JSON value: JS_OTHER stands for a string, null, object or array. */
typedef struct jnum_scalar {
  jnum_scalar_kind kind;
  long long i; /* JS_INT */
  double d;    /* JS_INT and JS_REAL */
} jnum_scalar;

typedef enum { SCAN_OK, SCAN_DECLINED, SCAN_STOPPED } scan_result;

/* Walks the array text [p, p + len), nested up to max_depth, calling emit for each leaf in
 * order; SCAN_STOPPED when emit returned false. */
scan_result jnum_scan(const char *p, size_t len, int max_depth,
                              bool (*emit)(const jnum_scalar *v, void *ctx), void *ctx);
/* The same, also calling bracket(true, ctx) at each '[' and bracket(false, ctx) at each ']'
 * (the outermost included), so the caller can check the nesting against a shape; false from
 * bracket stops the scan too (SCAN_STOPPED). */
scan_result jnum_scan_nested(const char *p, size_t len, int max_depth,
                                     bool (*emit)(const jnum_scalar *v, void *ctx),
                                     bool (*bracket)(bool open, void *ctx), void *ctx);

typedef struct jnum_span {
  size_t start, end; /* byte offsets of a value; start == end: none */
} jnum_span;

/* In a V2 request body, finds the "data" value of each element of the top-level "inputs"
 * array when it is an array. spans[k] is input k's; returns how many inputs there are, or -1
 * when the body is not a well-formed object of that shape (or has more than max inputs). */
int v2_find_data_spans(const char *body, size_t len, jnum_span *spans, size_t max);

#endif
