/* jobs: the pure parts: the upload splitter (JSON Lines, CSV, the JSON form fed in pieces of
 * every size), chunk planning, results lines; and the SQLite store's at-most-once chunk
 * commit and idempotency keys on a temporary file. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "jobs/job_input.h"
#include "jobs/job_store.h"
#include "jobs/jobs.h"

typedef struct got {
  char *recs[64];
  int n;
} got;

static inferd_status keep(void *user, const char *json, size_t len) {
  got *g = user;
  assert_int_equal(strlen(json), len);
  if (g->n < 64) g->recs[g->n++] = strdup(json);
  return status_ok();
}

static void got_clear(got *g) {
  for (int i = 0; i < g->n; i++) free(g->recs[i]);
  g->n = 0;
}

/* Feeds body in pieces of `step` bytes; returns the status of the feed or the finish. */
static inferd_status feed(job_input_format f, const char *body, size_t step, got *g, job_input **keep_in) {
  job_input *in = job_input_create(f, keep, g);
  assert_non_null(in);
  size_t n = strlen(body);
  inferd_status st = status_ok();
  for (size_t i = 0; i < n && status_is_ok(&st); i += step) st = job_input_feed(in, body + i, n - i < step ? n - i : step);
  if (status_is_ok(&st)) st = job_input_finish(in);
  if (keep_in) *keep_in = in;
  else job_input_destroy(in);
  return st;
}

/* Feeds a body that must be refused: INVALID_ARGUMENT, whose message the caller checks. */
static inferd_status refused(job_input_format f, const char *body, size_t step) {
  got g = {0};
  inferd_status st = feed(f, body, step, &g, NULL);
  got_clear(&g);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  return st;
}

/* The same records whatever the pieces: a record, a quote or an escape split anywhere. */
static void test_jsonl_any_split(void **state) {
  (void)state;
  const char *body = "{\"a\": 1, \"s\": \"x\\\"y\\n\"}\n\n  {\"a\":2}\r\n{\"a\":3}";
  for (size_t step = 1; step <= strlen(body); step++) {
    got g = {0};
    inferd_status st = feed(JOB_INPUT_JSONL, body, step, &g, NULL);
    assert_true(status_is_ok(&st));
    assert_int_equal(g.n, 3);
    assert_string_equal(g.recs[0], "{\"a\": 1, \"s\": \"x\\\"y\\n\"}");
    assert_string_equal(g.recs[1], "{\"a\":2}");
    assert_string_equal(g.recs[2], "{\"a\":3}");
    got_clear(&g);
  }
}

static void test_jsonl_errors_name_the_line(void **state) {
  (void)state;
  inferd_status st = refused(JOB_INPUT_JSONL, "{\"a\":1}\n{\"a\":\n", 4);
  assert_non_null(strstr(st.msg, "line 2"));
  st = refused(JOB_INPUT_JSONL, "{}\n[1]\n", 100);
  assert_non_null(strstr(st.msg, "line 2"));
  assert_non_null(strstr(st.msg, "object"));
}

static void test_csv(void **state) {
  (void)state;
  const char *body = "age, contract ,note\r\n30,one-year,\"a, \"\"b\"\"\nc\"\n 4.5 ,,\"7\"\n\n";
  for (size_t step = 1; step <= strlen(body); step++) {
    got g = {0};
    inferd_status st = feed(JOB_INPUT_CSV, body, step, &g, NULL);
    assert_true(status_is_ok(&st));
    assert_int_equal(g.n, 2);
    /* numbers stay numbers, a quoted field a string, an empty one null */
    assert_string_equal(g.recs[0], "{\"age\":30,\"contract\":\"one-year\",\"note\":\"a, \\\"b\\\"\\nc\"}");
    assert_string_equal(g.recs[1], "{\"age\":4.5,\"contract\":null,\"note\":\"7\"}");
    got_clear(&g);
  }
  assert_non_null(strstr(refused(JOB_INPUT_CSV, "a,b\n1,2\n3\n", 100).msg, "line 3"));
  assert_non_null(strstr(refused(JOB_INPUT_CSV, "a,a\n1,2\n", 100).msg, "twice"));
  assert_non_null(strstr(refused(JOB_INPUT_CSV, "", 100).msg, "header"));
}

