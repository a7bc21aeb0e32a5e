/* The V2 (Open Inference Protocol) JSON request body: v2_decode_request with no binary part,
 * then the decoded tensors checked against a hand-built signature (infer_request_validate),
 * as POST /v2/models/{m}/infer does before scheduling; then the reply to it (fuzz_v2_reply.h). */
#include <stdint.h>
#include <stdlib.h>

#include "frontends/http/v2_codec.h"
#include "fuzz_model.h"
#include "fuzz_v2_reply.h"

static model_version *models[FUZZ_N_MODELS];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_models_create_all(models);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* the model is a function of the input, so a reproducer replays the same way */
  model_version *mv = models[size % FUZZ_N_MODELS];
  infer_request *req = infer_request_create(mv);
  v2_request_info info = {0};
  inferd_status st = v2_decode_request((const char *)data, size, -1, req, &info);
  if (status_is_ok(&st)) st = infer_request_validate(req);
  if (status_is_ok(&st)) {
    fuzz_check_valid_request(req);
    fuzz_v2_reply(req, &info);
  }
  v2_request_info_clear(&info);
  infer_request_destroy(req);
  return 0;
}
