/* The gRPC ModelInferRequest: protobuf-c's decoding of the wire bytes, then inferd's tensor
 * building (frontends/grpc/infer_codec.c: typed contents or raw_input_contents, parameters)
 * and validation against a hand-built signature, as ModelInfer does before scheduling. */
#include <stdint.h>

#include "frontends/grpc/infer_codec.h"
#include "fuzz_model.h"

static model_version *models[FUZZ_N_MODELS];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_models_create_all(models);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Inference__ModelInferRequest *msg = inference__model_infer_request__unpack(NULL, size, data);
  if (msg == NULL) return 0;
  infer_request *req = infer_request_create(models[size % FUZZ_N_MODELS]);
  grpcfe_infer_info info = {0};
  inferd_status st = grpcfe_decode_infer_request(msg, req, &info);
  if (status_is_ok(&st)) st = infer_request_validate(req);
  if (status_is_ok(&st)) fuzz_check_valid_request(req);
  grpcfe_infer_info_clear(&info);
  infer_request_destroy(req);
  inference__model_infer_request__free_unpacked(msg, NULL);
  return 0;
}
