/* observability/drift_profile: reference_profile.json read, written and built (see the header
 * for the format). */
#include "observability/drift_profile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observability/drift_stats.h"

void drift_hist_clear(drift_hist *h) {
  if (h == NULL) return;
  free(h->name);
  free(h->edges);
  for (size_t i = 0; h->categories && i + 1 < h->n_bins; i++) free(h->categories[i]);
  free(h->categories);
  free(h->counts);
  memset(h, 0, sizeof *h);
}

void drift_profile_destroy(drift_profile *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->n_features; i++) drift_hist_clear(&p->features[i]);
  free(p->features);
  drift_hist_clear(p->prediction);
  free(p->prediction);
  free(p);
}

#define FIELD_ERR(...) status_make(INFERD_INVALID_ARGUMENT, DRIFT_PROFILE_FILE ": " __VA_ARGS__)

static inferd_status parse_hist(const json_t *o, const char *where, drift_hist *h) {
  if (!json_is_object(o)) return FIELD_ERR("%s must be an object", where);
  const char *name = json_string_value(json_object_get(o, "name"));
  const char *type = json_string_value(json_object_get(o, "type"));
  if (name == NULL || name[0] == '\0') return FIELD_ERR("%s.name must be a non-empty string", where);
  if (type == NULL || (strcmp(type, "numeric") != 0 && strcmp(type, "categorical") != 0))
    return FIELD_ERR("%s.type must be \"numeric\" or \"categorical\"", where);
  h->name = strdup(name);
  h->kind = strcmp(type, "numeric") == 0 ? DRIFT_NUMERIC : DRIFT_CATEGORICAL;
  const json_t *counts = json_object_get(o, "counts");
  const json_t *bounds = json_object_get(o, h->kind == DRIFT_NUMERIC ? "edges" : "categories");
  if (!json_is_array(bounds))
    return FIELD_ERR("%s.%s must be an array", where, h->kind == DRIFT_NUMERIC ? "edges" : "categories");
  size_t nb = json_array_size(bounds) + 1;
  if (h->kind == DRIFT_CATEGORICAL && nb < 2) return FIELD_ERR("%s.categories must not be empty", where);
  if (nb > DRIFT_MAX_BINS) return FIELD_ERR("%s has %zu bins, more than %d", where, nb, DRIFT_MAX_BINS);
  if (!json_is_array(counts) || json_array_size(counts) != nb)
    return FIELD_ERR("%s.counts must have %zu numbers (%s + 1)", where, nb,
                     h->kind == DRIFT_NUMERIC ? "edges" : "categories");
  h->n_bins = nb;
  h->counts = calloc(nb, sizeof *h->counts);
  if (h->kind == DRIFT_NUMERIC) h->edges = calloc(nb, sizeof *h->edges);
  else h->categories = calloc(nb, sizeof *h->categories);
  if (h->counts == NULL || (h->edges == NULL && h->categories == NULL)) return status_make(INFERD_INTERNAL, "out of memory");
  double total = 0;
  for (size_t i = 0; i < nb; i++) {
    const json_t *c = json_array_get(counts, i);
    if (!json_is_number(c) || json_number_value(c) < 0 || !isfinite(json_number_value(c)))
      return FIELD_ERR("%s.counts[%zu] must be a number >= 0", where, i);
    h->counts[i] = json_number_value(c);
    total += h->counts[i];
  }
  if (total <= 0) return FIELD_ERR("%s.counts are all zero", where);
  for (size_t i = 0; i + 1 < nb; i++) {
    const json_t *b = json_array_get(bounds, i);
    if (h->kind == DRIFT_NUMERIC) {
      if (!json_is_number(b) || !isfinite(json_number_value(b)))
        return FIELD_ERR("%s.edges[%zu] must be a finite number", where, i);
      h->edges[i] = json_number_value(b);
      if (i > 0 && h->edges[i] <= h->edges[i - 1]) return FIELD_ERR("%s.edges must be ascending and distinct", where);
    } else {
      if (!json_is_string(b)) return FIELD_ERR("%s.categories[%zu] must be a string", where, i);
      h->categories[i] = strdup(json_string_value(b));
      if (h->categories[i] == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    }
  }
  return status_ok();
}

static inferd_status parse_root(const json_t *root, drift_profile *p) {
  if (!json_is_object(root)) return FIELD_ERR("must be a JSON object");
  const char *fmt = json_string_value(json_object_get(root, "format"));
  if (fmt == NULL || strcmp(fmt, DRIFT_PROFILE_FORMAT) != 0)
    return FIELD_ERR("format must be \"" DRIFT_PROFILE_FORMAT "\"");
  const json_t *feats = json_object_get(root, "features");
  if (!json_is_array(feats)) return FIELD_ERR("features must be an array");
  if (json_array_size(feats) > DRIFT_MAX_FEATURES) return FIELD_ERR("features: more than %d", DRIFT_MAX_FEATURES);
  p->features = calloc(json_array_size(feats) + 1, sizeof *p->features);
  if (p->features == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < json_array_size(feats); i++) {
    char where[32];
    snprintf(where, sizeof where, "features[%zu]", i);
    p->n_features = i + 1;
    TRY(parse_hist(json_array_get(feats, i), where, &p->features[i]));
    for (size_t j = 0; j < i; j++)
      if (strcmp(p->features[j].name, p->features[i].name) == 0)
        return FIELD_ERR("features[%zu]: feature '%s' is listed twice", i, p->features[i].name);
  }
  const json_t *pred = json_object_get(root, "prediction");
  if (pred && !json_is_null(pred)) {
    p->prediction = calloc(1, sizeof *p->prediction);
    if (p->prediction == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    TRY(parse_hist(pred, "prediction", p->prediction));
  }
  const json_t *rows = json_object_get(root, "rows");
  p->rows = json_is_number(rows) ? json_number_value(rows) : 0;
  return status_ok();
}

inferd_status drift_profile_parse(const char *text, size_t len, drift_profile **out) {
  *out = NULL;
  json_error_t err;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  if (root == NULL) return FIELD_ERR("not valid JSON at line %d: %s", err.line, err.text);
  drift_profile *p = calloc(1, sizeof *p);
  inferd_status st = p ? parse_root(root, p) : status_make(INFERD_INTERNAL, "out of memory");
  json_decref(root);
  if (!status_is_ok(&st)) {
    drift_profile_destroy(p);
    return st;
  }
  *out = p;
  return status_ok();
}

inferd_status drift_profile_load(const char *path, drift_profile **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    if (errno == ENOENT) return status_make(INFERD_NOT_FOUND, "no %s", DRIFT_PROFILE_FILE);
    return status_make(INFERD_INVALID_ARGUMENT, "%s: cannot be read", DRIFT_PROFILE_FILE);
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < 65536) {
      char *nb = realloc(buf, cap + 65536 + 1);
      if (nb == NULL) break;
      buf = nb;
      cap += 65536;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) break;
  }
  fclose(f);
  if (buf == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = drift_profile_parse(buf, len, out);
  free(buf);
  return st;
}

static json_t *hist_json(const drift_hist *h) {
  json_t *bounds = json_array(), *counts = json_array();
  for (size_t i = 0; i < h->n_bins; i++) {
    double c = h->counts[i]; /* counts are whole numbers unless a profile was scaled by hand */
    json_array_append_new(counts, c == floor(c) && c < 9007199254740992.0 ? json_integer((json_int_t)c) : json_real(c));
    if (i + 1 < h->n_bins)
      json_array_append_new(bounds, h->kind == DRIFT_NUMERIC ? json_real(h->edges[i]) : json_string(h->categories[i]));
  }
  return json_pack("{ss ss so so}", "name", h->name, "type", h->kind == DRIFT_NUMERIC ? "numeric" : "categorical",
                   h->kind == DRIFT_NUMERIC ? "edges" : "categories", bounds, "counts", counts);
}

json_t *drift_profile_json(const drift_profile *p, const char *model, const char *version, const char *source) {
  json_t *root = json_pack("{ss}", "format", DRIFT_PROFILE_FORMAT);
  if (model) json_object_set_new(root, "model", json_string(model));
  if (version) json_object_set_new(root, "version", json_string(version));
  if (source) json_object_set_new(root, "source", json_string(source));
  json_object_set_new(root, "rows", json_integer((json_int_t)p->rows));
  json_t *feats = json_array();
  for (size_t i = 0; i < p->n_features; i++) json_array_append_new(feats, hist_json(&p->features[i]));
  json_object_set_new(root, "features", feats);
  json_object_set_new(root, "prediction", p->prediction ? hist_json(p->prediction) : json_null());
  return root;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

inferd_status drift_hist_numeric(const char *name, double *values, size_t n, size_t bins, drift_hist *out) {
  memset(out, 0, sizeof *out);
  size_t k = 0; /* NaN (missing) rows are not part of the distribution */
  for (size_t i = 0; i < n; i++)
    if (isfinite(values[i])) values[k++] = values[i];
  if (k == 0) return status_make(INFERD_INVALID_ARGUMENT, "feature '%s' has no finite value", name);
  if (bins < 2 || bins > DRIFT_MAX_BINS) return status_make(INFERD_INVALID_ARGUMENT, "bins must be 2 to %d", DRIFT_MAX_BINS);
  qsort(values, k, sizeof *values, cmp_double);
  out->name = strdup(name);
  out->kind = DRIFT_NUMERIC;
  out->edges = calloc(bins, sizeof *out->edges);
  out->counts = calloc(bins, sizeof *out->counts);
  if (out->name == NULL || out->edges == NULL || out->counts == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  size_t ne = drift_quantile_edges(values, k, bins, out->edges);
  out->n_bins = ne + 1;
  for (size_t i = 0; i < k; i++) out->counts[drift_bin_of(out->edges, ne, values[i])] += 1;
  return status_ok();
}

inferd_status drift_hist_categorical(const char *name, const char *const *categories, size_t n_categories,
                                     const size_t *index, size_t n, drift_hist *out) {
  memset(out, 0, sizeof *out);
  if (n_categories == 0 || n_categories + 1 > DRIFT_MAX_BINS)
    return status_make(INFERD_INVALID_ARGUMENT, "feature '%s' needs 1 to %d categories", name, DRIFT_MAX_BINS - 1);
  out->name = strdup(name);
  out->kind = DRIFT_CATEGORICAL;
  out->n_bins = n_categories + 1;
  out->categories = calloc(out->n_bins, sizeof *out->categories);
  out->counts = calloc(out->n_bins, sizeof *out->counts);
  if (out->name == NULL || out->categories == NULL || out->counts == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n_categories; i++)
    if ((out->categories[i] = strdup(categories[i])) == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++) out->counts[index[i] < n_categories ? index[i] : n_categories] += 1;
  return status_ok();
}
