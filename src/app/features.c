#include "app/features.h"

#include "app/tensor_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonkeys.h"
#include "util/strbuf.h"
#include "util/utf8.h"

/* ---- small helpers ----------------------------------------------------------------------- */


static bool is_identifier(const char *s) {
  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
      return false;
  return true;
}

void jpath_key(char *buf, size_t len, const char *key) {
  size_t off = strlen(buf);
  if (off >= len) return;
  if (is_identifier(key)) {
    snprintf(buf + off, len - off, ".%s", key);
    return;
  }
  /* ["key"], escaping quotes and backslashes, control characters as '?'; every write below is
   * checked against len first (at most 2 per step while off + 3 < len), so off stays < len */
  if (off + 2 >= len) return;
  buf[off++] = '[';
  buf[off++] = '"';
  for (const char *p = key; *p && off + 3 < len; p++) {
    if (*p == '"' || *p == '\\') buf[off++] = '\\';
    buf[off++] = ((unsigned char)*p < 0x20) ? '?' : *p;
  }
  if (off + 2 < len) {
    buf[off++] = '"';
    buf[off++] = ']';
  }
  buf[off] = '\0';
}

void jpath_index(char *buf, size_t len, size_t i) {
  size_t off = strlen(buf);
  if (off < len) snprintf(buf + off, len - off, "[%zu]", i);
}

const char *feature_type_name(feature_type t) {
  switch (t) {
    case FEATURE_NUMERIC: return "numeric";
    case FEATURE_INTEGER: return "integer";
    case FEATURE_BOOLEAN: return "boolean";
    case FEATURE_CATEGORICAL: return "categorical";
    case FEATURE_STRING: return "string";
  }
  return "?";
}

static const char *encoding_name(feature_encoding e) {
  switch (e) {
    case ENCODING_VALUE: return "value";
    case ENCODING_ONE_HOT: return "one_hot";
    case ENCODING_INDEX: return "index";
    case ENCODING_STRING: return "string";
  }
  return "?";
}

/* ---- errors ------------------------------------------------------------------------------ */

void feature_errors_add(feature_errors *e, const char *path, const char *kind, const char *fmt, ...) {
  e->total++;
  if (e->n >= FEATURE_ERRORS_MAX) return;
  if (e->items == NULL) {
    e->items = calloc(FEATURE_ERRORS_MAX, sizeof *e->items);
    if (e->items == NULL) return;
  }
  feature_error *it = &e->items[e->n++];
  /* Paths and messages quote the client's keys and values, cut to fit ("%.60s", a full
   * buffer): repair what a cut left of a multi-byte character, since JSON must be UTF-8. */
  utf8_sanitize(it->path, sizeof it->path, path);
  it->kind = kind;
  char raw[sizeof it->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  utf8_sanitize(it->message, sizeof it->message, raw);
}

void feature_errors_clear(feature_errors *e) {
  free(e->items);
  e->items = NULL;
  e->n = e->total = 0;
}

void feature_errors_drop(feature_errors *e, const char *path, const char *kind) {
  size_t kept = 0;
  for (size_t i = 0; i < e->n; i++) {
    if (strcmp(e->items[i].path, path) == 0 && strcmp(e->items[i].kind, kind) == 0) {
      e->total--;
      continue;
    }
    e->items[kept++] = e->items[i];
  }
  e->n = kept;
}

json_t *feature_errors_json(const feature_errors *e) {
  json_t *arr = json_array();
  for (size_t i = 0; i < e->n; i++)
    json_array_append_new(arr, json_pack("{ss ss ss}", "path", e->items[i].path, "kind", e->items[i].kind, "message",
                                         e->items[i].message));
  return arr;
}

const char *feature_errors_summary(const feature_errors *e, char *buf, size_t len) {
  sbuf b;
  sbuf_init(&b, buf, len);
  sbuf_appendf(&b, "%zu problem%s in the request: ", e->total, e->total == 1 ? "" : "s");
  for (size_t i = 0; i < e->n && i < 5; i++)
    sbuf_appendf(&b, "%s%s: %s", i ? "; " : "", e->items[i].path, e->items[i].message);
  if (e->total > 5) sbuf_appendf(&b, "; and %zu more (see \"errors\")", e->total - 5);
  /* a full buffer may have cut a character: repair it, within len */
  if (len > 0 && !utf8_valid(buf, strlen(buf), NULL)) {
    char *copy = strdup(buf);
    if (copy) utf8_sanitize(buf, len, copy);
    free(copy);
  }
  return buf;
}

/* ---- compile ----------------------------------------------------------------------------- */

static inferd_status cfg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inferd_status cfg_error(const char *fmt, ...) {
  inferd_status st = {.code = INFERD_INVALID_ARGUMENT};
  sbuf b;
  sbuf_init(&b, st.msg, sizeof st.msg);
  sbuf_append(&b, "config.json: application");
  va_list ap;
  va_start(ap, fmt);
  sbuf_vappendf(&b, fmt, ap);
  va_end(ap);
  return st;
}

static inferd_status check_keys(const json_t *obj, const char *where, const char *const *allowed) {
  const char *key = jsonkeys_unknown(obj, allowed);
  if (key) {
    char names[256];
    jsonkeys_list(allowed, names, sizeof names);
    return cfg_error("%s: unknown field \"%s\" (known: %s)", where, key, names);
  }
  return status_ok();
}

/* Checks a value against a feature; on success fills the encoded form. path may be NULL when
 * errs is NULL (compile-time checks of defaults report through the status instead). */
typedef struct resolved {
  double num;
  size_t cat;
  const char *str;
  size_t slen;
} resolved;

static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  return c;
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
  }
  return "?";
}

static void fmt_num(char *buf, size_t len, double v) { snprintf(buf, len, "%.15g", v); }

