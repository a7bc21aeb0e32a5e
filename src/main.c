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

static void usage(FILE *f) {
  fprintf(f,
          "usage: inferd serve [options]\n"
          "       inferd keys create|list|revoke|rotate --file FILE ...  (inferd keys --help)\n"
          "       inferd traffic COMMAND MODEL ...   (inferd traffic --help)\n"
          "       inferd profile --model NAME --repository DIR --data FILE.csv|.jsonl  (docs/observability.md)\n"
          "       inferd token verify --jwks FILE|--secret-file FILE TOKEN  (inferd token --help)\n"
          "       inferd tokenize --tokenizer tokenizer.json [--decode]  (inferd tokenize --help)\n"
          "       inferd generate --model-repository DIR --model M --prompt TEXT  (inferd generate --help)\n"
          "       inferd version\n\n"
          "serve options (each also read from the environment variable shown):\n"
          "  --model-repository DIR   models to serve              INFERD_MODEL_REPOSITORY (required)\n"
          "  --host ADDR              address to listen on         INFERD_HOST (0.0.0.0)\n"
          "  --http-port N            HTTP port                    INFERD_HTTP_PORT (8000)\n"
          "  --http-threads N         HTTP event loops             INFERD_HTTP_THREADS (2)\n"
          "  --grpc-port N            gRPC port                    INFERD_GRPC_PORT (8001)\n"
          "  --grpc-max-message-bytes N  largest gRPC message      INFERD_GRPC_MAX_MESSAGE_BYTES (67108864)\n"
          "  --grpc-threads N         gRPC completion-queue threads  INFERD_GRPC_THREADS (1)\n"
          "  --worker-threads N       inference threads            INFERD_WORKER_THREADS (number of cores)\n"
          "  --max-body-bytes N       largest request body         INFERD_MAX_BODY_BYTES (67108864)\n"
          "  --drain-timeout-ms N     how long SIGTERM waits for requests in flight\n"
          "                                                        INFERD_DRAIN_TIMEOUT_MS (10000)\n"
          "  --default-model NAME     the model MLflow's /invocations serves\n"
          "                                                        INFERD_DEFAULT_MODEL (the only model)\n"
          "  --max-records N          records per /v1 predict request  INFERD_MAX_RECORDS (1000)\n"
          "  --model-control-mode M   none (load all at start), poll (rescan every --repository-poll-secs),\n"
          "                           explicit (load through the API)  INFERD_MODEL_CONTROL_MODE (none)\n"
          "  --repository-poll-secs N poll mode's rescan interval  INFERD_REPOSITORY_POLL_SECS (15)\n"
          "  --load-model NAME        explicit mode: load NAME at start (repeatable; '*' for all)\n"
          "  --state-dir DIR          traffic policies' store and audit log, batch jobs' store\n"
          "                                                        INFERD_STATE_DIR (inferd-state beside the repository)\n"
          "  --metrics on|off         Prometheus metrics at GET /metrics  INFERD_METRICS (on)\n"
          "  --metrics-port N         also serve GET /metrics alone on this port  INFERD_METRICS_PORT (none)\n"
          "  --log-format json|text   log and access-log lines: JSON objects or logfmt  INFERD_LOG_FORMAT (json)\n"
          "SIGHUP rescans the repository in every mode (and reloads TLS files); SIGTERM drains and stops.\n"
          "async batch jobs (docs/jobs.md), kept in --state-dir/jobs.db:\n"
          "  --jobs on|off            the /v1/batch and /v1/batches APIs  INFERD_JOBS (on)\n"
          "  --max-job-body-bytes N   largest job upload (/v1/batch/predict, /v1/files)  INFERD_MAX_JOB_BODY_BYTES (4294967296)\n"
          "  --max-job-records N      records one job may hold     INFERD_MAX_JOB_RECORDS (10000000)\n"
          "  --max-jobs-per-principal N  queued or running jobs per caller  INFERD_MAX_JOBS_PER_PRINCIPAL (16)\n"
          "  --max-job-records-per-principal N  their records not yet done  INFERD_MAX_JOB_RECORDS_PER_PRINCIPAL (20000000)\n"
          "  --job-chunk-records N    records per pipeline request  INFERD_JOB_CHUNK_RECORDS (the model's max_batch_size, at most 1000)\n"
          "  --job-chunks-in-flight N job chunks in the scheduler at once  INFERD_JOB_CHUNKS_IN_FLIGHT (2)\n"
          "  with --redis-url, jobs live in Redis and every replica works them (docs/redis.md, \"Batch jobs\"):\n"
          "  --jobs-claim-timeout-ms N  a dead replica's chunks go to the others after  INFERD_JOBS_CLAIM_TIMEOUT_MS (30000)\n"
          "  --jobs-ttl-seconds N     finished jobs are kept this long  INFERD_JOBS_TTL_SECONDS (604800)\n"
          "HTTP limits on slow and idle clients (docs/http-api.md, \"Limits and timeouts\"):\n"
          "  --request-head-timeout-ms N  time to send a whole request head  INFERD_REQUEST_HEAD_TIMEOUT_MS (20000)\n"
          "  --body-timeout-ms N      time for a body, and the longest pause in one  INFERD_BODY_TIMEOUT_MS (30000)\n"
          "  --min-body-rate N        bytes/s that earn a body one more second  INFERD_MIN_BODY_RATE (1024)\n"
          "  --keepalive-timeout-ms N idle time between requests   INFERD_KEEPALIVE_TIMEOUT_MS (120000)\n"
          "  --send-timeout-ms N      time for a client to take a closing reply  INFERD_SEND_TIMEOUT_MS (30000)\n"
          "  --max-connections N      HTTP connections open at once  INFERD_MAX_CONNECTIONS (16384)\n"
          "  --stream-heartbeat-ms N  a streaming reply (SSE) silent this long sends a comment  INFERD_STREAM_HEARTBEAT_MS (15000)\n"
          "  --stream-max-buffered-bytes N  a stream's bytes the client has not taken before it is cut off\n"
          "                           INFERD_STREAM_MAX_BUFFERED_BYTES (1048576)\n"
          "rate limits, for every caller without limits of its own (docs/security.md#rate-limits):\n"
          "  --rate-limit R           requests per second: 10, 10/s, 600/m, 3600/h  INFERD_RATE_LIMIT (none)\n"
          "  --rate-burst N           requests at once after a pause  INFERD_RATE_BURST (the rate's second)\n"
          "  --max-concurrent N       requests in flight            INFERD_MAX_CONCURRENT (none)\n"
          "  --records-per-minute N   records (rows) per minute     INFERD_RECORDS_PER_MINUTE (none)\n"
          "  --tokens-per-minute N    generated-text tokens (prompt + completion) per minute\n"
          "                                                        INFERD_TOKENS_PER_MINUTE (none)\n"
          "  --rate-limit-per-model   a budget per caller and model  INFERD_RATE_LIMIT_PER_MODEL (per caller)\n"
          "Tracing (docs/observability.md, \"Tracing\"): on when an OTLP endpoint is set\n"
          "  --otlp-endpoint URL      OTLP/HTTP collector (no path: /v1/traces)  INFERD_OTLP_ENDPOINT (off)\n"
          "  --otlp-protocol P        http/protobuf or http/json   INFERD_OTLP_PROTOCOL (http/protobuf)\n"
          "  --trace-sample-ratio R   share of requests sampled when the caller sent no sampled flag\n"
          "                                                        INFERD_TRACE_SAMPLE_RATIO (1)\n"
          "  --otlp-service-name S    the service.name resource attribute  INFERD_OTLP_SERVICE_NAME (inferd)\n"
          "  --otlp-queue-size N      sampled requests waiting for export  INFERD_OTLP_QUEUE_SIZE (2048)\n"
          "  --otlp-batch-size N      spans per export request     INFERD_OTLP_BATCH_SIZE (512)\n"
          "  --otlp-export-interval-ms N  longest wait of a partial batch  INFERD_OTLP_EXPORT_INTERVAL_MS (1000)\n"
          "  --otlp-timeout-ms N      one export request           INFERD_OTLP_TIMEOUT_MS (2000)\n"
          "security (docs/security.md); with none of the first three, every route is open:\n"
          "  --api-keys FILE          API key store (inferd keys)  INFERD_API_KEYS\n"
          "  --jwt-jwks FILE          JWKS with the JWT verification keys  INFERD_JWT_JWKS\n"
          "  --jwt-secret-file FILE   HS256 shared secret for JWTs  INFERD_JWT_SECRET_FILE\n"
          "  --jwt-issuer ISS         required JWT \"iss\"          INFERD_JWT_ISSUER\n"
          "  --jwt-audience AUD       required JWT \"aud\"          INFERD_JWT_AUDIENCE\n"
          "  --jwt-scope-claim NAME   the JWT claim holding scopes  INFERD_JWT_SCOPE_CLAIM (scope, else scp)\n"
          "  --cors-origins LIST      origins browsers may call from (comma-separated, or *)\n"
          "                                                        INFERD_CORS_ORIGINS (none: CORS off)\n"
          "The key and JWT files are reloaded when they change and on SIGHUP.\n"

          "TLS (docs/security.md; SIGHUP reloads the files, open connections keep theirs):\n"
          "  --tls-cert FILE          PEM certificate chain: HTTPS on --http-port, TLS on gRPC  INFERD_TLS_CERT\n"
          "  --tls-key FILE           PEM private key of --tls-cert  INFERD_TLS_KEY\n"
          "  --tls-client-ca FILE     PEM CAs for client certificates (mutual TLS)  INFERD_TLS_CLIENT_CA\n"
          "  --tls-client-auth MODE   required (no valid certificate, no connection) or optional\n"
          "                           (none: accepted without a subject)  INFERD_TLS_CLIENT_AUTH (required)\n"
          "  --http-plain-port N      with TLS, also serve plain HTTP on port N (none by default)\n"
          "                                                        INFERD_HTTP_PLAIN_PORT\n"
          "Webhooks (docs/jobs.md, \"Webhooks\"):\n"
          "  --webhook-secret-file FILE  Standard Webhooks signing secret (whsec_...)  INFERD_WEBHOOK_SECRET_FILE (unsigned)\n"
          "  --webhook-retry-seconds N  how long a delivery is retried  INFERD_WEBHOOK_RETRY_SECONDS (3600)\n"
          "  --webhook-timeout-ms N   one delivery attempt         INFERD_WEBHOOK_TIMEOUT_MS (15000)\n"
          "Shared state across replicas (docs/redis.md): rate limits, the prediction cache's second tier,\n"
          "traffic policies; each falls back to local state while Redis is unreachable:\n"
          "  --redis-url URL          redis://[:password@]host[:port][/db]  INFERD_REDIS_URL (none)\n"
          "  --redis-timeout-ms N     longest wait for one Redis answer  INFERD_REDIS_TIMEOUT_MS (50)\n%s",
          OBS_OPTIONS_USAGE);
}

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

