/* store/rstore: the one Redis connection every shared-state feature uses (rate limits, the
 * prediction cache's second tier, traffic state; docs/redis.md). hiredis, asynchronous, on a
 * libevent loop of its own thread (`redis-store`); reconnects with backoff. A command never
 * blocks a caller for long: while Redis is down a command fails at once (UNAVAILABLE) and the
 * feature uses its local state; while it is up a command has a timeout, and a run of timeouts
 * counts as down. */
#ifndef INFERD_RSTORE_H
#define INFERD_RSTORE_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

typedef struct rstore rstore;

typedef struct rstore_options {
  const char *url;     /* redis://[:password@]host[:port][/db] */
  int timeout_ms;      /* a command's answer, unless the caller gives its own; 0: 50 */
  int max_timeouts;    /* timeouts in a row that count as down; 0: 3 */
  int connect_wait_ms; /* how long create waits for the first connection; 0: 1000 (it never fails for that) */
} rstore_options;

/* Parses the URL and starts the thread; Redis being unreachable is no failure (the features
 * start on their local state and move over when it answers). */
inferd_status rstore_create(const rstore_options *o, rstore **out);
/* Stops the thread: commands pending get their callback with no reply, later ones UNAVAILABLE.
 * Idempotent. */
void rstore_stop(rstore *rs);
/* Stops (if needed) and frees; nothing may use rs after. */
void rstore_destroy(rstore *rs);

/* True while connected and answering. */
bool rstore_up(const rstore *rs);
/* The URL without its password. */
const char *rstore_url_text(const rstore *rs);
int rstore_default_timeout_ms(const rstore *rs);

/* Runs on the store's thread with the reply (valid during the call only; an error reply is a
 * reply), or with reply NULL and why saying what happened (timed out, connection lost). */
typedef void (*rstore_reply_fn)(void *arg, const redisReply *reply, const char *why);

/* Sends a command (binary-safe arguments, copied). OK: fn runs exactly once, on the store's
 * thread, within about timeout_ms (<= 0: the default). UNAVAILABLE, at once and without fn
 * running, while Redis is down or the store stopped. Any thread. */
inferd_status rstore_async(rstore *rs, int argc, const char *const *argv, const size_t *lens, int timeout_ms,
                           rstore_reply_fn fn, void *arg);

/* The same, waiting for the reply at most timeout_ms (<= 0: the default); never from an
 * rstore_reply_fn (the store's own thread: INTERNAL). *out is a copy the
 * caller frees with rstore_reply_free. UNAVAILABLE when down, DEADLINE_EXCEEDED on a timeout,
 * INTERNAL for a lost connection. An error reply is OK with a REDIS_REPLY_ERROR reply. */
inferd_status rstore_sync(rstore *rs, int argc, const char *const *argv, const size_t *lens, int timeout_ms,
                          redisReply **out);
void rstore_reply_free(redisReply *r);

/* A feature that uses the store (for /health and metrics: which ones are on local fallback).
 * Add before serving; at most 16. */
typedef struct rstore_feature rstore_feature;
rstore_feature *rstore_feature_add(rstore *rs, const char *name);
/* The outcome of one use: a failure puts the feature on fallback (logged once per change,
 * with why), a success takes it off. Any thread. */
void rstore_feature_result(rstore_feature *f, bool ok, const char *why);
/* On fallback: Redis is down, or the feature's last use failed. */
bool rstore_feature_fallback(const rstore_feature *f);

/* {"url", "connected", "features": {name: "redis"|"local_fallback"}}: for /health. */
json_t *rstore_health_json(const rstore *rs);
/* inferd_redis_* families as Prometheus text (a metrics stream collector). ctx: the rstore. */
void rstore_metrics_write(void *ctx, FILE *out);

#endif
