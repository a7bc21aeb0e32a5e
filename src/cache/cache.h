/* cache/cache: the prediction cache in the request pipeline (docs/cache.md). Opt-in per model
 * (config.json "response_cache"): the lookup stage answers a hit and parks a request identical
 * to one already running; the cache_store stage keeps a successful result and completes the
 * requests parked on it. Entries live per model version, so a reload or unload drops them. */
#ifndef INFERD_CACHE_H
#define INFERD_CACHE_H

#include <stdint.h>
#include <stdio.h>

#include "core/serve.h"

/* Registers the version hook that gives each cached version its store and identity. Call at
 * start, before the repository opens (as the other version hooks). */
inferd_status cache_register(void);
/* The second tier (docs/redis.md): with rs set, a local miss looks in Redis before running (the
 * request is parked meanwhile and resumed from the store's thread), and a result is kept in
 * Redis too, under the same 128-bit key, with the model's ttl_ms. Redis down: local misses run,
 * never fail. Before serving starts; rs must outlive the requests. */
struct rstore;
inferd_status cache_set_shared(struct rstore *rs);
/* Adds the lookup and cache_store handlers to s. */
inferd_status cache_install(serve *s);

/* The process's totals, for /metrics. */
typedef struct cache_stats_t {
  uint64_t hits;        /* answered from an entry */
  uint64_t coalesced;   /* answered from an identical request's run, which they waited on */
  uint64_t misses;      /* ran the model (cache enabled) */
  uint64_t stores;      /* results kept */
  uint64_t evictions;   /* dropped to keep within max_bytes */
  uint64_t expirations; /* dropped past their ttl_ms */
  int64_t entries;      /* held now */
  int64_t bytes;        /* held now (values + per-entry overhead) */
} cache_stats_t;
void cache_stats(cache_stats_t *out);
/* The same as Prometheus text (inferd_cache_*), for the metrics registry's collectors. */
void cache_metrics_write(void *unused, FILE *out);

#endif
