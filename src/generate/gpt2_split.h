/* GPT-2's pre-tokenizer split, by hand: the regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * as Hugging Face tokenizers' ByteLevel pre-tokenizer applies it (every match a piece), over
 * valid UTF-8, without a regex engine and without recursion: each call is O(piece). */
#ifndef INFERD_GENERATE_GPT2_SPLIT_H
#define INFERD_GENERATE_GPT2_SPLIT_H

#include <stddef.h>
#include <stdint.h>

/* The end (byte offset) of the piece that starts at pos < len in the valid UTF-8 s[0..len). */
size_t gpt2_split_next(const char *s, size_t len, size_t pos);

/* Decodes the code point at s[pos] of valid UTF-8; returns its length in bytes (1..4). */
size_t gpt2_utf8_decode(const char *s, size_t len, size_t pos, uint32_t *cp);

#endif
