/* jobs/job_store_sqlite: the single-node job store, SQLite in WAL mode (synchronous=NORMAL: a
 * commit survives kill -9 of the server; a power cut may lose the last ones). Writes go through
 * one connection behind a mutex (SQLite serialises writers anyway); reads go through a
 * connection of the calling thread's own, so a status, list or results request never waits for
 * a lock another thread holds (WAL lets readers run beside the writer): the job executor runs
 * at idle priority, and a lock it held while starved of CPU would stall the HTTP loop. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job_store.h"

/* A thread's read connection, kept on the store's list to be closed with it. */
typedef struct reader {
  sqlite3 *db;
  struct reader *next;
} reader;

typedef struct sqlite_jobs {
  job_store base;
  char *path;
  sqlite3 *db; /* the writer's */
  pthread_mutex_t mu;
  pthread_key_t key; /* the calling thread's reader */
  pthread_mutex_t readers_mu;
  reader *readers;
} sqlite_jobs;

static const char *const state_names[] = {"uploading", "queued", "processing", "completed", "failed", "cancelled"};

const char *job_state_name(job_state s) {
  return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "unknown";
}

job_state job_state_parse(const char *name) {
  for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
    if (strcmp(name, state_names[i]) == 0) return (job_state)i;
  return JOB_UPLOADING;
}

bool job_state_active(job_state s) { return s == JOB_QUEUED || s == JOB_PROCESSING; }

static inferd_status db_error(sqlite3 *db, const char *what) {
  return status_make(INFERD_INTERNAL, "job store: %s failed: %s", what, db ? sqlite3_errmsg(db) : "no connection");
}

static void lock(sqlite_jobs *s) { pthread_mutex_lock(&s->mu); }
static void unlock(sqlite_jobs *s) { pthread_mutex_unlock(&s->mu); }

static bool begin(sqlite_jobs *s) { return sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK; }
static bool commit(sqlite_jobs *s) {
  if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) return true;
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return false;
}
static void rollback(sqlite_jobs *s) { sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); }

/* The calling thread's read connection (opened on its first read); NULL when it cannot open. */
static sqlite3 *reader_db(sqlite_jobs *s) {
  reader *r = pthread_getspecific(s->key);
  if (r) return r->db;
  r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  if (sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    sqlite3_close(r->db);
    free(r);
    return NULL;
  }
  sqlite3_busy_timeout(r->db, 5000);
  sqlite3_exec(r->db, "PRAGMA query_only=ON", NULL, NULL, NULL);
  pthread_mutex_lock(&s->readers_mu);
  r->next = s->readers;
  s->readers = r;
  pthread_mutex_unlock(&s->readers_mu);
  pthread_setspecific(s->key, r);
  return r->db;
}

/* -- one statement, one call --
 * Binds ?1, ?2, ... from the arguments as `types` spells them: 't' text (const char *; NULL
 * binds NULL), 'T' text with its length (const char *, size_t), 'i' int, 'I' int64_t. The text
 * is not copied: it must outlive the statement. */
static void bind_args(sqlite3_stmt *q, const char *types, va_list ap) {
  for (int i = 1; types && types[i - 1]; i++) {
    switch (types[i - 1]) {
      case 't': {
        const char *t = va_arg(ap, const char *);
        if (t) sqlite3_bind_text(q, i, t, -1, SQLITE_STATIC);
        else sqlite3_bind_null(q, i);
        break;
      }
      case 'T': {
        const char *t = va_arg(ap, const char *);
        size_t n = va_arg(ap, size_t);
        sqlite3_bind_text(q, i, t, (int)n, SQLITE_STATIC);
        break;
      }
      case 'i': sqlite3_bind_int(q, i, va_arg(ap, int)); break;
      case 'I': sqlite3_bind_int64(q, i, va_arg(ap, int64_t)); break;
      default: break;
    }
  }
}

