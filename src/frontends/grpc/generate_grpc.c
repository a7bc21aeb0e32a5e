/* Text generation over gRPC. First the one implementation of a generation's call that every
 * gRPC protocol uses (the engine's request, each piece of text in a stream slot reserved one
 * ahead, the final response or the failure; the protocol passes its encoding), then the Open
 * Inference Protocol's, as Triton's LLM backends take it: a ModelInferRequest to a generative
 * model with a BYTES input "text_input" and sampling parameters in the request's parameters.
 * ModelStreamInfer answers decoupled: one response per piece of text ("text_output"), then a
 * final one with parameter triton_final_response = true, the finish reason and the usage;
 * ModelInfer (or "stream": false) answers once with the whole text. The generation goes through
 * serve_submit like every request (generate/engine.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/grpc/generate_grpc.h"
#include "generate/engine.h"
#include "util/utf8.h"

/* ---------------------------------------------------------------------------------------- */
/* a generation's call, whichever protocol carries it */

void grpcfe_gen_free(grpcfe_gen *gg) {
  free(gg->text);
  for (size_t i = 0; i < GEN_MAX_STOP; i++) free(gg->stops[i]);
  gen_request_clear(&gg->g);
  free(gg);
}

bool grpcfe_is_generative(app *a, const char *model) {
  if (model == NULL || *model == '\0') return false;
  model_version *mv = NULL;
  inferd_status st = repo_acquire(a->repo, model, "", REPO_ANY_STATE, &mv);
  if (!status_is_ok(&st)) return false;
  /* config.json is the model's, shared by its versions: any version says whether it generates */
  bool gen = mv->model->config->generate != NULL;
  version_release(mv);
  return gen;
}

grpcfe_gen *grpcfe_gen_new(gcall *c, gstream_item *item, const grpcfe_gen_encoder *enc, const char *model) {
  grpcfe_gen *gg = calloc(1, sizeof *gg);
  if (gg == NULL) {
    gcall_fail_alloc(c, item);
    return NULL;
  }
  gg->call = c;
  gg->item = item;
  gg->stream = item != NULL;
  gg->enc = enc;
  gen_request_init(&gg->g);
  utf8_sanitize(gg->model, sizeof gg->model, model ? model : "");
  gcall_set_model(c, gg->model, "");
  return gg;
}

void grpcfe_gen_fail(grpcfe_gen *gg, const inferd_status *st) {
  if (gg->item)
    gstream_send(gg->call, gg->item, gg->enc->failure(gg, st->msg));
  else
    gcall_reply_status(gg->call, st);
  grpcfe_gen_free(gg);
}

/* On the engine thread: a piece of text goes out as its own response, in a slot reserved one
 * ahead. false (the stream is going away) ends the generation. */
static bool on_token(void *ctx, const gen_event *ev) {
  grpcfe_gen *gg = ctx;
  if (!gg->stream || ev->text_len == 0) return true;
  gstream_item *next = gstream_reserve(gg->call);
  if (next == NULL) return false;
  gstream_send(gg->call, gg->item, gg->enc->piece(gg, ev->text, ev->text_len));
  gg->item = next;
  return true;
}

/* The request's completion (on the engine thread, or a worker): the final response. */
static void on_done(infer_request *req, void *user) {
  grpcfe_gen *gg = user;
  inferd_status st = req->status;
  infer_request_destroy(req);
  if (!status_is_ok(&st)) {
    grpcfe_gen_fail(gg, &st);
    return;
  }
  gcall_answer(gg->call, gg->item, gg->enc->final(gg));
  grpcfe_gen_free(gg);
}

static inferd_status gen_decode(serve_request *sr, infer_request *req) {
  (void)req;
  grpcfe_gen *gg = sr->user;
  snprintf(gg->version, sizeof gg->version, "%s", sr->routed_version);
  gcall_set_model(gg->call, gg->model, gg->version);
  return status_ok();
}

void grpcfe_gen_submit(grpcfe_gen *gg, const char *model, const char *version) {
  gg->g.emit = on_token;
  gg->g.emit_ctx = gg;
  gg->g.keep_text = !gg->stream;
  serve_request sr = {.model = model,
                      .version = version,
                      .decode = gen_decode,
                      .on_done = on_done,
                      .user = gg,
                      .generate = &gg->g};
  inferd_status st = gcall_submit(gg->call, &sr);
  if (!status_is_ok(&st)) grpcfe_gen_fail(gg, &st);
  /* else gg is the completion's now */
}

/* ---------------------------------------------------------------------------------------- */
/* the Open Inference Protocol's generation: ModelInfer / ModelStreamInfer */

/* One response: text_output = [text] (absent when text is NULL), and the parameters given. */
typedef struct gen_param {
  const char *key;
  int kind; /* 0 bool, 1 int64, 2 string */
  bool b;
  int64_t i;
  const char *s;
} gen_param;

