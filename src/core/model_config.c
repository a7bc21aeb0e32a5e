#include "core/model_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonkeys.h"

void tensor_specs_free(tensor_spec *specs, size_t n) {
  if (specs == NULL) return;
  for (size_t i = 0; i < n; i++) free(specs[i].name);
  free(specs);
}

const tensor_spec *tensor_specs_find(const tensor_spec *specs, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(specs[i].name, name) == 0) return &specs[i];
  return NULL;
}

void model_config_destroy(model_config *cfg) {
  if (cfg == NULL) return;
  free(cfg->backend);
  tensor_specs_free(cfg->inputs, cfg->n_inputs);
  tensor_specs_free(cfg->outputs, cfg->n_outputs);
  for (size_t i = 0; i < cfg->n_class_labels; i++) free(cfg->class_labels[i]);
  free(cfg->class_labels);
  free(cfg->specific_versions);
  free(cfg->description);
  free(cfg->warmup.file);
  json_decref(cfg->application);
  json_decref(cfg->drift);
  json_decref(cfg->generate);
  free(cfg);
}

inferd_status model_config_default(model_config **out) {
  model_config *cfg = calloc(1, sizeof *cfg);
  if (cfg == NULL || (cfg->backend = strdup("onnxruntime")) == NULL) {
    free(cfg);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  cfg->policy = POLICY_LATEST;
  cfg->latest_n = 1;
  cfg->instance_count = 1;
  cfg->intra_op_threads = 1;
  cfg->inter_op_threads = 1;
  cfg->batching.priority_levels = 1;
  cfg->batching.default_priority_level = 1;
  cfg->response_cache.max_bytes = INT64_C(64) << 20;
  *out = cfg;
  return status_ok();
}

static inferd_status field_error(const char *path, const char *what) {
  return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s %s", path, what);
}

/* Reads an integer field within [lo, hi] if present. */
static inferd_status get_int(json_t *obj, const char *key, const char *path, long long lo,
                             long long hi, int *dst) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL) return status_ok();
  if (!json_is_integer(v)) return field_error(path, "must be an integer");
  long long x = json_integer_value(v);
  if (x < lo || x > hi) return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s must be between %lld and %lld", path, lo, hi);
  *dst = (int)x;
  return status_ok();
}

static inferd_status check_keys(json_t *obj, const char *path, const char *const *allowed) {
  const char *key = jsonkeys_unknown(obj, allowed);
  if (key)
    return status_make(INFERD_INVALID_ARGUMENT, "config.json: unknown field %s%s%s", path, *path ? "." : "", key);
  return status_ok();
}

