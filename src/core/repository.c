/* The live model repository: the control thread (scans, loads, reloads side by side, drains and
 * frees unloaded versions) and the snapshots readers take. */
#include "core/repository.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/infer.h"
#include "core/scheduler.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/monotime.h"

/* the reason of a model found but not scanned yet (see rescan) */
#define NOT_SCANNED_YET "waiting for its folder to be scanned"

/* ---- the pure parts ---- */

size_t repo_policy_select(const model_config *cfg, const int64_t *found, size_t n, int64_t *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (model_config_serves_version(cfg, found, n, found[i])) out[k++] = found[i];
  return k;
}

static bool sig_eq(const repo_file_sig *a, const repo_file_sig *b) {
  return a->mtime_ns == b->mtime_ns && a->size == b->size && a->ino == b->ino;
}

size_t repo_plan(const int64_t *cur, const repo_file_sig *cur_sig, size_t n_cur, const int64_t *want,
                 const repo_file_sig *want_sig, size_t n_want, bool config_changed, repo_plan_item *out) {
  size_t i = 0, j = 0, k = 0;
  while (i < n_cur || j < n_want) {
    if (j == n_want || (i < n_cur && cur[i] < want[j])) {
      out[k++] = (repo_plan_item){cur[i++], REPO_REMOVE};
    } else if (i == n_cur || want[j] < cur[i]) {
      out[k++] = (repo_plan_item){want[j++], REPO_ADD};
    } else {
      bool changed = config_changed || !sig_eq(&cur_sig[i], &want_sig[j]);
      out[k++] = (repo_plan_item){cur[i], changed ? REPO_RELOAD : REPO_KEEP};
      i++;
      j++;
    }
  }
  return k;
}

/* ---- state ---- */

/* A model as the control thread keeps it: what snapshots show, plus what rescans compare. */
typedef struct ctl_model {
  repo_model pub;
  repo_file_sig *sigs; /* per version: the model file as its last load attempt saw it */
  repo_file_sig cfg_sig;
  bool cfg_seen;
  char *override; /* owned: a config given to the load API, used instead of config.json */
  bool override_changed;
  bool wanted;
  bool present; /* the folder exists (rescan bookkeeping) */
} ctl_model;

typedef struct retired {
  model_version *mv;
  int64_t deadline_ns;
  bool queue_failed;
  struct retired *next;
} retired;

typedef enum { OP_LOAD, OP_UNLOAD } op_kind;
typedef struct repo_op {
  op_kind kind;
  char *name;
  char *config; /* owned, may be NULL */
  repo_done_fn done;
  void *user;
  struct repo_op *next;
} repo_op;

struct repository {
  char *root;
  repo_control_mode mode;
  int poll_secs;
  char **load_models;
  size_t n_load_models;
  int drain_timeout_ms;
  scheduler *sched;

  pthread_mutex_t snap_mu; /* held only to swap or take a reference on `current` */
  repo_snapshot *current;
  atomic_bool initial_done;

  pthread_mutex_t mu; /* the control thread's inbox */
  pthread_cond_t cv;
  repo_op *ops, *ops_tail;
  bool rescan_requested, stopping;
  pthread_t thread;
  bool thread_started;

  /* the control thread's alone */
  ctl_model *models; /* sorted by name */
  size_t n_models;
  retired *retired;
};

