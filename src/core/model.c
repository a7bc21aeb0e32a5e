#include "core/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/warmup.h"
#include "util/log.h"
#include "util/monotime.h"

static const model_version_hook *hooks[MODEL_VERSION_MAX_HOOKS];
static int n_hooks;

int model_version_hook_register(const model_version_hook *h) {
  if (n_hooks == MODEL_VERSION_MAX_HOOKS) return -1;
  hooks[n_hooks] = h;
  return n_hooks++;
}

/* In reverse order of registration, as a later hook may build on an earlier one's data. */
static void hooks_unload(model_version *mv) {
  for (int i = n_hooks - 1; i >= 0; i--) {
    if (mv->hook_data[i] && hooks[i]->unload) hooks[i]->unload(mv, mv->hook_data[i]);
    mv->hook_data[i] = NULL;
  }
}

static inferd_status hooks_load(model_version *mv) {
  for (int i = 0; i < n_hooks; i++) {
    inferd_status st = hooks[i]->load ? hooks[i]->load(mv, &mv->hook_data[i]) : status_ok();
    if (!status_is_ok(&st)) return st;
  }
  return status_ok();
}

model *model_create(const char *name, model_config *config, const char *config_error) {
  model *m = calloc(1, sizeof *m);
  if (m == NULL || (m->name = strdup(name)) == NULL) {
    free(m);
    model_config_destroy(config);
    return NULL;
  }
  m->config = config;
  snprintf(m->config_error, sizeof m->config_error, "%s", config_error ? config_error : "");
  atomic_init(&m->refs, 1);
  return m;
}

void model_retain(model *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); }

void model_release(model *m) {
  if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  model_config_destroy(m->config);
  free(m->name);
  free(m);
}

model_version *model_version_create(model *m, int64_t version, const char *path) {
  model_version *mv = calloc(1, sizeof *mv);
  if (mv == NULL) return NULL;
  model_retain(m);
  mv->model = m;
  mv->version = version;
  snprintf(mv->version_str, sizeof mv->version_str, "%lld", (long long)version);
  snprintf(mv->path, sizeof mv->path, "%s", path);
  atomic_init(&mv->state, MODEL_LOADING);
  atomic_init(&mv->refs, 1);
  stats_init(&mv->stats);
  return mv;
}

void model_version_free(model_version *mv) {
  if (mv == NULL) return;
  model_version_unload(mv);
  stats_destroy(&mv->stats);
  model_release(mv->model);
  free(mv);
}

const char *model_state_name(model_state s) {
  switch (s) {
    case MODEL_LOADING: return "LOADING";
    case MODEL_READY: return "READY";
    case MODEL_UNAVAILABLE: return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

model_state model_version_state(const model_version *mv) {
  return (model_state)atomic_load_explicit(&mv->state, memory_order_acquire);
}

static inferd_status copy_specs(const tensor_spec *src, size_t n, tensor_spec **out) {
  tensor_spec *dst = calloc(n + 1, sizeof *dst);
  if (dst == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    dst[i] = src[i];
    dst[i].name = strdup(src[i].name);
  }
  *out = dst;
  return status_ok();
}

/* The full shape config.json declares: with a batch, -1 then the per-row dims. */
static void full_dims(const model_config *cfg, const tensor_spec *c, tensor_spec *out) {
  *out = *c;
  if (cfg->max_batch_size > 0) {
    out->ndim = c->ndim + 1;
    if (out->ndim > TENSOR_MAX_DIMS) return; /* no room for the batch dimension: narrow() refuses it */
    out->dims[0] = -1;
    memcpy(out->dims + 1, c->dims, sizeof(int64_t) * (size_t)c->ndim);
  }
}

static inferd_status narrow(const model_config *cfg, const char *what, const tensor_spec *declared,
                            size_t n_declared, const tensor_spec *actual, size_t n_actual,
                            tensor_spec *out) {
  char a[96], b[96];
  for (size_t i = 0; i < n_declared; i++) {
    const tensor_spec *m = tensor_specs_find(actual, n_actual, declared[i].name);
    if (m == NULL)
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s '%s' is not in the model", what, declared[i].name);
    tensor_spec want;
    full_dims(cfg, &declared[i], &want);
    if (want.ndim > TENSOR_MAX_DIMS)
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s '%s' has too many dims", what, declared[i].name);
    if (m->datatype != want.datatype)
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s '%s' is %s but the model has %s", what,
                         want.name, datatype_name(want.datatype), datatype_name(m->datatype));
    bool ok = m->ndim == want.ndim;
    for (int d = 0; ok && d < want.ndim; d++)
      if (m->dims[d] != -1 && want.dims[d] != -1 && m->dims[d] != want.dims[d]) ok = false;
    if (!ok)
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s '%s' has shape %s (with max_batch_size %d) but the model has %s",
                         what, want.name, shape_str(want.dims, want.ndim, a, sizeof a), cfg->max_batch_size,
                         shape_str(m->dims, m->ndim, b, sizeof b));
    out[i] = want;
    /* what the model fixes stays fixed even where the config says -1 */
    for (int d = 0; d < want.ndim; d++)
      if (want.dims[d] == -1) out[i].dims[d] = m->dims[d];
    if (cfg->max_batch_size > 0) out[i].dims[0] = -1;
    out[i].is_map_sequence = m->is_map_sequence;
    out[i].name = strdup(m->name);
  }
  return status_ok();
}