/* Returns NULL when the value is fine, else the error kind with the message in msg. */
static const char *check_value(const feature_def *d, const json_t *v, resolved *out, char *msg, size_t mlen) {
  switch (d->type) {
    case FEATURE_NUMERIC:
    case FEATURE_INTEGER: {
      char a[40];
      if (!json_is_number(v)) {
        snprintf(msg, mlen, "feature '%s' must be %s, got %s", d->name,
                 d->type == FEATURE_INTEGER ? "a whole number" : "a number", json_kind(v));
        return "wrong_type";
      }
      double x = json_number_value(v);
      if (d->type == FEATURE_INTEGER && (x != floor(x) || !isfinite(x))) {
        fmt_num(a, sizeof a, x);
        snprintf(msg, mlen, "feature '%s' must be a whole number, got %s", d->name, a);
        return "wrong_type";
      }
      if ((d->has_min && x < d->min) || (d->has_max && x > d->max)) {
        fmt_num(a, sizeof a, x);
        char range[100], b[40];
        if (d->has_min && d->has_max) {
          fmt_num(b, sizeof b, d->min);
          char c[40];
          fmt_num(c, sizeof c, d->max);
          snprintf(range, sizeof range, "from %s to %s", b, c);
        } else if (d->has_min) {
          fmt_num(b, sizeof b, d->min);
          snprintf(range, sizeof range, "at least %s", b);
        } else {
          fmt_num(b, sizeof b, d->max);
          snprintf(range, sizeof range, "at most %s", b);
        }
        snprintf(msg, mlen, "feature '%s' is %s, out of its range (%s)", d->name, a, range);
        return "out_of_range";
      }
      out->num = x;
      return NULL;
    }
    case FEATURE_BOOLEAN:
      if (!json_is_boolean(v)) {
        snprintf(msg, mlen, "feature '%s' must be true or false, got %s", d->name, json_kind(v));
        return "wrong_type";
      }
      out->num = json_is_true(v) ? 1.0 : 0.0;
      return NULL;
    case FEATURE_CATEGORICAL: {
      if (!json_is_string(v)) {
        snprintf(msg, mlen, "feature '%s' must be one of its categories (a string), got %s", d->name, json_kind(v));
        return "wrong_type";
      }
      const char *s = json_string_value(v);
      size_t n = json_string_length(v);
      for (size_t i = 0; i < d->n_categories; i++)
        if (strlen(d->categories[i]) == n && memcmp(d->categories[i], s, n) == 0) {
          out->cat = i;
          out->num = (double)i;
          out->str = s;
          out->slen = n;
          return NULL;
        }
      char list[200];
      sbuf lb;
      sbuf_init(&lb, list, sizeof list);
      for (size_t i = 0; i < d->n_categories; i++) sbuf_appendf(&lb, "%s'%s'", i ? ", " : "", d->categories[i]);
      snprintf(msg, mlen, "feature '%s' has unknown category '%.60s' (allowed: %s)", d->name, s, list);
      return "unknown_category";
    }
    case FEATURE_STRING: {
      if (!json_is_string(v)) {
        snprintf(msg, mlen, "feature '%s' must be a string, got %s", d->name, json_kind(v));
        return "wrong_type";
      }
      out->str = json_string_value(v);
      out->slen = json_string_length(v);
      if (d->max_length && utf8_chars(out->str, out->slen) > d->max_length) {
        snprintf(msg, mlen, "feature '%s' is %zu characters long, more than its max_length %zu", d->name,
                 utf8_chars(out->str, out->slen), d->max_length);
        return "too_long";
      }
      return NULL;
    }
  }
  snprintf(msg, mlen, "feature '%s' has an unknown type", d->name);
  return "invalid";
}

static void def_free(feature_def *d) {
  free(d->name);
  free(d->description);
  json_decref(d->default_value);
  json_decref(d->example);
  for (size_t i = 0; i < d->n_categories; i++) free(d->categories[i]);
  free(d->categories);
}

void features_destroy(features *f) {
  if (f == NULL) return;
  for (size_t i = 0; i < f->n_defs; i++) def_free(&f->defs[i]);
  free(f->defs);
  for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
  free(f->tensors);
  for (size_t i = 0; i < f->n_labels; i++) free(f->labels[i]);
  free(f->labels);
  free(f->label_output);
  free(f->probabilities_output);
  free(f->value_output);
  free(f);
}

const feature_def *features_find(const features *f, const char *name) {
  for (size_t i = 0; i < f->n_defs; i++)
    if (strcmp(f->defs[i].name, name) == 0) return &f->defs[i];
  return NULL;
}

static bool dt_is_number(inferd_datatype dt) { return dt != DT_BYTES && dt != DT_BOOL && dt != DT_INVALID; }

static inferd_status get_tensor_index(features *f, const char *name, const tensor_spec *inputs, size_t n_inputs,
                                      const char *where, size_t *idx) {
  for (size_t i = 0; i < f->n_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0) {
      *idx = i;
      return status_ok();
    }
  const tensor_spec *s = tensor_specs_find(inputs, n_inputs, name);
  if (s == NULL) {
    char names[200];
    sbuf nb;
    sbuf_init(&nb, names, sizeof names);
    for (size_t i = 0; i < n_inputs; i++) sbuf_appendf(&nb, "%s'%s'", i ? ", " : "", inputs[i].name);
    return cfg_error("%s: the model has no input '%s' (inputs: %s)", where, name, names);
  }
  feature_tensor *t = &f->tensors[f->n_tensors];
  t->name = strdup(name);
  t->datatype = s->datatype;
  t->ndim = s->ndim;
  *idx = f->n_tensors++;
  return status_ok();
}

