/* jobs/job_store_redis: the job store in Redis (--redis-url), so that every replica accepts,
 * reads and works the same jobs (docs/redis.md, "Batch jobs"). A job is a hash; its records,
 * results and committed chunks are hashes keyed by index; work goes out as entries of a stream
 * read by one consumer group, an entry per chunk, so several replicas work one job at once and
 * a dead replica's entries are taken over (XAUTOCLAIM) once idle past the claim timeout; a live
 * replica keeps the entries it holds its own (a keeper thread resets their idle time). */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "jobs/job_store.h"
#include "store/rstore.h"

#define KEY_JOB "inferd:job:"       /* + id: the job's hash; + ":rec", ":res", ":chunks" */
#define KEY_OWNER "inferd:jobs:owner:" /* + owner: a sorted set of its jobs by creation time */
#define GROUP "inferd-jobs"
#define FETCH 8 /* stream entries taken at once */

static const char *const streams[2] = {"inferd:jobs:q:normal", "inferd:jobs:q:low"};

/* One stream entry held by this replica: a job to fan out (chunk -1) or one chunk to work. */
typedef struct held {
  int stream;
  char entry[48];
  char job[JOB_ID_MAX];
  int64_t chunk;
} held;

typedef struct redis_jobs {
  job_store base;
  rstore *rs;
  rstore_feature *feature;
  int timeout_ms;
  int64_t claim_idle_ms, ttl_s;
  char consumer[96];
  pthread_mutex_t mu;
  /* the executor's: entries fetched and not yet handed out, and those of the job it works now */
  held *queue;
  size_t n_queue, cap_queue;
  held *lease;
  size_t n_lease, cap_lease;
  char lease_job[JOB_ID_MAX];
  /* the keeper thread: every claim_idle_ms / 3 it resets the idle time of the lease's entries
   * (claim does it for queued ones as it leases them), so only a dead or frozen replica's
   * entries idle past the claim timeout, never those of a chunk that is merely slow. Under mu. */
  pthread_t keeper;
  pthread_cond_t keeper_cv;
  bool keeper_started, keeper_stop;
} redis_jobs;

/* -- commands -- */

typedef struct cmd {
  int argc, cap;
  char **argv;
  size_t *lens;
} cmd;

static void cmd_add_bin(cmd *c, const char *s, size_t n) {
  if (c->argc == c->cap) {
    int cap = c->cap ? c->cap * 2 : 16;
    char **a = realloc(c->argv, (size_t)cap * sizeof *a);
    size_t *l = a ? realloc(c->lens, (size_t)cap * sizeof *l) : NULL;
    if (a) c->argv = a;
    if (!a || !l) return; /* out of memory: the command goes short and Redis refuses it */
    c->lens = l;
    c->cap = cap;
  }
  char *arg = malloc(n + 1);
  if (arg == NULL) return;
  memcpy(arg, s, n);
  arg[n] = '\0';
  c->argv[c->argc] = arg;
  c->lens[c->argc++] = n;
}
static void cmd_add(cmd *c, const char *s) { cmd_add_bin(c, s ? s : "", s ? strlen(s) : 0); }
static void cmd_addf(cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd_addf(cmd *c, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  cmd_add_bin(c, buf, n < 0 ? 0 : (size_t)n >= sizeof buf ? sizeof buf - 1 : (size_t)n);
}
static void cmd_free(cmd *c) {
  for (int i = 0; i < c->argc; i++) free(c->argv[i]);
  free(c->argv);
  free(c->lens);
  *c = (cmd){0};
}

/* Runs c; an error reply becomes INTERNAL (a script refusing, a wrong type), Redis being away
 * UNAVAILABLE with a message a client can read. */
static inferd_status run(redis_jobs *s, cmd *c, redisReply **out) {
  *out = NULL;
  inferd_status st;
  if (!rstore_up(s->rs))
    st = status_make(INFERD_UNAVAILABLE, "batch jobs are kept in Redis (%s), which is not reachable now; try again later",
                     rstore_url_text(s->rs));
  else
    st = rstore_sync(s->rs, c->argc, (const char *const *)c->argv, c->lens, s->timeout_ms, out);
  if (status_is_ok(&st) && (*out)->type == REDIS_REPLY_ERROR) {
    st = status_make(INFERD_INTERNAL, "the jobs store in Redis refused a command: %.200s", (*out)->str);
    rstore_reply_free(*out);
    *out = NULL;
  } else if (!status_is_ok(&st) && st.code != INFERD_UNAVAILABLE) {
    st = status_make(INFERD_UNAVAILABLE, "batch jobs are kept in Redis (%s), which did not answer in time; try again later",
                     rstore_url_text(s->rs));
  }
  rstore_feature_result(s->feature, status_is_ok(&st) || st.code == INFERD_INTERNAL, st.msg);
  cmd_free(c);
  return st;
}

static int64_t reply_int(const redisReply *r) {
  if (r == NULL) return 0;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) return strtoll(r->str, NULL, 10);
  return 0;
}

/* -- Lua -- */

/* Ends job KEYS[1] (its id ARGV[1]) in state `to`: progress sets, the webhook to send, the
 * finished count, and the TTL on every key of the job. Shared by finish and commit. */
