/* The ONNX Runtime backend: one OrtSession per loaded model version, run concurrently from
 * the scheduler's threads (OrtSession::Run is thread-safe). */
#include <jansson.h>
#include <onnxruntime_c_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends.h"
#include "util/log.h"

struct backend_model {
  OrtSession *session;
  tensor_spec *inputs;
  size_t n_inputs;
  tensor_spec *outputs;
  size_t n_outputs;
};

/* ONNX Runtime wants exactly one environment per process: created once, never torn down
 * (releasing it at exit races with ONNX Runtime's own static destructors). */
static const OrtApi *ort;
static OrtEnv *ort_env;
static OrtMemoryInfo *ort_cpu;
static OrtAllocator *ort_alloc;
static pthread_once_t ort_once = PTHREAD_ONCE_INIT;
static char ort_init_error[256];

static void ort_logger(void *param, OrtLoggingLevel severity, const char *category,
                       const char *logid, const char *code_location, const char *message) {
  (void)param;
  (void)category;
  (void)logid;
  (void)code_location;
  log_level lvl = severity >= ORT_LOGGING_LEVEL_ERROR ? LOG_ERROR
                  : severity == ORT_LOGGING_LEVEL_WARNING ? LOG_WARN
                                                          : LOG_INFO;
  log_msg(lvl, NULL, "onnxruntime: %s", message);
}

static void ort_init(void) {
  const OrtApiBase *base = OrtGetApiBase();
  ort = base ? base->GetApi(ORT_API_VERSION) : NULL;
  if (ort == NULL) {
    snprintf(ort_init_error, sizeof ort_init_error,
             "the ONNX Runtime library does not provide API version %d", ORT_API_VERSION);
    return;
  }
  OrtStatus *s = ort->CreateEnvWithCustomLogger(ort_logger, NULL, ORT_LOGGING_LEVEL_WARNING,
                                                "inferd", &ort_env);
  if (s == NULL) s = ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &ort_cpu);
  if (s == NULL) s = ort->GetAllocatorWithDefaultOptions(&ort_alloc);
  if (s != NULL) {
    snprintf(ort_init_error, sizeof ort_init_error, "%s", ort->GetErrorMessage(s));
    ort->ReleaseStatus(s);
    ort_env = NULL;
  }
}

/* Turns an OrtStatus into ours and releases it. */
static inferd_status from_ort(OrtStatus *s, inferd_code code, const char *context) {
  if (s == NULL) return status_ok();
  inferd_status st = status_make(code, "%s: %s", context, ort->GetErrorMessage(s));
  ort->ReleaseStatus(s);
  return st;
}

/* For getters that fail only on a broken handle: true when s says success. */
static bool ort_ok(OrtStatus *s) {
  if (s == NULL) return true;
  ort->ReleaseStatus(s);
  return false;
}

static inferd_datatype datatype_from_ort(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return DT_BOOL;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return DT_UINT8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return DT_UINT16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return DT_UINT32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return DT_UINT64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return DT_INT8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return DT_INT16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DT_INT32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DT_INT64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return DT_FP16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return DT_BF16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DT_FP32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return DT_FP64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: return DT_BYTES;
    default: return DT_INVALID;
  }
}

