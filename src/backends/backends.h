/* The backends built into inferd. main registers them with the core's registry at start. */
#ifndef INFERD_BACKENDS_H
#define INFERD_BACKENDS_H

#include "core/backend.h"

extern const backend_ops onnxruntime_backend;

/* Registers every built-in backend (core/backend.h). Call once, before the repository opens. */
inferd_status backends_register_builtin(void);

#endif
