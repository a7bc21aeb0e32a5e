/* cache/cache_key: the canonical form of a request and its 128-bit hash (cache_key.h). */
#include "cache/cache_key.h"

#include <errno.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SHA-256 fetched once: EVP_sha256() in EVP_DigestInit_ex makes OpenSSL 3 look the provider's
 * implementation up again (under its locks) on every hash. */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void fetch_sha256(void) { sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); }

static EVP_MD_CTX *hash_begin(void) {
  pthread_once(&sha256_once, fetch_sha256);
  EVP_MD_CTX *ctx = sha256 ? EVP_MD_CTX_new() : NULL;
  if (ctx && EVP_DigestInit_ex(ctx, sha256, NULL) != 1) {
    EVP_MD_CTX_free(ctx);
    ctx = NULL;
  }
  return ctx;
}

static void put_u64(EVP_MD_CTX *ctx, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
  EVP_DigestUpdate(ctx, b, sizeof b);
}

static void put_str(EVP_MD_CTX *ctx, const char *s) {
  size_t n = strlen(s);
  put_u64(ctx, n);
  EVP_DigestUpdate(ctx, s, n);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int tensor_by_name(const void *a, const void *b) {
  return strcmp((*(const tensor *const *)a)->name, (*(const tensor *const *)b)->name);
}

/* Requests have a handful of inputs and outputs: past this the key is refused (uncached). */
#define KEY_MAX_TENSORS 64

inferd_status cache_key_compute(const uint8_t identity[CACHE_KEY_SIZE], const tensor *inputs, size_t n_inputs,
                                char *const *output_names, size_t n_outputs, uint8_t key[CACHE_KEY_SIZE]) {
  if (n_inputs > KEY_MAX_TENSORS || n_outputs > KEY_MAX_TENSORS)
    return status_make(INFERD_INVALID_ARGUMENT, "too many tensors to cache the request");
  const tensor *in[KEY_MAX_TENSORS] = {0};
  const char *out[KEY_MAX_TENSORS] = {0};
  for (size_t i = 0; i < n_inputs; i++) in[i] = &inputs[i];
  for (size_t i = 0; i < n_outputs; i++) out[i] = output_names[i];
  qsort(in, n_inputs, sizeof in[0], tensor_by_name);
  qsort(out, n_outputs, sizeof out[0], by_name);
  EVP_MD_CTX *ctx = hash_begin();
  if (ctx == NULL) return status_make(INFERD_INTERNAL, "the cache's hash is not available");
  EVP_DigestUpdate(ctx, "inferd-cache-1", 14); /* the form's version: a new form never matches an old key */
  EVP_DigestUpdate(ctx, identity, CACHE_KEY_SIZE);
  put_u64(ctx, n_inputs);
  for (size_t i = 0; i < n_inputs; i++) {
    const tensor *t = in[i];
    put_str(ctx, t->name);
    put_u64(ctx, (uint64_t)t->datatype);
    put_u64(ctx, (uint64_t)t->ndim);
    for (int d = 0; d < t->ndim; d++) put_u64(ctx, (uint64_t)t->shape[d]);
    put_u64(ctx, t->byte_size);
    EVP_DigestUpdate(ctx, t->data, t->byte_size);
  }
  put_u64(ctx, n_outputs);
  for (size_t i = 0; i < n_outputs; i++) put_str(ctx, out[i]);
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  int ok = EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  if (ok != 1 || len < CACHE_KEY_SIZE) return status_make(INFERD_INTERNAL, "the cache's hash failed");
  memcpy(key, md, CACHE_KEY_SIZE);
  return status_ok();
}

inferd_status cache_identity_of_file(const char *model, const char *version, const char *path,
                                     uint8_t identity[CACHE_KEY_SIZE]) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return status_make(INFERD_UNAVAILABLE, "cannot read the model file for its digest: %s", strerror(errno));
  EVP_MD_CTX *ctx = hash_begin();
  if (ctx == NULL) {
    fclose(f);
    return status_make(INFERD_INTERNAL, "the cache's hash is not available");
  }
  put_str(ctx, model);
  put_str(ctx, version);
  static const size_t chunk = 1 << 16;
  uint8_t *buf = malloc(chunk);
  size_t n;
  bool failed = buf == NULL;
  while (!failed && (n = fread(buf, 1, chunk, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
  failed = failed || ferror(f);
  free(buf);
  fclose(f);
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  int ok = EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  if (failed || ok != 1 || len < CACHE_KEY_SIZE) return status_make(INFERD_INTERNAL, "the model file's digest failed");
  memcpy(identity, md, CACHE_KEY_SIZE);
  return status_ok();
}
