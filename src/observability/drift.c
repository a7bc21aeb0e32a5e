/* observability/drift: the per-version sliding windows, fed by the DRIFT completion stage, and
 * their evaluation against the reference profile (route, metrics, warnings). */
#include "observability/drift.h"

#include <libgen.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "app/application.h"
#include "app/features.h"
#include "core/infer.h"
#include "core/serve.h"
#include "core/tensor.h"
#include "observability/drift_profile.h"
#include "observability/drift_stats.h"
#include "util/jsonkeys.h"
#include "util/log.h"
#include "util/monotime.h"

/* Fixed at drift_register, before any version loads; read-only afterwards. A model's config.json
 * "drift" section overrides them for its versions. */
static drift_options g_opts;
static int hook_slot = -1;

/* Where a histogram's value is in a request. */
typedef enum {
  SRC_NUMBER,    /* one column of a number tensor */
  SRC_ONE_HOT,   /* argmax of `width` columns (a one-hot categorical) */
  SRC_INDEX,     /* a column holding a category index */
  SRC_BYTES,     /* a BYTES element holding the category */
  SRC_PRED_LABEL_INDEX,  /* the label output: class indices */
  SRC_PRED_LABEL_STRING, /* the label output: class names */
} src_kind;

typedef struct drift_src {
  src_kind kind;
  const char *tensor; /* the input (or output) tensor's name; lives as long as the version */
  size_t column, width;
  size_t *map; /* owned; one-hot/index/label index -> profile bin (n_map entries) */
  size_t n_map;
} drift_src;

typedef struct drift_state {
  drift_profile *profile; /* owned; NULL: none or unusable (error says why) */
  char error[512];
  const drift_hist **hists; /* owned array; features then the prediction */
  drift_src *srcs;          /* owned, parallel to hists */
  size_t *offset;           /* owned: first bin of each histogram in a bucket */
  size_t n_hists, total_bins;
  int n_buckets;
  int64_t period_ns;
  _Atomic int64_t *bucket_epoch; /* owned: the period each bucket counts, INT64_MIN: never */
  _Atomic uint64_t *bucket_rows; /* owned */
  _Atomic uint64_t *counts;      /* owned: n_buckets * total_bins */
  _Atomic int64_t *last_warn;    /* owned: per histogram, when it last warned (monotonic ns) */
  atomic_uint_fast64_t warnings;
  const model_version *mv;
  drift_options opts; /* the server's, with the model's config.json "drift" over them */
} drift_state;

#define NEVER (INT64_MIN / 2)

static void state_free(drift_state *s) {
  if (s == NULL) return;
  for (size_t i = 0; s->srcs && i < s->n_hists; i++) free(s->srcs[i].map);
  free(s->srcs);
  free(s->hists);
  free(s->offset);
  free(s->bucket_epoch);
  free(s->bucket_rows);
  free(s->counts);
  free(s->last_warn);
  drift_profile_destroy(s->profile);
  free(s);
}

/* ---- binding a profile to the version's signature ------------------------------------------ */

static size_t category_bin(const drift_hist *h, const char *name, size_t len) {
  for (size_t i = 0; i + 1 < h->n_bins; i++)
    if (strlen(h->categories[i]) == len && memcmp(h->categories[i], name, len) == 0) return i;
  return h->n_bins - 1;
}

static inferd_status map_categories(const drift_hist *h, char *const *names, size_t n, drift_src *src) {
  src->map = calloc(n ? n : 1, sizeof *src->map);
  if (src->map == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  src->n_map = n;
  for (size_t i = 0; i < n; i++) src->map[i] = category_bin(h, names[i], strlen(names[i]));
  return status_ok();
}

static bool number_type(inferd_datatype dt) { return dt != DT_BYTES && dt != DT_INVALID; }

static inferd_status bind_named(const features *f, const drift_hist *h, drift_src *src) {
  const feature_def *d = features_find(f, h->name);
  if (d == NULL) return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s' is not in the model's schema", h->name);
  const feature_tensor *t = &f->tensors[d->tensor];
  src->tensor = t->name;
  src->column = d->column;
  src->width = d->width;
  bool numeric = d->type == FEATURE_NUMERIC || d->type == FEATURE_INTEGER;
  if (numeric != (h->kind == DRIFT_NUMERIC) && d->type != FEATURE_BOOLEAN)
    return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s' is %s but the schema's is %s", h->name,
                       h->kind == DRIFT_NUMERIC ? "numeric" : "categorical", feature_type_name(d->type));
  if (d->type == FEATURE_STRING) return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s': free text has no histogram", h->name);
  if (numeric || (d->type == FEATURE_BOOLEAN && h->kind == DRIFT_NUMERIC)) {
    src->kind = SRC_NUMBER;
    return status_ok();
  }
  if (d->type == FEATURE_BOOLEAN) { /* categories "false", "true" */
    char *names[2] = {"false", "true"};
    src->kind = SRC_INDEX;
    return map_categories(h, names, 2, src);
  }
  if (d->encoding == ENCODING_STRING) {
    src->kind = SRC_BYTES;
    return status_ok();
  }
  src->kind = d->encoding == ENCODING_ONE_HOT ? SRC_ONE_HOT : SRC_INDEX;
  return map_categories(h, d->categories, d->n_categories, src);
}

