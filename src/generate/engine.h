/* generate/engine: text generation for generative model versions (an ONNX causal LM in Hugging
 * Face Optimum's layout + tokenizer.json + config.json "generate"): the request a frontend
 * fills, the per-token events it receives, and the tokenizer/chat-template access its routes
 * need. docs/generate.md describes the model folder; docs/architecture.md the pipeline path.
 *
 * How a generation goes through the pipeline (core/serve.h):
 *   1. The frontend fills a gen_request (below) in storage it owns until on_done, and a
 *      serve_request as for any inference, with sr->generate = &its gen_request. Its decode
 *      callback (optional) may read the routed version (req->mv) to apply the chat template
 *      or count tokens; it adds no tensors.
 *   2. serve_submit runs admit (scopes: infer:<model>, rate limits) and route (aliases,
 *      splits) as for every request; check skips the tensor validation; lookup and fork do not
 *      run for a generation. At the hand-off serve calls the engine (gen_register installed
 *      it) instead of the batch scheduler. The engine validates the request against the
 *      version (generative? prompt + max_tokens within the context? parameters in range?):
 *      a refusal ends the request there, serve_submit returns it (INVALID_ARGUMENT naming the
 *      field or what is too long) and on_done does not run.
 *   3. Accepted: serve_submit returns OK. On the version's engine thread, emit runs once per
 *      generated token (gen_event), then the request's completion runs exactly once, as for any
 *      request: end hooks, stats, completion stages, then the frontend's on_done — the final
 *      event. In on_done, gen_request's result fields (finish, usage) are filled and
 *      req->status is OK unless the generation failed (finish GEN_FINISH_ERROR).
 *   4. The client left: the frontend sets its cancel flag (serve_request.cancelled, the same
 *      flag every request has). The engine removes the sequence at its next step, frees its
 *      memory then, and completes it with finish GEN_FINISH_CANCELLED (usage = what was
 *      generated). emit returning false does the same (e.g. the frontend cannot write).
 */
#ifndef INFERD_GENERATE_ENGINE_H
#define INFERD_GENERATE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/model.h"
#include "core/status.h"
#include "generate/tokenizer.h"

struct serve;

#define GEN_MAX_STOP 4          /* stop sequences per request (OpenAI's bound) */
#define GEN_MAX_STOP_BYTES 256  /* one stop sequence's UTF-8 bytes */
#define GEN_MAX_TOP_LOGPROBS 20 /* alternatives per token (OpenAI's bound) */

/* One chat message. */
typedef struct gen_message {
  const char *role;    /* "system", "user", "assistant" (any role the template names) */
  const char *content; /* UTF-8 */
} gen_message;

/* Sampling parameters as the client sent them. gen_params_init sets every field to "not
 * given" (GEN_UNSET for integers, NAN for numbers); a frontend assigns only the fields its
 * client sent, as sent (a negative temperature is refused here, not mistaken for "not given").
 * The model's config.json generate.defaults fill what was not given, then the built-in defaults
 * (temperature 1, top_p 1, top_k off, penalties 0, max_tokens = what the context leaves).
 * Out-of-range values are refused at the hand-off with INVALID_ARGUMENT naming the field. */
#define GEN_UNSET INT64_MIN
typedef struct gen_params {
  int64_t max_tokens;       /* >= 1 */
  double temperature;       /* 0 (greedy) .. 2 */
  double top_p;             /* (0, 1] */
  int64_t top_k;            /* 0 or -1: off; k >= 1 keeps the k likeliest */
  double presence_penalty;  /* -2 .. 2 */
  double frequency_penalty; /* -2 .. 2 */
  bool has_seed;            /* the same seed and parameters give the same text */
  uint64_t seed;
  /* Generation ends before a stop sequence is produced; the stop text is not emitted. Matched
   * on the decoded text, so a stop sequence split across tokens is found. Each 1 ..
   * GEN_MAX_STOP_BYTES bytes. Borrowed pointers (alive until on_done). */
  const char *stop[GEN_MAX_STOP];
  size_t n_stop;
  bool logprobs;    /* give each token's log-probability */
  int top_logprobs; /* 0 .. GEN_MAX_TOP_LOGPROBS alternatives per token (with logprobs) */
} gen_params;

void gen_params_init(gen_params *p);

typedef enum {
  GEN_FINISH_NONE,      /* not finished (never seen in on_done) */
  GEN_FINISH_STOP,      /* an eos token or a stop sequence */
  GEN_FINISH_LENGTH,    /* max_tokens, or the context length */
  GEN_FINISH_CANCELLED, /* the client left (cancel flag) or emit returned false */
  GEN_FINISH_ERROR      /* the model run failed: req->status says why */
} gen_finish;

/* "stop", "length", "cancelled", "error" ("" for NONE): OpenAI's finish_reason words. */
const char *gen_finish_name(gen_finish f);

typedef struct gen_top_logprob {
  uint32_t id;
  float logprob;
  const char *token; /* the token's vocabulary spelling (tokenizer_id_token): byte-level, not text */
} gen_top_logprob;

/* One generated token, as emit receives it. Everything it points to lives only during the
 * call: copy what you keep. */
