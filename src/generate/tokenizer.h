/* A Hugging Face tokenizer.json (the `tokenizers` format) for byte-level BPE as GPT-2 uses it:
 * load, encode text to ids, decode ids to text, and decode incrementally for streaming.
 * Supported, and refused at load otherwise (the message names the JSON path):
 *   model          BPE (vocab; merges as "a b" or ["a", "b"]; ignore_merges; unk_token,
 *                  fuse_unk), no dropout, continuing_subword_prefix, end_of_word_suffix or
 *                  byte_fallback
 *   normalizer     null, Lowercase, or a Sequence of those
 *   pre_tokenizer  ByteLevel (add_prefix_space, use_regex: GPT-2's split)
 *   post_processor null or ByteLevel (they add no ids)
 *   decoder        null (tokens joined by spaces) or ByteLevel
 *   added_tokens   matched before pre-tokenization (leftmost, then longest), normalized or
 *                  not, special or not; no single_word, lstrip or rstrip
 * A loaded tokenizer is immutable: any number of threads may encode and decode with it. */
#ifndef INFERD_GENERATE_TOKENIZER_H
#define INFERD_GENERATE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* Bounds on what a tokenizer.json may hold and what one encode call takes. */
#define TOKENIZER_MAX_FILE_BYTES (32u << 20)
#define TOKENIZER_MAX_VOCAB (1u << 20)   /* entries in model.vocab */
#define TOKENIZER_MAX_ID ((1u << 21) - 1) /* the largest token id, model or added */
#define TOKENIZER_MAX_MERGES (2u << 20)
#define TOKENIZER_MAX_ADDED 65536
#define TOKENIZER_MAX_TOKEN_BYTES 4096 /* one token's text */
#define TOKENIZER_MAX_INPUT_BYTES (4u << 20) /* a word of that many bytes needs ~100 MB to merge */

typedef struct tokenizer tokenizer;

/* Loads json[0..len) (a tokenizer.json's text); `source` names it in messages. */
inferd_status tokenizer_load(const char *json, size_t len, const char *source, tokenizer **out);
inferd_status tokenizer_load_file(const char *path, tokenizer **out);
void tokenizer_destroy(tokenizer *t);

/* The ids of text[0..len) (UTF-8; refused otherwise, or over TOKENIZER_MAX_INPUT_BYTES).
 * *ids is malloc'd (the caller frees it; NULL when *n is 0). */
inferd_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, uint32_t **ids, size_t *n);

/* The text of ids[0..n) (NUL-terminated, malloc'd, the caller frees it): ids no token has are
 * skipped, as are special tokens when skip_special; bytes that are not UTF-8 become U+FFFD. */
inferd_status tokenizer_decode(const tokenizer *t, const uint32_t *ids, size_t n, bool skip_special, char **text,
                               size_t *text_len);

/* The number of ids: the model's vocabulary plus the added tokens not in it. */
size_t tokenizer_vocab_size(const tokenizer *t);
/* The id of a token's text (model vocabulary or added token); -1 when none. */
int64_t tokenizer_token_id(const tokenizer *t, const char *token, size_t len);
/* The text of an id as the vocabulary spells it (NULL when no token has it). */
const char *tokenizer_id_token(const tokenizer *t, uint32_t id);
bool tokenizer_is_special(const tokenizer *t, uint32_t id);

/* Incremental decoding for streaming: push one id at a time and get the text that is complete
 * once it is appended; an incomplete UTF-8 sequence at the end is held back until the bytes
 * that finish it arrive (or until finish, where what is left becomes U+FFFD). The pieces
 * concatenated equal tokenizer_decode of all the ids. */
typedef struct tokenizer_stream {
  const tokenizer *t;
  bool skip_special;
  bool started;          /* a token has been emitted (the null decoder's separator) */
  unsigned char held[4]; /* bytes of an incomplete sequence */
  size_t n_held;
} tokenizer_stream;

void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t, bool skip_special);
/* Appends to out[cap] (NUL-terminated) the text complete after id; *out_len is its length. cap
 * must be at least TOKENIZER_STREAM_MAX_OUT. */
#define TOKENIZER_STREAM_MAX_OUT (3 * TOKENIZER_MAX_TOKEN_BYTES + 16)
void tokenizer_stream_push(tokenizer_stream *s, uint32_t id, char *out, size_t cap, size_t *out_len);
void tokenizer_stream_finish(tokenizer_stream *s, char *out, size_t cap, size_t *out_len);

/* Appends bytes[0..n) as UTF-8 with each maximal invalid subsequence replaced by U+FFFD (as
 * Rust's String::from_utf8_lossy does) to out[*pos..cap); stops before an incomplete sequence at
 * the end unless final. Returns the number of input bytes consumed. out must have room for
 * 3 bytes per input byte. */
size_t tokenizer_utf8_lossy(const unsigned char *bytes, size_t n, bool final, char *out, size_t *pos);

#endif