static sqlite3_stmt *vprepare(sqlite3 *db, const char *sql, const char *types, va_list ap) {
  sqlite3_stmt *q = NULL;
  if (db == NULL || sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
    sqlite3_finalize(q);
    return NULL;
  }
  bind_args(q, types, ap);
  return q;
}

/* A statement ready to step (its rows read by the caller, then sqlite3_finalize); NULL when
 * it does not prepare. */
static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, const char *types, ...) {
  va_list ap;
  va_start(ap, types);
  sqlite3_stmt *q = vprepare(db, sql, types, ap);
  va_end(ap);
  return q;
}

/* Runs a statement that returns no rows: SQLITE_DONE, or the error (SQLITE_CONSTRAINT...). */
static int run(sqlite3 *db, const char *sql, const char *types, ...) {
  va_list ap;
  va_start(ap, types);
  sqlite3_stmt *q = vprepare(db, sql, types, ap);
  va_end(ap);
  if (q == NULL) return SQLITE_ERROR;
  int rc = sqlite3_step(q);
  sqlite3_finalize(q);
  return rc;
}

/* Steps a prepared statement once more with new bindings (a statement run per row). */
static int rerun(sqlite3_stmt *q, const char *types, ...) {
  sqlite3_reset(q);
  va_list ap;
  va_start(ap, types);
  bind_args(q, types, ap);
  va_end(ap);
  return sqlite3_step(q);
}

#define JOB_COLUMNS \
  "id, kind, owner, scopes, model, version, low, state, total, completed, failed, chunk_records, callback_url, " \
  "idem, error, created_ms, started_ms, finished_ms, wh_state, wh_attempts, wh_error, meta"

static void copy_col(sqlite3_stmt *q, int i, char *dst, size_t cap) {
  const unsigned char *t = sqlite3_column_text(q, i);
  snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void row_to_job(sqlite3_stmt *q, job_info *j) {
  memset(j, 0, sizeof *j);
  copy_col(q, 0, j->id, sizeof j->id);
  j->kind = (job_kind)sqlite3_column_int(q, 1);
  copy_col(q, 2, j->owner, sizeof j->owner);
  copy_col(q, 3, j->scopes, sizeof j->scopes);
  copy_col(q, 4, j->model, sizeof j->model);
  copy_col(q, 5, j->version, sizeof j->version);
  j->low_priority = sqlite3_column_int(q, 6) != 0;
  j->state = (job_state)sqlite3_column_int(q, 7);
  j->total = sqlite3_column_int64(q, 8);
  j->completed = sqlite3_column_int64(q, 9);
  j->failed = sqlite3_column_int64(q, 10);
  j->chunk_records = sqlite3_column_int64(q, 11);
  copy_col(q, 12, j->callback_url, sizeof j->callback_url);
  copy_col(q, 13, j->idempotency_key, sizeof j->idempotency_key);
  copy_col(q, 14, j->error, sizeof j->error);
  j->created_ms = sqlite3_column_int64(q, 15);
  j->started_ms = sqlite3_column_int64(q, 16);
  j->finished_ms = sqlite3_column_int64(q, 17);
  copy_col(q, 18, j->webhook_state, sizeof j->webhook_state);
  j->webhook_attempts = sqlite3_column_int(q, 19);
  copy_col(q, 20, j->webhook_error, sizeof j->webhook_error);
  copy_col(q, 21, j->meta, sizeof j->meta);
}

/* The job's row number (records and results are keyed by it, not by the 30-byte id). */
static bool job_num(sqlite3 *db, const char *id, int64_t *num, job_state *state) {
  sqlite3_stmt *q = prepare(db, "SELECT num, state FROM jobs WHERE id = ?1", "t", id);
  bool found = q && sqlite3_step(q) == SQLITE_ROW;
  if (found) {
    *num = sqlite3_column_int64(q, 0);
    if (state) *state = (job_state)sqlite3_column_int(q, 1);
  }
  sqlite3_finalize(q);
  return found;
}

static inferd_status not_found(const char *id) { return status_make(INFERD_NOT_FOUND, "no batch job '%.60s'", id); }

/* The first row of a job query into *out: OK, else `none` (no row) or the error. */
static inferd_status one_job(sqlite3 *db, sqlite3_stmt *q, job_info *out, inferd_status none, const char *what) {
  if (q == NULL) return db_error(db, what);
  int rc = sqlite3_step(q);
  inferd_status st = none;
  if (rc == SQLITE_ROW) {
    row_to_job(q, out);
    st = status_ok();
  } else if (rc != SQLITE_DONE) {
    st = db_error(db, what);
  }
  sqlite3_finalize(q);
  return st;
}

static inferd_status sj_find_idempotent(job_store *base, const char *owner, const char *key, job_info *out) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  sqlite3_stmt *q = prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE owner = ?1 AND idem = ?2 AND state <> 0", "tt",
                            owner, key);
  return one_job(db, q, out, status_make(INFERD_NOT_FOUND, "no job with this idempotency key"),
                 "looking up an idempotency key");
}

