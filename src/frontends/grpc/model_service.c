/* inferd.ModelService: the application API over gRPC. Records of named features go through the
 * same code as REST /v1 (src/app/features.h): protobuf records become the JSON records
 * features_encode validates and encodes, and features_decode_results' JSON results become
 * protobuf predictions, so both APIs accept, refuse and answer alike. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "app/application.h"
#include "app/features.h"
#include "core/serve.h"
#include "frontends/grpc/call.h"
#include "frontends/grpc/generate_grpc.h"
#include "generate/engine.h"
#include "util/monotime.h"
#include "util/utf8.h"
#include "model_service.pb-c.h"
#include "util/arena.h"
#include "util/strbuf.h"

#define DEFAULT_MAX_RECORDS 1000 /* as the REST API's, when --max-records is not given */

/* ---------------------------------------------------------------------------------------- */
/* records and results */

static json_t *value_json(const Inferd__Value *v) {
  switch (v ? v->kind_case : INFERD__VALUE__KIND__NOT_SET) {
    case INFERD__VALUE__KIND_NUMBER_VALUE: return json_real(v->number_value);
    case INFERD__VALUE__KIND_INT_VALUE: return json_integer((json_int_t)v->int_value);
    case INFERD__VALUE__KIND_STRING_VALUE: return json_string(v->string_value);
    case INFERD__VALUE__KIND_BOOL_VALUE: return json_boolean(v->bool_value);
    default: return NULL;
  }
}

/* A record as the JSON object features_encode reads; a value with no kind is left out. Strings
 * that are not UTF-8 are reported where they are. */
static json_t *record_json(const Inferd__Record *r, const char *path, feature_errors *errs, json_t *reported) {
  json_t *o = json_object();
  for (size_t i = 0; r && i < r->n_features; i++) {
    const Inferd__Record__FeaturesEntry *e = r->features[i];
    const char *key = e->key ? e->key : "";
    if (!utf8_valid(key, strlen(key), NULL)) {
      char p[200];
      snprintf(p, sizeof p, "%s.features", path);
      jpath_key(p, sizeof p, key);
      feature_errors_add(errs, p, "invalid", "the feature name is not valid UTF-8 text");
      continue;
    }
    if (e->value && e->value->kind_case == INFERD__VALUE__KIND_NUMBER_VALUE && !isfinite(e->value->number_value)) {
      /* JSON, which the features read, has no NaN or infinity: say so rather than "missing" */
      char p[200];
      snprintf(p, sizeof p, "%s.features", path);
      jpath_key(p, sizeof p, key);
      feature_errors_add(errs, p, "wrong_type", "%s is not allowed: send a finite number",
                         isnan(e->value->number_value) ? "NaN" : e->value->number_value > 0 ? "Infinity" : "-Infinity");
      json_array_append_new(reported, json_string(errs->n ? errs->items[errs->n - 1].path : p));
      continue;
    }
    json_t *v = value_json(e->value);
    if (v == NULL) {
      if (e->value && e->value->kind_case == INFERD__VALUE__KIND_STRING_VALUE) {
        char p[200];
        snprintf(p, sizeof p, "%s.features", path);
        jpath_key(p, sizeof p, e->key);
        feature_errors_add(errs, p, "wrong_type", "not valid UTF-8 text");
        json_array_append_new(reported, json_string(errs->n ? errs->items[errs->n - 1].path : p));
      }
      continue;
    }
    json_object_set_new(o, e->key, v);
  }
  return o;
}

typedef struct record_paths {
  bool single; /* Predict's one record at $.record; else $.records[i] */
} record_paths;

static void record_path(void *user, size_t record, const char *feature, char *buf, size_t len) {
  const record_paths *rp = user;
  if (rp->single)
    snprintf(buf, len, "$.record");
  else
    snprintf(buf, len, "$.records[%zu]", record);
  if (feature) {
    strncat(buf, ".features", len - strlen(buf) - 1);
    jpath_key(buf, len, feature);
  }
}