static grpc_byte_buffer *response(const grpcfe_gen *gg, const char *text, size_t len, const gen_param *ps, size_t np,
                                  const char *error) {
  Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  r.model_name = (char *)gg->model;
  r.model_version = (char *)gg->version;
  r.id = (char *)gg->id;
  Inference__ModelInferResponse__InferOutputTensor out = INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
  Inference__InferTensorContents contents = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
  ProtobufCBinaryData bytes = {.len = len, .data = (uint8_t *)text};
  int64_t shape[1] = {1};
  out.name = "text_output";
  out.datatype = "BYTES";
  out.n_shape = 1;
  out.shape = shape;
  contents.n_bytes_contents = 1;
  contents.bytes_contents = &bytes;
  out.contents = &contents;
  Inference__ModelInferResponse__InferOutputTensor *outs[1] = {&out}; /* after out is filled */
  r.n_outputs = text ? 1 : 0; /* the final response of a stream has no text */
  r.outputs = outs;
  Inference__ModelInferResponse__ParametersEntry entries[6], *eptrs[6];
  Inference__InferParameter values[6];
  for (size_t k = 0; k < np && k < 6; k++) {
    inference__model_infer_response__parameters_entry__init(&entries[k]);
    inference__infer_parameter__init(&values[k]);
    entries[k].key = (char *)ps[k].key;
    if (ps[k].kind == 0) {
      values[k].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
      values[k].bool_param = ps[k].b;
    } else if (ps[k].kind == 1) {
      values[k].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
      values[k].int64_param = ps[k].i;
    } else {
      values[k].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
      values[k].string_param = (char *)ps[k].s;
    }
    entries[k].value = &values[k];
    eptrs[k] = &entries[k];
  }
  r.n_parameters = np < 6 ? np : 6;
  r.parameters = eptrs;
  if (gg->item == NULL) return pb_pack(&r.base);
  Inference__ModelStreamInferResponse sr = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
  sr.error_message = (char *)(error ? error : "");
  /* cppcheck-suppress unreadVariable ; pb_pack reads it through sr.base */
  sr.infer_response = &r;
  return pb_pack(&sr.base);
}

static grpc_byte_buffer *oip_piece(const grpcfe_gen *gg, const char *text, size_t len) {
  gen_param p = {.key = "triton_final_response", .kind = 0, .b = false};
  return response(gg, text, len, &p, 1, NULL);
}

static grpc_byte_buffer *oip_final(const grpcfe_gen *gg) {
  const gen_request *g = &gg->g;
  gen_param ps[4] = {{.key = "triton_final_response", .kind = 0, .b = true},
                     {.key = "finish_reason", .kind = 2, .s = gen_finish_name(g->finish)},
                     {.key = "prompt_tokens", .kind = 1, .i = g->prompt_tokens},
                     {.key = "completion_tokens", .kind = 1, .i = g->completion_tokens}};
  /* a streamed generation's text has gone out piece by piece: its final response has none */
  return gg->stream ? response(gg, NULL, 0, ps, 4, NULL) : response(gg, g->text ? g->text : "", g->text_len, ps, 4, NULL);
}

static grpc_byte_buffer *oip_failure(const grpcfe_gen *gg, const char *msg) {
  return response(gg, NULL, 0, NULL, 0, msg);
}

static const grpcfe_gen_encoder oip_encoder = {.piece = oip_piece, .final = oip_final, .failure = oip_failure};

static inferd_status want_number(const char *key, const Inference__InferParameter *v, double *out) {
  if (v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM)
    *out = v->double_param;
  else if (v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM)
    *out = (double)v->int64_param;
  else if (v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM)
    *out = (double)v->uint64_param;
  else
    return status_make(INFERD_INVALID_ARGUMENT, "parameter '%s' must be a number", key);
  return status_ok();
}

static inferd_status want_int(const char *key, const Inference__InferParameter *v, int64_t *out) {
  if (v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM)
    *out = v->int64_param;
  else if (v->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM &&
           v->uint64_param <= INT64_MAX)
    *out = (int64_t)v->uint64_param;
  else
    return status_make(INFERD_INVALID_ARGUMENT, "parameter '%s' must be an integer", key);
  return status_ok();
}

