/* `inferd generate --model-repository DIR --model M --prompt TEXT`: loads the model as the
 * server does and runs generations through serve_submit (admit, route, the version's engine),
 * streaming the text, or, with --json, one JSON line per sequence. Several prompts (--prompts
 * FILE, --streams N) run at once, so the engine batches their decode steps; --sequential runs
 * them one after another (what each gives alone). */
#include "generate_cmd.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/application.h"
#include "backends/backends.h"
#include "core/app.h"
#include "core/serve.h"
#include "generate/engine.h"
#include "security/limits.h"
#include "util/log.h"
#include "util/monotime.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: inferd generate --model-repository DIR --model M (--prompt TEXT | --prompts FILE) [options]\n\n"
          "Generates text with a generative model (docs/generate.md) in-process, through the server's\n"
          "pipeline and engine. One prompt streams its text to stdout.\n\n"
          "  --version V            the version (default: the model's default)\n"
          "  --prompts FILE         one prompt per line (JSON string lines are unescaped), run at once\n"
          "  --streams N            run each prompt N times at once (default 1)\n"
          "  --sequential           run the sequences one after another instead of at once\n"
          "  --chat                 the prompt is a user message: the model's chat template applies\n"
          "  --max-tokens N  --temperature T  --top-p P  --top-k K  --seed S\n"
          "  --presence-penalty X  --frequency-penalty X  --stop TEXT (up to 4)  --logprobs N\n"
          "  --cancel-after N       cancel each sequence once it has N tokens (as a client leaving)\n"
          "  --tokens-per-minute N  the caller's token budget, as the server's flag sets it\n"
          "  --json                 one JSON line per sequence (text, finish_reason, usage, ttft_ms,\n"
          "                         elapsed_ms) and a summary line (tokens_per_s over the run)\n");
}

typedef struct seq_run {
  gen_request g;
  gen_message msg;
  const char *prompt;
  _Atomic bool cancel;
  int64_t cancel_after;
  int64_t tokens;
  bool stream_out;
  bool logprobs;
  json_t *lps;
  int64_t start_ns, end_ns;
  inferd_status st;
  bool done;
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
  int *n_done;
} seq_run;

static bool on_token(void *ctx, const gen_event *ev) {
  seq_run *r = ctx;
  r->tokens++;
  if (r->stream_out && ev->text_len) {
    fwrite(ev->text, 1, ev->text_len, stdout);
    fflush(stdout);
  }
  if (r->logprobs) {
    json_t *o = json_pack("{s:i,s:f}", "id", (json_int_t)ev->token_id, "logprob", (double)ev->logprob);
    json_t *top = json_array();
    for (int i = 0; i < ev->n_top; i++)
      json_array_append_new(top, json_pack("{s:i,s:f}", "id", (json_int_t)ev->top[i].id, "logprob",
                                           (double)ev->top[i].logprob));
    json_object_set_new(o, "top", top);
    json_array_append_new(r->lps, o);
  }
  if (r->cancel_after > 0 && r->tokens >= r->cancel_after) atomic_store(&r->cancel, true);
  return true;
}

static void on_done(infer_request *req, void *user) {
  seq_run *r = user;
  r->st = req->status;
  r->end_ns = monotime_ns();
  infer_request_destroy(req);
  pthread_mutex_lock(r->mu);
  r->done = true;
  (*r->n_done)++;
  pthread_cond_broadcast(r->cv);
  pthread_mutex_unlock(r->mu);
}

static inferd_status wait_loaded(app *a, const char *model, const char *version) {
  int64_t until = monotime_ns() + INT64_C(120) * 1000000000;
  for (;;) {
    model_version *mv = NULL;
    inferd_status st = repo_acquire(a->repo, model, version ? version : "", REPO_ANY_STATE, &mv);
    if (status_is_ok(&st)) {
      model_state s = model_version_state(mv);
      if (s != MODEL_LOADING) {
        st = s == MODEL_READY ? status_ok()
                              : status_make(INFERD_UNAVAILABLE, "model '%s' version %s did not load: %s", model,
                                            mv->version_str, mv->reason);
        version_release(mv);
        return st;
      }
      version_release(mv);
    }
    char why[512];
    if (monotime_ns() > until) return status_make(INFERD_UNAVAILABLE, "model '%s' did not load in 120 s", model);
    if (!status_is_ok(&st) && app_ready(a, why, sizeof why)) return st;
    nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
  }
}

static inferd_status tokens_take(void *ctx, const principal *p, const char *model, int64_t n) {
  return limits_tokens_take(ctx, p, model, n);
}
static void tokens_give_back(void *ctx, const principal *p, const char *model, int64_t n) {
  limits_tokens_give_back(ctx, p, model, n);
}

/* A prompts file's line: a JSON string when it parses as one, else the text as is. */
static char *line_text(const char *line) {
  if (line[0] == '"') {
    json_t *j = json_loads(line, JSON_DECODE_ANY, NULL);
    if (json_is_string(j)) {
      char *s = strdup(json_string_value(j));
      json_decref(j);
      return s;
    }
    json_decref(j);
  }
  return strdup(line);
}

