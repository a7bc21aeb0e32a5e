/* The backend interface: a backend loads a model file, says what tensors it takes and gives,
 * and runs one batch. It knows nothing of protocols or scheduling. */
#ifndef INFERD_BACKEND_H
#define INFERD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/model_config.h"
#include "core/status.h"
#include "core/tensor.h"

typedef struct backend_model backend_model;

typedef struct backend_ops {
  const char *name;     /* as config.json's "backend" names it */
  const char *platform; /* as V2 model metadata reports it */
  const char *model_filename;
  /* BYTES inputs become text the runtime decodes (ONNX string tensors are UTF-8): the core
   * refuses elements that are not valid UTF-8 before they reach the model. */
  bool bytes_are_utf8;
  inferd_status (*load)(const char *path, const model_config *cfg, backend_model **out);
  /* The tensors as the model file declares them, full shapes with -1 for a variable
   * dimension. Owned by the backend model. */
  void (*describe)(const backend_model *m, const tensor_spec **inputs, size_t *n_inputs,
                   const tensor_spec **outputs, size_t *n_outputs);
  /* Runs the model. inputs are validated against describe(); results[i] receives
   * output_names[i], owned by the caller afterwards. Safe to call from several threads. */
  inferd_status (*run)(backend_model *m, const tensor *inputs, size_t n_inputs,
                       const char *const *output_names, size_t n_outputs, tensor *results);
  void (*unload)(backend_model *m);
} backend_ops;

/* NULL when no backend has that name. */
const backend_ops *backend_find(const char *name);

extern const backend_ops onnxruntime_backend;

#endif