static inferd_status compile_feature(features *f, const json_t *jf, size_t i, const char *default_tensor,
                                     const tensor_spec *inputs, size_t n_inputs) {
  static const char *const keys[] = {"name",       "type",     "description", "required", "default", "min",
                                     "max",        "categories", "encoding",  "max_length", "tensor", "example",
                                     NULL};
  char where[64];
  snprintf(where, sizeof where, ".features[%zu]", i);
  if (!json_is_object(jf)) return cfg_error("%s must be an object", where);
  TRY(check_keys(jf, where, keys));
  feature_def *d = &f->defs[f->n_defs];
  json_t *v = json_object_get(jf, "name");
  if (!json_is_string(v) || json_string_length(v) == 0 || strlen(json_string_value(v)) != json_string_length(v))
    return cfg_error("%s.name must be a non-empty string", where);
  if (features_find(f, json_string_value(v))) return cfg_error("%s.name: feature '%s' is listed twice", where, json_string_value(v));
  d->name = strdup(json_string_value(v));
  f->n_defs++; /* from here d is freed with f */

  v = json_object_get(jf, "type");
  const char *type = json_is_string(v) ? json_string_value(v) : "";
  static const struct {
    const char *name;
    feature_type t;
  } types[] = {{"numeric", FEATURE_NUMERIC},         {"integer", FEATURE_INTEGER}, {"boolean", FEATURE_BOOLEAN},
               {"categorical", FEATURE_CATEGORICAL}, {"string", FEATURE_STRING}};
  bool found = false;
  for (size_t k = 0; k < sizeof types / sizeof types[0] && !found; k++)
    if (strcmp(type, types[k].name) == 0) {
      d->type = types[k].t;
      found = true;
    }
  if (!found) return cfg_error("%s.type must be one of numeric, integer, boolean, categorical, string", where);

  if ((v = json_object_get(jf, "description")) != NULL) {
    if (!json_is_string(v)) return cfg_error("%s.description must be a string", where);
    d->description = strdup(json_string_value(v));
  }
  bool is_number = d->type == FEATURE_NUMERIC || d->type == FEATURE_INTEGER;
  if ((v = json_object_get(jf, "min")) != NULL) {
    if (!is_number || !json_is_number(v)) return cfg_error("%s.min must be a number (numeric and integer features only)", where);
    d->has_min = true;
    d->min = json_number_value(v);
  }
  if ((v = json_object_get(jf, "max")) != NULL) {
    if (!is_number || !json_is_number(v)) return cfg_error("%s.max must be a number (numeric and integer features only)", where);
    d->has_max = true;
    d->max = json_number_value(v);
  }
  if (d->has_min && d->has_max && d->min > d->max) return cfg_error("%s: min is greater than max", where);
  v = json_object_get(jf, "categories");
  if (d->type == FEATURE_CATEGORICAL) {
    if (!json_is_array(v) || json_array_size(v) == 0)
      return cfg_error("%s.categories must be a non-empty array of strings", where);
    d->categories = calloc(json_array_size(v), sizeof(char *));
    if (d->categories == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    size_t k;
    json_t *c;
    json_array_foreach(v, k, c) {
      if (!json_is_string(c)) return cfg_error("%s.categories[%zu] must be a string", where, k);
      for (size_t j = 0; j < d->n_categories; j++)
        if (strcmp(d->categories[j], json_string_value(c)) == 0)
          return cfg_error("%s.categories[%zu]: '%s' is listed twice", where, k, json_string_value(c));
      d->categories[d->n_categories++] = strdup(json_string_value(c));
    }
  } else if (v != NULL) {
    return cfg_error("%s.categories is only for categorical features", where);
  }
  if ((v = json_object_get(jf, "max_length")) != NULL) {
    if (d->type != FEATURE_STRING || !json_is_integer(v) || json_integer_value(v) < 1)
      return cfg_error("%s.max_length must be a positive integer (string features only)", where);
    d->max_length = (size_t)json_integer_value(v);
  }

  /* where it goes */
  const char *tname = default_tensor;
  if ((v = json_object_get(jf, "tensor")) != NULL) {
    if (!json_is_string(v)) return cfg_error("%s.tensor must be a string", where);
    tname = json_string_value(v);
  }
  if (tname == NULL)
    return cfg_error("%s.tensor: the model has %zu inputs; name the one this feature goes to (or set application.input)",
                     where, n_inputs);
  char twhere[80];
  snprintf(twhere, sizeof twhere, "%s.tensor", where);
  TRY(get_tensor_index(f, tname, inputs, n_inputs, twhere, &d->tensor));
  inferd_datatype dt = f->tensors[d->tensor].datatype;

  v = json_object_get(jf, "encoding");
  const char *enc = v ? (json_is_string(v) ? json_string_value(v) : "") : NULL;
  if (d->type == FEATURE_CATEGORICAL) {
    if (enc == NULL) enc = dt == DT_BYTES ? "string" : "one_hot";
    if (strcmp(enc, "one_hot") == 0) d->encoding = ENCODING_ONE_HOT;
    else if (strcmp(enc, "index") == 0) d->encoding = ENCODING_INDEX;
    else if (strcmp(enc, "string") == 0) d->encoding = ENCODING_STRING;
    else return cfg_error("%s.encoding must be one_hot, index or string", where);
  } else if (enc != NULL && strcmp(enc, "value") != 0) {
    return cfg_error("%s.encoding is only for categorical features", where);
  }
  bool wants_bytes = d->type == FEATURE_STRING || d->encoding == ENCODING_STRING;
  if (wants_bytes && dt != DT_BYTES)
    return cfg_error("%s: a %s feature%s needs a BYTES input, but '%s' is %s", where, feature_type_name(d->type),
                     d->type == FEATURE_CATEGORICAL ? " with encoding string" : "", tname, datatype_name(dt));
  if (!wants_bytes && dt == DT_BYTES)
    return cfg_error("%s: input '%s' is BYTES; a %s feature cannot go there", where, tname, feature_type_name(d->type));
  if (dt == DT_BOOL && d->type != FEATURE_BOOLEAN)
    return cfg_error("%s: input '%s' is BOOL; only boolean features can go there", where, tname);
  if (!wants_bytes && dt != DT_BOOL && !dt_is_number(dt))
    return cfg_error("%s: input '%s' has datatype %s", where, tname, datatype_name(dt));
  d->width = d->encoding == ENCODING_ONE_HOT ? d->n_categories : 1;
  d->column = f->tensors[d->tensor].columns;
  f->tensors[d->tensor].columns += d->width;

  json_t *def = json_object_get(jf, "default");
  if (def != NULL && !json_is_null(def)) {
    resolved r;
    char msg[300];
    if (check_value(d, def, &r, msg, sizeof msg)) return cfg_error("%s.default: %s", where, msg);
    d->default_value = json_incref(def);
  }
  if ((v = json_object_get(jf, "example")) != NULL) {
    resolved r;
    char msg[300];
    if (check_value(d, v, &r, msg, sizeof msg)) return cfg_error("%s.example: %s", where, msg);
    d->example = json_incref(v);
  }
  d->required = d->default_value == NULL;
  if ((v = json_object_get(jf, "required")) != NULL) {
    if (!json_is_boolean(v)) return cfg_error("%s.required must be true or false", where);
    d->required = json_is_true(v);
    if (!d->required && d->default_value == NULL)
      return cfg_error("%s: an optional feature (required false) needs a \"default\"", where);
  }
  return status_ok();
}

static inferd_status compile_outputs(features *f, const json_t *app, const model_config *cfg,
                                     const tensor_spec *outputs, size_t n_outputs) {
  static const char *const okeys[] = {"label", "probabilities", "value", NULL};
  const json_t *jo = json_object_get(app, "outputs");
  if (jo && !json_is_object(jo)) return cfg_error(".outputs must be an object");
  if (jo) TRY(check_keys(jo, ".outputs", okeys));
  const char *want[3] = {NULL, NULL, NULL}; /* label, probabilities, value */
  for (int k = 0; k < 3; k++) {
    json_t *v = jo ? json_object_get(jo, okeys[k]) : NULL;
    if (v == NULL) continue;
    if (!json_is_string(v)) return cfg_error(".outputs.%s must be a string", okeys[k]);
    want[k] = json_string_value(v);
    const tensor_spec *s = tensor_specs_find(outputs, n_outputs, want[k]);
    if (s == NULL) return cfg_error(".outputs.%s: the model has no output '%s'", okeys[k], want[k]);
  }

  const json_t *jt = json_object_get(app, "task");
  bool has_probs_output = tensor_specs_find(outputs, n_outputs, "probabilities") != NULL;
  if (jt == NULL) {
    f->task = (cfg->n_class_labels > 0 || has_probs_output || want[0] || want[1]) && !want[2] ? TASK_CLASSIFICATION
                                                                                               : TASK_REGRESSION;
  } else if (json_is_string(jt) && strcmp(json_string_value(jt), "classification") == 0) {
    f->task = TASK_CLASSIFICATION;
  } else if (json_is_string(jt) && strcmp(json_string_value(jt), "regression") == 0) {
    f->task = TASK_REGRESSION;
  } else {
    return cfg_error(".task must be \"classification\" or \"regression\"");
  }

  if (f->task == TASK_REGRESSION) {
    if (want[0] || want[1]) return cfg_error(".outputs: a regression names only \"value\"");
    const tensor_spec *s = want[2] ? tensor_specs_find(outputs, n_outputs, want[2]) : NULL;
    for (size_t i = 0; s == NULL && i < n_outputs; i++)
      if (!outputs[i].is_map_sequence && outputs[i].datatype != DT_BYTES && outputs[i].datatype != DT_BOOL) s = &outputs[i];
    if (s == NULL) return cfg_error(": a regression needs a numeric output (application.outputs.value)");
    if (s->is_map_sequence || s->datatype == DT_BYTES || s->datatype == DT_BOOL)
      return cfg_error(".outputs.value: output '%s' is not numeric", s->name);
    if (s->ndim < 1 || s->ndim > 2)
      return cfg_error(".outputs.value: output '%s' must be [N] or [N, k]", s->name);
    f->value_output = strdup(s->name);
    f->value_width = s->ndim == 1 ? 1 : (s->dims[1] > 0 ? (size_t)s->dims[1] : 0);
    f->output_names[f->n_output_names++] = f->value_output;
    return status_ok();
  }

  if (want[2]) return cfg_error(".outputs.value is for regressions; a classification names label and probabilities");
  const tensor_spec *probs = want[1] ? tensor_specs_find(outputs, n_outputs, want[1])
                                     : tensor_specs_find(outputs, n_outputs, "probabilities");
  const tensor_spec *label = want[0] ? tensor_specs_find(outputs, n_outputs, want[0]) : tensor_specs_find(outputs, n_outputs, "label");
  if (label && label->is_map_sequence) label = NULL;
  if (probs) {
    if (!datatype_is_float(probs->datatype) || probs->ndim != 2 || probs->is_map_sequence)
      return cfg_error(".outputs.probabilities: output '%s' must be a float [N, classes] tensor", probs->name);
  }
  if (label) {
    if (label->ndim != 1 && !(label->ndim == 2 && label->dims[1] == 1))
      return cfg_error(".outputs.label: output '%s' must be [N]", label->name);
    if (label->datatype == DT_BYTES) f->label_kind = LABEL_STRING;
    else if (label->datatype == DT_INT64 || label->datatype == DT_INT32) f->label_kind = LABEL_INDEX;
    else return cfg_error(".outputs.label: output '%s' must be INT64, INT32 or BYTES", label->name);
  }
  if (!probs && !label)
    return cfg_error(": a classification needs a \"probabilities\" or \"label\" output (name them in application.outputs)");
  int64_t k = probs ? probs->dims[1] : -1;
  if (cfg->n_class_labels > 0) {
    if (k > 0 && (size_t)k != cfg->n_class_labels)
      return cfg_error(": class_labels has %zu names but output '%s' has %lld classes", cfg->n_class_labels, probs->name,
                       (long long)k);
    f->labels = calloc(cfg->n_class_labels, sizeof(char *));
    if (f->labels == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    for (size_t i = 0; i < cfg->n_class_labels; i++) f->labels[f->n_labels++] = strdup(cfg->class_labels[i]);
  } else if (k > 0) {
    f->labels = calloc((size_t)k, sizeof(char *));
    if (f->labels == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    for (int64_t i = 0; i < k; i++) {
      char b[24];
      snprintf(b, sizeof b, "%lld", (long long)i);
      f->labels[f->n_labels++] = strdup(b);
    }
  }
  if (label) {
    f->label_output = strdup(label->name);
    f->output_names[f->n_output_names++] = f->label_output;
  }
  if (probs) {
    f->probabilities_output = strdup(probs->name);
    f->output_names[f->n_output_names++] = f->probabilities_output;
  }
  return status_ok();
}

inferd_status features_compile(const json_t *app, const model_config *cfg, const tensor_spec *inputs,
                               size_t n_inputs, const tensor_spec *outputs, size_t n_outputs, features **out) {
  static const char *const keys[] = {"features", "input", "allow_extra_features", "task", "outputs", NULL};
  *out = NULL;
  if (!json_is_object(app)) return cfg_error(" must be an object");
  TRY(check_keys(app, "", keys));
  const json_t *jfs = json_object_get(app, "features");
  if (!json_is_array(jfs) || json_array_size(jfs) == 0)
    return cfg_error(".features must be a non-empty array of features");
  features *f = calloc(1, sizeof *f);
  if (f == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  f->defs = calloc(json_array_size(jfs), sizeof *f->defs);
  f->tensors = calloc(n_inputs + 1, sizeof *f->tensors);
  inferd_status st = (f->defs && f->tensors) ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");

  const char *default_tensor = n_inputs == 1 ? inputs[0].name : NULL;
  const json_t *v = json_object_get(app, "input");
  if (status_is_ok(&st) && v) {
    if (!json_is_string(v)) st = cfg_error(".input must be a string");
    else if (!tensor_specs_find(inputs, n_inputs, json_string_value(v)))
      st = cfg_error(".input: the model has no input '%s'", json_string_value(v));
    else default_tensor = json_string_value(v);
  }
  if (status_is_ok(&st) && (v = json_object_get(app, "allow_extra_features")) != NULL) {
    if (!json_is_boolean(v)) st = cfg_error(".allow_extra_features must be true or false");
    f->allow_extra = json_is_true(v);
  }
  for (size_t i = 0; i < json_array_size(jfs) && status_is_ok(&st); i++)
    st = compile_feature(f, json_array_get(jfs, i), i, default_tensor, inputs, n_inputs);

  /* the tensors' shapes: variable batch, then the columns */
  for (size_t i = 0; i < f->n_tensors && status_is_ok(&st); i++) {
    feature_tensor *t = &f->tensors[i];
    const tensor_spec *s = tensor_specs_find(inputs, n_inputs, t->name);
    if (s->ndim < 1 || s->dims[0] != -1)
      st = cfg_error(": input '%s' needs a variable first (batch) dimension to take records (set max_batch_size)", t->name);
    else if (s->ndim == 1 && t->columns != 1)
      st = cfg_error(": input '%s' is [N] and takes one feature, but %zu columns go to it", t->name, t->columns);
    else if (s->ndim == 2 && s->dims[1] != -1 && (size_t)s->dims[1] != t->columns)
      st = cfg_error(": input '%s' has %lld columns but the features fill %zu", t->name, (long long)s->dims[1], t->columns);
    else if (s->ndim > 2)
      st = cfg_error(": input '%s' has %d dimensions; records fill [N] or [N, columns] inputs", t->name, s->ndim);
    t->ndim = s->ndim;
  }
  for (size_t i = 0; i < n_inputs && status_is_ok(&st); i++) {
    bool fed = false;
    for (size_t j = 0; j < f->n_tensors && !fed; j++) fed = strcmp(f->tensors[j].name, inputs[i].name) == 0;
    if (!fed) st = cfg_error(": no feature goes to the model's input '%s'", inputs[i].name);
  }
  if (status_is_ok(&st)) st = compile_outputs(f, app, cfg, outputs, n_outputs);
  if (!status_is_ok(&st)) {
    features_destroy(f);
    return st;
  }
  *out = f;
  return status_ok();
}

/* ---- encode ------------------------------------------------------------------------------ */

static void value_path(const features_paths *p, size_t record, const char *feature, char *buf, size_t len) {
  if (p && p->path) {
    buf[0] = '\0';
    p->path(p->user, record, feature, buf, len);
    return;
  }
  snprintf(buf, len, "%s", p && p->base ? p->base : "$");
  jpath_index(buf, len, record);
  if (feature) jpath_key(buf, len, feature);
}

/* A value already checked with fits() into the tensor's element: the one JSON-number
 * conversion (app/tensor_json.h) every JSON route uses. */
static void put_number(uint8_t *dst, inferd_datatype dt, double v) { (void)tensor_number_store(dt, false, 0, v, dst); }

/* Whether v fits the tensor's datatype: whole and in range for integers, in range for floats. */
static bool fits(inferd_datatype dt, double v) {
  uint8_t scratch[8];
  return tensor_number_store(dt, false, 0, v, scratch) == TENSOR_NUMBER_OK;
}

inferd_status features_encode(const features *f, const json_t *records, const features_paths *paths, tensor **tensors,
                              size_t *n_tensors, feature_errors *errs) {
  char path[200], msg[300];
  *tensors = NULL;
  *n_tensors = 0;
  size_t before = errs->total;
  if (!json_is_array(records)) {
    value_path(paths, 0, NULL, path, sizeof path);
    char *br = strrchr(path, '[');
    if (br && !(paths && paths->path)) *br = '\0';
    feature_errors_add(errs, path, "wrong_type", "must be an array of records (objects of feature values)");
    return status_make(INFERD_INVALID_ARGUMENT, "invalid records");
  }
  size_t n = json_array_size(records);
  if (n == 0) {
    snprintf(path, sizeof path, "%s", paths && paths->base ? paths->base : "$");
    feature_errors_add(errs, path, "empty", "no records: send at least one");
    return status_make(INFERD_INVALID_ARGUMENT, "no records");
  }
  resolved *vals = calloc(n * f->n_defs + 1, sizeof *vals);
  if (vals == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  size_t *bytes = calloc(f->n_tensors + 1, sizeof *bytes); /* BYTES tensors' sizes */
  if (bytes == NULL) {
    free(vals);
    return status_make(INFERD_INTERNAL, "out of memory");
  }

  for (size_t r = 0; r < n; r++) {
    const json_t *rec = json_array_get(records, r);
    if (!json_is_object(rec)) {
      value_path(paths, r, NULL, path, sizeof path);
      feature_errors_add(errs, path, "wrong_type", "a record must be an object of feature values, got %s", json_kind(rec));
      continue;
    }
    for (size_t i = 0; i < f->n_defs; i++) {
      const feature_def *d = &f->defs[i];
      const json_t *v = json_object_get(rec, d->name);
      if (v == NULL || json_is_null(v)) {
        if (d->default_value == NULL) {
          value_path(paths, r, d->name, path, sizeof path);
          feature_errors_add(errs, path, "missing_feature", "missing required feature '%s' (%s)", d->name,
                             feature_type_name(d->type));
          continue;
        }
        v = d->default_value;
      }
      resolved *out = &vals[r * f->n_defs + i];
      const char *kind = check_value(d, v, out, msg, sizeof msg);
      if (kind == NULL && d->width == 1 && d->encoding != ENCODING_STRING && d->type != FEATURE_STRING &&
          !fits(f->tensors[d->tensor].datatype, out->num)) {
        kind = "out_of_range";
        snprintf(msg, sizeof msg, "feature '%s' does not fit the model's %s input", d->name,
                 datatype_name(f->tensors[d->tensor].datatype));
      }
      if (kind) {
        value_path(paths, r, d->name, path, sizeof path);
        feature_errors_add(errs, path, kind, "%s", msg);
        continue;
      }
      /* the fill below writes 4 + slen for each def of a BYTES tensor: every such def wants
       * bytes (compile_feature refuses any other on a BYTES input), so it writes exactly this */
      if (d->type == FEATURE_STRING || d->encoding == ENCODING_STRING) bytes[d->tensor] += 4 + out->slen;
    }
    if (!f->allow_extra) {
      const char *key;
      json_t *v;
      json_object_foreach((json_t *)rec, key, v) {
        if (features_find(f, key)) continue;
        char names[160];
        sbuf nb;
        sbuf_init(&nb, names, sizeof names);
        for (size_t i = 0; i < f->n_defs; i++) sbuf_appendf(&nb, "%s%s", i ? ", " : "", f->defs[i].name);
        value_path(paths, r, key, path, sizeof path);
        feature_errors_add(errs, path, "unknown_feature", "unknown feature '%.60s' (features: %s)", key, names);
      }
    }
  }
  if (errs->total > before) {
    free(vals);
    free(bytes);
    return status_make(INFERD_INVALID_ARGUMENT, "invalid records");
  }

  tensor *ts = calloc(f->n_tensors + 1, sizeof *ts);
  inferd_status st = ts ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  for (size_t t = 0; t < f->n_tensors && status_is_ok(&st); t++) {
    const feature_tensor *ft = &f->tensors[t];
    int64_t shape[2] = {(int64_t)n, (int64_t)ft->columns};
    st = tensor_init(&ts[t], ft->name, ft->datatype, shape, ft->ndim);
    if (status_is_ok(&st))
      st = tensor_alloc(&ts[t], ft->datatype == DT_BYTES ? bytes[t] : n * ft->columns * datatype_size(ft->datatype));
    if (!status_is_ok(&st)) break;
    if (ft->datatype == DT_BYTES) {
      /* row-major: record by record, each row's columns in order */
      uint8_t *p = ts[t].data;
      for (size_t r = 0; r < n; r++)
        for (size_t i = 0; i < f->n_defs; i++) {
          if (f->defs[i].tensor != t) continue;
          const resolved *rv = &vals[r * f->n_defs + i];
          uint32_t len = (uint32_t)rv->slen;
          memcpy(p, &len, 4);
          memcpy(p + 4, rv->str, rv->slen);
          p += 4 + rv->slen;
        }
      continue;
    }
    size_t es = datatype_size(ft->datatype);
    for (size_t r = 0; r < n; r++) {
      uint8_t *row = ts[t].data + r * ft->columns * es;
      for (size_t i = 0; i < f->n_defs; i++) {
        const feature_def *d = &f->defs[i];
        if (d->tensor != t) continue;
        const resolved *rv = &vals[r * f->n_defs + i];
        if (d->encoding == ENCODING_ONE_HOT) {
          for (size_t c = 0; c < d->width; c++) put_number(row + (d->column + c) * es, ft->datatype, c == rv->cat ? 1.0 : 0.0);
        } else {
          put_number(row + d->column * es, ft->datatype, rv->num);
        }
      }
    }
  }
  free(vals);
  free(bytes);
  if (!status_is_ok(&st)) {
    if (ts) tensors_free(ts, f->n_tensors);
    return st;
  }
  *tensors = ts;
  *n_tensors = f->n_tensors;
  return status_ok();
}

json_t *features_rows_to_records(const features *f, const json_t *rows, const features_paths *paths,
                                 feature_errors *errs) {
  char path[200];
  if (!json_is_array(rows)) {
    snprintf(path, sizeof path, "%s", paths && paths->base ? paths->base : "$");
    feature_errors_add(errs, path, "wrong_type", "must be an array of rows");
    return NULL;
  }
  json_t *out = json_array();
  size_t before = errs->total;
  size_t r;
  json_t *row;
  json_array_foreach(rows, r, row) {
    if (!json_is_array(row) || json_array_size(row) != f->n_defs) {
      value_path(paths, r, NULL, path, sizeof path);
      if (json_is_array(row))
        feature_errors_add(errs, path, "invalid", "a row has %zu values but the model has %zu features (in order: %s%s)",
                           json_array_size(row), f->n_defs, f->defs[0].name, f->n_defs > 1 ? ", ..." : "");
      else
        feature_errors_add(errs, path, "wrong_type", "a row must be an array of %zu feature values", f->n_defs);
      continue;
    }
    json_t *rec = json_object();
    for (size_t i = 0; i < f->n_defs; i++) json_object_set(rec, f->defs[i].name, json_array_get(row, i));
    json_array_append_new(out, rec);
  }
  if (errs->total > before) {
    json_decref(out);
    return NULL;
  }
  return out;
}

void features_columnar_path(void *base, size_t record, const char *feature, char *buf, size_t len) {
  snprintf(buf, len, "%s", (const char *)base);
  if (feature == NULL) return;
  jpath_key(buf, len, feature);
  jpath_index(buf, len, record);
}

json_t *features_columns_to_records(const json_t *columns, const char *base, feature_errors *errs) {
  char path[200];
  size_t before = errs->total, n = 0;
  bool have_n = false;
  const char *key;
  json_t *col;
  json_object_foreach((json_t *)columns, key, col) {
    snprintf(path, sizeof path, "%s", base);
    jpath_key(path, sizeof path, key);
    if (!json_is_array(col)) {
      feature_errors_add(errs, path, "wrong_type", "a column must be an array with one value per record");
    } else if (!have_n) {
      n = json_array_size(col);
      have_n = true;
    } else if (json_array_size(col) != n) {
      feature_errors_add(errs, path, "invalid", "column has %zu values but the first column has %zu", json_array_size(col), n);
    }
  }
  if (errs->total > before) return NULL;
  json_t *out = json_array();
  for (size_t r = 0; r < n; r++) {
    json_t *rec = json_object();
    json_object_foreach((json_t *)columns, key, col) json_object_set(rec, key, json_array_get(col, r));
    json_array_append_new(out, rec);
  }
  return out;
}

/* ---- decode ------------------------------------------------------------------------------ */

static const tensor *find_output(const tensor *outputs, char *const *names, size_t n, const char *name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return &outputs[i];
  return NULL;
}

static double read_number(const tensor *t, size_t i) {
  const uint8_t *p = t->data + i * datatype_size(t->datatype);
  switch (t->datatype) {
    case DT_BOOL: return *p ? 1 : 0;
    case DT_UINT8: return *p;
    case DT_INT8: return *(const int8_t *)p;
    case DT_UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case DT_INT16: { int16_t x; memcpy(&x, p, 2); return x; }
    case DT_UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case DT_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
    case DT_UINT64: { uint64_t x; memcpy(&x, p, 8); return (double)x; }
    case DT_INT64: { int64_t x; memcpy(&x, p, 8); return (double)x; }
    case DT_FP16: { uint16_t x; memcpy(&x, p, 2); return half_to_float(x); }
    case DT_BF16: { uint16_t x; memcpy(&x, p, 2); return bf16_to_float(x); }
    case DT_FP32: { float x; memcpy(&x, p, 4); return x; }
    case DT_FP64: { double x; memcpy(&x, p, 8); return x; }
    default: return 0;
  }
}

/* A bound or default as JSON: whole numbers as integers (0, not 0.0). */
static json_t *bound_json(double v) {
  if (v == floor(v) && fabs(v) < 9007199254740992.0) return json_integer((json_int_t)v);
  return json_real(v);
}

static json_t *number_json(double v) {
  if (!isfinite(v)) return json_null(); /* JSON has no NaN/Inf: null says "no number" */
  return json_real(v);
}

typedef struct decoded {
  size_t n;         /* records */
  const tensor *probs;
  size_t k;         /* classes */
  const tensor *label;
  const uint8_t **label_str; /* owned; LABEL_STRING */
  uint32_t *label_len;       /* owned */
} decoded;

static void decoded_clear(decoded *d) {
  free(d->label_str);
  free(d->label_len);
}

static inferd_status decode_classes(const features *f, const tensor *outputs, char *const *names, size_t n_outputs,
                                    decoded *d) {
  memset(d, 0, sizeof *d);
  d->probs = find_output(outputs, names, n_outputs, f->probabilities_output);
  d->label = find_output(outputs, names, n_outputs, f->label_output);
  if (d->probs == NULL && d->label == NULL) return status_make(INFERD_INTERNAL, "the model's outputs are missing");
  if (d->probs) {
    if (d->probs->ndim != 2) return status_make(INFERD_INTERNAL, "output '%s' is not [N, classes]", d->probs->name);
    d->n = (size_t)d->probs->shape[0];
    d->k = (size_t)d->probs->shape[1];
  }
  if (d->label) {
    size_t n = d->label->ndim >= 1 ? (size_t)d->label->shape[0] : 1;
    if (d->probs && n != d->n) return status_make(INFERD_INTERNAL, "outputs disagree on the number of records");
    d->n = n;
    if (f->label_kind == LABEL_STRING) {
      d->label_str = calloc(n + 1, sizeof *d->label_str);
      d->label_len = calloc(n + 1, sizeof *d->label_len);
      if (!d->label_str || !d->label_len) return status_make(INFERD_INTERNAL, "out of memory");
      size_t pos = 0, i = 0;
      const uint8_t *e;
      uint32_t len;
      while (i < n && tensor_bytes_next(d->label, &pos, &e, &len)) {
        d->label_str[i] = e;
        d->label_len[i++] = len;
      }
      if (i != n) return status_make(INFERD_INTERNAL, "output '%s' has fewer labels than records", d->label->name);
    } else if ((int64_t)d->label->byte_size < (int64_t)(n * datatype_size(d->label->datatype))) {
      return status_make(INFERD_INTERNAL, "output '%s' is short", d->label->name);
    }
  }
  return status_ok();
}

static json_t *label_name(const features *f, size_t idx) {
  if (idx < f->n_labels) return json_string(f->labels[idx]);
  char b[24];
  snprintf(b, sizeof b, "%zu", idx);
  return json_string(b);
}

/* The row's label (new reference) and its class index (or SIZE_MAX when unknown). */
static json_t *row_label(const features *f, const decoded *d, size_t r, size_t *idx) {
  *idx = SIZE_MAX;
  if (d->label && f->label_kind == LABEL_INDEX) {
    double v = read_number(d->label, r);
    if (v >= 0) *idx = (size_t)v;
    return *idx != SIZE_MAX ? label_name(f, *idx) : json_integer((json_int_t)v);
  }
  if (d->label && f->label_kind == LABEL_STRING) {
    for (size_t i = 0; i < f->n_labels; i++)
      if (strlen(f->labels[i]) == d->label_len[r] && memcmp(f->labels[i], d->label_str[r], d->label_len[r]) == 0) *idx = i;
    json_t *s = json_stringn((const char *)d->label_str[r], d->label_len[r]);
    return s ? s : json_string("?");
  }
  size_t best = 0;
  for (size_t c = 1; c < d->k; c++)
    if (read_number(d->probs, r * d->k + c) > read_number(d->probs, r * d->k + best)) best = c;
  *idx = best;
  return label_name(f, best);
}

static json_t *regression_value(const features *f, const tensor *t, size_t r) {
  size_t w = t->ndim == 2 ? (size_t)t->shape[1] : 1;
  if (w == 1 && (f->value_width == 1 || t->ndim == 1)) return number_json(read_number(t, r * w));
  json_t *a = json_array();
  for (size_t c = 0; c < w; c++) json_array_append_new(a, number_json(read_number(t, r * w + c)));
  return a;
}

inferd_status features_decode_results(const features *f, const tensor *outputs, char *const *output_names,
                                      size_t n_outputs, const features_result_opts *opts, json_t **results) {
  *results = NULL;
  if (f->task == TASK_REGRESSION) {
    const tensor *t = find_output(outputs, output_names, n_outputs, f->value_output);
    if (t == NULL || t->ndim < 1) return status_make(INFERD_INTERNAL, "the model's output '%s' is missing", f->value_output);
    json_t *arr = json_array();
    for (size_t r = 0; r < (size_t)t->shape[0]; r++)
      json_array_append_new(arr, json_pack("{so}", "value", regression_value(f, t, r)));
    *results = arr;
    return status_ok();
  }
  decoded d;
  inferd_status st = decode_classes(f, outputs, output_names, n_outputs, &d);
  if (!status_is_ok(&st)) {
    decoded_clear(&d);
    return st;
  }
  json_t *arr = json_array();
  size_t *order = d.k ? calloc(d.k, sizeof *order) : NULL;
  for (size_t r = 0; r < d.n; r++) {
    size_t idx;
    json_t *res = json_object();
    json_object_set_new(res, "label", row_label(f, &d, r, &idx));
    json_object_set_new(res, "score", d.probs && idx < d.k ? number_json(read_number(d.probs, r * d.k + idx)) : json_null());
    if (d.probs && order && (opts == NULL || opts->return_probabilities)) {
      size_t k = d.k;
      for (size_t c = 0; c < k; c++) order[c] = c;
      if (opts && opts->top_k > 0) {
        /* highest first; k is small (classes), insertion sort is fine */
        for (size_t a = 1; a < k; a++)
          for (size_t b = a; b > 0 && read_number(d.probs, r * d.k + order[b]) > read_number(d.probs, r * d.k + order[b - 1]); b--) {
            size_t tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
          }
        if ((size_t)opts->top_k < k) k = (size_t)opts->top_k;
      }
      json_t *probs = json_object();
      for (size_t c = 0; c < k; c++) {
        json_t *name = label_name(f, order[c]);
        json_object_set_new(probs, json_string_value(name), number_json(read_number(d.probs, r * d.k + order[c])));
        json_decref(name);
      }
      json_object_set_new(res, "probabilities", probs);
    }
    json_array_append_new(arr, res);
  }
  free(order);
  decoded_clear(&d);
  *results = arr;
  return status_ok();
}

inferd_status features_decode_predictions(const features *f, const tensor *outputs, char *const *output_names,
                                          size_t n_outputs, bool probabilities, json_t **predictions) {
  *predictions = NULL;
  if (f->task == TASK_REGRESSION) {
    const tensor *t = find_output(outputs, output_names, n_outputs, f->value_output);
    if (t == NULL || t->ndim < 1) return status_make(INFERD_INTERNAL, "the model's output '%s' is missing", f->value_output);
    json_t *arr = json_array();
    for (size_t r = 0; r < (size_t)t->shape[0]; r++) json_array_append_new(arr, regression_value(f, t, r));
    *predictions = arr;
    return status_ok();
  }
  decoded d;
  inferd_status st = decode_classes(f, outputs, output_names, n_outputs, &d);
  if (status_is_ok(&st) && probabilities && d.probs == NULL)
    st = status_make(INFERD_INVALID_ARGUMENT, "this model has no probabilities output");
  if (!status_is_ok(&st)) {
    decoded_clear(&d);
    return st;
  }
  json_t *arr = json_array();
  for (size_t r = 0; r < d.n; r++) {
    if (probabilities) {
      json_t *row = json_array();
      for (size_t c = 0; c < d.k; c++) json_array_append_new(row, number_json(read_number(d.probs, r * d.k + c)));
      json_array_append_new(arr, row);
    } else {
      size_t idx;
      json_array_append_new(arr, row_label(f, &d, r, &idx));
    }
  }
  decoded_clear(&d);
  *predictions = arr;
  return status_ok();
}

/* ---- describe ---------------------------------------------------------------------------- */

json_t *features_describe(const features *f) {
  json_t *arr = json_array();
  for (size_t i = 0; i < f->n_defs; i++) {
    const feature_def *d = &f->defs[i];
    json_t *o = json_pack("{ss ss sb}", "name", d->name, "type", feature_type_name(d->type), "required", d->required);
    if (d->default_value) json_object_set(o, "default", d->default_value);
    if (d->has_min) json_object_set_new(o, "minimum", bound_json(d->min));
    if (d->has_max) json_object_set_new(o, "maximum", bound_json(d->max));
    if (d->type == FEATURE_CATEGORICAL) {
      json_t *c = json_array();
      for (size_t k = 0; k < d->n_categories; k++) json_array_append_new(c, json_string(d->categories[k]));
      json_object_set_new(o, "categories", c);
      json_object_set_new(o, "encoding", json_string(encoding_name(d->encoding)));
    }
    if (d->max_length) json_object_set_new(o, "max_length", json_integer((json_int_t)d->max_length));
    if (d->description) json_object_set_new(o, "description", json_string(d->description));
    json_object_set_new(o, "tensor", json_string(f->tensors[d->tensor].name));
    json_array_append_new(arr, o);
  }
  return arr;
}

static json_t *labels_json(const features *f) {
  json_t *a = json_array();
  for (size_t i = 0; i < f->n_labels; i++) json_array_append_new(a, json_string(f->labels[i]));
  return a;
}

json_t *features_describe_outputs(const features *f) {
  if (f->task == TASK_REGRESSION)
    return json_pack("{ss ss s{s{ss ss}}}", "task", "regression", "output", f->value_output, "fields", "value", "type",
                     f->value_width == 1 ? "number" : "array of numbers", "description", "the predicted value");
  json_t *o = json_pack("{ss so}", "task", "classification", "labels", labels_json(f));
  json_t *fields = json_object();
  json_object_set_new(fields, "label", json_pack("{ss ss}", "type", "string", "description", "the predicted class"));
  if (f->probabilities_output) {
    json_object_set_new(fields, "score", json_pack("{ss ss}", "type", "number", "description", "the predicted class's probability"));
    json_object_set_new(fields, "probabilities",
                        json_pack("{ss ss}", "type", "object", "description", "each class's probability (parameters: return_probabilities, top_k)"));
  }
  json_object_set_new(o, "fields", fields);
  if (f->label_output) json_object_set_new(o, "label_output", json_string(f->label_output));
  if (f->probabilities_output) json_object_set_new(o, "probabilities_output", json_string(f->probabilities_output));
  return o;
}

json_t *features_record_schema(const features *f) {
  json_t *props = json_object();
  json_t *required = json_array();
  for (size_t i = 0; i < f->n_defs; i++) {
    const feature_def *d = &f->defs[i];
    json_t *p = json_object();
    switch (d->type) {
      case FEATURE_NUMERIC: json_object_set_new(p, "type", json_string("number")); break;
      case FEATURE_INTEGER: json_object_set_new(p, "type", json_string("integer")); break;
      case FEATURE_BOOLEAN: json_object_set_new(p, "type", json_string("boolean")); break;
      case FEATURE_STRING: json_object_set_new(p, "type", json_string("string")); break;
      case FEATURE_CATEGORICAL: {
        json_object_set_new(p, "type", json_string("string"));
        json_t *e = json_array();
        for (size_t k = 0; k < d->n_categories; k++) json_array_append_new(e, json_string(d->categories[k]));
        json_object_set_new(p, "enum", e);
        break;
      }
    }
    if (d->has_min) json_object_set_new(p, "minimum", bound_json(d->min));
    if (d->has_max) json_object_set_new(p, "maximum", bound_json(d->max));
    if (d->max_length) json_object_set_new(p, "maxLength", json_integer((json_int_t)d->max_length));
    if (d->default_value) json_object_set(p, "default", d->default_value);
    if (d->example) json_object_set_new(p, "examples", json_pack("[O]", d->example));
    if (d->description) json_object_set_new(p, "description", json_string(d->description));
    json_object_set_new(props, d->name, p);
    if (d->required) json_array_append_new(required, json_string(d->name));
  }
  return json_pack("{ss so so sb}", "type", "object", "properties", props, "required", required, "additionalProperties",
                   f->allow_extra);
}

json_t *features_result_schema(const features *f) {
  if (f->task == TASK_REGRESSION) {
    json_t *value = f->value_width == 1 ? json_pack("{ss}", "type", "number")
                                        : json_pack("{ss s{ss}}", "type", "array", "items", "type", "number");
    return json_pack("{ss s{so} s[s]}", "type", "object", "properties", "value", value, "required", "value");
  }
  json_t *label = json_pack("{ss}", "type", "string");
  if (f->n_labels) json_object_set_new(label, "enum", labels_json(f));
  json_t *props = json_pack("{so s{s[ss]}}", "label", label, "score", "type", "number", "null");
  if (f->probabilities_output)
    json_object_set_new(props, "probabilities",
                        json_pack("{ss s{ss}}", "type", "object", "additionalProperties", "type", "number"));
  return json_pack("{ss so s[ss]}", "type", "object", "properties", props, "required", "label", "score");
}

json_t *features_example_record(const features *f) {
  json_t *rec = json_object();
  for (size_t i = 0; i < f->n_defs; i++) {
    const feature_def *d = &f->defs[i];
    json_t *v = NULL;
    if (d->example) v = json_incref(d->example);
    else if (d->default_value) v = json_incref(d->default_value);
    else switch (d->type) {
        case FEATURE_NUMERIC:
        case FEATURE_INTEGER: {
          double x = d->has_min && d->has_max ? (d->min + d->max) / 2 : d->has_min ? d->min : d->has_max ? d->max : 0;
          v = d->type == FEATURE_INTEGER ? json_integer((json_int_t)ceil(x)) : json_real(x);
          break;
        }
        case FEATURE_BOOLEAN: v = json_false(); break;
        case FEATURE_CATEGORICAL: v = json_string(d->categories[0]); break;
        case FEATURE_STRING: v = json_string("example text"); break;
      }
    json_object_set_new(rec, d->name, v);
  }
  return rec;
}
