/* traffic/store: where the live traffic state (each model's policy, with its aliases, weights
 * and rollout step) and its history are kept, behind a small interface so a shared store
 * (Redis, for several replicas) can stand in for the local SQLite one. */
#ifndef INFERD_TRAFFIC_STORE_H
#define INFERD_TRAFFIC_STORE_H

#include <stdint.h>

#include "core/status.h"

typedef struct traffic_store traffic_store;

typedef struct traffic_store_ops {
  /* Calls fn once per stored model with its policy (JSON text). */
  inferd_status (*load)(traffic_store *st, void (*fn)(void *user, const char *model, const char *policy_json),
                        void *user);
  /* Stores model's policy and appends event (JSON text) to its history, in one transaction:
   * after a crash either both or neither are there. */
  inferd_status (*save)(traffic_store *st, const char *model, const char *policy_json, int64_t at_ms,
                        const char *event_json);
  /* The newest `limit` events of model, oldest first, each passed to fn. */
  inferd_status (*history)(traffic_store *st, const char *model, int limit,
                           void (*fn)(void *user, const char *event_json), void *user);
  void (*close)(traffic_store *st);
  /* A shared store (NULL for a local one): when the shared state changed since *generation
   * (0: never read), calls fn for every stored policy and advances *generation. Polled by the
   * rollout tick's thread, so each replica sees the others' changes within a poll. */
  inferd_status (*refresh)(traffic_store *st, int64_t *generation,
                           void (*fn)(void *user, const char *model, const char *policy_json), void *user);
} traffic_store_ops;

struct traffic_store {
  const traffic_store_ops *ops;
};

/* SQLite in WAL mode at path (created with its folder's tables when new). */
inferd_status traffic_store_sqlite_open(const char *path, traffic_store **out);

/* Redis, shared by every replica (store_redis.c): changes go to the local SQLite store at
 * sqlite_path and to Redis; reads come from Redis, or the local store while Redis is down. */
struct rstore;
inferd_status traffic_store_redis_open(struct rstore *rs, const char *sqlite_path, traffic_store **out);

#endif
