/* traffic/store_redis: the traffic state shared by every replica through Redis (docs/redis.md):
 * the policies in one hash, each model's history in a list, and a generation counter that a
 * change bumps, which each replica polls to pick up the others' changes. Every change is also
 * written to the local SQLite store, which serves while Redis is down; a change made while Redis
 * is down is pushed when it is back, unless another replica changed that model meanwhile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/rstore.h"
#include "util/log.h"
#include "traffic/store.h"

#define K_POLICIES "inferd:traffic:policies"
#define K_GEN "inferd:traffic:generation"
#define K_HISTORY "inferd:traffic:history:" /* + model */
/* Admin calls and the tick thread wait for Redis, never a request: a longer bound than a
 * request's command, still short enough that an admin call never hangs on a stuck Redis. */
#define TRAFFIC_TIMEOUT_MS 500

/* KEYS: policies, history, generation. ARGV: model, policy, event ('' for none). One atomic step,
 * so a replica that sees the new generation also sees the policy. */
static const char SAVE_LUA[] =
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "if ARGV[3] ~= '' then\n"
    "  redis.call('RPUSH', KEYS[2], ARGV[3])\n"
    "  redis.call('LTRIM', KEYS[2], -1000, -1)\n"
    "end\n"
    "return redis.call('INCR', KEYS[3])\n";

/* KEYS as SAVE_LUA's; ARGV: model, policy, '1' when ARGV[4] is the policy this replica last saw
 * in Redis for the model ('0': it saw none), that policy, then the events in order. Pushes a
 * change made while Redis was down only when Redis still holds what the replica saw (or nothing:
 * a Redis restarted empty); otherwise another replica's change made meanwhile stands, and -1
 * says so. */
static const char PUSH_LUA[] =
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur and (ARGV[3] == '0' or cur ~= ARGV[4]) then return -1 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "for i = 5, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end\n"
    "redis.call('LTRIM', KEYS[2], -1000, -1)\n"
    "return redis.call('INCR', KEYS[3])\n";

/* A model's policy as this replica last saw it in Redis. */
typedef struct seen_policy {
  struct seen_policy *next;
  char *model, *policy;
} seen_policy;

/* Changes made while Redis was down, one per model: the newest policy, every event in order,
 * and what Redis held for the model before the first of them. */
#define PENDING_MAX_EVENTS 64
typedef struct pending_change {
  struct pending_change *next;
  char *model, *policy, *base; /* base NULL: Redis held no policy for it that we saw */
  char *events[PENDING_MAX_EVENTS];
  int n_events;
} pending_change;

typedef struct redis_traffic {
  traffic_store base;
  rstore *rs;
  rstore_feature *feature;
  char sqlite_path[4096];
  traffic_store *local; /* opened when first needed (a server nobody configured leaves no file) */
  /* the caller serializes every call (traffic.c's admin_mu), so these need no lock */
  seen_policy *seen;
  pending_change *pending;
} redis_traffic;

static seen_policy *seen_find(redis_traffic *s, const char *model) {
  for (seen_policy *p = s->seen; p; p = p->next)
    if (strcmp(p->model, model) == 0) return p;
  return NULL;
}

static void seen_set(redis_traffic *s, const char *model, const char *policy) {
  seen_policy *p = seen_find(s, model);
  char *copy = strdup(policy);
  if (copy == NULL) return; /* out of memory: a later push then finds a conflict and yields */
  if (p == NULL) {
    p = calloc(1, sizeof *p);
    if (p == NULL || (p->model = strdup(model)) == NULL) {
      free(p);
      free(copy);
      return;
    }
    p->next = s->seen;
    s->seen = p;
  }
  free(p->policy);
  p->policy = copy;
}

static void pending_free(pending_change *c) {
  free(c->model);
  free(c->policy);
  free(c->base);
  for (int i = 0; i < c->n_events; i++) free(c->events[i]);
  free(c);
}

/* Remembers a change Redis did not take. Out of memory or too many events: the change stays
 * local, as before Redis came back (logged). */