/* "input[3]" or "input": column 3 of a 2-D number input, or a 1-D one. */
static inferd_status bind_positional(const model_version *mv, const drift_hist *h, drift_src *src) {
  if (h->kind != DRIFT_NUMERIC)
    return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s': without a schema only numeric columns are tracked", h->name);
  char name[256];
  snprintf(name, sizeof name, "%s", h->name);
  char *br = strchr(name, '[');
  long col = -1;
  if (br) {
    char *end;
    col = strtol(br + 1, &end, 10);
    if (end == br + 1 || strcmp(end, "]") != 0 || col < 0)
      return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s' is not 'input[column]'", h->name);
    *br = '\0';
  }
  const tensor_spec *spec = model_version_find_input(mv, name);
  if (spec == NULL || !number_type(spec->datatype))
    return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s': the model has no number input '%s'", h->name, name);
  int ndim = spec->ndim;
  if (br ? ndim != 2 : ndim != 1)
    return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s': input '%s' has %d dimensions", h->name, name, ndim);
  if (br && spec->dims[1] >= 0 && col >= spec->dims[1])
    return status_make(INFERD_INVALID_ARGUMENT, "profile feature '%s': input '%s' has %lld columns", h->name, name,
                       (long long)spec->dims[1]);
  src->kind = SRC_NUMBER;
  src->tensor = spec->name;
  src->column = br ? (size_t)col : 0;
  src->width = 1;
  return status_ok();
}

static inferd_status bind_prediction(const features *f, const drift_hist *h, drift_src *src) {
  if (f == NULL) return status_make(INFERD_INVALID_ARGUMENT, "the profile's prediction needs the model's application schema");
  if (f->task == TASK_REGRESSION) {
    if (h->kind != DRIFT_NUMERIC) return status_make(INFERD_INVALID_ARGUMENT, "prediction: a regressor's must be numeric");
    src->kind = SRC_NUMBER;
    src->tensor = f->value_output;
    src->column = 0;
    src->width = 1;
    return status_ok();
  }
  if (h->kind != DRIFT_CATEGORICAL) return status_make(INFERD_INVALID_ARGUMENT, "prediction: a classifier's must be categorical");
  if (f->label_output && f->label_kind == LABEL_STRING) {
    src->kind = SRC_PRED_LABEL_STRING;
    src->tensor = f->label_output;
    return status_ok();
  }
  if (f->label_output) {
    src->kind = SRC_PRED_LABEL_INDEX;
    src->tensor = f->label_output;
  } else if (f->probabilities_output) {
    src->kind = SRC_ONE_HOT; /* the most probable class */
    src->tensor = f->probabilities_output;
    src->width = f->n_labels;
  } else {
    return status_make(INFERD_INVALID_ARGUMENT, "prediction: the schema names no label or probabilities output");
  }
  return map_categories(h, f->labels, f->n_labels, src);
}