static repo_file_sig file_sig(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return (repo_file_sig){0, 0, 0};
  return (repo_file_sig){(int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, (int64_t)st.st_size,
                         (int64_t)st.st_ino};
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

/* ---- snapshots ---- */

static void repo_model_clear(repo_model *m) {
  for (size_t j = 0; j < m->n_versions; j++) {
    version_release(m->versions[j]);
    if (m->notes) free(m->notes[j]);
  }
  free(m->versions);
  free(m->notes);
  model_release(m->def);
  free(m->name);
  memset(m, 0, sizeof *m);
}

void repo_snapshot_release(repo_snapshot *s) {
  if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  for (size_t i = 0; i < s->n_models; i++) repo_model_clear(&s->models[i]);
  free(s->models);
  free(s);
}

repo_snapshot *repo_snapshot_acquire(repository *repo) {
  pthread_mutex_lock(&repo->snap_mu);
  repo_snapshot *s = repo->current;
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&repo->snap_mu);
  return s;
}

/* A copy of what the control thread holds, with references of its own. */
static bool copy_model(const repo_model *src, repo_model *dst) {
  *dst = (repo_model){0};
  dst->name = strdup(src->name);
  dst->versions = calloc(src->n_versions + 1, sizeof *dst->versions);
  dst->notes = calloc(src->n_versions + 1, sizeof *dst->notes);
  if (dst->name == NULL || dst->versions == NULL || dst->notes == NULL) {
    free(dst->name);
    free(dst->versions);
    free(dst->notes);
    return false;
  }
  if (src->def) model_retain(src->def);
  dst->def = src->def;
  for (size_t j = 0; j < src->n_versions; j++) {
    version_retain(src->versions[j]);
    dst->versions[j] = src->versions[j];
    if (src->notes[j]) dst->notes[j] = strdup(src->notes[j]);
  }
  dst->n_versions = src->n_versions;
  memcpy(dst->reason, src->reason, sizeof dst->reason);
  dst->requested = src->requested;
  dst->counts_for_ready = src->counts_for_ready;
  return true;
}

/* Publishes the control thread's state as the new current snapshot. On out of memory the old
 * one stays (readers see slightly stale state, never a broken one). */
static void publish(repository *r) {
  repo_snapshot *s = calloc(1, sizeof *s);
  if (s == NULL) return;
  atomic_init(&s->refs, 1);
  s->models = calloc(r->n_models + 1, sizeof *s->models);
  for (size_t i = 0; s->models && i < r->n_models; i++) {
    if (!copy_model(&r->models[i].pub, &s->models[s->n_models])) break;
    s->n_models++;
  }
  if (s->models == NULL || s->n_models != r->n_models) {
    repo_snapshot_release(s);
    return;
  }
  pthread_mutex_lock(&r->snap_mu);
  repo_snapshot *old = r->current;
  r->current = s;
  pthread_mutex_unlock(&r->snap_mu);
  repo_snapshot_release(old);
}

const repo_model *repo_snapshot_find(const repo_snapshot *s, const char *name) {
  size_t lo = 0, hi = s->n_models;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(s->models[mid].name, name);
    if (c == 0) return &s->models[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

model_version *repo_model_find_version(const repo_model *m, int64_t version) {
  for (size_t i = 0; i < m->n_versions; i++)
    if (m->versions[i]->version == version) return m->versions[i];
  return NULL;
}

model_version *repo_model_default_version(const repo_model *m) {
  for (size_t i = m->n_versions; i-- > 0;)
    if (model_version_state(m->versions[i]) == MODEL_READY) return m->versions[i];
  return m->n_versions ? m->versions[m->n_versions - 1] : NULL;
}

inferd_status repo_model_version(const repo_model *m, const char *version, model_version **out) {
  int64_t v;
  if (!parse_version(version, &v))
    return status_make(INFERD_NOT_FOUND, "model '%s' has no version '%s' (versions are positive integers)", m->name, version);
  if ((*out = repo_model_find_version(m, v)) == NULL)
    return status_make(INFERD_NOT_FOUND, "model '%s' version %s not found", m->name, version);
  return status_ok();
}

static inferd_status not_ready(const model_version *mv) {
  if (model_version_state(mv) == MODEL_LOADING)
    return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is still loading", mv->model->name, mv->version_str);
  return status_make(INFERD_UNAVAILABLE, "model '%s' version %s is not ready: %s", mv->model->name, mv->version_str,
                     mv->reason);
}

inferd_status repo_acquire(repository *repo, const char *name, const char *version, repo_acquire_mode mode,
                           model_version **out) {
  inferd_status st = status_ok();
  model_version *mv = NULL;
  pthread_mutex_lock(&repo->snap_mu);
  const repo_model *m = repo_snapshot_find(repo->current, name);
  if (m == NULL) {
    st = status_make(INFERD_NOT_FOUND, "model '%s' not found", name);
  } else if (version == NULL || *version == '\0') {
    mv = repo_model_default_version(m);
    if (mv == NULL)
      st = m->reason[0] ? status_make(INFERD_UNAVAILABLE, "model '%s' is not loaded: %s", name, m->reason)
                        : status_make(INFERD_NOT_FOUND, "model '%s' has no versions", name);
  } else {
    st = repo_model_version(m, version, &mv);
  }
  if (status_is_ok(&st) && mode == REPO_READY && model_version_state(mv) != MODEL_READY) st = not_ready(mv);
  if (status_is_ok(&st)) version_retain(mv);
  pthread_mutex_unlock(&repo->snap_mu);
  if (status_is_ok(&st)) *out = mv;
  return st;
}

bool repo_started(repository *repo) { return atomic_load(&repo->initial_done); }

bool repo_ready(repository *repo, char *why, size_t why_len) {
  if (!atomic_load(&repo->initial_done)) {
    if (why) snprintf(why, why_len, "models are loading");
    return false;
  }
  repo_snapshot *s = repo_snapshot_acquire(repo);
  bool ready = true;
  for (size_t i = 0; ready && i < s->n_models; i++) {
    const repo_model *m = &s->models[i];
    if (!m->requested || m->n_versions == 0) continue;
    model_version *mv = repo_model_default_version(m);
    model_state st = model_version_state(mv);
    /* after start-up, a model loading or failing for the first time (a new folder, an API load)
     * does not take the server out of rotation: only the models it was serving count */
    if (st == MODEL_READY || !m->counts_for_ready) continue;
    ready = false;
    if (why)
      snprintf(why, why_len, "model '%s' version %lld is %s%s%s", m->name, (long long)mv->version, model_state_name(st),
               st == MODEL_UNAVAILABLE ? ": " : "", st == MODEL_UNAVAILABLE ? mv->reason : "");
  }
  repo_snapshot_release(s);
  return ready;
}

const char *repo_root(const repository *repo) { return repo->root; }

/* ---- the control thread: models ---- */

static void set_note(ctl_model *c, size_t j, const char *fmt, const char *arg) {
  free(c->pub.notes[j]);
  c->pub.notes[j] = NULL;
  if (fmt) {
    char buf[700];
    snprintf(buf, sizeof buf, fmt, arg);
    c->pub.notes[j] = strdup(buf);
  }
}

static void retire(repository *r, model_version *mv) {
  retired *t = calloc(1, sizeof *t);
  if (t == NULL) { /* cannot track it: leak it rather than free it under a reader */
    log_msg(LOG_ERROR, mv->model->name, "out of memory retiring version %s", mv->version_str);
    return;
  }
  t->mv = mv;
  t->deadline_ns = monotime_ns() + (int64_t)r->drain_timeout_ms * 1000000;
  t->next = r->retired;
  r->retired = t;
  log_msg(LOG_INFO, mv->model->name, "version %s: no new requests; draining", mv->version_str);
}

/* Frees the retired versions nothing holds any more; fails what is still queued for those
 * past their drain timeout. Returns true while some remain. */
static bool reap(repository *r) {
  int64_t now = monotime_ns();
  retired **pp = &r->retired;
  while (*pp) {
    retired *t = *pp;
    if (version_refs(t->mv) == 1) {
      *pp = t->next;
      log_msg(LOG_INFO, t->mv->model->name, "version %s unloaded", t->mv->version_str);
      if (r->sched) sched_forget_version(r->sched, t->mv);
      model_version_free(t->mv);
      free(t);
      continue;
    }
    if (!t->queue_failed && now >= t->deadline_ns) {
      t->queue_failed = true;
      if (r->sched)
        sched_fail_queued(r->sched, t->mv, "the model version was unloaded before the request could run");
    }
    pp = &t->next;
  }
  return r->retired != NULL;
}

/* Removes version j from the model (it keeps serving requests it already has). */
static void remove_version(repository *r, ctl_model *c, size_t j) {
  model_version *mv = c->pub.versions[j];
  free(c->pub.notes[j]);
  memmove(&c->pub.versions[j], &c->pub.versions[j + 1], (c->pub.n_versions - j - 1) * sizeof *c->pub.versions);
  memmove(&c->pub.notes[j], &c->pub.notes[j + 1], (c->pub.n_versions - j - 1) * sizeof *c->pub.notes);
  memmove(&c->sigs[j], &c->sigs[j + 1], (c->pub.n_versions - j - 1) * sizeof *c->sigs);
  c->pub.n_versions--;
  retire(r, mv);
}

static void remove_all_versions(repository *r, ctl_model *c) {
  while (c->pub.n_versions) remove_version(r, c, c->pub.n_versions - 1);
}

static bool insert_version(ctl_model *c, model_version *mv, repo_file_sig sig) {
  size_t n = c->pub.n_versions;
  model_version **v = realloc(c->pub.versions, (n + 1) * sizeof *v);
  if (v) c->pub.versions = v;
  char **notes = realloc(c->pub.notes, (n + 1) * sizeof *notes);
  if (notes) c->pub.notes = notes;
  repo_file_sig *sigs = realloc(c->sigs, (n + 1) * sizeof *sigs);
  if (sigs) c->sigs = sigs;
  if (v == NULL || notes == NULL || sigs == NULL) return false;
  size_t j = 0;
  while (j < n && v[j]->version < mv->version) j++;
  memmove(&v[j + 1], &v[j], (n - j) * sizeof *v);
  memmove(&notes[j + 1], &notes[j], (n - j) * sizeof *notes);
  memmove(&sigs[j + 1], &sigs[j], (n - j) * sizeof *sigs);
  v[j] = mv;
  notes[j] = NULL;
  sigs[j] = sig;
  c->pub.n_versions = n + 1;
  return true;
}

static void version_path(const repository *r, const ctl_model *c, int64_t v, char *out, size_t len) {
  const backend_ops *b = backend_find(c->pub.def->config->backend);
  snprintf(out, len, "%s/%s/%lld/%s", r->root, c->pub.name, (long long)v, b ? b->model_filename : "model.onnx");
}

/* The config this model's next loads use. Returns whether it changed (a new def). A config
 * that cannot be used while versions serve leaves them serving, and says so. */
static bool refresh_config(repository *r, ctl_model *c) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/config.json", r->root, c->pub.name);
  repo_file_sig sig = c->override ? (repo_file_sig){0, 0, 0} : file_sig(path);
  if (c->cfg_seen && sig_eq(&sig, &c->cfg_sig) && !c->override_changed) return false;
  c->cfg_seen = true;
  c->cfg_sig = sig;
  c->override_changed = false;
  model_config *cfg = NULL;
  inferd_status st = c->override ? model_config_parse(c->override, strlen(c->override), &cfg)
                                 : model_config_load(path, &cfg);
  char err[512] = "";
  if (!status_is_ok(&st)) {
    snprintf(err, sizeof err, "%s", st.msg);
    log_msg(LOG_ERROR, c->pub.name, "%s", st.msg);
    bool serving = false;
    for (size_t j = 0; j < c->pub.n_versions; j++) serving |= model_version_state(c->pub.versions[j]) == MODEL_READY;
    if (serving && c->pub.def) {
      snprintf(c->pub.reason, sizeof c->pub.reason, "%s (still serving the versions loaded with the previous config)", err);
      return false;
    }
    st = model_config_default(&cfg);
    if (!status_is_ok(&st)) return false;
  }
  model *def = model_create(c->pub.name, cfg, err);
  if (def == NULL) return false;
  model_release(c->pub.def);
  c->pub.def = def;
  c->pub.reason[0] = '\0';
  return true;
}

/* The version folders, ascending. */
static size_t list_versions(const repository *r, const char *name, int64_t **out) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", r->root, name);
  DIR *d = opendir(path);
  int64_t *found = NULL;
  size_t n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    int64_t v;
    char vpath[4400];
    snprintf(vpath, sizeof vpath, "%s/%s", path, e->d_name);
    if (!parse_version(e->d_name, &v) || !fs_is_dir(vpath)) continue;
    int64_t *nf = realloc(found, (n + 1) * sizeof *found);
    if (nf == NULL) break;
    found = nf;
    found[n++] = v;
  }
  if (d) closedir(d);
  if (n) qsort(found, n, sizeof *found, cmp_i64);
  *out = found;
  return n;
}