static inferd_status parse_tensor_specs(json_t *arr, const char *what, tensor_spec **out,
                                        size_t *n_out) {
  char path[64];
  if (!json_is_array(arr)) return field_error(what, "must be an array");
  size_t n = json_array_size(arr);
  tensor_spec *specs = calloc(n ? n : 1, sizeof *specs);
  if (specs == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  static const char *const keys[] = {"name", "datatype", "dims", NULL};
  inferd_status st = status_ok();
  for (size_t i = 0; i < n && status_is_ok(&st); i++) {
    json_t *o = json_array_get(arr, i);
    snprintf(path, sizeof path, "%s[%zu]", what, i);
    if (!json_is_object(o)) {
      st = field_error(path, "must be an object");
      break;
    }
    st = check_keys(o, path, keys);
    if (!status_is_ok(&st)) break;
    json_t *name = json_object_get(o, "name");
    json_t *dt = json_object_get(o, "datatype");
    json_t *dims = json_object_get(o, "dims");
    if (!json_is_string(name)) {
      st = field_error(path, "needs a string \"name\"");
      break;
    }
    specs[i].name = strdup(json_string_value(name));
    if (!json_is_string(dt) || (specs[i].datatype = datatype_from_name(json_string_value(dt))) == DT_INVALID) {
      st = status_make(INFERD_INVALID_ARGUMENT, "config.json: %s.datatype '%s' is not a V2 datatype (BOOL, UINT8..UINT64, INT8..INT64, FP16, BF16, FP32, FP64, BYTES)",
                       path, json_is_string(dt) ? json_string_value(dt) : "(not a string)");
      break;
    }
    if (!json_is_array(dims) || json_array_size(dims) > TENSOR_MAX_DIMS) {
      st = status_make(INFERD_INVALID_ARGUMENT, "config.json: %s.dims must be an array of at most %d integers", path, TENSOR_MAX_DIMS);
      break;
    }
    specs[i].ndim = (int)json_array_size(dims);
    for (int d = 0; d < specs[i].ndim; d++) {
      json_t *x = json_array_get(dims, (size_t)d);
      if (!json_is_integer(x) || json_integer_value(x) < -1 || json_integer_value(x) == 0) {
        st = status_make(INFERD_INVALID_ARGUMENT, "config.json: %s.dims[%d] must be a positive integer or -1", path, d);
        break;
      }
      specs[i].dims[d] = json_integer_value(x);
    }
    for (size_t j = 0; j < i && status_is_ok(&st); j++)
      if (strcmp(specs[j].name, specs[i].name) == 0)
        st = status_make(INFERD_INVALID_ARGUMENT, "config.json: %s names '%s' twice", what, specs[i].name);
  }
  if (!status_is_ok(&st)) {
    tensor_specs_free(specs, n);
    return st;
  }
  *out = specs;
  *n_out = n;
  return status_ok();
}

static inferd_status parse_policy(json_t *v, model_config *cfg) {
  static const char *const keys[] = {"latest", "all", "specific", NULL};
  if (!json_is_object(v) || json_object_size(v) != 1)
    return field_error("version_policy", "must be one of {\"latest\": N}, {\"all\": true}, {\"specific\": [versions]}");
  inferd_status st = check_keys(v, "version_policy", keys);
  if (!status_is_ok(&st)) return st;
  json_t *x;
  /* Triton's shapes are accepted too: {"latest": {"num_versions": N}}, {"all": {}},
   * {"specific": {"versions": [...]}} */
  if ((x = json_object_get(v, "latest")) != NULL) {
    if (json_is_object(x)) {
      static const char *const lkeys[] = {"num_versions", NULL};
      TRY(check_keys(x, "version_policy.latest", lkeys));
      x = json_object_get(x, "num_versions");
      if (x == NULL) return field_error("version_policy.latest.num_versions", "is required");
      if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 1000000)
        return field_error("version_policy.latest.num_versions", "must be a positive integer");
    }
    if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 1000000)
      return field_error("version_policy.latest", "must be a positive integer");
    cfg->policy = POLICY_LATEST;
    cfg->latest_n = (int)json_integer_value(x);
  } else if ((x = json_object_get(v, "all")) != NULL) {
    if (!json_is_true(x) && !(json_is_object(x) && json_object_size(x) == 0))
      return field_error("version_policy.all", "must be true (or {})");
    cfg->policy = POLICY_ALL;
  } else {
    x = json_object_get(v, "specific");
    if (json_is_object(x)) {
      static const char *const skeys[] = {"versions", NULL};
      TRY(check_keys(x, "version_policy.specific", skeys));
      x = json_object_get(x, "versions");
    }
    if (!json_is_array(x) || json_array_size(x) == 0)
      return field_error("version_policy.specific", "must be a non-empty array of versions");
    cfg->policy = POLICY_SPECIFIC;
    cfg->n_specific_versions = json_array_size(x);
    cfg->specific_versions = calloc(cfg->n_specific_versions, sizeof(int64_t));
    if (cfg->specific_versions == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    for (size_t i = 0; i < cfg->n_specific_versions; i++) {
      json_t *e = json_array_get(x, i);
      if (!json_is_integer(e) || json_integer_value(e) < 1)
        return status_make(INFERD_INVALID_ARGUMENT, "config.json: version_policy.specific[%zu] must be a positive integer", i);
      cfg->specific_versions[i] = json_integer_value(e);
    }
  }
  return status_ok();
}

/* The queue keys, shared by "queue_policy" and "dynamic_batching". */
static inferd_status parse_queue_keys(json_t *v, const char *path, batching_config *b) {
  char p[64];
  snprintf(p, sizeof p, "%s.max_queue_size", path);
  TRY(get_int(v, "max_queue_size", p, 1, 1 << 24, &b->max_queue_size));
  snprintf(p, sizeof p, "%s.priority_levels", path);
  TRY(get_int(v, "priority_levels", p, 1, 16, &b->priority_levels));
  snprintf(p, sizeof p, "%s.default_priority_level", path);
  TRY(get_int(v, "default_priority_level", p, 1, 16, &b->default_priority_level));
  if (b->default_priority_level > b->priority_levels) return field_error(p, "must be at most priority_levels");
  json_t *x;
  if ((x = json_object_get(v, "default_timeout_us")) != NULL) {
    if (!json_is_integer(x) || json_integer_value(x) < 0)
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s.default_timeout_us must be a non-negative integer", path);
    b->default_timeout_us = json_integer_value(x);
  }
  return status_ok();
}