static inferd_status state_build(model_version *mv, drift_state *s) {
  const drift_profile *p = s->profile;
  const features *f = application_features(mv);
  s->n_hists = p->n_features + (p->prediction != NULL);
  s->hists = calloc(s->n_hists, sizeof *s->hists);
  s->srcs = calloc(s->n_hists, sizeof *s->srcs);
  s->offset = calloc(s->n_hists, sizeof *s->offset);
  s->last_warn = calloc(s->n_hists, sizeof *s->last_warn);
  if (!s->hists || !s->srcs || !s->offset || !s->last_warn) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < s->n_hists; i++) {
    const drift_hist *h = i < p->n_features ? &p->features[i] : p->prediction;
    s->hists[i] = h;
    s->offset[i] = s->total_bins;
    s->total_bins += h->n_bins;
    atomic_init(&s->last_warn[i], NEVER);
    if (i == p->n_features) TRY(bind_prediction(f, h, &s->srcs[i]));
    else if (f) TRY(bind_named(f, h, &s->srcs[i]));
    else TRY(bind_positional(mv, h, &s->srcs[i]));
  }
  s->n_buckets = s->opts.buckets;
  s->period_ns = s->opts.window_ms * 1000000 / s->opts.buckets;
  s->bucket_epoch = calloc((size_t)s->n_buckets, sizeof *s->bucket_epoch);
  s->bucket_rows = calloc((size_t)s->n_buckets, sizeof *s->bucket_rows);
  s->counts = calloc((size_t)s->n_buckets * (s->total_bins ? s->total_bins : 1), sizeof *s->counts);
  if (!s->bucket_epoch || !s->bucket_rows || !s->counts) return status_make(INFERD_INTERNAL, "out of memory");
  for (int b = 0; b < s->n_buckets; b++) atomic_init(&s->bucket_epoch[b], NEVER);
  return status_ok();
}

/* config.json "drift": {"window_s", "buckets", "psi_warn", "psi_alert", "min_samples"}, each
 * optional, over the server's options. Errors name the field, as config.json's do. */
static inferd_status model_options(const json_t *d, drift_options *o) {
  static const char *const keys[] = {"window_s", "buckets", "psi_warn", "psi_alert", "min_samples", NULL};
  if (d == NULL) return status_ok();
  const char *bad = jsonkeys_unknown(d, keys);
  if (bad) {
    char list[200];
    jsonkeys_list(keys, list, sizeof list);
    return status_make(INFERD_INVALID_ARGUMENT, "config.json: drift.%s is not a known field (known: %s)", bad, list);
  }
  static const struct {
    const char *key;
    double lo, hi;
    bool whole;
  } lim[] = {{"window_s", 0.01, 86400 * 30, false}, {"buckets", 1, 1000, true}, {"psi_warn", 0, 1e6, false},
             {"psi_alert", 0, 1e6, false}, {"min_samples", 0, 1e12, true}};
  for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
    const json_t *v = json_object_get(d, lim[i].key);
    if (v == NULL) continue;
    double x = json_number_value(v);
    if (!json_is_number(v) || x < lim[i].lo || x > lim[i].hi || (lim[i].whole && x != floor(x)))
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: drift.%s must be a %snumber from %g to %g", lim[i].key,
                         lim[i].whole ? "whole " : "", lim[i].lo, lim[i].hi);
    if (i == 0) o->window_ms = (int64_t)(x * 1000);
    if (i == 1) o->buckets = (int)x;
    if (i == 2) o->psi_warn = x;
    if (i == 3) o->psi_alert = x;
    if (i == 4) o->min_samples = (long)x;
  }
  if (o->psi_alert < o->psi_warn)
    return status_make(INFERD_INVALID_ARGUMENT, "config.json: drift.psi_alert (%g) is below psi_warn (%g)", o->psi_alert,
                       o->psi_warn);
  if (o->window_ms < o->buckets)
    return status_make(INFERD_INVALID_ARGUMENT, "config.json: drift: a bucket of the window must be 1 ms or more");
  return status_ok();
}

