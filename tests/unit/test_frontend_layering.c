/* The layering rule of the request path, checked on the source: nothing under src/frontends/
 * reaches the scheduler, creates an infer request (both are core/serve's), or indexes the
 * repository's arrays (listings use repo_snapshot_model / repo_model_version_at). Runs from the
 * source tree (ctest's working directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

typedef struct rule {
  const char *pattern; /* POSIX extended */
  const char *why;
} rule;

static const rule rules[] = {
    {"(^|[^A-Za-z0-9_])sched_[a-z_]+[[:space:]]*\\(", "calls the scheduler (hand requests to serve_submit)"},
    {"->sched([^A-Za-z0-9_]|$)", "uses the scheduler (app->sched is core/serve's)"},
    {"#include[[:space:]]*\"core/scheduler\\.h\"", "includes the scheduler"},
    {"(^|[^A-Za-z0-9_])infer_request_create[[:space:]]*\\(", "creates an infer request (serve_submit does)"},
    {"(->|\\.)(models|versions)[[:space:]]*\\[", "indexes the repository's arrays (use repo_snapshot_model, repo_model_version_at)"},
};
#define N_RULES (sizeof rules / sizeof rules[0])

static regex_t compiled[N_RULES];

static int setup(void **state) {
  (void)state;
  for (size_t i = 0; i < N_RULES; i++)
    if (regcomp(&compiled[i], rules[i].pattern, REG_EXTENDED | REG_NOSUB) != 0) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < N_RULES; i++) regfree(&compiled[i]);
  return 0;
}

/* The rule a line breaks, or -1. */
static int broken_rule(const char *line) {
  for (size_t i = 0; i < N_RULES; i++)
    if (regexec(&compiled[i], line, 0, NULL, 0) == 0) return (int)i;
  return -1;
}

/* The patterns catch what they are for, and not the code that is allowed. */
static void test_rules_catch_forbidden_code(void **state) {
  (void)state;
  static const char *const bad[] = {
      "  sched_submit(c->app->sched, req);",
      "sched_fail_queued (s, mv, msg);",
      "  scheduler *s = c->app->sched;",
      "#include \"core/scheduler.h\"",
      "  infer_request *req = infer_request_create(mv);",
      "    const repo_model *m = &snap->models[i];",
      "  model_version *mv = m->versions[j];",
      "  name = repo->models[0].name;",
  };
  static const char *const good[] = {
      "  st = serve_submit(c->app->serve, &sr);",
      "  const repo_model *m = repo_snapshot_model(snap, i);",
      "  model_version *mv = repo_model_version_at(m, j);",
      "  for (size_t i = 0; i < cfg->n_specific_versions; i++) versions[i] = cfg->specific_versions[i];",
      "  r.versions = versions;",
      "  int64_t deadline = c->deadline_ns;",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (broken_rule(bad[i]) < 0) fail_msg("no rule catches: %s", bad[i]);
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (broken_rule(good[i]) >= 0) fail_msg("rule '%s' catches allowed code: %s", rules[broken_rule(good[i])].why, good[i]);
}

static int scan_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[4096];
  int found = 0, n = 0;
  while (fgets(line, sizeof line, f)) {
    n++;
    int r = broken_rule(line);
    if (r >= 0) {
      fprintf(stderr, "%s:%d %s:\n  %s", path, n, rules[r].why, line);
      found++;
    }
  }
  fclose(f);
  return found;
}

static int scan_dir(const char *dir, int *files) {
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      found += scan_dir(path, files);
    } else {
      size_t len = strlen(path);
      if (len > 2 && (strcmp(path + len - 2, ".c") == 0 || strcmp(path + len - 2, ".h") == 0)) {
        (*files)++;
        found += scan_file(path);
      }
    }
  }
  closedir(d);
  return found;
}

static void test_frontends_go_through_serve(void **state) {
  (void)state;
  int files = 0;
  int found = scan_dir("src/frontends", &files);
  if (files == 0) fail_msg("no source under src/frontends (run from the source tree)");
  if (found) fail_msg("%d line(s) under src/frontends break the request path's layering (above)", found);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rules_catch_forbidden_code),
      cmocka_unit_test(test_frontends_go_through_serve),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