static inferd_status parse_queue_policy(json_t *v, model_config *cfg) {
  static const char *const keys[] = {"max_queue_size", "priority_levels", "default_priority_level",
                                     "default_timeout_us", NULL};
  if (!json_is_object(v)) return field_error("queue_policy", "must be an object");
  TRY(check_keys(v, "queue_policy", keys));
  return parse_queue_keys(v, "queue_policy", &cfg->batching);
}

static inferd_status parse_batching(json_t *v, model_config *cfg) {
  static const char *const keys[] = {"max_queue_delay_us", "preferred_batch_sizes", "max_queue_size",
                                     "priority_levels", "default_priority_level", "default_timeout_us", NULL};
  batching_config *b = &cfg->batching;
  if (!json_is_object(v)) return field_error("dynamic_batching", "must be an object");
  TRY(check_keys(v, "dynamic_batching", keys));
  b->enabled = true;
  json_t *x;
  if ((x = json_object_get(v, "max_queue_delay_us")) != NULL) {
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 10000000)
      return field_error("dynamic_batching.max_queue_delay_us", "must be an integer from 0 to 10000000");
    b->max_queue_delay_us = json_integer_value(x);
  }
  if ((x = json_object_get(v, "preferred_batch_sizes")) != NULL) {
    if (!json_is_array(x) || json_array_size(x) > MAX_PREFERRED_BATCH_SIZES)
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: dynamic_batching.preferred_batch_sizes must be an array of at most %d sizes", MAX_PREFERRED_BATCH_SIZES);
    for (size_t i = 0; i < json_array_size(x); i++) {
      json_t *e = json_array_get(x, i);
      if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 1 << 20)
        return status_make(INFERD_INVALID_ARGUMENT, "config.json: dynamic_batching.preferred_batch_sizes[%zu] must be a positive integer", i);
      b->preferred_batch_sizes[b->n_preferred_batch_sizes++] = (int)json_integer_value(e);
    }
  }
  return parse_queue_keys(v, "dynamic_batching", b);
}

/* "warmup": {"runs": N, "data": "zeros" | "random" | "file", "file": "warmup.json"}. The file
 * is a name inside the model's folder: no path out of it. */
static inferd_status parse_warmup(json_t *v, warmup_config *w) {
  static const char *const keys[] = {"runs", "data", "file", NULL};
  if (!json_is_object(v)) return field_error("warmup", "must be an object like {\"runs\": 2, \"data\": \"zeros\"}");
  TRY(check_keys(v, "warmup", keys));
  w->runs = 1;
  w->data = WARMUP_ZEROS;
  TRY(get_int(v, "runs", "warmup.runs", 0, 1000, &w->runs));
  json_t *d = json_object_get(v, "data"), *f = json_object_get(v, "file");
  if (d) {
    const char *s = json_is_string(d) ? json_string_value(d) : "";
    if (strcmp(s, "zeros") == 0) w->data = WARMUP_ZEROS;
    else if (strcmp(s, "random") == 0) w->data = WARMUP_RANDOM;
    else if (strcmp(s, "file") == 0) w->data = WARMUP_FILE;
    else return field_error("warmup.data", "must be \"zeros\", \"random\" or \"file\"");
  } else if (f) {
    w->data = WARMUP_FILE;
  }
  if (f) {
    if (w->data != WARMUP_FILE) return field_error("warmup.file", "is only read with \"data\": \"file\"");
    const char *s = json_is_string(f) ? json_string_value(f) : NULL;
    if (s == NULL || *s == '\0' || s[0] == '/' || strstr(s, "..") != NULL || strlen(s) > 255)
      return field_error("warmup.file", "must be a file name inside the model's folder (no '/' at the start, no '..')");
    if ((w->file = strdup(s)) == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  } else if (w->data == WARMUP_FILE) {
    return field_error("warmup.file", "is required with \"data\": \"file\"");
  }
  return status_ok();
}

/* "response_cache": {"enable": true, "max_bytes": N, "ttl_ms": N}. */
static inferd_status parse_response_cache(json_t *v, response_cache_config *rc) {
  static const char *const keys[] = {"enable", "max_bytes", "ttl_ms", NULL};
  if (!json_is_object(v))
    return field_error("response_cache", "must be an object like {\"enable\": true, \"max_bytes\": 67108864, \"ttl_ms\": 60000}");
  TRY(check_keys(v, "response_cache", keys));
  json_t *x;
  rc->enabled = true; /* the section's presence asks for it; "enable": false turns it off */
  if ((x = json_object_get(v, "enable")) != NULL) {
    if (!json_is_boolean(x)) return field_error("response_cache.enable", "must be true or false");
    rc->enabled = json_is_true(x);
  }
  if ((x = json_object_get(v, "max_bytes")) != NULL) {
    if (!json_is_integer(x) || json_integer_value(x) < 1024 || json_integer_value(x) > (INT64_C(1) << 40))
      return field_error("response_cache.max_bytes", "must be an integer from 1024 to 1099511627776 (1 TiB)");
    rc->max_bytes = json_integer_value(x);
  }
  if ((x = json_object_get(v, "ttl_ms")) != NULL) {
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT64_C(86400000) * 365)
      return field_error("response_cache.ttl_ms", "must be an integer from 0 (no expiry) to 31536000000 (a year)");
    rc->ttl_ms = json_integer_value(x);
  }
  return status_ok();
}