static inferd_status drift_load(model_version *mv, void **data) {
  *data = NULL;
  drift_options opts = g_opts;
  TRY(model_options(mv->model->config->drift, &opts)); /* a bad section fails the version */
  char tmp[4096], path[4200];
  snprintf(tmp, sizeof tmp, "%s", mv->path);
  snprintf(path, sizeof path, "%s/%s", dirname(tmp), DRIFT_PROFILE_FILE);
  drift_profile *p;
  inferd_status st = drift_profile_load(path, &p);
  if (st.code == INFERD_NOT_FOUND) return status_ok(); /* drift off for this version */
  drift_state *s = calloc(1, sizeof *s);
  if (s == NULL) {
    drift_profile_destroy(p);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  s->mv = mv;
  s->opts = opts;
  if (status_is_ok(&st)) {
    s->profile = p;
    st = state_build(mv, s);
  }
  if (!status_is_ok(&st)) { /* the version serves; drift is off and says why */
    log_msg(LOG_WARN, mv->model->name, "version %s: drift detection is off: %s", mv->version_str, st.msg);
    drift_state *e = calloc(1, sizeof *e);
    state_free(s);
    if (e == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    snprintf(e->error, sizeof e->error, "%s", st.msg);
    e->mv = mv;
    e->opts = opts;
    s = e;
  }
  *data = s;
  return status_ok();
}

static void drift_unload(model_version *mv, void *data) {
  (void)mv;
  state_free(data);
}

inferd_status drift_register(const drift_options *opts) {
  static const model_version_hook hook = {.name = "drift", .load = drift_load, .unload = drift_unload};
  if (opts->buckets < 1 || opts->window_ms < opts->buckets || opts->psi_warn < 0 || opts->psi_alert < opts->psi_warn ||
      opts->min_samples < 0)
    return status_make(INFERD_INVALID_ARGUMENT, "drift: the window needs at least one bucket of 1 ms or more, "
                                                "and 0 <= psi_warn <= psi_alert");
  g_opts = *opts;
  if (hook_slot >= 0) return status_ok();
  hook_slot = model_version_hook_register(&hook);
  return hook_slot < 0 ? status_make(INFERD_INTERNAL, "too many version hooks") : status_ok();
}

inferd_status drift_attach(model_version *mv, const drift_options *opts) {
  TRY(drift_register(opts));
  void **slot = &mv->hook_data[hook_slot];
  if (*slot) drift_unload(mv, *slot);
  *slot = NULL;
  return drift_load(mv, slot);
}

/* ---- the request path ------------------------------------------------------------------- */

static double number_at(const tensor *t, size_t i) {
  const uint8_t *p = t->data;
  switch (t->datatype) {
    case DT_BOOL: return p[i] != 0;
    case DT_UINT8: return p[i];
    case DT_INT8: return ((const int8_t *)p)[i];
#define AT(type) do { type v; memcpy(&v, p + i * sizeof v, sizeof v); return (double)v; } while (0)
    case DT_UINT16: AT(uint16_t);
    case DT_INT16: AT(int16_t);
    case DT_UINT32: AT(uint32_t);
    case DT_INT32: AT(int32_t);
    case DT_UINT64: AT(uint64_t);
    case DT_INT64: AT(int64_t);
    case DT_FP32: AT(float);
    case DT_FP64: AT(double);
#undef AT
    case DT_FP16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return half_to_float(v); }
    case DT_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return bf16_to_float(v); }
    default: return NAN;
  }
}

static const tensor *find_tensor(const tensor *ts, char *const *names, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(names ? names[i] : ts[i].name, name) == 0) return &ts[i];
  return NULL;
}

/* Adds one request's rows of histogram i to bucket `cnt`. */
static void observe_hist(const drift_state *s, size_t i, const tensor *t, _Atomic uint64_t *cnt) {
  const drift_src *src = &s->srcs[i];
  const drift_hist *h = s->hists[i];
  if (t->ndim < 1 && src->kind != SRC_NUMBER) return;
  int64_t rows = t->ndim >= 1 ? t->shape[0] : 1, elems = tensor_element_count(t);
  if (rows <= 0 || elems <= 0) return;
  size_t stride = (size_t)(elems / rows);
  if (src->kind == SRC_BYTES || src->kind == SRC_PRED_LABEL_STRING) {
    if (t->datatype != DT_BYTES || stride != 1) return;
    size_t pos = 0;
    const uint8_t *e;
    uint32_t len;
    while (tensor_bytes_next(t, &pos, &e, &len))
      atomic_fetch_add_explicit(&cnt[category_bin(h, (const char *)e, len)], 1, memory_order_relaxed);
    return;
  }
  if (t->datatype == DT_BYTES || src->column + (src->kind == SRC_ONE_HOT ? src->width : 1) > stride) return;
  for (int64_t r = 0; r < rows; r++) {
    size_t base = (size_t)r * stride + src->column, bin;
    if (src->kind == SRC_NUMBER) {
      double x = number_at(t, base);
      if (isnan(x)) continue;
      bin = drift_bin_of(h->edges, h->n_bins - 1, x);
    } else if (src->kind == SRC_ONE_HOT) {
      size_t best = 0;
      double bv = number_at(t, base);
      for (size_t k = 1; k < src->width; k++) {
        double v = number_at(t, base + k);
        if (v > bv) bv = v, best = k;
      }
      /* a row with no column set (all zero) has no category: "other" */
      bin = bv > 0 && best < src->n_map ? src->map[best] : h->n_bins - 1;
    } else { /* an index */
      double v = number_at(t, base);
      bin = v >= 0 && v < (double)src->n_map && v == floor(v) ? src->map[(size_t)v] : h->n_bins - 1;
    }
    atomic_fetch_add_explicit(&cnt[bin], 1, memory_order_relaxed);
  }
}

