/* inferd's command line: `inferd serve` runs the server; `inferd keys` manages an API key file
 * (security/keys_cli.c); `inferd version` prints the version. */
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
#include "frontends/http/server.h"
#include "observability/trace.h"
#include "security/auth.h"
#include "security/cors.h"
#include "security/keys_cli.h"
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
  /* model control (docs/model-repository.md) */
  repo_control_mode control_mode;
  long poll_secs;
  const char *load_models[64];
  size_t n_load_models;
  trace_options trace; /* tracing is on when trace.otlp_endpoint is set */
  /* security (docs/security.md) */
  const char *api_keys, *jwt_jwks, *jwt_secret_file, *jwt_issuer, *jwt_audience, *cors_origins;
} serve_options;

static void usage(FILE *f) {
  fprintf(f,
          "usage: inferd serve [options]\n"
          "       inferd keys create|list|revoke|rotate --file FILE ...  (inferd keys --help)\n"
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
          "SIGHUP rescans the repository in every mode; SIGTERM drains and stops.\n"
          "HTTP limits on slow and idle clients (docs/http-api.md, \"Limits and timeouts\"):\n"
          "  --request-head-timeout-ms N  time to send a whole request head  INFERD_REQUEST_HEAD_TIMEOUT_MS (20000)\n"
          "  --body-timeout-ms N      time for a body, and the longest pause in one  INFERD_BODY_TIMEOUT_MS (30000)\n"
          "  --min-body-rate N        bytes/s that earn a body one more second  INFERD_MIN_BODY_RATE (1024)\n"
          "  --keepalive-timeout-ms N idle time between requests   INFERD_KEEPALIVE_TIMEOUT_MS (120000)\n"
          "  --send-timeout-ms N      time for a client to take a closing reply  INFERD_SEND_TIMEOUT_MS (30000)\n"
          "  --max-connections N      HTTP connections open at once  INFERD_MAX_CONNECTIONS (16384)\n"
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
          "  --cors-origins LIST      origins browsers may call from (comma-separated, or *)\n"
          "                                                        INFERD_CORS_ORIGINS (none: CORS off)\n"
          "The key and JWT files are reloaded when they change and on SIGHUP.\n");
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
    {"model-control-mode", required_argument, 0, 'C'}, {"repository-poll-secs", required_argument, 0, 'P'},
    {"load-model", required_argument, 0, 'L'},
    {"otlp-endpoint", required_argument, 0, 1100}, {"otlp-protocol", required_argument, 0, 1101},
    {"trace-sample-ratio", required_argument, 0, 1102}, {"otlp-service-name", required_argument, 0, 1103},
    {"otlp-queue-size", required_argument, 0, 1104}, {"otlp-batch-size", required_argument, 0, 1105},
    {"otlp-export-interval-ms", required_argument, 0, 1106}, {"otlp-timeout-ms", required_argument, 0, 1107},
    {"api-keys", required_argument, 0, 1300},        {"jwt-jwks", required_argument, 0, 1301},
    {"jwt-secret-file", required_argument, 0, 1302}, {"jwt-issuer", required_argument, 0, 1303},
    {"jwt-audience", required_argument, 0, 1304},    {"cors-origins", required_argument, 0, 1305},
    {0, 0, 0, 0}};

/* The environment variable for each option: flags override it. */
static const struct {
  const char *env;
  int opt;
} serve_envs[] = {{"INFERD_MODEL_REPOSITORY", 'm'}, {"INFERD_HOST", 'H'},
                  {"INFERD_HTTP_PORT", 'p'},        {"INFERD_HTTP_THREADS", 't'},
                  {"INFERD_WORKER_THREADS", 'w'},   {"INFERD_MAX_BODY_BYTES", 'b'},
                  {"INFERD_DRAIN_TIMEOUT_MS", 'd'}, {"INFERD_GRPC_PORT", 'g'},
                  {"INFERD_GRPC_MAX_MESSAGE_BYTES", 'G'}, {"INFERD_GRPC_THREADS", 'T'}, {"INFERD_DEFAULT_MODEL", 'M'},
                  {"INFERD_MAX_RECORDS", 'R'},
                  {"INFERD_REQUEST_HEAD_TIMEOUT_MS", 1000}, {"INFERD_BODY_TIMEOUT_MS", 1001},
                  {"INFERD_MIN_BODY_RATE", 1002}, {"INFERD_KEEPALIVE_TIMEOUT_MS", 1003},
                  {"INFERD_SEND_TIMEOUT_MS", 1004}, {"INFERD_MAX_CONNECTIONS", 1005},
                  {"INFERD_MODEL_CONTROL_MODE", 'C'}, {"INFERD_REPOSITORY_POLL_SECS", 'P'},
                  {"INFERD_OTLP_ENDPOINT", 1100}, {"INFERD_OTLP_PROTOCOL", 1101},
                  {"INFERD_TRACE_SAMPLE_RATIO", 1102}, {"INFERD_OTLP_SERVICE_NAME", 1103},
                  {"INFERD_OTLP_QUEUE_SIZE", 1104}, {"INFERD_OTLP_BATCH_SIZE", 1105},
                  {"INFERD_OTLP_EXPORT_INTERVAL_MS", 1106}, {"INFERD_OTLP_TIMEOUT_MS", 1107},
                  {"INFERD_API_KEYS", 1300}, {"INFERD_JWT_JWKS", 1301}, {"INFERD_JWT_SECRET_FILE", 1302},
                  {"INFERD_JWT_ISSUER", 1303}, {"INFERD_JWT_AUDIENCE", 1304}, {"INFERD_CORS_ORIGINS", 1305}};