static bool prediction_from_json(arena *a, const json_t *r, Inferd__Prediction *p) {
  inferd__prediction__init(p);
  const json_t *label = json_object_get(r, "label");
  if (json_is_string(label)) {
    p->label = arena_strdup(a, json_string_value(label));
  } else if (label && !json_is_null(label)) {
    char *s = json_dumps(label, JSON_ENCODE_ANY | JSON_COMPACT);
    p->label = s ? arena_strdup(a, s) : NULL;
    free(s);
  }
  if (p->label == NULL) p->label = "";
  const json_t *score = json_object_get(r, "score");
  if (json_is_number(score)) {
    p->score_value_case = INFERD__PREDICTION__SCORE_VALUE_SCORE;
    p->score = json_number_value(score);
  }
  const json_t *probs = json_object_get(r, "probabilities");
  if (json_is_object(probs) && json_object_size(probs)) {
    size_t n = json_object_size(probs), k = 0;
    Inferd__ClassProbability *cp = arena_alloc(a, n * sizeof *cp);
    Inferd__ClassProbability **ptrs = arena_alloc(a, n * sizeof *ptrs);
    if (cp == NULL || ptrs == NULL) return false;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)probs, key, v) {
      inferd__class_probability__init(&cp[k]);
      cp[k].label = arena_strdup(a, key);
      if (cp[k].label == NULL) return false;
      cp[k].probability = json_number_value(v);
      ptrs[k] = &cp[k];
      k++;
    }
    p->probabilities = ptrs;
    p->n_probabilities = k;
  }
  const json_t *value = json_object_get(r, "value");
  if (json_is_number(value)) {
    p->value = arena_alloc(a, sizeof(double));
    if (p->value == NULL) return false;
    p->value[0] = json_number_value(value);
    p->n_value = 1;
  } else if (json_is_array(value)) {
    size_t n = json_array_size(value);
    p->value = arena_alloc(a, n * sizeof(double));
    if (p->value == NULL) return false;
    for (size_t i = 0; i < n; i++) p->value[i] = json_number_value(json_array_get(value, i));
    p->n_value = n;
  }
  return true;
}

static void new_id(char *buf, size_t len) {
  unsigned char r[12] = {0};
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    uint64_t t = (uint64_t)monotime_ns();
    memcpy(r, &t, sizeof t);
  }
  sbuf b;
  sbuf_init(&b, buf, len);
  sbuf_append(&b, "pred_");
  for (size_t i = 0; i < sizeof r; i++) sbuf_appendf(&b, "%02x", r[i]);
}

/* ---------------------------------------------------------------------------------------- */
/* predict, batch, stream */

typedef enum { KIND_PREDICT, KIND_BATCH, KIND_STREAM } predict_kind;

typedef struct predict_call {
  gcall *call;
  predict_kind kind;
  gstream_item *item;
  const features *f;
  features_result_opts opts;
  size_t n_records;
  char model[256];
  char version[24];
  struct predict_decode *decode; /* during serve_submit only */
} predict_call;

static void errors_into(arena *a, const feature_errors *errs, Inferd__PredictResponse *r) {
  if (errs == NULL || errs->n == 0) return;
  Inferd__FeatureError *fe = arena_alloc(a, errs->n * sizeof *fe);
  Inferd__FeatureError **ptrs = arena_alloc(a, errs->n * sizeof *ptrs);
  if (fe == NULL || ptrs == NULL) return;
  for (size_t i = 0; i < errs->n; i++) {
    inferd__feature_error__init(&fe[i]);
    fe[i].path = (char *)errs->items[i].path;
    fe[i].kind = (char *)errs->items[i].kind;
    fe[i].message = (char *)errs->items[i].message;
    ptrs[i] = &fe[i];
  }
  r->errors = ptrs;
  r->n_errors = errs->n;
}

