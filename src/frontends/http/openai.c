/* Text generation over HTTP: OpenAI's chat completions, completions and embeddings (with SSE
 * streams), the OpenAI fields of the model list, and Triton's generate extension
 * (/v2/models/{m}/generate and generate_stream). Each route only translates: a generation goes
 * through serve_submit with serve_request.generate (generate/engine.h); an embedding is an
 * ordinary tensor inference on an encoder model, pooled here. docs/generate.md, "Routes". */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/repository.h"
#include "frontends/http/appapi.h"
#include "frontends/http/routes.h"
#include "generate/engine.h"
#include "generate/tokenizer.h"

typedef enum { OA_CHAT, OA_COMPLETION, OA_TRITON } oa_kind;

#define SSE_HEARTBEAT ": keep-alive\n\n"

/* ---- errors -------------------------------------------------------------------------------
 * The OpenAI routes answer errors in OpenAI's shape, {"error": {"message", "type", "param",
 * "code"}}: the official SDKs read error.message, .type, .param and .code from it (a bare string
 * would reach the user as a JSON-quoted blob). Triton's routes keep inferd's {"error": "..."}. */

static const char *oa_error_type(int http) {
  switch (http) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return http >= 500 ? "server_error" : "invalid_request_error";
  }
}

static json_t *oa_error_doc(const inferd_status *st, const char *param) {
  int http = status_http_code(st->code);
  return json_pack("{s{ss ss so so}}", "error", "message", st->msg, "type", oa_error_type(http), "param",
                   param ? json_string(param) : json_null(), "code", json_null());
}

/* Sets c's reply to the error, in the route's shape; any thread. */
static void set_error(http_call *c, oa_kind kind, const inferd_status *st, const char *param) {
  if (kind == OA_TRITON) {
    http_call_set_error(c, st);
    return;
  }
  http_call_set_error(c, st); /* its headers (Retry-After, WWW-Authenticate) */
  http_call_set_json(c, status_http_code(st->code), oa_error_doc(st, param));
}

static void reply_error(http_call *c, oa_kind kind, const inferd_status *st, const char *param) {
  set_error(c, kind, st, param);
  http_call_reply(c);
}

/* ---- request parsing ---------------------------------------------------------------------- */

typedef struct oa_parse {
  const char *param; /* the field a failure names (OpenAI's error.param) */
} oa_parse;

#define BAD(pp, field, ...) ((pp)->param = (field), status_make(INFERD_INVALID_ARGUMENT, __VA_ARGS__))

static bool present(const json_t *v) { return v != NULL && !json_is_null(v); }

static inferd_status get_number(oa_parse *pp, const json_t *o, const char *field, const char *what, double *out,
                                bool *given) {
  const json_t *v = json_object_get(o, field);
  *given = present(v);
  if (!*given) return status_ok();
  if (!json_is_number(v)) return BAD(pp, field, "%s must be a number", what);
  *out = json_number_value(v);
  return status_ok();
}

static inferd_status get_int(oa_parse *pp, const json_t *o, const char *field, const char *what, json_int_t *out,
                             bool *given) {
  const json_t *v = json_object_get(o, field);
  *given = present(v);
  if (!*given) return status_ok();
  if (!json_is_integer(v)) return BAD(pp, field, "%s must be an integer", what);
  *out = json_integer_value(v);
  return status_ok();
}

static inferd_status get_bool(oa_parse *pp, const json_t *o, const char *field, const char *what, bool *out) {
  const json_t *v = json_object_get(o, field);
  if (!present(v)) return status_ok();
  if (!json_is_boolean(v)) return BAD(pp, field, "%s must be true or false", what);
  *out = json_is_true(v);
  return status_ok();
}

/* The sampling parameters shared by every generation route, from object o (the body, or
 * Triton's "parameters"); prefix names the fields in messages ("" or "parameters."). */
static inferd_status parse_sampling(oa_parse *pp, const json_t *o, const char *prefix, gen_params *gp) {
  char what[96];
  bool given = false;
  double d;
  json_int_t i;
#define WHAT(f) (snprintf(what, sizeof what, "%s%s", prefix, f), what)
  TRY(get_number(pp, o, "temperature", WHAT("temperature"), &d, &given));
  if (given) {
    if (d < 0 || d > 2) return BAD(pp, "temperature", "%s is %g: it must be between 0 and 2", what, d);
    gp->temperature = d;
  }
  TRY(get_number(pp, o, "top_p", WHAT("top_p"), &d, &given));
  if (given) {
    if (!(d > 0 && d <= 1)) return BAD(pp, "top_p", "%s is %g: it must be greater than 0 and at most 1", what, d);
    gp->top_p = d;
  }
  TRY(get_int(pp, o, "top_k", WHAT("top_k"), &i, &given));
  if (given) {
    if (i < 0) return BAD(pp, "top_k", "%s is %lld: it must be 0 (off) or more", what, (long long)i);
    gp->top_k = i;
  }
  TRY(get_number(pp, o, "presence_penalty", WHAT("presence_penalty"), &d, &given));
  if (given) {
    if (d < -2 || d > 2) return BAD(pp, "presence_penalty", "%s is %g: it must be between -2 and 2", what, d);
    gp->presence_penalty = d;
  }
  TRY(get_number(pp, o, "frequency_penalty", WHAT("frequency_penalty"), &d, &given));
  if (given) {
    if (d < -2 || d > 2) return BAD(pp, "frequency_penalty", "%s is %g: it must be between -2 and 2", what, d);
    gp->frequency_penalty = d;
  }
  TRY(get_int(pp, o, "seed", WHAT("seed"), &i, &given));
  if (given) {
    gp->has_seed = true;
    gp->seed = (uint64_t)i;
  }
  /* max_completion_tokens is the chat API's newer name for max_tokens */
  static const char *const max_names[] = {"max_completion_tokens", "max_tokens"};
  for (size_t k = 0; k < 2; k++) {
    TRY(get_int(pp, o, max_names[k], WHAT(max_names[k]), &i, &given));
    if (!given) continue;
    if (i < 1) return BAD(pp, max_names[k], "%s is %lld: it must be at least 1", what, (long long)i);
    if (gp->max_tokens != GEN_UNSET && gp->max_tokens != i)
      return BAD(pp, max_names[k], "max_tokens and max_completion_tokens disagree: give one");
    gp->max_tokens = i;
  }
  const json_t *stop = json_object_get(o, "stop");
  if (present(stop)) {
    WHAT("stop");
    if (json_is_string(stop)) {
      stop = json_pack("[O]", stop);
      json_object_set_new((json_t *)o, "stop", (json_t *)stop); /* kept alive by the body */
    }
    if (!json_is_array(stop)) return BAD(pp, "stop", "%s must be a string or an array of strings", what);
    if (json_array_size(stop) > GEN_MAX_STOP)
      return BAD(pp, "stop", "%s has %zu sequences: at most %d", what, json_array_size(stop), GEN_MAX_STOP);
    for (size_t k = 0; k < json_array_size(stop); k++) {
      const json_t *s = json_array_get(stop, k);
      if (!json_is_string(s)) return BAD(pp, "stop", "%s[%zu] must be a string", what, k);
      size_t n = json_string_length(s);
      if (n == 0 || n > GEN_MAX_STOP_BYTES)
        return BAD(pp, "stop", "%s[%zu] is %zu bytes: a stop sequence is 1 to %d bytes", what, k, n, GEN_MAX_STOP_BYTES);
      if (strlen(json_string_value(s)) != n) return BAD(pp, "stop", "%s[%zu] contains a NUL character", what, k);
      gp->stop[gp->n_stop++] = json_string_value(s);
    }
  }
#undef WHAT
  return status_ok();
}

