/* What several harnesses share: a model version built by hand from a config.json text (its
 * declared tensors stand in for the ONNX file's signature, so no ONNX Runtime session is
 * needed), with the compiled feature schema when the config has an "application" section. */
#ifndef INFERD_FUZZ_MODEL_H
#define INFERD_FUZZ_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/application.h"
#include "core/infer.h"
#include "core/model.h"

/* The config's tensors with the batch dimension the model file would have. */
static inline tensor_spec *fuzz_full_specs(const model_config *cfg, const tensor_spec *decl, size_t n) {
  tensor_spec *out = calloc(n + 1, sizeof *out);
  for (size_t i = 0; i < n; i++) {
    out[i] = decl[i];
    out[i].name = strdup(decl[i].name);
    if (cfg->max_batch_size > 0) {
      out[i].ndim = decl[i].ndim + 1;
      out[i].dims[0] = -1;
      memcpy(out[i].dims + 1, decl[i].dims, (size_t)decl[i].ndim * sizeof decl[i].dims[0]);
    }
  }
  return out;
}

/* Aborts on failure: these configs are the harness's own, not fuzz input. */
static inline model_version *fuzz_model_create(const char *name, const char *config_json) {
  model *m = calloc(1, sizeof *m);
  m->name = strdup(name);
  inferd_status st = model_config_parse(config_json, strlen(config_json), &m->config);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "fuzz_model_create(%s): %s\n", name, st.msg);
    abort();
  }
  const model_config *cfg = m->config;
  tensor_spec *in = fuzz_full_specs(cfg, cfg->inputs, cfg->n_inputs);
  tensor_spec *out = fuzz_full_specs(cfg, cfg->outputs, cfg->n_outputs);
  model_version *mv = calloc(1, sizeof *mv);
  mv->model = m;
  mv->version = 1;
  snprintf(mv->version_str, sizeof mv->version_str, "1");
  st = model_resolve_signature(cfg, in, cfg->n_inputs, out, cfg->n_outputs, &mv->inputs, &mv->n_inputs, &mv->outputs,
                               &mv->n_outputs);
  tensor_specs_free(in, cfg->n_inputs);
  tensor_specs_free(out, cfg->n_outputs);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "fuzz_model_create(%s): %s\n", name, st.msg);
    abort();
  }
  st = application_attach(mv);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "fuzz_model_create(%s): %s\n", name, st.msg);
    abort();
  }
  atomic_store(&mv->state, MODEL_READY);
  return mv; /* kept for the process's life: never freed */
}

/* What the backend relies on once a request passed infer_request_validate: each input is one
 * the signature names, of its datatype and shape, with exactly the bytes its shape needs
 * (BYTES: exactly that many length-prefixed elements). Aborts otherwise. */
static inline void fuzz_check_tensor(const tensor *t) {
  int64_t count;
  inferd_status st = tensor_shape_count(t->shape, t->ndim, &count);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "input '%s': %s\n", t->name, st.msg);
    abort();
  }
  if (t->datatype == DT_BYTES) st = tensor_bytes_check(t, count);
  else if ((size_t)count * datatype_size(t->datatype) != t->byte_size)
    st = status_make(INFERD_INTERNAL, "%zu bytes for %lld elements", t->byte_size, (long long)count);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "input '%s' passed validation with inconsistent data: %s\n", t->name, st.msg);
    abort();
  }
}

static inline void fuzz_check_valid_request(const infer_request *req) {
  for (size_t i = 0; i < req->n_inputs; i++) {
    const tensor *t = &req->inputs[i];
    const tensor_spec *spec = model_version_find_input(req->mv, t->name);
    if (spec == NULL || spec->datatype != t->datatype || spec->ndim != t->ndim) {
      fprintf(stderr, "input '%s' passed validation but does not match the signature\n", t->name);
      abort();
    }
    fuzz_check_tensor(t);
  }
}