#define LUA_END                                                                                                      \
  "local function job_end(jk, id, to, err, at, ttl)\n"                                                            \
  "  local owner = redis.call('HGET', jk, 'owner') or ''\n"                                                       \
  "  redis.call('HSET', jk, 'state', to, 'error', err, 'finished_ms', at)\n"                                      \
  "  if (redis.call('HGET', jk, 'callback_url') or '') ~= '' then\n"                                               \
  "    redis.call('HSET', jk, 'webhook_state', 'pending')\n"                                                       \
  "    redis.call('SADD', 'inferd:jobs:webhooks', id)\n"                                                           \
  "  end\n"                                                                                                        \
  "  redis.call('SREM', 'inferd:jobs:active', id)\n"                                                               \
  "  redis.call('SREM', 'inferd:jobs:active:' .. owner, id)\n"                                                     \
  "  redis.call('HINCRBY', 'inferd:jobs:finished', to, 1)\n"                                                       \
  "  for _, suffix in ipairs({'', ':rec', ':res', ':chunks'}) do redis.call('EXPIRE', jk .. suffix, ttl) end\n"    \
  "  local ik = redis.call('HGET', jk, 'idempotency_key') or ''\n"                                                 \
  "  if ik ~= '' then redis.call('EXPIRE', 'inferd:jobs:idem:' .. owner .. ':' .. ik, ttl) end\n"                  \
  "end\n"

/* KEYS: job, stream. ARGV: id, created_ms, field, value, ... Returns 0 when the idempotency key
 * went to another live job meanwhile, 1 when queued. */
