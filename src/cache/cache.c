/* cache/cache: the prediction cache's pipeline handlers and per-version stores (cache.h). */
#include "cache/cache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_key.h"
#include "cache/cache_lru.h"
#include "core/infer.h"
#include "core/model.h"
#include "store/rstore.h"
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
/* the Redis tier (NULL: none), and its counters */
static rstore *shared;
static rstore_feature *shared_feature;
static _Atomic uint64_t n_shared_hits, n_shared_misses, n_shared_errors, n_shared_stores;

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

/* The requests parked on a leader: each gets the result (a hit), or runs for itself. */
static void finish_waiters(cache_waiter *w, bool ok, const tensor *outs, size_t n) {
  while (w) {
    cache_waiter *next = w->next;
    infer_request *waiter = w->item;
    free(w);
    if (ok && give_outputs(waiter, outs, n)) {
      serve_headers_add(waiter->reply_headers, "X-Cache", "hit");
      serve_complete(waiter);
    } else {
      serve_headers_add(waiter->reply_headers, "X-Cache", "miss");
      serve_resume(waiter);
    }
    w = next;
  }
}

/* ---- the Redis tier ----------------------------------------------------------------------
 * A value is the outputs in one flat form: "IFC1", u32 count, then per tensor u32 name length,
 * the name, i32 datatype, u8 bytes_are_json, i32 ndim, i64 dims, u64 byte size, the bytes; in
 * this machine's byte order (replicas run the same build). Read back with every length checked
 * (what Redis holds is not trusted to be ours). */

#define SHARED_MAGIC "IFC1"

static size_t shared_size(const tensor *ts, size_t n) {
  size_t b = 4 + 4;
  for (size_t i = 0; i < n; i++)
    b += 4 + strlen(ts[i].name) + 4 + 1 + 4 + (size_t)ts[i].ndim * 8 + 8 + ts[i].byte_size;
  return b;
}

static uint8_t *put(uint8_t *p, const void *v, size_t n) {
  memcpy(p, v, n);
  return p + n;
}

static uint8_t *shared_encode(const tensor *ts, size_t n, size_t *len) {
  *len = shared_size(ts, n);
  uint8_t *buf = malloc(*len), *p = buf;
  if (buf == NULL) return NULL;
  uint32_t cnt = (uint32_t)n;
  p = put(p, SHARED_MAGIC, 4);
  p = put(p, &cnt, 4);
  for (size_t i = 0; i < n; i++) {
    uint32_t nl = (uint32_t)strlen(ts[i].name);
    int32_t dt = (int32_t)ts[i].datatype, nd = ts[i].ndim;
    uint8_t js = ts[i].bytes_are_json;
    uint64_t bs = ts[i].byte_size;
    p = put(p, &nl, 4);
    p = put(p, ts[i].name, nl);
    p = put(p, &dt, 4);
    p = put(p, &js, 1);
    p = put(p, &nd, 4);
    p = put(p, ts[i].shape, (size_t)nd * 8);
    p = put(p, &bs, 8);
    p = put(p, ts[i].data, ts[i].byte_size);
  }
  return buf;
}

typedef struct reader {
  const uint8_t *p, *end;
} reader;

static bool take(reader *r, void *v, size_t n) {
  if ((size_t)(r->end - r->p) < n) return false;
  memcpy(v, r->p, n);
  r->p += n;
  return true;
}

static cached_outputs *shared_decode(const uint8_t *buf, size_t len, size_t *bytes) {
  reader r = {buf, buf + len};
  char magic[4];
  uint32_t cnt;
  if (!take(&r, magic, 4) || memcmp(magic, SHARED_MAGIC, 4) != 0 || !take(&r, &cnt, 4) || cnt > 4096) return NULL;
  cached_outputs *co = calloc(1, sizeof *co);
  if (co == NULL || (co->outputs = calloc(cnt ? cnt : 1, sizeof *co->outputs)) == NULL) {
    free(co);
    return NULL;
  }
  *bytes = sizeof *co;
  for (uint32_t i = 0; i < cnt; i++, co->n++) {
    tensor *t = &co->outputs[i];
    uint32_t nl;
    int32_t dt, nd;
    uint8_t js;
    uint64_t bs;
    if (!take(&r, &nl, 4) || nl > 4096 || (size_t)(r.end - r.p) < nl || (t->name = malloc(nl + 1)) == NULL) break;
    take(&r, t->name, nl);
    t->name[nl] = '\0';
    if (!take(&r, &dt, 4) || !take(&r, &js, 1) || !take(&r, &nd, 4) || nd < 0 || nd > TENSOR_MAX_DIMS ||
        !take(&r, t->shape, (size_t)nd * 8) || !take(&r, &bs, 8) || bs > (uint64_t)(r.end - r.p) ||
        (t->data = malloc(bs ? bs : 1)) == NULL) {
      free(t->name);
      t->name = NULL;
      break;
    }
    take(&r, t->data, bs);
    t->datatype = (inferd_datatype)dt;
    t->bytes_are_json = js != 0;
    t->ndim = nd;
    t->byte_size = bs;
    *bytes += sizeof(tensor) + nl + 1 + bs;
  }
  if (co->n != cnt || r.p != r.end) {
    free_cached(co);
    return NULL;
  }
  return co;
}