/* Answers a request that failed (st, with the problems in errs when there are) and frees pc. */
static void predict_fail(predict_call *pc, const inferd_status *st, const feature_errors *errs) {
  /* cppcheck-suppress variableScope ; msg may point into summary until the end */
  char summary[1024];
  const char *msg = st->msg;
  if (errs && errs->total) msg = feature_errors_summary(errs, summary, sizeof summary);
  if (pc->kind == KIND_STREAM) {
    arena a = {0};
    Inferd__PredictResponse r = INFERD__PREDICT_RESPONSE__INIT;
    r.model = pc->model;
    r.model_version = pc->version;
    r.error = (char *)msg;
    errors_into(&a, errs, &r);
    gstream_send(pc->call, pc->item, pb_pack(&r.base));
    arena_free(&a);
  } else {
    gcall_reply_error(pc->call, st->code, msg);
  }
  free(pc);
}

static void on_predict_done(infer_request *req, void *user) {
  predict_call *pc = user;
  inferd_status st = req->status;
  json_t *results = NULL;
  if (status_is_ok(&st))
    st = features_decode_results(pc->f, req->outputs, req->output_names, req->n_outputs, &pc->opts, &results);
  if (!status_is_ok(&st)) {
    infer_request_destroy(req);
    predict_fail(pc, &st, NULL);
    return;
  }
  arena a = {0};
  size_t n = json_array_size(results);
  Inferd__Prediction *preds = arena_alloc(&a, n * sizeof *preds);
  Inferd__Prediction **ptrs = arena_alloc(&a, n * sizeof *ptrs);
  bool ok = preds && ptrs;
  for (size_t i = 0; ok && i < n; i++) {
    ok = prediction_from_json(&a, json_array_get(results, i), &preds[i]);
    ptrs[i] = &preds[i];
  }
  json_decref(results);
  char id[40];
  new_id(id, sizeof id);
  double ms = (double)req->compute_infer_ns / 1e6;
  grpc_byte_buffer *bb = NULL;
  if (ok && pc->kind == KIND_BATCH) {
    Inferd__BatchPredictResponse r = INFERD__BATCH_PREDICT_RESPONSE__INIT;
    r.id = id;
    r.model = req->mv->model->name;
    r.model_version = req->mv->version_str;
    r.created = (int64_t)time(NULL);
    r.results = ptrs;
    r.n_results = n;
    r.records = (int64_t)pc->n_records;
    r.inference_time_ms = ms;
    bb = pb_pack(&r.base);
  } else if (ok) {
    Inferd__PredictResponse r = INFERD__PREDICT_RESPONSE__INIT;
    r.id = id;
    r.model = req->mv->model->name;
    r.model_version = req->mv->version_str;
    r.created = (int64_t)time(NULL);
    r.result = n ? ptrs[0] : NULL;
    r.inference_time_ms = ms;
    bb = pb_pack(&r.base);
  }
  arena_free(&a);
  infer_request_destroy(req);
  if (bb == NULL) {
    st = status_make(INFERD_INTERNAL, "out of memory");
    predict_fail(pc, &st, NULL);
    return;
  }
  gcall_answer(pc->call, pc->item, bb);
  free(pc);
}

static void options(const Inferd__PredictOptions *o, features_result_opts *opts, feature_errors *errs) {
  opts->return_probabilities = true;
  opts->top_k = 0;
  if (o == NULL) return;
  if (o->return_probabilities) opts->return_probabilities = o->return_probabilities->value;
  if (o->top_k < 0)
    feature_errors_add(errs, "$.options.top_k", "wrong_type", "top_k must be a positive integer (0: every class)");
  else
    opts->top_k = o->top_k;
}

/* What serve's decode stage needs of the message, during serve_submit. */
typedef struct predict_decode {
  Inferd__Record **records;
  size_t n_records;
  const Inferd__PredictOptions *o;
  feature_errors errs; /* the problems found, answered in the protocol's form */
} predict_decode;

