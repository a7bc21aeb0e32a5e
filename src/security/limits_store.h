/* security/limits_store: where the limiters' state lives, behind one small interface (an ops
 * table), so that every piece of state the rate limits keep can move to a shared store (Redis,
 * with the same arithmetic in an atomic script) without touching the policy or the pipeline.
 * The local implementation keeps it in this process: a lock-striped hash map of keys. */
#ifndef INFERD_LIMITS_STORE_H
#define INFERD_LIMITS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "security/ratelimit.h"

/* The rate buckets a key has: requests per second, records per minute. */
typedef enum { LIMIT_REQUESTS, LIMIT_RECORDS, LIMIT_KINDS } limit_kind;

typedef struct limit_store limit_store;

/* A store's operations. Keys are opaque strings (the principal's name, and the model's when limits
 * are per model). The rule travels with each call rather than living in the store: a key's limits
 * change when its key file is reloaded, and a shared store's script takes them as arguments.
 * Failing calls return a status (a shared store may be unreachable); the caller decides whether
 * that admits the request. now_ns is the caller's clock (a shared store may use its own). */
typedef struct limit_store_ops {
  inferd_status (*rate_take)(limit_store *s, const char *key, limit_kind kind, const ratelimit_rule *rule,
                             int64_t cost, int64_t now_ns, ratelimit_decision *out);
  /* Gives back units a take counted for a request that did not run after all. */
  void (*rate_return)(limit_store *s, const char *key, limit_kind kind, const ratelimit_rule *rule, int64_t cost,
                      int64_t now_ns);
  /* One more request in flight for key when fewer than max are. When allowed, *lease is what
   * concurrency_return needs to give the slot back (however the request ends). */
  inferd_status (*concurrency_take)(limit_store *s, const char *key, int64_t max, int64_t now_ns,
                                    ratelimit_decision *out, void **lease);
  void (*concurrency_return)(limit_store *s, void *lease);
  void (*destroy)(limit_store *s);
} limit_store_ops;

struct limit_store {
  const limit_store_ops *ops;
};

/* The in-process store: at most max_entries keys (0: 65536). A key whose buckets are full and that
 * has nothing in flight is idle, the same as a key never seen, and is dropped when room is needed;
 * when no key is idle, the least recently used one with nothing in flight goes (it forgets how
 * empty its buckets were: a little lenient, never strict). Keys with requests in flight are never
 * dropped. Thread-safe: the map is split into independently locked stripes, each call locks one. */
inferd_status limit_store_local_create(size_t max_entries, limit_store **out);
/* The local store's key count (tests, metrics). */
size_t limit_store_local_size(limit_store *s);

/* The shared store (limits_store_redis.c): requests and records per second as GCRA in one atomic
 * Lua script on Redis's clock, so a limit holds across every replica using the same Redis. Each
 * call is a bounded synchronous round trip (timeout_ms) from the admit or check stage; while
 * Redis is down or a call fails it answers from an in-process store of max_local_entries keys
 * (the fallback), and it reports which through the store's "rate_limits" feature. Concurrency
 * limits stay per replica (the local store): a slot in Redis would leak with a replica killed
 * while holding it. */
struct rstore;
inferd_status limit_store_redis_create(struct rstore *rs, size_t max_local_entries, int timeout_ms,
                                       limit_store **out);

static inline void limit_store_destroy(limit_store *s) {
  if (s) s->ops->destroy(s);
}

#endif