static inferd_status sj_create(job_store *base, const job_info *j) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  lock(s);
  int rc = run(s->db,
               "INSERT INTO jobs(" JOB_COLUMNS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0, 0, 0, 0, ?8, ?9, '', ?10, 0, 0, "
               "'', 0, '', ?11)",
               "tittttittIt", j->id, (int)j->kind, j->owner, j->scopes, j->model, j->version, (int)j->low_priority,
               j->callback_url, j->idempotency_key, j->created_ms, j->meta);
  inferd_status st = rc == SQLITE_DONE ? status_ok() : db_error(s->db, "creating a job");
  unlock(s);
  return st;
}

static inferd_status sj_append(job_store *base, const char *id, int64_t first, const job_record *recs, size_t n) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  lock(s);
  int64_t num;
  job_state state;
  if (!job_num(s->db, id, &num, &state) || state != JOB_UPLOADING) {
    unlock(s);
    return not_found(id);
  }
  sqlite3_stmt *q = NULL;
  bool ok = begin(s) && (q = prepare(s->db, "INSERT INTO records(job, idx, tag, body) VALUES(?1, ?2, ?3, ?4)", NULL));
  for (size_t i = 0; ok && i < n; i++)
    ok = rerun(q, "IItT", num, first + (int64_t)i, recs[i].tag, recs[i].body, recs[i].body_len) == SQLITE_DONE;
  sqlite3_finalize(q);
  inferd_status st = status_ok();
  if (!ok) {
    st = db_error(s->db, "storing records");
    rollback(s);
  } else if (!commit(s)) {
    st = db_error(s->db, "storing records");
  }
  unlock(s);
  return st;
}

static inferd_status sj_commit_upload(job_store *base, const job_info *j, bool *taken) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  *taken = false;
  lock(s);
  int rc = run(s->db,
               "UPDATE jobs SET state = 1, total = ?2, model = ?3, version = ?4, low = ?5, callback_url = ?6, meta = ?7 "
               "WHERE id = ?1 AND state = 0",
               "tIttitt", j->id, j->total, j->model, j->version, (int)j->low_priority, j->callback_url, j->meta);
  inferd_status st = status_ok();
  if (rc == SQLITE_CONSTRAINT) *taken = true;
  else if (rc != SQLITE_DONE) st = db_error(s->db, "accepting a job");
  else if (sqlite3_changes(s->db) != 1) st = not_found(j->id);
  unlock(s);
  return st;
}