static ONNXTensorElementDataType datatype_to_ort(inferd_datatype dt) {
  static const ONNXTensorElementDataType map[DT_COUNT] = {
      [DT_BOOL] = ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL,
      [DT_UINT8] = ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8,
      [DT_UINT16] = ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16,
      [DT_UINT32] = ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32,
      [DT_UINT64] = ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64,
      [DT_INT8] = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8,
      [DT_INT16] = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16,
      [DT_INT32] = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
      [DT_INT64] = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
      [DT_FP16] = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16,
      [DT_BF16] = ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16,
      [DT_FP32] = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
      [DT_FP64] = ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE,
      [DT_BYTES] = ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING,
  };
  return dt < DT_COUNT ? map[dt] : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

/* Reads one input's or output's name, type and shape from the session. */
static inferd_status describe_value(OrtSession *session, bool is_input, size_t i, tensor_spec *spec) {
  char *name = NULL;
  OrtTypeInfo *info = NULL;
  OrtStatus *s = is_input ? ort->SessionGetInputName(session, i, ort_alloc, &name)
                          : ort->SessionGetOutputName(session, i, ort_alloc, &name);
  if (s == NULL)
    s = is_input ? ort->SessionGetInputTypeInfo(session, i, &info)
                 : ort->SessionGetOutputTypeInfo(session, i, &info);
  inferd_status st = from_ort(s, INFERD_INVALID_ARGUMENT, "reading the model's signature");
  if (!status_is_ok(&st)) goto out;
  spec->name = strdup(name);
  enum ONNXType onnx_type;
  if ((st = from_ort(ort->GetOnnxTypeFromTypeInfo(info, &onnx_type), INFERD_INVALID_ARGUMENT, "model type")).code)
    goto out;
  if (onnx_type == ONNX_TYPE_SEQUENCE && !is_input) {
    /* scikit-learn's ZipMap: a sequence of maps, one per row, served as JSON texts */
    spec->datatype = DT_BYTES;
    spec->ndim = 1;
    spec->dims[0] = -1;
    spec->is_map_sequence = true;
    goto out;
  }
  const OrtTensorTypeAndShapeInfo *tinfo = NULL;
  if ((st = from_ort(ort->CastTypeInfoToTensorInfo(info, &tinfo), INFERD_INVALID_ARGUMENT, "model type")).code)
    goto out;
  if (tinfo == NULL) {
    st = status_make(INFERD_INVALID_ARGUMENT, "%s '%s' is not a tensor; inferd serves tensor inputs and tensor or sequence-of-map outputs",
                     is_input ? "input" : "output", name);
    goto out;
  }
  ONNXTensorElementDataType et;
  size_t ndim;
  if (!ort_ok(ort->GetTensorElementType(tinfo, &et)) || !ort_ok(ort->GetDimensionsCount(tinfo, &ndim))) {
    st = status_make(INFERD_INVALID_ARGUMENT, "cannot read the type of '%s'", name);
    goto out;
  }
  spec->datatype = datatype_from_ort(et);
  if (spec->datatype == DT_INVALID) {
    st = status_make(INFERD_INVALID_ARGUMENT, "%s '%s' has an element type (%d) with no V2 datatype",
                     is_input ? "input" : "output", name, (int)et);
    goto out;
  }
  if (ndim > TENSOR_MAX_DIMS) {
    st = status_make(INFERD_INVALID_ARGUMENT, "%s '%s' has %zu dimensions, more than %d",
                     is_input ? "input" : "output", name, ndim, TENSOR_MAX_DIMS);
    goto out;
  }
  spec->ndim = (int)ndim;
  if (!ort_ok(ort->GetDimensions(tinfo, spec->dims, ndim))) {
    st = status_make(INFERD_INVALID_ARGUMENT, "cannot read the shape of '%s'", name);
    goto out;
  }
  for (size_t d = 0; d < ndim; d++)
    if (spec->dims[d] <= 0) spec->dims[d] = -1; /* symbolic dimensions come back as -1 or 0 */
out:
  if (name) ort_alloc->Free(ort_alloc, name);
  if (info) ort->ReleaseTypeInfo(info);
  return st;
}

static void ort_unload(backend_model *m) {
  if (m == NULL) return;
  if (m->session) ort->ReleaseSession(m->session);
  tensor_specs_free(m->inputs, m->n_inputs);
  tensor_specs_free(m->outputs, m->n_outputs);
  free(m);
}

static inferd_status ort_load(const char *path, const model_config *cfg, backend_model **out) {
  pthread_once(&ort_once, ort_init);
  if (ort_env == NULL)
    return status_make(INFERD_INTERNAL, "ONNX Runtime failed to start: %s", ort_init_error);
  backend_model *m = calloc(1, sizeof *m);
  if (m == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  OrtSessionOptions *opts = NULL;
  OrtStatus *s = ort->CreateSessionOptions(&opts);
  if (s == NULL) s = ort->SetIntraOpNumThreads(opts, cfg->intra_op_threads);
  if (s == NULL) s = ort->SetInterOpNumThreads(opts, cfg->inter_op_threads);
  if (s == NULL) s = ort->SetSessionGraphOptimizationLevel(opts, ORT_ENABLE_ALL);
  if (s == NULL) s = ort->CreateSession(ort_env, path, opts, &m->session);
  if (opts) ort->ReleaseSessionOptions(opts);
  inferd_status st = from_ort(s, INFERD_INVALID_ARGUMENT, "ONNX Runtime cannot load the model");
  if (status_is_ok(&st)) {
    if (!ort_ok(ort->SessionGetInputCount(m->session, &m->n_inputs)) ||
        !ort_ok(ort->SessionGetOutputCount(m->session, &m->n_outputs)))
      st = status_make(INFERD_INVALID_ARGUMENT, "cannot read the model's inputs and outputs");
    m->inputs = calloc(m->n_inputs + 1, sizeof *m->inputs);
    m->outputs = calloc(m->n_outputs + 1, sizeof *m->outputs);
    if (m->inputs == NULL || m->outputs == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
    for (size_t i = 0; i < m->n_inputs && status_is_ok(&st); i++)
      st = describe_value(m->session, true, i, &m->inputs[i]);
    for (size_t i = 0; i < m->n_outputs && status_is_ok(&st); i++)
      st = describe_value(m->session, false, i, &m->outputs[i]);
  }
  if (!status_is_ok(&st)) {
    ort_unload(m);
    return st;
  }
  *out = m;
  return st;
}

static void ort_describe(const backend_model *m, const tensor_spec **inputs, size_t *n_inputs,
                         const tensor_spec **outputs, size_t *n_outputs) {
  *inputs = m->inputs;
  *n_inputs = m->n_inputs;
  *outputs = m->outputs;
  *n_outputs = m->n_outputs;
}

static inferd_status make_input(const tensor *t, OrtValue **out) {
  OrtStatus *s;
  if (t->datatype != DT_BYTES) {
    /* ONNX Runtime reads the request's buffer in place */
    s = ort->CreateTensorWithDataAsOrtValue(ort_cpu, t->data, t->byte_size, t->shape, (size_t)t->ndim,
                                            datatype_to_ort(t->datatype), out);
    return from_ort(s, INFERD_INVALID_ARGUMENT, t->name);
  }
  s = ort->CreateTensorAsOrtValue(ort_alloc, t->shape, (size_t)t->ndim,
                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING, out);
  size_t pos = 0, idx = 0;
  const uint8_t *elem;
  uint32_t len;
  while (s == NULL && tensor_bytes_next(t, &pos, &elem, &len)) {
    char *dst;
    s = ort->GetResizedStringTensorElementBuffer(*out, idx++, len, &dst);
    if (s == NULL && len) memcpy(dst, elem, len);
  }
  return from_ort(s, INFERD_INVALID_ARGUMENT, t->name);
}

static inferd_status copy_string_tensor(const OrtValue *v, size_t count, tensor *t) {
  size_t total;
  OrtStatus *s = ort->GetStringTensorDataLength(v, &total);
  if (s) return from_ort(s, INFERD_INTERNAL, t->name);
  char *content = malloc(total + 1);
  size_t *offsets = malloc((count + 1) * sizeof *offsets);
  inferd_status st = status_ok();
  if (!content || !offsets) st = status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st) && count)
    st = from_ort(ort->GetStringTensorContent(v, content, total, offsets, count), INFERD_INTERNAL, t->name);
  if (status_is_ok(&st)) st = tensor_alloc(t, total + 4 * count);
  if (status_is_ok(&st)) {
    uint8_t *p = t->data;
    for (size_t i = 0; i < count; i++) {
      size_t end = i + 1 < count ? offsets[i + 1] : total;
      uint32_t len = (uint32_t)(end - offsets[i]);
      p[0] = (uint8_t)len;
      p[1] = (uint8_t)(len >> 8);
      p[2] = (uint8_t)(len >> 16);
      p[3] = (uint8_t)(len >> 24);
      memcpy(p + 4, content + offsets[i], len);
      p += 4 + len;
    }
  }
  free(content);
  free(offsets);
  return st;
}

/* A map's keys or values tensor as JSON values. */
static inferd_status map_part_to_json(OrtValue *part, json_t **out) {
  OrtTensorTypeAndShapeInfo *info;
  OrtStatus *s = ort->GetTensorTypeAndShape(part, &info);
  if (s) return from_ort(s, INFERD_INTERNAL, "map output");
  ONNXTensorElementDataType et;
  size_t n;
  bool ok = ort_ok(ort->GetTensorElementType(info, &et)) && ort_ok(ort->GetTensorShapeElementCount(info, &n));
  ort->ReleaseTensorTypeAndShapeInfo(info);
  if (!ok) return status_make(INFERD_INTERNAL, "cannot read a map output");
  json_t *arr = json_array();
  if (et == ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING) {
    tensor tmp = {.name = "map keys", .datatype = DT_BYTES};
    inferd_status st = copy_string_tensor(part, n, &tmp);
    if (!status_is_ok(&st)) {
      json_decref(arr);
      return st;
    }
    size_t pos = 0;
    const uint8_t *e;
    uint32_t len;
    while (tensor_bytes_next(&tmp, &pos, &e, &len)) json_array_append_new(arr, json_stringn((const char *)e, len));
    free(tmp.data);
  } else {
    void *data;
    if (!ort_ok(ort->GetTensorMutableData(part, &data))) {
      json_decref(arr);
      return status_make(INFERD_INTERNAL, "cannot read a map output");
    }
    for (size_t i = 0; i < n; i++) {
      switch (et) {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: json_array_append_new(arr, json_integer(((int64_t *)data)[i])); break;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: json_array_append_new(arr, json_real(((float *)data)[i])); break;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: json_array_append_new(arr, json_real(((double *)data)[i])); break;
        default:
          json_decref(arr);
          return status_make(INFERD_INTERNAL, "map output has element type %d, which inferd cannot serve", (int)et);
      }
    }
  }
  *out = arr;
  return status_ok();
}

/* A sequence of maps (ZipMap) becomes a BYTES tensor of JSON object texts, one per row. */
static inferd_status copy_map_sequence(const OrtValue *seq, tensor *t) {
  size_t n;
  OrtStatus *s = ort->GetValueCount(seq, &n);
  if (s) return from_ort(s, INFERD_INTERNAL, t->name);
  char **texts = calloc(n + 1, sizeof *texts);
  size_t total = 0;
  inferd_status st = texts ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n && status_is_ok(&st); i++) {
    OrtValue *map = NULL, *keys = NULL, *vals = NULL;
    json_t *jk = NULL, *jv = NULL;
    s = ort->GetValue(seq, (int)i, ort_alloc, &map);
    if (s == NULL) s = ort->GetValue(map, 0, ort_alloc, &keys);
    if (s == NULL) s = ort->GetValue(map, 1, ort_alloc, &vals);
    st = from_ort(s, INFERD_INTERNAL, t->name);
    if (status_is_ok(&st)) st = map_part_to_json(keys, &jk);
    if (status_is_ok(&st)) st = map_part_to_json(vals, &jv);
    if (status_is_ok(&st)) {
      json_t *obj = json_object();
      for (size_t k = 0; k < json_array_size(jk); k++) {
        json_t *key = json_array_get(jk, k);
        char num[32];
        const char *ks = json_is_string(key) ? json_string_value(key) : (snprintf(num, sizeof num, "%lld", (long long)json_integer_value(key)), num);
        json_object_set(obj, ks, json_array_get(jv, k));
      }
      texts[i] = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9) | JSON_PRESERVE_ORDER);
      total += strlen(texts[i]) + 4;
      json_decref(obj);
    }
    json_decref(jk);
    json_decref(jv);
    if (keys) ort->ReleaseValue(keys);
    if (vals) ort->ReleaseValue(vals);
    if (map) ort->ReleaseValue(map);
  }
  if (status_is_ok(&st)) st = tensor_alloc(t, total);
  if (status_is_ok(&st)) {
    uint8_t *p = t->data;
    for (size_t i = 0; i < n; i++) {
      uint32_t len = (uint32_t)strlen(texts[i]);
      memcpy(p, &len, 4); /* little-endian host */
      memcpy(p + 4, texts[i], len);
      p += 4 + len;
    }
    t->ndim = 1;
    t->shape[0] = (int64_t)n;
    t->bytes_are_json = true;
  }
  for (size_t i = 0; texts && i < n; i++) free(texts[i]);
  free(texts);
  return st;
}