static void shared_key(const uint8_t key[CACHE_KEY_SIZE], char out[64]) {
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "inferd:cache:", 13);
  for (int i = 0; i < CACHE_KEY_SIZE; i++) {
    out[13 + 2 * i] = hex[key[i] >> 4];
    out[14 + 2 * i] = hex[key[i] & 15];
  }
  out[13 + 2 * CACHE_KEY_SIZE] = '\0';
}

static void shared_put_reply(void *arg, const redisReply *reply, const char *why) {
  (void)arg;
  bool ok = reply && reply->type != REDIS_REPLY_ERROR;
  rstore_feature_result(shared_feature, ok, reply ? reply->str : why);
  if (ok) atomic_fetch_add(&n_shared_stores, 1);
  else atomic_fetch_add(&n_shared_errors, 1);
}

/* The leader's result into Redis, with the model's TTL; fire and forget (a failure only means
 * the other replicas miss). */
static void shared_put(const infer_request *req, const version_cache *vc) {
  (void)vc;
  size_t len;
  uint8_t *blob = shared_encode(req->outputs, req->n_outputs, &len);
  if (blob == NULL) return;
  char key[64], ttl[24];
  shared_key(req->cache_key, key);
  int64_t ttl_ms = req->mv->model->config->response_cache.ttl_ms;
  snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
  const char *argv[] = {"SET", key, (const char *)blob, "PX", ttl};
  size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
  inferd_status st = rstore_async(shared, ttl_ms > 0 ? 5 : 3, argv, lens, 0, shared_put_reply, NULL);
  if (!status_is_ok(&st)) rstore_feature_result(shared_feature, false, st.msg);
  free(blob);
}

/* A parked leader's answer from Redis (on the store's thread): a hit answers it and every
 * request parked on it, and fills the local tier; anything else sends it to run. */
static void shared_get_reply(void *arg, const redisReply *reply, const char *why) {
  infer_request *req = arg;
  version_cache *vc = cache_of(req);
  rstore_feature_result(shared_feature, reply != NULL && reply->type != REDIS_REPLY_ERROR,
                        reply ? reply->str : why);
  size_t bytes = 0;
  cached_outputs *co = reply && reply->type == REDIS_REPLY_STRING
                           ? shared_decode((const uint8_t *)reply->str, reply->len, &bytes)
                           : NULL;
  if (co && give_outputs(req, co->outputs, co->n)) {
    req->cache_leader = false;
    atomic_fetch_add(&n_shared_hits, 1);
    atomic_fetch_add(&n_hits, 1);
    cache_waiter *w = cache_lru_finish(vc->lru, req->cache_key, monotime_ns(), co, bytes);
    /* co is the local tier's now (or freed): the waiters copy from req's own outputs */
    finish_waiters(w, true, req->outputs, req->n_outputs);
    serve_headers_add(req->reply_headers, "X-Cache", "hit");
    serve_complete(req);
    return;
  }
  free_cached(co);
  if (reply == NULL || reply->type == REDIS_REPLY_ERROR) atomic_fetch_add(&n_shared_errors, 1);
  else atomic_fetch_add(&n_shared_misses, 1);
  atomic_fetch_add(&n_misses, 1);
  serve_headers_add(req->reply_headers, "X-Cache", "miss");
  serve_resume(req); /* still the leader: its completion stores the result in both tiers */
}

inferd_status cache_set_shared(rstore *rs) {
  shared = rs;
  shared_feature = rstore_feature_add(rs, "cache");
  return status_ok();
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
  if (r == CACHE_LRU_LEAD) {
    req->cache_leader = true;
    memcpy(req->cache_key, key, CACHE_KEY_SIZE);
    if (shared && rstore_up(shared)) { /* the second tier, before running it */
      char k[64];
      shared_key(key, k);
      const char *argv[] = {"GET", k};
      st = rstore_async(shared, 2, argv, NULL, 0, shared_get_reply, req);
      if (status_is_ok(&st)) { /* req is the store thread's now, perhaps already answered */
        serve_park(req);       /* (serve_park only marks this thread's lookup: req is not read) */
        return status_ok();
      }
      rstore_feature_result(shared_feature, false, st.msg); /* down: a plain miss */
    }
  }
  atomic_fetch_add(&n_misses, 1);
  serve_headers_add(req->reply_headers, "X-Cache", "miss");
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
  if (co && shared) shared_put(req, vc);
  cache_waiter *w = cache_lru_finish(vc->lru, req->cache_key, monotime_ns(), co, bytes + sizeof *co);
  finish_waiters(w, ok, req->outputs, req->n_outputs);
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
  if (shared)
    fprintf(out,
            "# HELP inferd_cache_redis_lookups_total Local misses looked up in the Redis tier, by outcome.\n"
            "# TYPE inferd_cache_redis_lookups_total counter\n"
            "inferd_cache_redis_lookups_total{result=\"hit\"} %llu\n"
            "inferd_cache_redis_lookups_total{result=\"miss\"} %llu\n"
            "# HELP inferd_cache_redis_errors_total Redis tier reads and writes that failed (Redis down or slow).\n"
            "# TYPE inferd_cache_redis_errors_total counter\ninferd_cache_redis_errors_total %llu\n"
            "# HELP inferd_cache_redis_stores_total Results written to the Redis tier.\n"
            "# TYPE inferd_cache_redis_stores_total counter\ninferd_cache_redis_stores_total %llu\n",
            (unsigned long long)atomic_load(&n_shared_hits), (unsigned long long)atomic_load(&n_shared_misses),
            (unsigned long long)atomic_load(&n_shared_errors), (unsigned long long)atomic_load(&n_shared_stores));
}
