/* ort_bench: time ONNX Runtime's own Run() in-process, the floor under what inferd adds.
 *
 *   ort_bench MODEL.onnx [--batch N] [--iterations K] [--threads T] [--warmup W]
 *             [--threads-concurrent C [--sessions S]]
 *
 * Builds N rows for every input of the model from its declared type and shape (the first
 * dimension, if variable, is N; other variable dimensions are 1): numbers follow a fixed
 * pattern, strings are a short fixed sentence. Runs W warm-up runs, then K timed runs on one
 * thread (ONNX Runtime's intra-op pool gets T threads) and prints one JSON line:
 *   {"model": ..., "batch": N, "iterations": K, "threads": T,
 *    "p50_us": ..., "p99_us": ..., "mean_us": ..., "rows_per_s": ...}
 * rows_per_s is N * K over the summed Run() time. Independent of inferd's sources on purpose.
 *
 * With --threads-concurrent C, C threads each do W warm-up and K timed runs at the same time,
 * thread i on session i % S (S = --sessions, default 1: every thread shares one session;
 * S = C: a session per thread). The JSON line then also has "concurrent": C, "sessions": S,
 * and rows_per_s is every thread's rows over the wall time of the timed phase; p50/p99 are
 * over all runs of all threads. This is the measurement behind docs/scheduler.md: concurrent
 * Run on one shared session versus separate sessions.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onnxruntime_c_api.h"

#define MAX_INPUTS 64
#define MAX_RANK 16

static const OrtApi *ort;

static const char SENTENCE[] = "the service was great and the staff were friendly";

static void die(const char *what, const char *detail) {
  fprintf(stderr, "ort_bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static void check(OrtStatus *status, const char *what) {
  if (status) {
    fprintf(stderr, "ort_bench: %s: %s\n", what, ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    exit(1);
  }
}

static long parse_count(const char *flag, const char *text, long min) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || *end || end == text || v < min) {
    fprintf(stderr, "ort_bench: %s wants an integer >= %ld, got '%s'\n", flag, min, text);
    exit(2);
  }
  return v;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, size_t n, double p) {
  size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static void print_json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

/* Float to IEEE half (values here are small and normal, so truncation is enough). */
static uint16_t to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = (x >> 13) & 0x3ffu;
  if (exp <= 0) return (uint16_t)sign;
  if (exp >= 31) return (uint16_t)(sign | 0x7c00u);
  return (uint16_t)(sign | ((uint32_t)exp << 10) | mant);
}

/* A fixed pattern in [-1, 1): varied enough to avoid trivial inputs, the same on every run. */
static float pattern(size_t i) { return (float)((i * 7919u) % 2000u) / 1000.0f - 1.0f; }

static void fill(void *data, ONNXTensorElementDataType type, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = pattern(i);
    int64_t k = (int64_t)(i % 7);
    switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: ((float *)data)[i] = v; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: ((double *)data)[i] = v; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: ((uint16_t *)data)[i] = to_half(v); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: ((uint8_t *)data)[i] = (uint8_t)(i & 1); break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: ((int8_t *)data)[i] = (int8_t)k; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: ((uint8_t *)data)[i] = (uint8_t)k; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: ((int16_t *)data)[i] = (int16_t)k; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: ((uint16_t *)data)[i] = (uint16_t)k; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: ((int32_t *)data)[i] = (int32_t)k; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: ((uint32_t *)data)[i] = (uint32_t)k; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: ((int64_t *)data)[i] = k; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: ((uint64_t *)data)[i] = (uint64_t)k; break;
    default: die("unsupported input element type", NULL);
    }
  }
}

/* Builds input `index`: N rows shaped like the model declares, owned by the returned value. */
static OrtValue *make_input(OrtSession *session, OrtAllocator *alloc, size_t index, long batch,
                            long *rows_out, char **name_out) {
  check(ort->SessionGetInputName(session, index, alloc, name_out), "input name");
  OrtTypeInfo *type_info;
  check(ort->SessionGetInputTypeInfo(session, index, &type_info), "input type");
  const OrtTensorTypeAndShapeInfo *tinfo;
  check(ort->CastTypeInfoToTensorInfo(type_info, &tinfo), "input type");
  if (!tinfo) die("input is not a tensor", *name_out);
  ONNXTensorElementDataType type;
  check(ort->GetTensorElementType(tinfo, &type), "input element type");
  size_t rank;
  check(ort->GetDimensionsCount(tinfo, &rank), "input rank");
  if (rank > MAX_RANK) die("input rank too large", *name_out);
  int64_t dims[MAX_RANK];
  check(ort->GetDimensions(tinfo, dims, rank), "input shape");
  ort->ReleaseTypeInfo(type_info);

  size_t n = 1;
  for (size_t d = 0; d < rank; d++) {
    if (dims[d] < 0) dims[d] = d == 0 ? batch : 1;
    n *= (size_t)dims[d];
  }
  *rows_out = rank > 0 ? (long)dims[0] : 1;

  OrtValue *value;
  check(ort->CreateTensorAsOrtValue(alloc, dims, rank, type, &value), "create input");
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING) {
    for (size_t i = 0; i < n; i++)
      check(ort->FillStringTensorElement(value, SENTENCE, i), "fill string input");
  } else if (n > 0) {
    void *data;
    check(ort->GetTensorMutableData(value, &data), "input data");
    fill(data, type, n);
  }
  return value;
}

