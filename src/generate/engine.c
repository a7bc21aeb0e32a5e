/* generate/engine: generative model versions (the version hook that reads tokenizer.json and
 * config.json "generate" and checks the ONNX signature), the hand-off serve calls for a
 * generation, and one engine thread per version that runs prefill and then every active
 * sequence's decode step in one batched Run per step (continuous batching). */
#include "generate/engine.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/infer.h"
#include "core/serve.h"
#include "generate/genconfig.h"
#include "generate/sampling.h"
#include "util/log.h"
#include "util/monotime.h"

#define GEN_MAX_LAYERS 256
/* Newcomers prefilled together in one Run, at most. On CPU a prefill's compute grows with its
 * rows, so a group's first tokens all wait for the whole group: 16 streams arriving at once had
 * a mean TTFT 30 % above one-by-one prefills as one group of 16, while one Run per newcomer cost
 * throughput in per-Run overhead; groups of 4 kept most of both (bench/RESULTS.md). */
#define GEN_PREFILL_GROUP 4

/* ---- metrics, per model name (a reloaded version keeps adding to its model's series) ---- */

static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_LAT (sizeof lat_bounds / sizeof lat_bounds[0])
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128};
#define N_BATCH (sizeof batch_bounds / sizeof batch_bounds[0])

typedef struct gen_hist {
  uint64_t b[16]; /* per bucket (not cumulative); the last is +Inf */
  uint64_t n;
  double sum;
} gen_hist;

typedef struct gen_stats {
  char model[256];
  gen_hist ttft, itl, batch;
  uint64_t prompt_tokens, completion_tokens;
  uint64_t finished[GEN_FINISH_ERROR + 1];
  int64_t active;
  struct gen_stats *next;
} gen_stats;

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;

/* Server shutdown (gen_shutdown): every engine ends its sequences and takes no more, while the
 * frontends that will deliver those ends are still running. live_sequences counts the
 * sequences handed to any engine and not yet finished, so shutdown can wait for the last. */
static atomic_bool shutting_down;
static atomic_int live_sequences;
static gen_stats *stats_list;

static gen_stats *stats_for(const char *model) {
  pthread_mutex_lock(&stats_mu);
  gen_stats *s = stats_list;
  while (s && strcmp(s->model, model) != 0) s = s->next;
  if (s == NULL && (s = calloc(1, sizeof *s)) != NULL) {
    snprintf(s->model, sizeof s->model, "%s", model);
    s->next = stats_list;
    stats_list = s;
  }
  pthread_mutex_unlock(&stats_mu);
  return s;
}

static void hist_add(gen_hist *h, const double *bounds, size_t nb, double v) {
  size_t i = 0;
  while (i < nb && v > bounds[i]) i++;
  h->b[i]++;
  h->n++;
  h->sum += v;
}

static void write_label(FILE *f, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"') fputc('\\', f);
    if (*v == '\n') {
      fputs("\\n", f);
      continue;
    }
    fputc(*v, f);
  }
}