static void check_and_warn(drift_state *s, int64_t now_ns);

void drift_observe_at(const model_version *mv, const infer_request *req, int64_t now_ns) {
  drift_state *s = model_version_hook_data(mv, hook_slot);
  if (s == NULL || s->profile == NULL || !status_is_ok(&req->status)) return;
  int64_t e = now_ns / s->period_ns;
  size_t b = (size_t)(e % s->n_buckets);
  int64_t old = atomic_load_explicit(&s->bucket_epoch[b], memory_order_acquire);
  bool rotated = false;
  /* The first request of a new period claims its bucket and empties it. A request racing the
   * claim may add a row to the old counts just before they are zeroed: a few rows at a bucket
   * boundary, the price of never locking. */
  if (old < e && atomic_compare_exchange_strong(&s->bucket_epoch[b], &old, e)) {
    _Atomic uint64_t *c = &s->counts[b * s->total_bins];
    for (size_t i = 0; i < s->total_bins; i++) atomic_store_explicit(&c[i], 0, memory_order_relaxed);
    atomic_store_explicit(&s->bucket_rows[b], 0, memory_order_relaxed);
    rotated = true;
  }
  _Atomic uint64_t *cnt = &s->counts[b * s->total_bins];
  const infer_request *r = req;
  int64_t rows = 0;
  const char *last_name = NULL; /* features of one tensor share its name's pointer: look it up once */
  const tensor *t = NULL;
  for (size_t i = 0; i < s->n_hists; i++) {
    bool pred = i == s->profile->n_features;
    if (pred || s->srcs[i].tensor != last_name)
      t = pred ? find_tensor(r->outputs, r->output_names, r->n_outputs, s->srcs[i].tensor)
               : find_tensor(r->inputs, NULL, r->n_inputs, s->srcs[i].tensor);
    last_name = pred ? NULL : s->srcs[i].tensor;
    if (t == NULL) continue;
    if (rows == 0 && !pred) rows = t->ndim >= 1 ? t->shape[0] : 1;
    observe_hist(s, i, t, cnt + s->offset[i]);
  }
  atomic_fetch_add_explicit(&s->bucket_rows[b], (uint64_t)rows, memory_order_relaxed);
  if (rotated) check_and_warn(s, now_ns);
}

static inferd_status drift_stage(void *ctx, const serve_request *sr, infer_request *req) {
  (void)ctx;
  (void)sr;
  drift_observe_at(req->mv, req, monotime_ns());
  return status_ok();
}

inferd_status drift_serve_register(struct serve *s) { return serve_register(s, SERVE_STAGE_DRIFT, drift_stage, NULL); }

/* ---- evaluation ----------------------------------------------------------------------------- */

typedef enum { LEVEL_INSUFFICIENT, LEVEL_OK, LEVEL_WARN, LEVEL_ALERT } drift_level;
static const char *const level_names[] = {"insufficient_data", "ok", "warn", "alert"};

typedef struct hist_score {
  double samples, psi, js, ks;
  drift_level level;
} hist_score;

static bool bucket_live(const drift_state *s, int b, int64_t e) {
  int64_t be = atomic_load_explicit(&s->bucket_epoch[b], memory_order_acquire);
  return be > e - s->n_buckets && be <= e;
}

