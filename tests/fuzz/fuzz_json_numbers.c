/* The JSON number fast path (frontends/http/json_numbers.c) against jansson: whatever the
 * scanner accepts, jansson must parse to the same leaves (integers equal, reals bit for bit,
 * since the scanner promises strtod's correctly rounded double); and the data-span finder must
 * only point at arrays inside the body. The scanner also takes NaN, Infinity and -Infinity,
 * which jansson refuses: jansson is given the text with those spelled as numbers of the same
 * length (0.5 and 1.25e300), and those leaves must be NaN and infinities of the sign. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/json_numbers.h"

#define MAX_LEAVES 4096

typedef struct leaves {
  jnum_scalar v[MAX_LEAVES];
  size_t n;
} leaves;

static bool collect(const jnum_scalar *v, void *ctx) {
  leaves *l = ctx;
  if (l->n == MAX_LEAVES) return false;
  l->v[l->n++] = *v;
  return true;
}

/* jansson's leaves in document order; false when a leaf is not a number or boolean. */
static bool flatten(const json_t *j, jnum_scalar *out, size_t max, size_t *n) {
  if (json_is_array(j)) {
    for (size_t i = 0; i < json_array_size(j); i++)
      if (!flatten(json_array_get(j, i), out, max, n)) return false;
    return true;
  }
  if (*n == max) return false;
  jnum_scalar *v = &out[(*n)++];
  if (json_is_integer(j)) {
    v->kind = JS_INT;
    v->i = json_integer_value(j);
  } else if (json_is_real(j)) {
    v->kind = JS_REAL;
    v->d = json_real_value(j);
  } else if (json_is_true(j)) {
    v->kind = JS_TRUE;
  } else if (json_is_false(j)) {
    v->kind = JS_FALSE;
  } else {
    return false;
  }
  return true;
}

static void fail(const char *what, const uint8_t *data, size_t size) {
  fprintf(stderr, "json_numbers disagrees with jansson: %s on %.*s\n", what, (int)(size < 200 ? size : 200),
          (const char *)data);
  abort();
}

static leaves got, want;

/* text with the literals jansson refuses spelled as numbers (the scanner accepted the text, so
 * each stands alone as a leaf) */
static char *as_json(const char *text, size_t size) {
  char *t = malloc(size + 1);
  memcpy(t, text, size);
  t[size] = '\0';
  for (size_t i = 0; i < size; i++) {
    if (size - i >= 3 && memcmp(t + i, "NaN", 3) == 0) memcpy(t + i, "0.5", 3);
    else if (size - i >= 8 && memcmp(t + i, "Infinity", 8) == 0) memcpy(t + i, "1.25e300", 8);
  }
  return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  got.n = 0;
  scan_result r = jnum_scan(text, size, 8, collect, &got);
  if (r == SCAN_OK) {
    json_error_t err;
    char *spelled = as_json(text, size);
    json_t *doc = json_loadb(spelled, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    free(spelled);
    if (doc == NULL) fail(err.text, data, size);
    want.n = 0;
    if (!flatten(doc, want.v, MAX_LEAVES, &want.n)) fail("a leaf jansson reads as neither number nor boolean", data, size);
    json_decref(doc);
    if (want.n != got.n) fail("leaf count", data, size);
    for (size_t i = 0; i < got.n; i++) {
      const jnum_scalar *a = &got.v[i], *b = &want.v[i];
      if (a->kind != b->kind) fail("leaf kind", data, size);
      if (a->kind == JS_INT && (a->i != b->i || a->d != (double)b->i)) fail("integer value", data, size);
      if (a->kind == JS_REAL && isnan(a->d)) {
        if (b->d != 0.5) fail("NaN", data, size);
      } else if (a->kind == JS_REAL && isinf(a->d)) {
        if (b->d != (a->d > 0 ? 1.25e300 : -1.25e300)) fail("Infinity", data, size);
      } else if (a->kind == JS_REAL && memcmp(&a->d, &b->d, sizeof a->d) != 0) {
        fprintf(stderr, "leaf %zu: fast %.17g, jansson %.17g\n", i, a->d, b->d);
        fail("real value", data, size);
      }
    }
  }

  jnum_span spans[16];
  int n = v2_find_data_spans(text, size, spans, 16);
  if (n > 16) abort();
  for (int k = 0; k < n; k++) {
    if (spans[k].start == spans[k].end) continue;
    if (spans[k].start > spans[k].end || spans[k].end > size || text[spans[k].start] != '[') {
      fprintf(stderr, "bad span %d: [%zu, %zu) of %zu\n", k, spans[k].start, spans[k].end, size);
      abort();
    }
    got.n = 0;
    (void)jnum_scan(text + spans[k].start, spans[k].end - spans[k].start, 8, collect, &got);
  }
  return 0;
}
