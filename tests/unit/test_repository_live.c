/* The live repository's API on a real folder (without loadable models, so no backend run):
 * routing statuses, snapshots, and unload/load through the control thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/repository.h"

static char root[] = "/tmp/inferd-repo-unit-XXXXXX";

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* m/1 and m/2 hold files that are not models; empty/ has no version folder. */
static int setup(void **state) {
  (void)state;
  if (mkdtemp(root) == NULL) return -1;
  char p[512];
  snprintf(p, sizeof p, "%s/m", root);
  mkdir(p, 0755);
  for (int v = 1; v <= 2; v++) {
    snprintf(p, sizeof p, "%s/m/%d", root, v);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/m/%d/model.onnx", root, v);
    write_file(p, "not a model");
  }
  snprintf(p, sizeof p, "%s/m/config.json", root);
  write_file(p, "{\"version_policy\": {\"all\": true}}");
  snprintf(p, sizeof p, "%s/empty", root);
  mkdir(p, 0755);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) == 0 ? 0 : -1;
}

static void wait_started(repository *r) {
  char why[512];
  for (int i = 0; i < 500; i++) {
    if (repo_ready(r, why, sizeof why) || strcmp(why, "models are loading") != 0) return;
    usleep(10000);
  }
  fail_msg("the first scan did not finish");
}

typedef struct done_box {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  inferd_status st;
} done_box;

static void on_done(inferd_status st, void *user) {
  done_box *b = user;
  pthread_mutex_lock(&b->mu);
  b->st = st;
  b->done = true;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

static inferd_status wait_done(done_box *b) {
  pthread_mutex_lock(&b->mu);
  while (!b->done) pthread_cond_wait(&b->cv, &b->mu);
  b->done = false;
  pthread_mutex_unlock(&b->mu);
  return b->st;
}

static void expect(inferd_status st, inferd_code code, const char *fragment) {
  assert_int_equal(st.code, code);
  if (strstr(st.msg, fragment) == NULL) fail_msg("message '%s' lacks '%s'", st.msg, fragment);
}

static void test_routing_and_control(void **state) {
  (void)state;
  repository *r;
  repo_options o = {.root = root, .mode = REPO_CONTROL_NONE, .drain_timeout_ms = 100};
  inferd_status st = repo_open(&o, &r);
  assert_true(status_is_ok(&st));
  wait_started(r);

  /* the snapshot lists both models, sorted, with the failed versions and their reasons */
  repo_snapshot *s = repo_snapshot_acquire(r);
  assert_int_equal(s->n_models, 2);
  assert_string_equal(s->models[0].name, "empty");
  assert_int_equal(s->models[0].n_versions, 0);
  assert_non_null(strstr(s->models[0].reason, "no version folders"));
  const repo_model *m = repo_snapshot_find(s, "m");
  assert_non_null(m);
  assert_int_equal(m->n_versions, 2);
  assert_int_equal(model_version_state(m->versions[1]), MODEL_UNAVAILABLE);
  assert_true(m->versions[1]->reason[0] != '\0');
  model_version *held = m->versions[1];
  int refs = version_refs(held);

  /* routing: every failure says which */
  model_version *mv = NULL;
  expect(repo_acquire(r, "nope", NULL, REPO_ANY_STATE, &mv), INFERD_NOT_FOUND, "model 'nope' not found");
  expect(repo_acquire(r, "m", "3", REPO_ANY_STATE, &mv), INFERD_NOT_FOUND, "version 3 not found");
  expect(repo_acquire(r, "m", "x1", REPO_ANY_STATE, &mv), INFERD_NOT_FOUND, "positive integers");
  expect(repo_acquire(r, "m", NULL, REPO_READY, &mv), INFERD_UNAVAILABLE, "is not ready");
  expect(repo_acquire(r, "empty", NULL, REPO_ANY_STATE, &mv), INFERD_UNAVAILABLE, "no version folders");
  assert_null(mv);
  /* REPO_ANY_STATE hands out a counted reference to the newest version */
  st = repo_acquire(r, "m", NULL, REPO_ANY_STATE, &mv);
  assert_true(status_is_ok(&st));
  assert_ptr_equal(mv, held);
  assert_int_equal(version_refs(mv), refs + 1);
  version_release(mv);
  assert_int_equal(version_refs(held), refs);

  char why[512];
  assert_false(repo_ready(r, why, sizeof why));
  assert_non_null(strstr(why, "model 'm' version 2 is UNAVAILABLE"));

  /* unload: the new snapshot no longer routes to m; the old one, still held, is unchanged */
  done_box b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, {0}};
  repo_unload_model(r, "m", on_done, &b);
  st = wait_done(&b);
  assert_true(status_is_ok(&st));
  expect(repo_acquire(r, "m", NULL, REPO_ANY_STATE, &mv), INFERD_UNAVAILABLE, "unloaded");
  assert_int_equal(m->n_versions, 2); /* the snapshot taken before is immutable */
  assert_true(repo_ready(r, why, sizeof why)); /* an unloaded model does not count */
  repo_snapshot_release(s);

  repo_unload_model(r, "nope", on_done, &b);
  expect(wait_done(&b), INFERD_NOT_FOUND, "nope");
  repo_load_model(r, "m", "{\"max_batch_sise\": 1}", on_done, &b);
  expect(wait_done(&b), INFERD_INVALID_ARGUMENT, "max_batch_sise");
  repo_load_model(r, "m", NULL, on_done, &b);
  expect(wait_done(&b), INFERD_UNAVAILABLE, "not ready");
  st = repo_acquire(r, "m", "1", REPO_ANY_STATE, &mv);
  assert_true(status_is_ok(&st)); /* listed again, as a new instance that failed to load */
  assert_int_equal(model_version_state(mv), MODEL_UNAVAILABLE);
  version_release(mv);

  repo_destroy(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_routing_and_control, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
