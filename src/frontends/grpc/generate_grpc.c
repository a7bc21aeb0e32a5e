/* Text generation over the Open Inference Protocol's gRPC service, as Triton's LLM backends take
 * it: a ModelInferRequest to a generative model with a BYTES input "text_input" and sampling
 * parameters in the request's parameters. ModelStreamInfer answers decoupled: one response per
 * piece of text ("text_output"), then a final one with parameter triton_final_response = true,
 * the finish reason and the usage; ModelInfer (or "stream": false) answers once with the whole
 * text. The generation goes through serve_submit like every request (generate/engine.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/grpc/generate_grpc.h"
#include "generate/engine.h"
#include "util/utf8.h"

typedef struct gen_call {
  gcall *call;
  gstream_item *item; /* streams: the next response's slot, reserved one ahead (the stream stays
                         open until the final response, whatever the client half-closes) */
  bool stream;        /* a response per piece of text */
  gen_request g;
  char model[256], version[32], id[128];
  char *text;           /* text_input, owned */
  char *stops[GEN_MAX_STOP]; /* owned */
} gen_call;

static void gen_call_free(gen_call *gc) {
  free(gc->text);
  for (size_t i = 0; i < GEN_MAX_STOP; i++) free(gc->stops[i]);
  gen_request_clear(&gc->g);
  free(gc);
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

/* One response: text_output = [text] (absent when text is NULL), and the parameters given. */
typedef struct gen_param {
  const char *key;
  int kind; /* 0 bool, 1 int64, 2 string */
  bool b;
  int64_t i;
  const char *s;
} gen_param;

static grpc_byte_buffer *response(const gen_call *gc, const char *text, size_t len, const gen_param *ps, size_t np,
                                  const char *error) {
  Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  r.model_name = (char *)gc->model;
  r.model_version = (char *)gc->version;
  r.id = (char *)gc->id;
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
  if (gc->item == NULL) return pb_pack(&r.base);
  Inference__ModelStreamInferResponse sr = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
  sr.error_message = (char *)(error ? error : "");
  /* cppcheck-suppress unreadVariable ; pb_pack reads it through sr.base */
  sr.infer_response = &r;
  return pb_pack(&sr.base);
}

/* On the engine thread: a piece of text goes out as its own response, in a slot reserved one
 * ahead. false (the stream is going away) ends the generation. */
static bool on_token(void *ctx, const gen_event *ev) {
  gen_call *gc = ctx;
  if (!gc->stream || ev->text_len == 0) return true;
  gstream_item *next = gstream_reserve(gc->call);
  if (next == NULL) return false;
  gen_param p = {.key = "triton_final_response", .kind = 0, .b = false};
  gstream_send(gc->call, gc->item, response(gc, ev->text, ev->text_len, &p, 1, NULL));
  gc->item = next;
  return true;
}

/* The request's completion (on the engine thread, or a worker): the final response. */
static void on_done(infer_request *req, void *user) {
  gen_call *gc = user;
  inferd_status st = req->status;
  infer_request_destroy(req);
  gen_request *g = &gc->g;
  if (!status_is_ok(&st)) {
    if (gc->item)
      gstream_send(gc->call, gc->item, response(gc, NULL, 0, NULL, 0, st.msg));
    else
      gcall_reply_status(gc->call, &st);
    gen_call_free(gc);
    return;
  }
  gen_param ps[4] = {{.key = "triton_final_response", .kind = 0, .b = true},
                     {.key = "finish_reason", .kind = 2, .s = gen_finish_name(g->finish)},
                     {.key = "prompt_tokens", .kind = 1, .i = g->prompt_tokens},
                     {.key = "completion_tokens", .kind = 1, .i = g->completion_tokens}};
  /* a streamed generation's text has gone out piece by piece: its final response has none */
  grpc_byte_buffer *bb = gc->stream ? response(gc, NULL, 0, ps, 4, NULL)
                                    : response(gc, g->text ? g->text : "", g->text_len, ps, 4, NULL);
  if (gc->item)
    gstream_send(gc->call, gc->item, bb);
  else
    gcall_reply_buffer(gc->call, bb);
  gen_call_free(gc);
}

static inferd_status gen_decode(serve_request *sr, infer_request *req) {
  (void)req;
  gen_call *gc = sr->user;
  snprintf(gc->version, sizeof gc->version, "%s", sr->routed_version);
  gcall_set_model(gc->call, gc->model, gc->version);
  return status_ok();
}

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
static inferd_status decode_message(gen_call *gc, const Inference__ModelInferRequest *q) {
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
        gc->stream = gc->item && in->contents->bool_contents[0];
      else if (strcmp(in->datatype, "BOOL") == 0 && raw && raw->len == 1)
        gc->stream = gc->item && raw->data[0];
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
  gc->text = malloc(text->len + 1);
  if (gc->text == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  memcpy(gc->text, text->data, text->len);
  gc->text[text->len] = '\0';
  gc->g.prompt = gc->text;
  gc->g.prompt_len = text->len;
  gen_params *p = &gc->g.params;
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
      gc->stops[p->n_stop] = strdup(v->string_param);
      if (gc->stops[p->n_stop] == NULL) return status_make(INFERD_INTERNAL, "out of memory");
      p->stop[p->n_stop] = gc->stops[p->n_stop];
      p->n_stop++;
    } else if (strcmp(k, "stream") == 0) {
      if (v->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM)
        return status_make(INFERD_INVALID_ARGUMENT, "parameter 'stream' must be a bool");
      gc->stream = gc->item && v->bool_param;
    }
    /* others (timeout, priority, Triton's own) are the pipeline's or ignored, as for tensors */
  }
  return status_ok();
}

void grpcfe_generate_start(gcall *c, gstream_item *item, const Inference__ModelInferRequest *q) {
  gen_call *gc = calloc(1, sizeof *gc);
  if (gc == NULL) {
    inferd_status st = status_make(INFERD_INTERNAL, "out of memory");
    if (item)
      gstream_send(c, item, NULL);
    else
      gcall_reply_status(c, &st);
    return;
  }
  gc->call = c;
  gc->item = item;
  gc->stream = item != NULL; /* a stream streams unless the request says "stream": false */
  gen_request_init(&gc->g);
  utf8_sanitize(gc->model, sizeof gc->model, q->model_name ? q->model_name : "");
  utf8_sanitize(gc->id, sizeof gc->id, q->id ? q->id : "");
  gcall_set_model(c, gc->model, "");
  inferd_status st = decode_message(gc, q);
  if (status_is_ok(&st)) {
    gc->g.emit = on_token;
    gc->g.emit_ctx = gc;
    gc->g.keep_text = !gc->stream;
    serve_request sr = {.model = q->model_name,
                        .version = q->model_version,
                        .deadline = {.param_timeout_what = "parameter 'timeout'"},
                        .priority_what = "parameter 'priority'",
                        .decode = gen_decode,
                        .on_done = on_done,
                        .user = gc,
                        .generate = &gc->g};
    gcall_serve_init(c, &sr);
    st = grpcfe_draining(c->fe) ? status_make(INFERD_UNAVAILABLE, "the server is shutting down")
                                : serve_submit(c->app->serve, &sr);
    if (status_is_ok(&st)) return; /* gc is the completion's now */
  }
  if (gc->item)
    gstream_send(c, gc->item, response(gc, NULL, 0, NULL, 0, st.msg));
  else
    gcall_reply_status(c, &st);
  gen_call_free(gc);
}