static hist_score score_hist(const drift_state *s, size_t i, int64_t e) {
  const drift_hist *h = s->hists[i];
  double cur[DRIFT_MAX_BINS] = {0};
  for (int b = 0; b < s->n_buckets; b++) {
    if (!bucket_live(s, b, e)) continue;
    const _Atomic uint64_t *c = &s->counts[(size_t)b * s->total_bins + s->offset[i]];
    for (size_t k = 0; k < h->n_bins; k++) cur[k] += (double)atomic_load_explicit(&c[k], memory_order_relaxed);
  }
  hist_score sc = {0};
  for (size_t k = 0; k < h->n_bins; k++) sc.samples += cur[k];
  sc.psi = drift_psi(h->counts, cur, h->n_bins);
  sc.js = drift_js_distance(h->counts, cur, h->n_bins);
  sc.ks = drift_ks(h->counts, cur, h->n_bins);
  if (sc.samples < (double)s->opts.min_samples || isnan(sc.psi)) sc.level = LEVEL_INSUFFICIENT;
  else if (sc.psi >= s->opts.psi_alert) sc.level = LEVEL_ALERT;
  else if (sc.psi >= s->opts.psi_warn) sc.level = LEVEL_WARN;
  else sc.level = LEVEL_OK;
  return sc;
}

static uint64_t window_rows(const drift_state *s, int64_t e) {
  uint64_t n = 0;
  for (int b = 0; b < s->n_buckets; b++)
    if (bucket_live(s, b, e)) n += atomic_load_explicit(&s->bucket_rows[b], memory_order_relaxed);
  return n;
}

/* Logs each histogram over a threshold, at most once per window length. */
static void warn_if_due(drift_state *s, size_t i, const hist_score *sc, int64_t now_ns) {
  if (sc->level < LEVEL_WARN) return;
  int64_t last = atomic_load_explicit(&s->last_warn[i], memory_order_relaxed);
  if (now_ns - last < s->opts.window_ms * 1000000 || !atomic_compare_exchange_strong(&s->last_warn[i], &last, now_ns))
    return;
  atomic_fetch_add_explicit(&s->warnings, 1, memory_order_relaxed);
  const drift_hist *h = s->hists[i];
  log_msg(LOG_WARN, s->mv->model->name,
          "drift: version %s %s '%s': PSI %.3f is over the %s threshold %g in the last %g s (%.0f samples; "
          "Jensen-Shannon %.3f, KS %.3f)",
          s->mv->version_str, i == s->profile->n_features ? "prediction" : "feature", h->name, sc->psi,
          sc->level == LEVEL_ALERT ? "alert" : "warn", sc->level == LEVEL_ALERT ? s->opts.psi_alert : s->opts.psi_warn,
          (double)s->opts.window_ms / 1000, sc->samples, sc->js, sc->ks);
}

static void check_and_warn(drift_state *s, int64_t now_ns) {
  int64_t e = now_ns / s->period_ns;
  for (size_t i = 0; i < s->n_hists; i++) {
    hist_score sc = score_hist(s, i, e);
    warn_if_due(s, i, &sc, now_ns);
  }
}

static json_t *number_or_null(double v) { return isnan(v) ? json_null() : json_real(v); }

inferd_status drift_report_json(const model_version *mv, int64_t now_ns, json_t **out) {
  *out = NULL;
  drift_state *s = model_version_hook_data(mv, hook_slot);
  if (s == NULL)
    return status_make(INFERD_NOT_FOUND, "model '%s' version %s has no reference profile (%s in the version's folder)",
                       mv->model->name, mv->version_str, DRIFT_PROFILE_FILE);
  if (s->profile == NULL)
    return status_make(INFERD_NOT_FOUND, "model '%s' version %s: drift detection is off: %s", mv->model->name,
                       mv->version_str, s->error);
  int64_t e = now_ns / s->period_ns;
  json_t *feats = json_array(), *warn = json_array(), *alert = json_array(), *pred = json_null();
  for (size_t i = 0; i < s->n_hists; i++) {
    const drift_hist *h = s->hists[i];
    hist_score sc = score_hist(s, i, e);
    warn_if_due(s, i, &sc, now_ns);
    json_t *o = json_pack("{ss ss sI so so so ss}", "name", h->name, "type",
                          h->kind == DRIFT_NUMERIC ? "numeric" : "categorical", "samples", (json_int_t)sc.samples, "psi",
                          number_or_null(sc.psi), "js_distance", number_or_null(sc.js), "ks", number_or_null(sc.ks),
                          "level", level_names[sc.level]);
    if (i == s->profile->n_features) { /* the prediction has its own level, outside the feature lists */
      json_decref(pred);
      pred = o;
    } else {
      json_array_append_new(feats, o);
      if (sc.level == LEVEL_WARN) json_array_append_new(warn, json_string(h->name));
      if (sc.level == LEVEL_ALERT) json_array_append_new(alert, json_string(h->name));
    }
  }
  *out = json_pack("{ss ss sf sf si sI sI s{sf sf sI} so so so so sI}", "model", mv->model->name, "version",
                   mv->version_str, "window_seconds", (double)s->opts.window_ms / 1000, "bucket_seconds",
                   (double)s->period_ns / 1e9, "buckets", s->n_buckets, "samples", (json_int_t)window_rows(s, e),
                   "reference_rows", (json_int_t)s->profile->rows, "thresholds", "psi_warn", s->opts.psi_warn, "psi_alert",
                   s->opts.psi_alert, "min_samples", (json_int_t)s->opts.min_samples, "features", feats, "prediction",
                   pred, "warn", warn, "alert", alert, "warnings_logged",
                   (json_int_t)atomic_load_explicit(&s->warnings, memory_order_relaxed));
  return *out ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
}

