/* A closed-loop gRPC load client for inferd's ModelInfer, written on gRPC core's C API like the
 * server: C concurrent calls (split over T threads, each with its own channel and completion
 * queue), each started again as soon as it completes, for D seconds. The request is the mlp
 * model's one row (the same values as bench/make_bodies.py) as raw_input_contents.
 *
 *   grpc_bench --target 127.0.0.1:8001 [--model mlp] [--rows 1] [--concurrency 16]
 *              [--threads 2] [--duration 10] [--warmup 1]
 *   grpc_bench --write-request FILE [--model mlp] [--rows 1]
 *
 * Prints one JSON line: {"concurrency", "requests", "errors", "rps", "p50_us", "p90_us", "p99_us"}.
 * Every response must be status OK with one raw output of the expected size, else it counts as
 * an error. With --write-request it only writes the request, framed as a gRPC message, to FILE. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inference.pb-c.h"

typedef struct opts {
  const char *target, *model;
  const char *write_request; /* a path: write the framed request there and exit */
  int rows, concurrency, threads;
  double duration, warmup;
} opts;

typedef struct call_slot {
  grpc_call *call;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *response;
  grpc_status_code status;
  grpc_slice details;
  double started;
} call_slot;

typedef struct worker {
  const opts *o;
  int n_calls;
  grpc_slice request; /* the packed ModelInferRequest, shared by every call */
  double *lat_us;     /* owned: one per measured call */
  size_t n_lat, cap_lat;
  long errors;
  char first_error[256];
} worker;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static grpc_slice pack_request(const opts *o) {
  size_t n = (size_t)o->rows * 256;
  float *x = malloc(n * sizeof *x);
  for (size_t r = 0; r < (size_t)o->rows; r++)
    for (size_t i = 0; i < 256; i++) x[r * 256 + i] = (float)((double)((i * 37) % 101) / 101.0 - 0.5);
  Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
  Inference__ModelInferRequest__InferInputTensor in = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
  Inference__ModelInferRequest__InferInputTensor *ins[1] = {&in};
  int64_t shape[2] = {o->rows, 256};
  ProtobufCBinaryData raw = {.len = n * sizeof *x, .data = (uint8_t *)x};
  in.name = "input";
  in.datatype = "FP32";
  in.shape = shape;
  in.n_shape = 2;
  req.model_name = (char *)o->model;
  req.inputs = ins;
  req.n_inputs = 1;
  req.raw_input_contents = &raw;
  req.n_raw_input_contents = 1;
  size_t len = inference__model_infer_request__get_packed_size(&req);
  uint8_t *buf = malloc(len);
  inference__model_infer_request__pack(&req, buf);
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, len);
  free(buf);
  free(x);
  return s;
}

static void start_call(worker *w, grpc_channel *ch, grpc_completion_queue *cq, call_slot *c) {
  grpc_slice method = grpc_slice_from_static_string("/inference.GRPCInferenceService/ModelInfer");
  c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_metadata_array_init(&c->initial_md);
  grpc_metadata_array_init(&c->trailing_md);
  c->response = NULL;
  grpc_slice req = grpc_slice_ref(w->request);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&req, 1);
  grpc_slice_unref(req);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &c->response;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
  ops[5].data.recv_status_on_client.status = &c->status;
  ops[5].data.recv_status_on_client.status_details = &c->details;
  c->started = now_s();
  if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
    fprintf(stderr, "grpc_bench: grpc_call_start_batch failed\n");
    exit(1);
  }
  grpc_byte_buffer_destroy(bb);
}

/* True when the response is a ModelInferResponse with one raw output of 10 floats per row. */
static bool response_ok(const worker *w, grpc_byte_buffer *bb) {
  if (bb == NULL) return false;
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return false;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  Inference__ModelInferResponse *m =
      inference__model_infer_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  bool ok = m && m->n_raw_output_contents == 1 && m->raw_output_contents[0].len == (size_t)w->o->rows * 10 * 4;
  if (m) inference__model_infer_response__free_unpacked(m, NULL);
  return ok;
}