static ssize_t find_index(const ctl_model *c, int64_t v) {
  for (size_t j = 0; j < c->pub.n_versions; j++)
    if (c->pub.versions[j]->version == v) return (ssize_t)j;
  return -1;
}

/* Brings one wanted model in line with its folder: the rescan's diff, applied. */
static void sync_model(repository *r, ctl_model *c) {
  bool config_changed = refresh_config(r, c);
  if (c->pub.def == NULL) return; /* out of memory reading the config: try at the next scan */
  int64_t *found = NULL;
  size_t n_found = list_versions(r, c->pub.name, &found);
  int64_t *want = calloc(n_found + 1, sizeof *want);
  repo_file_sig *want_sig = calloc(n_found + 1, sizeof *want_sig);
  int64_t *cur = calloc(c->pub.n_versions + 1, sizeof *cur);
  repo_plan_item *plan = calloc(n_found + c->pub.n_versions + 1, sizeof *plan);
  if (want == NULL || want_sig == NULL || cur == NULL || plan == NULL) goto out;
  size_t n_want = repo_policy_select(c->pub.def->config, found, n_found, want);
  char path[4096];
  for (size_t i = 0; i < n_want; i++) {
    version_path(r, c, want[i], path, sizeof path);
    want_sig[i] = file_sig(path);
  }
  for (size_t j = 0; j < c->pub.n_versions; j++) cur[j] = c->pub.versions[j]->version;
  size_t n_plan = repo_plan(cur, c->sigs, c->pub.n_versions, want, want_sig, n_want, config_changed, plan);
  if (c->pub.def->config->policy == POLICY_SPECIFIC)
    for (size_t i = 0; i < c->pub.def->config->n_specific_versions; i++) {
      int64_t v = c->pub.def->config->specific_versions[i];
      if (bsearch(&v, found, n_found, sizeof *found, cmp_i64) == NULL)
        log_msg(LOG_WARN, c->pub.name, "version_policy names version %lld, which has no folder", (long long)v);
    }
  bool placeholder = strcmp(c->pub.reason, NOT_SCANNED_YET) == 0 || strncmp(c->pub.reason, "no version folders", 18) == 0;
  if (n_found == 0 && (!c->pub.reason[0] || placeholder))
    snprintf(c->pub.reason, sizeof c->pub.reason, "no version folders (expected %s/%s/<version>/model.onnx)", r->root,
             c->pub.name);
  else if (n_found && placeholder)
    c->pub.reason[0] = '\0';

  /* additions and reloads, newest first: the version a default request routes to is ready soonest */
  for (size_t k = n_plan; k-- > 0;) {
    int64_t v = plan[k].version;
    if (plan[k].change != REPO_ADD && plan[k].change != REPO_RELOAD) continue;
    size_t wi = 0;
    while (wi < n_want && want[wi] != v) wi++;
    version_path(r, c, v, path, sizeof path);
    model_version *nv = model_version_create(c->pub.def, v, path);
    if (nv == NULL) continue;
    if (plan[k].change == REPO_ADD) {
      if (!insert_version(c, nv, want_sig[wi])) {
        model_version_free(nv);
        continue;
      }
      publish(r); /* LOADING shows in the index; routing skips it until READY */
      model_version_load(nv);
      publish(r);
      continue;
    }
    /* a reload: the new instance loads and warms beside the serving one, then takes its place */
    log_msg(LOG_INFO, c->pub.name, "version %lld changed: loading the new instance beside the serving one", (long long)v);
    model_version_load(nv);
    ssize_t j = find_index(c, v);
    if (j < 0) { /* cannot happen: only this thread changes the list */
      model_version_free(nv);
      continue;
    }
    model_version *old = c->pub.versions[j];
    c->sigs[j] = want_sig[wi]; /* attempted: a bad file is not retried until it changes again */
    if (model_version_state(nv) == MODEL_READY || model_version_state(old) != MODEL_READY) {
      c->pub.versions[j] = nv;
      set_note(c, (size_t)j, NULL, NULL);
      publish(r);
      retire(r, old);
    } else {
      log_msg(LOG_WARN, c->pub.name, "version %lld: the reload failed; the previous load keeps serving", (long long)v);
      set_note(c, (size_t)j, "reload failed, the previous load keeps serving: %s", nv->reason);
      model_version_free(nv);
      publish(r);
    }
  }
  /* removals last, once what replaces them serves. A version the policy drops (its folder is
   * still there) keeps serving while it is the model's only READY one: the versions that were
   * to replace it failed to load. A deleted folder goes regardless. */
  bool removed = false;
  for (size_t k = 0; k < n_plan; k++) {
    if (plan[k].change != REPO_REMOVE) continue;
    ssize_t j = find_index(c, plan[k].version);
    if (j < 0) continue;
    model_version *mv = c->pub.versions[j];
    size_t others_ready = 0;
    for (size_t i = 0; i < c->pub.n_versions; i++)
      if (i != (size_t)j && model_version_state(c->pub.versions[i]) == MODEL_READY) others_ready++;
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/%s/%s", r->root, c->pub.name, mv->version_str);
    if (model_version_state(mv) == MODEL_READY && others_ready == 0 && fs_is_dir(dir)) {
      if (c->pub.notes[j] == NULL) {
        set_note(c, (size_t)j, "%s", "kept serving: the version_policy no longer selects it, but the versions it selects failed to load");
        removed = true; /* publish the note */
      }
      continue;
    }
    remove_version(r, c, (size_t)j);
    removed = true;
  }
  if (removed) publish(r);
  model_version *def = repo_model_default_version(&c->pub);
  if (c->pub.requested && def && model_version_state(def) == MODEL_READY) c->pub.counts_for_ready = true;
out:
  free(found);
  free(want);
  free(want_sig);
  free(cur);
  free(plan);
}