static void usage(void) {
  fprintf(stderr, "usage: ort_bench MODEL.onnx [--batch N] [--iterations K] [--threads T] "
                  "[--warmup W] [--threads-concurrent C [--sessions S]]\n");
  exit(2);
}

/* One thread of the concurrent mode. */
typedef struct runner {
  OrtSession *session;
  char **in_names, **out_names;
  OrtValue **inputs; /* shared, read-only */
  size_t n_in, n_out;
  long warmup, iterations;
  double *lat; /* owned by main: iterations entries */
  pthread_barrier_t *start, *timed;
} runner;

static void run_once(OrtSession *session, char **in_names, OrtValue **inputs, size_t n_in, char **out_names,
                     size_t n_out) {
  OrtValue *outputs[MAX_INPUTS] = {0};
  check(ort->Run(session, NULL, (const char *const *)in_names, (const OrtValue *const *)inputs, n_in,
                 (const char *const *)out_names, n_out, outputs),
        "run");
  for (size_t i = 0; i < n_out; i++) ort->ReleaseValue(outputs[i]);
}

static void *runner_main(void *arg) {
  runner *r = arg;
  pthread_barrier_wait(r->start);
  for (long it = 0; it < r->warmup; it++) run_once(r->session, r->in_names, r->inputs, r->n_in, r->out_names, r->n_out);
  pthread_barrier_wait(r->timed); /* every thread starts timing together */
  for (long it = 0; it < r->iterations; it++) {
    double t0 = now_us();
    run_once(r->session, r->in_names, r->inputs, r->n_in, r->out_names, r->n_out);
    r->lat[it] = now_us() - t0;
  }
  return NULL;
}

/* The default mode: K timed runs on this thread. */
static void run_single(OrtSession *session, char **in_names, OrtValue **inputs, size_t n_in, char **out_names,
                       size_t n_out, const char *model, long rows, long iterations, long threads, long warmup) {
  OrtValue *outputs[MAX_INPUTS];
  double *lat = malloc((size_t)iterations * sizeof *lat); /* owned here */
  if (!lat) die("out of memory", NULL);
  double total = 0;
  for (long it = -warmup; it < iterations; it++) {
    memset(outputs, 0, sizeof outputs);
    double t0 = now_us();
    check(ort->Run(session, NULL, (const char *const *)in_names, (const OrtValue *const *)inputs,
                   n_in, (const char *const *)out_names, n_out, outputs),
          "run");
    double t = now_us() - t0;
    for (size_t i = 0; i < n_out; i++) ort->ReleaseValue(outputs[i]);
    if (it >= 0) {
      lat[it] = t;
      total += t;
    }
  }
  qsort(lat, (size_t)iterations, sizeof *lat, cmp_double);

  printf("{\"model\": ");
  print_json_string(model);
  printf(", \"batch\": %ld, \"iterations\": %ld, \"threads\": %ld, \"p50_us\": %.1f, "
         "\"p99_us\": %.1f, \"mean_us\": %.1f, \"rows_per_s\": %.1f}\n",
         rows, iterations, threads, percentile(lat, (size_t)iterations, 50),
         percentile(lat, (size_t)iterations, 99), total / (double)iterations,
         total > 0 ? (double)rows * (double)iterations / (total / 1e6) : 0.0);
  free(lat);
}