/* ---- metrics -------------------------------------------------------------------------------- */

static void label_value(FILE *out, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"') fputc('\\', out), fputc(*v, out);
    else if (*v == '\n') fputs("\\n", out);
    else fputc(*v, out);
  }
}

static void series(FILE *out, const char *metric, const model_version *mv, const char *feature, const char *stat,
                   double v) {
  fprintf(out, "%s{model=\"", metric);
  label_value(out, mv->model->name);
  fprintf(out, "\",version=\"%s\"", mv->version_str);
  if (feature) {
    fputs(",feature=\"", out);
    label_value(out, feature);
    fprintf(out, "\",statistic=\"%s\"", stat);
  }
  if (isnan(v)) fputs("} NaN\n", out);
  else fprintf(out, "} %.17g\n", v);
}

void drift_metrics_write_versions(const model_version *const *mvs, size_t n, FILE *out, int64_t now_ns) {
  fputs("# HELP inferd_feature_drift Drift of a feature's (or the predictions') distribution in the sliding window "
        "against the version's reference profile\n# TYPE inferd_feature_drift gauge\n",
        out);
  for (int pass = 0; pass < 3; pass++) {
    if (pass == 1)
      fputs("# HELP inferd_drift_window_samples Rows in the drift window\n# TYPE inferd_drift_window_samples gauge\n",
            out);
    if (pass == 2)
      fputs("# HELP inferd_drift_warnings_total Drift threshold crossings logged\n"
            "# TYPE inferd_drift_warnings_total counter\n",
            out);
    for (size_t j = 0; j < n; j++) {
      const model_version *mv = mvs[j];
      drift_state *s = model_version_hook_data(mv, hook_slot);
      if (s == NULL || s->profile == NULL) continue;
      int64_t e = now_ns / s->period_ns;
      if (pass == 1) series(out, "inferd_drift_window_samples", mv, NULL, NULL, (double)window_rows(s, e));
      if (pass == 2)
        series(out, "inferd_drift_warnings_total", mv, NULL, NULL,
               (double)atomic_load_explicit(&s->warnings, memory_order_relaxed));
      if (pass != 0) continue;
      for (size_t i = 0; i < s->n_hists; i++) {
        hist_score sc = score_hist(s, i, e);
        const char *name = i == s->profile->n_features ? "prediction" : s->hists[i]->name;
        series(out, "inferd_feature_drift", mv, name, "psi", sc.psi);
        series(out, "inferd_feature_drift", mv, name, "js_distance", sc.js);
        series(out, "inferd_feature_drift", mv, name, "ks", sc.ks);
      }
    }
  }
}

void drift_metrics_write(repository *repo, FILE *out, int64_t now_ns) {
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(repo);
  size_t n = 0;
  for (size_t m = 0; m < snap->n_models; m++) n += repo_snapshot_model(snap, m)->n_versions;
  const model_version **mvs = calloc(n ? n : 1, sizeof *mvs);
  if (mvs == NULL) return;
  size_t k = 0;
  for (size_t m = 0; m < snap->n_models; m++) {
    const repo_model *rm = repo_snapshot_model(snap, m);
    for (size_t j = 0; j < rm->n_versions; j++)
      if (model_version_state(repo_model_version_at(rm, j)) == MODEL_READY) mvs[k++] = repo_model_version_at(rm, j);
  }
  drift_metrics_write_versions(mvs, k, out, now_ns);
  free(mvs);
}
