/* `inferd profile --model NAME --repository DIR --data FILE`: reads training data (CSV with a
 * header row, or JSON lines), loads the model as the server would, runs the data through it for
 * the predictions, and writes the version's reference profile (observability/drift_profile.h). */
#include "profile_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/application.h"
#include "app/features.h"
#include "backends/backends.h"
#include "core/app.h"
#include "core/serve.h"
#include "observability/drift_profile.h"
#include "util/log.h"
#include "util/monotime.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: inferd profile --model NAME --repository DIR --data FILE [options]\n\n"
          "Writes DIR/NAME/VERSION/reference_profile.json: per feature a histogram of FILE (numeric\n"
          "features over quantile bins, categorical ones over their categories) and of the model's\n"
          "predictions on it, the reference the server's drift detection compares traffic with.\n\n"
          "  --data FILE       training data: .csv (a header row of feature names) or .jsonl (one\n"
          "                    JSON object of feature values per line); columns or keys that are\n"
          "                    not features (a label) are ignored. For a model without an\n"
          "                    application schema, each row is its input's columns in order\n"
          "  --version V       the version to profile (default: the newest)\n"
          "  --bins N          quantile bins per numeric feature, 2 to %d (10)\n"
          "  --output PATH     where to write (default: in the version's folder)\n"
          "  --no-predictions  profile the features only (no model run)\n",
          DRIFT_MAX_BINS);
}

/* ---- reading the data --------------------------------------------------------------------- */

/* One CSV line into fields (RFC 4180 quotes, "" inside quotes); fields point into line. */
static size_t csv_split(char *line, char **fields, size_t max) {
  size_t n = 0;
  char *p = line;
  for (;;) {
    if (n == max) return n;
    char *out = p, *start = p;
    if (*p == '"') {
      p++;
      for (;;) {
        if (*p == '\0') break;
        if (*p == '"' && p[1] == '"') *out++ = '"', p += 2;
        else if (*p == '"') { p++; break; }
        else *out++ = *p++;
      }
      while (*p && *p != ',') p++;
    } else {
      while (*p && *p != ',') *out++ = *p++;
    }
    char sep = *p;
    *out = '\0';
    fields[n++] = start;
    if (sep != ',') return n;
    p++;
  }
}

static json_t *csv_value(const char *s, const feature_def *d) {
  if (*s == '\0') return NULL; /* missing */
  if (d && (d->type == FEATURE_CATEGORICAL || d->type == FEATURE_STRING)) return json_string(s);
  if (d && d->type == FEATURE_BOOLEAN) {
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0) return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) return json_false();
    return json_string(s);
  }
  char *end;
  double v = strtod(s, &end);
  if (*end != '\0') return json_string(s);
  if (v == floor(v) && fabs(v) < 9007199254740992.0 && !strpbrk(s, ".eE")) return json_integer((json_int_t)v);
  return json_real(v);
}

static void chomp(char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
}

/* The rows as a JSON array: objects (feature -> value) with a schema, arrays of numbers without. */
static inferd_status read_rows(const char *path, const features *f, json_t **out) {
  *out = NULL;
  FILE *in = fopen(path, "r");
  if (in == NULL) return status_make(INFERD_INVALID_ARGUMENT, "--data '%s': %s", path, strerror(errno));
  const char *dot = strrchr(path, '.');
  bool jsonl = dot && (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".json") == 0 || strcmp(dot, ".ndjson") == 0);
  json_t *rows = json_array();
  char *line = NULL, *header = NULL;
  size_t cap = 0, lineno = 0, nh = 0;
  char *names[4096];
  inferd_status st = status_ok();
  while (getline(&line, &cap, in) > 0) {
    lineno++;
    chomp(line);
    if (line[0] == '\0') continue;
    if (jsonl) {
      json_error_t err;
      json_t *v = json_loads(line, 0, &err);
      if (v == NULL || (f ? !json_is_object(v) : !json_is_array(v))) {
        json_decref(v);
        st = status_make(INFERD_INVALID_ARGUMENT, "%s line %zu: expected a JSON %s", path, lineno, f ? "object" : "array");
        break;
      }
      if (f) { /* keys that are not features (a label column) are ignored, as CSV columns are */
        const char *k;
        json_t *x;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, x) {
          if (features_find(f, k) == NULL) json_object_del(v, k);
        }
      }
      json_array_append_new(rows, v);
      continue;
    }
    if (header == NULL) {
      header = strdup(line);
      nh = csv_split(header, names, 4096);
      /* without a schema a first line of numbers is data, not a header */
      char *end;
      if (f == NULL && (strtod(names[0], &end), *end == '\0' && end != names[0])) {
        free(header);
        header = NULL;
        nh = 0;
      } else {
        continue;
      }
    }
    char *fields[4096];
    size_t n = csv_split(line, fields, 4096);
    if (nh && n != nh) {
      st = status_make(INFERD_INVALID_ARGUMENT, "%s line %zu: %zu fields, the header has %zu", path, lineno, n, nh);
      break;
    }
    json_t *row = f ? json_object() : json_array();
    for (size_t i = 0; i < n; i++) {
      if (f) {
        const feature_def *d = features_find(f, names[i]);
        json_t *v = d ? csv_value(fields[i], d) : NULL; /* not a feature (a label column): ignored */
        if (v) json_object_set_new(row, names[i], v);
      } else {
        json_t *v = csv_value(fields[i], NULL);
        json_array_append_new(row, v ? v : json_real(NAN));
      }
    }
    json_array_append_new(rows, row);
  }
  free(line);
  free(header);
  fclose(in);
  if (status_is_ok(&st) && json_array_size(rows) == 0) st = status_make(INFERD_INVALID_ARGUMENT, "%s: no rows", path);
  if (!status_is_ok(&st)) {
    json_decref(rows);
    return st;
  }
  *out = rows;
  return status_ok();
}