int main(int argc, char **argv) {
  const char *model = NULL;
  long batch = 1, iterations = 1000, threads = 1, warmup = -1, concurrent = 0, n_sessions = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--batch") || !strcmp(a, "--iterations") || !strcmp(a, "--threads") ||
        !strcmp(a, "--warmup") || !strcmp(a, "--threads-concurrent") || !strcmp(a, "--sessions")) {
      if (i + 1 >= argc) usage();
      const char *v = argv[++i];
      if (!strcmp(a, "--batch")) batch = parse_count(a, v, 1);
      else if (!strcmp(a, "--iterations")) iterations = parse_count(a, v, 1);
      else if (!strcmp(a, "--threads")) threads = parse_count(a, v, 0);
      else if (!strcmp(a, "--threads-concurrent")) concurrent = parse_count(a, v, 1);
      else if (!strcmp(a, "--sessions")) n_sessions = parse_count(a, v, 1);
      else warmup = parse_count(a, v, 0);
    } else if (a[0] == '-' || model) {
      usage();
    } else {
      model = a;
    }
  }
  if (!model) usage();
  if (n_sessions > 1 && concurrent == 0) {
    fprintf(stderr, "ort_bench: --sessions needs --threads-concurrent\n");
    exit(2);
  }
  if (concurrent > 0 && n_sessions > concurrent) {
    fprintf(stderr, "ort_bench: --sessions %ld is more than --threads-concurrent %ld\n", n_sessions, concurrent);
    exit(2);
  }
  if (warmup < 0) warmup = iterations / 10 < 10 ? 10 : (iterations / 10 > 100 ? 100 : iterations / 10);

  ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  if (!ort) die("this ONNX Runtime does not provide the C API version the bench was built for", NULL);

  OrtEnv *env;
  check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "ort_bench", &env), "create env");
  OrtSessionOptions *opts;
  check(ort->CreateSessionOptions(&opts), "session options");
  check(ort->SetIntraOpNumThreads(opts, (int)threads), "intra-op threads");
  check(ort->SetInterOpNumThreads(opts, 1), "inter-op threads");
  check(ort->SetSessionExecutionMode(opts, ORT_SEQUENTIAL), "execution mode");
  check(ort->SetSessionGraphOptimizationLevel(opts, ORT_ENABLE_ALL), "optimization level");
  OrtSession *session;
  check(ort->CreateSession(env, model, opts, &session), "load model");
  OrtSession *extra[256]; /* sessions 1..S-1 of the concurrent mode */
  if (n_sessions > 257) die("at most 257 sessions", NULL);
  for (long k = 1; k < n_sessions; k++) check(ort->CreateSession(env, model, opts, &extra[k - 1]), "load model");
  OrtAllocator *alloc;
  check(ort->GetAllocatorWithDefaultOptions(&alloc), "allocator");

  size_t n_in, n_out;
  check(ort->SessionGetInputCount(session, &n_in), "input count");
  check(ort->SessionGetOutputCount(session, &n_out), "output count");
  if (n_in == 0 || n_in > MAX_INPUTS || n_out == 0 || n_out > MAX_INPUTS)
    die("unsupported number of inputs or outputs", NULL);

  char *in_names[MAX_INPUTS], *out_names[MAX_INPUTS];
  OrtValue *inputs[MAX_INPUTS];
  long rows = batch;
  for (size_t i = 0; i < n_in; i++) {
    long r;
    inputs[i] = make_input(session, alloc, i, batch, &r, &in_names[i]);
    if (i == 0) rows = r;
  }
  if (rows != batch)
    fprintf(stderr, "ort_bench: the model fixes the first dimension of '%s' to %ld; using it\n",
            in_names[0], rows);
  for (size_t i = 0; i < n_out; i++)
    check(ort->SessionGetOutputName(session, i, alloc, &out_names[i]), "output name");

  if (concurrent > 0) {
    size_t total_runs = (size_t)concurrent * (size_t)iterations;
    double *all = malloc(total_runs * sizeof *all); /* owned here */
    runner *rs = calloc((size_t)concurrent, sizeof *rs);
    pthread_t *tids = calloc((size_t)concurrent, sizeof *tids);
    if (!all || !rs || !tids) die("out of memory", NULL);
    pthread_barrier_t start, timed;
    pthread_barrier_init(&start, NULL, (unsigned)concurrent + 1);
    pthread_barrier_init(&timed, NULL, (unsigned)concurrent + 1);
    for (long t = 0; t < concurrent; t++) {
      long k = t % n_sessions;
      rs[t] = (runner){.session = k == 0 ? session : extra[k - 1], .in_names = in_names, .out_names = out_names,
                       .inputs = inputs, .n_in = n_in, .n_out = n_out, .warmup = warmup,
                       .iterations = iterations, .lat = all + (size_t)t * (size_t)iterations,
                       .start = &start, .timed = &timed};
      if (pthread_create(&tids[t], NULL, runner_main, &rs[t]) != 0) die("cannot start a thread", NULL);
    }
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&timed);
    double t0 = now_us();
    for (long t = 0; t < concurrent; t++) pthread_join(tids[t], NULL);
    double wall = now_us() - t0;
    double sum = 0;
    for (size_t i = 0; i < total_runs; i++) sum += all[i];
    qsort(all, total_runs, sizeof *all, cmp_double);
    printf("{\"model\": ");
    print_json_string(model);
    printf(", \"batch\": %ld, \"iterations\": %ld, \"threads\": %ld, \"concurrent\": %ld, \"sessions\": %ld, "
           "\"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f, \"rows_per_s\": %.1f}\n",
           rows, iterations, threads, concurrent, n_sessions, percentile(all, total_runs, 50),
           percentile(all, total_runs, 99), sum / (double)total_runs,
           wall > 0 ? (double)rows * (double)total_runs / (wall / 1e6) : 0.0);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&timed);
    free(tids);
    free(rs);
    free(all);
  } else {
    run_single(session, in_names, inputs, n_in, out_names, n_out, model, rows, iterations, threads, warmup);
  }
  for (size_t i = 0; i < n_in; i++) {
    ort->ReleaseValue(inputs[i]);
    check(ort->AllocatorFree(alloc, in_names[i]), "free name");
  }
  for (size_t i = 0; i < n_out; i++) check(ort->AllocatorFree(alloc, out_names[i]), "free name");
  for (long k = 1; k < n_sessions; k++) ort->ReleaseSession(extra[k - 1]);
  ort->ReleaseSession(session);
  ort->ReleaseSessionOptions(opts);
  ort->ReleaseEnv(env);
  return 0;
}