static const char lua_commit_upload[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'uploading' then return redis.error_reply('the job is not uploading') end\n"
    "local owner = redis.call('HGET', KEYS[1], 'owner') or ''\n"
    "local ik = redis.call('HGET', KEYS[1], 'idempotency_key') or ''\n"
    "if ik ~= '' then\n"
    "  local key = 'inferd:jobs:idem:' .. owner .. ':' .. ik\n"
    "  local cur = redis.call('GET', key)\n"
    "  if cur and cur ~= ARGV[1] and redis.call('EXISTS', 'inferd:job:' .. cur) == 1 then return 0 end\n"
    "  redis.call('SET', key, ARGV[1])\n"
    "end\n"
    "if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end\n"
    "redis.call('HSET', KEYS[1], 'state', 'queued')\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('PERSIST', KEYS[1] .. ':rec')\n"
    "redis.call('ZADD', 'inferd:jobs:owner:' .. owner, ARGV[2], ARGV[1])\n"
    "redis.call('SADD', 'inferd:jobs:active', ARGV[1])\n"
    "redis.call('SADD', 'inferd:jobs:active:' .. owner, ARGV[1])\n"
    "redis.call('XADD', KEYS[2], '*', 'job', ARGV[1], 'chunk', '-1')\n"
    "return 1\n";

/* KEYS: job, stream. ARGV: chunk_records, at_ms, group, the job entry ("" for a chunk's claim).
 * Marks the job processing and fixes its chunk size; from the job's own entry, also puts an
 * entry per chunk on the stream and acknowledges the job's, at most once and all together. */
static const char lua_start[] =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st ~= 'queued' and st ~= 'processing' then\n"
    "  if ARGV[4] ~= '' then redis.call('XACK', KEYS[2], ARGV[3], ARGV[4]) end\n"
    "  return 0\n"
    "end\n"
    "if st == 'queued' then redis.call('HSET', KEYS[1], 'state', 'processing', 'started_ms', ARGV[2]) end\n"
    "if tonumber(redis.call('HGET', KEYS[1], 'chunk_records') or '0') == 0 then\n"
    "  redis.call('HSET', KEYS[1], 'chunk_records', ARGV[1])\n"
    "end\n"
    "if ARGV[4] ~= '' then\n"
    "  if redis.call('HSETNX', KEYS[1], 'fanned', '1') == 1 then\n"
    "    local cr = tonumber(redis.call('HGET', KEYS[1], 'chunk_records'))\n"
    "    local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')\n"
    "    local id = redis.call('HGET', KEYS[1], 'id')\n"
    "    for k = 0, math.floor((total + cr - 1) / cr) - 1 do\n"
    "      redis.call('XADD', KEYS[2], '*', 'job', id, 'chunk', tostring(k))\n"
    "    end\n"
    "  end\n"
    "  redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])\n"
    "end\n"
    "return 1\n";

/* KEYS: job, stream. ARGV: id, chunk, n, failed, group, entry ("": none), ttl, at_ms, then
 * index, result pairs. The chunk's marker first: a second commit writes nothing. The last
 * chunk completes the job in the same step, so no replica's death can leave it unfinished. */
static const char lua_commit_chunk[] =
    LUA_END
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
    "local dup = 1\n"
    "if redis.call('HSETNX', KEYS[1] .. ':chunks', ARGV[2], '1') == 1 then\n"
    "  dup = 0\n"
    "  local i = 9\n"
    "  while i <= #ARGV do\n" /* in slices: unpack has a stack limit */
    "    local j = math.min(i + 199, #ARGV)\n"
    "    redis.call('HSET', KEYS[1] .. ':res', unpack(ARGV, i, j))\n"
    "    i = j + 1\n"
    "  end\n"
    "  local done = redis.call('HINCRBY', KEYS[1], 'completed', ARGV[3])\n"
    "  redis.call('HINCRBY', KEYS[1], 'failed', ARGV[4])\n"
    "  local st = redis.call('HGET', KEYS[1], 'state')\n"
    "  if (st == 'queued' or st == 'processing') and done >= tonumber(redis.call('HGET', KEYS[1], 'total') or '0') then\n"
    "    job_end(KEYS[1], ARGV[1], 'completed', '', ARGV[8], tonumber(ARGV[7]))\n"
    "  elseif st ~= 'queued' and st ~= 'processing' then\n" /* a chunk in flight at a cancel: kept, and expiring */
    "    redis.call('EXPIRE', KEYS[1] .. ':res', ARGV[7])\n"
    "    redis.call('EXPIRE', KEYS[1] .. ':chunks', ARGV[7])\n"
    "  end\n"
    "end\n"
    "if ARGV[6] ~= '' then redis.call('XACK', KEYS[2], ARGV[5], ARGV[6]) end\n"
    "return dup\n";

/* KEYS: stream. ARGV: group, consumer, entry ids. Resets the idle time of each entry still
 * pending under this consumer (XCLAIM ... JUSTID: the delivery count stays) and returns their
 * ids; one acknowledged meanwhile, or taken over by another replica, is left alone. */
static const char lua_keep[] =
    "local kept = {}\n"
    "for i = 3, #ARGV do\n"
    "  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 1 then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "    kept[#kept + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    "return kept\n";

/* KEYS: job. ARGV: id, to, error, at_ms, ttl. "ok", the state it is in already, or "" (unknown). */
static const char lua_finish[] =
    LUA_END
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if not st or st == 'uploading' then return '' end\n"
    "if st ~= 'queued' and st ~= 'processing' then return st end\n"
    "job_end(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]))\n"
    "return 'ok'\n";

/* -- job hashes -- */

static void add_job_fields(cmd *c, const job_info *j, bool all) {
  cmd_add(c, "kind"), cmd_addf(c, "%d", (int)j->kind);
  cmd_add(c, "model"), cmd_add(c, j->model);
  cmd_add(c, "version"), cmd_add(c, j->version);
  cmd_add(c, "low"), cmd_add(c, j->low_priority ? "1" : "0");
  cmd_add(c, "total"), cmd_addf(c, "%lld", (long long)j->total);
  cmd_add(c, "callback_url"), cmd_add(c, j->callback_url);
  cmd_add(c, "meta"), cmd_add(c, j->meta);
  if (!all) return;
  cmd_add(c, "id"), cmd_add(c, j->id);
  cmd_add(c, "owner"), cmd_add(c, j->owner);
  cmd_add(c, "scopes"), cmd_add(c, j->scopes);
  cmd_add(c, "state"), cmd_add(c, job_state_name(j->state));
  cmd_add(c, "completed"), cmd_add(c, "0");
  cmd_add(c, "failed"), cmd_add(c, "0");
  cmd_add(c, "chunk_records"), cmd_addf(c, "%lld", (long long)j->chunk_records);
  cmd_add(c, "idempotency_key"), cmd_add(c, j->idempotency_key);
  cmd_add(c, "error"), cmd_add(c, j->error);
  cmd_add(c, "created_ms"), cmd_addf(c, "%lld", (long long)j->created_ms);
  cmd_add(c, "started_ms"), cmd_add(c, "0");
  cmd_add(c, "finished_ms"), cmd_add(c, "0");
  cmd_add(c, "webhook_state"), cmd_add(c, "");
  cmd_add(c, "webhook_attempts"), cmd_add(c, "0");
  cmd_add(c, "webhook_error"), cmd_add(c, "");
}

static void copy(char *dst, size_t size, const redisReply *v) {
  snprintf(dst, size, "%.*s", v->type == REDIS_REPLY_STRING ? (int)v->len : 0, v->type == REDIS_REPLY_STRING ? v->str : "");
}

/* An HGETALL reply as a job; false when there is no such hash. */
static bool parse_job(const redisReply *r, job_info *j) {
  memset(j, 0, sizeof *j);
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return false;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const char *f = r->element[i]->str;
    const redisReply *v = r->element[i + 1];
    if (f == NULL || v->type != REDIS_REPLY_STRING) continue;
    int64_t n = strtoll(v->str, NULL, 10);
#define S(name) else if (strcmp(f, #name) == 0) copy(j->name, sizeof j->name, v)
#define N(name) else if (strcmp(f, #name) == 0) j->name = n
    if (strcmp(f, "kind") == 0) j->kind = (job_kind)n;
    else if (strcmp(f, "low") == 0) j->low_priority = n != 0;
    else if (strcmp(f, "state") == 0) j->state = job_state_parse(v->str);
    else if (strcmp(f, "webhook_attempts") == 0) j->webhook_attempts = (int)n;
    S(id); S(owner); S(scopes); S(model); S(version); S(callback_url); S(idempotency_key); S(error);
    S(webhook_state); S(webhook_error); S(meta);
    N(total); N(completed); N(failed); N(chunk_records); N(created_ms); N(started_ms); N(finished_ms);
#undef S
#undef N
  }
  return j->id[0] != '\0';
}

static inferd_status not_found(const char *id) { return status_make(INFERD_NOT_FOUND, "no batch job '%s'", id); }

static inferd_status load(redis_jobs *s, const char *id, job_info *out, bool uploading_too) {
  cmd c = {0};
  cmd_add(&c, "HGETALL"), cmd_addf(&c, KEY_JOB "%s", id);
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (!status_is_ok(&st)) return st;
  bool found = parse_job(r, out);
  rstore_reply_free(r);
  if (!found || (!uploading_too && out->state == JOB_UPLOADING)) return not_found(id);
  return status_ok();
}

/* -- submission -- */

static inferd_status rj_get(job_store *base, const char *id, job_info *out) { return load((redis_jobs *)base, id, out, false); }

static inferd_status rj_find_idempotent(job_store *base, const char *owner, const char *key, job_info *out) {
  redis_jobs *s = (redis_jobs *)base;
  cmd c = {0};
  cmd_add(&c, "GET"), cmd_addf(&c, "inferd:jobs:idem:%s:%s", owner, key);
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (!status_is_ok(&st)) return st;
  char id[JOB_ID_MAX] = "";
  if (r->type == REDIS_REPLY_STRING) copy(id, sizeof id, r);
  rstore_reply_free(r);
  if (!id[0]) return status_make(INFERD_NOT_FOUND, "no job with that idempotency key");
  st = load(s, id, out, false);
  if (st.code == INFERD_NOT_FOUND) return status_make(INFERD_NOT_FOUND, "no job with that idempotency key");
  return st;
}

/* An upload abandoned by a replica that died goes away by itself after a day. */
#define UPLOAD_TTL_S "86400"

static inferd_status rj_create(job_store *base, const job_info *job) {
  redis_jobs *s = (redis_jobs *)base;
  cmd c = {0};
  cmd_add(&c, "HSET"), cmd_addf(&c, KEY_JOB "%s", job->id);
  job_info j = *job;
  j.state = JOB_UPLOADING;
  add_job_fields(&c, &j, true);
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (!status_is_ok(&st)) return st;
  rstore_reply_free(r);
  cmd_add(&c, "EXPIRE"), cmd_addf(&c, KEY_JOB "%s", job->id), cmd_add(&c, UPLOAD_TTL_S);
  st = run(s, &c, &r);
  if (status_is_ok(&st)) rstore_reply_free(r);
  return st;
}

static inferd_status rj_append(job_store *base, const char *id, int64_t first, const job_record *recs, size_t n) {
  redis_jobs *s = (redis_jobs *)base;
  if (n == 0) return status_ok();
  cmd c = {0};
  cmd_add(&c, "HSET"), cmd_addf(&c, KEY_JOB "%s:rec", id);
  for (size_t i = 0; i < n; i++) {
    cmd_addf(&c, "%lld", (long long)(first + (int64_t)i));
    /* "-" + body, or "+" + the tag's length + ":" + tag + body */
    const char *tag = recs[i].tag;
    size_t tl = tag ? strlen(tag) : 0, bl = recs[i].body_len;
    char *v = malloc(tl + bl + 32);
    if (v == NULL) {
      cmd_free(&c);
      return status_make(INFERD_INTERNAL, "out of memory");
    }
    size_t off = tag ? (size_t)sprintf(v, "+%zu:", tl) : (size_t)sprintf(v, "-");
    if (tag) memcpy(v + off, tag, tl), off += tl;
    memcpy(v + off, recs[i].body, bl);
    cmd_add_bin(&c, v, off + bl);
    free(v);
  }
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (!status_is_ok(&st)) return st;
  rstore_reply_free(r);
  cmd_add(&c, "EXPIRE"), cmd_addf(&c, KEY_JOB "%s:rec", id), cmd_add(&c, UPLOAD_TTL_S);
  st = run(s, &c, &r);
  if (status_is_ok(&st)) rstore_reply_free(r);
  return st;
}

static inferd_status rj_commit_upload(job_store *base, const job_info *job, bool *taken) {
  redis_jobs *s = (redis_jobs *)base;
  *taken = false;
  cmd c = {0};
  cmd_add(&c, "EVAL"), cmd_add(&c, lua_commit_upload), cmd_add(&c, "2");
  cmd_addf(&c, KEY_JOB "%s", job->id), cmd_add(&c, streams[job->low_priority ? 1 : 0]);
  cmd_add(&c, job->id), cmd_addf(&c, "%lld", (long long)job->created_ms);
  add_job_fields(&c, job, false);
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (!status_is_ok(&st)) return st;
  *taken = reply_int(r) == 0;
  rstore_reply_free(r);
  return st;
}

static inferd_status rj_discard(job_store *base, const char *id) {
  redis_jobs *s = (redis_jobs *)base;
  cmd c = {0};
  cmd_add(&c, "DEL");
  cmd_addf(&c, KEY_JOB "%s", id), cmd_addf(&c, KEY_JOB "%s:rec", id);
  cmd_addf(&c, KEY_JOB "%s:res", id), cmd_addf(&c, KEY_JOB "%s:chunks", id);
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (status_is_ok(&st)) rstore_reply_free(r);
  return st;
}

/* -- reading -- */

static inferd_status rj_list(job_store *base, const char *owner, int64_t offset, int64_t limit, job_info_fn fn,
                             void *user) {
  redis_jobs *s = (redis_jobs *)base;
  /* expired jobs are dropped from the owner's set as they are met, so read on until limit */
  int64_t pos = 0, given = 0;
  while (given < limit) {
    cmd c = {0};
    cmd_add(&c, "ZREVRANGE"), cmd_addf(&c, KEY_OWNER "%s", owner);
    cmd_addf(&c, "%lld", (long long)pos), cmd_addf(&c, "%lld", (long long)(pos + 99));
    redisReply *r;
    inferd_status st = run(s, &c, &r);
    if (!status_is_ok(&st)) return st;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    for (size_t i = 0; i < n && given < limit; i++) {
      char id[JOB_ID_MAX];
      copy(id, sizeof id, r->element[i]);
      job_info j;
      st = load(s, id, &j, false);
      if (st.code == INFERD_NOT_FOUND) { /* its TTL ran out */
        cmd z = {0};
        redisReply *zr;
        cmd_add(&z, "ZREM"), cmd_addf(&z, KEY_OWNER "%s", owner), cmd_add(&z, id);
        inferd_status zs = run(s, &z, &zr);
        if (status_is_ok(&zs)) rstore_reply_free(zr);
        continue;
      }
      if (!status_is_ok(&st)) {
        rstore_reply_free(r);
        return st;
      }
      if (offset > 0) {
        offset--;
        continue;
      }
      fn(user, &j);
      given++;
    }
    rstore_reply_free(r);
    if (n < 100) break;
    pos += 100;
  }
  return status_ok();
}

static inferd_status rj_owner_usage(job_store *base, const char *owner, int64_t *jobs, int64_t *records) {
  redis_jobs *s = (redis_jobs *)base;
  *jobs = *records = 0;
  cmd c = {0};
  cmd_add(&c, "SMEMBERS"), cmd_addf(&c, "inferd:jobs:active:%s", owner);
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (!status_is_ok(&st)) return st;
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    job_info j;
    char id[JOB_ID_MAX];
    copy(id, sizeof id, r->element[i]);
    st = load(s, id, &j, false);
    if (st.code == INFERD_NOT_FOUND) continue;
    if (!status_is_ok(&st)) break;
    if (!job_state_active(j.state)) continue;
    (*jobs)++;
    *records += j.total - j.completed;
  }
  rstore_reply_free(r);
  return st.code == INFERD_NOT_FOUND ? status_ok() : st;
}