static bool explicitly_loaded_at_start(const repository *r, const char *name) {
  for (size_t i = 0; i < r->n_load_models; i++)
    if (strcmp(r->load_models[i], "*") == 0 || strcmp(r->load_models[i], name) == 0) return true;
  return false;
}

static int cmp_ctl(const void *a, const void *b) {
  return strcmp(((const ctl_model *)a)->pub.name, ((const ctl_model *)b)->pub.name);
}

static ctl_model *find_ctl(repository *r, const char *name) {
  for (size_t i = 0; i < r->n_models; i++)
    if (strcmp(r->models[i].pub.name, name) == 0) return &r->models[i];
  return NULL;
}

static void ctl_model_free(ctl_model *c) {
  repo_model_clear(&c->pub);
  free(c->sigs);
  free(c->override);
}

static void mark_unwanted(ctl_model *c, const char *why) {
  c->wanted = false;
  c->pub.requested = c->pub.counts_for_ready = false;
  snprintf(c->pub.reason, sizeof c->pub.reason, "%s", why);
}

/* Reads the folder's model list: new folders join (wanted when the mode loads them), gone ones
 * are unloaded; then every wanted model is synced. */
static void rescan(repository *r, bool at_start) {
  DIR *d = opendir(r->root);
  if (d == NULL) {
    log_msg(LOG_ERROR, NULL, "cannot read model repository '%s': %s", r->root, strerror(errno));
    return;
  }
  for (size_t i = 0; i < r->n_models; i++) r->models[i].present = false;
  struct dirent *e;
  bool added = false;
  while ((e = readdir(d)) != NULL) {
    char path[4400];
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", r->root, e->d_name);
    if (!fs_is_dir(path)) continue;
    ctl_model *c = find_ctl(r, e->d_name);
    if (c == NULL) {
      ctl_model *nm = realloc(r->models, (r->n_models + 1) * sizeof *nm);
      if (nm == NULL) break;
      r->models = nm;
      c = &r->models[r->n_models++];
      *c = (ctl_model){0};
      c->pub.name = strdup(e->d_name);
      bool load = r->mode != REPO_CONTROL_EXPLICIT || (at_start && explicitly_loaded_at_start(r, e->d_name));
      c->pub.counts_for_ready = load && at_start;
      c->wanted = c->pub.requested = load;
      if (!load) snprintf(c->pub.reason, sizeof c->pub.reason, "not loaded (explicit model control: load it through the repository API)");
      /* published before its folder is scanned (the index shows every model while the first
       * ones load): say so, rather than "no version folders" */
      else snprintf(c->pub.reason, sizeof c->pub.reason, "%s", NOT_SCANNED_YET);
      added = true;
    }
    c->present = true;
  }
  closedir(d);
  if (added) qsort(r->models, r->n_models, sizeof *r->models, cmp_ctl);
  /* folders gone: their versions drain and unload, the model leaves the index */
  bool gone = false;
  for (size_t i = 0; i < r->n_models;) {
    if (r->models[i].present) {
      i++;
      continue;
    }
    log_msg(LOG_INFO, r->models[i].pub.name, "model folder removed: unloading");
    remove_all_versions(r, &r->models[i]);
    ctl_model_free(&r->models[i]);
    memmove(&r->models[i], &r->models[i + 1], (r->n_models - i - 1) * sizeof *r->models);
    r->n_models--;
    gone = true;
  }
  if (added || gone) publish(r);
  for (size_t i = 0; i < r->n_models; i++) {
    if (!r->models[i].wanted) continue;
    sync_model(r, &r->models[i]);
  }
  publish(r);
}

