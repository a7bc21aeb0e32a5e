/* The V2 binary tensor data extension: a body whose first Inference-Header-Content-Length
 * bytes are the JSON header and the rest the tensors' raw bytes. The input's first 8 bytes
 * give the header length (as the HTTP header would, including nonsense values); the rest is
 * the body. Decoded tensors are then checked against a hand-built signature. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
  if (size < 8) return 0;
  uint64_t raw;
  memcpy(&raw, data, 8);
  data += 8;
  size -= 8;
  /* mostly a length within the body (where the interesting cases are), sometimes any value
   * the header could carry */
  long long header_len = (raw >> 63) ? (long long)(raw & 0x7fffffffffffffffULL)
                                     : (long long)((raw & 0xffffffff) % (size + 1));
  model_version *mv = models[(raw >> 32) % FUZZ_N_MODELS];
  /* a copy of exactly the body, so ASan sees any read past its end */
  char *body = malloc(size ? size : 1);
  memcpy(body, data, size);
  infer_request *req = infer_request_create(mv);
  v2_request_info info = {0};
  inferd_status st = v2_decode_request(body, size, header_len, req, &info);
  if (status_is_ok(&st)) st = infer_request_validate(req);
  if (status_is_ok(&st)) {
    fuzz_check_valid_request(req);
    fuzz_v2_reply(req, &info);
  }
  v2_request_info_clear(&info);
  infer_request_destroy(req);
  free(body);
  return 0;
}