static void test_json_form(void **state) {
  (void)state;
  const char *body = " {\"model\": \"m\", \"inputs\": [ {\"a\": [1, {\"b\": \"]}\"}]}, {\"inputs\": 2} ],"
                     " \"callback_url\": \"http://x/[\"} ";
  for (size_t step = 1; step <= strlen(body); step++) {
    got g = {0};
    job_input *in;
    inferd_status st = feed(JOB_INPUT_JSON, body, step, &g, &in);
    assert_true(status_is_ok(&st));
    assert_int_equal(g.n, 2);
    assert_string_equal(g.recs[0], "{\"a\": [1, {\"b\": \"]}\"}]}");
    assert_string_equal(g.recs[1], "{\"inputs\": 2}");
    json_t *env = job_input_envelope(in);
    assert_true(job_input_has_inputs(in));
    assert_string_equal(json_string_value(json_object_get(env, "model")), "m");
    assert_int_equal(json_array_size(json_object_get(env, "inputs")), 0);
    assert_string_equal(json_string_value(json_object_get(env, "callback_url")), "http://x/[");
    job_input_destroy(in);
    got_clear(&g);
  }
  assert_non_null(strstr(refused(JOB_INPUT_JSON, "{\"inputs\": [{}, 3]}", 100).msg, "$.inputs[1]"));
  refused(JOB_INPUT_JSON, "[1]", 100);
  refused(JOB_INPUT_JSON, "{\"inputs\": [{}]", 100);
  assert_non_null(strstr(refused(JOB_INPUT_JSON, "{\"inputs\": [{\"a\": }]}", 100).msg, "$.inputs[0]"));
}

static void test_format_of(void **state) {
  (void)state;
  assert_int_equal(job_input_format_of("application/x-ndjson"), JOB_INPUT_JSONL);
  assert_int_equal(job_input_format_of("text/csv; charset=utf-8"), JOB_INPUT_CSV);
  assert_int_equal(job_input_format_of("Application/JSON"), JOB_INPUT_JSON);
  assert_int_equal(job_input_format_of("text/plain"), -1);
  assert_int_equal(job_input_format_of("application/jsonx"), -1);
}

static void test_chunk_plan(void **state) {
  (void)state;
  assert_int_equal(jobs_chunk_size(0, 64), 64);       /* the model's batch */
  assert_int_equal(jobs_chunk_size(0, 5000), JOBS_MAX_CHUNK);
  assert_int_equal(jobs_chunk_size(10, 64), 10);      /* configured, within the model's */
  assert_int_equal(jobs_chunk_size(100, 64), 64);
  assert_int_equal(jobs_chunk_size(100, 0), 1);       /* no batching: a record a request */
  assert_int_equal(jobs_chunk_count(100000, 1000), 100);
  assert_int_equal(jobs_chunk_count(100001, 1000), 101);
  assert_int_equal(jobs_chunk_count(0, 1000), 0);
  assert_int_equal(jobs_chunk_count(1, 1000), 1);
}

static void test_result_lines(void **state) {
  (void)state;
  char *l = jobs_result_line(JOB_KIND_BATCH, "batch_x", 7, NULL, true, "{\"label\":\"stay\",\"score\":0.5}");
  assert_string_equal(l, "{\"index\":7,\"result\":{\"label\":\"stay\",\"score\":0.5}}");
  free(l);
  l = jobs_result_line(JOB_KIND_BATCH, "batch_x", 8, NULL, false, "{\"error\":\"bad age\",\"errors\":[]}");
  assert_string_equal(l, "{\"index\":8,\"error\":\"bad age\",\"errors\":[]}");
  free(l);
  l = jobs_result_line(JOB_KIND_OPENAI, "batch_x", 2, "c2", true, "{\"label\":\"churn\"}");
  json_t *v = json_loads(l, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(v, "custom_id")), "c2");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "response"), "status_code")), 200);
  assert_true(json_is_null(json_object_get(v, "error")));
  json_decref(v);
  free(l);
}