/* The example repository's churn model (features: numeric, integer, one-hot categorical). */
static const char FUZZ_CHURN_CONFIG[] =
    "{\"max_batch_size\": 1000,"
    " \"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"dims\": [12]}],"
    " \"outputs\": [{\"name\": \"label\", \"datatype\": \"INT64\", \"dims\": []},"
    "   {\"name\": \"probabilities\", \"datatype\": \"FP32\", \"dims\": [2]},"
    "   {\"name\": \"probability_map\", \"datatype\": \"BYTES\", \"dims\": []}],"
    " \"class_labels\": [\"stay\", \"churn\"],"
    " \"application\": {\"input\": \"input\", \"features\": ["
    "   {\"name\": \"tenure_months\", \"type\": \"numeric\", \"min\": 0, \"max\": 600},"
    "   {\"name\": \"monthly_charges\", \"type\": \"numeric\", \"min\": 0, \"max\": 10000},"
    "   {\"name\": \"total_charges\", \"type\": \"numeric\", \"min\": 0, \"max\": 10000000},"
    "   {\"name\": \"support_calls\", \"type\": \"integer\", \"min\": 0, \"max\": 1000},"
    "   {\"name\": \"age\", \"type\": \"integer\", \"min\": 18, \"max\": 120, \"required\": false, \"default\": 40},"
    "   {\"name\": \"contract\", \"type\": \"categorical\","
    "    \"categories\": [\"month-to-month\", \"one-year\", \"two-year\"], \"encoding\": \"one_hot\"},"
    "   {\"name\": \"payment_method\", \"type\": \"categorical\","
    "    \"categories\": [\"card\", \"bank_transfer\", \"electronic_check\", \"mailed_check\"], \"encoding\": \"one_hot\"}],"
    "  \"task\": \"classification\", \"outputs\": {\"label\": \"label\", \"probabilities\": \"probabilities\"}}}";

/* Every feature type and encoding, over two tensors (one of them BYTES), for a regressor. */
static const char FUZZ_MIXED_CONFIG[] =
    "{\"max_batch_size\": 64,"
    " \"inputs\": [{\"name\": \"num\", \"datatype\": \"FP64\", \"dims\": [5]},"
    "   {\"name\": \"text\", \"datatype\": \"BYTES\", \"dims\": [2]}],"
    " \"outputs\": [{\"name\": \"value\", \"datatype\": \"FP32\", \"dims\": [1]}],"
    " \"application\": {\"input\": \"num\", \"allow_extra_features\": true, \"features\": ["
    "   {\"name\": \"x\", \"type\": \"numeric\"},"
    "   {\"name\": \"n\", \"type\": \"integer\", \"min\": -5, \"max\": 5},"
    "   {\"name\": \"flag\", \"type\": \"boolean\", \"required\": false, \"default\": false},"
    "   {\"name\": \"color\", \"type\": \"categorical\", \"categories\": [\"red\", \"green\"], \"encoding\": \"index\"},"
    "   {\"name\": \"size\", \"type\": \"categorical\", \"categories\": [\"s\", \"m\", \"l\"], \"encoding\": \"string\","
    "    \"tensor\": \"text\"},"
    "   {\"name\": \"note\", \"type\": \"string\", \"max_length\": 16, \"tensor\": \"text\"},"
    "   {\"name\": \"y\", \"type\": \"numeric\", \"min\": 0}],"
    "  \"task\": \"regression\", \"outputs\": {\"value\": \"value\"}}}";

/* Tensors only: two inputs of different types, no batch dimension, no feature schema. */
static const char FUZZ_TENSORS_CONFIG[] =
    "{\"max_batch_size\": 0,"
    " \"inputs\": [{\"name\": \"a\", \"datatype\": \"INT32\", \"dims\": [2, -1]},"
    "   {\"name\": \"b\", \"datatype\": \"BYTES\", \"dims\": [-1]},"
    "   {\"name\": \"c\", \"datatype\": \"FP16\", \"dims\": [3]},"
    "   {\"name\": \"d\", \"datatype\": \"BOOL\", \"dims\": [-1]},"
    "   {\"name\": \"e\", \"datatype\": \"UINT64\", \"dims\": [1]}],"
    " \"outputs\": [{\"name\": \"y\", \"datatype\": \"FP32\", \"dims\": [-1]}]}";

/* One BYTES input with a batch dimension: the sentiment model's shape. */
static const char FUZZ_TEXT_CONFIG[] =
    "{\"max_batch_size\": 64,"
    " \"inputs\": [{\"name\": \"text\", \"datatype\": \"BYTES\", \"dims\": []}],"
    " \"outputs\": [{\"name\": \"probabilities\", \"datatype\": \"FP32\", \"dims\": [2]},"
    "   {\"name\": \"label\", \"datatype\": \"BYTES\", \"dims\": []}]}";

/* The four signatures the tensor harnesses (V2 JSON, V2 binary, gRPC) pick from. */
#define FUZZ_N_MODELS 4
static inline void fuzz_models_create_all(model_version *models[FUZZ_N_MODELS]) {
  models[0] = fuzz_model_create("churn", FUZZ_CHURN_CONFIG);
  models[1] = fuzz_model_create("mixed", FUZZ_MIXED_CONFIG);
  models[2] = fuzz_model_create("tensors", FUZZ_TENSORS_CONFIG);
  models[3] = fuzz_model_create("text", FUZZ_TEXT_CONFIG);
}

#endif