static inferd_status copy_output(const OrtValue *v, tensor *t) {
  enum ONNXType type;
  OrtStatus *s = ort->GetValueType(v, &type);
  if (s) return from_ort(s, INFERD_INTERNAL, t->name);
  if (type == ONNX_TYPE_SEQUENCE) {
    t->datatype = DT_BYTES;
    return copy_map_sequence(v, t);
  }
  OrtTensorTypeAndShapeInfo *info;
  if ((s = ort->GetTensorTypeAndShape(v, &info))) return from_ort(s, INFERD_INTERNAL, t->name);
  ONNXTensorElementDataType et;
  size_t ndim = 0, count = 0;
  bool ok = ort_ok(ort->GetTensorElementType(info, &et)) && ort_ok(ort->GetDimensionsCount(info, &ndim));
  if (ndim > TENSOR_MAX_DIMS) ok = false;
  ok = ok && ort_ok(ort->GetDimensions(info, t->shape, ndim)) && ort_ok(ort->GetTensorShapeElementCount(info, &count));
  ort->ReleaseTensorTypeAndShapeInfo(info);
  if (!ok) return status_make(INFERD_INTERNAL, "output '%s': cannot read its type and shape (at most %d dimensions)", t->name, TENSOR_MAX_DIMS);
  t->ndim = (int)ndim;
  t->datatype = datatype_from_ort(et);
  if (t->datatype == DT_INVALID)
    return status_make(INFERD_INTERNAL, "output '%s' has element type %d with no V2 datatype", t->name, (int)et);
  if (t->datatype == DT_BYTES) return copy_string_tensor(v, count, t);
  inferd_status st = tensor_alloc(t, count * datatype_size(t->datatype));
  if (!status_is_ok(&st)) return st;
  void *data;
  if ((s = ort->GetTensorMutableData((OrtValue *)v, &data))) return from_ort(s, INFERD_INTERNAL, t->name);
  if (count) memcpy(t->data, data, t->byte_size);
  return status_ok();
}