static inferd_status sj_discard(job_store *base, const char *id) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  lock(s);
  int64_t num;
  inferd_status st = status_ok();
  if (!job_num(s->db, id, &num, NULL)) {
    unlock(s);
    return not_found(id);
  }
  char sql[256];
  snprintf(sql, sizeof sql,
           "BEGIN IMMEDIATE; DELETE FROM records WHERE job = %lld; DELETE FROM results WHERE job = %lld; "
           "DELETE FROM chunks WHERE job = %lld; DELETE FROM jobs WHERE num = %lld; COMMIT;",
           (long long)num, (long long)num, (long long)num, (long long)num);
  if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
    st = db_error(s->db, "deleting a job");
    rollback(s);
  }
  unlock(s);
  return st;
}

static inferd_status sj_get(job_store *base, const char *id, job_info *out) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  sqlite3_stmt *q = prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1 AND state <> 0", "t", id);
  return one_job(db, q, out, not_found(id), "reading a job");
}

/* Runs a job query, then hands each row to fn once the statement is done (fn may call the store). */
static inferd_status each_job(sqlite3 *db, sqlite3_stmt *q, job_info_fn fn, void *user, const char *what) {
  if (q == NULL) return db_error(db, what);
  int rc;
  job_info *rows = NULL;
  size_t n = 0, cap = 0;
  inferd_status st = status_ok();
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      job_info *r = realloc(rows, cap * sizeof *r);
      if (r == NULL) {
        st = status_make(INFERD_INTERNAL, "out of memory");
        break;
      }
      rows = r;
    }
    row_to_job(q, &rows[n++]);
  }
  if (status_is_ok(&st) && rc != SQLITE_DONE) st = db_error(db, what);
  sqlite3_finalize(q);
  for (size_t i = 0; status_is_ok(&st) && i < n; i++) fn(user, &rows[i]);
  free(rows);
  return st;
}

static inferd_status sj_list(job_store *base, const char *owner, int64_t offset, int64_t limit, job_info_fn fn,
                             void *user) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  sqlite3_stmt *q = prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE owner = ?1 AND state <> 0 ORDER BY num DESC "
                                "LIMIT ?2 OFFSET ?3", "tII", owner, limit, offset);
  return each_job(db, q, fn, user, "listing jobs");
}

static inferd_status sj_owner_usage(job_store *base, const char *owner, int64_t *jobs, int64_t *records) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  *jobs = *records = 0;
  sqlite3_stmt *q = prepare(db, "SELECT count(*), coalesce(sum(total - completed), 0) FROM jobs WHERE owner = ?1 AND "
                                "state IN (1, 2)", "t", owner);
  if (q == NULL) return db_error(db, "counting jobs");
  if (sqlite3_step(q) == SQLITE_ROW) {
    *jobs = sqlite3_column_int64(q, 0);
    *records = sqlite3_column_int64(q, 1);
  }
  sqlite3_finalize(q);
  return status_ok();
}

static inferd_status sj_results(job_store *base, const char *id, int64_t offset, int64_t limit, job_result_fn fn,
                                void *user) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  int64_t num;
  job_state state;
  if (!job_num(db, id, &num, &state) || state == JOB_UPLOADING) return not_found(id);
  sqlite3_stmt *q = prepare(db, "SELECT r.idx, c.tag, r.ok, r.body FROM results r LEFT JOIN records c ON c.job = r.job AND "
                                "c.idx = r.idx WHERE r.job = ?1 AND r.idx >= ?2 AND r.idx < ?3 ORDER BY r.idx",
                            "III", num, offset, offset + limit);
  if (q == NULL) return db_error(db, "reading results");
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW)
    fn(user, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1), sqlite3_column_int(q, 2) != 0,
       (const char *)sqlite3_column_text(q, 3));
  inferd_status st = rc == SQLITE_DONE ? status_ok() : db_error(db, "reading results");
  sqlite3_finalize(q);
  return st;
}