/* n, and the OpenAI features inferd does not have: a clear 400 rather than a silent ignore that
 * would give the client something other than what it asked for. */
static inferd_status refuse_unsupported(oa_parse *pp, const json_t *body, oa_kind kind) {
  bool given = false;
  json_int_t n = 1;
  TRY(get_int(pp, body, "n", "n", &n, &given));
  if (given && n != 1) return BAD(pp, "n", "n is %lld: only n = 1 is supported (send n requests)", (long long)n);
  if (kind == OA_COMPLETION) {
    TRY(get_int(pp, body, "best_of", "best_of", &n, &given));
    if (given && n != 1) return BAD(pp, "best_of", "best_of is %lld: only 1 is supported", (long long)n);
    bool echo = false;
    TRY(get_bool(pp, body, "echo", "echo", &echo));
    if (echo) return BAD(pp, "echo", "echo is not supported");
    const json_t *suffix = json_object_get(body, "suffix");
    if (present(suffix) && !(json_is_string(suffix) && json_string_length(suffix) == 0))
      return BAD(pp, "suffix", "suffix is not supported");
  }
  const json_t *v = json_object_get(body, "logit_bias");
  if (present(v) && !(json_is_object(v) && json_object_size(v) == 0)) return BAD(pp, "logit_bias", "logit_bias is not supported");
  if (kind == OA_CHAT) {
    v = json_object_get(body, "tools");
    if (present(v) && !(json_is_array(v) && json_array_size(v) == 0)) return BAD(pp, "tools", "tools (function calling) are not supported");
    v = json_object_get(body, "functions");
    if (present(v)) return BAD(pp, "functions", "functions (function calling) are not supported");
    v = json_object_get(body, "response_format");
    if (present(v)) {
      const json_t *t = json_is_object(v) ? json_object_get(v, "type") : NULL;
      if (!json_is_string(t) || strcmp(json_string_value(t), "text") != 0)
        return BAD(pp, "response_format", "response_format: only {\"type\": \"text\"} is supported");
    }
  }
  return status_ok();
}

/* ---- the call --------------------------------------------------------------------------- */

typedef struct oa_call {
  http_call *http;
  oa_kind kind;
  json_t *body; /* owned: the strings gen borrows live in it */
  gen_request gen;
  gen_message *messages; /* owned */
  char **parts;          /* owned: message contents given as arrays of text parts, joined */
  size_t n_parts;
  uint32_t *prompt_ids;  /* owned */
  const tokenizer *tok;  /* the routed version's, for logprobs (set in decode) */
  bool stream, include_usage;
  char id[96];
  char model[256];   /* as the client named it: echoed in every response */
  char version[32];  /* the routed version (Triton's model_version) */
  int64_t created;
  /* non-streaming logprobs, gathered per token (the engine's thread) */
  json_t *logprobs;
  size_t text_offset;
  /* streaming: the stream starts on whichever thread comes first, the loop after serve_submit
   * returns OK or the engine's first event (which may come before that return) */
  pthread_mutex_t mu;
  http_stream *st;
  bool started_events; /* the chat stream's first chunk (the role) has gone */
  /* the completion has begun (an end hook, run before the completion stages): from then on those
   * stages may write the call's stage headers on the engine's thread, so the loop must not start
   * the stream (copying them) any more; the completion starts it (under mu) */
  bool completing;
  atomic_int refs;     /* the loop's submit path and the completion: the last one frees */
} oa_call;

static void oa_free(oa_call *oc) {
  gen_request_clear(&oc->gen);
  json_decref(oc->body);
  json_decref(oc->logprobs);
  free(oc->messages);
  for (size_t i = 0; i < oc->n_parts; i++) free(oc->parts[i]);
  free(oc->parts);
  free(oc->prompt_ids);
  pthread_mutex_destroy(&oc->mu);
  free(oc);
}

static void oa_unref(oa_call *oc) {
  if (atomic_fetch_sub(&oc->refs, 1) == 1) oa_free(oc);
}

static oa_call *oa_new(http_call *c, oa_kind kind, json_t *body) {
  oa_call *oc = calloc(1, sizeof *oc);
  if (oc == NULL) return NULL;
  oc->http = c;
  oc->kind = kind;
  oc->body = body;
  gen_request_init(&oc->gen);
  pthread_mutex_init(&oc->mu, NULL);
  atomic_init(&oc->refs, 1);
  oc->created = (int64_t)time(NULL);
  const char *prefix = kind == OA_CHAT ? "chatcmpl-" : kind == OA_COMPLETION ? "cmpl-" : "gen-";
  int n = snprintf(oc->id, sizeof oc->id, "%s%.80s", prefix, c->request_id);
  for (char *q = oc->id + (n > 0 ? strlen(prefix) : 0); *q; q++) /* ids the clients may put in URLs */
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_')) *q = '_';
  return oc;
}

/* The chat messages: role and content (a string, or an array of {"type": "text", "text"}
 * parts, joined). */