/* ---- the features' histograms ---------------------------------------------------------------- */

static double number_of(const json_t *v) {
  if (json_is_number(v)) return json_number_value(v);
  if (json_is_true(v)) return 1;
  if (json_is_false(v)) return 0;
  return NAN;
}

static inferd_status feature_hists(const features *f, const model_version *mv, const json_t *rows, size_t bins,
                                   drift_profile *p) {
  size_t n = json_array_size(rows);
  if (f) {
    p->features = calloc(f->n_defs, sizeof *p->features);
    for (size_t k = 0; k < f->n_defs; k++) {
      const feature_def *d = &f->defs[k];
      if (d->type == FEATURE_STRING) continue; /* free text: no histogram */
      drift_hist *h = &p->features[p->n_features];
      if (d->type == FEATURE_NUMERIC || d->type == FEATURE_INTEGER) {
        double *vals = malloc((n ? n : 1) * sizeof *vals);
        for (size_t i = 0; i < n; i++) vals[i] = number_of(json_object_get(json_array_get(rows, i), d->name));
        inferd_status st = drift_hist_numeric(d->name, vals, n, bins, h);
        free(vals);
        TRY(st);
      } else {
        static const char *const bools[] = {"false", "true"};
        const char *const *cats = d->type == FEATURE_BOOLEAN ? bools : (const char *const *)d->categories;
        size_t nc = d->type == FEATURE_BOOLEAN ? 2 : d->n_categories;
        size_t *idx = malloc((n ? n : 1) * sizeof *idx);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
          const json_t *v = json_object_get(json_array_get(rows, i), d->name);
          if (v == NULL || json_is_null(v)) continue;
          size_t c = nc;
          if (d->type == FEATURE_BOOLEAN) c = json_is_true(v) ? 1 : json_is_false(v) ? 0 : nc;
          else
            for (size_t j = 0; j < nc && json_is_string(v); j++)
              if (strcmp(cats[j], json_string_value(v)) == 0) c = j;
          idx[m++] = c;
        }
        inferd_status st = drift_hist_categorical(d->name, cats, nc, idx, m, h);
        free(idx);
        TRY(st);
      }
      p->n_features++;
    }
    return status_ok();
  }
  /* no schema: the only input's columns, by position */
  if (mv->n_inputs != 1 || mv->inputs[0].ndim < 1 || mv->inputs[0].ndim > 2)
    return status_make(INFERD_INVALID_ARGUMENT, "model '%s' has no application schema: profiling by position needs one "
                                                "1-D or 2-D input", mv->model->name);
  size_t cols = json_array_size(json_array_get(rows, 0));
  if (mv->inputs[0].ndim == 1 && cols != 1)
    return status_make(INFERD_INVALID_ARGUMENT, "input '%s' takes one value per row, the data has %zu", mv->inputs[0].name, cols);
  p->features = calloc(cols ? cols : 1, sizeof *p->features);
  double *vals = malloc((n ? n : 1) * sizeof *vals);
  for (size_t c = 0; c < cols; c++) {
    char name[300];
    if (mv->inputs[0].ndim == 2) snprintf(name, sizeof name, "%s[%zu]", mv->inputs[0].name, c);
    else snprintf(name, sizeof name, "%s", mv->inputs[0].name);
    for (size_t i = 0; i < n; i++) vals[i] = number_of(json_array_get(json_array_get(rows, i), c));
    inferd_status st = drift_hist_numeric(name, vals, n, bins, &p->features[p->n_features]);
    if (!status_is_ok(&st)) {
      free(vals);
      return st;
    }
    p->n_features++;
  }
  free(vals);
  return status_ok();
}