static void pending_add(redis_traffic *s, const char *model, const char *policy, const char *event) {
  pending_change *c = s->pending;
  while (c && strcmp(c->model, model) != 0) c = c->next;
  if (c == NULL) {
    c = calloc(1, sizeof *c);
    const seen_policy *seen = seen_find(s, model);
    if (c == NULL || (c->model = strdup(model)) == NULL || (seen && (c->base = strdup(seen->policy)) == NULL)) {
      if (c) pending_free(c);
      log_msg(LOG_WARN, model, "traffic: out of memory: this change stays on this replica");
      return;
    }
    c->next = s->pending;
    s->pending = c;
  }
  char *policy_copy = strdup(policy);
  if (policy_copy == NULL) { /* pushing an older policy (or none) would be wrong: none is pushed */
    pending_change **pp = &s->pending;
    while (*pp != c) pp = &(*pp)->next;
    *pp = c->next;
    pending_free(c);
    log_msg(LOG_WARN, model, "traffic: out of memory: this change stays on this replica");
    return;
  }
  free(c->policy);
  c->policy = policy_copy;
  if (event && c->n_events < PENDING_MAX_EVENTS) {
    char *e = strdup(event);
    if (e) c->events[c->n_events++] = e;
  }
}

static inferd_status local_store(redis_traffic *s, bool create) {
  if (s->local) return status_ok();
  struct stat sb;
  if (!create && stat(s->sqlite_path, &sb) != 0) return status_make(INFERD_NOT_FOUND, "no local traffic state");
  return traffic_store_sqlite_open(s->sqlite_path, &s->local);
}

static inferd_status call(redis_traffic *s, int argc, const char *const *argv, redisReply **out) {
  inferd_status st = rstore_up(s->rs) ? rstore_sync(s->rs, argc, argv, NULL, TRAFFIC_TIMEOUT_MS, out)
                                      : status_make(INFERD_UNAVAILABLE, "Redis is unreachable");
  if (status_is_ok(&st) && (*out)->type == REDIS_REPLY_ERROR) {
    st = status_make(INFERD_INTERNAL, "Redis refused a traffic command: %.200s", (*out)->str);
    rstore_reply_free(*out);
    *out = NULL;
  }
  rstore_feature_result(s->feature, status_is_ok(&st), st.msg);
  return st;
}