static void write_hist(FILE *f, const char *name, const gen_stats *s, const gen_hist *h, const double *bounds,
                       size_t nb) {
  uint64_t cum = 0;
  for (size_t i = 0; i <= nb; i++) {
    cum += h->b[i];
    fprintf(f, "%s_bucket{model=\"", name);
    write_label(f, s->model);
    if (i < nb)
      fprintf(f, "\",le=\"%g\"} %" PRIu64 "\n", bounds[i], cum);
    else
      fprintf(f, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
  }
  fprintf(f, "%s_sum{model=\"", name);
  write_label(f, s->model);
  fprintf(f, "\"} %.9g\n%s_count{model=\"", h->sum, name);
  write_label(f, s->model);
  fprintf(f, "\"} %" PRIu64 "\n", h->n);
}

void gen_metrics_write(void *ctx, FILE *f) {
  (void)ctx;
  pthread_mutex_lock(&stats_mu);
  if (stats_list == NULL) {
    pthread_mutex_unlock(&stats_mu);
    return;
  }
  fputs("# HELP inferd_generate_time_to_first_token_seconds From the hand-off to the engine to the first generated token.\n"
        "# TYPE inferd_generate_time_to_first_token_seconds histogram\n", f);
  for (gen_stats *s = stats_list; s; s = s->next)
    write_hist(f, "inferd_generate_time_to_first_token_seconds", s, &s->ttft, lat_bounds, N_LAT);
  fputs("# HELP inferd_generate_inter_token_seconds Between two consecutive tokens of a sequence.\n"
        "# TYPE inferd_generate_inter_token_seconds histogram\n", f);
  for (gen_stats *s = stats_list; s; s = s->next)
    write_hist(f, "inferd_generate_inter_token_seconds", s, &s->itl, lat_bounds, N_LAT);
  fputs("# HELP inferd_generate_batch_size Sequences in each batched decode step (batch occupancy).\n"
        "# TYPE inferd_generate_batch_size histogram\n", f);
  for (gen_stats *s = stats_list; s; s = s->next)
    write_hist(f, "inferd_generate_batch_size", s, &s->batch, batch_bounds, N_BATCH);
  fputs("# HELP inferd_generate_tokens_total Tokens processed: the prompts' and the generated ones.\n"
        "# TYPE inferd_generate_tokens_total counter\n", f);
  for (gen_stats *s = stats_list; s; s = s->next) {
    fputs("inferd_generate_tokens_total{model=\"", f);
    write_label(f, s->model);
    fprintf(f, "\",kind=\"prompt\"} %" PRIu64 "\ninferd_generate_tokens_total{model=\"", s->prompt_tokens);
    write_label(f, s->model);
    fprintf(f, "\",kind=\"completion\"} %" PRIu64 "\n", s->completion_tokens);
  }
  fputs("# HELP inferd_generate_sequences_total Generations ended, by finish reason.\n"
        "# TYPE inferd_generate_sequences_total counter\n", f);
  for (gen_stats *s = stats_list; s; s = s->next)
    for (int r = GEN_FINISH_STOP; r <= GEN_FINISH_ERROR; r++) {
      fputs("inferd_generate_sequences_total{model=\"", f);
      write_label(f, s->model);
      fprintf(f, "\",finish_reason=\"%s\"} %" PRIu64 "\n", gen_finish_name((gen_finish)r), s->finished[r]);
    }
  fputs("# HELP inferd_generate_active_sequences Sequences accepted and not yet ended (decoding or waiting for a place).\n"
        "# TYPE inferd_generate_active_sequences gauge\n", f);
  for (gen_stats *s = stats_list; s; s = s->next) {
    fputs("inferd_generate_active_sequences{model=\"", f);
    write_label(f, s->model);
    fprintf(f, "\"} %" PRId64 "\n", s->active);
  }
  pthread_mutex_unlock(&stats_mu);
}

/* ---- the parts every route needs ---- */

void gen_params_init(gen_params *p) {
  memset(p, 0, sizeof *p);
  p->max_tokens = GEN_UNSET;
  p->top_k = GEN_UNSET;
  p->temperature = p->top_p = p->presence_penalty = p->frequency_penalty = NAN;
}

void gen_request_init(gen_request *r) {
  memset(r, 0, sizeof *r);
  gen_params_init(&r->params);
}

void gen_request_clear(gen_request *r) {
  free(r->text);
  r->text = NULL;
  r->text_len = 0;
}

const char *gen_finish_name(gen_finish f) {
  switch (f) {
    case GEN_FINISH_STOP: return "stop";
    case GEN_FINISH_LENGTH: return "length";
    case GEN_FINISH_CANCELLED: return "cancelled";
    case GEN_FINISH_ERROR: return "error";
    default: return "";
  }
}

/* ---- a version's generation data ---- */

/* The model's signature as the engine uses it. */
typedef struct lm_sig {
  bool kv; /* takes past_key_values.N and gives present.N */
  int n_layers;
  inferd_datatype ids_dt, mask_dt, pos_dt, kv_dt;
  bool has_mask, has_pos;
  size_t kv_elem;           /* bytes per cache element */
  int64_t kv_heads, head_dim;
  size_t n_inputs;          /* the model's inputs, all of which we fill */
  size_t n_outputs;         /* logits + the presents */
  char **out_names;         /* logits, present.0.key, present.0.value, ... */
} lm_sig;

typedef struct gen_engine gen_engine;

typedef struct gen_version {
  tokenizer *tok; /* NULL: no usable tokenizer.json (only for a version that is not generative) */
  bool generative;
  genconfig cfg;
  lm_sig sig;
  gen_stats *stats;
  gen_engine *engine;
} gen_version;

static int gen_slot = -1;
static gen_quota quota; /* set before serving, read-only after */

void gen_set_quota(const gen_quota *q) { quota = *q; }

static gen_version *version_data(const model_version *mv) { return model_version_hook_data(mv, gen_slot); }

bool gen_is_generative(const model_version *mv) {
  const gen_version *gv = version_data(mv);
  return gv && gv->generative;
}

const tokenizer *gen_tokenizer(const model_version *mv) {
  const gen_version *gv = version_data(mv);
  return gv ? gv->tok : NULL;
}

int64_t gen_context_length(const model_version *mv) {
  const gen_version *gv = version_data(mv);
  return gv && gv->generative ? gv->cfg.context_length : 0;
}

inferd_status gen_chat_prompt(const model_version *mv, const gen_message *messages, size_t n,
                              bool add_generation_prompt, char **prompt, size_t *prompt_len) {
  const gen_version *gv = version_data(mv);
  if (gv == NULL || !gv->generative)
    return status_make(INFERD_INVALID_ARGUMENT, "model '%s' is not a generative model", mv->model->name);
  return genconfig_chat(&gv->cfg, messages, n, add_generation_prompt, prompt, prompt_len);
}

inferd_status gen_count_tokens(const model_version *mv, const char *text, size_t len, int64_t *n) {
  const gen_version *gv = version_data(mv);
  if (gv == NULL || gv->tok == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "model '%s' has no tokenizer", mv->model->name);
  uint32_t *ids;
  size_t k;
  TRY(tokenizer_encode(gv->tok, text, len, &ids, &k));
  free(ids);
  *n = (int64_t)k;
  return status_ok();
}

/* ---- the signature check at load ---- */

static bool int_type(inferd_datatype dt) { return dt == DT_INT64 || dt == DT_INT32; }

/* A refusal at load: INVALID_ARGUMENT naming the model, then what is wrong (printf-style). */
__attribute__((format(printf, 2, 3))) static inferd_status refuse(const model_version *mv, const char *fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return status_make(INFERD_INVALID_ARGUMENT, "generative model '%s': %s", mv->model->name, what);
}

static inferd_status check_signature(const model_version *mv, lm_sig *sig) {
  memset(sig, 0, sizeof *sig);
  const tensor_spec *ids = model_version_find_input(mv, "input_ids");
  if (ids == NULL || !int_type(ids->datatype) || ids->ndim != 2)
    return refuse(mv, "the model must take 'input_ids' (INT64 or INT32, [batch, sequence])");
  sig->ids_dt = ids->datatype;
  const tensor_spec *mask = model_version_find_input(mv, "attention_mask");
  if (mask) {
    if (!int_type(mask->datatype) || mask->ndim != 2)
      return refuse(mv, "'attention_mask' must be INT64 or INT32 [batch, sequence]");
    sig->has_mask = true;
    sig->mask_dt = mask->datatype;
  }
  const tensor_spec *pos = model_version_find_input(mv, "position_ids");
  if (pos) {
    if (!int_type(pos->datatype) || pos->ndim != 2)
      return refuse(mv, "'position_ids' must be INT64 or INT32 [batch, sequence]");
    sig->has_pos = true;
    sig->pos_dt = pos->datatype;
  }
  const tensor_spec *logits = model_version_find_output(mv, "logits");
  if (logits == NULL || logits->datatype != DT_FP32 || logits->ndim != 3)
    return refuse(mv, "the model must give 'logits' (FP32, [batch, sequence, vocabulary])");
  /* the cache: past_key_values.N.key/value in, present.N.key/value out, N = 0 .. layers-1 */
  int layers = 0;
  for (size_t i = 0; i < mv->n_inputs; i++) {
    const char *n = mv->inputs[i].name;
    int l;
    char kind[8];
    int used = 0;
    if (sscanf(n, "past_key_values.%d.%5[a-z]%n", &l, kind, &used) == 2 && n[used] == '\0') {
      if (l < 0 || l >= GEN_MAX_LAYERS || (strcmp(kind, "key") != 0 && strcmp(kind, "value") != 0))
        return refuse(mv, "input '%s' is not past_key_values.<layer>.key/value", n);
      if (l + 1 > layers) layers = l + 1;
    } else if (strcmp(n, "input_ids") != 0 && strcmp(n, "attention_mask") != 0 && strcmp(n, "position_ids") != 0) {
      return refuse(mv, "input '%s' is not one inferd fills (input_ids, attention_mask, position_ids, "
                        "past_key_values.N.key/value)", n);
    }
  }
  sig->kv = layers > 0;
  sig->n_layers = layers;
  sig->n_inputs = mv->n_inputs;
  sig->n_outputs = 1 + 2 * (size_t)layers;
  if (sig->kv && sig->n_inputs != 1 + (size_t)sig->has_mask + (size_t)sig->has_pos + 2 * (size_t)layers)
    return refuse(mv, "the past_key_values inputs must be .key and .value for every layer from 0");
  if (sig->kv && !sig->has_mask)
    return refuse(mv, "a model with a KV cache must take 'attention_mask'");
  sig->out_names = calloc(sig->n_outputs, sizeof *sig->out_names);
  if (sig->out_names == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  sig->out_names[0] = strdup("logits");
  for (int l = 0; l < layers; l++)
    for (int k = 0; k < 2; k++) {
      char name[64], pname[64];
      snprintf(pname, sizeof pname, "past_key_values.%d.%s", l, k ? "value" : "key");
      snprintf(name, sizeof name, "present.%d.%s", l, k ? "value" : "key");
      sig->out_names[1 + 2 * l + k] = strdup(name);
      const tensor_spec *in = model_version_find_input(mv, pname);
      const tensor_spec *out = model_version_find_output(mv, name);
      if (in == NULL) return refuse(mv, "input '%s' is missing", pname);
      if (out == NULL) return refuse(mv, "output '%s' is missing (the model must give the cache back)", name);
      if (in->ndim != 4 || out->ndim != 4 || in->datatype != out->datatype || in->dims[1] <= 0 ||
          in->dims[3] <= 0)
        return refuse(mv, "'%s' must be [batch, heads, past, head_dim] with fixed heads and head_dim, as '%s' "
                          "(Optimum's layout)", pname, name);
      if (in->datatype != DT_FP32 && in->datatype != DT_FP16 && in->datatype != DT_BF16)
        return refuse(mv, "'%s' must be FP32, FP16 or BF16", pname);
      if (l == 0 && k == 0) {
        sig->kv_dt = in->datatype;
        sig->kv_heads = in->dims[1];
        sig->head_dim = in->dims[3];
      } else if (in->datatype != sig->kv_dt || in->dims[1] != sig->kv_heads || in->dims[3] != sig->head_dim) {
        return refuse(mv, "'%s' differs from past_key_values.0.key in type or shape", pname);
      }
    }
  for (size_t i = 0; i < sig->n_outputs; i++)
    if (sig->out_names[i] == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  sig->kv_elem = sig->kv ? datatype_size(sig->kv_dt) : 0;
  return status_ok();
}

static void sig_free(lm_sig *sig) {
  for (size_t i = 0; sig->out_names && i < sig->n_outputs; i++) free(sig->out_names[i]);
  free(sig->out_names);
  sig->out_names = NULL;
}

/* ---- sequences ---- */

typedef struct prefill_group prefill_group;

typedef struct gen_seq {
  struct gen_seq *next; /* the engine's waiting list */
  infer_request *req;
  gen_request *g;
  uint32_t *ids; /* the prompt, then the generated tokens */
  size_t n_ids, n_prompt;
  int64_t max_new;
  size_t cap;      /* tokens at most: the prompt + max_new */
  size_t n_cached; /* positions in the cache (models with one) */
  bool prefilled;
  /* where its cache is (models with one): row `row` of the engine's batch cache, or, between its
   * prefill and the rebuild that makes it a row (row -1), row `pre_row` of pre's presents */
  int row;
  prefill_group *pre;
  int pre_row;
  sample_params sp;
  gen_rng rng;
  sample_cand *cand;
  uint32_t *pen_scratch;
  float *logits; /* this step's row, penalised */
  size_t vocab;
  tokenizer_stream ts;
  stop_matcher stop;
  char *text;
  size_t text_cap;
  int64_t handoff_ns, last_token_ns;
  int64_t reserved; /* tokens taken from the caller's budget (gen_quota) */
} gen_seq;

/* The presents of one prefill Run (newcomers with prompts of one length), kept until the
 * rebuild of the same step has copied them into the batch cache. */
struct prefill_group {
  tensor *out; /* logits, present.0.key, ... as lm_sig.out_names */
  size_t len;  /* the prompts' length: the presents' past dimension */
};

/* One set of batch cache tensors: for each layer and {key, value} (tensor t = 2 * layer + kind),
 * a [rows, heads, len, head_dim] tensor, one after the other in data. */
typedef struct kv_set {
  uint8_t *data;
  size_t cap; /* bytes */
} kv_set;

struct gen_engine {
  model_version *mv; /* not a reference: the engine lives and dies with its version */
  gen_version *gv;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  gen_seq *wait_head, *wait_tail;
  /* the engine thread's own */
  gen_seq **active;
  int n_active;
  /* The batch's KV cache (models with one). Between decode steps it stays here: kv[cur] holds
   * `rows` rows of `len` positions (row i is the cache of active[i] after a rebuild, left padded
   * with zeros to len), and a step's Run reads kv[cur] as its pasts and writes its presents
   * straight into kv[1 - cur] (a pre-allocated output, core/backend.h), which becomes kv[cur]:
   * nothing is copied per step. Only a change of members (a newcomer after its prefill, a
   * sequence ending) copies: rebuild() gathers the members' rows into the other set. */
  kv_set kv[2];
  int cur, rows;
  size_t len;
  prefill_group *groups; /* this step's prefills (max_sequences at most) */
  int n_groups;
  gen_seq **group_buf; /* max_sequences: one prefill's newcomers */
};

static void seq_free(gen_seq *s) {
  free(s->ids);
  free(s->cand);
  free(s->pen_scratch);
  free(s->logits);
  free(s->text);
  free(s);
}

/* Ends a sequence: its memory first, then the request's completion (serve's: end hooks, stats,
 * completion stages, the frontend's on_done). */
static void seq_finish(gen_engine *e, gen_seq *s, gen_finish finish, inferd_status st) {
  gen_request *g = s->g;
  infer_request *req = s->req;
  g->finish = finish;
  if (s->reserved > 0 && quota.give_back)
    quota.give_back(quota.ctx, req->principal, e->mv->model->name, s->reserved - (int64_t)s->n_ids);
  g->prompt_tokens = (int64_t)s->n_prompt;
  g->completion_tokens = (int64_t)(s->n_ids - s->n_prompt);
  if (g->keep_text) {
    g->text = s->text;
    s->text = NULL;
    if (g->text == NULL) g->text = calloc(1, 1);
  }
  gen_stats *gs = e->gv->stats;
  if (gs) {
    pthread_mutex_lock(&stats_mu);
    gs->active--;
    gs->prompt_tokens += s->n_prompt;
    gs->completion_tokens += s->n_ids - s->n_prompt;
    gs->finished[finish]++;
    pthread_mutex_unlock(&stats_mu);
  }
  seq_free(s);
  req->status = st;
  req->batch_size = 1;
  req->on_done(req, req->user);
  atomic_fetch_sub(&live_sequences, 1);
}

static bool cancelled(const gen_seq *s) {
  return s->req->cancelled && atomic_load_explicit(s->req->cancelled, memory_order_relaxed);
}

static bool expired(const gen_seq *s, int64_t now) { return s->req->deadline_ns && now > s->req->deadline_ns; }

static bool text_append(gen_seq *s, const char *p, size_t n) {
  if (n == 0) return true;
  size_t len = s->g->text_len;
  if (len + n + 1 > s->text_cap) {
    size_t cap = s->text_cap ? s->text_cap * 2 : 256;
    while (cap < len + n + 1) cap *= 2;
    char *t = realloc(s->text, cap);
    if (t == NULL) return false;
    s->text = t;
    s->text_cap = cap;
  }
  memcpy(s->text + len, p, n);
  s->text[len + n] = '\0';
  s->g->text_len = len + n;
  return true;
}

static bool is_eos(const genconfig *c, uint32_t id) {
  for (size_t i = 0; i < c->n_eos; i++)
    if (c->eos[i] == id) return true;
  return false;
}

/* One token chosen for s from s->logits: the text it releases, the event, the end. Returns
 * true when the sequence has ended (and is freed). */
static bool seq_accept(gen_engine *e, gen_seq *s) {
  gen_request *g = s->g;
  const genconfig *c = &e->gv->cfg;
  const size_t V = s->vocab;
  sample_apply_penalties(s->logits, V, s->ids + s->n_prompt, s->n_ids - s->n_prompt, s->sp.presence_penalty,
                         s->sp.frequency_penalty, s->pen_scratch);
  uint32_t id = sample_choose(s->logits, V, &s->sp, &s->rng, s->cand);
  gen_event ev = {.index = (int64_t)(s->n_ids - s->n_prompt), .token_id = id};
  uint32_t top_ids[GEN_MAX_TOP_LOGPROBS];
  float top_lp[GEN_MAX_TOP_LOGPROBS];
  gen_top_logprob top[GEN_MAX_TOP_LOGPROBS];
  if (g->params.logprobs) {
    int n = g->params.top_logprobs;
    if ((size_t)n > V) n = (int)V;
    ev.logprob = sample_logprob(s->logits, V, s->sp.temperature, id, top_ids, top_lp, n);
    for (int i = 0; i < n; i++) {
      const char *t = tokenizer_id_token(e->gv->tok, top_ids[i]);
      top[i] = (gen_top_logprob){.id = top_ids[i], .logprob = top_lp[i], .token = t ? t : ""};
    }
    ev.top = top;
    ev.n_top = n;
  }
  s->ids[s->n_ids++] = id;
  int64_t now = monotime_ns();
  gen_stats *gs = e->gv->stats;
  if (gs) {
    pthread_mutex_lock(&stats_mu);
    if (s->n_ids - s->n_prompt == 1)
      hist_add(&gs->ttft, lat_bounds, N_LAT, (double)(now - s->handoff_ns) / 1e9);
    else
      hist_add(&gs->itl, lat_bounds, N_LAT, (double)(now - s->last_token_ns) / 1e9);
    pthread_mutex_unlock(&stats_mu);
  }
  if (s->n_ids - s->n_prompt == 1) g->ttft_ns = now - s->handoff_ns;
  s->last_token_ns = now;

  /* the text: the streaming decode's complete UTF-8, through the stop matcher */
  char piece[TOKENIZER_STREAM_MAX_OUT];
  static _Thread_local char out[STOP_MAX_BYTES + 2 * TOKENIZER_STREAM_MAX_OUT + 64];
  size_t plen = 0, olen = 0;
  gen_finish finish = GEN_FINISH_NONE;
  if (is_eos(c, id)) {
    finish = GEN_FINISH_STOP;
  } else {
    tokenizer_stream_push(&s->ts, id, piece, sizeof piece, &plen);
    if (stop_push(&s->stop, piece, plen, out, &olen)) finish = GEN_FINISH_STOP;
  }
  if (finish == GEN_FINISH_NONE &&
      ((int64_t)(s->n_ids - s->n_prompt) >= s->max_new || (int64_t)s->n_ids >= c->context_length))
    finish = GEN_FINISH_LENGTH;
  if (finish != GEN_FINISH_NONE && !s->stop.matched) {
    /* what the decoder and the matcher held is released: no stop sequence can complete now */
    tokenizer_stream_finish(&s->ts, piece, sizeof piece, &plen);
    size_t more = 0;
    if (plen) (void)stop_push(&s->stop, piece, plen, out + olen, &more);
    olen += more;
    if (!s->stop.matched) {
      stop_flush(&s->stop, out + olen, &more);
      olen += more;
    }
  }
  ev.text = out;
  ev.text_len = olen;
  out[olen] = '\0';
  ev.last = finish != GEN_FINISH_NONE;
  if (g->keep_text && !text_append(s, out, olen)) {
    seq_finish(e, s, GEN_FINISH_ERROR, status_make(INFERD_INTERNAL, "out of memory"));
    return true;
  }
  bool go_on = g->emit ? g->emit(g->emit_ctx, &ev) : true;
  if (finish != GEN_FINISH_NONE) {
    seq_finish(e, s, finish, status_ok());
    return true;
  }
  if (!go_on) {
    seq_finish(e, s, GEN_FINISH_CANCELLED, status_ok());
    return true;
  }
  return false;
}

/* ---- one Run over a batch ---- */

static void put_int(uint8_t *data, inferd_datatype dt, size_t i, int64_t v) {
  if (dt == DT_INT64)
    ((int64_t *)data)[i] = v;
  else
    ((int32_t *)data)[i] = (int32_t)v;
}

static inferd_status make_input(tensor *t, const char *name, inferd_datatype dt, const int64_t *shape, int ndim) {
  TRY(tensor_init(t, name, dt, shape, ndim));
  int64_t count;
  TRY(tensor_shape_count(shape, ndim, &count));
  return tensor_alloc(t, (size_t)count * datatype_size(dt));
}

typedef enum {
  RUN_FULL,    /* a model without a cache: each row's whole sequence, every step */
  RUN_PREFILL, /* newcomers' prompts, all of one length, with an empty past; the presents are kept */
  RUN_DECODE,  /* the batch (active[i] is row i): one new token a row, the batch cache as the pasts,
                  the presents written into the other set */
} run_kind;

/* Bytes of one [rows, heads, len, head_dim] cache tensor. */
static size_t kv_tensor_bytes(const lm_sig *sig, size_t rows, size_t len) {
  return rows * (size_t)sig->kv_heads * len * (size_t)sig->head_dim * sig->kv_elem;
}

/* At least `bytes` in k; what it held is not kept (every user overwrites all it reads). Grows
 * by half again, as each decode step needs one position more than the last. */
static bool kv_reserve(kv_set *k, size_t bytes) {
  if (k->cap >= bytes) return true;
  size_t cap = bytes + bytes / 2;
  uint8_t *d = malloc(cap);
  if (d == NULL) return false;
  free(k->data);
  k->data = d;
  k->cap = cap;
  return true;
}

/* The batch is empty: an idle engine holds no cache memory. */
static void kv_release(gen_engine *e) {
  for (int i = 0; i < 2; i++) {
    free(e->kv[i].data);
    e->kv[i] = (kv_set){0};
  }
  e->rows = 0;
  e->len = 0;
}

static void groups_free(gen_engine *e) {
  for (int i = 0; i < e->n_groups; i++) tensors_free(e->groups[i].out, e->gv->sig.n_outputs);
  e->n_groups = 0;
}

/* Runs the model over seqs[0..B) and leaves each one's next-token logits in its ->logits.
 * Each row's input is its tokens not yet in the cache (all its tokens without a cache), left
 * padded to the longest; attention_mask marks what is real (in the past: the row's last
 * n_cached of the batch's len positions), position_ids count each row's own positions, so a
 * row computes what it would alone. RUN_PREFILL hands its outputs (logits and presents) to
 * *kept; RUN_DECODE leaves the new cache in kv[cur] (swapped) with len + 1 positions. */
static inferd_status run_batch(gen_engine *e, gen_seq **seqs, int B, run_kind kind, tensor **kept) {
  const lm_sig *sig = &e->gv->sig;
  const model_version *mv = e->mv;
  const size_t L = kind == RUN_DECODE ? e->len : 0;
  size_t S = 0;
  for (int b = 0; b < B; b++) {
    size_t n_new = seqs[b]->n_ids - (kind == RUN_DECODE ? seqs[b]->n_cached : 0);
    if (n_new > S) S = n_new;
  }
  const size_t H = (size_t)sig->kv_heads, D = (size_t)sig->head_dim;
  tensor *in = calloc(sig->n_inputs, sizeof *in);
  tensor *out = calloc(sig->n_outputs, sizeof *out);
  inferd_status st = in && out ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  if (status_is_ok(&st) && kind == RUN_DECODE &&
      !kv_reserve(&e->kv[1 - e->cur], 2 * (size_t)sig->n_layers * kv_tensor_bytes(sig, (size_t)B, L + 1)))
    st = status_make(INFERD_RESOURCE_EXHAUSTED, "no memory for the KV cache of %d sequences", B);
  for (size_t i = 0; i < sig->n_inputs && status_is_ok(&st); i++) {
    const tensor_spec *spec = &mv->inputs[i];
    const char *name = spec->name;
    tensor *t = &in[i];
    if (strcmp(name, "input_ids") == 0 || strcmp(name, "position_ids") == 0) {
      bool ids = name[0] == 'i';
      int64_t shape[2] = {B, (int64_t)S};
      st = make_input(t, name, spec->datatype, shape, 2);
      for (int b = 0; b < B && status_is_ok(&st); b++) {
        const gen_seq *s = seqs[b];
        size_t past = kind == RUN_DECODE ? s->n_cached : 0, n_new = s->n_ids - past;
        for (size_t j = 0; j < n_new; j++)
          put_int(t->data, spec->datatype, (size_t)b * S + (S - n_new) + j,
                  ids ? (int64_t)s->ids[past + j] : (int64_t)(past + j));
      }
    } else if (strcmp(name, "attention_mask") == 0) {
      int64_t shape[2] = {B, (int64_t)(L + S)};
      st = make_input(t, name, spec->datatype, shape, 2);
      for (int b = 0; b < B && status_is_ok(&st); b++) {
        const gen_seq *s = seqs[b];
        size_t past = kind == RUN_DECODE ? s->n_cached : 0, n_new = s->n_ids - past;
        for (size_t j = L - past; j < L; j++) put_int(t->data, spec->datatype, (size_t)b * (L + S) + j, 1);
        for (size_t j = L + S - n_new; j < L + S; j++) put_int(t->data, spec->datatype, (size_t)b * (L + S) + j, 1);
      }
    } else {
      int layer = 0;
      char kindname[8] = "";
      sscanf(name, "past_key_values.%d.%5[a-z]", &layer, kindname);
      size_t ti = 2 * (size_t)layer + (strcmp(kindname, "value") == 0);
      int64_t shape[4] = {B, (int64_t)H, (int64_t)L, (int64_t)D};
      if (kind != RUN_DECODE) {
        st = make_input(t, name, spec->datatype, shape, 4); /* empty */
      } else {
        /* the batch cache itself, read in place (the data is not the tensor's: unset below) */
        st = tensor_init(t, name, spec->datatype, shape, 4);
        t->byte_size = kv_tensor_bytes(sig, (size_t)B, L);
        t->data = e->kv[e->cur].data + ti * t->byte_size;
      }
    }
  }
  if (status_is_ok(&st) && kind == RUN_DECODE)
    for (size_t i = 1; i < sig->n_outputs; i++) {
      /* pre-allocated outputs: the presents go straight into the other set */
      tensor *p = &out[i];
      p->datatype = sig->kv_dt;
      p->ndim = 4;
      p->shape[0] = B;
      p->shape[1] = (int64_t)H;
      p->shape[2] = (int64_t)(L + 1);
      p->shape[3] = (int64_t)D;
      p->byte_size = kv_tensor_bytes(sig, (size_t)B, L + 1);
      p->data = e->kv[1 - e->cur].data + (i - 1) * p->byte_size;
    }
  if (status_is_ok(&st))
    st = mv->backend->run(mv->backend_model, in, sig->n_inputs, (const char *const *)sig->out_names, sig->n_outputs,
                          out);
  if (status_is_ok(&st)) {
    const tensor *lg = &out[0];
    if (lg->datatype != DT_FP32 || lg->ndim != 3 || lg->shape[0] != B || lg->shape[1] != (int64_t)S ||
        lg->shape[2] <= 0)
      st = status_make(INFERD_INTERNAL, "model '%s' gave logits of an unexpected shape", mv->model->name);
    for (size_t i = 1; i < sig->n_outputs && status_is_ok(&st); i++) {
      const tensor *p = &out[i];
      if (p->datatype != sig->kv_dt || p->ndim != 4 || p->shape[0] != B || p->shape[1] != (int64_t)H ||
          p->shape[2] != (int64_t)(L + S) || p->shape[3] != (int64_t)D)
        st = status_make(INFERD_INTERNAL, "model '%s' gave '%s' of an unexpected shape (past %zu + %zu new)",
                         mv->model->name, sig->out_names[i], L, S);
    }
  }
  for (int b = 0; b < B && status_is_ok(&st); b++) {
    gen_seq *s = seqs[b];
    size_t V = (size_t)out[0].shape[2];
    if (s->logits == NULL || s->vocab != V) {
      free(s->logits);
      free(s->cand);
      s->vocab = V;
      s->logits = malloc(V * sizeof *s->logits);
      s->cand = malloc(V * sizeof *s->cand);
      if (!s->logits || !s->cand) {
        st = status_make(INFERD_INTERNAL, "out of memory");
        break;
      }
    }
    memcpy(s->logits, out[0].data + ((size_t)b * S + S - 1) * V * sizeof(float), V * sizeof(float));
  }
  if (kind == RUN_DECODE) {
    for (size_t i = 0; in && i < sig->n_inputs; i++)
      if (strncmp(mv->inputs[i].name, "past_key_values.", 16) == 0) in[i].data = NULL;
    for (size_t i = 1; out && i < sig->n_outputs; i++) out[i].data = NULL;
    if (status_is_ok(&st)) {
      e->cur = 1 - e->cur;
      e->len = L + 1;
      for (int b = 0; b < B; b++) seqs[b]->n_cached++;
    }
  } else if (kind == RUN_PREFILL && status_is_ok(&st)) {
    *kept = out;
    out = NULL;
  }
  if (in) tensors_free(in, sig->n_inputs);
  if (out) tensors_free(out, sig->n_outputs);
  return st;
}

/* ---- the batch cache's members ---- */

/* Whether the members changed since the last rebuild or step: someone left (rows no longer
 * active[i] for row i) or joined (row -1). */
static bool needs_rebuild(const gen_engine *e) {
  if (e->n_active != e->rows) return true;
  for (int i = 0; i < e->n_active; i++)
    if (e->active[i]->row != i) return true;
  return false;
}

/* Gathers the members (active[0..n_active), all prefilled) into the other cache set: row i is
 * active[i]'s cache, right-aligned to the longest member's length and left padded with zeros
 * (finite: a masked position's weight is exactly 0, and 0 x NaN would not be), so padding that
 * every row had is gone. A row comes from kv[cur] where it was a row, a newcomer's from its
 * prefill's presents. The copy the engine used to make every step, made only when the members
 * change. False: out of memory (the cache is as it was). */
static bool rebuild(gen_engine *e) {
  const lm_sig *sig = &e->gv->sig;
  const int B = e->n_active;
  size_t L = 0;
  for (int b = 0; b < B; b++)
    if (e->active[b]->n_cached > L) L = e->active[b]->n_cached;
  if (B == 0) {
    kv_release(e);
    return true;
  }
  const size_t H = (size_t)sig->kv_heads, pos = (size_t)sig->head_dim * sig->kv_elem, T = 2 * (size_t)sig->n_layers;
  kv_set *dst = &e->kv[1 - e->cur];
  if (!kv_reserve(dst, T * kv_tensor_bytes(sig, (size_t)B, L))) return false;
  const uint8_t *old = e->kv[e->cur].data;
  for (size_t t = 0; t < T; t++) {
    uint8_t *to = dst->data + t * kv_tensor_bytes(sig, (size_t)B, L);
    for (int b = 0; b < B; b++) {
      const gen_seq *s = e->active[b];
      const size_t n = s->n_cached;
      const uint8_t *from; /* the row's [heads, from_len, head_dim] block */
      size_t from_len;
      if (s->row >= 0) {
        from_len = e->len;
        from = old + t * kv_tensor_bytes(sig, (size_t)e->rows, e->len) + (size_t)s->row * H * from_len * pos;
      } else {
        from_len = s->pre->len;
        from = s->pre->out[1 + t].data + (size_t)s->pre_row * H * from_len * pos;
      }
      for (size_t h = 0; h < H; h++) {
        uint8_t *d = to + ((size_t)b * H + h) * L * pos;
        memset(d, 0, (L - n) * pos);
        memcpy(d + (L - n) * pos, from + (h * from_len + from_len - n) * pos, n * pos);
      }
    }
  }
  e->cur = 1 - e->cur;
  e->rows = B;
  e->len = L;
  for (int b = 0; b < B; b++) {
    e->active[b]->row = b;
    e->active[b]->pre = NULL;
  }
  return true;
}

/* ---- the engine thread ---- */

static void remove_at(gen_engine *e, int i) {
  e->active[i] = e->active[--e->n_active];
}

static int index_of(const gen_engine *e, const gen_seq *s) {
  for (int i = 0; i < e->n_active; i++)
    if (e->active[i] == s) return i;
  return -1;
}

/* Prefills the newcomers: up to GEN_PREFILL_GROUP whose prompts have one length together in one
 * Run (no padding, so each row computes exactly what it would alone: a left-padded prompt
 * position would attend to nothing, which some exports turn into NaN that the next layer's keys
 * carry to the real positions). Each takes its first token; its presents wait in e->groups for
 * the rebuild. */
static void prefill_newcomers(gen_engine *e) {
  const lm_sig *sig = &e->gv->sig;
  gen_seq **group = e->group_buf;
  for (;;) {
    int n = 0;
    size_t len = 0;
    for (int i = 0; i < e->n_active; i++) {
      gen_seq *s = e->active[i];
      if (s->prefilled || (n > 0 && s->n_ids != len) || n >= GEN_PREFILL_GROUP) continue;
      len = s->n_ids;
      group[n++] = s;
    }
    if (n == 0) return;
    tensor *kept = NULL;
    for (int b = 0; b < n; b++) group[b]->prefilled = true;
    inferd_status st = run_batch(e, group, n, sig->kv ? RUN_PREFILL : RUN_FULL, &kept);
    if (status_is_ok(&st) && sig->kv) {
      prefill_group *g = &e->groups[e->n_groups++];
      g->out = kept;
      g->len = len;
      for (int b = 0; b < n; b++) {
        group[b]->pre = g;
        group[b]->pre_row = b;
        group[b]->row = -1;
        group[b]->n_cached = len;
      }
    }
    for (int b = 0; b < n; b++) {
      gen_seq *s = group[b];
      int i = index_of(e, s);
      if (!status_is_ok(&st)) {
        remove_at(e, i);
        seq_finish(e, s, GEN_FINISH_ERROR, st);
      } else if (seq_accept(e, s)) {
        remove_at(e, i);
      }
    }
  }
}

/* One step: the ones whose client left end, the newcomers prefill, the batch cache is rebuilt if
 * its members changed, then one decode Run for every member together. */
static void engine_step(gen_engine *e) {
  const lm_sig *sig = &e->gv->sig;
  /* the sequences whose client left, or whose deadline passed, end first: their memory is
   * freed before this step runs */
  int64_t now = monotime_ns();
  for (int i = 0; i < e->n_active;) {
    gen_seq *s = e->active[i];
    if (cancelled(s)) {
      remove_at(e, i);
      seq_finish(e, s, GEN_FINISH_CANCELLED, status_ok());
    } else if (expired(s, now)) {
      remove_at(e, i);
      seq_finish(e, s, GEN_FINISH_ERROR,
                 status_make(INFERD_DEADLINE_EXCEEDED, "the request's deadline passed after %" PRId64 " tokens",
                             (int64_t)(s->n_ids - s->n_prompt)));
    } else {
      i++;
    }
  }
  prefill_newcomers(e);
  if (sig->kv && needs_rebuild(e) && !rebuild(e)) {
    while (e->n_active > 0) {
      gen_seq *s = e->active[--e->n_active];
      seq_finish(e, s, GEN_FINISH_ERROR,
                 status_make(INFERD_RESOURCE_EXHAUSTED, "no memory for the KV cache of the batch"));
    }
  }
  groups_free(e);
  if (e->n_active == 0) {
    kv_release(e);
    return;
  }
  /* one decode step for all of them together */
  int B = e->n_active;
  if (e->gv->stats) {
    pthread_mutex_lock(&stats_mu);
    hist_add(&e->gv->stats->batch, batch_bounds, N_BATCH, (double)B);
    pthread_mutex_unlock(&stats_mu);
  }
  int64_t t0 = monotime_ns();
  inferd_status st = run_batch(e, e->active, B, sig->kv ? RUN_DECODE : RUN_FULL, NULL);
  stats_record_execution(&e->mv->stats, B, 0, monotime_ns() - t0, 0);
  for (int i = 0; i < e->n_active;) {
    gen_seq *s = e->active[i];
    if (!status_is_ok(&st)) {
      remove_at(e, i);
      seq_finish(e, s, GEN_FINISH_ERROR, st);
    } else if (seq_accept(e, s)) {
      remove_at(e, i);
    } else {
      i++;
    }
  }
  if (e->n_active == 0) kv_release(e);
}

static void *engine_main(void *arg) {
  gen_engine *e = arg;
  pthread_mutex_lock(&e->mu);
  for (;;) {
    int max = e->gv->cfg.max_sequences;
    while (e->wait_head && e->n_active < max) {
      gen_seq *s = e->wait_head;
      e->wait_head = s->next;
      if (e->wait_head == NULL) e->wait_tail = NULL;
      s->next = NULL;
      e->active[e->n_active++] = s;
    }
    /* the waiting ones whose client left end now too, without waiting for a place */
    /* closing: the version unloads (stop: the thread ends) or the server shuts down (the
     * thread stays, taking nothing, until its version unloads) */
    bool closing = e->stop || atomic_load(&shutting_down);
    int64_t now = monotime_ns();
    gen_seq *gone = NULL, **pp = &e->wait_head;
    e->wait_tail = NULL;
    while (*pp) {
      gen_seq *s = *pp;
      if (cancelled(s) || closing || expired(s, now)) {
        *pp = s->next;
        s->next = gone;
        gone = s;
      } else {
        e->wait_tail = s;
        pp = &s->next;
      }
    }
    bool stop = e->stop;
    if (!stop && e->n_active == 0 && gone == NULL) {
      pthread_cond_wait(&e->cv, &e->mu);
      continue;
    }
    pthread_mutex_unlock(&e->mu);
    const char *why = stop ? "the model is unloading" : "the server is shutting down";
    while (gone) {
      gen_seq *s = gone;
      gone = s->next;
      if (cancelled(s))
        seq_finish(e, s, GEN_FINISH_CANCELLED, status_ok());
      else if (closing)
        seq_finish(e, s, GEN_FINISH_ERROR, status_make(INFERD_UNAVAILABLE, "%s", why));
      else
        seq_finish(e, s, GEN_FINISH_ERROR,
                   status_make(INFERD_DEADLINE_EXCEEDED,
                               "the request's deadline passed while it waited for a place in the batch "
                               "(max_sequences %d, all busy)", max));
    }
    if (closing) {
      while (e->n_active > 0) {
        gen_seq *s = e->active[--e->n_active];
        seq_finish(e, s, GEN_FINISH_ERROR, status_make(INFERD_UNAVAILABLE, "%s", why));
      }
      if (stop) return NULL;
      pthread_mutex_lock(&e->mu);
      continue;
    }
    engine_step(e);
    pthread_mutex_lock(&e->mu);
  }
}

static inferd_status engine_start(model_version *mv, gen_version *gv) {
  gen_engine *e = calloc(1, sizeof *e);
  if (e == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  e->mv = mv;
  e->gv = gv;
  const size_t max = (size_t)gv->cfg.max_sequences;
  e->active = calloc(max, sizeof *e->active);
  e->group_buf = calloc(max, sizeof *e->group_buf);
  e->groups = calloc(max, sizeof *e->groups);
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  if (e->active == NULL || e->group_buf == NULL || e->groups == NULL ||
      pthread_create(&e->thread, NULL, engine_main, e) != 0) {
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->active);
    free(e->group_buf);
    free(e->groups);
    free(e);
    return status_make(INFERD_INTERNAL, "cannot start the generation thread");
  }
  char name[16];
  snprintf(name, sizeof name, "gen-engine");
  pthread_setname_np(e->thread, name);
  gv->engine = e;
  return status_ok();
}

static void engine_stop(gen_engine *e) {
  if (e == NULL) return;
  pthread_mutex_lock(&e->mu);
  e->stop = true;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->thread, NULL);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  kv_release(e);
  free(e->active);
  free(e->group_buf);
  free(e->groups);
  free(e);
}

/* ---- the version hook ---- */

static void folder_of(const char *path, char *dir, size_t len) {
  snprintf(dir, len, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
}

/* tokenizer.json in the version's folder, else the model's. */
static inferd_status load_tokenizer(const model_version *mv, bool required, tokenizer **out) {
  char dir[4096], path[4200];
  *out = NULL;
  folder_of(mv->path, dir, sizeof dir);
  for (int up = 0; up < 2; up++) {
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) == 0) {
      inferd_status st = tokenizer_load_file(path, out);
      if (!status_is_ok(&st) && !required) return status_ok(); /* not ours to refuse */
      return st;
    }
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
  }
  if (required)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "generative model '%s': no tokenizer.json in the version's folder or the model's",
                       mv->model->name);
  return status_ok();
}