/* serve's decode stage: the records through the version's feature schema into req. */
static inferd_status predict_decode_records(serve_request *sr, infer_request *req) {
  predict_call *pc = sr->user;
  predict_decode *d = pc->decode;
  gcall *c = pc->call;
  const model_version *mv = req->mv;
  snprintf(pc->version, sizeof pc->version, "%s", sr->routed_version);
  gcall_set_model(c, pc->model, pc->version);
  if ((pc->f = application_features(mv)) == NULL)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "model '%s' has no feature schema (config.json \"application\"): send tensors with "
                       "inference.GRPCInferenceService/ModelInfer",
                       mv->model->name);
  size_t max = c->app->max_records > 0 ? (size_t)c->app->max_records : DEFAULT_MAX_RECORDS;
  int max_batch = mv->model->config->max_batch_size;
  if (max_batch > 0 && (size_t)max_batch < max) max = (size_t)max_batch;
  if (d->n_records > max) {
    feature_errors_add(&d->errs, "$.records", "too_many", "%zu records, more than the %zu one request may carry",
                       d->n_records, max);
    return status_make(INFERD_TOO_LARGE, "too many records");
  }
  options(d->o, &pc->opts, &d->errs);
  json_t *recs = json_array();
  json_t *reported = json_array(); /* paths of values already reported: not "missing" too */
  for (size_t i = 0; i < d->n_records; i++) {
    char path[64];
    if (pc->kind == KIND_BATCH)
      snprintf(path, sizeof path, "$.records[%zu]", i);
    else
      snprintf(path, sizeof path, "$.record");
    json_array_append_new(recs, record_json(d->records[i], path, &d->errs, reported));
  }
  record_paths rp = {.single = pc->kind != KIND_BATCH};
  features_paths paths = {.base = pc->kind == KIND_BATCH ? "$.records" : "$.record", .path = record_path, .user = &rp};
  tensor *ts = NULL;
  size_t nt = 0;
  inferd_status st = features_encode(pc->f, recs, &paths, &ts, &nt, &d->errs);
  json_decref(recs);
  for (size_t i = 0; i < json_array_size(reported); i++)
    feature_errors_drop(&d->errs, json_string_value(json_array_get(reported, i)), "missing_feature");
  json_decref(reported);
  if (status_is_ok(&st) && d->errs.total) st = status_make(INFERD_INVALID_ARGUMENT, "invalid request");
  if (!status_is_ok(&st)) {
    if (ts) tensors_free(ts, nt);
    return st;
  }
  pc->n_records = d->n_records;
  req->inputs = ts;
  req->n_inputs = nt;
  req->output_names = calloc(pc->f->n_output_names + 1, sizeof(char *));
  for (size_t i = 0; req->output_names && i < pc->f->n_output_names; i++) {
    req->output_names[i] = strdup(pc->f->output_names[i]);
    if (req->output_names[i]) req->n_outputs = i + 1;
  }
  if (req->output_names == NULL || req->n_outputs != pc->f->n_output_names)
    return status_make(INFERD_INTERNAL, "out of memory");
  return status_ok();
}

/* Hands the records to serve; answers failures itself. */
static void predict_start(predict_call *pc, const char *model_name, const char *version, Inferd__Record **records,
                          size_t n_records, const Inferd__PredictOptions *o) {
  gcall *c = pc->call;
  snprintf(pc->model, sizeof pc->model, "%s", model_name ? model_name : "");
  snprintf(pc->version, sizeof pc->version, "%s", version ? version : "");
  gcall_set_model(c, pc->model, "");
  predict_decode d = {.records = records, .n_records = n_records, .o = o};
  /* cppcheck-suppress autoVariables ; read only by the decode stage, inside serve_submit below;
   * after a successful submit pc belongs to the completion and is not touched here again */
  pc->decode = &d;
  serve_request sr = {.model = model_name,
                      .version = version,
                      .decode = predict_decode_records,
                      .on_done = on_predict_done,
                      .user = pc};
  inferd_status st = gcall_submit(c, &sr);
  if (!status_is_ok(&st)) {
    pc->decode = NULL;
    predict_fail(pc, &st, d.errs.total && st.code != INFERD_INTERNAL ? &d.errs : NULL);
  }
  feature_errors_clear(&d.errs);
}

static predict_call *predict_call_new(gcall *c, predict_kind kind, gstream_item *item) {
  predict_call *pc = calloc(1, sizeof *pc);
  if (pc == NULL) {
    gcall_fail_alloc(c, item);
    return NULL;
  }
  pc->call = c;
  pc->kind = kind;
  pc->item = item;
  return pc;
}