inferd_status model_resolve_signature(const model_config *cfg, const tensor_spec *model_in,
                                      size_t n_in, const tensor_spec *model_out, size_t n_out,
                                      tensor_spec **inputs, size_t *n_inputs,
                                      tensor_spec **outputs, size_t *n_outputs) {
  inferd_status st;
  tensor_spec *in = NULL, *out = NULL;
  size_t ni, no;
  if (cfg->inputs) {
    ni = cfg->n_inputs;
    in = calloc(ni + 1, sizeof *in);
    if (in == NULL) return status_make(INFERD_INTERNAL, "out of memory");
    st = narrow(cfg, "input", cfg->inputs, ni, model_in, n_in, in);
    for (size_t i = 0; i < n_in && status_is_ok(&st); i++)
      if (!tensor_specs_find(cfg->inputs, cfg->n_inputs, model_in[i].name))
        st = status_make(INFERD_INVALID_ARGUMENT, "config.json: inputs does not list the model's input '%s'", model_in[i].name);
  } else {
    ni = n_in;
    st = copy_specs(model_in, n_in, &in);
  }
  if (status_is_ok(&st)) {
    if (cfg->outputs) { /* a subset is fine: the outputs it leaves out are not served */
      no = cfg->n_outputs;
      out = calloc(no + 1, sizeof *out);
      st = out ? narrow(cfg, "output", cfg->outputs, no, model_out, n_out, out)
               : status_make(INFERD_INTERNAL, "out of memory");
    } else {
      no = n_out;
      st = copy_specs(model_out, n_out, &out);
    }
  }
  if (status_is_ok(&st) && cfg->max_batch_size > 0 && ni == 0) /* no input to carry a batch dimension */
    st = status_make(INFERD_INVALID_ARGUMENT, "max_batch_size is %d but the model has no inputs: a model without inputs cannot batch",
                     cfg->max_batch_size);
  if (status_is_ok(&st) && cfg->max_batch_size > 0) {
    for (size_t i = 0; i < ni && status_is_ok(&st); i++)
      if (in[i].ndim == 0 || (in[i].dims[0] != -1))
        st = status_make(INFERD_INVALID_ARGUMENT, "max_batch_size is %d but input '%s' has no variable first dimension",
                         cfg->max_batch_size, in[i].name);
  }
  if (!status_is_ok(&st)) {
    tensor_specs_free(in, cfg->inputs ? cfg->n_inputs : n_in);
    tensor_specs_free(out, cfg->outputs ? cfg->n_outputs : n_out);
    return st;
  }
  *inputs = in;
  *n_inputs = ni;
  *outputs = out;
  *n_outputs = no;
  return status_ok();
}

void model_version_load(model_version *mv) {
  model *m = mv->model;
  int64_t load_start_ns = monotime_ns();
  inferd_status st;
  if (m->config_error[0]) {
    st = status_make(INFERD_INVALID_ARGUMENT, "%s", m->config_error);
  } else {
    mv->backend = backend_find(m->config->backend);
    st = mv->backend ? mv->backend->load(mv->path, m->config, &mv->backend_model)
                     : status_make(INFERD_INTERNAL, "backend '%s' is not registered", m->config->backend);
  }
  if (status_is_ok(&st)) {
    const tensor_spec *in, *out;
    size_t ni, no;
    mv->backend->describe(mv->backend_model, &in, &ni, &out, &no);
    st = model_resolve_signature(m->config, in, ni, out, no, &mv->inputs, &mv->n_inputs,
                                 &mv->outputs, &mv->n_outputs);
    if (status_is_ok(&st)) st = hooks_load(mv); /* e.g. a bad "application" section fails the version */
    /* warm before READY: the first requests should not pay for lazy initialisation */
    if (status_is_ok(&st)) st = warmup_run(mv);
    if (!status_is_ok(&st)) {
      hooks_unload(mv);
      tensor_specs_free(mv->inputs, mv->n_inputs);
      tensor_specs_free(mv->outputs, mv->n_outputs);
      mv->inputs = mv->outputs = NULL;
      mv->n_inputs = mv->n_outputs = 0;
      mv->backend->unload(mv->backend_model);
      mv->backend_model = NULL;
    }
  }
  if (status_is_ok(&st)) {
    mv->loaded_at = time(NULL);
    mv->load_ns = monotime_ns() - load_start_ns;
    log_msg(LOG_INFO, m->name, "version %lld ready", (long long)mv->version);
    atomic_store_explicit(&mv->state, MODEL_READY, memory_order_release);
  } else {
    snprintf(mv->reason, sizeof mv->reason, "%s", st.msg);
    log_msg(LOG_ERROR, m->name, "version %lld failed to load: %s", (long long)mv->version, st.msg);
    atomic_store_explicit(&mv->state, MODEL_UNAVAILABLE, memory_order_release);
  }
}

void model_version_unload(model_version *mv) {
  hooks_unload(mv);
  if (mv->backend_model) mv->backend->unload(mv->backend_model);
  mv->backend_model = NULL;
  tensor_specs_free(mv->inputs, mv->n_inputs);
  tensor_specs_free(mv->outputs, mv->n_outputs);
  mv->inputs = mv->outputs = NULL;
  mv->n_inputs = mv->n_outputs = 0;
}

const tensor_spec *model_version_find_input(const model_version *mv, const char *name) {
  return tensor_specs_find(mv->inputs, mv->n_inputs, name);
}

const tensor_spec *model_version_find_output(const model_version *mv, const char *name) {
  return tensor_specs_find(mv->outputs, mv->n_outputs, name);
}
