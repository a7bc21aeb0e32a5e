#include "core/repository.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/log.h"

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A version folder's name: a positive decimal integer without leading zeros or sign. */
static bool parse_version(const char *s, int64_t *out) {
  if (*s < '1' || *s > '9') return false;
  int64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (*p - '0');
  }
  *out = v;
  return true;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int cmp_model(const void *a, const void *b) {
  return strcmp((*(model *const *)a)->name, (*(model *const *)b)->name);
}

static inferd_status open_model(const char *root, const char *name, model **out) {
  char path[4096];
  model *m = calloc(1, sizeof *m);
  if (m == NULL || (m->name = strdup(name)) == NULL) {
    free(m);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  snprintf(path, sizeof path, "%s/%s/config.json", root, name);
  inferd_status st = model_config_load(path, &m->config);
  if (!status_is_ok(&st)) {
    snprintf(m->config_error, sizeof m->config_error, "%s", st.msg);
    log_msg(LOG_ERROR, name, "%s", st.msg);
    st = model_config_default(&m->config);
    if (!status_is_ok(&st)) {
      model_destroy(m);
      return st;
    }
  }

  snprintf(path, sizeof path, "%s/%s", root, name);
  DIR *d = opendir(path);
  int64_t *found = NULL;
  size_t n_found = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    int64_t v;
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/%s", path, e->d_name);
    if (!parse_version(e->d_name, &v) || !is_dir(vpath)) continue;
    int64_t *nf = realloc(found, (n_found + 1) * sizeof *found);
    if (nf == NULL) break;
    found = nf;
    found[n_found++] = v;
  }
  if (d) closedir(d);
  qsort(found, n_found, sizeof *found, cmp_i64);

  const backend_ops *backend = backend_find(m->config->backend);
  m->versions = calloc(n_found + 1, sizeof *m->versions);
  for (size_t i = 0; m->versions && i < n_found; i++) {
    if (!model_config_serves_version(m->config, found, n_found, found[i])) continue;
    model_version *mv = calloc(1, sizeof *mv);
    if (mv == NULL) break;
    mv->model = m;
    mv->version = found[i];
    snprintf(mv->version_str, sizeof mv->version_str, "%lld", (long long)found[i]);
    snprintf(mv->path, sizeof mv->path, "%s/%s/%lld/%s", root, name, (long long)found[i],
             backend ? backend->model_filename : "model.onnx");
    atomic_init(&mv->state, MODEL_LOADING);
    stats_init(&mv->stats);
    m->versions[m->n_versions++] = mv;
  }
  if (m->config->policy == POLICY_SPECIFIC)
    for (size_t i = 0; i < m->config->n_specific_versions; i++)
      if (model_find_version(m, m->config->specific_versions[i]) == NULL)
        log_msg(LOG_WARN, name, "version_policy names version %lld, which has no folder",
                (long long)m->config->specific_versions[i]);
  if (m->n_versions == 0) log_msg(LOG_WARN, name, "no version folders (expected %s/<version>/model.onnx)", path);
  free(found);
  *out = m;
  return status_ok();
}

inferd_status repo_open(const char *root, repository **out) {
  DIR *d = opendir(root);
  if (d == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "cannot read model repository '%s': %s", root, strerror(errno));
  repository *repo = calloc(1, sizeof *repo);
  if (repo == NULL || (repo->root = strdup(root)) == NULL) {
    free(repo);
    closedir(d);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  struct dirent *e;
  inferd_status st = status_ok();
  while ((e = readdir(d)) != NULL && status_is_ok(&st)) {
    char path[4096];
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", root, e->d_name);
    if (!is_dir(path)) continue;
    model *m = NULL;
    st = open_model(root, e->d_name, &m);
    if (!status_is_ok(&st)) break;
    model **nm = realloc(repo->models, (repo->n_models + 1) * sizeof *nm);
    if (nm == NULL) {
      model_destroy(m);
      st = status_make(INFERD_INTERNAL, "out of memory");
      break;
    }
    repo->models = nm;
    repo->models[repo->n_models++] = m;
  }
  closedir(d);
  if (!status_is_ok(&st)) {
    repo_destroy(repo);
    return st;
  }
  if (repo->n_models) qsort(repo->models, repo->n_models, sizeof *repo->models, cmp_model);
  *out = repo;
  return st;
}

void repo_load_all(repository *repo) {
  for (size_t i = 0; i < repo->n_models; i++)
    for (size_t j = 0; j < repo->models[i]->n_versions; j++)
      model_version_load(repo->models[i]->versions[j]);
}

void repo_destroy(repository *repo) {
  if (repo == NULL) return;
  for (size_t i = 0; i < repo->n_models; i++) model_destroy(repo->models[i]);
  free(repo->models);
  free(repo->root);
  free(repo);
}

model *repo_find_model(const repository *repo, const char *name) {
  size_t lo = 0, hi = repo->n_models;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(repo->models[mid]->name, name);
    if (c == 0) return repo->models[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

model_version *model_find_version(const model *m, int64_t version) {
  for (size_t i = 0; i < m->n_versions; i++)
    if (m->versions[i]->version == version) return m->versions[i];
  return NULL;
}

model_version *model_default_version(const model *m) {
  for (size_t i = m->n_versions; i-- > 0;)
    if (model_version_state(m->versions[i]) == MODEL_READY) return m->versions[i];
  return m->n_versions ? m->versions[m->n_versions - 1] : NULL;
}

bool repo_all_ready(const repository *repo, char *why, size_t why_len) {
  for (size_t i = 0; i < repo->n_models; i++) {
    const model *m = repo->models[i];
    for (size_t j = 0; j < m->n_versions; j++) {
      model_state s = model_version_state(m->versions[j]);
      if (s == MODEL_READY) continue;
      if (why)
        snprintf(why, why_len, "model '%s' version %lld is %s%s%s", m->name,
                 (long long)m->versions[j]->version, model_state_name(s),
                 s == MODEL_UNAVAILABLE ? ": " : "", s == MODEL_UNAVAILABLE ? m->versions[j]->reason : "");
      return false;
    }
  }
  return true;
}

inferd_status repo_resolve(const repository *repo, const char *name, const char *version,
                           model_version **out) {
  model *m = repo_find_model(repo, name);
  if (m == NULL) return status_make(INFERD_NOT_FOUND, "model '%s' not found", name);
  model_version *mv;
  if (version == NULL || *version == '\0') {
    mv = model_default_version(m);
    if (mv == NULL) return status_make(INFERD_NOT_FOUND, "model '%s' has no versions", name);
  } else {
    int64_t v;
    if (!parse_version(version, &v))
      return status_make(INFERD_NOT_FOUND, "model '%s' has no version '%s' (versions are positive integers)", name, version);
    mv = model_find_version(m, v);
    if (mv == NULL) return status_make(INFERD_NOT_FOUND, "model '%s' version %s not found", name, version);
  }
  *out = mv;
  return status_ok();
}