/* Sets option c from val; `name` is how the user gave it, for the message. */
static int apply_option(serve_options *o, int c, const char *name, const char *val) {
  long long v = 0;
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
    case 'R': if (parse_num(name, val, 1, 1000000, &v)) return -1; o->max_records = (long)v; return 0;
    case 1000: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->head_timeout_ms = (long)v; return 0;
    case 1001: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->body_timeout_ms = (long)v; return 0;
    case 1002: if (parse_num(name, val, 0, 1L << 30, &v)) return -1; o->min_body_rate = (long)v; return 0;
    case 1003: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->keepalive_timeout_ms = (long)v; return 0;
    case 1004: if (parse_num(name, val, 1, 3600000, &v)) return -1; o->send_timeout_ms = (long)v; return 0;
    case 1005: if (parse_num(name, val, 1, 10000000, &v)) return -1; o->max_connections = (long)v; return 0;
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
                                 .queue_size = 2048, .batch_size = 512, .export_interval_ms = 1000, .timeout_ms = 2000}};
  for (size_t i = 0; i < sizeof serve_envs / sizeof serve_envs[0]; i++) {
    const char *val = getenv(serve_envs[i].env);
    if (val && apply_option(o, serve_envs[i].opt, serve_envs[i].env, val)) return -1;
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
  if (o->n_load_models && o->control_mode != REPO_CONTROL_EXPLICIT) {
    fprintf(stderr, "inferd: --load-model needs --model-control-mode explicit (the other modes load every model)\n");
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

/* Loopback addresses only reach this machine: no warning for an open server there. */
static bool host_is_loopback(const char *host) {
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

static int cmd_serve(int argc, char **argv) {
  serve_options o;
  if (parse_serve(argc, argv, &o)) return 2;

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
  if (status_is_ok(&reg)) reg = cache_register(); /* each cached version's store (response_cache) */
  if (!status_is_ok(&reg)) {
    log_msg(LOG_ERROR, NULL, "%s", reg.msg);
    return 1;
  }

  /* Credentials first: a key file that does not parse stops the start, before any model loads. */
  auth *au = NULL;
  cors_policy *cors = NULL;
  auth_options auo = {.api_keys_path = o.api_keys, .jwt_jwks_path = o.jwt_jwks, .jwt_secret_path = o.jwt_secret_file,
                      .jwt_issuer = o.jwt_issuer, .jwt_audience = o.jwt_audience};
  inferd_status sec = auth_create(&auo, &au);
  if (status_is_ok(&sec)) sec = cors_parse(o.cors_origins, &cors);
  if (!status_is_ok(&sec)) {
    log_msg(LOG_ERROR, NULL, "%s", sec.msg);
    auth_destroy(au);
    return 2;
  }

  app *a;
  app_options ao = {.model_repository = o.model_repository, .worker_threads = (int)o.worker_threads,
                    .control_mode = o.control_mode, .poll_secs = (int)o.poll_secs, .load_models = o.load_models,
                    .n_load_models = o.n_load_models, .drain_timeout_ms = (int)o.drain_timeout_ms};
  inferd_status st = app_create(&ao, &a);
  if (status_is_ok(&st)) {
    st = auth_install(au, a->serve); /* the admit stage's infer:<model> check, on every protocol */
    if (status_is_ok(&st)) st = cache_install(a->serve); /* lookup and cache_store: opt-in per model */
    if (!status_is_ok(&st)) app_destroy(a);
  }
  if (!status_is_ok(&st)) {
    log_msg(LOG_ERROR, NULL, "%s", st.msg);
    auth_destroy(au);
    cors_free(cors);
    return 1;
  }
  a->default_model = o.default_model;
  a->max_records = (int)o.max_records;
  bool no_default = false;
  if (o.default_model) { /* the folder, not what has loaded yet: the first scan may be under way */
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", o.model_repository, o.default_model);
    no_default = stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode);
  }
  if (no_default) {
    log_msg(LOG_ERROR, NULL, "--default-model: no model '%s' in %s", o.default_model, o.model_repository);
    app_destroy(a);
    auth_destroy(au);
    cors_free(cors);
    return 2;
  }
  /* tracing plugs into the pipeline's stages before any request can arrive */
  tracer *trace = NULL;
  if (o.trace.otlp_endpoint) {
    st = trace_create(&o.trace, a->serve, &trace);
    if (!status_is_ok(&st)) {
      log_msg(LOG_ERROR, NULL, "%s", st.msg);
      app_destroy(a);
      return 2;
    }
    log_msg(LOG_INFO, NULL, "tracing: exporting OTLP/HTTP (%s) to %s, sampling %g of requests without a parent",
            o.trace.otlp_json ? "json" : "protobuf", o.trace.otlp_endpoint, o.trace.sample_ratio);
  }
  http_server *http;
  http_options ho = {.host = o.host, .port = (int)o.http_port, .threads = (int)o.http_threads,
                     .max_body_bytes = (size_t)o.max_body_bytes, .drain_timeout_ms = (int)o.drain_timeout_ms,
                     .head_timeout_ms = (int)o.head_timeout_ms, .body_timeout_ms = (int)o.body_timeout_ms,
                     .min_body_rate = (int)o.min_body_rate, .keepalive_timeout_ms = (int)o.keepalive_timeout_ms,
                     .send_timeout_ms = (int)o.send_timeout_ms, .max_connections = o.max_connections,
                     .auth = au, .cors = cors};
  raise_fd_limit(o.max_connections);
  st = http_server_create(&ho, a, &http);
  if (!status_is_ok(&st)) {
    log_msg(LOG_ERROR, NULL, "%s", st.msg);
    app_destroy(a);
    trace_destroy(trace);
    auth_destroy(au);
    cors_free(cors);
    return 1;
  }
  log_msg(LOG_INFO, NULL, "inferd %s serving %s over HTTP on %s:%d", INFERD_VERSION, o.model_repository, o.host,
          http_server_port(http));
  grpcfe *grpc;
  grpcfe_options go = {.host = o.host, .port = (int)o.grpc_port, .threads = (int)o.grpc_threads,
                     .max_message_bytes = (int)o.grpc_max_message_bytes, .drain_timeout_ms = (int)o.drain_timeout_ms,
                     .auth = au};
  st = grpcfe_create(&go, a, &grpc);
  if (!status_is_ok(&st)) {
    log_msg(LOG_ERROR, NULL, "%s", st.msg);
    atomic_store(&a->draining, true);
    http_server_drain(http);
    app_stop_work(a);
    http_server_destroy(http);
    app_destroy(a);
    trace_destroy(trace);
    auth_destroy(au);
    cors_free(cors);
    return 1;
  }
  log_msg(LOG_INFO, NULL, "serving gRPC on %s:%d", o.host, grpcfe_port(grpc));
  if (auth_enabled(au))
    log_msg(LOG_INFO, NULL, "authentication on: every route but the health probes needs a credential (%s%s%s)",
            o.api_keys ? "--api-keys" : "", o.api_keys && (o.jwt_jwks || o.jwt_secret_file) ? ", " : "",
            o.jwt_jwks || o.jwt_secret_file ? "JWT" : "");
  else if (!host_is_loopback(o.host))
    log_msg(LOG_WARN, NULL,
            "WARNING: NO AUTHENTICATION. inferd is bound to %s, reachable from other machines, and anyone who can "
            "reach ports %d (HTTP) and %d (gRPC) can run, load and unload models. Configure --api-keys (inferd keys "
            "create) or --jwt-jwks, or bind --host 127.0.0.1 (docs/security.md).",
            o.host, http_server_port(http), grpcfe_port(grpc));

  int sig = 0;
  while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
    log_msg(LOG_INFO, NULL, "SIGHUP: rescanning the model repository%s", auth_enabled(au) ? ", reloading credentials" : "");
    repo_request_rescan(a->repo);
    auth_reload(au);
  }
  log_msg(LOG_INFO, NULL, "%s: draining (up to %ld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT", o.drain_timeout_ms);
  atomic_store(&a->draining, true);
  grpcfe_begin_drain(grpc); /* both frontends stop taking calls, then drain together */
  http_server_drain(http);
  grpcfe_drain(grpc);
  app_stop_work(a); /* what is still queued is answered 503 through the loops, still running */
  http_server_destroy(http);
  grpcfe_destroy(grpc);
  app_destroy(a);
  trace_destroy(trace); /* after the last completion (and the pipeline) is gone: exports what is left */
  auth_destroy(au); /* after everything that could still admit a request */
  cors_free(cors);
  log_msg(LOG_INFO, NULL, "stopped");
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "serve") == 0) return cmd_serve(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "keys") == 0) return keys_cli_main(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "version") == 0) {
    printf("inferd %s\n", INFERD_VERSION);
    return 0;
  }
  usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
  return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