static inferd_status parse_messages(oa_parse *pp, oa_call *oc, const json_t *msgs) {
  if (!json_is_array(msgs) || json_array_size(msgs) == 0)
    return BAD(pp, "messages", "messages must be a non-empty array of {\"role\", \"content\"}");
  size_t n = json_array_size(msgs);
  if (n > 4096) return BAD(pp, "messages", "messages has %zu entries: at most 4096", n);
  oc->messages = calloc(n, sizeof *oc->messages);
  oc->parts = calloc(n, sizeof *oc->parts);
  if (!oc->messages || !oc->parts) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const json_t *m = json_array_get(msgs, i);
    if (!json_is_object(m)) return BAD(pp, "messages", "messages[%zu] must be an object with role and content", i);
    const json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
    if (!json_is_string(role) || json_string_length(role) == 0)
      return BAD(pp, "messages", "messages[%zu].role must be a non-empty string", i);
    oc->messages[i].role = json_string_value(role);
    if (json_is_string(content)) {
      if (strlen(json_string_value(content)) != json_string_length(content))
        return BAD(pp, "messages", "messages[%zu].content contains a NUL character", i);
      oc->messages[i].content = json_string_value(content);
    } else if (!present(content)) {
      oc->messages[i].content = "";
    } else if (json_is_array(content)) {
      size_t total = 0;
      for (size_t k = 0; k < json_array_size(content); k++) {
        const json_t *part = json_array_get(content, k), *type = json_object_get(part, "type"),
                     *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0)
          return BAD(pp, "messages", "messages[%zu].content[%zu]: only parts of type \"text\" are supported", i, k);
        if (!json_is_string(text)) return BAD(pp, "messages", "messages[%zu].content[%zu].text must be a string", i, k);
        total += json_string_length(text);
      }
      char *joined = malloc(total + 1);
      if (joined == NULL) return status_make(INFERD_INTERNAL, "out of memory");
      size_t at = 0;
      for (size_t k = 0; k < json_array_size(content); k++) {
        const json_t *text = json_object_get(json_array_get(content, k), "text");
        memcpy(joined + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
      }
      joined[at] = '\0';
      if (strlen(joined) != at) {
        free(joined);
        return BAD(pp, "messages", "messages[%zu].content contains a NUL character", i);
      }
      oc->parts[oc->n_parts++] = joined;
      oc->messages[i].content = joined;
    } else {
      return BAD(pp, "messages", "messages[%zu].content must be a string or an array of text parts", i);
    }
  }
  oc->gen.messages = oc->messages;
  oc->gen.n_messages = n;
  return status_ok();
}

/* A completion's prompt: a string, an array of one string, token ids, or an array of one array
 * of token ids (the forms OpenAI takes; several prompts are several requests here). */
static inferd_status parse_prompt(oa_parse *pp, oa_call *oc, const json_t *prompt, const char *field) {
  if (json_is_array(prompt) && json_array_size(prompt) == 1 &&
      (json_is_string(json_array_get(prompt, 0)) || json_is_array(json_array_get(prompt, 0))))
    prompt = json_array_get(prompt, 0);
  if (json_is_string(prompt)) {
    if (strlen(json_string_value(prompt)) != json_string_length(prompt))
      return BAD(pp, field, "%s contains a NUL character", field);
    oc->gen.prompt = json_string_value(prompt);
    oc->gen.prompt_len = json_string_length(prompt);
    return status_ok();
  }
  if (!json_is_array(prompt) || json_array_size(prompt) == 0)
    return BAD(pp, field, "%s must be a string, an array of one string, or an array of token ids", field);
  size_t n = json_array_size(prompt);
  if (!json_is_integer(json_array_get(prompt, 0)))
    return BAD(pp, field, "%s has %zu prompts: send one prompt per request", field, n);
  oc->prompt_ids = malloc(n * sizeof *oc->prompt_ids);
  if (oc->prompt_ids == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_array_get(prompt, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
      return BAD(pp, field, "%s[%zu] must be a token id (an integer from 0)", field, i);
    oc->prompt_ids[i] = (uint32_t)json_integer_value(v);
  }
  oc->gen.prompt_ids = oc->prompt_ids;
  oc->gen.n_prompt_ids = n;
  return status_ok();
}

static inferd_status parse_body(oa_parse *pp, oa_call *oc) {
  const json_t *body = oc->body;
  if (oc->kind == OA_TRITON) {
    const json_t *text = json_object_get(body, "text_input");
    if (!json_is_string(text)) return BAD(pp, "text_input", "text_input must be a string (the prompt)");
    if (strlen(json_string_value(text)) != json_string_length(text))
      return BAD(pp, "text_input", "text_input contains a NUL character");
    oc->gen.prompt = json_string_value(text);
    oc->gen.prompt_len = json_string_length(text);
    const json_t *params = json_object_get(body, "parameters");
    if (present(params)) {
      if (!json_is_object(params)) return BAD(pp, "parameters", "parameters must be an object");
      static const char *const known[] = {"max_tokens", "temperature", "top_p", "top_k", "seed", "stop",
                                          "presence_penalty", "frequency_penalty", "stream"};
      const char *key;
      json_t *val;
      json_object_foreach((json_t *)params, key, val) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= strcmp(key, known[k]) == 0;
        if (!ok)
          return BAD(pp, "parameters", "parameters.%s is not a parameter of this route (known: max_tokens, temperature, "
                     "top_p, top_k, seed, stop, presence_penalty, frequency_penalty)", key);
      }
      TRY(parse_sampling(pp, params, "parameters.", &oc->gen.params));
    }
    return status_ok();
  }
  const json_t *model = json_object_get(body, "model");
  if (!json_is_string(model) || json_string_length(model) == 0)
    return BAD(pp, "model", "model must be a non-empty string naming the model");
  if (json_string_length(model) >= sizeof oc->model) return BAD(pp, "model", "model is longer than 255 bytes");
  snprintf(oc->model, sizeof oc->model, "%s", json_string_value(model));
  TRY(refuse_unsupported(pp, body, oc->kind));
  TRY(get_bool(pp, body, "stream", "stream", &oc->stream));
  const json_t *so = json_object_get(body, "stream_options");
  if (present(so)) {
    if (!json_is_object(so)) return BAD(pp, "stream_options", "stream_options must be an object");
    TRY(get_bool(pp, so, "include_usage", "stream_options.include_usage", &oc->include_usage));
  }
  TRY(parse_sampling(pp, body, "", &oc->gen.params));
  bool given = false;
  json_int_t n;
  if (oc->kind == OA_CHAT) {
    TRY(parse_messages(pp, oc, json_object_get(body, "messages")));
    TRY(get_bool(pp, body, "logprobs", "logprobs", &oc->gen.params.logprobs));
    TRY(get_int(pp, body, "top_logprobs", "top_logprobs", &n, &given));
    if (given) {
      if (n < 0 || n > GEN_MAX_TOP_LOGPROBS)
        return BAD(pp, "top_logprobs", "top_logprobs is %lld: it must be 0 to %d", (long long)n, GEN_MAX_TOP_LOGPROBS);
      if (!oc->gen.params.logprobs) return BAD(pp, "top_logprobs", "top_logprobs needs logprobs: true");
      oc->gen.params.top_logprobs = (int)n;
    }
  } else {
    const json_t *prompt = json_object_get(body, "prompt");
    if (!present(prompt)) return BAD(pp, "prompt", "prompt is required");
    TRY(parse_prompt(pp, oc, prompt, "prompt"));
    /* the legacy API's logprobs is the number of alternatives (0 to 5) */
    TRY(get_int(pp, body, "logprobs", "logprobs", &n, &given));
    if (given) {
      if (n < 0 || n > 5) return BAD(pp, "logprobs", "logprobs is %lld: it must be 0 to 5", (long long)n);
      oc->gen.params.logprobs = true;
      oc->gen.params.top_logprobs = (int)n;
    }
  }
  return status_ok();
}