static void op_load(repository *r, repo_op *op) {
  inferd_status st = status_ok();
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", r->root, op->name);
  if (op->config) { /* a bad config is the caller's mistake: refuse it before touching the model */
    model_config *cfg;
    st = model_config_parse(op->config, strlen(op->config), &cfg);
    if (status_is_ok(&st)) model_config_destroy(cfg);
    else {
      char msg[sizeof st.msg];
      snprintf(msg, sizeof msg, "%s", st.msg);
      st = status_make(INFERD_INVALID_ARGUMENT, "parameters.config: %s", msg);
    }
  }
  if (status_is_ok(&st) && !fs_is_dir(path))
    st = status_make(INFERD_NOT_FOUND, "no model '%s' in the repository (no folder %s)", op->name, path);
  if (status_is_ok(&st)) {
    rescan(r, false); /* the folder list may have changed since the last scan */
    ctl_model *c = find_ctl(r, op->name);
    if (c == NULL) {
      st = status_make(INFERD_NOT_FOUND, "no model '%s' in the repository", op->name);
    } else {
      if (op->config || c->override) {
        free(c->override);
        c->override = op->config;
        op->config = NULL;
        c->override_changed = true;
      }
      c->wanted = c->pub.requested = true;
      c->pub.reason[0] = '\0';
      sync_model(r, c);
      publish(r);
      model_version *mv = repo_model_default_version(&c->pub);
      if (mv == NULL)
        st = status_make(INFERD_UNAVAILABLE, "model '%s' has no version to load: %s", op->name,
                         c->pub.reason[0] ? c->pub.reason : "no version folders");
      else if (model_version_state(mv) != MODEL_READY)
        st = not_ready(mv);
    }
  }
  op->done(st, op->user);
}