/* A failed Run. The inputs were checked against the model's signature (datatypes, shapes,
 * UTF-8 text) before they got here, so when a kernel refuses its input (ORT_INVALID_ARGUMENT,
 * or ORT_FAIL, which kernels use for the same: an index out of range, a shape the values make
 * impossible) the request's values are the cause: 400, naming the node. Every other code
 * (an exception inside the runtime, an execution provider or engine failure, out of memory)
 * is the server's: 500. ONNX Runtime words a kernel's failure as "Non-zero status code
 * returned while running <OpType> node. Name:'<name>' Status Message: <message>": said again
 * in our words. */
static inferd_status run_status(OrtStatus *s) {
  if (s == NULL) return status_ok();
  OrtErrorCode code = ort->GetErrorCode(s);
  const char *msg = ort->GetErrorMessage(s);
  bool values = code == ORT_INVALID_ARGUMENT || code == ORT_FAIL;
  inferd_status st;
  char op[64], name[128];
  int used = 0;
  static const char prefix[] = "Non-zero status code returned while running ";
  if (strncmp(msg, prefix, sizeof prefix - 1) == 0 &&
      sscanf(msg + sizeof prefix - 1, "%63s node. Name:'%127[^']' Status Message: %n", op, name, &used) == 2 && used > 0)
    st = status_make(values ? INFERD_INVALID_ARGUMENT : INFERD_INTERNAL, "%s node '%s' (%s) failed on this request: %s",
                     values ? "the model cannot run on these input values:" : "ONNX Runtime failed to run the model:", name, op,
                     msg + sizeof prefix - 1 + used);
  else if (strncmp(msg, prefix, sizeof prefix - 1) == 0 &&
           sscanf(msg + sizeof prefix - 1, "%63s node. Name:'' Status Message: %n", op, &used) == 1 && used > 0)
    st = status_make(values ? INFERD_INVALID_ARGUMENT : INFERD_INTERNAL, "%s an unnamed %s node failed on this request: %s",
                     values ? "the model cannot run on these input values:" : "ONNX Runtime failed to run the model:", op,
                     msg + sizeof prefix - 1 + used);
  else
    st = status_make(values ? INFERD_INVALID_ARGUMENT : INFERD_INTERNAL, "%s %s",
                     values ? "the model cannot run on these input values:" : "ONNX Runtime failed to run the model:", msg);
  ort->ReleaseStatus(s);
  return st;
}