/* ---- the predictions ------------------------------------------------------------------------- */

typedef struct run {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  const features *f;
  json_t *batch;       /* records of this run */
  json_t *predictions; /* filled on completion */
  inferd_status st;
} run;

static inferd_status decode_batch(serve_request *sr, infer_request *req) {
  run *r = sr->user;
  feature_errors errs = {0};
  features_paths paths = {.base = "$"};
  inferd_status st = features_encode(r->f, r->batch, &paths, &req->inputs, &req->n_inputs, &errs);
  if (!status_is_ok(&st)) {
    char buf[1024];
    st = status_make(INFERD_INVALID_ARGUMENT, "%s", feature_errors_summary(&errs, buf, sizeof buf));
  }
  feature_errors_clear(&errs);
  if (status_is_ok(&st)) {
    req->n_outputs = r->f->n_output_names;
    req->output_names = calloc(req->n_outputs + 1, sizeof *req->output_names);
    for (size_t i = 0; i < req->n_outputs; i++) req->output_names[i] = strdup(r->f->output_names[i]);
  }
  return st;
}

static void batch_done(infer_request *req, void *user) {
  run *r = user;
  pthread_mutex_lock(&r->mu);
  r->st = req->status;
  if (status_is_ok(&r->st))
    r->st = features_decode_predictions(r->f, req->outputs, req->output_names, req->n_outputs, false, &r->predictions);
  r->done = true;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  infer_request_destroy(req);
}

static inferd_status predict_all(app *a, const char *model, const char *version, const features *f,
                                 const json_t *rows, size_t max_batch, json_t *all) {
  run r = {.f = f};
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  inferd_status st = status_ok();
  size_t n = json_array_size(rows);
  for (size_t i = 0; i < n && status_is_ok(&st); i += max_batch) {
    r.batch = json_array();
    for (size_t j = i; j < n && j < i + max_batch; j++) json_array_append(r.batch, json_array_get(rows, j));
    r.done = false;
    r.predictions = NULL;
    serve_request sr = {.model = model, .version = version, .start_ns = monotime_ns(), .decode = decode_batch,
                        .on_done = batch_done, .user = &r};
    st = serve_submit(a->serve, &sr);
    if (status_is_ok(&st)) {
      pthread_mutex_lock(&r.mu);
      while (!r.done) pthread_cond_wait(&r.cv, &r.mu);
      pthread_mutex_unlock(&r.mu);
      st = r.st;
    }
    if (!status_is_ok(&st)) st = status_make(st.code, "rows %zu to %zu: %s", i + 1, i + json_array_size(r.batch), st.msg);
    if (r.predictions) json_array_extend(all, r.predictions);
    json_decref(r.predictions);
    json_decref(r.batch);
  }
  pthread_mutex_destroy(&r.mu);
  pthread_cond_destroy(&r.cv);
  return st;
}

