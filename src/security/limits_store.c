/* security/limits_store: the in-process limit store, a lock-striped hash map from key to its GCRA
 * timestamps and its count in flight (limits_store.h). */
#include "security/limits_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Stripes: a request's calls lock one stripe each, for a few hundred ns; 32 keep two callers
 * from meeting on a lock unless they share a key (then they must) or a 1-in-32 stripe. */
#define STRIPES 32

typedef struct lstripe lstripe;

typedef struct lentry {
  struct lentry *next; /* the bucket's chain */
  uint64_t hash;
  lstripe *stripe;     /* a lease is an entry: its return finds its lock here */
  int64_t tat[LIMIT_KINDS];
  int64_t in_flight;
  int64_t last_used_ns;
  char key[]; /* owned, NUL-terminated */
} lentry;

struct lstripe {
  _Alignas(64) pthread_mutex_t mu; /* a cache line of its own: neighbouring stripes' locks apart */
  lentry **buckets;                /* owned; nbuckets chains */
  size_t nbuckets;                 /* a power of two */
  size_t n, max;
};

typedef struct local_store {
  limit_store base;
  lstripe stripes[STRIPES];
} local_store;

static uint64_t hash_key(const char *k) { /* FNV-1a */
  uint64_t h = 1469598103934665603ULL;
  for (; *k; k++) h = (h ^ (unsigned char)*k) * 1099511628211ULL;
  return h;
}

static lstripe *stripe_of(local_store *ls, uint64_t h) { return &ls->stripes[h % STRIPES]; }

static lentry **bucket_of(lstripe *st, uint64_t h) { return &st->buckets[(h / STRIPES) & (st->nbuckets - 1)]; }

static bool entry_idle(const lentry *e, int64_t now) {
  if (e->in_flight > 0) return false;
  for (int k = 0; k < LIMIT_KINDS; k++)
    if (!ratelimit_idle(e->tat[k], now)) return false;
  return true;
}

/* Room for one more key in a full stripe: every idle key goes (losing nothing); when none is,
 * the least recently used key with nothing in flight. Runs only when the stripe is full, and a
 * sweep usually frees many, so its cost is spread over the inserts that follow. */
static void make_room(lstripe *st, int64_t now) {
  lentry **lru = NULL;
  for (size_t b = 0; b < st->nbuckets; b++) {
    for (lentry **pp = &st->buckets[b]; *pp;) {
      lentry *e = *pp;
      if (entry_idle(e, now)) {
        *pp = e->next;
        free(e);
        st->n--;
        continue;
      }
      if (e->in_flight == 0 && (lru == NULL || e->last_used_ns < (*lru)->last_used_ns)) lru = pp;
      pp = &e->next;
    }
  }
  if (st->n < st->max || lru == NULL) return; /* every key in flight: the bound gives way */
  lentry *e = *lru;
  *lru = e->next;
  free(e);
  st->n--;
}

/* The entry of key, created when absent; NULL when out of memory. The stripe's lock is held. */
static lentry *find_or_add(lstripe *st, const char *key, uint64_t h, int64_t now) {
  for (lentry *e = *bucket_of(st, h); e; e = e->next)
    if (e->hash == h && strcmp(e->key, key) == 0) {
      e->last_used_ns = now;
      return e;
    }
  if (st->n >= st->max) make_room(st, now);
  size_t len = strlen(key);
  lentry *e = calloc(1, sizeof *e + len + 1);
  if (e == NULL) return NULL;
  memcpy(e->key, key, len + 1);
  e->hash = h;
  e->stripe = st;
  e->last_used_ns = now;
  lentry **b = bucket_of(st, h);
  e->next = *b;
  *b = e;
  st->n++;
  return e;
}

static inferd_status local_rate_take(limit_store *s, const char *key, limit_kind kind, const ratelimit_rule *rule,
                                     int64_t cost, int64_t now_ns, ratelimit_decision *out) {
  local_store *ls = (local_store *)s;
  uint64_t h = hash_key(key);
  lstripe *st = stripe_of(ls, h);
  pthread_mutex_lock(&st->mu);
  lentry *e = find_or_add(st, key, h, now_ns);
  if (e) *out = ratelimit_take(&e->tat[kind], rule, cost, now_ns);
  pthread_mutex_unlock(&st->mu);
  if (e == NULL) return status_make(INFERD_INTERNAL, "out of memory for the rate limits' state");
  return status_ok();
}