/* ---- token text for logprobs ------------------------------------------------------------- */

/* GPT-2's bytes_to_unicode, inverted: the byte each code point below 324 spells in a byte-level
 * vocabulary (printable Latin-1 as itself, the other bytes from U+0100 on), -1 for none. */
static int byte_of_cp[324];

static void byte_table_init(void) {
  for (size_t i = 0; i < sizeof byte_of_cp / sizeof byte_of_cp[0]; i++) byte_of_cp[i] = -1;
  int extra = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_of_cp[printable ? b : 256 + extra++] = b;
  }
}

/* A token's bytes from its vocabulary spelling; a spelling with a character outside the byte
 * alphabet (an added token such as "<|im_end|>" with a real space) is its own UTF-8. */
static size_t token_bytes(const char *spelling, unsigned char *out, size_t cap) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, byte_table_init);
  size_t n = 0;
  const unsigned char *p = (const unsigned char *)spelling;
  while (*p) {
    unsigned cp;
    int len;
    if (p[0] < 0x80) {
      cp = p[0];
      len = 1;
    } else if ((p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
      cp = (unsigned)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
      len = 2;
    } else {
      break;
    }
    if (cp >= sizeof byte_of_cp / sizeof byte_of_cp[0] || byte_of_cp[cp] < 0 || n == cap) break;
    out[n++] = (unsigned char)byte_of_cp[cp];
    p += len;
  }
  if (*p == '\0') return n;
  n = strlen(spelling); /* not byte-level: the spelling is the text */
  if (n > cap) n = cap;
  memcpy(out, spelling, n);
  return n;
}

/* {"token": text, "logprob", "bytes": [...]} of one token (chat's form). */
static json_t *token_logprob_json(const tokenizer *tok, uint32_t id, float logprob) {
  const char *sp = tok ? tokenizer_id_token(tok, id) : NULL;
  unsigned char bytes[1024];
  size_t n = sp ? token_bytes(sp, bytes, sizeof bytes) : 0;
  char text[3 * sizeof bytes + 1];
  size_t pos = 0;
  tokenizer_utf8_lossy(bytes, n, true, text, &pos);
  text[pos] = '\0';
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_integer(bytes[i]));
  return json_pack("{ss sf so}", "token", text, "logprob", (double)logprob, "bytes", arr);
}

/* chat: {"content": [{token, logprob, bytes, top_logprobs: [...]}]} entries; completions:
 * tokens, token_logprobs, top_logprobs ({token: logprob}), text_offset. */
static void add_logprobs(oa_call *oc, json_t *acc, const gen_event *ev) {
  if (oc->kind == OA_CHAT) {
    json_t *e = token_logprob_json(oc->tok, ev->token_id, ev->logprob), *top = json_array();
    for (int k = 0; k < ev->n_top; k++) json_array_append_new(top, token_logprob_json(oc->tok, ev->top[k].id, ev->top[k].logprob));
    json_object_set_new(e, "top_logprobs", top);
    json_array_append_new(json_object_get(acc, "content"), e);
    return;
  }
  json_t *e = token_logprob_json(oc->tok, ev->token_id, ev->logprob);
  json_array_append(json_object_get(acc, "tokens"), json_object_get(e, "token"));
  json_array_append_new(json_object_get(acc, "token_logprobs"), json_real(ev->logprob));
  json_t *top = json_object();
  for (int k = 0; k < ev->n_top; k++) {
    json_t *t = token_logprob_json(oc->tok, ev->top[k].id, ev->top[k].logprob);
    json_object_set_new(top, json_string_value(json_object_get(t, "token")), json_real(ev->top[k].logprob));
    json_decref(t);
  }
  json_array_append_new(json_object_get(acc, "top_logprobs"), top);
  json_array_append_new(json_object_get(acc, "text_offset"), json_integer((json_int_t)oc->text_offset));
  json_decref(e);
}