/* The request's text_input and parameters into gc. */
static inferd_status decode_message(grpcfe_gen *gg, const Inference__ModelInferRequest *q) {
  const ProtobufCBinaryData *text = NULL;
  for (size_t i = 0; i < q->n_inputs; i++) {
    const Inference__ModelInferRequest__InferInputTensor *in = q->inputs[i];
    const ProtobufCBinaryData *raw = i < q->n_raw_input_contents ? &q->raw_input_contents[i] : NULL;
    if (strcmp(in->name, "text_input") == 0) {
      if (strcmp(in->datatype, "BYTES") != 0)
        return status_make(INFERD_INVALID_ARGUMENT, "input 'text_input' must be BYTES, not %s", in->datatype);
      if (in->contents && in->contents->n_bytes_contents == 1) {
        text = &in->contents->bytes_contents[0];
      } else if (raw && raw->len >= 4) {
        uint32_t n;
        memcpy(&n, raw->data, 4);
        if ((size_t)n != raw->len - 4)
          return status_make(INFERD_INVALID_ARGUMENT, "input 'text_input' must hold exactly one element");
        static _Thread_local ProtobufCBinaryData t;
        t.len = n;
        t.data = raw->data + 4;
        text = &t;
      } else {
        return status_make(INFERD_INVALID_ARGUMENT, "input 'text_input' must hold exactly one element");
      }
    } else if (strcmp(in->name, "stream") == 0) {
      if (strcmp(in->datatype, "BOOL") == 0 && in->contents && in->contents->n_bool_contents == 1)
        gg->stream = gg->item && in->contents->bool_contents[0];
      else if (strcmp(in->datatype, "BOOL") == 0 && raw && raw->len == 1)
        gg->stream = gg->item && raw->data[0];
      else
        return status_make(INFERD_INVALID_ARGUMENT, "input 'stream' must be one BOOL");
    } else {
      return status_make(INFERD_INVALID_ARGUMENT,
                         "input '%s' is not one a generation takes (text_input BYTES, stream BOOL)", in->name);
    }
  }
  if (text == NULL) return status_make(INFERD_INVALID_ARGUMENT, "a generation needs the input 'text_input' (BYTES [1])");
  if (!utf8_valid((const char *)text->data, text->len, NULL))
    return status_make(INFERD_INVALID_ARGUMENT, "input 'text_input' is not valid UTF-8");
  gg->text = malloc(text->len + 1);
  if (gg->text == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  memcpy(gg->text, text->data, text->len);
  gg->text[text->len] = '\0';
  gg->g.prompt = gg->text;
  gg->g.prompt_len = text->len;
  gen_params *p = &gg->g.params;
  for (size_t i = 0; i < q->n_parameters; i++) {
    const char *k = q->parameters[i]->key;
    const Inference__InferParameter *v = q->parameters[i]->value;
    if (v == NULL) continue;
    if (strcmp(k, "max_tokens") == 0) TRY(want_int(k, v, &p->max_tokens));
    else if (strcmp(k, "temperature") == 0) TRY(want_number(k, v, &p->temperature));
    else if (strcmp(k, "top_p") == 0) TRY(want_number(k, v, &p->top_p));
    else if (strcmp(k, "top_k") == 0) TRY(want_int(k, v, &p->top_k));
    else if (strcmp(k, "presence_penalty") == 0) TRY(want_number(k, v, &p->presence_penalty));
    else if (strcmp(k, "frequency_penalty") == 0) TRY(want_number(k, v, &p->frequency_penalty));
    else if (strcmp(k, "seed") == 0) {
      int64_t s = 0;
      TRY(want_int(k, v, &s));
      p->has_seed = true;
      p->seed = (uint64_t)s;
    } else if (strcmp(k, "stop") == 0) {
      if (v->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM)
        return status_make(INFERD_INVALID_ARGUMENT, "parameter 'stop' must be a string");
      if (p->n_stop == GEN_MAX_STOP)
        return status_make(INFERD_INVALID_ARGUMENT, "parameter 'stop' may be given at most %d times", GEN_MAX_STOP);
      gg->stops[p->n_stop] = strdup(v->string_param);
      if (gg->stops[p->n_stop] == NULL) return status_make(INFERD_INTERNAL, "out of memory");
      p->stop[p->n_stop] = gg->stops[p->n_stop];
      p->n_stop++;
    } else if (strcmp(k, "stream") == 0) {
      if (v->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM)
        return status_make(INFERD_INVALID_ARGUMENT, "parameter 'stream' must be a bool");
      gg->stream = gg->item && v->bool_param;
    }
    /* others (timeout, priority, Triton's own) are the pipeline's or ignored, as for tensors */
  }
  return status_ok();
}

void grpcfe_generate_start(gcall *c, gstream_item *item, const Inference__ModelInferRequest *q) {
  /* a stream streams unless the request says "stream": false */
  grpcfe_gen *gg = grpcfe_gen_new(c, item, &oip_encoder, q->model_name);
  if (gg == NULL) return;
  utf8_sanitize(gg->id, sizeof gg->id, q->id ? q->id : "");
  inferd_status st = decode_message(gg, q);
  if (status_is_ok(&st))
    grpcfe_gen_submit(gg, q->model_name, q->model_version);
  else
    grpcfe_gen_fail(gg, &st);
}