static inferd_status rj_results(job_store *base, const char *id, int64_t offset, int64_t limit, job_result_fn fn,
                                void *user) {
  redis_jobs *s = (redis_jobs *)base;
  job_info j;
  TRY(load(s, id, &j, false));
  if (offset < 0) offset = 0;
  if (limit > j.total - offset) limit = j.total - offset;
  /* in pages of a few hundred, stopping at the first result not there yet (input order) */
  for (int64_t at = offset; at < offset + limit;) {
    int64_t n = offset + limit - at < 500 ? offset + limit - at : 500;
    cmd c = {0};
    cmd_add(&c, "HMGET"), cmd_addf(&c, KEY_JOB "%s:res", id);
    for (int64_t i = 0; i < n; i++) cmd_addf(&c, "%lld", (long long)(at + i));
    redisReply *r;
    inferd_status st = run(s, &c, &r);
    if (!status_is_ok(&st)) return st;
    bool gap = false;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
      const redisReply *v = r->element[i];
      if (v->type != REDIS_REPLY_STRING || v->len < 1) {
        gap = true;
        break;
      }
      fn(user, at + (int64_t)i, NULL, v->str[0] == '1', v->str + 1);
    }
    rstore_reply_free(r);
    if (gap) break;
    at += n;
  }
  return status_ok();
}

