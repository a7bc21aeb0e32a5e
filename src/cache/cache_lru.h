/* cache/cache_lru: the prediction cache's store: 128-bit keys to opaque values, an LRU bounded
 * in bytes with a TTL, split into shards each under its own lock, and the entries in flight
 * (a key whose first request is running) with the requests waiting on them. Pure policy: the
 * time is an argument; no lock is held when a call returns. */
#ifndef INFERD_CACHE_LRU_H
#define INFERD_CACHE_LRU_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_SIZE 16

/* Counters several stores share (the process's totals); updated under each shard's lock. */
typedef struct cache_lru_counters {
  _Atomic int64_t entries, bytes;
  _Atomic uint64_t evictions, expirations;
} cache_lru_counters;

/* A request parked on a key in flight: the caller's node, handed back by cache_lru_finish. */
typedef struct cache_waiter {
  struct cache_waiter *next;
  void *item;
} cache_waiter;

typedef struct cache_lru cache_lru;

/* max_bytes bounds what the entries hold (their values' bytes plus CACHE_LRU_ENTRY_OVERHEAD
 * each); ttl_ns 0: no expiry. free_value frees a stored value. counters may be NULL. */
#define CACHE_LRU_ENTRY_OVERHEAD 96
cache_lru *cache_lru_create(int64_t max_bytes, int64_t ttl_ns, void (*free_value)(void *value),
                            cache_lru_counters *counters);
/* Frees every entry; nothing may be in flight. */
void cache_lru_destroy(cache_lru *c);

typedef enum {
  CACHE_LRU_HIT,  /* a fresh entry: copy(value, arg) ran under the shard's lock */
  CACHE_LRU_LEAD, /* no entry: the caller runs the request and must call cache_lru_finish */
  CACHE_LRU_WAIT  /* the key is in flight: w was queued on it; cache_lru_finish returns it */
} cache_lru_result;

/* Looks key up at time now (monotonic ns). On a miss the key becomes in flight, led by the
 * caller; a later begin of the same key queues its waiter until the leader finishes. An
 * expired entry counts as a miss (and is dropped). Returns CACHE_LRU_LEAD without queueing
 * when w is NULL and the key is in flight (a caller that cannot wait runs the request too;
 * it must then not call cache_lru_finish). */
cache_lru_result cache_lru_begin(cache_lru *c, const uint8_t key[CACHE_KEY_SIZE], int64_t now,
                                 void (*copy)(const void *value, void *arg), void *arg, cache_waiter *w);

/* The leader of key is done: stores value (bytes long; taken: freed by the store, at once when
 * it cannot be kept) unless value is NULL (the run failed), and returns the waiters that were
 * queued on the key, oldest first, for the caller to complete outside the lock. */
cache_waiter *cache_lru_finish(cache_lru *c, const uint8_t key[CACHE_KEY_SIZE], int64_t now, void *value,
                               size_t bytes);

/* Entries and bytes held now (entries in flight are not counted). */
void cache_lru_usage(cache_lru *c, int64_t *entries, int64_t *bytes);

#endif