static void results_count(void *user, int64_t index, const char *tag, bool ok, const char *body) {
  (void)tag;
  (void)body;
  int *n = user;
  assert_int_equal(index, *n);
  assert_true(ok);
  (*n)++;
}

/* A chunk commits once: the second commit of the same chunk writes nothing; an idempotency
 * key holds one job per owner; an upload never committed is gone after a reopen. */
static void test_store(void **state) {
  (void)state;
  char path[] = "/tmp/inferd-test-jobs-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  job_store *s;
  inferd_status st = job_store_sqlite_open(path, &s);
  assert_true(status_is_ok(&st));
  job_info a = {.kind = JOB_KIND_BATCH, .created_ms = 1};
  snprintf(a.id, sizeof a.id, "batch_a");
  snprintf(a.owner, sizeof a.owner, "anonymous");
  snprintf(a.model, sizeof a.model, "m");
  snprintf(a.idempotency_key, sizeof a.idempotency_key, "k");
  assert_int_equal(s->ops->create(s, &a).code, INFERD_OK);
  job_record recs[4] = {{"{}", 2, NULL}, {"{}", 2, NULL}, {"{}", 2, NULL}, {"{}", 2, NULL}};
  st = s->ops->append(s, "batch_a", 0, recs, 4);
  assert_true(status_is_ok(&st));
  job_info got_job;
  assert_int_equal(s->ops->get(s, "batch_a", &got_job).code, INFERD_NOT_FOUND); /* still uploading */
  a.total = 4;
  bool taken = true;
  st = s->ops->commit_upload(s, &a, &taken);
  assert_true(status_is_ok(&st) && !taken);
  job_info b = a;
  snprintf(b.id, sizeof b.id, "batch_b");
  st = s->ops->create(s, &b);
  assert_true(status_is_ok(&st));
  st = s->ops->commit_upload(s, &b, &taken);
  assert_true(status_is_ok(&st) && taken); /* same owner, same key */
  st = s->ops->find_idempotent(s, "anonymous", "k", &got_job);
  assert_true(status_is_ok(&st));
  assert_string_equal(got_job.id, "batch_a");
  st = s->ops->start(s, "batch_a", 2, 5);
  assert_true(status_is_ok(&st));
  job_result res[2] = {{true, "{\"v\":1}"}, {true, "{\"v\":2}"}};
  bool dup = true;
  st = s->ops->commit_chunk(s, "batch_a", 1, 2, res, 2, &dup);
  assert_true(status_is_ok(&st) && !dup);
  st = s->ops->commit_chunk(s, "batch_a", 1, 2, res, 2, &dup);
  assert_true(status_is_ok(&st) && dup);
  st = s->ops->commit_chunk(s, "batch_a", 0, 0, res, 2, &dup);
  assert_true(status_is_ok(&st) && !dup);
  st = s->ops->get(s, "batch_a", &got_job);
  assert_true(status_is_ok(&st));
  assert_int_equal(got_job.completed, 4);
  assert_int_equal(got_job.chunk_records, 2);
  int n = 0;
  st = s->ops->results(s, "batch_a", 0, 100, results_count, &n);
  assert_true(status_is_ok(&st));
  assert_int_equal(n, 4);
  s->ops->close(s);
  st = job_store_sqlite_open(path, &s); /* batch_b, never committed, is dropped at open */
  assert_true(status_is_ok(&st));
  assert_int_equal(s->ops->get(s, "batch_b", &got_job).code, INFERD_NOT_FOUND);
  assert_int_equal(s->ops->append(s, "batch_b", 0, recs, 1).code, INFERD_NOT_FOUND);
  assert_int_equal(s->ops->finish(s, "batch_a", JOB_COMPLETED, NULL, 9).code, INFERD_OK);
  assert_int_equal(s->ops->finish(s, "batch_a", JOB_CANCELLED, NULL, 9).code, INFERD_INVALID_ARGUMENT);
  s->ops->close(s);
  char side[64];
  unlink(path);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

static void queue_job(job_store *s, const char *id, bool low) {
  job_info j = {.kind = JOB_KIND_BATCH, .created_ms = 1, .low_priority = low, .total = 1};
  snprintf(j.id, sizeof j.id, "%s", id);
  snprintf(j.owner, sizeof j.owner, "anonymous");
  snprintf(j.model, sizeof j.model, "m");
  assert_int_equal(s->ops->create(s, &j).code, INFERD_OK);
  job_record rec = {"{}", 2, NULL};
  assert_int_equal(s->ops->append(s, id, 0, &rec, 1).code, INFERD_OK);
  bool taken = false;
  assert_int_equal(s->ops->commit_upload(s, &j, &taken).code, INFERD_OK);
}

typedef struct reader_arg {
  job_store *s;
  int64_t completed;
  inferd_status st;
} reader_arg;

static void *read_elsewhere(void *arg) {
  reader_arg *r = arg;
  job_info j;
  r->st = r->s->ops->get(r->s, "batch_n", &j);
  r->completed = j.completed;
  return NULL;
}

/* The claim order the executor's pre-emption relies on: normal before low, and within a
 * priority an interrupted (processing) job before a queued one, even an older queued one;
 * normal_waiting sees a queued normal job; another thread's reads (its own connection) see
 * what was committed. */
static void test_store_priorities(void **state) {
  (void)state;
  char path[] = "/tmp/inferd-test-jobs-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  job_store *s;
  assert_int_equal(job_store_sqlite_open(path, &s).code, INFERD_OK);
  queue_job(s, "batch_l_old", true);
  queue_job(s, "batch_l", true);
  assert_int_equal(s->ops->start(s, "batch_l", 1, 5).code, INFERD_OK); /* the running low job */
  bool waiting = true;
  assert_int_equal(s->ops->normal_waiting(s, &waiting).code, INFERD_OK);
  assert_false(waiting);
  queue_job(s, "batch_n", false);
  assert_int_equal(s->ops->normal_waiting(s, &waiting).code, INFERD_OK);
  assert_true(waiting);
  job_info got;
  assert_int_equal(s->ops->claim(s, NULL, 0, &got).code, INFERD_OK);
  assert_string_equal(got.id, "batch_n");
  assert_int_equal(s->ops->start(s, "batch_n", 1, 6).code, INFERD_OK);
  assert_int_equal(s->ops->normal_waiting(s, &waiting).code, INFERD_OK);
  assert_false(waiting); /* processing, no longer queued */
  job_result res = {true, "{}"};
  bool dup = true;
  assert_int_equal(s->ops->commit_chunk(s, "batch_n", 0, 0, &res, 1, &dup).code, INFERD_OK);
  reader_arg ra = {.s = s};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, read_elsewhere, &ra), 0);
  pthread_join(t, NULL);
  assert_int_equal(ra.st.code, INFERD_OK);
  assert_int_equal(ra.completed, 1);
  assert_int_equal(s->ops->finish(s, "batch_n", JOB_COMPLETED, NULL, 7).code, INFERD_OK);
  assert_int_equal(s->ops->claim(s, NULL, 0, &got).code, INFERD_OK);
  assert_string_equal(got.id, "batch_l"); /* resumed before the older queued low job */
  const char *skip[] = {"batch_l"};
  assert_int_equal(s->ops->claim(s, skip, 1, &got).code, INFERD_OK);
  assert_string_equal(got.id, "batch_l_old");
  s->ops->close(s);
  char side[64];
  unlink(path);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jsonl_any_split), cmocka_unit_test(test_jsonl_errors_name_the_line),
      cmocka_unit_test(test_csv),             cmocka_unit_test(test_json_form),
      cmocka_unit_test(test_format_of),       cmocka_unit_test(test_chunk_plan),
      cmocka_unit_test(test_result_lines),    cmocka_unit_test(test_store), cmocka_unit_test(test_store_priorities),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