static void hook_unload(model_version *mv, void *data) {
  (void)mv;
  gen_version *gv = data;
  if (gv == NULL) return;
  engine_stop(gv->engine);
  tokenizer_destroy(gv->tok);
  genconfig_free(&gv->cfg);
  sig_free(&gv->sig);
  free(gv);
}

static inferd_status hook_load(model_version *mv, void **data) {
  *data = NULL;
  const json_t *section = mv->model->config->generate;
  gen_version *gv = calloc(1, sizeof *gv);
  if (gv == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = load_tokenizer(mv, section != NULL, &gv->tok);
  if (status_is_ok(&st) && section) {
    gv->generative = true;
    st = genconfig_parse(section, &gv->cfg);
    if (status_is_ok(&st)) st = check_signature(mv, &gv->sig);
    if (status_is_ok(&st) && gv->cfg.context_length == 0)
      st = status_make(INFERD_INVALID_ARGUMENT, "config.json: generate.context_length is required (the model's "
                                                "longest prompt + completion, in tokens)");
    if (status_is_ok(&st) && mv->model->config->max_batch_size > 0)
      st = status_make(INFERD_INVALID_ARGUMENT, "config.json: a generative model batches its own decode steps: "
                                                "max_batch_size must be 0 (the signature's batch dimension is the model's)");
    size_t vocab = status_is_ok(&st) ? tokenizer_vocab_size(gv->tok) : 0;
    for (size_t i = 0; status_is_ok(&st) && i < gv->cfg.n_eos; i++)
      if (gv->cfg.eos[i] >= vocab)
        st = status_make(INFERD_INVALID_ARGUMENT, "config.json: generate.eos_token_ids has %u, which the tokenizer's "
                                                  "%zu ids do not include", gv->cfg.eos[i], vocab);
    if (status_is_ok(&st)) gv->stats = stats_for(mv->model->name);
    if (status_is_ok(&st)) st = engine_start(mv, gv);
  }
  if (!status_is_ok(&st)) {
    hook_unload(mv, gv);
    return st;
  }
  *data = gv;
  return status_ok();
}

inferd_status gen_register(void) {
  static const model_version_hook hook = {.name = "generate", .load = hook_load, .unload = hook_unload};
  if (gen_slot >= 0) return status_ok();
  gen_slot = model_version_hook_register(&hook);
  return gen_slot >= 0 ? status_ok() : status_make(INFERD_INTERNAL, "too many version hooks");
}

/* ---- the hand-off (serve's generator), on the frontend's thread ---- */

static inferd_status resolve_params(const gen_params *in, const genconfig *c, const char *model, sample_params *sp,
                                    int64_t *max_tokens) {
  const gen_params *d = &c->defaults;
#define PICK(f) (!isnan(in->f) ? in->f : !isnan(d->f) ? d->f : NAN)
  double t = PICK(temperature), p = PICK(top_p), pp = PICK(presence_penalty), fp = PICK(frequency_penalty);
#undef PICK
  if (!isnan(in->temperature) && !(in->temperature >= 0 && in->temperature <= 2))
    return status_make(INFERD_INVALID_ARGUMENT, "temperature must be between 0 and 2");
  if (!isnan(in->top_p) && !(in->top_p > 0 && in->top_p <= 1))
    return status_make(INFERD_INVALID_ARGUMENT, "top_p must be more than 0 and at most 1");
  if (!isnan(in->presence_penalty) && !(in->presence_penalty >= -2 && in->presence_penalty <= 2))
    return status_make(INFERD_INVALID_ARGUMENT, "presence_penalty must be between -2 and 2");
  if (!isnan(in->frequency_penalty) && !(in->frequency_penalty >= -2 && in->frequency_penalty <= 2))
    return status_make(INFERD_INVALID_ARGUMENT, "frequency_penalty must be between -2 and 2");
  if (in->top_k != GEN_UNSET && (in->top_k < -1 || in->top_k > INT32_MAX))
    return status_make(INFERD_INVALID_ARGUMENT, "top_k must be -1 or 0 (off) or a positive count");
  if (in->max_tokens != GEN_UNSET && in->max_tokens < 1)
    return status_make(INFERD_INVALID_ARGUMENT, "max_tokens must be at least 1");
  if (in->top_logprobs < 0 || in->top_logprobs > GEN_MAX_TOP_LOGPROBS)
    return status_make(INFERD_INVALID_ARGUMENT, "top_logprobs must be from 0 to %d", GEN_MAX_TOP_LOGPROBS);
  if (in->top_logprobs > 0 && !in->logprobs)
    return status_make(INFERD_INVALID_ARGUMENT, "top_logprobs needs logprobs to be true");
  if (in->n_stop > GEN_MAX_STOP)
    return status_make(INFERD_INVALID_ARGUMENT, "stop has %zu sequences; at most %d", in->n_stop, GEN_MAX_STOP);
  for (size_t i = 0; i < in->n_stop; i++) {
    size_t len = in->stop[i] ? strlen(in->stop[i]) : 0;
    if (len == 0 || len > GEN_MAX_STOP_BYTES)
      return status_make(INFERD_INVALID_ARGUMENT, "stop[%zu] must be 1 to %d bytes", i, GEN_MAX_STOP_BYTES);
  }
  int64_t k = in->top_k != GEN_UNSET ? in->top_k : d->top_k != GEN_UNSET ? d->top_k : 0;
  sp->temperature = isnan(t) ? 1 : t;
  sp->top_p = isnan(p) ? 1 : p;
  sp->top_k = k < 0 ? 0 : k;
  sp->presence_penalty = isnan(pp) ? 0 : pp;
  sp->frequency_penalty = isnan(fp) ? 0 : fp;
  *max_tokens = in->max_tokens != GEN_UNSET ? in->max_tokens : d->max_tokens;
  (void)model;
  return status_ok();
}

static uint64_t fresh_seed(void) {
  static atomic_uint_fast64_t counter;
  uint64_t x = (uint64_t)monotime_ns() ^ ((uint64_t)getpid() << 32) ^
               (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ULL);
  return x;
}

static inferd_status prompt_ids(const gen_version *gv, const model_version *mv, const gen_request *g,
                                uint32_t **ids, size_t *n) {
  int given = (g->prompt != NULL) + (g->prompt_ids != NULL) + (g->messages != NULL);
  if (given != 1)
    return status_make(INFERD_INVALID_ARGUMENT, given ? "give one prompt: text, token ids or messages, not several"
                                                      : "the prompt is required");
  *ids = NULL;
  *n = 0;
  if (g->prompt_ids) {
    size_t V = tokenizer_vocab_size(gv->tok);
    for (size_t i = 0; i < g->n_prompt_ids; i++)
      if (g->prompt_ids[i] >= V)
        return status_make(INFERD_INVALID_ARGUMENT, "prompt token %zu is %u, not one of the model's %zu token ids", i,
                           g->prompt_ids[i], V);
    if (g->n_prompt_ids) {
      *ids = malloc(g->n_prompt_ids * sizeof **ids);
      if (*ids == NULL) return status_make(INFERD_INTERNAL, "out of memory");
      memcpy(*ids, g->prompt_ids, g->n_prompt_ids * sizeof **ids);
    }
    *n = g->n_prompt_ids;
    return status_ok();
  }
  if (g->messages) {
    char *text;
    size_t len;
    TRY(genconfig_chat(&gv->cfg, g->messages, g->n_messages, true, &text, &len));
    inferd_status st = tokenizer_encode(gv->tok, text, len, ids, n);
    free(text);
    return st;
  }
  (void)mv;
  return tokenizer_encode(gv->tok, g->prompt, g->prompt_len, ids, n);
}

static inferd_status handoff(void *ctx, infer_request *req) {
  (void)ctx;
  model_version *mv = req->mv;
  gen_version *gv = version_data(mv);
  gen_request *g = req->generate;
  if (gv == NULL || !gv->generative)
    return status_make(INFERD_INVALID_ARGUMENT, "model '%s' is not a generative model", mv->model->name);
  gen_seq *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  int64_t max_tokens = GEN_UNSET;
  inferd_status st = resolve_params(&g->params, &gv->cfg, mv->model->name, &s->sp, &max_tokens);
  uint32_t *ids = NULL;
  size_t n = 0;
  if (status_is_ok(&st)) st = prompt_ids(gv, mv, g, &ids, &n);
  const int64_t ctxlen = gv->cfg.context_length;
  if (status_is_ok(&st) && n == 0) st = status_make(INFERD_INVALID_ARGUMENT, "the prompt is empty (0 tokens)");
  if (status_is_ok(&st) && (int64_t)n >= ctxlen)
    st = status_make(INFERD_INVALID_ARGUMENT,
                     "the prompt is too long: %zu tokens, and model '%s' has a context length of %" PRId64
                     " tokens (prompt + completion)", n, mv->model->name, ctxlen);
  if (status_is_ok(&st) && g->params.max_tokens != GEN_UNSET && (int64_t)n + max_tokens > ctxlen)
    st = status_make(INFERD_INVALID_ARGUMENT,
                     "max_tokens is too large: the prompt's %zu tokens + max_tokens %" PRId64
                     " exceed model '%s''s context length of %" PRId64 " tokens (at most %" PRId64 " here)",
                     n, max_tokens, mv->model->name, ctxlen, ctxlen - (int64_t)n);
  if (!status_is_ok(&st)) {
    free(ids);
    free(s);
    return st;
  }
  /* the model's default, or not given: what the context leaves */
  if (max_tokens == GEN_UNSET || (int64_t)n + max_tokens > ctxlen) max_tokens = ctxlen - (int64_t)n;
  /* the caller's token budget: the most this generation can use, the unused part given back at
   * its end */
  if (quota.take) {
    st = quota.take(quota.ctx, req->principal, mv->model->name, (int64_t)n + max_tokens);
    if (!status_is_ok(&st)) {
      free(ids);
      free(s);
      return st;
    }
    s->reserved = (int64_t)n + max_tokens;
  }
  s->req = req;
  s->g = g;
  s->n_prompt = s->n_ids = n;
  s->max_new = max_tokens;
  s->cap = n + (size_t)max_tokens;
  s->ids = realloc(ids, s->cap * sizeof *s->ids);
  s->row = -1;
  s->pen_scratch = malloc(s->cap * sizeof *s->pen_scratch);
  if (s->ids == NULL || s->pen_scratch == NULL) {
    if (s->ids == NULL) free(ids);
    if (s->reserved > 0 && quota.give_back) quota.give_back(quota.ctx, req->principal, mv->model->name, s->reserved);
    size_t cap = s->cap;
    seq_free(s);
    return status_make(INFERD_RESOURCE_EXHAUSTED, "no memory for a sequence of %zu tokens", cap);
  }
  gen_rng_seed(&s->rng, g->params.has_seed ? g->params.seed : fresh_seed());
  tokenizer_stream_init(&s->ts, gv->tok, true);
  stop_init(&s->stop, g->params.stop, g->params.n_stop);
  g->finish = GEN_FINISH_NONE;
  g->text = NULL;
  g->text_len = 0;
  g->prompt_tokens = (int64_t)n;
  g->completion_tokens = 0;
  s->handoff_ns = req->enqueue_ns = monotime_ns();
  if (gv->stats) {
    pthread_mutex_lock(&stats_mu);
    gv->stats->active++;
    pthread_mutex_unlock(&stats_mu);
  }
  gen_engine *e = gv->engine;
  pthread_mutex_lock(&e->mu);
  if (atomic_load(&shutting_down)) { /* checked under mu: the engine then finishes whatever got in */
    pthread_mutex_unlock(&e->mu);
    if (gv->stats) {
      pthread_mutex_lock(&stats_mu);
      gv->stats->active--;
      pthread_mutex_unlock(&stats_mu);
    }
    if (s->reserved > 0 && quota.give_back) quota.give_back(quota.ctx, req->principal, mv->model->name, s->reserved);
    seq_free(s);
    return status_make(INFERD_UNAVAILABLE, "the server is shutting down");
  }
  atomic_fetch_add(&live_sequences, 1);
  if (e->wait_tail)
    e->wait_tail->next = s;
  else
    e->wait_head = s;
  e->wait_tail = s;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
  return status_ok();
}

void gen_install(struct serve *s) { serve_set_generator(s, handoff, NULL); }

int gen_shutdown(int64_t grace_until_ns, int timeout_ms) {
  while (atomic_load(&live_sequences) > 0 && monotime_ns() < grace_until_ns)
    nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
  atomic_store(&shutting_down, true);
  /* An engine with sequences is stepping, not waiting on its condition (its waiting list is
   * only non-empty while it is full): it sees the flag at its next step. */
  int64_t until = monotime_ns() + (int64_t)timeout_ms * 1000000;
  while (atomic_load(&live_sequences) > 0 && monotime_ns() < until)
    nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
  return atomic_load(&live_sequences);
}