/* A pre-allocated output after Run: ONNX Runtime wrote the caller's memory (the value is still
 * over it). Should a runtime version hand back a value of its own instead, its contents are
 * copied in when the sizes agree, so the caller never reads stale memory. */
static inferd_status check_given(OrtValue *v, const tensor *t, const char *name) {
  void *data = NULL;
  if (!ort_ok(ort->GetTensorMutableData(v, &data)))
    return status_make(INFERD_INTERNAL, "output '%s': cannot read it", name);
  if (data == t->data) return status_ok();
  OrtTensorTypeAndShapeInfo *info;
  size_t count = 0;
  if (!ort_ok(ort->GetTensorTypeAndShape(v, &info))) return status_make(INFERD_INTERNAL, "output '%s': cannot read it", name);
  bool ok = ort_ok(ort->GetTensorShapeElementCount(info, &count));
  ort->ReleaseTensorTypeAndShapeInfo(info);
  if (!ok || count * datatype_size(t->datatype) != t->byte_size)
    return status_make(INFERD_INTERNAL, "output '%s' is not the size of the memory given for it", name);
  memcpy(t->data, data, t->byte_size);
  return status_ok();
}

static inferd_status ort_run(backend_model *m, const tensor *inputs, size_t n_inputs,
                             const char *const *output_names, size_t n_outputs, tensor *results) {
  OrtValue **in_values = calloc(n_inputs + 1, sizeof *in_values);
  const char **in_names = calloc(n_inputs + 1, sizeof *in_names);
  OrtValue **out_values = calloc(n_outputs + 1, sizeof *out_values);
  inferd_status st = status_ok();
  if (!in_values || !in_names || !out_values) st = status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n_inputs && status_is_ok(&st); i++) {
    in_names[i] = inputs[i].name;
    st = make_input(&inputs[i], &in_values[i]);
  }
  /* pre-allocated outputs (backend.h): an OrtValue over the caller's memory, which Run then
   * writes instead of allocating its own; nothing is copied out afterwards */
  bool *given = calloc(n_outputs + 1, sizeof *given);
  if (given == NULL && status_is_ok(&st)) st = status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n_outputs && status_is_ok(&st); i++) {
    if (results[i].data == NULL) continue;
    given[i] = true;
    if (results[i].datatype == DT_BYTES || datatype_to_ort(results[i].datatype) == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED)
      st = status_make(INFERD_INTERNAL, "output '%s': a pre-allocated output must have a fixed-size datatype",
                       output_names[i]);
    else
      st = from_ort(ort->CreateTensorWithDataAsOrtValue(ort_cpu, results[i].data, results[i].byte_size,
                                                        results[i].shape, (size_t)results[i].ndim,
                                                        datatype_to_ort(results[i].datatype), &out_values[i]),
                    INFERD_INTERNAL, output_names[i]);
  }
  if (status_is_ok(&st))
    st = run_status(ort->Run(m->session, NULL, in_names, (const OrtValue *const *)in_values, n_inputs, output_names,
                             n_outputs, out_values));
  for (size_t i = 0; i < n_outputs && status_is_ok(&st); i++) {
    if (given[i]) {
      st = check_given(out_values[i], &results[i], output_names[i]);
      continue;
    }
    st = tensor_init(&results[i], output_names[i], DT_INVALID, NULL, 0);
    if (status_is_ok(&st)) st = copy_output(out_values[i], &results[i]);
  }
  if (!status_is_ok(&st))
    for (size_t i = 0; i < n_outputs; i++)
      if (given == NULL || !given[i]) tensor_clear(&results[i]);
  free(given);
  for (size_t i = 0; i < n_inputs; i++)
    if (in_values && in_values[i]) ort->ReleaseValue(in_values[i]);
  for (size_t i = 0; i < n_outputs; i++)
    if (out_values && out_values[i]) ort->ReleaseValue(out_values[i]);
  free(in_values);
  free(in_names);
  free(out_values);
  return st;
}

const backend_ops onnxruntime_backend = {
    .name = "onnxruntime",
    .platform = "onnxruntime_onnx",
    .model_filename = "model.onnx",
    .bytes_are_utf8 = true,
    .load = ort_load,
    .describe = ort_describe,
    .run = ort_run,
    .unload = ort_unload,
};
