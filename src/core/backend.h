/* The backend interface and the registry of backends: a backend loads a model file, says what
 * tensors it takes and gives, and runs one batch. It knows nothing of protocols or scheduling.
 * The core owns this interface; backends/ implements it and registers at start (main calls
 * backends_register_builtin), so the core never links a runtime. */
#ifndef INFERD_CORE_BACKEND_H
#define INFERD_CORE_BACKEND_H

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
  /* Runs the model. inputs are validated against describe(); the backend reads their data in
   * place. results[i] receives output_names[i], owned by the caller afterwards. Safe to call
   * from several threads.
   * Two ways to receive an output, chosen per output by what the caller put in results[i]:
   *  - data NULL (the ordinary way; results zeroed): the backend allocates it and fills in
   *    name, datatype, shape, data and byte_size.
   *  - data set (pre-allocated): the caller gives the output's memory with its datatype, exact
   *    shape and byte_size (not BYTES), and the runtime writes the output straight there: no
   *    copy out. The caller keeps owning that memory; the backend leaves results[i] as given
   *    (name too), and a shape that is not the one the model gives fails the run. The
   *    generation engine uses it to have each decode step's KV cache written into the buffer
   *    that the next step reads as its past (generate/engine.c). Chosen over an op that keeps
   *    the runtime's own output values between runs: the memory stays plain bytes the caller
   *    owns and lays out, any backend can honour it, and no runtime handle crosses the
   *    interface.
   * On failure the backend-allocated results are freed and zeroed; pre-allocated ones are left
   * as given (their contents undefined). */
  inferd_status (*run)(backend_model *m, const tensor *inputs, size_t n_inputs,
                       const char *const *output_names, size_t n_outputs, tensor *results);
  void (*unload)(backend_model *m);
} backend_ops;

/* Adds a backend to the registry. Called at start, before any model loads (the registry is
 * read without a lock afterwards). Fails when the name is taken or the registry is full. */
inferd_status backend_register(const backend_ops *ops);
/* NULL when no registered backend has that name. */
const backend_ops *backend_find(const char *name);

#endif