int generate_cli_main(int argc, char **argv) {
  enum { O_REPO = 1, O_MODEL, O_VERSION, O_PROMPT, O_PROMPTS, O_STREAMS, O_SEQ, O_CHAT, O_MAX, O_TEMP, O_TOPP,
         O_TOPK, O_SEED, O_PP, O_FP, O_STOP, O_LP, O_CANCEL, O_JSON, O_TPM, O_HELP };
  static const struct option opts[] = {
      {"model-repository", required_argument, 0, O_REPO}, {"model", required_argument, 0, O_MODEL},
      {"version", required_argument, 0, O_VERSION}, {"prompt", required_argument, 0, O_PROMPT},
      {"prompts", required_argument, 0, O_PROMPTS}, {"streams", required_argument, 0, O_STREAMS},
      {"sequential", no_argument, 0, O_SEQ}, {"chat", no_argument, 0, O_CHAT},
      {"max-tokens", required_argument, 0, O_MAX}, {"temperature", required_argument, 0, O_TEMP},
      {"top-p", required_argument, 0, O_TOPP}, {"top-k", required_argument, 0, O_TOPK},
      {"seed", required_argument, 0, O_SEED}, {"presence-penalty", required_argument, 0, O_PP},
      {"frequency-penalty", required_argument, 0, O_FP}, {"stop", required_argument, 0, O_STOP},
      {"logprobs", required_argument, 0, O_LP}, {"cancel-after", required_argument, 0, O_CANCEL},
      {"json", no_argument, 0, O_JSON}, {"tokens-per-minute", required_argument, 0, O_TPM}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
  const char *repo = NULL, *model = NULL, *version = NULL, *prompt = NULL, *prompts_file = NULL;
  long streams = 1, cancel_after = 0, tpm = 0;
  bool sequential = false, chat = false, as_json = false;
  gen_params p;
  gen_params_init(&p);
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case O_REPO: repo = optarg; break;
      case O_MODEL: model = optarg; break;
      case O_VERSION: version = optarg; break;
      case O_PROMPT: prompt = optarg; break;
      case O_PROMPTS: prompts_file = optarg; break;
      case O_STREAMS: streams = strtol(optarg, NULL, 10); break;
      case O_SEQ: sequential = true; break;
      case O_CHAT: chat = true; break;
      case O_MAX: p.max_tokens = strtoll(optarg, NULL, 10); break;
      case O_TEMP: p.temperature = strtod(optarg, NULL); break;
      case O_TOPP: p.top_p = strtod(optarg, NULL); break;
      case O_TOPK: p.top_k = strtoll(optarg, NULL, 10); break;
      case O_SEED: p.has_seed = true; p.seed = strtoull(optarg, NULL, 10); break;
      case O_PP: p.presence_penalty = strtod(optarg, NULL); break;
      case O_FP: p.frequency_penalty = strtod(optarg, NULL); break;
      case O_STOP:
        if (p.n_stop < GEN_MAX_STOP) p.stop[p.n_stop++] = optarg;
        else {
          fprintf(stderr, "inferd generate: at most %d --stop\n", GEN_MAX_STOP);
          return 2;
        }
        break;
      case O_LP: p.logprobs = true; p.top_logprobs = (int)strtol(optarg, NULL, 10); break;
      case O_CANCEL: cancel_after = strtol(optarg, NULL, 10); break;
      case O_JSON: as_json = true; break;
      case O_TPM: tpm = strtol(optarg, NULL, 10); break;
      case O_HELP: usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (!repo || !model || (!prompt == !prompts_file) || streams < 1 || streams > 4096) {
    usage(stderr);
    return 2;
  }
  /* the prompts */
  char **texts = NULL;
  size_t n_texts = 0;
  if (prompt) {
    texts = malloc(sizeof *texts);
    texts[n_texts++] = strdup(prompt);
  } else {
    FILE *f = fopen(prompts_file, "r");
    if (f == NULL) {
      fprintf(stderr, "inferd generate: cannot read %s\n", prompts_file);
      return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
      while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
      if (len == 0) continue;
      char **more = realloc(texts, (n_texts + 1) * sizeof *texts);
      if (more == NULL) break;
      texts = more;
      texts[n_texts++] = line_text(line);
    }
    free(line);
    fclose(f);
  }
  size_t n = n_texts * (size_t)streams;
  inferd_status st = backends_register_builtin();
  if (status_is_ok(&st)) st = application_register();
  if (status_is_ok(&st)) st = gen_register();
  app *a = NULL;
  const char *load[1] = {model};
  app_options ao = {.model_repository = repo, .worker_threads = 1, .control_mode = REPO_CONTROL_EXPLICIT,
                    .poll_secs = 15, .load_models = load, .n_load_models = 1, .drain_timeout_ms = 1000};
  if (status_is_ok(&st)) st = app_create(&ao, &a);
  limits *lim = NULL;
  if (status_is_ok(&st) && tpm > 0) {
    limits_options lo = {.tokens_per_min = tpm};
    st = limits_create(&lo, NULL, &lim);
    if (status_is_ok(&st))
      gen_set_quota(&(gen_quota){.take = tokens_take, .give_back = tokens_give_back, .ctx = lim});
  }
  if (status_is_ok(&st)) {
    gen_install(a->serve);
    st = wait_loaded(a, model, version);
  }
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd generate: %s\n", st.msg);
    if (a) app_destroy(a);
    limits_destroy(lim);
    for (size_t i = 0; i < n_texts; i++) free(texts[i]);
    free(texts);
    return 1;
  }
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  int n_done = 0, rc = 0;
  seq_run *runs = calloc(n, sizeof *runs);
  int64_t t0 = monotime_ns();
  for (size_t i = 0; i < n; i++) {
    seq_run *r = &runs[i];
    gen_request_init(&r->g);
    r->g.params = p;
    r->prompt = texts[i % n_texts];
    if (chat) {
      r->msg = (gen_message){.role = "user", .content = r->prompt};
      r->g.messages = &r->msg;
      r->g.n_messages = 1;
    } else {
      r->g.prompt = r->prompt;
      r->g.prompt_len = strlen(r->prompt);
    }
    r->g.emit = on_token;
    r->g.emit_ctx = r;
    r->g.keep_text = true;
    r->stream_out = !as_json && n == 1;
    r->logprobs = p.logprobs;
    r->lps = json_array();
    r->cancel_after = cancel_after;
    r->mu = &mu;
    r->cv = &cv;
    r->n_done = &n_done;
    r->start_ns = monotime_ns();
    serve_request sr = {.model = model, .version = version, .start_ns = r->start_ns, .cancelled = &r->cancel,
                        .on_done = on_done, .user = r, .generate = &r->g};
    r->st = serve_submit(a->serve, &sr);
    if (!status_is_ok(&r->st)) {
      r->done = true;
      r->end_ns = monotime_ns();
      pthread_mutex_lock(&mu);
      n_done++;
      pthread_mutex_unlock(&mu);
    }
    if (sequential) {
      pthread_mutex_lock(&mu);
      while (!r->done) pthread_cond_wait(&cv, &mu);
      pthread_mutex_unlock(&mu);
    }
  }
  pthread_mutex_lock(&mu);
  while (n_done < (int)n) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  int64_t elapsed = monotime_ns() - t0;
  int64_t total_tokens = 0;
  double ttft_sum = 0;
  for (size_t i = 0; i < n; i++) {
    seq_run *r = &runs[i];
    total_tokens += r->g.completion_tokens;
    ttft_sum += (double)r->g.ttft_ns / 1e6;
    if (!status_is_ok(&r->st)) rc = 1;
    if (as_json) {
      json_t *o = json_pack("{s:i,s:s,s:s,s:i,s:i,s:f,s:f}", "index", (json_int_t)i, "text",
                            r->g.text ? r->g.text : "", "finish_reason", gen_finish_name(r->g.finish),
                            "prompt_tokens", (json_int_t)r->g.prompt_tokens, "completion_tokens",
                            (json_int_t)r->g.completion_tokens, "ttft_ms", (double)r->g.ttft_ns / 1e6, "elapsed_ms",
                            (double)(r->end_ns - r->start_ns) / 1e6);
      if (!status_is_ok(&r->st)) json_object_set_new(o, "error", json_string(r->st.msg));
      if (r->logprobs) json_object_set(o, "logprobs", r->lps);
      char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
      puts(s);
      free(s);
      json_decref(o);
    } else if (!status_is_ok(&r->st)) {
      fprintf(stderr, "inferd generate: %s\n", r->st.msg);
    } else if (n == 1) {
      fprintf(stderr, "\n[%s, %lld prompt + %lld completion tokens]\n", gen_finish_name(r->g.finish),
              (long long)r->g.prompt_tokens, (long long)r->g.completion_tokens);
    } else {
      printf("--- %zu (%s)\n%s\n", i, gen_finish_name(r->g.finish), r->g.text ? r->g.text : "");
    }
    json_decref(r->lps);
    gen_request_clear(&r->g);
  }
  if (as_json)
    printf("{\"summary\":true,\"sequences\":%zu,\"completion_tokens\":%lld,\"elapsed_ms\":%.3f,\"tokens_per_s\":%.3f,"
           "\"mean_ttft_ms\":%.3f}\n",
           n, (long long)total_tokens, (double)elapsed / 1e6, (double)total_tokens / ((double)elapsed / 1e9),
           ttft_sum / (double)n);
  free(runs);
  for (size_t i = 0; i < n_texts; i++) free(texts[i]);
  free(texts);
  app_stop_work(a);
  app_destroy(a);
  limits_destroy(lim);
  return rc;
}
