/* libFuzzer harness for the tokenizer.json loader (src/generate/tokenizer.c): the input is the
 * file. Whatever loads encodes a fixed mixed text and the input itself (when UTF-8), and
 * decodes what that gave and a run of ids across its vocabulary. Checks: a load either fails
 * with a message or gives a tokenizer whose ids all name tokens and whose decoding is UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "generate/tokenizer.h"
#include "util/utf8.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static void encode_decode(const tokenizer *t, const char *text, size_t len) {
  uint32_t *ids;
  size_t n;
  inferd_status st = tokenizer_encode(t, text, len, &ids, &n);
  if (!utf8_valid(text, len, NULL)) {
    CHECK(st.code == INFERD_INVALID_ARGUMENT);
    return;
  }
  CHECK(st.code == INFERD_OK);
  for (size_t i = 0; i < n; i++) CHECK(tokenizer_id_token(t, ids[i]) != NULL);
  char *out;
  size_t out_len;
  CHECK(tokenizer_decode(t, ids, n, false, &out, &out_len).code == INFERD_OK);
  CHECK(utf8_valid(out, out_len, NULL));
  free(out);
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tokenizer *t = NULL;
  inferd_status st = tokenizer_load((const char *)data, size, "fuzz.json", &t);
  if (st.code != INFERD_OK) {
    CHECK(t == NULL && st.msg[0] != '\0');
    return 0;
  }
  static const char mixed[] = "Hello  world, it's 2026!\n\tGrüße 日本語 😀👍🏽 <|endoftext|> x   ";
  encode_decode(t, mixed, sizeof mixed - 1);
  encode_decode(t, (const char *)data, size < 4096 ? size : 4096);
  uint32_t ids[64];
  for (uint32_t i = 0; i < 64; i++) ids[i] = i * 37 % (uint32_t)(tokenizer_vocab_size(t) + 3);
  char *out;
  size_t out_len;
  CHECK(tokenizer_decode(t, ids, 64, true, &out, &out_len).code == INFERD_OK);
  CHECK(utf8_valid(out, out_len, NULL));
  free(out);
  tokenizer_destroy(t);
  return 0;
}