/* -- the executor -- */

static void push(held **arr, size_t *n, size_t *cap, const held *h) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 16;
    held *a = realloc(*arr, nc * sizeof *a);
    if (a == NULL) return; /* the entry stays pending in Redis: it comes back after the claim timeout */
    *arr = a;
    *cap = nc;
  }
  (*arr)[(*n)++] = *h;
}

/* Entries of an XREADGROUP / XAUTOCLAIM reply ([id, [field, value, ...]] each) to the queue. */
static void take_entries(redis_jobs *s, int stream, const redisReply *entries) {
  for (size_t i = 0; entries && entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
    const redisReply *e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING) continue;
    held h = {.stream = stream, .chunk = -2};
    copy(h.entry, sizeof h.entry, e->element[0]);
    const redisReply *f = e->element[1];
    for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
      if (f->element[k]->type != REDIS_REPLY_STRING || f->element[k + 1]->type != REDIS_REPLY_STRING) continue;
      if (strcmp(f->element[k]->str, "job") == 0) copy(h.job, sizeof h.job, f->element[k + 1]);
      else if (strcmp(f->element[k]->str, "chunk") == 0) h.chunk = strtoll(f->element[k + 1]->str, NULL, 10);
    }
    if (h.job[0] && h.chunk >= -1) push(&s->queue, &s->n_queue, &s->cap_queue, &h);
  }
}

static inferd_status ack(redis_jobs *s, const held *h) {
  cmd c = {0};
  cmd_add(&c, "XACK"), cmd_add(&c, streams[h->stream]), cmd_add(&c, GROUP), cmd_add(&c, h->entry);
  redisReply *r;
  inferd_status st = run(s, &c, &r);
  if (status_is_ok(&st)) rstore_reply_free(r);
  return st;
}

/* The consumer group on both streams (made at open, and again when Redis lost it). */
static void ensure_groups(redis_jobs *s) {
  for (int k = 0; k < 2; k++) {
    cmd c = {0};
    cmd_add(&c, "XGROUP"), cmd_add(&c, "CREATE"), cmd_add(&c, streams[k]), cmd_add(&c, GROUP), cmd_add(&c, "0");
    cmd_add(&c, "MKSTREAM");
    redisReply *rep;
    inferd_status st = run(s, &c, &rep); /* BUSYGROUP (it exists already) is an error reply: fine */
    if (status_is_ok(&st)) rstore_reply_free(rep);
  }
}

/* Fills the queue: a dead replica's entries idle past the timeout first, then new ones, the
 * normal stream before the low one. */
static inferd_status fetch(redis_jobs *s) {
  for (int k = 0; k < 2 && s->n_queue == 0; k++) {
    cmd c = {0};
    cmd_add(&c, "XAUTOCLAIM"), cmd_add(&c, streams[k]), cmd_add(&c, GROUP), cmd_add(&c, s->consumer);
    cmd_addf(&c, "%lld", (long long)s->claim_idle_ms), cmd_add(&c, "0-0"), cmd_add(&c, "COUNT"), cmd_addf(&c, "%d", FETCH);
    redisReply *r;
    inferd_status st = run(s, &c, &r);
    if (st.code == INFERD_INTERNAL && strstr(st.msg, "NOGROUP")) { /* Redis restarted empty, or was down at start */
      ensure_groups(s);
      return status_make(INFERD_NOT_FOUND, "no job to work on");
    }
    TRY(st);
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) take_entries(s, k, r->element[1]);
    rstore_reply_free(r);
    if (s->n_queue) break;
    cmd_add(&c, "XREADGROUP"), cmd_add(&c, "GROUP"), cmd_add(&c, GROUP), cmd_add(&c, s->consumer);
    cmd_add(&c, "COUNT"), cmd_addf(&c, "%d", FETCH), cmd_add(&c, "STREAMS"), cmd_add(&c, streams[k]), cmd_add(&c, ">");
    TRY(run(s, &c, &r));
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements >= 2)
      take_entries(s, k, r->element[0]->element[1]);
    rstore_reply_free(r);
  }
  return status_ok();
}

/* Resets the idle time of arr's entries that are still this replica's, a script per stream.
 * With filter, the others leave arr: an entry that waited in the queue past the claim timeout
 * may be another replica's by now. */