static const struct option serve_longopts[] = {
    {"model-repository", required_argument, 0, 'm'}, {"host", required_argument, 0, 'H'},
    {"http-port", required_argument, 0, 'p'},        {"http-threads", required_argument, 0, 't'},
    {"worker-threads", required_argument, 0, 'w'},   {"max-body-bytes", required_argument, 0, 'b'},
    {"drain-timeout-ms", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
    {"grpc-port", required_argument, 0, 'g'},        {"grpc-max-message-bytes", required_argument, 0, 'G'},
    {"grpc-threads", required_argument, 0, 'T'},
    {"default-model", required_argument, 0, 'M'},    {"max-records", required_argument, 0, 'R'},
    {"request-head-timeout-ms", required_argument, 0, 1000}, {"body-timeout-ms", required_argument, 0, 1001},
    {"min-body-rate", required_argument, 0, 1002},   {"keepalive-timeout-ms", required_argument, 0, 1003},
    {"send-timeout-ms", required_argument, 0, 1004}, {"max-connections", required_argument, 0, 1005},
    {"stream-heartbeat-ms", required_argument, 0, 1780}, {"stream-max-buffered-bytes", required_argument, 0, 1781},
    {"model-control-mode", required_argument, 0, 'C'}, {"repository-poll-secs", required_argument, 0, 'P'},
    {"load-model", required_argument, 0, 'L'}, {"state-dir", required_argument, 0, 'S'},
    {"rate-limit", required_argument, 0, 1200},      {"rate-burst", required_argument, 0, 1201},
    {"max-concurrent", required_argument, 0, 1202},  {"records-per-minute", required_argument, 0, 1203},
    {"rate-limit-per-model", no_argument, 0, 1204}, {"tokens-per-minute", required_argument, 0, 1205},
    {"otlp-endpoint", required_argument, 0, 1100}, {"otlp-protocol", required_argument, 0, 1101},
    {"trace-sample-ratio", required_argument, 0, 1102}, {"otlp-service-name", required_argument, 0, 1103},
    {"otlp-queue-size", required_argument, 0, 1104}, {"otlp-batch-size", required_argument, 0, 1105},
    {"otlp-export-interval-ms", required_argument, 0, 1106}, {"otlp-timeout-ms", required_argument, 0, 1107},
    {"api-keys", required_argument, 0, 1300},        {"jwt-jwks", required_argument, 0, 1301},
    {"jwt-secret-file", required_argument, 0, 1302}, {"jwt-issuer", required_argument, 0, 1303},
    {"jwt-audience", required_argument, 0, 1304},    {"cors-origins", required_argument, 0, 1305},
    {"jwt-scope-claim", required_argument, 0, 1306},
    {"drift-window-s", required_argument, 0, OBS_OPTION_BASE + OBS_DRIFT_WINDOW_S},
    {"drift-buckets", required_argument, 0, OBS_OPTION_BASE + OBS_DRIFT_BUCKETS},
    {"drift-psi-warn", required_argument, 0, OBS_OPTION_BASE + OBS_DRIFT_PSI_WARN},
    {"drift-psi-alert", required_argument, 0, OBS_OPTION_BASE + OBS_DRIFT_PSI_ALERT},
    {"drift-min-samples", required_argument, 0, OBS_OPTION_BASE + OBS_DRIFT_MIN_SAMPLES},
    {"capture-dir", required_argument, 0, OBS_OPTION_BASE + OBS_CAPTURE_DIR},
    {"capture-percent", required_argument, 0, OBS_OPTION_BASE + OBS_CAPTURE_PERCENT},
    {"capture-max-file-bytes", required_argument, 0, OBS_OPTION_BASE + OBS_CAPTURE_MAX_FILE_BYTES},
    {"capture-max-files", required_argument, 0, OBS_OPTION_BASE + OBS_CAPTURE_MAX_FILES},
    {"capture-queue", required_argument, 0, OBS_OPTION_BASE + OBS_CAPTURE_QUEUE},
    {"metrics", required_argument, 0, 1006}, {"metrics-port", required_argument, 0, 1007},
    {"log-format", required_argument, 0, 1008},
    {"tls-cert", required_argument, 0, 1400},        {"tls-key", required_argument, 0, 1401},
    {"tls-client-ca", required_argument, 0, 1402},   {"tls-client-auth", required_argument, 0, 1403},
    {"http-plain-port", required_argument, 0, 1404},
    {"webhook-secret-file", required_argument, 0, 1900}, {"webhook-retry-seconds", required_argument, 0, 1901},
    {"webhook-timeout-ms", required_argument, 0, 1902},
    {"redis-url", required_argument, 0, 1600},       {"redis-timeout-ms", required_argument, 0, 1601},
    {"jobs", required_argument, 0, 1700},            {"max-job-body-bytes", required_argument, 0, 1701},
    {"max-job-records", required_argument, 0, 1702}, {"max-jobs-per-principal", required_argument, 0, 1703},
    {"max-job-records-per-principal", required_argument, 0, 1704}, {"job-chunk-records", required_argument, 0, 1705},
    {"job-chunks-in-flight", required_argument, 0, 1706},
    {"jobs-claim-timeout-ms", required_argument, 0, 1707}, {"jobs-ttl-seconds", required_argument, 0, 1708},
    {0, 0, 0, 0}};

/* Every option but --help and the repeatable --load-model can also come from the environment:
 * INFERD_ and its name upper-cased with '-' as '_' (--http-port: INFERD_HTTP_PORT). Derived from
 * serve_longopts so that a new flag gets its variable with no second table to keep. Flags
 * override the variables. */
static void option_env_name(const char *opt, char *out, size_t size) {
  size_t n = (size_t)snprintf(out, size, "INFERD_%s", opt);
  for (size_t i = 7; i < n && i < size; i++)
    out[i] = out[i] == '-' ? '_' : (char)toupper((unsigned char)out[i]);
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
    case 'm': o->model_repository = val; return 0;
    case 'H': o->host = val; return 0;
    case 'p': if (parse_num(name, val, 0, 65535, &v)) return -1; o->http_port = (long)v; return 0;
    case 't': if (parse_num(name, val, 1, 64, &v)) return -1; o->http_threads = (long)v; return 0;
    case 'w': if (parse_num(name, val, 1, 256, &v)) return -1; o->worker_threads = (long)v; return 0;
    case 'b': if (parse_num(name, val, 1, 1LL << 40, &v)) return -1; o->max_body_bytes = v; return 0;
    case 'd': if (parse_num(name, val, 0, 3600000, &v)) return -1; o->drain_timeout_ms = (long)v; return 0;
    case 'g': if (parse_num(name, val, 0, 65535, &v)) return -1; o->grpc_port = (long)v; return 0;
    case 'G': if (parse_num(name, val, 1024, 2147483647, &v)) return -1; o->grpc_max_message_bytes = (long)v; return 0;
    case 'T': if (parse_num(name, val, 1, 64, &v)) return -1; o->grpc_threads = (long)v; return 0;
    case 'M': o->default_model = val; return 0;
    case 'S': o->state_dir = val; return 0;
    case 'R': if (parse_num(name, val, 1, 1000000, &v)) return -1; o->max_records = (long)v; return 0;
    case 1000: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->head_timeout_ms = (long)v; return 0;
    case 1001: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->body_timeout_ms = (long)v; return 0;
    case 1002: if (parse_num(name, val, 0, 1L << 30, &v)) return -1; o->min_body_rate = (long)v; return 0;
    case 1003: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->keepalive_timeout_ms = (long)v; return 0;
    case 1004: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->send_timeout_ms = (long)v; return 0;
    case 1005: if (parse_num(name, val, 1, 10000000, &v)) return -1; o->max_connections = (long)v; return 0;
    case 1780: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->stream_heartbeat_ms = (long)v; return 0;
    case 1781: if (parse_num(name, val, 1024, 1L << 30, &v)) return -1; o->stream_max_buffered = (long)v; return 0;
    case 'C':
      if (strcmp(val, "none") == 0) o->control_mode = REPO_CONTROL_NONE;
      else if (strcmp(val, "poll") == 0) o->control_mode = REPO_CONTROL_POLL;
      else if (strcmp(val, "explicit") == 0) o->control_mode = REPO_CONTROL_EXPLICIT;
      else {
        fprintf(stderr, "inferd: %s must be none, poll or explicit, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case 'P': if (parse_num(name, val, 1, 86400, &v)) return -1; o->poll_secs = (long)v; return 0;
    case 1200: {
      inferd_status st = limits_parse_rate(name, val, &o->limits.rate_per_s);
      if (!status_is_ok(&st)) fprintf(stderr, "inferd: %s\n", st.msg);
      return status_is_ok(&st) ? 0 : -1;
    }
    case 1201: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.burst = v; return 0;
    case 1202: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.max_concurrent = v; return 0;
    case 1203: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.records_per_min = v; return 0;
    case 1205: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->limits.tokens_per_min = v; return 0;
    case 1204: /* a flag; its variable says 1/true or 0/false */
      if (val == NULL || strcmp(val, "1") == 0 || strcmp(val, "true") == 0) o->limits.per_model = true;
      else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0) o->limits.per_model = false;
      else {
        fprintf(stderr, "inferd: %s must be 1, true, 0 or false, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case 1100: o->trace.otlp_endpoint = *val ? val : NULL; return 0;
    case 1101:
      if (strcmp(val, "http/protobuf") == 0) o->trace.otlp_json = false;
      else if (strcmp(val, "http/json") == 0) o->trace.otlp_json = true;
      else {
        fprintf(stderr, "inferd: %s must be http/protobuf or http/json, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case 1102: {
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
    case 1103: o->trace.service_name = val; return 0;
    case 1104: if (parse_num(name, val, 1, 1000000, &v)) return -1; o->trace.queue_size = (int)v; return 0;
    case 1105: if (parse_num(name, val, 5, 100000, &v)) return -1; /* a request makes up to 5 spans */ o->trace.batch_size = (int)v; return 0;
    case 1106: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->trace.export_interval_ms = (int)v; return 0;
    case 1107: if (parse_num(name, val, 1, 600000, &v)) return -1; o->trace.timeout_ms = (int)v; return 0;
    case 1300: o->api_keys = *val ? val : NULL; return 0;
    case 1301: o->jwt_jwks = *val ? val : NULL; return 0;
    case 1302: o->jwt_secret_file = *val ? val : NULL; return 0;
    case 1303: o->jwt_issuer = *val ? val : NULL; return 0;
    case 1304: o->jwt_audience = *val ? val : NULL; return 0;
    case 1305: o->cors_origins = *val ? val : NULL; return 0;
    case 1306: o->jwt_scope_claim = *val ? val : NULL; return 0;
    case 1006:
      if (strcmp(val, "on") == 0) o->metrics = true;
      else if (strcmp(val, "off") == 0) o->metrics = false;
      else {
        fprintf(stderr, "inferd: %s must be on or off, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case 1007: if (parse_num(name, val, 0, 65535, &v)) return -1; o->metrics_port = (long)v; return 0;
    case 1008:
      if (strcmp(val, "json") == 0) o->log_fmt = LOG_FORMAT_JSON;
      else if (strcmp(val, "text") == 0) o->log_fmt = LOG_FORMAT_TEXT;
      else {
        fprintf(stderr, "inferd: %s must be json or text, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case 1600: o->redis_url = *val ? val : NULL; return 0;
    case 1601: if (parse_num(name, val, 1, 60000, &v)) return -1; o->redis_timeout_ms = (long)v; return 0;
    case 1400: o->tls_cert = val; return 0;
    case 1401: o->tls_key = val; return 0;
    case 1402: o->tls_client_ca = val; return 0;
    case 1403:
      if (strcmp(val, "required") != 0 && strcmp(val, "optional") != 0) {
        fprintf(stderr, "inferd: %s must be required or optional, got '%s'\n", name, val);
        return -1;
      }
      o->tls_client_auth = val;
      return 0;
    case 1404: if (parse_num(name, val, 0, 65535, &v)) return -1; o->http_plain_port = (long)v; return 0;
    case 1700:
      if (strcmp(val, "on") == 0) o->jobs = true;
      else if (strcmp(val, "off") == 0) o->jobs = false;
      else {
        fprintf(stderr, "inferd: %s must be on or off, got '%s'\n", name, val);
        return -1;
      }
      return 0;
    case 1701: if (parse_num(name, val, 1, 1LL << 44, &v)) return -1; o->max_job_body_bytes = v; return 0;
    case 1702: if (parse_num(name, val, 1, 1000000000, &v)) return -1; o->job_opts.max_job_records = v; return 0;
    case 1703: if (parse_num(name, val, 1, 1000000, &v)) return -1; o->job_opts.max_active_jobs = v; return 0;
    case 1704: if (parse_num(name, val, 1, 10000000000LL, &v)) return -1; o->job_opts.max_active_records = v; return 0;
    case 1705: if (parse_num(name, val, 1, JOBS_MAX_CHUNK, &v)) return -1; o->job_opts.chunk_records = v; return 0;
    case 1706: if (parse_num(name, val, 1, 64, &v)) return -1; o->job_opts.max_inflight = (int)v; return 0;
    case 1900: o->webhook_secret_file = *val ? val : NULL; return 0;
    case 1901: if (parse_num(name, val, 1, 30L * 86400, &v)) return -1; o->webhook_retry_seconds = (long)v; return 0;
    case 1902: if (parse_num(name, val, 1, 600000, &v)) return -1; o->webhook_timeout_ms = (long)v; return 0;
    case 1707: if (parse_num(name, val, 100, 86400000, &v)) return -1; o->job_opts.claim_timeout_ms = v; return 0;
    case 1708: if (parse_num(name, val, 1, 365L * 86400, &v)) return -1; o->job_opts.ttl_seconds = v; return 0;
    case 'L':
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
  for (const struct option *lo = serve_longopts; lo->name; lo++) {
    if (lo->val == 'h' || lo->val == 'L') continue;
    char env[64];
    option_env_name(lo->name, env, sizeof env);
    const char *val = getenv(env);
    if (val && apply_option(o, lo->val, env, val)) return -1;
  }
  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", serve_longopts, &idx)) != -1) {
    if (c == '?') {
      usage(stderr);
      return -1;
    }
    if (c == 'h') {
      usage(stdout);
      exit(0);
    }
    char name[64];
    snprintf(name, sizeof name, "--%s", serve_longopts[idx].name);
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
  webhooks *hooks; /* outbound webhook deliveries (jobs/webhook.h): the jobs layer sends through it */
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
  webhook_options who;
  webhook_options_default(&who);
  who.secret_file = o->webhook_secret_file;
  who.retry_window_ms = (int64_t)o->webhook_retry_seconds * 1000;
  who.timeout_ms = (int)o->webhook_timeout_ms;
  st = webhooks_create(&who, &p->hooks);
  if (!status_is_ok(&st)) goto fail2; /* a secret file missing or malformed */
  if (!webhooks_signed(p->hooks))
    log_msg(LOG_INFO, NULL, "webhooks: deliveries are not signed (no --webhook-secret-file)");
  if (o->jobs) { /* after the pipeline's stages are in place: the executor resumes jobs at once */
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
    if (status_is_ok(&st)) st = obs_collectors_register_stream(p->mreg, &p->webhook_metrics);
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
static void stop(server_parts *p) {
  if (p->a) atomic_store(&p->a->draining, true);
  jobs_stop(p->jobs); /* no new chunks; those in flight finish with the drain */
  if (p->grpc) grpcfe_begin_drain(p->grpc);
  if (p->http) http_server_drain(p->http);
  if (p->mport) http_server_drain(p->mport);
  if (p->grpc) grpcfe_drain(p->grpc);
  /* generations still running past the drain (long streams) end now, while the frontends'
   * loops and reply thread still deliver their last event */
  int left = gen_shutdown(5000);
  if (left > 0) log_msg(LOG_WARN, NULL, "shutdown: %d generations did not end within 5 s", left);
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
  stop(&p);
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
