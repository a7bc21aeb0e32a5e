/* security/limits_store_redis: the rate limits' state in Redis, so a limit of R/s holds across
 * every replica sharing it: GCRA (ratelimit.c's arithmetic) in one Lua script, atomic in Redis,
 * on Redis's clock. Falls back to a local store while Redis is down (docs/redis.md). */
#include <math.h>
#include <openssl/sha.h> /* the script's SHA1, as Redis computes it for EVALSHA */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/limits_store.h"
#include "store/rstore.h"

/* KEYS[1]: the bucket. ARGV: interval (µs per unit, fractional), burst, cost, "take"|"return".
 * Times are µs on Redis's clock (TIME): as doubles they stay exact to well under a µs until the
 * year 2255, where ns would not fit a double's 53 bits. Returns {allowed, never, remaining,
 * retry_after_us, reset_us}. The key expires once its bucket is full again (an idle key is the
 * same as none, as in the local store). */
static const char GCRA_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3])\n"
    "local cap = burst * interval\n"
    "local eps = interval * 1e-6\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tat < now then tat = now end\n"
    "if tat - now > cap then tat = now + cap end\n"
    "local function keep(v)\n"
    "  if v <= now then redis.call('DEL', KEYS[1]) else\n"
    "    redis.call('SET', KEYS[1], string.format('%.17g', v), 'PX', math.ceil((v - now) / 1000) + 1) end\n"
    "end\n"
    "if ARGV[4] == 'return' then\n"
    "  if cost > burst then cost = burst end\n"
    "  tat = tat - cost * interval\n"
    "  if tat < now then tat = now end\n"
    "  keep(tat)\n"
    "  return {1, 0, 0, 0, 0}\n"
    "end\n"
    "local allowed, never, retry = 0, 0, 0\n"
    "if cost > burst then never = 1\n"
    "else\n"
    "  local nxt = tat + cost * interval\n"
    "  if nxt - now <= cap + eps then allowed = 1; tat = nxt; if cost > 0 then keep(tat) end\n"
    "  else retry = nxt - now - cap end\n"
    "end\n"
    "local remaining = math.floor((cap - (tat - now)) / interval + 1e-6)\n"
    "if remaining < 0 then remaining = 0 end\n"
    "return {allowed, never, remaining, math.ceil(retry), math.ceil(tat - now)}\n";

typedef struct redis_limits {
  limit_store base;
  rstore *rs;
  rstore_feature *feature;
  limit_store *local; /* the fallback, and concurrency (per replica, see docs/redis.md) */
  char sha[41];       /* SHA1 of GCRA_LUA, for EVALSHA */
  int timeout_ms;
} redis_limits;

static const char *const kind_names[LIMIT_KINDS] = {"req", "rec"};

/* EVALSHA, and on NOSCRIPT (a restarted or flushed Redis) EVAL, which caches it again. */
static inferd_status run_script(redis_limits *s, const char *key, limit_kind kind, const ratelimit_rule *rule,
                                int64_t cost, const char *mode, redisReply **out) {
  char k[600], interval[40], burst[24], c[24];
  int kl = snprintf(k, sizeof k, "inferd:rl:%s:%s", kind_names[kind], key);
  if (kl < 0 || (size_t)kl >= sizeof k) return status_make(INFERD_INVALID_ARGUMENT, "rate limit key too long");
  snprintf(interval, sizeof interval, "%.17g", 1e6 / rule->rate_per_s);
  snprintf(burst, sizeof burst, "%lld", (long long)rule->burst);
  snprintf(c, sizeof c, "%lld", (long long)cost);
  const char *argv[] = {"EVALSHA", s->sha, "1", k, interval, burst, c, mode};
  size_t lens[8];
  for (int i = 0; i < 8; i++) lens[i] = strlen(argv[i]);
  lens[3] = (size_t)kl;
  TRY(rstore_sync(s->rs, 8, argv, lens, s->timeout_ms, out));
  if ((*out)->type == REDIS_REPLY_ERROR && strncmp((*out)->str, "NOSCRIPT", 8) == 0) {
    rstore_reply_free(*out);
    *out = NULL;
    argv[0] = "EVAL";
    argv[1] = GCRA_LUA;
    lens[0] = 4;
    lens[1] = sizeof GCRA_LUA - 1;
    TRY(rstore_sync(s->rs, 8, argv, lens, s->timeout_ms, out));
  }
  if ((*out)->type == REDIS_REPLY_ERROR) {
    inferd_status st = status_make(INFERD_INTERNAL, "the rate-limit script failed: %.200s", (*out)->str);
    rstore_reply_free(*out);
    *out = NULL;
    return st;
  }
  if ((*out)->type != REDIS_REPLY_ARRAY || (*out)->elements != 5) {
    rstore_reply_free(*out);
    *out = NULL;
    return status_make(INFERD_INTERNAL, "the rate-limit script answered in an unexpected shape");
  }
  return status_ok();
}

