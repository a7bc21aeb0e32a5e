/* inferd's command line: `inferd serve` runs the server; `inferd keys` manages an API key file
 * (security/keys_cli.c); `inferd version` prints the version. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/application.h"
#include "backends/backends.h"
#include "cache/cache.h"
#include "core/app.h"
#include "core/version.h"
#include "frontends/grpc/frontend.h"
#include "frontends/http/metrics_http.h"
#include "frontends/http/server.h"
#include "security/limits.h"
#include "generate/engine.h"
#include "generate_cmd.h"
#include "generate/tokenize_cli.h"
#include "jobs/webhook.h"
#include "jobs/jobs.h"
#include "observability/trace.h"
#include "security/auth.h"
#include "security/cors.h"
#include "security/keys_cli.h"
#include "security/token_cli.h"
#include "traffic/cli.h"
#include "traffic/traffic.h"
#include "observability/options.h"
#include "profile_cmd.h"
#include "observability/collectors.h"
#include "observability/metrics.h"
#include "security/tlsconf.h"
#include "store/rstore.h"
#include "traffic/store.h"
#include "util/log.h"
#include "util/monotime.h"

typedef struct serve_options {
  const char *model_repository;
  const char *host;
  long http_port;
  long http_threads;
  long worker_threads;
  long long max_body_bytes;
  long drain_timeout_ms;
  long grpc_port;
  long grpc_max_message_bytes;
  long grpc_threads;
  const char *default_model;
  long max_records;
  long head_timeout_ms, body_timeout_ms, min_body_rate, keepalive_timeout_ms, send_timeout_ms, max_connections;
  long stream_heartbeat_ms, stream_max_buffered; /* streaming replies (SSE): server.h */
  /* model control (docs/model-repository.md) */
  repo_control_mode control_mode;
  long poll_secs;
  const char *load_models[64];
  size_t n_load_models;
  limits_options limits; /* the default rate limits (docs/security.md#rate-limits) */
  trace_options trace; /* tracing is on when trace.otlp_endpoint is set */
  /* security (docs/security.md) */
  const char *api_keys, *jwt_jwks, *jwt_secret_file, *jwt_issuer, *jwt_audience, *jwt_scope_claim, *cors_origins;
  const char *state_dir; /* traffic's durable state (docs/traffic.md) */
  obs_options obs; /* drift and payload capture (observability/options.h) */
  /* observability (docs/observability.md) */
  long metrics_port; /* -1: none (/metrics on the HTTP port only) */
  bool metrics;
  log_format log_fmt;
  /* TLS (docs/security.md, "TLS and mutual TLS") */
  const char *tls_cert, *tls_key, *tls_client_ca;
  const char *tls_client_auth; /* required | optional; NULL: required when a client CA is given */
  long http_plain_port;        /* -1: none */
  /* async batch jobs (docs/jobs.md) */
  bool jobs;
  jobs_options job_opts;
  long long max_job_body_bytes;
  /* webhooks (docs/jobs.md, "Webhooks") */
  const char *webhook_secret_file;
  long webhook_retry_seconds, webhook_timeout_ms;
  /* shared state (docs/redis.md) */
  const char *redis_url; /* NULL: every feature keeps its state in this process */
  long redis_timeout_ms;
} serve_options;