static inferd_status sj_claim(job_store *base, const char *const *skip, size_t n_skip, job_info *out) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  /* normal before low; within a priority, a job a restart or a pre-emption interrupted before
   * a queued one; then the oldest */
  sqlite3_stmt *q = prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE state IN (1, 2) ORDER BY low, state DESC, num",
                            NULL);
  if (q == NULL) return db_error(db, "claiming a job");
  inferd_status st = status_make(INFERD_NOT_FOUND, "no job to run");
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(q, 0);
    bool skipped = false;
    for (size_t i = 0; i < n_skip && !skipped; i++) skipped = strcmp(skip[i], id) == 0;
    if (skipped) continue;
    row_to_job(q, out);
    st = status_ok();
    break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = db_error(db, "claiming a job");
  sqlite3_finalize(q);
  return st;
}

static inferd_status sj_normal_waiting(job_store *base, bool *waiting) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  sqlite3_stmt *q = prepare(db, "SELECT 1 FROM jobs WHERE state = 1 AND low = 0 LIMIT 1", NULL);
  if (q == NULL) return db_error(db, "looking for queued jobs");
  int rc = sqlite3_step(q);
  *waiting = rc == SQLITE_ROW;
  sqlite3_finalize(q);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? status_ok() : db_error(db, "looking for queued jobs");
}

static inferd_status sj_start(job_store *base, const char *id, int64_t chunk_records, int64_t at_ms) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  lock(s);
  /* a resumed job keeps its chunk size and start time: its committed chunks are numbered by it */
  int rc = run(s->db,
               "UPDATE jobs SET state = 2, chunk_records = CASE WHEN chunk_records > 0 THEN chunk_records ELSE ?2 END, "
               "started_ms = CASE WHEN started_ms > 0 THEN started_ms ELSE ?3 END WHERE id = ?1 AND state IN (1, 2)",
               "tII", id, chunk_records, at_ms);
  inferd_status st = status_ok();
  if (rc != SQLITE_DONE) st = db_error(s->db, "starting a job");
  else if (sqlite3_changes(s->db) != 1) st = status_make(INFERD_INVALID_ARGUMENT, "job '%s' is no longer active", id);
  unlock(s);
  return st;
}

static inferd_status sj_chunks_done(job_store *base, const char *id, void (*fn)(void *, int64_t), void *user) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  int64_t num;
  if (!job_num(db, id, &num, NULL)) return not_found(id);
  sqlite3_stmt *q = prepare(db, "SELECT chunk FROM chunks WHERE job = ?1", "I", num);
  if (q == NULL) return db_error(db, "reading progress");
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) fn(user, sqlite3_column_int64(q, 0));
  inferd_status st = rc == SQLITE_DONE ? status_ok() : db_error(db, "reading progress");
  sqlite3_finalize(q);
  return st;
}

static inferd_status sj_records(job_store *base, const char *id, int64_t first, int64_t n, job_record_fn fn, void *user) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  int64_t num;
  if (!job_num(db, id, &num, NULL)) return not_found(id);
  sqlite3_stmt *q = prepare(db, "SELECT idx, tag, body FROM records WHERE job = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
                            "III", num, first, first + n);
  if (q == NULL) return db_error(db, "reading records");
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW)
    fn(user, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1), (const char *)sqlite3_column_text(q, 2));
  inferd_status st = rc == SQLITE_DONE ? status_ok() : db_error(db, "reading records");
  sqlite3_finalize(q);
  return st;
}

