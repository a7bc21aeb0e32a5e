/* cache/cache_lru: the sharded, byte-bounded LRU with a TTL and the keys in flight (cache_lru.h). */
#include "cache/cache_lru.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
  uint8_t key[CACHE_KEY_SIZE];
  struct entry *hnext;      /* the bucket's chain */
  struct entry *prev, *next; /* the LRU list, most recent first; a pending entry is not on it */
  bool pending;
  cache_waiter *wait_head, *wait_tail; /* pending: the requests waiting on the leader */
  int64_t expires_ns;                  /* 0: never */
  void *value;
  size_t bytes; /* value's bytes + CACHE_LRU_ENTRY_OVERHEAD */
} entry;

typedef struct shard {
  pthread_mutex_t mu;
  entry **buckets;
  size_t n_buckets; /* a power of two */
  size_t n_entries; /* in the table, pending ones included */
  entry *lru_head, *lru_tail;
  int64_t bytes, stored;
} shard;

#define MAX_SHARDS 16

struct cache_lru {
  int n_shards;
  int64_t shard_max_bytes;
  int64_t ttl_ns;
  void (*free_value)(void *);
  cache_lru_counters *counters;
  cache_lru_counters own; /* when the caller gave none */
  shard shards[MAX_SHARDS];
};

static uint64_t key_word(const uint8_t *key, int at) {
  uint64_t w;
  memcpy(&w, key + at, sizeof w);
  return w;
}

cache_lru *cache_lru_create(int64_t max_bytes, int64_t ttl_ns, void (*free_value)(void *value),
                            cache_lru_counters *counters) {
  cache_lru *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  /* Shards cut lock contention between threads but split the budget: a small cache keeps one
   * shard so that a single entry near max_bytes still fits. */
  int n = (int)(max_bytes / (INT64_C(1) << 20));
  c->n_shards = n < 1 ? 1 : n > MAX_SHARDS ? MAX_SHARDS : n;
  c->shard_max_bytes = max_bytes / c->n_shards;
  c->ttl_ns = ttl_ns;
  c->free_value = free_value;
  c->counters = counters ? counters : &c->own;
  for (int i = 0; i < c->n_shards; i++) {
    shard *s = &c->shards[i];
    pthread_mutex_init(&s->mu, NULL);
    s->n_buckets = 64;
    s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
    if (s->buckets == NULL) {
      c->n_shards = i + 1;
      cache_lru_destroy(c);
      return NULL;
    }
  }
  return c;
}