static json_t *new_logprobs(oa_kind kind) {
  if (kind == OA_CHAT) return json_pack("{s[]}", "content");
  return json_pack("{s[] s[] s[] s[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

/* ---- responses ---------------------------------------------------------------------------- */

static json_t *usage_json(const gen_request *g) {
  return json_pack("{sI sI sI}", "prompt_tokens", (json_int_t)g->prompt_tokens, "completion_tokens",
                   (json_int_t)g->completion_tokens, "total_tokens", (json_int_t)(g->prompt_tokens + g->completion_tokens));
}

static const char *finish_reason(gen_finish f) { return f == GEN_FINISH_LENGTH ? "length" : "stop"; }

/* One streamed chunk: choice (consumed) in a chat.completion.chunk / text_completion; NULL
 * choice: the usage chunk (choices: []). */
static json_t *chunk_doc(oa_call *oc, json_t *choice, json_t *usage) {
  json_t *doc = json_pack("{ss ss sI ss s[]}", "id", oc->id, "object", oc->kind == OA_CHAT ? "chat.completion.chunk" : "text_completion",
                          "created", (json_int_t)oc->created, "model", oc->model, "choices");
  if (choice) json_array_append_new(json_object_get(doc, "choices"), choice);
  if (oc->include_usage) json_object_set_new(doc, "usage", usage ? usage : json_null());
  else if (usage) json_decref(usage);
  return doc;
}

static json_t *triton_doc(oa_call *oc, const char *text, size_t len) {
  return json_pack("{ss ss ss%}", "model_name", oc->model, "model_version", oc->version, "text_output", text, len);
}

/* "data: <json>\n\n" onto the stream (doc consumed). */
static void sse_push(oa_call *oc, json_t *doc) {
  char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
  json_decref(doc);
  if (s == NULL) return;
  size_t n = strlen(s);
  char *frame = malloc(n + 9);
  if (frame) {
    memcpy(frame, "data: ", 6);
    memcpy(frame + 6, s, n);
    memcpy(frame + 6 + n, "\n\n", 2);
    http_stream_push(oc->st, frame, n + 8);
    free(frame);
  }
  free(s);
}

/* Starts the SSE reply unless it has started; under oc->mu. False when it cannot (memory). */
static bool ensure_stream(oa_call *oc) {
  if (oc->st) return true;
  http_call *c = oc->http;
  c->status = 200;
  c->content_type = "text/event-stream; charset=utf-8";
  http_call_add_reply_header(c, "Cache-Control", "no-cache");
  http_call_add_reply_header(c, "X-Accel-Buffering", "no"); /* nginx: do not hold the events back */
  oc->st = http_stream_start(c, 0, SSE_HEARTBEAT);
  return oc->st != NULL;
}

/* The engine's per-token callback (its thread). */
static bool on_token(void *ctx, const gen_event *ev) {
  oa_call *oc = ctx;
  if (!oc->stream) { /* non-streaming: only logprobs come this way */
    if (oc->logprobs) add_logprobs(oc, oc->logprobs, ev);
    oc->text_offset += ev->text_len;
    return true;
  }
  pthread_mutex_lock(&oc->mu);
  bool ok = ensure_stream(oc);
  if (ok && oc->kind == OA_CHAT && !oc->started_events) {
    oc->started_events = true;
    sse_push(oc, chunk_doc(oc, json_pack("{sI s{ss ss} sn sn}", "index", (json_int_t)0, "delta", "role", "assistant", "content", "",
                                         "logprobs", "finish_reason"), NULL));
  }
  pthread_mutex_unlock(&oc->mu);
  if (!ok) return false;
  bool lp = oc->gen.params.logprobs;
  if (ev->text_len > 0 || lp) {
    json_t *logprobs = NULL;
    if (lp) {
      logprobs = new_logprobs(oc->kind);
      add_logprobs(oc, logprobs, ev);
    }
    oc->text_offset += ev->text_len;
    if (oc->kind == OA_TRITON) {
      sse_push(oc, triton_doc(oc, ev->text, ev->text_len));
    } else if (oc->kind == OA_CHAT) {
      sse_push(oc, chunk_doc(oc, json_pack("{sI s{ss%} so sn}", "index", (json_int_t)0, "delta", "content", ev->text, ev->text_len,
                                           "logprobs", logprobs ? logprobs : json_null(), "finish_reason"), NULL));
    } else {
      sse_push(oc, chunk_doc(oc, json_pack("{sI ss% so sn}", "index", (json_int_t)0, "text", ev->text, ev->text_len, "logprobs",
                                           logprobs ? logprobs : json_null(), "finish_reason"), NULL));
    }
  }
  return !http_stream_client_gone(oc->st);
}

static void finish_stream(oa_call *oc, infer_request *req) {
  http_call *c = oc->http;
  gen_request *g = &oc->gen;
  pthread_mutex_lock(&oc->mu);
  if (!ensure_stream(oc)) { /* out of memory before anything went out: a plain reply */
    pthread_mutex_unlock(&oc->mu);
    inferd_status st = status_make(INFERD_INTERNAL, "out of memory");
    set_error(c, oc->kind, &st, NULL);
    http_call_reply_async(c);
    return;
  }
  pthread_mutex_unlock(&oc->mu);
  int log_status = 0;
  if (!status_is_ok(&req->status) || g->finish == GEN_FINISH_ERROR) {
    /* the 200 has gone: the error is an event, in the route's shape, and the stream ends */
    inferd_status st = status_is_ok(&req->status) ? status_make(INFERD_INTERNAL, "the generation failed") : req->status;
    log_status = status_http_code(st.code);
    sse_push(oc, oc->kind == OA_TRITON ? json_pack("{ss}", "error", st.msg) : oa_error_doc(&st, NULL));
  } else if (g->finish != GEN_FINISH_CANCELLED) {
    const char *why = finish_reason(g->finish);
    if (oc->kind == OA_TRITON) {
      json_t *doc = triton_doc(oc, "", 0);
      json_object_set_new(doc, "finish_reason", json_string(why));
      json_object_set_new(doc, "usage", usage_json(g));
      sse_push(oc, doc);
    } else {
      json_t *choice = oc->kind == OA_CHAT ? json_pack("{sI s{} sn ss}", "index", (json_int_t)0, "delta", "logprobs", "finish_reason", why)
                                           : json_pack("{sI ss sn ss}", "index", (json_int_t)0, "text", "", "logprobs", "finish_reason", why);
      sse_push(oc, chunk_doc(oc, choice, NULL));
      if (oc->include_usage) sse_push(oc, chunk_doc(oc, NULL, usage_json(g)));
      http_stream_push(oc->st, "data: [DONE]\n\n", 14);
    }
  }
  http_stream_end(oc->st, log_status);
}

static void finish_plain(oa_call *oc, infer_request *req) {
  http_call *c = oc->http;
  gen_request *g = &oc->gen;
  inferd_status st = req->status;
  if (status_is_ok(&st) && g->finish == GEN_FINISH_ERROR) st = status_make(INFERD_INTERNAL, "the generation failed");
  if (!status_is_ok(&st)) {
    set_error(c, oc->kind, &st, NULL);
    http_call_reply_async(c);
    return;
  }
  const char *text = g->text ? g->text : "";
  size_t len = g->text ? g->text_len : 0;
  json_t *doc;
  if (oc->kind == OA_TRITON) {
    doc = triton_doc(oc, text, len);
    json_object_set_new(doc, "finish_reason", json_string(finish_reason(g->finish)));
    json_object_set_new(doc, "usage", usage_json(g));
  } else {
    json_t *lp = oc->logprobs ? json_incref(oc->logprobs) : json_null();
    json_t *choice = oc->kind == OA_CHAT
                         ? json_pack("{sI s{ss ss% sn} so ss}", "index", (json_int_t)0, "message", "role", "assistant", "content", text, len,
                                     "refusal", "logprobs", lp, "finish_reason", finish_reason(g->finish))
                         : json_pack("{sI ss% so ss}", "index", (json_int_t)0, "text", text, len, "logprobs", lp, "finish_reason",
                                     finish_reason(g->finish));
    doc = json_pack("{ss ss sI ss s[o] so}", "id", oc->id, "object", oc->kind == OA_CHAT ? "chat.completion" : "text_completion",
                    "created", (json_int_t)oc->created, "model", oc->model, "choices", choice, "usage", usage_json(g));
  }
  http_call_set_json(c, 200, doc);
  http_call_reply_async(c);
}

/* The generation's completion (the engine's thread): the final event. */
static void on_generated(infer_request *req, void *user) {
  oa_call *oc = user;
  http_call *c = oc->http;
  /* usage reaches the access log however the generation ended, a client gone included */
  c->has_usage = true;
  c->prompt_tokens = oc->gen.prompt_tokens;
  c->completion_tokens = oc->gen.completion_tokens;
  if (oc->stream)
    finish_stream(oc, req);
  else
    finish_plain(oc, req);
  infer_request_destroy(req);
  oa_unref(oc);
}

static void on_completing(void *ctx, void *arg, const inferd_status *st) {
  (void)arg;
  (void)st;
  oa_call *oc = ctx;
  pthread_mutex_lock(&oc->mu);
  oc->completing = true;
  pthread_mutex_unlock(&oc->mu);
}

/* serve's decode stage: the routed version is known. */
static inferd_status gen_decode(serve_request *sr, infer_request *req) {
  oa_call *oc = sr->user;
  appapi_routed(oc->http, sr);
  snprintf(oc->version, sizeof oc->version, "%s", sr->routed_version);
  oc->tok = gen_tokenizer(req->mv);
  return oc->stream ? serve_on_end(sr, on_completing, oc, NULL) : status_ok();
}

static void generate(http_call *c, oa_kind kind, const route_params *p) {
  inferd_status st = appapi_precheck(c);
  json_t *body = NULL;
  if (status_is_ok(&st)) st = appapi_parse_body(c, &body);
  if (!status_is_ok(&st)) {
    reply_error(c, kind, &st, NULL);
    return;
  }
  oa_call *oc = oa_new(c, kind, body);
  if (oc == NULL) {
    json_decref(body);
    st = status_make(INFERD_INTERNAL, "out of memory");
    reply_error(c, kind, &st, NULL);
    return;
  }
  oa_parse pp = {0};
  if (kind == OA_TRITON) {
    snprintf(oc->model, sizeof oc->model, "%s", p->model);
    oc->stream = strstr(c->path, "/generate_stream") != NULL;
  }
  st = parse_body(&pp, oc);
  if (!status_is_ok(&st)) {
    reply_error(c, kind, &st, pp.param);
    oa_free(oc);
    return;
  }
  if (oc->gen.params.logprobs && !oc->stream) oc->logprobs = new_logprobs(kind);
  oc->gen.keep_text = !oc->stream;
  if (oc->stream || oc->logprobs) {
    oc->gen.emit = on_token;
    oc->gen.emit_ctx = oc;
  }
  const char *version = p->version[0] ? p->version : http_call_header(c, "X-Model-Version");
  snprintf(c->model, sizeof c->model, "%s", oc->model);
  serve_request sr = {.model = oc->model,
                      .version = version,
                      .deadline = {.timeout_header = http_call_header(c, "X-Request-Timeout-Ms")},
                      .decode = gen_decode,
                      .on_done = on_generated,
                      .user = oc,
                      .generate = &oc->gen};
  http_call_serve_init(c, &sr);
  atomic_store(&oc->refs, 2); /* this path's and the completion's */
  st = serve_submit(c->app->serve, &sr);
  if (!status_is_ok(&st)) { /* nothing was handed over: on_done will not run */
    reply_error(c, kind, &st, NULL);
    oa_free(oc);
    return;
  }
  if (oc->stream) { /* the head goes now, before the first token (unless a token was first) */
    pthread_mutex_lock(&oc->mu);
    bool ok = oc->completing || ensure_stream(oc);
    pthread_mutex_unlock(&oc->mu);
    (void)ok; /* out of memory: the first event or the completion tries again */
  }
  oa_unref(oc);
}

void openai_chat_completions(void *call, const route_params *p) { generate(call, OA_CHAT, p); }
void openai_completions(void *call, const route_params *p) { generate(call, OA_COMPLETION, p); }
void triton_generate(void *call, const route_params *p) { generate(call, OA_TRITON, p); }

/* ---- embeddings --------------------------------------------------------------------------- */

#define EMB_MAX_INPUTS 2048

typedef struct emb_call {
  http_call *http;
  json_t *body;
  const json_t *input; /* in body */
  bool base64;
  char model[256];
  int64_t dims_wanted; /* "dimensions": 0 none */
  int64_t prompt_tokens;
  size_t n_inputs;
  const char *mask_name; /* where the attention mask went: pooling reads it back */
} emb_call;

static void emb_free(emb_call *ec) {
  json_decref(ec->body);
  free(ec);
}

/* Tokenizes every input and builds input_ids, attention_mask (and token_type_ids when the
 * model takes it) as [batch, longest] INT64, padded with 0 and mask 0. */
static inferd_status emb_decode(serve_request *sr, infer_request *req) {
  emb_call *ec = sr->user;
  model_version *mv = req->mv;
  appapi_routed(ec->http, sr);
  const tokenizer *tok = gen_tokenizer(mv);
  if (tok == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "model '%s' has no tokenizer.json: it cannot embed text", mv->model->name);
  const tensor_spec *ids_in = model_version_find_input(mv, "input_ids"), *mask_in = model_version_find_input(mv, "attention_mask"),
                    *types_in = model_version_find_input(mv, "token_type_ids");
  if (ids_in == NULL || mask_in == NULL || model_version_find_output(mv, "last_hidden_state") == NULL)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "model '%s' is not a sentence encoder: it needs inputs input_ids and attention_mask and an output "
                       "last_hidden_state",
                       mv->model->name);
  size_t n = ec->n_inputs, longest = 0;
  uint32_t **ids = calloc(n, sizeof *ids);
  size_t *lens = calloc(n, sizeof *lens);
  inferd_status st = ids && lens ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  bool single = !json_is_array(ec->input) || (json_array_size(ec->input) > 0 && json_is_integer(json_array_get(ec->input, 0)));
  for (size_t i = 0; i < n && status_is_ok(&st); i++) {
    const json_t *x = single ? ec->input : json_array_get(ec->input, i);
    if (json_is_string(x)) {
      st = tokenizer_encode(tok, json_string_value(x), json_string_length(x), &ids[i], &lens[i]);
      if (!status_is_ok(&st)) st = status_make(INFERD_INVALID_ARGUMENT, "input%s: %s", single ? "" : "[i]", st.msg);
    } else { /* token ids, checked by the route */
      lens[i] = json_array_size(x);
      ids[i] = malloc((lens[i] ? lens[i] : 1) * sizeof **ids);
      if (ids[i] == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
      for (size_t k = 0; ids[i] && k < lens[i]; k++) {
        json_int_t v = json_integer_value(json_array_get(x, k));
        if ((size_t)v >= tokenizer_vocab_size(tok))
          st = status_make(INFERD_INVALID_ARGUMENT, "input[%zu][%zu] is %lld: model '%s' has %zu token ids", single ? 0 : i, k,
                           (long long)v, mv->model->name, tokenizer_vocab_size(tok));
        ids[i][k] = (uint32_t)v;
      }
    }
    if (status_is_ok(&st) && lens[i] == 0)
      st = status_make(INFERD_INVALID_ARGUMENT, "input%s is empty: there is nothing to embed", single ? "" : "[i]");
    if (status_is_ok(&st) && lens[i] > longest) longest = lens[i];
    ec->prompt_tokens += (int64_t)lens[i];
  }
  /* the model's own bound on the sequence, when its signature fixes one */
  if (status_is_ok(&st) && ids_in->ndim >= 2 && ids_in->dims[1] > 0 && longest > (size_t)ids_in->dims[1])
    st = status_make(INFERD_INVALID_ARGUMENT, "an input is %zu tokens: model '%s' takes at most %lld", longest, mv->model->name,
                     (long long)ids_in->dims[1]);
  const tensor_spec *specs[3] = {ids_in, mask_in, types_in};
  size_t n_t = types_in ? 3 : 2;
  if (status_is_ok(&st)) {
    req->inputs = calloc(n_t, sizeof(tensor));
    if (req->inputs == NULL) st = status_make(INFERD_INTERNAL, "out of memory");
  }
  for (size_t t = 0; t < n_t && status_is_ok(&st); t++) {
    int64_t shape[2] = {(int64_t)n, (int64_t)longest};
    st = tensor_init(&req->inputs[t], specs[t]->name, DT_INT64, shape, 2);
    if (status_is_ok(&st)) st = tensor_alloc(&req->inputs[t], n * longest * sizeof(int64_t));
    if (!status_is_ok(&st)) break;
    req->n_inputs = t + 1;
    int64_t *d = (int64_t *)req->inputs[t].data;
    for (size_t i = 0; i < n; i++)
      for (size_t k = 0; k < lens[i]; k++) d[i * longest + k] = t == 0 ? (int64_t)ids[i][k] : t == 1 ? 1 : 0;
  }
  for (size_t i = 0; ids && i < n; i++) free(ids[i]);
  free(ids);
  free(lens);
  TRY(st);
  req->output_names = calloc(1, sizeof(char *));
  if (req->output_names == NULL || (req->output_names[0] = strdup("last_hidden_state")) == NULL)
    return status_make(INFERD_INTERNAL, "out of memory");
  req->n_outputs = 1;
  ec->mask_name = mask_in->name;
  return status_ok();
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *base64_floats(const float *v, size_t n) {
  const unsigned char *b = (const unsigned char *)v; /* little-endian float32, as OpenAI sends */
  size_t len = n * 4, o = 0;
  char *s = malloc(4 * ((len + 2) / 3) + 1);
  if (s == NULL) return json_null();
  for (size_t i = 0; i < len; i += 3) {
    unsigned x = (unsigned)b[i] << 16 | (i + 1 < len ? (unsigned)b[i + 1] << 8 : 0) | (i + 2 < len ? b[i + 2] : 0);
    s[o++] = B64[x >> 18 & 63];
    s[o++] = B64[x >> 12 & 63];
    s[o++] = i + 1 < len ? B64[x >> 6 & 63] : '=';
    s[o++] = i + 2 < len ? B64[x & 63] : '=';
  }
  s[o] = '\0';
  json_t *j = json_string(s);
  free(s);
  return j;
}

/* Mean of last_hidden_state over the positions the attention mask keeps, L2-normalised. */
static void on_embedded(infer_request *req, void *user) {
  emb_call *ec = user;
  http_call *c = ec->http;
  inferd_status st = req->status;
  const tensor *h = NULL, *mask = NULL;
  for (size_t i = 0; status_is_ok(&st) && i < req->n_outputs; i++)
    if (strcmp(req->output_names[i], "last_hidden_state") == 0) h = &req->outputs[i];
  for (size_t i = 0; i < req->n_inputs; i++)
    if (ec->mask_name && strcmp(req->inputs[i].name, ec->mask_name) == 0) mask = &req->inputs[i];
  if (status_is_ok(&st) && (h == NULL || mask == NULL || h->datatype != DT_FP32 || h->ndim != 3 ||
                            h->shape[0] != mask->shape[0] || h->shape[1] != mask->shape[1]))
    st = status_make(INFERD_INTERNAL, "model '%s' gave no FP32 last_hidden_state of [batch, tokens, hidden]", req->mv->model->name);
  int64_t dim = h && status_is_ok(&st) ? h->shape[2] : 0;
  if (status_is_ok(&st) && ec->dims_wanted > dim)
    st = status_make(INFERD_INVALID_ARGUMENT, "dimensions is %lld: model '%s' gives %lld", (long long)ec->dims_wanted,
                     req->mv->model->name, (long long)dim);
  if (!status_is_ok(&st)) {
    set_error(c, OA_COMPLETION, &st, st.code == INFERD_INVALID_ARGUMENT ? "dimensions" : NULL);
  } else {
    int64_t B = h->shape[0], T = h->shape[1], keep = ec->dims_wanted ? ec->dims_wanted : dim;
    const float *x = (const float *)(const void *)h->data; /* FP32 data, aligned by malloc */
    const int64_t *m = (const int64_t *)(const void *)mask->data;
    float *v = malloc((size_t)dim * sizeof *v);
    json_t *data = json_array();
    for (int64_t b = 0; v && b < B; b++) {
      double count = 0;
      for (int64_t d = 0; d < dim; d++) v[d] = 0;
      for (int64_t t = 0; t < T; t++) {
        if (!m[b * T + t]) continue;
        count++;
        for (int64_t d = 0; d < dim; d++) v[d] += x[(b * T + t) * dim + d];
      }
      double norm = 0;
      for (int64_t d = 0; d < keep; d++) { /* (a shortened embedding is normalised again, as OpenAI's) */
        v[d] = (float)(v[d] / (count > 0 ? count : 1));
        norm += (double)v[d] * v[d];
      }
      norm = sqrt(norm);
      for (int64_t d = 0; d < keep; d++) v[d] = norm > 0 ? (float)(v[d] / norm) : 0.0f;
      json_t *emb;
      if (ec->base64) {
        emb = base64_floats(v, (size_t)keep);
      } else {
        emb = json_array();
        for (int64_t d = 0; d < keep; d++) json_array_append_new(emb, json_real(v[d]));
      }
      json_array_append_new(data, json_pack("{ss sI so}", "object", "embedding", "index", (json_int_t)b, "embedding", emb));
    }
    free(v);
    c->has_usage = true;
    c->prompt_tokens = ec->prompt_tokens;
    c->completion_tokens = 0;
    http_call_set_json(c, 200, json_pack("{ss so ss s{sI sI}}", "object", "list", "data", data, "model", ec->model, "usage",
                                         "prompt_tokens", (json_int_t)ec->prompt_tokens, "total_tokens",
                                         (json_int_t)ec->prompt_tokens));
  }
  infer_request_destroy(req);
  emb_free(ec);
  http_call_reply_async(c);
}

void openai_embeddings(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  inferd_status st = appapi_precheck(c);
  json_t *body = NULL;
  if (status_is_ok(&st)) st = appapi_parse_body(c, &body);
  if (!status_is_ok(&st)) {
    reply_error(c, OA_COMPLETION, &st, NULL);
    return;
  }
  emb_call *ec = calloc(1, sizeof *ec);
  if (ec == NULL) {
    json_decref(body);
    st = status_make(INFERD_INTERNAL, "out of memory");
    reply_error(c, OA_COMPLETION, &st, NULL);
    return;
  }
  ec->http = c;
  ec->body = body;
  oa_parse pp = {0};
  const json_t *model = json_object_get(body, "model"), *input = json_object_get(body, "input"),
               *fmt = json_object_get(body, "encoding_format");
  bool given = false;
  json_int_t dims = 0;
  if (!json_is_string(model) || json_string_length(model) == 0 || json_string_length(model) >= sizeof ec->model)
    st = BAD(&pp, "model", "model must be a non-empty string naming the model (at most 255 bytes)");
  else if (present(fmt) && !(json_is_string(fmt) && (strcmp(json_string_value(fmt), "float") == 0 ||
                                                    strcmp(json_string_value(fmt), "base64") == 0)))
    st = BAD(&pp, "encoding_format", "encoding_format must be \"float\" or \"base64\"");
  else
    st = get_int(&pp, body, "dimensions", "dimensions", &dims, &given);
  if (status_is_ok(&st) && given && dims < 1) st = BAD(&pp, "dimensions", "dimensions is %lld: it must be at least 1", (long long)dims);
  /* input: a string, an array of strings, an array of token ids, an array of arrays of ids */
  if (status_is_ok(&st)) {
    if (json_is_string(input)) {
      ec->n_inputs = 1;
    } else if (json_is_array(input) && json_array_size(input) > 0) {
      bool ids = json_is_integer(json_array_get(input, 0));
      ec->n_inputs = ids ? 1 : json_array_size(input);
      if (ec->n_inputs > EMB_MAX_INPUTS)
        st = BAD(&pp, "input", "input has %zu entries: at most %d per request", ec->n_inputs, EMB_MAX_INPUTS);
      for (size_t i = 0; status_is_ok(&st) && i < json_array_size(input); i++) {
        const json_t *x = json_array_get(input, i);
        if (ids) {
          if (!json_is_integer(x) || json_integer_value(x) < 0)
            st = BAD(&pp, "input", "input[%zu] must be a token id (an integer from 0), as input[0] is", i);
        } else if (json_is_array(x)) {
          if (json_array_size(x) == 0) st = BAD(&pp, "input", "input[%zu] is an empty array of token ids", i);
          for (size_t k = 0; status_is_ok(&st) && k < json_array_size(x); k++)
            if (!json_is_integer(json_array_get(x, k)) || json_integer_value(json_array_get(x, k)) < 0)
              st = BAD(&pp, "input", "input[%zu][%zu] must be a token id (an integer from 0)", i, k);
        } else if (!json_is_string(x)) {
          st = BAD(&pp, "input", "input[%zu] must be a string, as every entry of an array of texts", i);
        }
      }
    } else {
      st = BAD(&pp, "input", "input must be a string, an array of strings, or token ids (an array, or an array of arrays)");
    }
  }
  if (!status_is_ok(&st)) {
    reply_error(c, OA_COMPLETION, &st, pp.param);
    emb_free(ec);
    return;
  }
  snprintf(ec->model, sizeof ec->model, "%s", json_string_value(model));
  ec->input = input;
  ec->base64 = present(fmt) && strcmp(json_string_value(fmt), "base64") == 0;
  ec->dims_wanted = dims;
  st = appapi_serve(c, ec->model, NULL, emb_decode, on_embedded, ec);
  if (!status_is_ok(&st)) {
    reply_error(c, OA_COMPLETION, &st, NULL);
    emb_free(ec);
  }
}