/* Parses a whole decimal integer within [lo, hi]; names the option on failure. */
static int parse_num(const char *opt, const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "inferd: %s must be an integer from %lld to %lld, got '%s'\n", opt, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

/* Every option but --help and the repeatable --load-model can also come from the environment:
 * INFERD_ and its name upper-cased with '-' as '_' (--http-port: INFERD_HTTP_PORT). Derived from
 * serve_flags' names so that a new flag gets its variable with no second table to keep. Flags
 * override the variables. */
static void option_env_name(const char *opt, char *out, size_t size) {
  size_t n = (size_t)snprintf(out, size, "INFERD_%s", opt);
  for (size_t i = 7; i < n && i < size; i++)
    out[i] = out[i] == '-' ? '_' : (char)toupper((unsigned char)out[i]);
}

/* The option codes apply_option switches on (getopt's `val`); observability's options are
 * OBS_OPTION_BASE + OBS_* (observability/options.h). */
enum serve_opt {
  OPT_HELP = 1000,
  OPT_MODEL_REPOSITORY,
  OPT_HOST,
  OPT_HTTP_PORT,
  OPT_HTTP_THREADS,
  OPT_GRPC_PORT,
  OPT_GRPC_MAX_MESSAGE_BYTES,
  OPT_GRPC_THREADS,
  OPT_WORKER_THREADS,
  OPT_MAX_BODY_BYTES,
  OPT_DRAIN_TIMEOUT_MS,
  OPT_DEFAULT_MODEL,
  OPT_MAX_RECORDS,
  OPT_MODEL_CONTROL_MODE,
  OPT_REPOSITORY_POLL_SECS,
  OPT_LOAD_MODEL,
  OPT_STATE_DIR,
  OPT_METRICS,
  OPT_METRICS_PORT,
  OPT_LOG_FORMAT,
  OPT_JOBS,
  OPT_MAX_JOB_BODY_BYTES,
  OPT_MAX_JOB_RECORDS,
  OPT_MAX_JOBS_PER_PRINCIPAL,
  OPT_MAX_JOB_RECORDS_PER_PRINCIPAL,
  OPT_JOB_CHUNK_RECORDS,
  OPT_JOB_CHUNKS_IN_FLIGHT,
  OPT_JOBS_CLAIM_TIMEOUT_MS,
  OPT_JOBS_TTL_SECONDS,
  OPT_REQUEST_HEAD_TIMEOUT_MS,
  OPT_BODY_TIMEOUT_MS,
  OPT_MIN_BODY_RATE,
  OPT_KEEPALIVE_TIMEOUT_MS,
  OPT_SEND_TIMEOUT_MS,
  OPT_MAX_CONNECTIONS,
  OPT_STREAM_HEARTBEAT_MS,
  OPT_STREAM_MAX_BUFFERED_BYTES,
  OPT_RATE_LIMIT,
  OPT_RATE_BURST,
  OPT_MAX_CONCURRENT,
  OPT_RECORDS_PER_MINUTE,
  OPT_TOKENS_PER_MINUTE,
  OPT_RATE_LIMIT_PER_MODEL,
  OPT_OTLP_ENDPOINT,
  OPT_OTLP_PROTOCOL,
  OPT_TRACE_SAMPLE_RATIO,
  OPT_OTLP_SERVICE_NAME,
  OPT_OTLP_QUEUE_SIZE,
  OPT_OTLP_BATCH_SIZE,
  OPT_OTLP_EXPORT_INTERVAL_MS,
  OPT_OTLP_TIMEOUT_MS,
  OPT_API_KEYS,
  OPT_JWT_JWKS,
  OPT_JWT_SECRET_FILE,
  OPT_JWT_ISSUER,
  OPT_JWT_AUDIENCE,
  OPT_JWT_SCOPE_CLAIM,
  OPT_CORS_ORIGINS,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_TLS_CLIENT_CA,
  OPT_TLS_CLIENT_AUTH,
  OPT_HTTP_PLAIN_PORT,
  OPT_WEBHOOK_SECRET_FILE,
  OPT_WEBHOOK_RETRY_SECONDS,
  OPT_WEBHOOK_TIMEOUT_MS,
  OPT_REDIS_URL,
  OPT_REDIS_TIMEOUT_MS,
};

/* Every `inferd serve` flag, declared once: getopt's table, the environment variables
 * (option_env_name) and the usage text are all made from this one, in this order. A new flag is
 * an OPT_ code above, a row here and its case in apply_option. */
typedef struct serve_flag {
  const char *name; /* --name; NULL: a line of the usage text alone (a heading or a note) */
  int code;         /* enum serve_opt, or OBS_OPTION_BASE + OBS_* */
  const char *arg;  /* the argument as the usage shows it ("N", "FILE"); NULL: a flag without one */
  const char *help; /* what it does ('\n' continues on the next line); NULL: not listed here
                       (--help; observability's, listed by OBS_OPTIONS_USAGE) */
  const char *dflt; /* the default, shown after the variable; NULL: none shown */
  bool no_env;      /* no INFERD_ variable (--help, the repeatable --load-model) */
} serve_flag;

#define FLAG(n, c, a, h, d) {.name = n, .code = c, .arg = a, .help = h, .dflt = d}
#define TEXT(line) {.help = line}
/* observability's: an argument each, described by OBS_OPTIONS_USAGE */
#define OBS(n, index) {.name = n, .code = OBS_OPTION_BASE + (index), .arg = "VALUE"}

static const serve_flag serve_flags[] = {
    TEXT("serve options (each also read from the environment variable shown):"),
    FLAG("model-repository", OPT_MODEL_REPOSITORY, "DIR", "models to serve", "required"),
    FLAG("host", OPT_HOST, "ADDR", "address to listen on", "0.0.0.0"),
    FLAG("http-port", OPT_HTTP_PORT, "N", "HTTP port", "8000"),
    FLAG("http-threads", OPT_HTTP_THREADS, "N", "HTTP event loops", "2"),
    FLAG("grpc-port", OPT_GRPC_PORT, "N", "gRPC port", "8001"),
    FLAG("grpc-max-message-bytes", OPT_GRPC_MAX_MESSAGE_BYTES, "N", "largest gRPC message", "67108864"),
    FLAG("grpc-threads", OPT_GRPC_THREADS, "N", "gRPC completion-queue threads", "1"),
    FLAG("worker-threads", OPT_WORKER_THREADS, "N", "inference threads", "number of cores"),
    FLAG("max-body-bytes", OPT_MAX_BODY_BYTES, "N", "largest request body", "67108864"),
    FLAG("drain-timeout-ms", OPT_DRAIN_TIMEOUT_MS, "N", "how long SIGTERM waits for requests in flight", "10000"),
    FLAG("default-model", OPT_DEFAULT_MODEL, "NAME", "the model MLflow's /invocations serves", "the only model"),
    FLAG("max-records", OPT_MAX_RECORDS, "N", "records per /v1 predict request", "1000"),
    FLAG("model-control-mode", OPT_MODEL_CONTROL_MODE, "M", "none (load all at start), poll (rescan every --repository-poll-secs),\nexplicit (load through the API)", "none"),
    FLAG("repository-poll-secs", OPT_REPOSITORY_POLL_SECS, "N", "poll mode's rescan interval", "15"),
    {.name = "load-model", .code = OPT_LOAD_MODEL, .arg = "NAME", .help = "explicit mode: load NAME at start (repeatable; '*' for all)", .no_env = true},
    FLAG("state-dir", OPT_STATE_DIR, "DIR", "traffic policies' store and audit log, batch jobs' store", "inferd-state beside the repository"),
    FLAG("metrics", OPT_METRICS, "on|off", "Prometheus metrics at GET /metrics", "on"),
    FLAG("metrics-port", OPT_METRICS_PORT, "N", "also serve GET /metrics alone on this port", "none"),
    FLAG("log-format", OPT_LOG_FORMAT, "json|text", "log and access-log lines: JSON objects or logfmt", "json"),
    TEXT("SIGHUP rescans the repository in every mode (and reloads TLS files); SIGTERM drains and stops."),
    TEXT("async batch jobs (docs/jobs.md), kept in --state-dir/jobs.db:"),
    FLAG("jobs", OPT_JOBS, "on|off", "the /v1/batch and /v1/batches APIs", "on"),
    FLAG("max-job-body-bytes", OPT_MAX_JOB_BODY_BYTES, "N", "largest job upload (/v1/batch/predict, /v1/files)", "4294967296"),
    FLAG("max-job-records", OPT_MAX_JOB_RECORDS, "N", "records one job may hold", "10000000"),
    FLAG("max-jobs-per-principal", OPT_MAX_JOBS_PER_PRINCIPAL, "N", "queued or running jobs per caller", "16"),
    FLAG("max-job-records-per-principal", OPT_MAX_JOB_RECORDS_PER_PRINCIPAL, "N", "their records not yet done", "20000000"),
    FLAG("job-chunk-records", OPT_JOB_CHUNK_RECORDS, "N", "records per pipeline request", "the model's max_batch_size, at most 1000"),
    FLAG("job-chunks-in-flight", OPT_JOB_CHUNKS_IN_FLIGHT, "N", "job chunks in the scheduler at once", "2"),
    TEXT("  with --redis-url, jobs live in Redis and every replica works them (docs/redis.md, \"Batch jobs\"):"),
    FLAG("jobs-claim-timeout-ms", OPT_JOBS_CLAIM_TIMEOUT_MS, "N", "a dead replica's chunks go to the others after", "30000"),
    FLAG("jobs-ttl-seconds", OPT_JOBS_TTL_SECONDS, "N", "finished jobs are kept this long", "604800"),
    TEXT("HTTP limits on slow and idle clients (docs/http-api.md, \"Limits and timeouts\"):"),
    FLAG("request-head-timeout-ms", OPT_REQUEST_HEAD_TIMEOUT_MS, "N", "time to send a whole request head", "20000"),
    FLAG("body-timeout-ms", OPT_BODY_TIMEOUT_MS, "N", "time for a body, and the longest pause in one", "30000"),
    FLAG("min-body-rate", OPT_MIN_BODY_RATE, "N", "bytes/s that earn a body one more second", "1024"),
    FLAG("keepalive-timeout-ms", OPT_KEEPALIVE_TIMEOUT_MS, "N", "idle time between requests", "120000"),
    FLAG("send-timeout-ms", OPT_SEND_TIMEOUT_MS, "N", "time for a client to take a closing reply", "30000"),
    FLAG("max-connections", OPT_MAX_CONNECTIONS, "N", "HTTP connections open at once", "16384"),
    FLAG("stream-heartbeat-ms", OPT_STREAM_HEARTBEAT_MS, "N", "a streaming reply (SSE) silent this long sends a comment", "15000"),
    FLAG("stream-max-buffered-bytes", OPT_STREAM_MAX_BUFFERED_BYTES, "N", "a stream's bytes the client has not taken before it is cut off", "1048576"),
    TEXT("rate limits, for every caller without limits of its own (docs/security.md#rate-limits):"),
    FLAG("rate-limit", OPT_RATE_LIMIT, "R", "requests per second: 10, 10/s, 600/m, 3600/h", "none"),
    FLAG("rate-burst", OPT_RATE_BURST, "N", "requests at once after a pause", "the rate's second"),
    FLAG("max-concurrent", OPT_MAX_CONCURRENT, "N", "requests in flight", "none"),
    FLAG("records-per-minute", OPT_RECORDS_PER_MINUTE, "N", "records (rows) per minute", "none"),
    FLAG("tokens-per-minute", OPT_TOKENS_PER_MINUTE, "N", "generated-text tokens (prompt + completion) per minute", "none"),
    FLAG("rate-limit-per-model", OPT_RATE_LIMIT_PER_MODEL, NULL, "a budget per caller and model", "per caller"),
    TEXT("Tracing (docs/observability.md, \"Tracing\"): on when an OTLP endpoint is set"),
    FLAG("otlp-endpoint", OPT_OTLP_ENDPOINT, "URL", "OTLP/HTTP collector (no path: /v1/traces)", "off"),
    FLAG("otlp-protocol", OPT_OTLP_PROTOCOL, "P", "http/protobuf or http/json", "http/protobuf"),
    FLAG("trace-sample-ratio", OPT_TRACE_SAMPLE_RATIO, "R", "share of requests sampled when the caller sent no sampled flag", "1"),
    FLAG("otlp-service-name", OPT_OTLP_SERVICE_NAME, "S", "the service.name resource attribute", "inferd"),
    FLAG("otlp-queue-size", OPT_OTLP_QUEUE_SIZE, "N", "sampled requests waiting for export", "2048"),
    FLAG("otlp-batch-size", OPT_OTLP_BATCH_SIZE, "N", "spans per export request", "512"),
    FLAG("otlp-export-interval-ms", OPT_OTLP_EXPORT_INTERVAL_MS, "N", "longest wait of a partial batch", "1000"),
    FLAG("otlp-timeout-ms", OPT_OTLP_TIMEOUT_MS, "N", "one export request", "2000"),
    TEXT("security (docs/security.md); with none of the first three, every route is open:"),
    FLAG("api-keys", OPT_API_KEYS, "FILE", "API key store (inferd keys)", NULL),
    FLAG("jwt-jwks", OPT_JWT_JWKS, "FILE", "JWKS with the JWT verification keys", NULL),
    FLAG("jwt-secret-file", OPT_JWT_SECRET_FILE, "FILE", "HS256 shared secret for JWTs", NULL),
    FLAG("jwt-issuer", OPT_JWT_ISSUER, "ISS", "required JWT \"iss\"", NULL),
    FLAG("jwt-audience", OPT_JWT_AUDIENCE, "AUD", "required JWT \"aud\"", NULL),
    FLAG("jwt-scope-claim", OPT_JWT_SCOPE_CLAIM, "NAME", "the JWT claim holding scopes", "scope, else scp"),
    FLAG("cors-origins", OPT_CORS_ORIGINS, "LIST", "origins browsers may call from (comma-separated, or *)", "none: CORS off"),
    TEXT("The key and JWT files are reloaded when they change and on SIGHUP."),
    TEXT("TLS (docs/security.md; SIGHUP reloads the files, open connections keep theirs):"),
    FLAG("tls-cert", OPT_TLS_CERT, "FILE", "PEM certificate chain: HTTPS on --http-port, TLS on gRPC", NULL),
    FLAG("tls-key", OPT_TLS_KEY, "FILE", "PEM private key of --tls-cert", NULL),
    FLAG("tls-client-ca", OPT_TLS_CLIENT_CA, "FILE", "PEM CAs for client certificates (mutual TLS)", NULL),
    FLAG("tls-client-auth", OPT_TLS_CLIENT_AUTH, "MODE", "required (no valid certificate, no connection) or optional\n(none: accepted without a subject)", "required"),
    FLAG("http-plain-port", OPT_HTTP_PLAIN_PORT, "N", "with TLS, also serve plain HTTP on port N (none by default)", NULL),
    TEXT("Webhooks, for batch jobs' callback_url (docs/jobs.md, \"Webhooks\"; none with --jobs off):"),
    FLAG("webhook-secret-file", OPT_WEBHOOK_SECRET_FILE, "FILE", "Standard Webhooks signing secret (whsec_...)", "unsigned"),
    FLAG("webhook-retry-seconds", OPT_WEBHOOK_RETRY_SECONDS, "N", "how long a delivery is retried", "3600"),
    FLAG("webhook-timeout-ms", OPT_WEBHOOK_TIMEOUT_MS, "N", "one delivery attempt", "15000"),
    TEXT("Shared state across replicas (docs/redis.md): rate limits, the prediction cache's second tier,"),
    TEXT("traffic policies; each falls back to local state while Redis is unreachable:"),
    FLAG("redis-url", OPT_REDIS_URL, "URL", "redis://[:password@]host[:port][/db]", "none"),
    FLAG("redis-timeout-ms", OPT_REDIS_TIMEOUT_MS, "N", "longest wait for one Redis answer", "50"),
    {.name = "help", .code = OPT_HELP, .arg = NULL, .help = NULL, .no_env = true},
    OBS("drift-window-s", OBS_DRIFT_WINDOW_S),
    OBS("drift-buckets", OBS_DRIFT_BUCKETS),
    OBS("drift-psi-warn", OBS_DRIFT_PSI_WARN),
    OBS("drift-psi-alert", OBS_DRIFT_PSI_ALERT),
    OBS("drift-min-samples", OBS_DRIFT_MIN_SAMPLES),
    OBS("capture-dir", OBS_CAPTURE_DIR),
    OBS("capture-percent", OBS_CAPTURE_PERCENT),
    OBS("capture-max-file-bytes", OBS_CAPTURE_MAX_FILE_BYTES),
    OBS("capture-max-files", OBS_CAPTURE_MAX_FILES),
    OBS("capture-queue", OBS_CAPTURE_QUEUE),
};
#define N_SERVE_FLAGS (sizeof serve_flags / sizeof serve_flags[0])
#undef FLAG
#undef TEXT
#undef OBS

#define USAGE_HELP_COL 27 /* where a flag's description starts */
#define USAGE_ENV_COL 56  /* and its variable */
#define USAGE_WIDTH 100   /* a variable that would run past this goes on a line of its own */

/* Writes spaces up to column `to`, at least `min` of them, and returns the column reached. */
static int usage_pad(FILE *f, int col, int to, int min) {
  int n = col + min <= to ? to - col : min;
  fprintf(f, "%*s", n, "");
  return col + n;
}

/* One flag's lines: "--name ARG", what it does from column 27 (a '\n' in it continues there on
 * the next line), then its variable and default from column 56. */
static void usage_flag(FILE *f, const serve_flag *fl) {
  int col = fprintf(f, "  --%s%s%s", fl->name, fl->arg ? " " : "", fl->arg ? fl->arg : "");
  col = usage_pad(f, col, USAGE_HELP_COL, 1);
  for (const char *h = fl->help, *nl; h; h = nl ? nl + 1 : NULL) {
    nl = strchr(h, '\n');
    int len = nl ? (int)(nl - h) : (int)strlen(h);
    col += fprintf(f, "%.*s", len, h);
    if (nl) col = fprintf(f, "\n%*s", USAGE_HELP_COL, "") - 1;
  }
  if (!fl->no_env) {
    char env[64], var[160];
    option_env_name(fl->name, env, sizeof env);
    int len = snprintf(var, sizeof var, "%s%s%s%s", env, fl->dflt ? " (" : "", fl->dflt ? fl->dflt : "", fl->dflt ? ")" : "");
    if (col + 2 + len > USAGE_WIDTH) /* on a line of its own */
      fprintf(f, "\n%*s", USAGE_ENV_COL + len > USAGE_WIDTH ? USAGE_HELP_COL : USAGE_ENV_COL, "");
    else
      usage_pad(f, col, USAGE_ENV_COL, 2);
    fputs(var, f);
  }
  fputc('\n', f);
}

static void usage(FILE *f) {
  fprintf(f, "usage: inferd serve [options]\n"
             "       inferd keys create|list|revoke|rotate --file FILE ...  (inferd keys --help)\n"
             "       inferd traffic COMMAND MODEL ...   (inferd traffic --help)\n"
             "       inferd profile --model NAME --repository DIR --data FILE.csv|.jsonl  (docs/observability.md)\n"
             "       inferd token verify --jwks FILE|--secret-file FILE TOKEN  (inferd token --help)\n"
             "       inferd tokenize --tokenizer tokenizer.json [--decode]  (inferd tokenize --help)\n"
             "       inferd generate --model-repository DIR --model M --prompt TEXT  (inferd generate --help)\n"
             "       inferd version\n\n");
  for (size_t i = 0; i < N_SERVE_FLAGS; i++) {
    const serve_flag *fl = &serve_flags[i];
    if (fl->name == NULL)
      fprintf(f, "%s\n", fl->help);
    else if (fl->help)
      usage_flag(f, fl);
  }
  fputs(OBS_OPTIONS_USAGE, f);
}

/* Sets option c from val; `name` is how the user gave it, for the message. */
static int apply_option(serve_options *o, int c, const char *name, const char *val) {
  long long v = 0;
  if (c >= OBS_OPTION_BASE && c < OBS_OPTION_BASE + OBS_OPTION_COUNT) {
    inferd_status st = obs_option_apply(&o->obs, c - OBS_OPTION_BASE, name, val);
    if (!status_is_ok(&st)) fprintf(stderr, "inferd: %s\n", st.msg);
    return status_is_ok(&st) ? 0 : -1;
  }
  switch (c) {
    case OPT_MODEL_REPOSITORY: o->model_repository = val; return 0;
    case OPT_HOST: o->host = val; return 0;
    case OPT_HTTP_PORT: if (parse_num(name, val, 0, 65535, &v)) return -1; o->http_port = (long)v; return 0;
    case OPT_HTTP_THREADS: if (parse_num(name, val, 1, 64, &v)) return -1; o->http_threads = (long)v; return 0;
    case OPT_WORKER_THREADS: if (parse_num(name, val, 1, 256, &v)) return -1; o->worker_threads = (long)v; return 0;
    case OPT_MAX_BODY_BYTES: if (parse_num(name, val, 1, 1LL << 40, &v)) return -1; o->max_body_bytes = v; return 0;
    case OPT_DRAIN_TIMEOUT_MS: if (parse_num(name, val, 0, 3600000, &v)) return -1; o->drain_timeout_ms = (long)v; return 0;
    case OPT_GRPC_PORT: if (parse_num(name, val, 0, 65535, &v)) return -1; o->grpc_port = (long)v; return 0;
    case OPT_GRPC_MAX_MESSAGE_BYTES: if (parse_num(name, val, 1024, 2147483647, &v)) return -1; o->grpc_max_message_bytes = (long)v; return 0;
    case OPT_GRPC_THREADS: if (parse_num(name, val, 1, 64, &v)) return -1; o->grpc_threads = (long)v; return 0;
    case OPT_DEFAULT_MODEL: o->default_model = val; return 0;
    case OPT_STATE_DIR: o->state_dir = val; return 0;
    case OPT_MAX_RECORDS: if (parse_num(name, val, 1, 1000000, &v)) return -1; o->max_records = (long)v; return 0;
    case OPT_REQUEST_HEAD_TIMEOUT_MS: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->head_timeout_ms = (long)v; return 0;
    case OPT_BODY_TIMEOUT_MS: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->body_timeout_ms = (long)v; return 0;
    case OPT_MIN_BODY_RATE: if (parse_num(name, val, 0, 1L << 30, &v)) return -1; o->min_body_rate = (long)v; return 0;
    case OPT_KEEPALIVE_TIMEOUT_MS: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->keepalive_timeout_ms = (long)v; return 0;
    case OPT_SEND_TIMEOUT_MS: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->send_timeout_ms = (long)v; return 0;
    case OPT_MAX_CONNECTIONS: if (parse_num(name, val, 1, 10000000, &v)) return -1; o->max_connections = (long)v; return 0;
    case OPT_STREAM_HEARTBEAT_MS: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->stream_heartbeat_ms = (long)v; return 0;
    case OPT_STREAM_MAX_BUFFERED_BYTES: if (parse_num(name, val, 1024, 1L << 30, &v)) return -1; o->stream_max_buffered = (long)v; return 0;
    case OPT_MODEL_CONTROL_MODE:
      if (strcmp(val, "none") == 0) o->control_mode = REPO_CONTROL_NONE;
      else if (strcmp(val, "poll") == 0) o->control_mode = REPO_CONTROL_POLL;
      else if (strcmp(val, "explicit") == 0) o->control_mode = REPO_CONTROL_EXPLICIT;
      else {
        fprintf(stderr, "inferd: %s must be none, poll or explicit, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case OPT_REPOSITORY_POLL_SECS: if (parse_num(name, val, 1, 86400, &v)) return -1; o->poll_secs = (long)v; return 0;
    case OPT_RATE_LIMIT: {
      inferd_status st = limits_parse_rate(name, val, &o->limits.rate_per_s);
      if (!status_is_ok(&st)) fprintf(stderr, "inferd: %s\n", st.msg);
      return status_is_ok(&st) ? 0 : -1;
    }
    case OPT_RATE_BURST: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.burst = v; return 0;
    case OPT_MAX_CONCURRENT: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.max_concurrent = v; return 0;
    case OPT_RECORDS_PER_MINUTE: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.records_per_min = v; return 0;
    case OPT_TOKENS_PER_MINUTE: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.tokens_per_min = v; return 0;
    case OPT_RATE_LIMIT_PER_MODEL: /* a flag; its variable says 1/true or 0/false */
      if (val == NULL || strcmp(val, "1") == 0 || strcmp(val, "true") == 0) o->limits.per_model = true;
      else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0) o->limits.per_model = false;
      else {
        fprintf(stderr, "inferd: %s must be 1, true, 0 or false, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case OPT_OTLP_ENDPOINT: o->trace.otlp_endpoint = *val ? val : NULL; return 0;
    case OPT_OTLP_PROTOCOL:
      if (strcmp(val, "http/protobuf") == 0) o->trace.otlp_json = false;
      else if (strcmp(val, "http/json") == 0) o->trace.otlp_json = true;
      else {
        fprintf(stderr, "inferd: %s must be http/protobuf or http/json, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case OPT_TRACE_SAMPLE_RATIO: {
      char *end;
      errno = 0;
      double r = strtod(val, &end);
      if (errno || *val == '\0' || *end != '\0' || !(r >= 0 && r <= 1)) {
        fprintf(stderr, "inferd: %s must be a number from 0 to 1, got '%s'\n", name, val);
        return -1;
      }
      o->trace.sample_ratio = r;
      return 0;
    }
    case OPT_OTLP_SERVICE_NAME: o->trace.service_name = val; return 0;
    case OPT_OTLP_QUEUE_SIZE: if (parse_num(name, val, 1, 1000000, &v)) return -1; o->trace.queue_size = (int)v; return 0;
    case OPT_OTLP_BATCH_SIZE: if (parse_num(name, val, 5, 100000, &v)) return -1; /* a request makes up to 5 spans */ o->trace.batch_size = (int)v; return 0;
    case OPT_OTLP_EXPORT_INTERVAL_MS: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->trace.export_interval_ms = (int)v; return 0;
    case OPT_OTLP_TIMEOUT_MS: if (parse_num(name, val, 1, 600000, &v)) return -1; o->trace.timeout_ms = (int)v; return 0;
    case OPT_API_KEYS: o->api_keys = *val ? val : NULL; return 0;
    case OPT_JWT_JWKS: o->jwt_jwks = *val ? val : NULL; return 0;
    case OPT_JWT_SECRET_FILE: o->jwt_secret_file = *val ? val : NULL; return 0;
    case OPT_JWT_ISSUER: o->jwt_issuer = *val ? val : NULL; return 0;
    case OPT_JWT_AUDIENCE: o->jwt_audience = *val ? val : NULL; return 0;
    case OPT_CORS_ORIGINS: o->cors_origins = *val ? val : NULL; return 0;
    case OPT_JWT_SCOPE_CLAIM: o->jwt_scope_claim = *val ? val : NULL; return 0;
    case OPT_METRICS:
      if (strcmp(val, "on") == 0) o->metrics = true;
      else if (strcmp(val, "off") == 0) o->metrics = false;
      else {
        fprintf(stderr, "inferd: %s must be on or off, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case OPT_METRICS_PORT: if (parse_num(name, val, 0, 65535, &v)) return -1; o->metrics_port = (long)v; return 0;
    case OPT_LOG_FORMAT:
      if (strcmp(val, "json") == 0) o->log_fmt = LOG_FORMAT_JSON;
      else if (strcmp(val, "text") == 0) o->log_fmt = LOG_FORMAT_TEXT;
      else {
        fprintf(stderr, "inferd: %s must be json or text, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case OPT_REDIS_URL: o->redis_url = *val ? val : NULL; return 0;
    case OPT_REDIS_TIMEOUT_MS: if (parse_num(name, val, 1, 60000, &v)) return -1; o->redis_timeout_ms = (long)v; return 0;
    case OPT_TLS_CERT: o->tls_cert = val; return 0;
    case OPT_TLS_KEY: o->tls_key = val; return 0;
    case OPT_TLS_CLIENT_CA: o->tls_client_ca = val; return 0;
    case OPT_TLS_CLIENT_AUTH:
      if (strcmp(val, "required") != 0 && strcmp(val, "optional") != 0) {
        fprintf(stderr, "inferd: %s must be required or optional, got '%s'\n", name, val);
        return -1;
      }
      o->tls_client_auth = val;
      return 0;
    case OPT_HTTP_PLAIN_PORT: if (parse_num(name, val, 0, 65535, &v)) return -1; o->http_plain_port = (long)v; return 0;
    case OPT_JOBS:
      if (strcmp(val, "on") == 0) o->jobs = true;
      else if (strcmp(val, "off") == 0) o->jobs = false;
      else {
        fprintf(stderr, "inferd: %s must be on or off, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case OPT_MAX_JOB_BODY_BYTES: if (parse_num(name, val, 1, 1LL << 44, &v)) return -1; o->max_job_body_bytes = v; return 0;
    case OPT_MAX_JOB_RECORDS: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->job_opts.max_job_records = v; return 0;
    case OPT_MAX_JOBS_PER_PRINCIPAL: if (parse_num(name, val, 1, 1000000, &v)) return -1; o->job_opts.max_active_jobs = v; return 0;
    case OPT_MAX_JOB_RECORDS_PER_PRINCIPAL: if (parse_num(name, val, 1, 10000000000LL, &v)) return -1; o->job_opts.max_active_records = v; return 0;
    case OPT_JOB_CHUNK_RECORDS: if (parse_num(name, val, 1, JOBS_MAX_CHUNK, &v)) return -1; o->job_opts.chunk_records = v; return 0;
    case OPT_JOB_CHUNKS_IN_FLIGHT: if (parse_num(name, val, 1, 64, &v)) return -1; o->job_opts.max_inflight = (int)v; return 0;
    case OPT_WEBHOOK_SECRET_FILE: o->webhook_secret_file = *val ? val : NULL; return 0;
    case OPT_WEBHOOK_RETRY_SECONDS: if (parse_num(name, val, 1, 30L * 86400, &v)) return -1; o->webhook_retry_seconds = (long)v; return 0;
    case OPT_WEBHOOK_TIMEOUT_MS: if (parse_num(name, val, 1, 600000, &v)) return -1; o->webhook_timeout_ms = (long)v; return 0;
    case OPT_JOBS_CLAIM_TIMEOUT_MS: if (parse_num(name, val, 100, 86400000, &v)) return -1; o->job_opts.claim_timeout_ms = v; return 0;
    case OPT_JOBS_TTL_SECONDS: if (parse_num(name, val, 1, 365L * 86400, &v)) return -1; o->job_opts.ttl_seconds = v; return 0;
    case OPT_LOAD_MODEL:
      if (*val == '\0' || o->n_load_models == sizeof o->load_models / sizeof o->load_models[0]) {
        fprintf(stderr, "inferd: %s needs a model name (at most 64 of them)\n", name);
        return -1;
      }
      o->load_models[o->n_load_models++] = val;
      return 0;
  }
  return -1;
}

static int parse_serve(int argc, char **argv, serve_options *o) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  *o = (serve_options){.host = "0.0.0.0", .http_port = 8000, .http_threads = 2,
                       .worker_threads = cores > 0 ? cores : 2, .max_body_bytes = 64LL << 20,
                       .drain_timeout_ms = 10000, .grpc_port = 8001, .grpc_max_message_bytes = 64L << 20, .grpc_threads = 1,
                       .max_records = 1000, .head_timeout_ms = 20000, .body_timeout_ms = 30000,
                       .min_body_rate = 1024, .keepalive_timeout_ms = 120000, .send_timeout_ms = 30000,
                       .max_connections = 16384, .control_mode = REPO_CONTROL_NONE, .poll_secs = 15,
                       .trace = {.sample_ratio = 1.0, .service_name = "inferd", .service_version = INFERD_VERSION,
                                 .queue_size = 2048, .batch_size = 512, .export_interval_ms = 1000, .timeout_ms = 2000},
                       .metrics_port = -1, .metrics = true, .log_fmt = LOG_FORMAT_JSON,
                       .http_plain_port = -1, .webhook_retry_seconds = 3600, .webhook_timeout_ms = 15000,
                       .jobs = true, .max_job_body_bytes = 4LL << 30};
  obs_options_default(&o->obs);
  struct option longopts[N_SERVE_FLAGS + 1];
  size_t n = 0;
  for (const serve_flag *fl = serve_flags; fl < serve_flags + N_SERVE_FLAGS; fl++) {
    if (fl->name == NULL) continue;
    longopts[n++] = (struct option){fl->name, fl->arg ? required_argument : no_argument, NULL, fl->code};
    if (fl->no_env) continue;
    char env[64];
    option_env_name(fl->name, env, sizeof env);
    const char *val = getenv(env);
    if (val && apply_option(o, fl->code, env, val)) return -1;
  }
  longopts[n] = (struct option){0};
  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
    if (c == '?') {
      usage(stderr);
      return -1;
    }
    if (c == OPT_HELP) {
      usage(stdout);
      exit(0);
    }
    char name[64];
    snprintf(name, sizeof name, "--%s", longopts[idx].name);
    if (apply_option(o, c, name, optarg)) return -1;
  }
  if (optind < argc) {
    fprintf(stderr, "inferd: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  if (o->limits.burst && o->limits.rate_per_s == 0) {
    fprintf(stderr, "inferd: --rate-burst needs --rate-limit\n");
    return -1;
  }
  if (o->limits.rate_per_s > 0) { /* the limiter's bound on a full burst's refill time */
    ratelimit_rule r = {.rate_per_s = o->limits.rate_per_s,
                        .burst = o->limits.burst ? o->limits.burst : (o->limits.rate_per_s >= 1 ? (int64_t)o->limits.rate_per_s : 1)};
    const char *why = ratelimit_rule_check(&r);
    if (why) {
      fprintf(stderr, "inferd: --rate-limit and --rate-burst: %s\n", why);
      return -1;
    }
  }
  if (o->metrics_port >= 0 && !o->metrics) {
    fprintf(stderr, "inferd: --metrics-port needs --metrics on\n");
    return -1;
  }
  if (o->n_load_models && o->control_mode != REPO_CONTROL_EXPLICIT) {
    fprintf(stderr, "inferd: --load-model needs --model-control-mode explicit (the other modes load every model)\n");
    return -1;
  }
  if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
    fprintf(stderr, "inferd: TLS needs both --tls-cert and --tls-key\n");
    return -1;
  }
  if (o->tls_cert == NULL && (o->tls_client_ca || o->tls_client_auth || o->http_plain_port >= 0)) {
    fprintf(stderr, "inferd: --tls-client-ca, --tls-client-auth and --http-plain-port need --tls-cert and --tls-key\n");
    return -1;
  }
  if (o->tls_client_auth && o->tls_client_ca == NULL) {
    fprintf(stderr, "inferd: --tls-client-auth needs --tls-client-ca (the CAs client certificates are checked against)\n");
    return -1;
  }
  if (o->model_repository == NULL) {
    fprintf(stderr, "inferd: --model-repository (or INFERD_MODEL_REPOSITORY) is required\n");
    return -1;
  }
  return 0;
}

/* Connections need descriptors: take the hard limit the system allows (a soft limit of 1024
 * is a common default), and say so when it is still below --max-connections. */
static void raise_fd_limit(long max_connections) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur < (long long)max_connections + 64)
    log_msg(LOG_WARN, NULL,
            "the file descriptor limit (%llu) is below --max-connections (%ld): past it, accepts pause and are "
            "retried every 100 ms", (unsigned long long)rl.rlim_cur, max_connections);
}

/* --state-dir, else inferd-state beside the repository (as traffic/ resolves it). */
static const char *state_dir_of(const serve_options *o, char *buf, size_t len) {
  if (o->state_dir && *o->state_dir) return o->state_dir;
  char repo[4096];
  snprintf(repo, sizeof repo, "%s", o->model_repository);
  size_t n = strlen(repo);
  while (n > 1 && repo[n - 1] == '/') repo[--n] = '\0';
  char *slash = strrchr(repo, '/');
  if (slash == NULL) snprintf(buf, len, "inferd-state");
  else if (slash == repo) snprintf(buf, len, "/inferd-state");
  else {
    *slash = '\0';
    snprintf(buf, len, "%s/inferd-state", repo);
  }
  return buf;
}

/* Loopback addresses only reach this machine: no warning for an open server there. */
static bool host_is_loopback(const char *host) {
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

typedef struct server_parts {
  auth *au;
  cors_policy *cors;
  app *a;
  capture *cap;
  metrics *mreg;
  tracer *trace;
  traffic *tr;
  limits *lim;  /* the rate limits (security/limits) */
  tlsconf *tls; /* NULL: plain HTTP and gRPC */
  http_server *http;
  grpcfe *grpc;
  http_server *mport; /* --metrics-port: a second HTTP server, GET /metrics alone */
  obs_stream_collector cache_metrics; /* the prediction cache's counters on /metrics */
  obs_stream_collector traffic_metrics; /* traffic's /metrics families (traffic may not link observability) */
  jobs *jobs; /* async batch jobs (jobs/); NULL: --jobs off */
  obs_stream_collector jobs_metrics;
  webhooks *hooks; /* outbound webhook deliveries (jobs/webhook.h): the jobs layer sends through it;
                    * NULL: --jobs off */
  obs_stream_collector webhook_metrics;
  obs_stream_collector gen_metrics;     /* generation's (generate/ may not link observability) */
  rstore *rs;                         /* the shared-state Redis (--redis-url); NULL: none */
  obs_stream_collector redis_metrics; /* its inferd_redis_* families */
} server_parts;

/* Starts every part; 0, or the exit code of a failed start (after logging why). */
static void traffic_metrics_stream(void *ctx, FILE *f) { traffic_metrics_write(ctx, f); }

/* generate/ and security/ do not see each other: a generation's token budget, through here */
static inferd_status gen_tokens_take(void *ctx, const principal *p, const char *model, int64_t tokens) {
  return limits_tokens_take(ctx, p, model, tokens);
}
static void gen_tokens_give_back(void *ctx, const principal *p, const char *model, int64_t tokens) {
  limits_tokens_give_back(ctx, p, model, tokens);
}

static int start(const serve_options *o, server_parts *p) {
  /* Credentials first: a key file that does not parse stops the start, before any model loads. */
  auth_options auo = {.api_keys_path = o->api_keys, .jwt_jwks_path = o->jwt_jwks, .jwt_secret_path = o->jwt_secret_file,
                      .jwt_issuer = o->jwt_issuer, .jwt_audience = o->jwt_audience,
                      .jwt_scope_claim = o->jwt_scope_claim};
  inferd_status st = auth_create(&auo, &p->au);
  if (status_is_ok(&st)) st = cors_parse(o->cors_origins, &p->cors);
  if (!status_is_ok(&st)) goto fail2;

  app_options ao = {.model_repository = o->model_repository, .worker_threads = (int)o->worker_threads,
                    .control_mode = o->control_mode, .poll_secs = (int)o->poll_secs, .load_models = o->load_models,
                    .n_load_models = o->n_load_models, .drain_timeout_ms = (int)o->drain_timeout_ms};
  st = app_create(&ao, &p->a);
  if (!status_is_ok(&st)) goto fail1;
  app *a = p->a;
  a->default_model = o->default_model;
  a->max_records = (int)o->max_records;
  limit_store *shared_limits = NULL;
  if (o->redis_url) { /* before the features that share state through it */
    rstore_options ro = {.url = o->redis_url, .timeout_ms = (int)o->redis_timeout_ms};
    st = rstore_create(&ro, &p->rs);
    if (!status_is_ok(&st)) goto fail2;
    a->rstore = p->rs;
    log_msg(LOG_INFO, NULL, "redis: shared state at %s (%s at start)", rstore_url_text(p->rs),
            rstore_up(p->rs) ? "connected" : "not reachable yet: local fallback until it is");
    st = limit_store_redis_create(p->rs, o->limits.max_keys, rstore_default_timeout_ms(p->rs), &shared_limits);
    if (status_is_ok(&st)) st = cache_set_shared(p->rs);
    if (!status_is_ok(&st)) goto fail1;
  }
  /* the features plug into the pipeline's stages before any request can arrive */
  gen_install(a->serve); /* a generation's hand-off goes to its version's engine (generate/) */
  st = auth_install(p->au, a->serve); /* the admit stage's infer:<model> check, on every protocol */
  if (status_is_ok(&st)) st = cache_install(a->serve); /* lookup and cache_store: opt-in per model */
  /* the rate limits after it: a caller refused its scope spends none of its budget */
  if (status_is_ok(&st)) st = limits_create(&o->limits, shared_limits, &p->lim);
  if (status_is_ok(&st)) st = limits_register(p->lim, a->serve);
  if (status_is_ok(&st)) gen_set_quota(&(gen_quota){.take = gen_tokens_take, .give_back = gen_tokens_give_back, .ctx = p->lim});
  if (status_is_ok(&st)) st = drift_serve_register(a->serve);
  if (status_is_ok(&st) && o->obs.capture.dir) st = capture_create(&o->obs.capture, &p->cap);
  if (status_is_ok(&st) && p->cap) st = capture_serve_register(p->cap, a->serve);
  if (status_is_ok(&st) && o->metrics) st = metrics_create(a, &p->mreg);
  a->metrics = p->mreg;
  if (status_is_ok(&st) && o->trace.otlp_endpoint) {
    st = trace_create(&o->trace, a->serve, &p->trace);
    if (status_is_ok(&st))
      log_msg(LOG_INFO, NULL, "tracing: exporting OTLP/HTTP (%s) to %s, sampling %g of requests without a parent",
              o->trace.otlp_json ? "json" : "protobuf", o->trace.otlp_endpoint, o->trace.sample_ratio);
  }
  if (!status_is_ok(&st)) goto fail2;
  if (o->default_model) { /* the folder, not what has loaded yet: the first scan may be under way */
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", o->model_repository, o->default_model);
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      st = status_make(INFERD_INVALID_ARGUMENT, "--default-model: no model '%s' in %s", o->default_model,
                       o->model_repository);
      goto fail2;
    }
  }
  traffic_options to = {.state_dir = o->state_dir, .model_repository = o->model_repository, .rstore = p->rs};
  st = traffic_create(a, &to, &p->tr);
  if (!status_is_ok(&st)) goto fail1;
  if (o->jobs) { /* after the pipeline's stages are in place: the executor resumes jobs at once */
    /* webhooks deliver the jobs' completion callbacks (a job's callback_url), and nothing else:
     * with --jobs off there is nothing to send, so no webhook thread */
    webhook_options who;
    webhook_options_default(&who);
    who.secret_file = o->webhook_secret_file;
    who.retry_window_ms = (int64_t)o->webhook_retry_seconds * 1000;
    who.timeout_ms = (int)o->webhook_timeout_ms;
    st = webhooks_create(&who, &p->hooks);
    if (!status_is_ok(&st)) goto fail2; /* a secret file missing or malformed */
    if (!webhooks_signed(p->hooks))
      log_msg(LOG_INFO, NULL, "webhooks: deliveries are not signed (no --webhook-secret-file)");
    char dir[4096];
    jobs_options jo = o->job_opts;
    jo.state_dir = state_dir_of(o, dir, sizeof dir);
    jo.rstore = p->rs; /* --redis-url: jobs shared by the replicas */
    jo.hooks = p->hooks; /* completion webhooks */
    st = jobs_create(a, &jo, &p->jobs);
    if (!status_is_ok(&st)) goto fail1;
  }

  if (o->tls_cert) {
    tlsconf_options tlo = {.cert_file = o->tls_cert, .key_file = o->tls_key, .client_ca_file = o->tls_client_ca,
                           .client_auth = o->tls_client_auth && strcmp(o->tls_client_auth, "optional") == 0
                                              ? TLSCONF_CLIENT_OPTIONAL : TLSCONF_CLIENT_REQUIRED};
    st = tlsconf_create(&tlo, &p->tls);
    if (!status_is_ok(&st)) goto fail2;
  }
  http_options ho = {.tls = p->tls, .plain_port = (int)o->http_plain_port, .host = o->host, .port = (int)o->http_port, .threads = (int)o->http_threads,
                     .max_body_bytes = (size_t)o->max_body_bytes, .drain_timeout_ms = (int)o->drain_timeout_ms,
                     .head_timeout_ms = (int)o->head_timeout_ms, .body_timeout_ms = (int)o->body_timeout_ms,
                     .min_body_rate = (int)o->min_body_rate, .keepalive_timeout_ms = (int)o->keepalive_timeout_ms,
                     .send_timeout_ms = (int)o->send_timeout_ms, .max_connections = o->max_connections,
                     .stream_heartbeat_ms = (int)o->stream_heartbeat_ms, .stream_max_buffered = (size_t)o->stream_max_buffered,
                     .auth = p->au, .cors = p->cors, .jobs = p->jobs,
                     .max_job_body_bytes = (size_t)o->max_job_body_bytes};
  raise_fd_limit(o->max_connections);
  st = http_server_create(&ho, a, &p->http);
  if (!status_is_ok(&st)) goto fail1;
  log_msg(LOG_INFO, NULL, "inferd %s serving %s over %s on %s:%d", INFERD_VERSION, o->model_repository,
          p->tls ? "HTTPS" : "HTTP", o->host, http_server_port(p->http));
  if (p->tls && http_server_plain_port(p->http))
    log_msg(LOG_INFO, NULL, "plain HTTP too on %s:%d (--http-plain-port)", o->host, http_server_plain_port(p->http));
  if (p->tls && o->tls_client_ca)
    log_msg(LOG_INFO, NULL, "client certificates %s (--tls-client-auth), checked against %s",
            tlsconf_client_mode(p->tls) == TLSCONF_CLIENT_OPTIONAL ? "optional" : "required", o->tls_client_ca);
  grpcfe_options go = {.host = o->host, .port = (int)o->grpc_port, .threads = (int)o->grpc_threads,
                       .max_message_bytes = (int)o->grpc_max_message_bytes, .drain_timeout_ms = (int)o->drain_timeout_ms,
                       .auth = p->au, .tls = p->tls};
  st = grpcfe_create(&go, a, &p->grpc);
  if (!status_is_ok(&st)) goto fail1;
  log_msg(LOG_INFO, NULL, "serving gRPC%s on %s:%d", p->tls ? " over TLS" : "", o->host, grpcfe_port(p->grpc));
  if (p->mreg) {
    /* the frontends' gauges; later features add theirs the same way */
    st = metrics_register_collector(p->mreg, http_metrics_collect, p->http);
    if (status_is_ok(&st)) st = metrics_register_collector(p->mreg, grpcfe_metrics_collect, p->grpc);
    if (status_is_ok(&st)) st = obs_collectors_register(p->mreg, a, p->trace, p->cap);
    p->cache_metrics = (obs_stream_collector){.write = cache_metrics_write, .ctx = NULL};
    if (status_is_ok(&st)) st = obs_collectors_register_stream(p->mreg, &p->cache_metrics);
    p->traffic_metrics = (obs_stream_collector){.write = traffic_metrics_stream, .ctx = p->tr};
    if (status_is_ok(&st)) st = obs_collectors_register_stream(p->mreg, &p->traffic_metrics);
    p->jobs_metrics = (obs_stream_collector){.write = jobs_metrics_write, .ctx = p->jobs};
    if (status_is_ok(&st) && p->jobs) st = obs_collectors_register_stream(p->mreg, &p->jobs_metrics);
    p->webhook_metrics = (obs_stream_collector){.write = webhooks_metrics_write, .ctx = p->hooks};
    if (status_is_ok(&st) && p->hooks) st = obs_collectors_register_stream(p->mreg, &p->webhook_metrics);
    p->gen_metrics = (obs_stream_collector){.write = gen_metrics_write, .ctx = NULL};
    if (status_is_ok(&st)) st = obs_collectors_register_stream(p->mreg, &p->gen_metrics);
    if (p->rs) {
      p->redis_metrics = (obs_stream_collector){.write = rstore_metrics_write, .ctx = p->rs};
      if (status_is_ok(&st)) st = obs_collectors_register_stream(p->mreg, &p->redis_metrics);
    }
    if (status_is_ok(&st) && o->metrics_port >= 0) {
      /* the same authentication and TLS as the HTTP port: a scraper needs the metrics scope */
      http_options mo = ho;
      mo.port = (int)o->metrics_port;
      mo.threads = 1;
      mo.plain_port = -1;
      mo.cors = NULL;
      mo.only_path = "/metrics";
      st = http_server_create(&mo, a, &p->mport);
      if (p->mport)
        log_msg(LOG_INFO, NULL, "serving metrics on %s:%d%s", o->host, http_server_port(p->mport), p->tls ? " over TLS" : "");
    }
    if (!status_is_ok(&st)) goto fail1; /* e.g. --metrics-port taken */
  }
  if (auth_enabled(p->au))
    log_msg(LOG_INFO, NULL, "authentication on: every route but the health probes needs a credential (%s%s%s)",
            o->api_keys ? "--api-keys" : "", o->api_keys && (o->jwt_jwks || o->jwt_secret_file) ? ", " : "",
            o->jwt_jwks || o->jwt_secret_file ? "JWT" : "");
  else if (!host_is_loopback(o->host))
    log_msg(LOG_WARN, NULL,
            "WARNING: NO AUTHENTICATION. inferd is bound to %s, reachable from other machines, and anyone who can "
            "reach ports %d (HTTP) and %d (gRPC) can run, load and unload models. Configure --api-keys (inferd keys "
            "create) or --jwt-jwks, or bind --host 127.0.0.1 (docs/security.md).",
            o->host, http_server_port(p->http), grpcfe_port(p->grpc));
  return 0;
fail1: /* a failure of the machine or the environment (a port taken, a state dir unwritable) */
  log_msg(LOG_ERROR, NULL, "%s", st.msg);
  return 1;
fail2: /* a mistake in the configuration */
  log_msg(LOG_ERROR, NULL, "%s", st.msg);
  return 2;
}

/* Drains and frees whatever start() made, in this order: both frontends stop taking calls and
 * drain together; what is still queued is answered 503 through the loops, still running; then
 * the features, each after everything that could still use it. */
static void stop(server_parts *p, long drain_timeout_ms) {
  if (p->a) atomic_store(&p->a->draining, true);
  jobs_stop(p->jobs); /* no new chunks; those in flight finish with the drain */
  int64_t drain_end = monotime_ns() + (int64_t)drain_timeout_ms * 1000000;
  if (p->grpc) grpcfe_begin_drain(p->grpc);
  if (p->http) http_server_drain(p->http);
  if (p->mport) http_server_drain(p->mport);
  /* generations (long streams) get the rest of the drain; those still running then end now,
   * with their reason, while the frontends' loops and reply thread still deliver it (before
   * gRPC core cancels the calls left at the drain's end) */
  int left = gen_shutdown(drain_end, 5000);
  if (left > 0) log_msg(LOG_WARN, NULL, "shutdown: %d generations did not end within 5 s", left);
  if (p->grpc) grpcfe_drain(p->grpc);
  /* Redis next: requests parked on a cache lookup are resumed into the still-running scheduler,
   * and what uses the store later (traffic's tick) gets UNAVAILABLE and its local state */
  rstore_stop(p->rs);
  if (p->a) app_stop_work(p->a);
  if (p->http) http_server_destroy(p->http);
  if (p->mport) http_server_destroy(p->mport);
  /* no request runs now, so nothing sends: deliveries still held end "shutting down", their
   * callbacks reaching into the jobs layer, which must outlive this (freed after the last scrape) */
  webhooks_stop(p->hooks);
  jobs_destroy(p->jobs); /* every chunk has completed (app_stop_work failed the queued ones); after
                          * webhooks_stop, whose last callbacks record their outcome in the job store */
  if (p->grpc) grpcfe_destroy(p->grpc);
  tlsconf_destroy(p->tls); /* after both frontends: connections hold its contexts */
  if (p->tr) traffic_destroy(p->tr);
  capture_destroy(p->cap); /* no request completes any more: write what is queued */
  if (p->a) app_destroy(p->a);
  limits_destroy(p->lim); /* no request holds a slot now */
  trace_destroy(p->trace); /* after the last completion (and the pipeline) is gone: exports what is left */
  auth_destroy(p->au);     /* after everything that could still admit a request */
  cors_free(p->cors);
  metrics_destroy(p->mreg);
  webhooks_destroy(p->hooks); /* its counters were a collector of the registry */
  rstore_destroy(p->rs); /* last: traffic and the limits held it */
}

static int cmd_serve(int argc, char **argv) {
  serve_options o;
  if (parse_serve(argc, argv, &o)) return 2;
  log_set_format(o.log_fmt); /* before any thread starts or any line is written */

  /* Signals are taken by sigwait below, never delivered to a serving thread. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* The layers above the core plug into it before any model loads: the backends into its
   * registry, the application API as a version-load hook. */
  inferd_status reg = backends_register_builtin();
  if (status_is_ok(&reg)) reg = application_register();
  if (status_is_ok(&reg)) reg = drift_register(&o.obs.drift); /* after application: it binds to the schema */
  if (status_is_ok(&reg)) reg = cache_register(); /* each cached version's store (response_cache) */
  if (status_is_ok(&reg)) reg = gen_register(); /* generative versions: tokenizer, engine thread */
  if (!status_is_ok(&reg)) {
    log_msg(LOG_ERROR, NULL, "%s", reg.msg);
    return 1;
  }

  /* What the server is made of, in the order it starts; stop() takes down whatever started, in
   * reverse dependency order, on every path out (a failed start included). */
  server_parts p = {0};
  int rc = start(&o, &p);
  if (rc == 0) {
    int sig = SIGTERM;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
      log_msg(LOG_INFO, NULL, "SIGHUP: rescanning the model repository%s",
              auth_enabled(p.au) ? ", reloading credentials" : "");
      repo_request_rescan(p.a->repo);
      auth_reload(p.au);
      if (p.tls) { /* new connections take the new certificates; open ones keep theirs */
        inferd_status rs = tlsconf_reload(p.tls);
        if (status_is_ok(&rs))
          log_msg(LOG_INFO, NULL, "SIGHUP: TLS certificates reloaded from %s", o.tls_cert);
        else
          log_msg(LOG_ERROR, NULL, "SIGHUP: TLS certificates not reloaded, the previous ones stay: %s", rs.msg);
      }
    }
    log_msg(LOG_INFO, NULL, "%s: draining (up to %ld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT", o.drain_timeout_ms);
  }
  stop(&p, rc == 0 ? o.drain_timeout_ms : 0);
  if (rc == 0) log_msg(LOG_INFO, NULL, "stopped");
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "serve") == 0) return cmd_serve(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "token") == 0) return token_cli_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "keys") == 0) return keys_cli_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "traffic") == 0) return traffic_cli_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "profile") == 0) return profile_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "tokenize") == 0) return tokenize_cli_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "generate") == 0) return generate_cli_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "version") == 0) {
    printf("inferd %s\n", INFERD_VERSION);
    return 0;
  }
  usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
  return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
