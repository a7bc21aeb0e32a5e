/* jobs/jobs: async batch jobs (docs/jobs.md). A job's records wait in the job store; one
 * executor thread cuts them into chunks sized for the model and feeds them to the pipeline
 * (serve_submit, like any request, at the model's lowest priority) with a bounded number in
 * flight, so online requests keep their latency while jobs fill idle capacity. A low-priority
 * job yields to a queued normal one at its next chunk boundary. Each chunk's
 * results and the job's progress are committed together, so after kill -9 a job resumes from
 * its committed chunks with nothing lost or written twice. */
#ifndef INFERD_JOBS_JOBS_H
#define INFERD_JOBS_JOBS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/app.h"
#include "core/principal.h"
#include "core/status.h"
#include "jobs/job_store.h"
#include "jobs/webhook.h"

typedef struct jobs jobs;

typedef struct jobs_options {
  const char *state_dir;      /* jobs.db is kept here (created when missing) */
  int64_t max_job_records;    /* records one job may hold (--max-job-records) */
  int64_t max_active_jobs;    /* queued or processing jobs per principal (--max-jobs-per-principal) */
  int64_t max_active_records; /* their records not yet done, per principal (--max-job-records-per-principal) */
  int max_inflight;           /* chunks handed to the scheduler at once (--job-chunks-in-flight) */
  int64_t chunk_records;      /* records per chunk; 0: the model's max_batch_size (--job-chunk-records) */
  webhooks *hooks;            /* completion webhooks go out through it (jobs/webhook.h); NULL: none */
  struct rstore *rstore;      /* --redis-url: jobs in Redis, shared by the replicas (job_store_redis.c); NULL: SQLite */
  int64_t claim_timeout_ms;   /* Redis: a dead replica's chunks are taken over after this (--jobs-claim-timeout-ms) */
  int64_t ttl_seconds;        /* Redis: finished jobs' keys expire after this (--jobs-ttl-seconds) */
} jobs_options;

#define JOBS_DEFAULT_MAX_JOB_RECORDS 10000000
#define JOBS_DEFAULT_MAX_ACTIVE_JOBS 16
#define JOBS_DEFAULT_MAX_ACTIVE_RECORDS 20000000
#define JOBS_DEFAULT_MAX_INFLIGHT 2
#define JOBS_MAX_CHUNK 1000 /* a chunk is also one pipeline request: keep its run short */

/* Opens the store (discarding unfinished uploads) and starts the executor, which resumes the
 * jobs a previous run left queued or processing. */
inferd_status jobs_create(app *a, const jobs_options *o, jobs **out);
/* Stops handing out chunks (before the pipeline drains); chunks in flight still commit. */
void jobs_stop(jobs *j);
/* Waits for the chunks in flight, commits them, stops the executor, closes the store. NULL-safe. */
void jobs_destroy(jobs *j);

job_store *jobs_store(jobs *j);
const jobs_options *jobs_get_options(const jobs *j);
/* A job was queued: the executor looks for work now. */
void jobs_wake(jobs *j);
/* Cancels an active job: it stops at once (chunks in flight still land in its results).
 * INVALID_ARGUMENT when it has finished already. */
inferd_status jobs_cancel(jobs *j, const char *id, int64_t now_ms);
/* When (unix ms) a job of `records` records queued now should be done: the records of the
 * active jobs ahead of it and its own at the recent throughput. */
int64_t jobs_estimate_ms(jobs *j, int64_t now_ms, int64_t records);
/* Records per second recently (0: nothing measured yet). */
double jobs_rate(jobs *j);
/* Runs fn(arg) on the jobs layer's intake thread (normal priority, one task at a time, in
 * order): the API's long store work (reading an OpenAI batch's input file) off the HTTP loop.
 * fn then answers its call itself (http_call_reply_async). UNAVAILABLE (fn will not run) once
 * the server is stopping. A task still queued at jobs_destroy runs then, with jobs_stopping
 * true: long tasks check it and end early. */
inferd_status jobs_offload(jobs *j, void (*fn)(void *arg), void *arg);
/* jobs_stop was called: offloaded work should end now. */
bool jobs_stopping(jobs *j);

/* A new job id: prefix ("batch_", "file-") and 24 random hex digits. */
void jobs_new_id(const char *prefix, char *id, size_t len);
/* The store's owner string for a caller (NULL: "anonymous") and its scopes, comma-separated. */
void jobs_owner_of(const principal *p, char owner[JOB_OWNER_MAX], char scopes[1024]);

/* The completion webhook: once a job with a callback_url ends (completed, failed, cancelled) the
 * executor sends {"type": "batch.completed"|"batch.failed"|"batch.cancelled", "timestamp",
 * "data": the status} through jobs_options.hooks, webhook-id "msg_<batch_id>" (the same on every
 * retry and after a restart); the outcome lands in the job's status (webhook.state delivered or
 * failed, attempts, last_error). Deliveries a shutdown cut short are sent again at the next start. */

/* The completion payload a webhook carries (and GET status's core): a new JSON text. */
char *jobs_status_json(jobs *j, const job_info *job, int64_t now_ms);

/* /metrics: inferd_jobs{state}, inferd_job_records_total{result}, chunks in flight. */
void jobs_metrics_write(void *ctx, FILE *f);

/* -- pure parts (tests/unit/test_jobs.c) -- */
/* Records per chunk for a model: the configured size, else the model's max_batch_size (a
 * model without batching takes one record a request), capped at JOBS_MAX_CHUNK. */
int64_t jobs_chunk_size(int64_t configured, int max_batch_size);
/* Chunks of a job of total records. */
int64_t jobs_chunk_count(int64_t total, int64_t chunk_records);
/* One results line (JSONL, no newline), a new string: batch jobs {"index", "result"} or
 * {"index", "error", "errors"}; OpenAI jobs {"id", "custom_id", "response", "error"}. */
char *jobs_result_line(job_kind kind, const char *job_id, int64_t index, const char *tag, bool ok, const char *body);

#endif