static inferd_status parse_object(json_t *root, model_config *cfg) {
  static const char *const keys[] = {"name", "backend", "max_batch_size", "inputs", "outputs",
                                     "class_labels", "version_policy", "instance_count",
                                     "onnxruntime", "allow_nan", "description", "dynamic_batching",
                                     "queue_policy", "application", "warmup", "drift", "response_cache", "generate",
                                     "traffic" /* read by traffic/ at start (docs/traffic.md) */, NULL};
  static const char *const ort_keys[] = {"intra_op_threads", "inter_op_threads", NULL};
  inferd_status st = check_keys(root, "", keys);
  if (!status_is_ok(&st)) return st;
  json_t *v;
  if ((v = json_object_get(root, "name")) != NULL && !json_is_string(v))
    return field_error("name", "must be a string");
  if ((v = json_object_get(root, "backend")) != NULL) {
    if (!json_is_string(v)) return field_error("backend", "must be a string");
    if (strcmp(json_string_value(v), "onnxruntime") != 0)
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: backend '%s' is not available (known: onnxruntime)", json_string_value(v));
  }
  TRY(get_int(root, "max_batch_size", "max_batch_size", 0, 1 << 20, &cfg->max_batch_size));
  TRY(get_int(root, "instance_count", "instance_count", 1, 256, &cfg->instance_count));
  if ((v = json_object_get(root, "inputs")) != NULL)
    TRY(parse_tensor_specs(v, "inputs", &cfg->inputs, &cfg->n_inputs));
  if ((v = json_object_get(root, "outputs")) != NULL)
    TRY(parse_tensor_specs(v, "outputs", &cfg->outputs, &cfg->n_outputs));
  if ((v = json_object_get(root, "class_labels")) != NULL) {
    if (!json_is_array(v)) return field_error("class_labels", "must be an array of strings");
    cfg->class_labels = calloc(json_array_size(v) + 1, sizeof(char *));
    if (cfg->class_labels == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *e = json_array_get(v, i);
      if (!json_is_string(e)) return status_make(INFERD_INVALID_ARGUMENT, "config.json: class_labels[%zu] must be a string", i);
      cfg->class_labels[cfg->n_class_labels++] = strdup(json_string_value(e));
    }
  }
  if ((v = json_object_get(root, "version_policy")) != NULL) TRY(parse_policy(v, cfg));
  if ((v = json_object_get(root, "onnxruntime")) != NULL) {
    if (!json_is_object(v)) return field_error("onnxruntime", "must be an object");
    TRY(check_keys(v, "onnxruntime", ort_keys));
    TRY(get_int(v, "intra_op_threads", "onnxruntime.intra_op_threads", 0, 1024, &cfg->intra_op_threads));
    TRY(get_int(v, "inter_op_threads", "onnxruntime.inter_op_threads", 0, 1024, &cfg->inter_op_threads));
  }
  if ((v = json_object_get(root, "allow_nan")) != NULL) {
    if (!json_is_boolean(v)) return field_error("allow_nan", "must be true or false");
    cfg->allow_nan = json_is_true(v);
  }
  if ((v = json_object_get(root, "dynamic_batching")) != NULL) {
    TRY(parse_batching(v, cfg));
    for (int i = 0; i < cfg->batching.n_preferred_batch_sizes; i++)
      if (cfg->batching.preferred_batch_sizes[i] > cfg->max_batch_size)
        return status_make(INFERD_INVALID_ARGUMENT, "config.json: dynamic_batching.preferred_batch_sizes[%d] is %d, more than max_batch_size %d",
                           i, cfg->batching.preferred_batch_sizes[i], cfg->max_batch_size);
    if (cfg->max_batch_size == 0)
      return field_error("dynamic_batching", "needs max_batch_size > 0 (the model must have a batch dimension)");
  }
  if ((v = json_object_get(root, "queue_policy")) != NULL) {
    if (json_object_get(root, "dynamic_batching"))
      return field_error("queue_policy", "cannot be given with dynamic_batching: put its keys in dynamic_batching");
    TRY(parse_queue_policy(v, cfg));
  }
  if ((v = json_object_get(root, "warmup")) != NULL) TRY(parse_warmup(v, &cfg->warmup));
  if ((v = json_object_get(root, "response_cache")) != NULL) TRY(parse_response_cache(v, &cfg->response_cache));
  if ((v = json_object_get(root, "application")) != NULL) {
    if (!json_is_object(v)) return field_error("application", "must be an object");
    cfg->application = json_incref(v);
  }
  if ((v = json_object_get(root, "generate")) != NULL) {
    if (!json_is_object(v)) return field_error("generate", "must be an object");
    cfg->generate = json_incref(v);
  }
  if ((v = json_object_get(root, "drift")) != NULL) {
    if (!json_is_object(v)) return field_error("drift", "must be an object");
    cfg->drift = json_incref(v);
  }
  if ((v = json_object_get(root, "description")) != NULL) {
    if (!json_is_string(v)) return field_error("description", "must be a string");
    cfg->description = strdup(json_string_value(v));
  }
  return status_ok();
}

