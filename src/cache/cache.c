/* cache/cache: the prediction cache's pipeline handlers and per-version stores (cache.h). */
#include "cache/cache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_key.h"
#include "cache/cache_lru.h"
#include "core/infer.h"
#include "core/model.h"
#include "util/monotime.h"

/* One cached version's store. */
typedef struct version_cache {
  cache_lru *lru;
  uint8_t identity[CACHE_KEY_SIZE];
} version_cache;

/* A stored result: the outputs a run produced. */
typedef struct cached_outputs {
  tensor *outputs;
  size_t n;
} cached_outputs;

/* The version hook has no context argument, so the hook's slot and the process's counters are
 * the module's (as the application API's slot is): set once at start, counters atomic. */
static int hook_slot = -1;
static cache_lru_counters counters;
static _Atomic uint64_t n_hits, n_coalesced, n_misses, n_stores;

static void free_cached(void *v) {
  cached_outputs *co = v;
  if (co == NULL) return;
  tensors_free(co->outputs, co->n);
  free(co);
}

static inferd_status hook_load(model_version *mv, void **data) {
  *data = NULL;
  const response_cache_config *rc = &mv->model->config->response_cache;
  if (!rc->enabled) return status_ok();
  version_cache *vc = calloc(1, sizeof *vc);
  if (vc == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = cache_identity_of_file(mv->model->name, mv->version_str, mv->path, vc->identity);
  if (!status_is_ok(&st)) {
    free(vc);
    return st;
  }
  vc->lru = cache_lru_create(rc->max_bytes, rc->ttl_ms * INT64_C(1000000), free_cached, &counters);
  if (vc->lru == NULL) {
    free(vc);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  *data = vc;
  return status_ok();
}

/* Runs once nobody holds the version any more: no request is in flight or parked on it. */
static void hook_unload(model_version *mv, void *data) {
  (void)mv;
  version_cache *vc = data;
  if (vc == NULL) return;
  cache_lru_destroy(vc->lru);
  free(vc);
}

inferd_status cache_register(void) {
  static const model_version_hook hook = {"response_cache", hook_load, hook_unload};
  if (hook_slot >= 0) return status_ok();
  hook_slot = model_version_hook_register(&hook);
  if (hook_slot < 0) return status_make(INFERD_INTERNAL, "too many version hooks for the response cache");
  return status_ok();
}

static bool copy_tensor(tensor *dst, const tensor *src) {
  *dst = *src;
  dst->name = strdup(src->name);
  dst->data = malloc(src->byte_size ? src->byte_size : 1);
  if (dst->name == NULL || dst->data == NULL) {
    free(dst->name);
    free(dst->data);
    memset(dst, 0, sizeof *dst);
    return false;
  }
  memcpy(dst->data, src->data, src->byte_size);
  return true;
}

/* req's outputs from a result, in the order req asked for them (an identical request may have
 * listed them in another order: the key sorts them). */
static bool give_outputs(infer_request *req, const tensor *outs, size_t n) {
  tensor *mine = calloc(req->n_outputs ? req->n_outputs : 1, sizeof *mine);
  if (mine == NULL) return false;
  for (size_t i = 0; i < req->n_outputs; i++) {
    const tensor *src = NULL;
    for (size_t j = 0; j < n && !src; j++)
      if (strcmp(outs[j].name, req->output_names[i]) == 0) src = &outs[j];
    if (src == NULL || !copy_tensor(&mine[i], src)) {
      tensors_free(mine, i);
      return false;
    }
  }
  req->outputs = mine;
  req->status = status_ok();
  return true;
}

typedef struct hit_arg {
  infer_request *req;
  bool ok;
} hit_arg;

/* Under the shard's lock: a copy of the entry, so the lock is not held while the reply is
 * made and an eviction may free the entry at once. */
static void copy_hit(const void *value, void *arg) {
  const cached_outputs *co = value;
  hit_arg *h = arg;
  h->ok = give_outputs(h->req, co->outputs, co->n);
}

static version_cache *cache_of(const infer_request *req) {
  return model_version_hook_data(req->mv, hook_slot);
}

static inferd_status on_lookup(void *ctx, const serve_request *sr, infer_request *req) {
  (void)ctx;
  (void)sr;
  version_cache *vc = cache_of(req);
  if (vc == NULL) return status_ok();
  uint8_t key[CACHE_KEY_SIZE];
  inferd_status st = cache_key_compute(vc->identity, req->inputs, req->n_inputs, req->output_names, req->n_outputs, key);
  if (!status_is_ok(&st)) return status_ok(); /* not cacheable: runs as if the cache were off */
  cache_waiter *w = malloc(sizeof *w); /* taken by the store when the request waits */
  if (w == NULL) return status_ok();    /* out of memory: runs as if the cache were off */
  w->item = req;
  hit_arg h = {req, false};
  cache_lru_result r = cache_lru_begin(vc->lru, key, monotime_ns(), copy_hit, &h, w);
  if (r == CACHE_LRU_HIT && h.ok) {
    free(w);
    atomic_fetch_add(&n_hits, 1);
    serve_headers_add(req->reply_headers, "X-Cache", "hit");
    serve_answer(req);
    return status_ok();
  }
  if (r == CACHE_LRU_WAIT) { /* w is the store's until the leader finishes */
    atomic_fetch_add(&n_coalesced, 1);
    serve_park(req);
    return status_ok(); /* req may be completed by now on another thread: not touched again */
  }
  free(w);
  atomic_fetch_add(&n_misses, 1);
  serve_headers_add(req->reply_headers, "X-Cache", "miss");
  if (r == CACHE_LRU_LEAD) {
    req->cache_leader = true;
    memcpy(req->cache_key, key, CACHE_KEY_SIZE);
  }
  return status_ok();
}

/* The leader's completion: keep the result, then answer the requests parked on it (or, when
 * the run failed, send each to the scheduler to run for itself: the failure may have been the
 * leader's own, e.g. its deadline or its client leaving). */
static inferd_status on_store(void *ctx, const serve_request *sr, infer_request *req) {
  (void)ctx;
  (void)sr;
  if (!req->cache_leader) return status_ok();
  req->cache_leader = false;
  version_cache *vc = cache_of(req);
  bool ok = status_is_ok(&req->status) && req->outputs != NULL;
  cached_outputs *co = NULL;
  size_t bytes = 0;
  if (ok && (co = calloc(1, sizeof *co)) != NULL) {
    co->outputs = calloc(req->n_outputs ? req->n_outputs : 1, sizeof *co->outputs);
    for (size_t i = 0; co->outputs && i < req->n_outputs; i++, co->n++) {
      if (!copy_tensor(&co->outputs[i], &req->outputs[i])) break;
      bytes += sizeof(tensor) + strlen(co->outputs[i].name) + 1 + co->outputs[i].byte_size;
    }
    if (co->outputs == NULL || co->n != req->n_outputs) {
      free_cached(co);
      co = NULL;
    }
  }
  if (co) atomic_fetch_add(&n_stores, 1);
  cache_waiter *w = cache_lru_finish(vc->lru, req->cache_key, monotime_ns(), co, bytes + sizeof *co);
  while (w) {
    cache_waiter *next = w->next;
    infer_request *waiter = w->item;
    free(w);
    if (ok && give_outputs(waiter, req->outputs, req->n_outputs)) {
      serve_headers_add(waiter->reply_headers, "X-Cache", "hit");
      serve_complete(waiter);
    } else {
      serve_headers_add(waiter->reply_headers, "X-Cache", "miss");
      serve_resume(waiter);
    }
    w = next;
  }
  return status_ok();
}

inferd_status cache_install(serve *s) {
  TRY(serve_register(s, SERVE_STAGE_LOOKUP, on_lookup, NULL));
  return serve_register(s, SERVE_STAGE_CACHE_STORE, on_store, NULL);
}

void cache_stats(cache_stats_t *out) {
  out->hits = atomic_load(&n_hits);
  out->coalesced = atomic_load(&n_coalesced);
  out->misses = atomic_load(&n_misses);
  out->stores = atomic_load(&n_stores);
  out->evictions = atomic_load(&counters.evictions);
  out->expirations = atomic_load(&counters.expirations);
  out->entries = atomic_load(&counters.entries);
  out->bytes = atomic_load(&counters.bytes);
}

void cache_metrics_write(void *unused, FILE *out) {
  (void)unused;
  cache_stats_t c;
  cache_stats(&c);
  fprintf(out,
          "# HELP inferd_cache_requests_total Requests of models with response_cache, by how they were answered.\n"
          "# TYPE inferd_cache_requests_total counter\n"
          "inferd_cache_requests_total{result=\"hit\"} %llu\n"
          "inferd_cache_requests_total{result=\"coalesced\"} %llu\n"
          "inferd_cache_requests_total{result=\"miss\"} %llu\n"
          "# HELP inferd_cache_stores_total Results kept in the cache.\n"
          "# TYPE inferd_cache_stores_total counter\ninferd_cache_stores_total %llu\n"
          "# HELP inferd_cache_evictions_total Entries dropped, by reason.\n"
          "# TYPE inferd_cache_evictions_total counter\n"
          "inferd_cache_evictions_total{reason=\"size\"} %llu\n"
          "inferd_cache_evictions_total{reason=\"ttl\"} %llu\n"
          "# HELP inferd_cache_entries Entries held now.\n"
          "# TYPE inferd_cache_entries gauge\ninferd_cache_entries %lld\n"
          "# HELP inferd_cache_bytes Bytes held now (values and per-entry overhead).\n"
          "# TYPE inferd_cache_bytes gauge\ninferd_cache_bytes %lld\n",
          (unsigned long long)c.hits, (unsigned long long)c.coalesced, (unsigned long long)c.misses,
          (unsigned long long)c.stores, (unsigned long long)c.evictions, (unsigned long long)c.expirations,
          (long long)c.entries, (long long)c.bytes);
}