static inferd_status sj_commit_chunk(job_store *base, const char *id, int64_t chunk, int64_t first,
                                     const job_result *res, size_t n, bool *duplicate) {
  *duplicate = false;
  sqlite_jobs *s = (sqlite_jobs *)base;
  lock(s);
  int64_t num;
  if (!job_num(s->db, id, &num, NULL)) {
    unlock(s);
    return not_found(id);
  }
  if (!begin(s)) {
    inferd_status st = db_error(s->db, "a transaction");
    unlock(s);
    return st;
  }
  /* the chunk's row first: a second commit of the same chunk stops here, before any result */
  int rc = run(s->db, "INSERT INTO chunks(job, chunk) VALUES(?1, ?2)", "II", num, chunk);
  if (rc == SQLITE_CONSTRAINT) {
    rollback(s);
    unlock(s);
    *duplicate = true;
    return status_ok();
  }
  sqlite3_stmt *q = NULL;
  bool ok = rc == SQLITE_DONE && (q = prepare(s->db, "INSERT INTO results(job, idx, ok, body) VALUES(?1, ?2, ?3, ?4)", NULL));
  int64_t failed = 0;
  for (size_t i = 0; ok && i < n; i++) {
    ok = rerun(q, "IIit", num, first + (int64_t)i, (int)res[i].ok, res[i].body) == SQLITE_DONE;
    if (!res[i].ok) failed++;
  }
  sqlite3_finalize(q);
  ok = ok && run(s->db, "UPDATE jobs SET completed = completed + ?2, failed = failed + ?3 WHERE num = ?1", "III", num,
                 (int64_t)n, failed) == SQLITE_DONE;
  inferd_status st = status_ok();
  if (!ok) {
    st = db_error(s->db, "storing results");
    rollback(s);
  } else if (!commit(s)) {
    st = db_error(s->db, "storing results");
  }
  unlock(s);
  return st;
}

static inferd_status sj_finish(job_store *base, const char *id, job_state to, const char *error, int64_t at_ms) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  lock(s);
  int64_t num;
  job_state state;
  inferd_status st = status_ok();
  if (!job_num(s->db, id, &num, &state) || state == JOB_UPLOADING)
    st = not_found(id);
  else if (!job_state_active(state))
    st = status_make(INFERD_INVALID_ARGUMENT, "batch job '%s' is %s already", id, job_state_name(state));
  else if (run(s->db,
               "UPDATE jobs SET state = ?2, error = ?3, finished_ms = ?4, wh_state = CASE WHEN callback_url <> '' THEN "
               "'pending' ELSE '' END WHERE num = ?1 AND state IN (1, 2)",
               "IitI", num, (int)to, error ? error : "", at_ms) != SQLITE_DONE)
    st = db_error(s->db, "finishing a job");
  unlock(s);
  return st;
}

static inferd_status sj_set_webhook(job_store *base, const char *id, const char *state, int attempts, const char *error) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  lock(s);
  int rc = run(s->db, "UPDATE jobs SET wh_state = ?2, wh_attempts = ?3, wh_error = ?4 WHERE id = ?1", "ttit", id, state,
               attempts, error ? error : "");
  inferd_status st = rc == SQLITE_DONE ? status_ok() : db_error(s->db, "recording a webhook");
  unlock(s);
  return st;
}

static inferd_status sj_pending_webhooks(job_store *base, job_info_fn fn, void *user) {
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  sqlite3_stmt *q = prepare(db, "SELECT " JOB_COLUMNS " FROM jobs WHERE wh_state IN ('pending', 'sending') ORDER BY num",
                            NULL);
  return each_job(db, q, fn, user, "reading webhooks");
}

static inferd_status sj_counts(job_store *base, int64_t by_state[JOB_CANCELLED + 1], int64_t *records_left) {
  for (int i = 0; i <= JOB_CANCELLED; i++) by_state[i] = 0;
  *records_left = 0;
  sqlite3 *db = reader_db((sqlite_jobs *)base);
  sqlite3_stmt *q = prepare(db, "SELECT state, count(*), coalesce(sum(total - completed), 0) FROM jobs GROUP BY state",
                            NULL);
  if (q == NULL) return db_error(db, "counting jobs");
  while (sqlite3_step(q) == SQLITE_ROW) {
    int k = sqlite3_column_int(q, 0);
    if (k >= 0 && k <= JOB_CANCELLED) by_state[k] = sqlite3_column_int64(q, 1);
    if (job_state_active((job_state)k)) *records_left += sqlite3_column_int64(q, 2);
  }
  sqlite3_finalize(q);
  return status_ok();
}