typedef struct gen_event {
  int64_t index;    /* 0 for the first generated token */
  uint32_t token_id;
  /* The text released by this token: the streaming decode's complete UTF-8, minus what is
   * held back while it may be the start of a stop sequence (released by a later event), minus
   * a matched stop sequence and anything after it. Often "" (an incomplete UTF-8 sequence, a
   * held prefix, an eos token). Concatenating every event's text gives the completion. */
  const char *text;
  size_t text_len;
  float logprob;    /* of token_id under the sampling distribution's logits (after temperature
                       and penalties, before top_k/top_p); 0 unless params.logprobs */
  const gen_top_logprob *top; /* params.top_logprobs of them, likeliest first */
  int n_top;
  bool last;        /* no event follows (finish says why in on_done) */
} gen_event;

/* Called on the engine's thread for each token. Must not block (post to your loop and
 * return). Return false to end the generation (treated as a cancel). */
typedef bool (*gen_emit_fn)(void *ctx, const gen_event *ev);

/* A generation request. The prompt is exactly one of: prompt_ids, messages (the chat template
 * applies), or prompt (text, encoded as is: no special tokens added). Owned by the frontend and
 * alive until on_done has run; the engine only reads the input fields and writes the results. */
typedef struct gen_request {
  /* in */
  const char *prompt; /* UTF-8 */
  size_t prompt_len;
  const uint32_t *prompt_ids;
  size_t n_prompt_ids;
  const gen_message *messages;
  size_t n_messages;
  gen_params params;
  gen_emit_fn emit; /* may be NULL (a non-streaming route reads text below) */
  void *emit_ctx;
  bool keep_text; /* also gather the whole completion into text (non-streaming routes) */
  /* out: valid in on_done */
  gen_finish finish;
  int64_t prompt_tokens;
  int64_t completion_tokens;
  char *text; /* keep_text: the completion (malloc'd, NUL-terminated; free with gen_request_clear) */
  size_t text_len;
  int64_t ttft_ns; /* hand-off to the first token; 0 when none was generated */
} gen_request;

/* Zeroes r and sets its params to "not given". */
void gen_request_init(gen_request *r);
/* Frees what the engine allocated into r (text). */
void gen_request_clear(gen_request *r);

/* Registers the version hook that loads tokenizer.json and the "generate" section and starts
 * one engine thread per generative version. Once at start, before the repository opens. */
inferd_status gen_register(void);
/* Installs the hand-off serve uses for sr->generate (serve_set_generator). Before serving. */
void gen_install(struct serve *s);
/* Server shutdown, while the frontends still deliver: the generations still running get until
 * grace_until_ns (the drain's end, monotime) to finish; then every engine ends what is left
 * (UNAVAILABLE, "the server is shutting down": a stream gets its error event) and refuses new
 * ones. Waits up to timeout_ms more for the last end to reach its frontend; returns how many had
 * not (0: all). A stream outliving the drain must not reach a frontend already freed. */
int gen_shutdown(int64_t grace_until_ns, int timeout_ms);

/* A per-caller token budget (security/limits' tokens per minute; main connects them, as the
 * layers do not see each other). take reserves the prompt + max_tokens at the hand-off (not OK:
 * the request is refused with that status, e.g. 429); give_back returns what the generation did
 * not use when it ends, however it ends. Set before serving; NULL fields: no budget. */
struct principal;
typedef struct gen_quota {
  inferd_status (*take)(void *ctx, const struct principal *p, const char *model, int64_t tokens);
  void (*give_back)(void *ctx, const struct principal *p, const char *model, int64_t tokens);
  void *ctx;
} gen_quota;
void gen_set_quota(const gen_quota *q);

/* The generation metrics as Prometheus text (main registers it as an obs_stream_collector):
 * time to first token, inter-token latency, tokens, active sequences, batch occupancy. */
void gen_metrics_write(void *ctx, FILE *f);

/* --- for the routes (any thread, the version held: req->mv in decode/on_done, or a
 * repo_acquire'd reference). Everything read here is immutable once the version is READY. --- */

/* Whether the version is a generative model (its config.json has "generate" and it loaded). */
bool gen_is_generative(const model_version *mv);

/* The version's tokenizer: a generative version's, or any version whose folder holds a
 * tokenizer.json the tokenizer supports. NULL otherwise. */
const tokenizer *gen_tokenizer(const model_version *mv);

/* The version's context length (prompt + completion tokens); 0 when not generative. */
int64_t gen_context_length(const model_version *mv);

/* Applies the version's chat template (docs/generate.md) to messages: *prompt is malloc'd UTF-8
 * (NUL-terminated) ending with the assistant's opening when add_generation_prompt.
 * INVALID_ARGUMENT naming messages[i].role when the template has no such role, or when the
 * version has no template. */
inferd_status gen_chat_prompt(const model_version *mv, const gen_message *messages, size_t n,
                              bool add_generation_prompt, char **prompt, size_t *prompt_len);

/* The number of tokens text encodes to with the version's tokenizer. */
inferd_status gen_count_tokens(const model_version *mv, const char *text, size_t len, int64_t *n);

#endif