static void local_rate_return(limit_store *s, const char *key, limit_kind kind, const ratelimit_rule *rule,
                              int64_t cost, int64_t now_ns) {
  local_store *ls = (local_store *)s;
  uint64_t h = hash_key(key);
  lstripe *st = stripe_of(ls, h);
  pthread_mutex_lock(&st->mu);
  for (lentry *e = *bucket_of(st, h); e; e = e->next)
    if (e->hash == h && strcmp(e->key, key) == 0) {
      ratelimit_return(&e->tat[kind], rule, cost, now_ns);
      break;
    }
  pthread_mutex_unlock(&st->mu);
}

static inferd_status local_concurrency_take(limit_store *s, const char *key, int64_t max, int64_t now_ns,
                                            ratelimit_decision *out, void **lease) {
  local_store *ls = (local_store *)s;
  uint64_t h = hash_key(key);
  lstripe *st = stripe_of(ls, h);
  *lease = NULL;
  pthread_mutex_lock(&st->mu);
  lentry *e = find_or_add(st, key, h, now_ns);
  if (e) {
    *out = ratelimit_concurrency_take(&e->in_flight, max);
    if (out->allowed) *lease = e; /* pinned: an entry with requests in flight is never dropped */
  }
  pthread_mutex_unlock(&st->mu);
  if (e == NULL) return status_make(INFERD_INTERNAL, "out of memory for the rate limits' state");
  return status_ok();
}

static void local_concurrency_return(limit_store *s, void *lease) {
  (void)s;
  lentry *e = lease;
  if (e == NULL) return;
  pthread_mutex_lock(&e->stripe->mu);
  ratelimit_concurrency_return(&e->in_flight);
  pthread_mutex_unlock(&e->stripe->mu);
}

static void local_destroy(limit_store *s) {
  local_store *ls = (local_store *)s;
  for (int i = 0; i < STRIPES; i++) {
    lstripe *st = &ls->stripes[i];
    for (size_t b = 0; b < st->nbuckets; b++)
      for (lentry *e = st->buckets[b], *next; e; e = next) {
        next = e->next;
        free(e);
      }
    free(st->buckets);
    pthread_mutex_destroy(&st->mu);
  }
  free(ls);
}

static const limit_store_ops local_ops = {
    .rate_take = local_rate_take,
    .rate_return = local_rate_return,
    .concurrency_take = local_concurrency_take,
    .concurrency_return = local_concurrency_return,
    .destroy = local_destroy,
};

inferd_status limit_store_local_create(size_t max_entries, limit_store **out) {
  if (max_entries == 0) max_entries = 65536;
  /* the stripes' 64-byte alignment needs an allocation that keeps it (calloc's is 16) */
  local_store *ls = aligned_alloc(_Alignof(local_store), sizeof *ls);
  if (ls == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  memset(ls, 0, sizeof *ls);
  ls->base.ops = &local_ops;
  size_t per = (max_entries + STRIPES - 1) / STRIPES, nb = 16;
  while (nb < per) nb *= 2;
  for (int i = 0; i < STRIPES; i++) {
    lstripe *st = &ls->stripes[i];
    pthread_mutex_init(&st->mu, NULL);
    st->max = per;
    st->nbuckets = nb;
    st->buckets = calloc(nb, sizeof *st->buckets);
    if (st->buckets == NULL) {
      for (int j = i + 1; j < STRIPES; j++) pthread_mutex_init(&ls->stripes[j].mu, NULL);
      local_destroy(&ls->base);
      return status_make(INFERD_INTERNAL, "out of memory");
    }
  }
  *out = &ls->base;
  return status_ok();
}

size_t limit_store_local_size(limit_store *s) {
  local_store *ls = (local_store *)s;
  size_t n = 0;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_lock(&ls->stripes[i].mu);
    n += ls->stripes[i].n;
    pthread_mutex_unlock(&ls->stripes[i].mu);
  }
  return n;
}
