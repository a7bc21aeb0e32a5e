/* libFuzzer harness for the tokenizer's encoding and decoding (src/generate/tokenizer.c), with
 * the fixed tiny tokenizers of tests/tokenizer/tiny_tokenizer.h. Byte 0 picks the mode:
 *   even: the rest is text, encoded by one of 16 tiny variants (bit 1: add_prefix_space,
 *         bit 2: Lowercase, bits 3-4: characters missing from the vocabulary, dropped or
 *         made <unk>, fused or not). Checks: valid UTF-8 always encodes, invalid never does; every id
 *         is one the tokenizer has; with neither option decode(encode(x)) == x; streaming the
 *         ids gives the same text as decoding them.
 *   odd:  the rest is ids (2 bytes each, so they also land past the vocabulary), decoded with
 *         and without special tokens, whole and streamed. Checks: the text is valid UTF-8 and
 *         the streamed pieces add up to it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tokenizer/tiny_tokenizer.h"
#include "generate/tokenizer.h"
#include "util/utf8.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static tokenizer *tiny[16];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  for (int v = 0; v < 16; v++) {
    char *json = tiny_tokenizer_json(v & 1, v & 2, v >> 2);
    CHECK(json);
    inferd_status st = tokenizer_load(json, strlen(json), "tiny.json", &tiny[v]);
    CHECK(st.code == INFERD_OK);
    free(json);
  }
  return 0;
}

/* Decodes ids[0..n) whole and streamed; checks they agree and are UTF-8; returns the text. */
static char *decode_both(const tokenizer *t, const uint32_t *ids, size_t n, bool skip, size_t *len) {
  char *text;
  CHECK(tokenizer_decode(t, ids, n, skip, &text, len).code == INFERD_OK);
  CHECK(strlen(text) <= *len && utf8_valid(text, *len, NULL));
  static char piece[TOKENIZER_STREAM_MAX_OUT];
  tokenizer_stream s;
  tokenizer_stream_init(&s, t, skip);
  size_t at = 0, plen;
  for (size_t i = 0; i <= n; i++) {
    if (i < n)
      tokenizer_stream_push(&s, ids[i], piece, sizeof piece, &plen);
    else
      tokenizer_stream_finish(&s, piece, sizeof piece, &plen);
    CHECK(at + plen <= *len && memcmp(text + at, piece, plen) == 0);
    CHECK(utf8_valid(piece, plen, NULL)); /* a piece never ends inside a character */
    at += plen;
  }
  CHECK(at == *len);
  return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const tokenizer *t = tiny[(data[0] >> 1) & 15];
  const char *body = (const char *)data + 1;
  size_t n = size - 1;
  if ((data[0] & 1) == 0) {
    uint32_t *ids;
    size_t n_ids;
    inferd_status st = tokenizer_encode(t, body, n, &ids, &n_ids);
    CHECK((st.code == INFERD_OK) == utf8_valid(body, n, NULL));
    if (st.code != INFERD_OK) return 0;
    CHECK(n_ids <= 2 * n + 1 || n_ids == 0);
    for (size_t i = 0; i < n_ids; i++) CHECK(tokenizer_id_token(t, ids[i]) != NULL);
    size_t len;
    char *text = decode_both(t, ids, n_ids, false, &len);
    if (t == tiny[0]) CHECK(len == n && memcmp(text, body, n) == 0);
    free(text);
    free(ids);
    return 0;
  }
  size_t n_ids = n / 2;
  uint32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
  CHECK(ids);
  for (size_t i = 0; i < n_ids; i++) ids[i] = (uint32_t)((unsigned char)body[2 * i] | (unsigned char)body[2 * i + 1] << 8) % 400;
  for (int skip = 0; skip < 2; skip++) {
    size_t len;
    free(decode_both(t, ids, n_ids, skip, &len));
  }
  free(ids);
  return 0;
}