static void op_unload(repository *r, repo_op *op) {
  inferd_status st = status_ok();
  ctl_model *c = find_ctl(r, op->name);
  if (c == NULL) {
    st = status_make(INFERD_NOT_FOUND, "model '%s' not found", op->name);
  } else {
    remove_all_versions(r, c);
    free(c->override);
    c->override = NULL;
    c->cfg_seen = false; /* the next load reads config.json afresh */
    mark_unwanted(c, "unloaded through the repository API");
    publish(r);
  }
  op->done(st, op->user);
}

static void op_free(repo_op *op) {
  free(op->name);
  free(op->config);
  free(op);
}

static void *control_main(void *arg) {
  repository *r = arg;
  int64_t t0 = monotime_ns();
  rescan(r, true);
  for (size_t i = 0; i < r->n_load_models; i++)
    if (strcmp(r->load_models[i], "*") != 0 && find_ctl(r, r->load_models[i]) == NULL)
      log_msg(LOG_WARN, NULL, "--load-model %s: no such model folder in %s", r->load_models[i], r->root);
  atomic_store(&r->initial_done, true);
  /* From now on loads and warmups happen beside serving: at a lower priority (Linux nice is
   * per thread, and the threads a session creates inherit it) they take the cores the
   * serving threads leave, so a reload does not show in the serving tail. Start-up loads ran
   * at full speed, since nothing was serving yet. */
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
    log_msg(LOG_WARN, NULL, "could not lower the model-repo thread's priority: %s", strerror(errno));
  char why[512];
  if (repo_ready(r, why, sizeof why))
    log_msg(LOG_INFO, NULL, "all models loaded in %lld ms; ready", (long long)((monotime_ns() - t0) / 1000000));
  else
    log_msg(LOG_WARN, NULL, "models loaded in %lld ms, not ready: %s", (long long)((monotime_ns() - t0) / 1000000), why);
  int64_t next_poll = r->mode == REPO_CONTROL_POLL ? monotime_ns() + (int64_t)r->poll_secs * 1000000000 : 0;
  pthread_mutex_lock(&r->mu);
  while (!r->stopping) {
    if (r->ops) {
      repo_op *op = r->ops;
      r->ops = op->next;
      if (r->ops == NULL) r->ops_tail = NULL;
      pthread_mutex_unlock(&r->mu);
      if (op->kind == OP_LOAD)
        op_load(r, op);
      else
        op_unload(r, op);
      op_free(op);
      reap(r);
      pthread_mutex_lock(&r->mu);
      continue;
    }
    int64_t now = monotime_ns();
    if (r->rescan_requested || (next_poll && now >= next_poll)) {
      r->rescan_requested = false;
      pthread_mutex_unlock(&r->mu);
      rescan(r, false);
      reap(r);
      if (next_poll) next_poll = monotime_ns() + (int64_t)r->poll_secs * 1000000000;
      pthread_mutex_lock(&r->mu);
      continue;
    }
    pthread_mutex_unlock(&r->mu);
    bool draining = reap(r);
    pthread_mutex_lock(&r->mu);
    if (r->stopping || r->ops || r->rescan_requested) continue;
    /* wake for the next poll, or soon while retired versions drain */
    int64_t wake = next_poll;
    if (draining && (wake == 0 || wake > now + 20000000)) wake = now + 20000000;
    if (wake == 0) {
      pthread_cond_wait(&r->cv, &r->mu);
    } else {
      struct timespec ts = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000};
      pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
  }
  /* work asked for while stopping is refused, so every caller hears back */
  while (r->ops) {
    repo_op *op = r->ops;
    r->ops = op->next;
    inferd_status st = status_make(INFERD_UNAVAILABLE, "the server is shutting down");
    op->done(st, op->user);
    op_free(op);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static void post(repository *r, op_kind kind, const char *name, const char *config, repo_done_fn done, void *user) {
  repo_op *op = calloc(1, sizeof *op);
  if (op == NULL || (op->name = strdup(name)) == NULL || (config && (op->config = strdup(config)) == NULL)) {
    if (op) op_free(op);
    inferd_status st = status_make(INFERD_INTERNAL, "out of memory");
    done(st, user);
    return;
  }
  op->kind = kind;
  op->done = done;
  op->user = user;
  pthread_mutex_lock(&r->mu);
  if (r->stopping) {
    pthread_mutex_unlock(&r->mu);
    op_free(op);
    inferd_status st = status_make(INFERD_UNAVAILABLE, "the server is shutting down");
    done(st, user);
    return;
  }
  if (r->ops_tail)
    r->ops_tail->next = op;
  else
    r->ops = op;
  r->ops_tail = op;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

void repo_load_model(repository *repo, const char *name, const char *config_json, repo_done_fn done, void *user) {
  post(repo, OP_LOAD, name, config_json, done, user);
}

void repo_unload_model(repository *repo, const char *name, repo_done_fn done, void *user) {
  post(repo, OP_UNLOAD, name, NULL, done, user);
}

void repo_request_rescan(repository *repo) {
  pthread_mutex_lock(&repo->mu);
  repo->rescan_requested = true;
  pthread_cond_signal(&repo->cv);
  pthread_mutex_unlock(&repo->mu);
}

/* ---- lifetime ---- */

inferd_status repo_open(const repo_options *o, repository **out) {
  DIR *d = opendir(o->root);
  if (d == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "cannot read model repository '%s': %s", o->root, strerror(errno));
  closedir(d);
  repository *r = calloc(1, sizeof *r);
  if (r == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  r->root = strdup(o->root);
  r->mode = o->mode;
  r->poll_secs = o->poll_secs > 0 ? o->poll_secs : 1;
  r->drain_timeout_ms = o->drain_timeout_ms;
  r->sched = o->sched;
  r->load_models = calloc(o->n_load_models + 1, sizeof *r->load_models);
  for (size_t i = 0; r->load_models && i < o->n_load_models; i++) r->load_models[r->n_load_models++] = strdup(o->load_models[i]);
  pthread_mutex_init(&r->snap_mu, NULL);
  pthread_mutex_init(&r->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cv, &ca);
  pthread_condattr_destroy(&ca);
  r->current = calloc(1, sizeof *r->current);
  if (r->root == NULL || r->load_models == NULL || r->current == NULL) {
    repo_destroy(r);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  atomic_init(&r->current->refs, 1);
  if (pthread_create(&r->thread, NULL, control_main, r) != 0) {
    repo_destroy(r);
    return status_make(INFERD_INTERNAL, "cannot start the model repository thread");
  }
  pthread_setname_np(r->thread, "model-repo");
  r->thread_started = true;
  *out = r;
  return status_ok();
}

void repo_stop(repository *repo) {
  if (repo == NULL || !repo->thread_started) return;
  pthread_mutex_lock(&repo->mu);
  repo->stopping = true;
  pthread_cond_signal(&repo->cv);
  pthread_mutex_unlock(&repo->mu);
  pthread_join(repo->thread, NULL);
  repo->thread_started = false;
}

void repo_destroy(repository *repo) {
  if (repo == NULL) return;
  repo_stop(repo);
  /* everything stopped: the snapshot's and the lists' references are the only ones left */
  repo_snapshot_release(repo->current);
  for (size_t i = 0; i < repo->n_models; i++) {
    ctl_model *c = &repo->models[i];
    for (size_t j = 0; j < c->pub.n_versions; j++) {
      model_version_free(c->pub.versions[j]);
      free(c->pub.notes[j]);
      c->pub.notes[j] = NULL;
    }
    c->pub.n_versions = 0;
    ctl_model_free(c);
  }
  free(repo->models);
  while (repo->retired) {
    retired *t = repo->retired;
    repo->retired = t->next;
    model_version_free(t->mv);
    free(t);
  }
  for (size_t i = 0; i < repo->n_load_models; i++) free(repo->load_models[i]);
  free(repo->load_models);
  pthread_mutex_destroy(&repo->snap_mu);
  pthread_mutex_destroy(&repo->mu);
  pthread_cond_destroy(&repo->cv);
  free(repo->root);
  free(repo);
}