static void sj_close(job_store *base) {
  sqlite_jobs *s = (sqlite_jobs *)base;
  for (reader *r = s->readers, *next; r; r = next) {
    next = r->next;
    sqlite3_close(r->db);
    free(r);
  }
  pthread_key_delete(s->key);
  sqlite3_close(s->db);
  pthread_mutex_destroy(&s->readers_mu);
  pthread_mutex_destroy(&s->mu);
  free(s->path);
  free(s);
}

static const job_store_ops sqlite_ops = {
    .find_idempotent = sj_find_idempotent, .create = sj_create, .append = sj_append, .commit_upload = sj_commit_upload,
    .discard = sj_discard, .get = sj_get, .list = sj_list, .owner_usage = sj_owner_usage, .results = sj_results,
    .claim = sj_claim, .normal_waiting = sj_normal_waiting, .start = sj_start, .chunks_done = sj_chunks_done,
    .records = sj_records, .commit_chunk = sj_commit_chunk, .finish = sj_finish, .set_webhook = sj_set_webhook,
    .pending_webhooks = sj_pending_webhooks, .counts = sj_counts, .close = sj_close};

inferd_status job_store_sqlite_open(const char *path, job_store **out) {
  sqlite_jobs *s = calloc(1, sizeof *s);
  if (s == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  s->base.ops = &sqlite_ops;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->readers_mu, NULL);
  if (pthread_key_create(&s->key, NULL) != 0) {
    pthread_mutex_destroy(&s->readers_mu);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
    return status_make(INFERD_INTERNAL, "cannot open the job store %s: out of thread keys", path);
  }
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    inferd_status st = status_make(INFERD_INTERNAL, "cannot open the job store %s: %s", path,
                                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sj_close(&s->base);
    return st;
  }
  sqlite3_busy_timeout(s->db, 5000);
  /* the idempotency index is partial: an upload in progress holds no key, so a crashed upload
   * never blocks the client's retry; commit_upload's UPDATE is where two jobs would collide */
  static const char *const setup =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS jobs(num INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind INTEGER, "
      "owner TEXT, scopes TEXT, model TEXT, version TEXT, low INTEGER, state INTEGER, total INTEGER, completed INTEGER, "
      "failed INTEGER, chunk_records INTEGER, callback_url TEXT, idem TEXT, error TEXT, created_ms INTEGER, "
      "started_ms INTEGER, finished_ms INTEGER, wh_state TEXT, wh_attempts INTEGER, wh_error TEXT, meta TEXT);"
      "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(owner, idem) WHERE idem <> '' AND state <> 0;"
      "CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, num);"
      "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);"
      "CREATE TABLE IF NOT EXISTS records(job INTEGER, idx INTEGER, tag TEXT, body TEXT, PRIMARY KEY(job, idx)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS results(job INTEGER, idx INTEGER, ok INTEGER, body TEXT, PRIMARY KEY(job, idx)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS chunks(job INTEGER, chunk INTEGER, PRIMARY KEY(job, chunk)) WITHOUT ROWID;";
  if (sqlite3_exec(s->db, setup, NULL, NULL, NULL) != SQLITE_OK) {
    inferd_status st = status_make(INFERD_INTERNAL, "cannot set up the job store %s: %s", path, sqlite3_errmsg(s->db));
    sj_close(&s->base);
    return st;
  }
  /* uploads a previous run never finished were never acknowledged: drop them */
  sqlite3_stmt *q = prepare(s->db, "SELECT id FROM jobs WHERE state = 0", NULL);
  if (q) {
    char ids[64][JOB_ID_MAX];
    int n = 0;
    while (n < 64 && sqlite3_step(q) == SQLITE_ROW) copy_col(q, 0, ids[n++], JOB_ID_MAX);
    sqlite3_finalize(q);
    for (int i = 0; i < n; i++) sj_discard(&s->base, ids[i]);
  }
  *out = &s->base;
  return status_ok();
}
