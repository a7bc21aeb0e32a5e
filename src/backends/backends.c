/* Registers the built-in backends with the core (the core does not know them by name). */
#include "backends/backends.h"

inferd_status backends_register_builtin(void) { return backend_register(&onnxruntime_backend); }