static inferd_status keep_entries(redis_jobs *s, held *arr, size_t *n, bool filter) {
  for (int k = 0; k < 2; k++) {
    cmd c = {0};
    cmd_add(&c, "EVAL"), cmd_add(&c, lua_keep), cmd_add(&c, "1"), cmd_add(&c, streams[k]);
    cmd_add(&c, GROUP), cmd_add(&c, s->consumer);
    for (size_t i = 0; i < *n; i++)
      if (arr[i].stream == k) cmd_add(&c, arr[i].entry);
    if (c.argc == 6) {
      cmd_free(&c);
      continue;
    }
    redisReply *r;
    TRY(run(s, &c, &r));
    if (filter) {
      size_t keep = 0;
      for (size_t i = 0; i < *n; i++) {
        bool mine = arr[i].stream != k;
        for (size_t e = 0; !mine && r->type == REDIS_REPLY_ARRAY && e < r->elements; e++)
          mine = r->element[e]->type == REDIS_REPLY_STRING && strcmp(r->element[e]->str, arr[i].entry) == 0;
        if (mine) arr[keep++] = arr[i];
      }
      *n = keep;
    }
    rstore_reply_free(r);
  }
  return status_ok();
}

/* The next job with entries this replica holds: its entries become the lease that start,
 * chunks_done and commit_chunk work from. */
static inferd_status rj_claim(job_store *base, const char *const *skip, size_t n_skip, job_info *out) {
  redis_jobs *s = (redis_jobs *)base;
  pthread_mutex_lock(&s->mu);
  s->n_lease = 0;
  s->lease_job[0] = '\0';
  inferd_status st = status_ok();
  for (int rounds = 0; rounds < 64; rounds++) {
    st = s->n_queue == 0 ? fetch(s) : status_ok();
    if (!status_is_ok(&st)) break;
    if (s->n_queue == 0) {
      st = status_make(INFERD_NOT_FOUND, "no job to work on");
      break;
    }
    char job[JOB_ID_MAX];
    snprintf(job, sizeof job, "%s", s->queue[0].job);
    bool skipped = false;
    for (size_t i = 0; i < n_skip; i++) skipped |= strcmp(skip[i], job) == 0;
    size_t keep = 0;
    s->n_lease = 0;
    for (size_t i = 0; i < s->n_queue; i++) {
      if (strcmp(s->queue[i].job, job) == 0) push(&s->lease, &s->n_lease, &s->cap_lease, &s->queue[i]);
      else s->queue[keep++] = s->queue[i];
    }
    s->n_queue = keep;
    if (skipped) { /* worked by this executor already: its entries come back after the timeout */
      s->n_lease = 0;
      continue;
    }
    /* the entries still ours, their idle time reset: from here the keeper holds them */
    st = keep_entries(s, s->lease, &s->n_lease, true);
    if (!status_is_ok(&st)) {
      s->n_lease = 0;
      break;
    }
    if (s->n_lease == 0) {
      st = status_make(INFERD_NOT_FOUND, "no job to work on");
      continue;
    }
    st = load(s, job, out, false);
    if (status_is_ok(&st) && job_state_active(out->state)) {
      snprintf(s->lease_job, sizeof s->lease_job, "%s", job);
      break;
    }
    if (!status_is_ok(&st) && st.code != INFERD_NOT_FOUND) break;
    /* cancelled, failed or expired: its entries are done with */
    for (size_t i = 0; i < s->n_lease; i++) ack(s, &s->lease[i]);
    s->n_lease = 0;
    st = status_make(INFERD_NOT_FOUND, "no job to work on");
  }
  pthread_mutex_unlock(&s->mu);
  return st;
}

static const held *lease_find(const redis_jobs *s, const char *id, int64_t chunk) {
  if (strcmp(s->lease_job, id) != 0) return NULL;
  for (size_t i = 0; i < s->n_lease; i++)
    if (s->lease[i].chunk == chunk) return &s->lease[i];
  return NULL;
}

static inferd_status rj_start(job_store *base, const char *id, int64_t chunk_records, int64_t at_ms) {
  redis_jobs *s = (redis_jobs *)base;
  pthread_mutex_lock(&s->mu);
  const held *fan = lease_find(s, id, -1);
  held h = fan ? *fan : (held){.stream = 0};
  pthread_mutex_unlock(&s->mu);
  job_info j;
  TRY(load(s, id, &j, false));
  cmd c = {0};
  cmd_add(&c, "EVAL"), cmd_add(&c, lua_start), cmd_add(&c, "2");
  cmd_addf(&c, KEY_JOB "%s", id), cmd_add(&c, streams[fan ? h.stream : (j.low_priority ? 1 : 0)]);
  cmd_addf(&c, "%lld", (long long)chunk_records), cmd_addf(&c, "%lld", (long long)at_ms), cmd_add(&c, GROUP);
  cmd_add(&c, fan ? h.entry : "");
  redisReply *r;
  TRY(run(s, &c, &r));
  int64_t v = reply_int(r);
  rstore_reply_free(r);
  if (v == 0) return status_make(INFERD_INVALID_ARGUMENT, "batch job '%s' is no longer active", id);
  return status_ok();
}

/* Every chunk but those this replica holds counts as done here: others are worked (or were
 * committed) elsewhere, and come back through the stream if their replica dies. */
static inferd_status rj_chunks_done(job_store *base, const char *id, void (*fn)(void *user, int64_t chunk), void *user) {
  redis_jobs *s = (redis_jobs *)base;
  job_info j;
  TRY(load(s, id, &j, false));
  if (j.chunk_records <= 0) return status_ok();
  int64_t n = (j.total + j.chunk_records - 1) / j.chunk_records;
  pthread_mutex_lock(&s->mu);
  for (int64_t k = 0; k < n; k++)
    if (lease_find(s, id, k) == NULL) fn(user, k);
  pthread_mutex_unlock(&s->mu);
  return status_ok();
}