inferd_status model_config_parse(const char *text, size_t len, model_config **out) {
  json_error_t err;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  if (root == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "config.json: line %d, column %d: %s", err.line,
                       err.column, err.text);
  if (!json_is_object(root)) {
    json_decref(root);
    return status_make(INFERD_INVALID_ARGUMENT, "config.json: must be a JSON object");
  }
  model_config *cfg;
  inferd_status st = model_config_default(&cfg);
  if (status_is_ok(&st)) st = parse_object(root, cfg);
  json_decref(root);
  if (!status_is_ok(&st)) {
    model_config_destroy(cfg);
    return st;
  }
  *out = cfg;
  return st;
}

inferd_status model_config_load(const char *path, model_config **out) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    if (errno == ENOENT) return model_config_default(out);
    return status_make(INFERD_INVALID_ARGUMENT, "cannot read %s: %s", path, strerror(errno));
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      if (cap > (1u << 24)) {
        free(buf);
        fclose(f);
        return status_make(INFERD_INVALID_ARGUMENT, "%s is larger than 16 MiB", path);
      }
      char *nb = realloc(buf, cap);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return status_make(INFERD_INTERNAL, "out of memory");
      }
      buf = nb;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    if (got == 0) break;
    len += got;
  }
  fclose(f);
  inferd_status st = model_config_parse(buf, len, out);
  free(buf);
  return st;
}

bool model_config_serves_version(const model_config *cfg, const int64_t *versions, size_t n,
                                 int64_t version) {
  switch (cfg->policy) {
    case POLICY_ALL:
      return true;
    case POLICY_SPECIFIC:
      for (size_t i = 0; i < cfg->n_specific_versions; i++)
        if (cfg->specific_versions[i] == version) return true;
      return false;
    case POLICY_LATEST: {
      /* served when fewer than latest_n found versions are newer */
      size_t newer = 0;
      for (size_t i = 0; i < n; i++)
        if (versions[i] > version) newer++;
      return newer < (size_t)cfg->latest_n;
    }
  }
  return false;
}