static void lru_unlink(shard *s, entry *e) {
  if (e->prev) e->prev->next = e->next;
  else s->lru_head = e->next;
  if (e->next) e->next->prev = e->prev;
  else s->lru_tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push_front(shard *s, entry *e) {
  e->prev = NULL;
  e->next = s->lru_head;
  if (s->lru_head) s->lru_head->prev = e;
  s->lru_head = e;
  if (s->lru_tail == NULL) s->lru_tail = e;
}

static entry **find_slot(shard *s, const uint8_t *key) {
  entry **p = &s->buckets[key_word(key, 0) & (s->n_buckets - 1)];
  while (*p && memcmp((*p)->key, key, CACHE_KEY_SIZE) != 0) p = &(*p)->hnext;
  return p;
}

/* Doubles the table when it is fuller than one entry a bucket; a failed allocation keeps the
 * old table (longer chains, still correct). */
static void maybe_grow(shard *s) {
  if (s->n_entries < s->n_buckets) return;
  size_t nb = s->n_buckets * 2;
  entry **b = calloc(nb, sizeof *b);
  if (b == NULL) return;
  for (size_t i = 0; i < s->n_buckets; i++)
    for (entry *e = s->buckets[i], *next; e; e = next) {
      next = e->hnext;
      entry **slot = &b[key_word(e->key, 0) & (nb - 1)];
      e->hnext = *slot;
      *slot = e;
    }
  free(s->buckets);
  s->buckets = b;
  s->n_buckets = nb;
}

/* Removes a stored (not pending) entry and frees it. */
static void drop(cache_lru *c, shard *s, entry *e) {
  entry **p = find_slot(s, e->key);
  *p = e->hnext;
  s->n_entries--;
  lru_unlink(s, e);
  s->bytes -= (int64_t)e->bytes;
  s->stored--;
  atomic_fetch_sub(&c->counters->bytes, (int64_t)e->bytes);
  atomic_fetch_sub(&c->counters->entries, 1);
  if (c->free_value) c->free_value(e->value);
  free(e);
}

static shard *shard_of(cache_lru *c, const uint8_t *key) {
  return &c->shards[key_word(key, 8) % (uint64_t)c->n_shards];
}

cache_lru_result cache_lru_begin(cache_lru *c, const uint8_t key[CACHE_KEY_SIZE], int64_t now,
                                 void (*copy)(const void *value, void *arg), void *arg, cache_waiter *w) {
  shard *s = shard_of(c, key);
  pthread_mutex_lock(&s->mu);
  entry **p = find_slot(s, key);
  entry *e = *p;
  if (e && !e->pending && e->expires_ns && now >= e->expires_ns) {
    drop(c, s, e);
    atomic_fetch_add(&c->counters->expirations, 1);
    e = NULL;
  }
  cache_lru_result r;
  if (e && !e->pending) {
    lru_unlink(s, e);
    lru_push_front(s, e);
    if (copy) copy(e->value, arg);
    r = CACHE_LRU_HIT;
  } else if (e) {
    if (w) {
      w->next = NULL;
      if (e->wait_tail) e->wait_tail->next = w;
      else e->wait_head = w;
      e->wait_tail = w;
      r = CACHE_LRU_WAIT;
    } else {
      r = CACHE_LRU_LEAD;
    }
  } else {
    e = calloc(1, sizeof *e);
    if (e == NULL) {
      pthread_mutex_unlock(&s->mu);
      return CACHE_LRU_LEAD; /* out of memory: run it uncached... */
    }
    memcpy(e->key, key, CACHE_KEY_SIZE);
    e->pending = true;
    maybe_grow(s);
    p = find_slot(s, key);
    *p = e;
    s->n_entries++;
    r = CACHE_LRU_LEAD;
  }
  pthread_mutex_unlock(&s->mu);
  return r;
}

cache_waiter *cache_lru_finish(cache_lru *c, const uint8_t key[CACHE_KEY_SIZE], int64_t now, void *value,
                               size_t bytes) {
  shard *s = shard_of(c, key);
  pthread_mutex_lock(&s->mu);
  entry **p = find_slot(s, key);
  entry *e = *p;
  cache_waiter *waiters = NULL;
  if (e == NULL || !e->pending) { /* ...as begin's out-of-memory case left it: nothing to finish */
    pthread_mutex_unlock(&s->mu);
    if (value && c->free_value) c->free_value(value);
    return NULL;
  }
  waiters = e->wait_head;
  e->wait_head = e->wait_tail = NULL;
  int64_t need = (int64_t)bytes + CACHE_LRU_ENTRY_OVERHEAD;
  if (value == NULL || need > c->shard_max_bytes) {
    *p = e->hnext;
    s->n_entries--;
    free(e);
  } else {
    /* room first: expired entries and the least recently used go, oldest first */
    while (s->lru_tail && s->bytes + need > c->shard_max_bytes) {
      entry *victim = s->lru_tail;
      bool expired = victim->expires_ns && now >= victim->expires_ns;
      drop(c, s, victim);
      atomic_fetch_add(expired ? &c->counters->expirations : &c->counters->evictions, 1);
    }
    e->pending = false;
    e->value = value;
    value = NULL;
    e->bytes = (size_t)need;
    e->expires_ns = c->ttl_ns ? now + c->ttl_ns : 0;
    lru_push_front(s, e);
    s->bytes += need;
    s->stored++;
    atomic_fetch_add(&c->counters->bytes, need);
    atomic_fetch_add(&c->counters->entries, 1);
  }
  pthread_mutex_unlock(&s->mu);
  if (value && c->free_value) c->free_value(value);
  return waiters;
}

void cache_lru_usage(cache_lru *c, int64_t *entries, int64_t *bytes) {
  *entries = *bytes = 0;
  for (int i = 0; i < c->n_shards; i++) {
    shard *s = &c->shards[i];
    pthread_mutex_lock(&s->mu);
    *entries += s->stored;
    *bytes += s->bytes;
    pthread_mutex_unlock(&s->mu);
  }
}

void cache_lru_destroy(cache_lru *c) {
  if (c == NULL) return;
  for (int i = 0; i < c->n_shards; i++) {
    shard *s = &c->shards[i];
    for (size_t b = 0; s->buckets && b < s->n_buckets; b++)
      for (entry *e = s->buckets[b], *next; e; e = next) {
        next = e->hnext;
        if (!e->pending) {
          atomic_fetch_sub(&c->counters->bytes, (int64_t)e->bytes);
          atomic_fetch_sub(&c->counters->entries, 1);
          if (c->free_value) c->free_value(e->value);
        }
        free(e);
      }
    free(s->buckets);
    pthread_mutex_destroy(&s->mu);
  }
  free(c);
}