static inferd_status rj_records(job_store *base, const char *id, int64_t first, int64_t n, job_record_fn fn, void *user) {
  redis_jobs *s = (redis_jobs *)base;
  if (n <= 0) return status_ok();
  cmd c = {0};
  cmd_add(&c, "HMGET"), cmd_addf(&c, KEY_JOB "%s:rec", id);
  for (int64_t i = 0; i < n; i++) cmd_addf(&c, "%lld", (long long)(first + i));
  redisReply *r;
  TRY(run(s, &c, &r));
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    const redisReply *v = r->element[i];
    if (v->type != REDIS_REPLY_STRING || v->len < 1) continue; /* the executor names what is missing */
    if (v->str[0] == '+') {
      char *colon = NULL;
      size_t tl = strtoull(v->str + 1, &colon, 10);
      if (colon == NULL || *colon != ':' || (size_t)(colon + 1 - v->str) + tl > v->len) continue;
      char *tag = strndup(colon + 1, tl);
      if (tag) fn(user, first + (int64_t)i, tag, colon + 1 + tl);
      free(tag);
    } else {
      fn(user, first + (int64_t)i, NULL, v->str + 1);
    }
  }
  rstore_reply_free(r);
  return status_ok();
}

static inferd_status rj_commit_chunk(job_store *base, const char *id, int64_t chunk, int64_t first, const job_result *res,
                                     size_t n, bool *duplicate) {
  redis_jobs *s = (redis_jobs *)base;
  *duplicate = false;
  pthread_mutex_lock(&s->mu);
  const held *e = lease_find(s, id, chunk);
  held h = e ? *e : (held){.stream = 0};
  pthread_mutex_unlock(&s->mu);
  int64_t failed = 0;
  for (size_t i = 0; i < n; i++) failed += !res[i].ok;
  cmd c = {0};
  cmd_add(&c, "EVAL"), cmd_add(&c, lua_commit_chunk), cmd_add(&c, "2");
  cmd_addf(&c, KEY_JOB "%s", id), cmd_add(&c, streams[h.stream]);
  cmd_add(&c, id), cmd_addf(&c, "%lld", (long long)chunk), cmd_addf(&c, "%zu", n), cmd_addf(&c, "%lld", (long long)failed);
  cmd_add(&c, GROUP), cmd_add(&c, e ? h.entry : "");
  cmd_addf(&c, "%lld", (long long)s->ttl_s);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  cmd_addf(&c, "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  for (size_t i = 0; i < n; i++) {
    cmd_addf(&c, "%lld", (long long)(first + (int64_t)i));
    size_t bl = res[i].body ? strlen(res[i].body) : 0;
    char *v = malloc(bl + 2);
    if (v == NULL) {
      cmd_free(&c);
      return status_make(INFERD_INTERNAL, "out of memory");
    }
    v[0] = res[i].ok ? '1' : '0';
    if (bl) memcpy(v + 1, res[i].body, bl);
    cmd_add_bin(&c, v, bl + 1);
    free(v);
  }
  if (c.argc != 13 + 2 * (int)n) {
    cmd_free(&c);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  redisReply *r;
  TRY(run(s, &c, &r));
  int64_t v = reply_int(r);
  rstore_reply_free(r);
  if (v < 0) return not_found(id);
  *duplicate = v == 1;
  return status_ok();
}

static inferd_status rj_finish(job_store *base, const char *id, job_state to, const char *error, int64_t at_ms) {
  redis_jobs *s = (redis_jobs *)base;
  cmd c = {0};
  cmd_add(&c, "EVAL"), cmd_add(&c, lua_finish), cmd_add(&c, "1"), cmd_addf(&c, KEY_JOB "%s", id);
  cmd_add(&c, id), cmd_add(&c, job_state_name(to)), cmd_add(&c, error ? error : "");
  cmd_addf(&c, "%lld", (long long)at_ms), cmd_addf(&c, "%lld", (long long)s->ttl_s);
  redisReply *r;
  TRY(run(s, &c, &r));
  char got[32];
  copy(got, sizeof got, r);
  rstore_reply_free(r);
  if (got[0] == '\0') return not_found(id);
  if (strcmp(got, "ok") != 0) return status_make(INFERD_INVALID_ARGUMENT, "batch job '%s' is %s already", id, got);
  pthread_mutex_lock(&s->mu);
  bool mine = strcmp(s->lease_job, id) == 0;
  pthread_mutex_unlock(&s->mu);
  /* the executor ending its own job (failed): the chunks it held are done with. A cancel from
   * an HTTP thread leaves them to the claim that finds the job cancelled. */
  if (mine && to == JOB_FAILED) {
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_lease; i++) ack(s, &s->lease[i]);
    s->n_lease = 0;
    pthread_mutex_unlock(&s->mu);
  }
  return status_ok();
}

static inferd_status rj_set_webhook(job_store *base, const char *id, const char *state, int attempts, const char *error) {
  redis_jobs *s = (redis_jobs *)base;
  cmd c = {0};
  cmd_add(&c, "HSET"), cmd_addf(&c, KEY_JOB "%s", id);
  cmd_add(&c, "webhook_state"), cmd_add(&c, state), cmd_add(&c, "webhook_attempts"), cmd_addf(&c, "%d", attempts);
  cmd_add(&c, "webhook_error"), cmd_add(&c, error ? error : "");
  redisReply *r;
  TRY(run(s, &c, &r));
  rstore_reply_free(r);
  cmd_add(&c, strcmp(state, "pending") == 0 ? "SADD" : "SREM"), cmd_add(&c, "inferd:jobs:webhooks"), cmd_add(&c, id);
  TRY(run(s, &c, &r));
  rstore_reply_free(r);
  return status_ok();
}

