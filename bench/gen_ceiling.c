/* gen_ceiling: greedy decoding with ONNX Runtime called directly in-process, the ceiling under
 * what inferd's generation engine adds (bench/generate.sh compares the two in one run).
 *
 *   gen_ceiling MODEL.onnx --prompt-ids 1,2,3 [--streams N] [--max-tokens T] [--threads K]
 *
 * An Optimum-layout causal LM with a KV cache (input_ids, attention_mask, optional
 * position_ids, past_key_values.L.key/value in; logits, present.L.key/value out). The N streams
 * share the prompt, so they run as one batch with no padding: one prefill Run of [N, P], then
 * T - 1 decode Runs of [N, 1], each feeding the presents back as the next pasts without a copy.
 * Prints one JSON line: streams, tokens (N * T), seconds, tokens_per_s, ttft_ms (the prefill and
 * the first argmax: every stream's first token). Independent of inferd's sources on purpose.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onnxruntime_c_api.h"

#define MAX_IO 512

static const OrtApi *ort;

static void check(OrtStatus *s, const char *what) {
  if (s) {
    fprintf(stderr, "gen_ceiling: %s: %s\n", what, ort->GetErrorMessage(s));
    exit(1);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: gen_ceiling MODEL.onnx --prompt-ids 1,2,3 [--streams N] [--max-tokens T] [--threads K]\n");
    return 2;
  }
  const char *path = argv[1], *ids_text = NULL;
  long streams = 1, max_tokens = 64, threads = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--prompt-ids") == 0) ids_text = argv[i + 1];
    else if (strcmp(argv[i], "--streams") == 0) streams = strtol(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--max-tokens") == 0) max_tokens = strtol(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--threads") == 0) threads = strtol(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "gen_ceiling: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!ids_text || streams < 1 || max_tokens < 1) {
    fprintf(stderr, "gen_ceiling: --prompt-ids is required; --streams and --max-tokens at least 1\n");
    return 2;
  }
  int64_t prompt[4096];
  size_t P = 0;
  for (const char *p = ids_text; *p && P < 4096;) {
    char *end;
    prompt[P++] = strtoll(p, &end, 10);
    p = *end == ',' ? end + 1 : end;
    if (end == p && *p) break;
  }
  ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  OrtEnv *env;
  check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "gen_ceiling", &env), "env");
  OrtSessionOptions *so;
  check(ort->CreateSessionOptions(&so), "options");
  check(ort->SetIntraOpNumThreads(so, (int)threads), "threads");
  check(ort->SetInterOpNumThreads(so, 1), "threads");
  check(ort->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "options");
  OrtSession *sess;
  check(ort->CreateSession(env, path, so, &sess), "load");
  OrtAllocator *alloc;
  check(ort->GetAllocatorWithDefaultOptions(&alloc), "allocator");
  OrtMemoryInfo *mem;
  check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem), "memory info");

  size_t n_in, n_out;
  check(ort->SessionGetInputCount(sess, &n_in), "inputs");
  check(ort->SessionGetOutputCount(sess, &n_out), "outputs");
  char *in_names[MAX_IO], *out_names[MAX_IO];
  int64_t heads = 0, head_dim = 0;
  for (size_t i = 0; i < n_in; i++) {
    check(ort->SessionGetInputName(sess, i, alloc, &in_names[i]), "input name");
    if (strncmp(in_names[i], "past_key_values.", 16) == 0 && heads == 0) {
      OrtTypeInfo *ti;
      const OrtTensorTypeAndShapeInfo *tsi;
      int64_t dims[4];
      check(ort->SessionGetInputTypeInfo(sess, i, &ti), "type");
      check(ort->CastTypeInfoToTensorInfo(ti, &tsi), "type");
      check(ort->GetDimensions(tsi, dims, 4), "dims");
      heads = dims[1];
      head_dim = dims[3];
      ort->ReleaseTypeInfo(ti);
    }
  }
  for (size_t i = 0; i < n_out; i++) check(ort->SessionGetOutputName(sess, i, alloc, &out_names[i]), "output name");
  /* which output is each past's present: present.L.x for past_key_values.L.x */
  int present_of[MAX_IO], logits_out = -1;
  for (size_t i = 0; i < n_out; i++)
    if (strcmp(out_names[i], "logits") == 0) logits_out = (int)i;
  for (size_t i = 0; i < n_in; i++) {
    present_of[i] = -1;
    if (strncmp(in_names[i], "past_key_values.", 16) != 0) continue;
    char want[256];
    snprintf(want, sizeof want, "present.%s", in_names[i] + 16);
    for (size_t j = 0; j < n_out; j++)
      if (strcmp(out_names[j], want) == 0) present_of[i] = (int)j;
    if (present_of[i] < 0) {
      fprintf(stderr, "gen_ceiling: no output %s\n", want);
      return 1;
    }
  }
  if (logits_out < 0 || heads == 0) {
    fprintf(stderr, "gen_ceiling: the model needs logits and past_key_values inputs\n");
    return 1;
  }

  const int64_t N = streams;
  int64_t *tokens = malloc((size_t)N * sizeof *tokens);
  OrtValue *past[MAX_IO] = {0};
  float empty = 0;
  for (size_t i = 0; i < n_in; i++)
    if (present_of[i] >= 0) {
      int64_t shape[4] = {N, heads, 0, head_dim};
      check(ort->CreateTensorWithDataAsOrtValue(mem, &empty, 0, shape, 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                                &past[i]), "past");
    }
  double t0 = now_s(), ttft = 0;
  int64_t len = 0; /* positions in the cache */
  int64_t *ids = malloc((size_t)N * P * sizeof *ids), *mask = malloc((size_t)N * (P + max_tokens) * sizeof *mask),
          *pos = malloc((size_t)N * P * sizeof *pos);
  for (long step = 0; step < max_tokens; step++) {
    int64_t S = step == 0 ? (int64_t)P : 1;
    for (int64_t b = 0; b < N; b++)
      for (int64_t j = 0; j < S; j++) {
        ids[b * S + j] = step == 0 ? prompt[j] : tokens[b];
        pos[b * S + j] = len + j;
      }
    for (int64_t k = 0; k < N * (len + S); k++) mask[k] = 1;
    OrtValue *in[MAX_IO] = {0}, *out[MAX_IO] = {0};
    int64_t s_ids[2] = {N, S}, s_mask[2] = {N, len + S};
    for (size_t i = 0; i < n_in; i++) {
      if (present_of[i] >= 0) {
        in[i] = past[i];
      } else if (strcmp(in_names[i], "input_ids") == 0) {
        check(ort->CreateTensorWithDataAsOrtValue(mem, ids, (size_t)(N * S) * 8, s_ids, 2,
                                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &in[i]), "ids");
      } else if (strcmp(in_names[i], "position_ids") == 0) {
        check(ort->CreateTensorWithDataAsOrtValue(mem, pos, (size_t)(N * S) * 8, s_ids, 2,
                                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &in[i]), "pos");
      } else if (strcmp(in_names[i], "attention_mask") == 0) {
        check(ort->CreateTensorWithDataAsOrtValue(mem, mask, (size_t)(N * (len + S)) * 8, s_mask, 2,
                                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &in[i]), "mask");
      } else {
        fprintf(stderr, "gen_ceiling: input %s is not one this loop fills\n", in_names[i]);
        return 1;
      }
    }
    check(ort->Run(sess, NULL, (const char *const *)in_names, (const OrtValue *const *)in, n_in,
                   (const char *const *)out_names, n_out, out), "run");
    float *logits;
    OrtTensorTypeAndShapeInfo *li;
    int64_t ldims[3];
    check(ort->GetTensorMutableData(out[logits_out], (void **)&logits), "logits");
    check(ort->GetTensorTypeAndShape(out[logits_out], &li), "logits");
    check(ort->GetDimensions(li, ldims, 3), "logits");
    ort->ReleaseTensorTypeAndShapeInfo(li);
    int64_t V = ldims[2];
    for (int64_t b = 0; b < N; b++) {
      const float *row = logits + (b * S + S - 1) * V;
      int64_t best = 0;
      for (int64_t v = 1; v < V; v++)
        if (row[v] > row[best]) best = v;
      tokens[b] = best;
    }
    if (step == 0) ttft = now_s() - t0;
    len += S;
    for (size_t i = 0; i < n_in; i++) {
      if (present_of[i] >= 0) {
        ort->ReleaseValue(past[i]);
        past[i] = out[present_of[i]];
        out[present_of[i]] = NULL;
      } else {
        ort->ReleaseValue(in[i]);
      }
    }
    for (size_t j = 0; j < n_out; j++)
      if (out[j]) ort->ReleaseValue(out[j]);
  }
  double secs = now_s() - t0;
  printf("{\"streams\": %ld, \"tokens\": %ld, \"seconds\": %.4f, \"tokens_per_s\": %.1f, \"ttft_ms\": %.2f}\n", streams,
         streams * max_tokens, secs, (double)(streams * max_tokens) / secs, ttft * 1e3);
  for (size_t i = 0; i < n_in; i++)
    if (past[i]) ort->ReleaseValue(past[i]);
  free(tokens);
  free(ids);
  free(mask);
  free(pos);
  ort->ReleaseMemoryInfo(mem);
  ort->ReleaseSession(sess);
  ort->ReleaseSessionOptions(so);
  ort->ReleaseEnv(env);
  return 0;
}