/* ---------------------------------------------------------------------------------------- */
/* generation on StreamPredict: a record with a string feature text_input (and optional
 * max_tokens, temperature, seed) to a generative model is answered by a PredictResponse per
 * piece of text (field text), then a final one with finish_reason and the usage. The stream of
 * pieces is generate_grpc.c's, shared with ModelStreamInfer; only the messages are this
 * protocol's. */

/* One response: a piece of text, the final one (finish set), or a failure (error set). */
static grpc_byte_buffer *sp_response(const grpcfe_gen *gg, const char *text, size_t len, const char *finish,
                                     const char *error, Inferd__FeatureError *fe) {
  Inferd__PredictResponse r = INFERD__PREDICT_RESPONSE__INIT;
  r.id = (char *)gg->id;
  r.model = (char *)gg->model;
  r.model_version = (char *)gg->version;
  r.created = (int64_t)time(NULL);
  char *piece = NULL;
  if (text) {
    piece = malloc(len + 1); /* protobuf strings are NUL-terminated here */
    if (piece == NULL) return NULL;
    memcpy(piece, text, len);
    piece[len] = '\0';
    r.text = piece;
  }
  if (finish) {
    r.finish_reason = (char *)finish;
    r.prompt_tokens = gg->g.prompt_tokens;
    r.completion_tokens = gg->g.completion_tokens;
  }
  if (error) r.error = (char *)error;
  Inferd__FeatureError *fes[1] = {fe};
  if (fe) {
    r.errors = fes;
    r.n_errors = 1;
  }
  grpc_byte_buffer *bb = pb_pack(&r.base);
  free(piece);
  return bb;
}

static grpc_byte_buffer *sp_piece(const grpcfe_gen *gg, const char *text, size_t len) {
  return sp_response(gg, text, len, NULL, NULL, NULL);
}

static grpc_byte_buffer *sp_final(const grpcfe_gen *gg) {
  return sp_response(gg, NULL, 0, gen_finish_name(gg->g.finish), NULL, NULL);
}

static grpc_byte_buffer *sp_failure(const grpcfe_gen *gg, const char *msg) {
  return sp_response(gg, NULL, 0, NULL, msg, NULL);
}

static const grpcfe_gen_encoder sp_encoder = {.piece = sp_piece, .final = sp_final, .failure = sp_failure};