static void finish_call(call_slot *c) {
  if (c->response) grpc_byte_buffer_destroy(c->response);
  grpc_metadata_array_destroy(&c->initial_md);
  grpc_metadata_array_destroy(&c->trailing_md);
  grpc_slice_unref(c->details);
  grpc_call_unref(c->call);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  grpc_arg args[2] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = 64 << 20},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1}};
  grpc_channel_args cargs = {.num_args = 2, .args = args};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(w->o->target, creds, &cargs);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  call_slot *slots = calloc((size_t)w->n_calls, sizeof *slots);
  double t0 = now_s(), measure_from = t0 + w->o->warmup, stop_at = measure_from + w->o->duration;
  for (int i = 0; i < w->n_calls; i++) start_call(w, ch, cq, &slots[i]);
  int active = w->n_calls;
  while (active > 0) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    call_slot *c = ev.tag;
    double done = now_s();
    bool ok = ev.success && c->status == GRPC_STATUS_OK && response_ok(w, c->response);
    if (done >= measure_from && c->started >= measure_from && done <= stop_at) {
      if (!ok) {
        if (w->errors++ == 0)
          snprintf(w->first_error, sizeof w->first_error, "status %d: %.*s", (int)c->status,
                   (int)GRPC_SLICE_LENGTH(c->details), (const char *)GRPC_SLICE_START_PTR(c->details));
      } else {
        if (w->n_lat == w->cap_lat) {
          w->cap_lat = w->cap_lat ? 2 * w->cap_lat : 65536;
          w->lat_us = realloc(w->lat_us, w->cap_lat * sizeof *w->lat_us);
        }
        w->lat_us[w->n_lat++] = (done - c->started) * 1e6;
      }
    }
    finish_call(c);
    if (done < stop_at)
      start_call(w, ch, cq, c);
    else
      active--;
  }
  free(slots);
  grpc_channel_destroy(ch);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return NULL;
}

/* Writes the request as one gRPC length-prefixed message (flag 0: uncompressed, then the length
 * big-endian): the body of an HTTP/2 POST that another load client (h2load) can send as is. */
static int write_request(const char *path, grpc_slice request) {
  size_t len = GRPC_SLICE_LENGTH(request);
  unsigned char prefix[5] = {0, (unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                             (unsigned char)len};
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(prefix, 1, 5, f) == 5 && fwrite(GRPC_SLICE_START_PTR(request), 1, len, f) == len;
  if (f && fclose(f) != 0) ok = false;
  grpc_slice_unref(request);
  if (!ok) fprintf(stderr, "grpc_bench: cannot write %s\n", path);
  return ok ? 0 : 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  opts o = {.target = "127.0.0.1:8001", .model = "mlp", .rows = 1, .concurrency = 16, .threads = 2,
            .duration = 10, .warmup = 1};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--target")) o.target = v;
    else if (!strcmp(k, "--model")) o.model = v;
    else if (!strcmp(k, "--rows")) o.rows = atoi(v);
    else if (!strcmp(k, "--concurrency")) o.concurrency = atoi(v);
    else if (!strcmp(k, "--threads")) o.threads = atoi(v);
    else if (!strcmp(k, "--duration")) o.duration = atof(v);
    else if (!strcmp(k, "--warmup")) o.warmup = atof(v);
    else if (!strcmp(k, "--write-request")) o.write_request = v;
    else {
      fprintf(stderr, "grpc_bench: unknown option %s\n", k);
      return 2;
    }
  }
  if (o.threads > o.concurrency) o.threads = o.concurrency;
  if (o.rows < 1 || o.concurrency < 1 || o.threads < 1 || o.duration <= 0) {
    fprintf(stderr, "grpc_bench: --rows, --concurrency, --threads and --duration must be positive\n");
    return 2;
  }
  grpc_slice request = pack_request(&o);
  if (o.write_request) return write_request(o.write_request, request);
  grpc_init();
  worker *ws = calloc((size_t)o.threads, sizeof *ws);
  pthread_t *th = calloc((size_t)o.threads, sizeof *th);
  for (int t = 0; t < o.threads; t++) {
    ws[t].o = &o;
    ws[t].n_calls = o.concurrency / o.threads + (t < o.concurrency % o.threads);
    ws[t].request = request;
    pthread_create(&th[t], NULL, worker_main, &ws[t]);
  }
  size_t n = 0;
  long errors = 0;
  for (int t = 0; t < o.threads; t++) {
    pthread_join(th[t], NULL);
    n += ws[t].n_lat;
    errors += ws[t].errors;
  }
  double *all = malloc((n + 1) * sizeof *all);
  size_t k = 0;
  for (int t = 0; t < o.threads; t++) {
    memcpy(all + k, ws[t].lat_us, ws[t].n_lat * sizeof *all);
    k += ws[t].n_lat;
  }
  qsort(all, n, sizeof *all, cmp_double);
#define PCT(p) (n ? all[(size_t)((double)(n - 1) * (p))] : 0.0)
  printf("{\"concurrency\": %d, \"requests\": %zu, \"errors\": %ld, \"rps\": %.1f, \"p50_us\": %.1f, "
         "\"p90_us\": %.1f, \"p99_us\": %.1f}\n",
         o.concurrency, n, errors, (double)n / o.duration, PCT(0.50), PCT(0.90), PCT(0.99));
  for (int t = 0; t < o.threads; t++)
    if (ws[t].errors) fprintf(stderr, "grpc_bench: first error: %s\n", ws[t].first_error);
  for (int t = 0; t < o.threads; t++) free(ws[t].lat_us);
  free(all);
  free(ws);
  free(th);
  grpc_slice_unref(request);
  grpc_shutdown_blocking();
  return errors ? 1 : 0;
}
