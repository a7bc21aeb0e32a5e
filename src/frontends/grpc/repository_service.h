/* The model repository extension over gRPC (admin RPCs, kept together so one guard can cover
 * them): RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload; and ModelConfig. */
#ifndef INFERD_GRPC_REPOSITORY_SERVICE_H
#define INFERD_GRPC_REPOSITORY_SERVICE_H

#include "frontends/grpc/call.h"

void grpcfe_repository_index(gcall *c, grpc_byte_buffer *bb);
void grpcfe_repository_model_load(gcall *c, grpc_byte_buffer *bb);
void grpcfe_repository_model_unload(gcall *c, grpc_byte_buffer *bb);
void grpcfe_model_config(gcall *c, grpc_byte_buffer *bb);

#endif
