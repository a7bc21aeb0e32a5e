/* jobs/job_store: where async batch jobs, their input records and their per-record results
 * live, and how the executor claims work, behind a small interface so that a shared store
 * (Redis streams, for several replicas) can stand in for the local SQLite one
 * (job_store_sqlite.c). Every call is thread-safe: HTTP loops submit and read while the
 * executor thread claims and commits. A read should not wait for a lock a writer holds: the
 * executor runs at idle priority (jobs.c). */
#ifndef INFERD_JOBS_JOB_STORE_H
#define INFERD_JOBS_JOB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* A job's life: UPLOADING (records still arriving; invisible to every reader and to the
 * executor, discarded at the next start if the server died first) -> QUEUED (accepted: the
 * 202 was sent only after this was durable) -> PROCESSING -> COMPLETED | FAILED | CANCELLED. */
typedef enum {
  JOB_UPLOADING,
  JOB_QUEUED,
  JOB_PROCESSING,
  JOB_COMPLETED,
  JOB_FAILED,
  JOB_CANCELLED,
} job_state;

const char *job_state_name(job_state s);
/* JOB_UPLOADING for an unknown name. */
job_state job_state_parse(const char *name);
/* QUEUED or PROCESSING: still to be worked on (a cancel applies). */
bool job_state_active(job_state s);

/* What kind of API made the job: the results' line format follows it. */
typedef enum { JOB_KIND_BATCH, JOB_KIND_OPENAI } job_kind;

#define JOB_ID_MAX 48
#define JOB_OWNER_MAX 160 /* "<principal kind>:<name>"; "anonymous" when security is off */

typedef struct job_info {
  char id[JOB_ID_MAX];  /* "batch_" + 24 hex digits */
  job_kind kind;
  char owner[JOB_OWNER_MAX];
  /* The owner's scopes when the job was accepted, comma-separated: the executor submits each
   * chunk as this principal (the admit stage checks infer:<model> again) even after a restart,
   * when the credential that made the job is no longer at hand. "" with security off. */
  char scopes[1024];
  char model[256];
  char version[32]; /* "" : the model's default (or traffic's choice) at each chunk */
  bool low_priority; /* "priority": "low": runs after every "normal" job */
  job_state state;
  int64_t total;     /* records (0 while UPLOADING) */
  int64_t completed; /* records with a result (errors included) */
  int64_t failed;    /* of which per-record errors */
  int64_t chunk_records; /* fixed when the job first runs (0 before): chunk k is records [k*n, (k+1)*n) */
  char callback_url[1024]; /* "" : none */
  char idempotency_key[256]; /* "" : none */
  char error[512]; /* FAILED: why */
  int64_t created_ms, started_ms, finished_ms; /* unix ms; 0: not yet */
  /* the completion webhook: "" (none / not yet), "pending" (to send), "sending", "delivered", "failed" */
  char webhook_state[16];
  int webhook_attempts;
  char webhook_error[256];
  char meta[1024]; /* kind-specific JSON text (OpenAI: endpoint, input_file_id, metadata); "" : none */
} job_info;

/* One input record: its JSON text, and for OpenAI jobs the line's custom_id (NULL: none). */
typedef struct job_record {
  const char *body;
  size_t body_len;
  const char *tag;
} job_record;

/* One result, of the record at the same index: ok with the result's JSON text, or a per-record
 * error's JSON text ({"error": ..., "errors": [...]}). */
typedef struct job_result {
  bool ok;
  const char *body;
} job_result;

typedef struct job_store job_store;

typedef void (*job_info_fn)(void *user, const job_info *job);
typedef void (*job_record_fn)(void *user, int64_t index, const char *tag, const char *body);
typedef void (*job_result_fn)(void *user, int64_t index, const char *tag, bool ok, const char *body);

/* Callbacks of list and pending_webhooks may call the store; those of records and results
 * (which stream many rows) must not. */
