/* A tiny byte-level BPE tokenizer.json built in C, for the unit tests and the fuzz harness: the
 * 256 byte characters of GPT-2's alphabet, a few merges ("hello", " world", " the", runs of
 * spaces), two special tokens and one normalized added token. */
#ifndef INFERD_TESTS_TINY_TOKENIZER_H
#define INFERD_TESTS_TINY_TOKENIZER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const tiny_merges[][2] = {
    {"h", "e"},   {"l", "l"},    {"ll", "o"},    {"he", "llo"}, {"Ġ", "w"},   {"o", "r"},   {"Ġw", "or"},
    {"l", "d"},   {"Ġwor", "ld"}, {"Ġ", "t"},    {"Ġt", "he"},  {"Ġ", "Ġ"},  {"ĠĠ", "ĠĠ"}, {"ð", "Ł"},
    {"ðŁ", "ĺ"}, {"a", "a"},     {"aa", "aa"},  {"Ċ", "Ċ"},    {"i", "t"},   {"'", "s"},
};
#define TINY_N_MERGES (sizeof tiny_merges / sizeof *tiny_merges)
/* Ids: bytes 0..255 (the byte's character), merges 256.., then the added tokens. */
#define TINY_ID_ENDOFTEXT (256 + TINY_N_MERGES)
#define TINY_ID_PAD (TINY_ID_ENDOFTEXT + 1)
#define TINY_ID_HELLO_WORLD (TINY_ID_ENDOFTEXT + 2)

static size_t tiny_put_utf8(char *out, uint32_t cp) {
  if (cp < 0x80) return out[0] = (char)cp, 1;
  out[0] = (char)(0xC0 | cp >> 6);
  out[1] = (char)(0x80 | (cp & 0x3F));
  return 2;
}

/* GPT-2's bytes_to_unicode for byte b, as UTF-8 in out[3]. */
static const char *tiny_byte_char(unsigned b, char out[3]) {
  uint32_t next = 256, cp = 0;
  for (unsigned x = 0; x <= b; x++) {
    bool printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    cp = printable ? x : next++;
  }
  out[tiny_put_utf8(out, cp)] = '\0';
  return out;
}

static json_t *tiny_added(unsigned id, const char *content, bool special, bool normalized) {
  return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", (int)id, "content", content, "single_word", 0, "lstrip",
                   0, "rstrip", 0, "normalized", normalized, "special", special);
}

static json_t *tiny_byte_level(bool add_prefix_space) {
  return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", add_prefix_space, "trim_offsets", 1,
                   "use_regex", 1);
}

/* Characters missing from the vocabulary (unk_mode): 0 none; else the characters of bytes C3,
 * A9 and 91 ("é" is C3 A9, "ő" C5 91) are replaced, at the same ids, by "<unk>" and
 * placeholders, and such characters are 1: dropped (no unk_token), 2: "<unk>" with fuse_unk,
 * 3: "<unk>" each. */
enum { TINY_UNK_NONE, TINY_UNK_DROPPED, TINY_UNK_FUSED, TINY_UNK_EACH };

/* The tokenizer as a jansson object (the caller may change it, then json_dumps it). */
static json_t *tiny_tokenizer(bool add_prefix_space, bool lowercase, int unk_mode) {
  json_t *vocab = json_object(), *merges = json_array();
  char ch[8];
  for (unsigned b = 0; b < 256; b++) {
    if (unk_mode != TINY_UNK_NONE && (b == 0xC3 || b == 0xA9 || b == 0x91)) {
      if (b == 0xC3 && unk_mode != TINY_UNK_DROPPED)
        snprintf(ch, sizeof ch, "<unk>");
      else
        snprintf(ch, sizeof ch, "<x%u>", b);
      json_object_set_new(vocab, ch, json_integer(b));
      continue;
    }
    json_object_set_new(vocab, tiny_byte_char(b, ch), json_integer(b));
  }
  for (size_t i = 0; i < TINY_N_MERGES; i++) {
    char merged[64];
    snprintf(merged, sizeof merged, "%s%s", tiny_merges[i][0], tiny_merges[i][1]);
    json_object_set_new(vocab, merged, json_integer((json_int_t)(256 + i)));
    char rule[64];
    snprintf(rule, sizeof rule, "%s %s", tiny_merges[i][0], tiny_merges[i][1]);
    json_array_append_new(merges, json_string(rule));
  }
  json_t *added = json_array();
  json_array_append_new(added, tiny_added(TINY_ID_ENDOFTEXT, "<|endoftext|>", true, false));
  json_array_append_new(added, tiny_added(TINY_ID_PAD, "<|pad|>", true, false));
  json_array_append_new(added, tiny_added(TINY_ID_HELLO_WORLD, "hello world", false, true));
  json_t *normalizer = lowercase ? json_pack("{s:s}", "type", "Lowercase") : json_null();
  json_t *t = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}}",
                   "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", normalizer,
                   "pre_tokenizer", tiny_byte_level(add_prefix_space), "post_processor", tiny_byte_level(true),
                   "decoder", tiny_byte_level(true), "model", "type", "BPE", "dropout", "unk_token",
                   "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                   "ignore_merges", 0, "vocab", vocab, "merges", merges);
  if (unk_mode == TINY_UNK_FUSED || unk_mode == TINY_UNK_EACH) {
    json_t *model = json_object_get(t, "model");
    json_object_set_new(model, "unk_token", json_string("<unk>"));
    json_object_set_new(model, "fuse_unk", json_boolean(unk_mode == TINY_UNK_FUSED));
  }
  return t;
}

/* The tokenizer's JSON text (malloc'd). */
static char *tiny_tokenizer_json(bool add_prefix_space, bool lowercase, int unk_mode) {
  json_t *t = tiny_tokenizer(add_prefix_space, lowercase, unk_mode);
  char *s = json_dumps(t, JSON_COMPACT);
  json_decref(t);
  return s;
}

#endif