/* Policies from a HGETALL reply, in pairs; each is remembered as seen. */
static void each_policy(redis_traffic *s, const redisReply *r, void (*fn)(void *, const char *, const char *),
                        void *user) {
  if (r->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    if (r->element[i]->str && r->element[i + 1]->str) {
      seen_set(s, r->element[i]->str, r->element[i + 1]->str);
      fn(user, r->element[i]->str, r->element[i + 1]->str);
    }
}

/* The local state first, then Redis's over it: a Redis that lost its data (restarted without
 * persistence) does not make a replica forget the policies it knows. */
static inferd_status rt_load(traffic_store *base, void (*fn)(void *, const char *, const char *), void *user) {
  redis_traffic *s = (redis_traffic *)base;
  inferd_status st = local_store(s, false);
  if (status_is_ok(&st)) TRY(s->local->ops->load(s->local, fn, user));
  redisReply *r = NULL;
  const char *argv[] = {"HGETALL", K_POLICIES};
  st = call(s, 2, argv, &r);
  if (status_is_ok(&st)) {
    each_policy(s, r, fn, user);
    rstore_reply_free(r);
  }
  return status_ok();
}

static inferd_status rt_save(traffic_store *base, const char *model, const char *policy_json, int64_t at_ms,
                             const char *event_json) {
  redis_traffic *s = (redis_traffic *)base;
  TRY(local_store(s, true)); /* durable here first: this replica's change survives a Redis outage */
  TRY(s->local->ops->save(s->local, model, policy_json, at_ms, event_json));
  char hk[512];
  snprintf(hk, sizeof hk, K_HISTORY "%s", model);
  const char *argv[] = {"EVAL", SAVE_LUA, "3", K_POLICIES, hk, K_GEN, model, policy_json, event_json ? event_json : ""};
  redisReply *r = NULL;
  inferd_status st = call(s, 9, argv, &r);
  rstore_reply_free(r);
  if (status_is_ok(&st))
    seen_set(s, model, policy_json);
  else /* down: pushed by refresh once Redis is back */
    pending_add(s, model, policy_json, event_json);
  return status_ok();
}

/* Pushes the changes made while Redis was down (refresh, Redis up). One that another replica's
 * change overtook is dropped: the refresh that follows applies theirs. */
static void push_pending(redis_traffic *s) {
  pending_change **pp = &s->pending;
  while (*pp) {
    pending_change *c = *pp;
    char hk[512];
    snprintf(hk, sizeof hk, K_HISTORY "%s", c->model);
    const char *argv[10 + PENDING_MAX_EVENTS] = {"EVAL", PUSH_LUA, "3", K_POLICIES, hk, K_GEN, c->model, c->policy,
                                                c->base ? "1" : "0", c->base ? c->base : ""};
    int argc = 10;
    for (int i = 0; i < c->n_events; i++) argv[argc++] = c->events[i];
    redisReply *r = NULL;
    inferd_status st = call(s, argc, argv, &r);
    if (!status_is_ok(&st)) return; /* down again: the next refresh tries again */
    if (r->type == REDIS_REPLY_INTEGER && r->integer < 0)
      log_msg(LOG_WARN, c->model,
              "traffic: the change made here while Redis was down was not shared: another replica changed "
              "this model meanwhile, and its policy applies");
    else {
      seen_set(s, c->model, c->policy);
      log_msg(LOG_INFO, c->model, "traffic: the change made here while Redis was down is now shared");
    }
    rstore_reply_free(r);
    *pp = c->next;
    pending_free(c);
  }
}

static inferd_status rt_history(traffic_store *base, const char *model, int limit, void (*fn)(void *, const char *),
                                void *user) {
  redis_traffic *s = (redis_traffic *)base;
  char hk[512], from[24];
  snprintf(hk, sizeof hk, K_HISTORY "%s", model);
  snprintf(from, sizeof from, "%d", limit > 0 ? -limit : 0);
  const char *argv[] = {"LRANGE", hk, from, "-1"};
  redisReply *r = NULL;
  inferd_status st = call(s, 4, argv, &r);
  if (status_is_ok(&st) && r->type == REDIS_REPLY_ARRAY && r->elements) {
    for (size_t i = 0; i < r->elements; i++)
      if (r->element[i]->str) fn(user, r->element[i]->str);
    rstore_reply_free(r);
    return status_ok();
  }
  rstore_reply_free(r);
  st = local_store(s, false);
  if (!status_is_ok(&st)) return status_ok(); /* no history anywhere */
  return s->local->ops->history(s->local, model, limit, fn, user);
}

static inferd_status rt_refresh(traffic_store *base, int64_t *generation,
                                void (*fn)(void *, const char *, const char *), void *user) {
  redis_traffic *s = (redis_traffic *)base;
  if (!rstore_up(s->rs)) return status_make(INFERD_UNAVAILABLE, "Redis is unreachable");
  push_pending(s);
  redisReply *r = NULL;
  const char *get[] = {"GET", K_GEN};
  TRY(call(s, 2, get, &r));
  int64_t gen = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
  rstore_reply_free(r);
  if (gen == *generation) return status_ok();
  const char *all[] = {"HGETALL", K_POLICIES};
  TRY(call(s, 2, all, &r));
  each_policy(s, r, fn, user);
  rstore_reply_free(r);
  *generation = gen;
  return status_ok();
}

static void rt_close(traffic_store *base) {
  redis_traffic *s = (redis_traffic *)base;
  if (s->local) s->local->ops->close(s->local);
  while (s->seen) {
    seen_policy *p = s->seen;
    s->seen = p->next;
    free(p->model);
    free(p->policy);
    free(p);
  }
  while (s->pending) {
    pending_change *c = s->pending;
    s->pending = c->next;
    pending_free(c);
  }
  free(s);
}

static const traffic_store_ops redis_ops = {rt_load, rt_save, rt_history, rt_close, rt_refresh};

inferd_status traffic_store_redis_open(rstore *rs, const char *sqlite_path, traffic_store **out) {
  redis_traffic *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  s->base.ops = &redis_ops;
  s->rs = rs;
  s->feature = rstore_feature_add(rs, "traffic");
  snprintf(s->sqlite_path, sizeof s->sqlite_path, "%s", sqlite_path);
  *out = &s->base;
  return status_ok();
}