/* The record's features into gg; on failure *bad names the feature at fault (NULL: none). */
static inferd_status sp_decode_record(grpcfe_gen *gg, const Inferd__Record *rec, const char **bad, const char **kind) {
  gen_params *p = &gg->g.params;
  for (size_t i = 0; i < rec->n_features; i++) {
    const char *k = rec->features[i]->key;
    const Inferd__Value *v = rec->features[i]->value;
    int kc = v ? (int)v->kind_case : INFERD__VALUE__KIND__NOT_SET;
    *bad = k;
    *kind = "wrong_type";
    if (strcmp(k, "text_input") == 0) {
      if (kc != INFERD__VALUE__KIND_STRING_VALUE)
        return status_make(INFERD_INVALID_ARGUMENT, "feature 'text_input' must be a string");
      if (!utf8_valid(v->string_value, strlen(v->string_value), NULL))
        return status_make(INFERD_INVALID_ARGUMENT, "feature 'text_input' is not valid UTF-8");
      free(gg->text);
      gg->text = strdup(v->string_value);
      if (gg->text == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    } else if (strcmp(k, "max_tokens") == 0 || strcmp(k, "seed") == 0) {
      if (kc != INFERD__VALUE__KIND_INT_VALUE)
        return status_make(INFERD_INVALID_ARGUMENT, "feature '%s' must be an integer", k);
      if (k[0] == 'm') {
        p->max_tokens = v->int_value;
      } else {
        p->has_seed = true;
        p->seed = (uint64_t)v->int_value;
      }
    } else if (strcmp(k, "temperature") == 0) {
      if (kc == INFERD__VALUE__KIND_NUMBER_VALUE)
        p->temperature = v->number_value;
      else if (kc == INFERD__VALUE__KIND_INT_VALUE)
        p->temperature = (double)v->int_value;
      else
        return status_make(INFERD_INVALID_ARGUMENT, "feature 'temperature' must be a number");
    } else {
      *kind = "unknown_feature";
      return status_make(INFERD_INVALID_ARGUMENT,
                         "feature '%s' is not one a generation takes (text_input, max_tokens, temperature, seed)", k);
    }
  }
  *bad = NULL;
  if (gg->text == NULL) {
    *bad = "text_input";
    *kind = "missing_feature";
    return status_make(INFERD_INVALID_ARGUMENT, "a generation needs the string feature 'text_input'");
  }
  gg->g.prompt = gg->text;
  gg->g.prompt_len = strlen(gg->text);
  return status_ok();
}

/* Starts a generation in the stream's slot item; answers every failure on the stream itself. */
static void sp_generate_start(gcall *c, gstream_item *item, const Inferd__PredictRequest *q) {
  grpcfe_gen *gg = grpcfe_gen_new(c, item, &sp_encoder, q->model);
  if (gg == NULL) return;
  utf8_sanitize(gg->version, sizeof gg->version, q->version ? q->version : "");
  new_id(gg->id, sizeof gg->id);
  Inferd__Record empty = INFERD__RECORD__INIT;
  const char *bad = NULL, *kind = NULL;
  inferd_status st = sp_decode_record(gg, q->record ? q->record : &empty, &bad, &kind);
  if (status_is_ok(&st)) {
    grpcfe_gen_submit(gg, q->model, q->version);
    return;
  }
  /* the feature at fault, in this protocol's errors */
  Inferd__FeatureError fe = INFERD__FEATURE_ERROR__INIT;
  char path[320]; /* fe.path, until the response is packed */
  if (bad) {
    char safe[256];
    utf8_sanitize(safe, sizeof safe, bad);
    snprintf(path, sizeof path, "$.record.features.%s", safe);
    fe.path = path;
    fe.kind = (char *)kind;
    fe.message = st.msg;
  }
  gstream_send(c, gg->item, sp_response(gg, NULL, 0, NULL, st.msg, bad ? &fe : NULL));
  grpcfe_gen_free(gg);
}

static void predict_message(gcall *c, grpc_byte_buffer *bb, predict_kind kind, gstream_item *item) {
  predict_call *pc = predict_call_new(c, kind, item);
  if (pc == NULL) return;
  Inferd__PredictRequest *q = (Inferd__PredictRequest *)pb_unpack(&inferd__predict_request__descriptor, bb);
  if (q == NULL) {
    inferd_status st = status_make(INFERD_INVALID_ARGUMENT, "the request is not a valid inferd.PredictRequest message");
    predict_fail(pc, &st, NULL);
    return;
  }
  /* a generative model's stream requests are generations (text_input in, pieces of text out) */
  if (kind == KIND_STREAM && grpcfe_is_generative(c->app, q->model)) {
    free(pc);
    sp_generate_start(c, item, q);
    inferd__predict_request__free_unpacked(q, NULL);
    return;
  }
  Inferd__Record empty = INFERD__RECORD__INIT;
  Inferd__Record *rec = q->record ? q->record : &empty;
  predict_start(pc, q->model, q->version, &rec, 1, q->options);
  inferd__predict_request__free_unpacked(q, NULL);
}

static void predict(gcall *c, grpc_byte_buffer *bb) { predict_message(c, bb, KIND_PREDICT, NULL); }

static void stream_predict(gcall *c, grpc_byte_buffer *bb) {
  gstream_item *item = gstream_reserve(c);
  if (item) predict_message(c, bb, KIND_STREAM, item);
}

static void batch_predict(gcall *c, grpc_byte_buffer *bb) {
  predict_call *pc = predict_call_new(c, KIND_BATCH, NULL);
  if (pc == NULL) return;
  Inferd__BatchPredictRequest *q =
      (Inferd__BatchPredictRequest *)pb_unpack(&inferd__batch_predict_request__descriptor, bb);
  if (q == NULL) {
    inferd_status st = status_make(INFERD_INVALID_ARGUMENT, "the request is not a valid inferd.BatchPredictRequest message");
    predict_fail(pc, &st, NULL);
    return;
  }
  predict_start(pc, q->model, q->version, q->records, q->n_records, q->options);
  inferd__batch_predict_request__free_unpacked(q, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* the catalogue */

static const char *encoding_name(const feature_def *d) {
  if (d->type != FEATURE_CATEGORICAL) return "";
  switch (d->encoding) {
    case ENCODING_ONE_HOT: return "one_hot";
    case ENCODING_INDEX: return "index";
    case ENCODING_STRING: return "string";
    default: return "";
  }
}

static Inferd__Value *value_from_json(arena *a, const json_t *j) {
  if (j == NULL || json_is_null(j)) return NULL;
  Inferd__Value *v = arena_alloc(a, sizeof *v);
  if (v == NULL) return NULL;
  inferd__value__init(v);
  if (json_is_integer(j)) {
    v->kind_case = INFERD__VALUE__KIND_INT_VALUE;
    v->int_value = json_integer_value(j);
  } else if (json_is_real(j)) {
    v->kind_case = INFERD__VALUE__KIND_NUMBER_VALUE;
    v->number_value = json_real_value(j);
  } else if (json_is_boolean(j)) {
    v->kind_case = INFERD__VALUE__KIND_BOOL_VALUE;
    v->bool_value = json_is_true(j);
  } else if (json_is_string(j)) {
    v->kind_case = INFERD__VALUE__KIND_STRING_VALUE;
    v->string_value = arena_strdup(a, json_string_value(j));
  }
  return v;
}

static Inferd__TensorInfo **tensor_infos(arena *a, const tensor_spec *specs, size_t n) {
  Inferd__TensorInfo *t = arena_alloc(a, n * sizeof *t);
  Inferd__TensorInfo **ptrs = arena_alloc(a, n * sizeof *ptrs);
  if (t == NULL || ptrs == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    inferd__tensor_info__init(&t[i]);
    t[i].name = specs[i].name;
    t[i].datatype = (char *)datatype_name(specs[i].datatype);
    t[i].shape = (int64_t *)specs[i].dims;
    t[i].n_shape = (size_t)specs[i].ndim;
    ptrs[i] = &t[i];
  }
  return ptrs;
}

static void get_model_info(gcall *c, grpc_byte_buffer *bb) {
  Inferd__GetModelInfoRequest *q =
      (Inferd__GetModelInfoRequest *)pb_unpack(&inferd__get_model_info_request__descriptor, bb);
  if (q == NULL) {
    gcall_reply_error(c, INFERD_INVALID_ARGUMENT, "the request is not a valid inferd.GetModelInfoRequest message");
    return;
  }
  inferd_status st = status_ok();
  SNAPSHOT_REF repo_snapshot *snap = repo_snapshot_acquire(c->app->repo);
  const repo_model *m = NULL;
  model_version *only = NULL;
  if (q->model == NULL || *q->model == '\0')
    st = status_make(INFERD_INVALID_ARGUMENT, "the model name is required");
  else if ((m = repo_snapshot_find(snap, q->model)) == NULL)
    st = status_make(INFERD_NOT_FOUND, "model '%s' not found", q->model);
  else if (q->version && *q->version)
    st = repo_model_version(m, q->version, &only);
  inferd__get_model_info_request__free_unpacked(q, NULL);
  if (!status_is_ok(&st)) {
    gcall_reply_status(c, &st);
    return;
  }
  arena a = {0};
  model_version *def = repo_model_default_version(m);
  if (def && model_version_state(def) != MODEL_READY) def = NULL;
  model_version *shown = only ? only : def;
  bool ready = shown && model_version_state(shown) == MODEL_READY;
  Inferd__ModelInfo r = INFERD__MODEL_INFO__INIT;
  r.id = m->name;
  const model_config *cfg = m->def ? m->def->config : NULL;
  r.backend = cfg && cfg->backend ? cfg->backend : "";
  r.default_version = def ? def->version_str : "";
  const application *app = ready ? application_of(shown) : NULL;
  const json_t *card = app ? app->model_card : NULL;
  const json_t *card_desc = card ? json_object_get(card, "description") : NULL;
  r.description = cfg && cfg->description ? cfg->description
                  : json_is_string(card_desc)  ? (char *)json_string_value(card_desc)
                                               : "";
  Inferd__VersionInfo *vi = arena_alloc(&a, (m->n_versions + 1) * sizeof *vi);
  Inferd__VersionInfo **vp = arena_alloc(&a, (m->n_versions + 1) * sizeof *vp);
  bool ok = vi && vp;
  for (size_t j = 0; ok && j < m->n_versions; j++) {
    model_version *mv = repo_model_version_at(m, j);
    if (only && mv != only) continue;
    Inferd__VersionInfo *v = &vi[r.n_versions];
    inferd__version_info__init(v);
    model_state s = model_version_state(mv);
    v->version = mv->version_str;
    v->state = (char *)model_state_name(s);
    v->reason = s == MODEL_UNAVAILABLE ? mv->reason : "";
    v->loaded_at = s == MODEL_READY ? (int64_t)mv->loaded_at : 0;
    v->sha256 = s == MODEL_READY && application_of(mv) ? (char *)application_of(mv)->sha256 : "";
    vp[r.n_versions++] = v;
  }
  r.versions = vp;
  const features *f = ready ? application_features(shown) : NULL;
  if (ok && f) {
    Inferd__FeatureInfo *fi = arena_alloc(&a, f->n_defs * sizeof *fi);
    Inferd__FeatureInfo **fp = arena_alloc(&a, f->n_defs * sizeof *fp);
    ok = fi && fp;
    for (size_t i = 0; ok && i < f->n_defs; i++) {
      const feature_def *d = &f->defs[i];
      inferd__feature_info__init(&fi[i]);
      fi[i].name = d->name;
      fi[i].type = (char *)feature_type_name(d->type);
      fi[i].required = d->required;
      fi[i].default_value = value_from_json(&a, d->default_value);
      if (d->has_min) fi[i].min_case = INFERD__FEATURE_INFO__MIN_MINIMUM, fi[i].minimum = d->min;
      if (d->has_max) fi[i].max_case = INFERD__FEATURE_INFO__MAX_MAXIMUM, fi[i].maximum = d->max;
      fi[i].categories = d->categories;
      fi[i].n_categories = d->n_categories;
      fi[i].encoding = (char *)encoding_name(d);
      fi[i].description = d->description ? d->description : "";
      fp[i] = &fi[i];
    }
    r.features = fp;
    r.n_features = ok ? f->n_defs : 0;
    r.allow_extra_features = f->allow_extra;
    r.task = f->task == TASK_REGRESSION ? "regression" : "classification";
  }
  r.class_labels = cfg ? cfg->class_labels : NULL;
  r.n_class_labels = cfg ? cfg->n_class_labels : 0;
  if (ok && ready) {
    r.inputs = tensor_infos(&a, shown->inputs, shown->n_inputs);
    r.n_inputs = r.inputs ? shown->n_inputs : 0;
    r.outputs = tensor_infos(&a, shown->outputs, shown->n_outputs);
    r.n_outputs = r.outputs ? shown->n_outputs : 0;
  }
  char *card_text = card ? json_dumps(card, JSON_COMPACT) : NULL;
  r.model_card_json = card_text ? card_text : "";
  if (ok)
    gcall_reply(c, &r.base);
  else
    gcall_reply_error(c, INFERD_INTERNAL, "out of memory");
  free(card_text);
  arena_free(&a);
}

#define SVC "/inferd.ModelService/"

rpc_method model_service_methods[] = {
    {.path = SVC "Predict", .kind = RPC_UNARY, .slots = 8, .on_unary = predict, .scope = SCOPE_INFER},
    {.path = SVC "BatchPredict", .kind = RPC_UNARY, .slots = 4, .on_unary = batch_predict, .scope = SCOPE_INFER},
    {.path = SVC "StreamPredict", .kind = RPC_STREAM, .slots = 2, .on_message = stream_predict, .scope = SCOPE_INFER},
    {.path = SVC "GetModelInfo", .kind = RPC_UNARY, .slots = 2, .on_unary = get_model_info, .scope = SCOPE_READ},
    {0}};