typedef struct job_store_ops {
  /* -- submission -- */
  /* The QUEUED or later job owner made with this Idempotency-Key: OK and *out, NOT_FOUND when none. */
  inferd_status (*find_idempotent)(job_store *s, const char *owner, const char *key, job_info *out);
  /* Records a new job (job->id set by the caller) as UPLOADING. */
  inferd_status (*create)(job_store *s, const job_info *job);
  /* Appends n records at indices first .. first+n-1 of an UPLOADING job (one transaction). */
  inferd_status (*append)(job_store *s, const char *id, int64_t first, const job_record *recs, size_t n);
  /* UPLOADING -> QUEUED, durably, with the fields known only at the end of the upload (the JSON
   * form names its model after its records): model, version, low_priority, callback_url, meta
   * and total are taken from job. *taken (and nothing changed) when the owner's idempotency key
   * went to another job meanwhile: the caller discards this one and answers with
   * find_idempotent's. */
  inferd_status (*commit_upload)(job_store *s, const job_info *job, bool *taken);
  /* Deletes a job and everything it holds (a failed upload; also used by retention). */
  inferd_status (*discard)(job_store *s, const char *id);

  /* -- reading -- */
  /* NOT_FOUND for an unknown (or still uploading) id. */
  inferd_status (*get)(job_store *s, const char *id, job_info *out);
  /* The owner's jobs, newest first, at most limit, skipping `offset`. */
  inferd_status (*list)(job_store *s, const char *owner, int64_t offset, int64_t limit, job_info_fn fn, void *user);
  /* The owner's active (queued, processing) jobs and their records not yet done, for the
   * per-principal limits. */
  inferd_status (*owner_usage)(job_store *s, const char *owner, int64_t *jobs, int64_t *records);
  /* Results offset .. offset+limit-1 in input order (fewer when not done yet or past the end). */
  inferd_status (*results)(job_store *s, const char *id, int64_t offset, int64_t limit, job_result_fn fn, void *user);

  /* -- the executor -- */
  /* The next job to work on, none of those in skip[0..n_skip) (the ones being worked now):
   * normal before low priority; within one, PROCESSING before QUEUED (resume what a restart or
   * a pre-emption interrupted); oldest first. NOT_FOUND when there is none. */
  inferd_status (*claim)(job_store *s, const char *const *skip, size_t n_skip, job_info *out);
  /* Optional (NULL: the store orders work itself, as Redis's per-priority streams do): whether a
   * normal-priority job is QUEUED, so that the executor pre-empts a low one at its next chunk
   * boundary. Without side effects. */
  inferd_status (*normal_waiting)(job_store *s, bool *waiting);
  /* Marks a job PROCESSING (started_ms) with its chunk size (a resumed job keeps its own),
   * unless it is no longer active (INVALID_ARGUMENT). */
  inferd_status (*start)(job_store *s, const char *id, int64_t chunk_records, int64_t at_ms);
  /* Calls fn(user, k) for each chunk k already committed (a resumed job skips them). */
  inferd_status (*chunks_done)(job_store *s, const char *id, void (*fn)(void *user, int64_t chunk), void *user);
  /* Records first .. first+n-1 in order. */
  inferd_status (*records)(job_store *s, const char *id, int64_t first, int64_t n, job_record_fn fn, void *user);
  /* Stores chunk k's results (records first .. first+n-1) and adds them to the job's progress,
   * in one transaction, at most once: *duplicate (nothing written) when chunk k was committed
   * before. After kill -9 either all of a chunk is there or none of it. */
  inferd_status (*commit_chunk)(job_store *s, const char *id, int64_t chunk, int64_t first, const job_result *res,
                                size_t n, bool *duplicate);
  /* Moves a job to a final state (COMPLETED, FAILED with error, CANCELLED). Cancel only takes an
   * active job: INVALID_ARGUMENT (naming the state it is in) otherwise. */
  inferd_status (*finish)(job_store *s, const char *id, job_state to, const char *error, int64_t at_ms);
  /* The completion webhook's outcome (webhook_state, attempts, last error). */
  inferd_status (*set_webhook)(job_store *s, const char *id, const char *state, int attempts, const char *error);
  /* Jobs finished and their webhook to be sent or sent again (state "pending" or "sending"): at start. */
  inferd_status (*pending_webhooks)(job_store *s, job_info_fn fn, void *user);

  /* -- counts for /metrics -- */
  /* Jobs by state, and the records of active jobs still to do (for estimates). */
  inferd_status (*counts)(job_store *s, int64_t by_state[JOB_CANCELLED + 1], int64_t *records_left);

  void (*close)(job_store *s);
} job_store_ops;

struct job_store {
  const job_store_ops *ops;
};

/* SQLite in WAL mode at path (created with its tables when new). Jobs left UPLOADING by a
 * previous run are discarded here. */
inferd_status job_store_sqlite_open(const char *path, job_store **out);

/* In Redis (store/rstore.h), shared by every replica (docs/redis.md, "Batch jobs"): work goes
 * out per chunk through a stream's consumer group, so claim hands out a job with only the
 * chunks this replica took; chunks_done reports every other chunk as done (others work them,
 * and they come back through the stream if their replica dies: entries idle longer than
 * claim_idle_ms are taken over). The commit of a job's last chunk completes it. Finished jobs'
 * keys expire after ttl_s. */
struct rstore;
inferd_status job_store_redis_open(struct rstore *rs, int64_t claim_idle_ms, int64_t ttl_s, job_store **out);

#endif