static inferd_status rl_rate_take(limit_store *base, const char *key, limit_kind kind, const ratelimit_rule *rule,
                                  int64_t cost, int64_t now_ns, ratelimit_decision *out) {
  redis_limits *s = (redis_limits *)base;
  redisReply *r = NULL;
  inferd_status st = rstore_up(s->rs) ? run_script(s, key, kind, rule, cost, "take", &r)
                                      : status_make(INFERD_UNAVAILABLE, "Redis is unreachable");
  rstore_feature_result(s->feature, status_is_ok(&st), st.msg);
  if (!status_is_ok(&st)) return s->local->ops->rate_take(s->local, key, kind, rule, cost, now_ns, out);
  *out = (ratelimit_decision){.limit = rule->burst};
  out->allowed = r->element[0]->integer == 1;
  out->never = r->element[1]->integer == 1;
  out->remaining = r->element[2]->integer;
  out->retry_after_ns = r->element[3]->integer * 1000;
  out->reset_ns = r->element[4]->integer * 1000;
  rstore_reply_free(r);
  return status_ok();
}

/* A return goes where the take went: Redis while it is up (a take that fell back to the local
 * store and a return in Redis leaves Redis a unit more generous, never stricter). */
static void rl_rate_return(limit_store *base, const char *key, limit_kind kind, const ratelimit_rule *rule,
                           int64_t cost, int64_t now_ns) {
  redis_limits *s = (redis_limits *)base;
  redisReply *r = NULL;
  inferd_status st = rstore_up(s->rs) ? run_script(s, key, kind, rule, cost, "return", &r)
                                      : status_make(INFERD_UNAVAILABLE, "Redis is unreachable");
  rstore_reply_free(r);
  if (!status_is_ok(&st)) s->local->ops->rate_return(s->local, key, kind, rule, cost, now_ns);
}

static inferd_status rl_concurrency_take(limit_store *base, const char *key, int64_t max, int64_t now_ns,
                                         ratelimit_decision *out, void **lease) {
  redis_limits *s = (redis_limits *)base;
  return s->local->ops->concurrency_take(s->local, key, max, now_ns, out, lease);
}

static void rl_concurrency_return(limit_store *base, void *lease) {
  redis_limits *s = (redis_limits *)base;
  s->local->ops->concurrency_return(s->local, lease);
}

static void rl_destroy(limit_store *base) {
  redis_limits *s = (redis_limits *)base;
  limit_store_destroy(s->local);
  free(s);
}

static const limit_store_ops redis_ops = {rl_rate_take, rl_rate_return, rl_concurrency_take, rl_concurrency_return,
                                          rl_destroy};

inferd_status limit_store_redis_create(rstore *rs, size_t max_local_entries, int timeout_ms, limit_store **out) {
  redis_limits *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = limit_store_local_create(max_local_entries, &s->local);
  if (!status_is_ok(&st)) {
    free(s);
    return st;
  }
  s->base.ops = &redis_ops;
  s->rs = rs;
  s->timeout_ms = timeout_ms;
  s->feature = rstore_feature_add(rs, "rate_limits");
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)GCRA_LUA, sizeof GCRA_LUA - 1, md);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
  *out = &s->base;
  return status_ok();
}