static inferd_status prediction_hist(const features *f, const json_t *preds, size_t bins, drift_profile *p) {
  size_t n = json_array_size(preds);
  p->prediction = calloc(1, sizeof *p->prediction);
  if (p->prediction == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  if (f->task == TASK_REGRESSION) {
    double *vals = malloc((n ? n : 1) * sizeof *vals);
    for (size_t i = 0; i < n; i++) {
      const json_t *v = json_array_get(preds, i);
      vals[i] = number_of(json_is_array(v) ? json_array_get(v, 0) : v);
    }
    inferd_status st = drift_hist_numeric("prediction", vals, n, bins, p->prediction);
    free(vals);
    return st;
  }
  size_t *idx = malloc((n ? n : 1) * sizeof *idx);
  for (size_t i = 0; i < n; i++) {
    const char *label = json_string_value(json_array_get(preds, i));
    idx[i] = f->n_labels;
    for (size_t j = 0; label && j < f->n_labels; j++)
      if (strcmp(label, f->labels[j]) == 0) idx[i] = j;
  }
  inferd_status st = drift_hist_categorical("prediction", (const char *const *)f->labels, f->n_labels, idx, n, p->prediction);
  free(idx);
  return st;
}

/* ---- the command ----------------------------------------------------------------------------- */

/* Waits for the version to load (the repository loads in the background). */
static inferd_status wait_loaded(app *a, const char *model, const char *version, model_version **mv) {
  int64_t until = monotime_ns() + INT64_C(120) * 1000000000;
  for (;;) {
    inferd_status st = repo_acquire(a->repo, model, version ? version : "", REPO_ANY_STATE, mv);
    if (status_is_ok(&st)) {
      model_state s = model_version_state(*mv);
      if (s == MODEL_READY) return status_ok();
      if (s != MODEL_LOADING) {
        st = status_make(INFERD_UNAVAILABLE, "model '%s' version %s did not load: %s", model, (*mv)->version_str,
                         (*mv)->reason);
        version_release(*mv);
        return st;
      }
      version_release(*mv);
    }
    char why[512];
    if (monotime_ns() > until) return status_make(INFERD_UNAVAILABLE, "model '%s' did not load in 120 s", model);
    if (!status_is_ok(&st) && app_ready(a, why, sizeof why)) return st; /* loaded everything, not this */
    nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
  }
}

static inferd_status profile_run(const char *model, const char *repo_dir, const char *data, const char *version,
                                 size_t bins, const char *output, bool predictions) {
  TRY(backends_register_builtin());
  TRY(application_register());
  app *a;
  const char *load[1] = {model};
  app_options ao = {.model_repository = repo_dir, .worker_threads = 2, .control_mode = REPO_CONTROL_EXPLICIT,
                    .poll_secs = 15, .load_models = load, .n_load_models = 1, .drain_timeout_ms = 1000};
  TRY(app_create(&ao, &a));
  model_version *mv = NULL;
  json_t *rows = NULL, *preds = json_array();
  drift_profile *p = calloc(1, sizeof *p);
  inferd_status st = wait_loaded(a, model, version, &mv);
  const features *f = status_is_ok(&st) ? application_features(mv) : NULL;
  if (status_is_ok(&st)) st = read_rows(data, f, &rows);
  if (status_is_ok(&st)) {
    p->rows = (double)json_array_size(rows);
    st = feature_hists(f, mv, rows, bins, p);
  }
  if (status_is_ok(&st) && predictions && f) {
    int mb = mv->model->config->max_batch_size;
    st = predict_all(a, model, mv->version_str, f, rows, mb > 0 ? (size_t)mb : 1, preds);
    if (status_is_ok(&st)) st = prediction_hist(f, preds, bins, p);
  }
  if (status_is_ok(&st)) {
    char path[4200], tmp[4096];
    if (output) {
      snprintf(path, sizeof path, "%s", output);
    } else {
      snprintf(tmp, sizeof tmp, "%s", mv->path);
      snprintf(path, sizeof path, "%s/%s", dirname(tmp), DRIFT_PROFILE_FILE);
    }
    snprintf(tmp, sizeof tmp, "%s", data);
    json_t *doc = drift_profile_json(p, model, mv->version_str, basename(tmp));
    if (json_dump_file(doc, path, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0)
      st = status_make(INFERD_INVALID_ARGUMENT, "cannot write %s", path);
    else
      log_msg(LOG_INFO, model, "wrote %s: %zu features, %.0f rows%s", path, p->n_features, p->rows,
              p->prediction ? ", predictions" : "");
    json_decref(doc);
  }
  drift_profile_destroy(p);
  json_decref(rows);
  json_decref(preds);
  version_release(mv);
  app_destroy(a);
  return st;
}

int profile_main(int argc, char **argv) {
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},   {"repository", required_argument, 0, 'r'},
                                       {"data", required_argument, 0, 'd'},    {"version", required_argument, 0, 'v'},
                                       {"bins", required_argument, 0, 'b'},    {"output", required_argument, 0, 'o'},
                                       {"no-predictions", no_argument, 0, 'n'}, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *model = NULL, *repo = NULL, *data = NULL, *version = NULL, *output = NULL;
  long bins = 10;
  bool predictions = true;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 'r': repo = optarg; break;
      case 'd': data = optarg; break;
      case 'v': version = optarg; break;
      case 'o': output = optarg; break;
      case 'n': predictions = false; break;
      case 'b': {
        char *end;
        bins = strtol(optarg, &end, 10);
        if (*end || bins < 2 || bins > DRIFT_MAX_BINS) {
          fprintf(stderr, "inferd profile: --bins must be an integer from 2 to %d, got '%s'\n", DRIFT_MAX_BINS, optarg);
          return 2;
        }
        break;
      }
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (!model || !repo || !data || optind < argc) {
    fprintf(stderr, "inferd profile: --model, --repository and --data are required\n");
    usage(stderr);
    return 2;
  }
  inferd_status st = profile_run(model, repo, data, version, (size_t)bins, output, predictions);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd profile: %s\n", st.msg);
    return 1;
  }
  return 0;
}