static inferd_status rj_pending_webhooks(job_store *base, job_info_fn fn, void *user) {
  redis_jobs *s = (redis_jobs *)base;
  cmd c = {0};
  cmd_add(&c, "SMEMBERS"), cmd_add(&c, "inferd:jobs:webhooks");
  redisReply *r;
  TRY(run(s, &c, &r));
  inferd_status st = status_ok();
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    char id[JOB_ID_MAX];
    copy(id, sizeof id, r->element[i]);
    job_info j;
    st = load(s, id, &j, false);
    if (st.code == INFERD_NOT_FOUND) continue;
    if (!status_is_ok(&st)) break;
    if (strcmp(j.webhook_state, "pending") == 0) fn(user, &j);
  }
  rstore_reply_free(r);
  return st.code == INFERD_NOT_FOUND ? status_ok() : st;
}

/* Active jobs counted from the shared set; finished ones are the cluster's running totals. */
static inferd_status rj_counts(job_store *base, int64_t by_state[JOB_CANCELLED + 1], int64_t *records_left) {
  redis_jobs *s = (redis_jobs *)base;
  for (int i = 0; i <= JOB_CANCELLED; i++) by_state[i] = 0;
  *records_left = 0;
  cmd c = {0};
  cmd_add(&c, "SMEMBERS"), cmd_add(&c, "inferd:jobs:active");
  redisReply *r;
  TRY(run(s, &c, &r));
  inferd_status st = status_ok();
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && i < 1000; i++) {
    char id[JOB_ID_MAX];
    copy(id, sizeof id, r->element[i]);
    job_info j;
    st = load(s, id, &j, false);
    if (st.code == INFERD_NOT_FOUND) continue;
    if (!status_is_ok(&st)) break;
    if (!job_state_active(j.state)) continue;
    by_state[j.state]++;
    *records_left += j.total - j.completed;
  }
  rstore_reply_free(r);
  if (st.code == INFERD_NOT_FOUND) st = status_ok();
  TRY(st);
  cmd_add(&c, "HGETALL"), cmd_add(&c, "inferd:jobs:finished");
  TRY(run(s, &c, &r));
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
    job_state k = job_state_parse(r->element[i]->str ? r->element[i]->str : "");
    if (k >= JOB_COMPLETED && k <= JOB_CANCELLED) by_state[k] = reply_int(r->element[i + 1]);
  }
  rstore_reply_free(r);
  return status_ok();
}

static void *keeper_main(void *arg) {
  redis_jobs *s = arg;
  int64_t every_ms = s->claim_idle_ms / 3 > 0 ? s->claim_idle_ms / 3 : 1;
  pthread_mutex_lock(&s->mu);
  while (!s->keeper_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (every_ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(every_ms / 1000 + ns / 1000000000);
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&s->keeper_cv, &s->mu, &ts);
    if (s->keeper_stop || s->n_lease == 0) continue;
    /* a copy: the executor may claim anew (and move the lease) while the script runs */
    size_t n = s->n_lease;
    held *mine = malloc(n * sizeof *mine);
    if (mine == NULL) continue;
    memcpy(mine, s->lease, n * sizeof *mine);
    pthread_mutex_unlock(&s->mu);
    inferd_status st = keep_entries(s, mine, &n, false); /* Redis away: they idle on, as the work does */
    (void)st;
    free(mine);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void rj_close(job_store *base) {
  redis_jobs *s = (redis_jobs *)base;
  if (s->keeper_started) {
    pthread_mutex_lock(&s->mu);
    s->keeper_stop = true;
    pthread_cond_signal(&s->keeper_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->keeper, NULL);
  }
  pthread_cond_destroy(&s->keeper_cv);
  pthread_mutex_destroy(&s->mu);
  free(s->queue);
  free(s->lease);
  free(s);
}

static const job_store_ops redis_ops = {
    .find_idempotent = rj_find_idempotent, .create = rj_create, .append = rj_append,
    .commit_upload = rj_commit_upload, .discard = rj_discard, .get = rj_get, .list = rj_list,
    .owner_usage = rj_owner_usage, .results = rj_results, .claim = rj_claim, .start = rj_start,
    .chunks_done = rj_chunks_done, .records = rj_records, .commit_chunk = rj_commit_chunk, .finish = rj_finish,
    .set_webhook = rj_set_webhook, .pending_webhooks = rj_pending_webhooks, .counts = rj_counts, .close = rj_close};

inferd_status job_store_redis_open(rstore *rs, int64_t claim_idle_ms, int64_t ttl_s, job_store **out) {
  redis_jobs *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  s->base.ops = &redis_ops;
  s->rs = rs;
  s->feature = rstore_feature_add(rs, "jobs");
  s->timeout_ms = rstore_default_timeout_ms(rs) > 5000 ? rstore_default_timeout_ms(rs) : 5000; /* a chunk's results */
  s->claim_idle_ms = claim_idle_ms > 0 ? claim_idle_ms : 30000;
  s->ttl_s = ttl_s > 0 ? ttl_s : 7 * 86400;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->keeper_cv, &ca);
  pthread_condattr_destroy(&ca);
  /* a consumer per process: a restarted replica is a new one, and its old entries are taken
   * over like any dead replica's */
  unsigned char r[6] = {0};
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) memset(r, 0x5a, sizeof r);
  char host[48] = "";
  gethostname(host, sizeof host - 1);
  snprintf(s->consumer, sizeof s->consumer, "%s-%d-%02x%02x%02x%02x%02x%02x", host, (int)getpid(), r[0], r[1], r[2], r[3],
           r[4], r[5]);
  ensure_groups(s); /* Redis may still be coming up: then the first claim makes them */
  if (pthread_create(&s->keeper, NULL, keeper_main, s) != 0) {
    rj_close(&s->base);
    return status_make(INFERD_INTERNAL, "cannot start the jobs store's keeper thread");
  }
  s->keeper_started = true;
  *out = &s->base;
  return status_ok();
}
