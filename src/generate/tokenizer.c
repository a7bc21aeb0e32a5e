/* Loading a Hugging Face tokenizer.json for byte-level BPE and running it: added tokens, the
 * normalizer, GPT-2's pre-tokenizer split, BPE, and the ByteLevel decoder (tokenizer.h). */
#include "generate/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "generate/bpe.h"
#include "generate/gpt2_split.h"
#include "generate/unicode_classes.h"
#include "util/jsonerr.h"
#include "util/jsonkeys.h"
#include "util/utf8.h"

/* An added token's text is matched at every position of the input: bounding its length bounds
 * that scan at O(input x TOKENIZER_MAX_ADDED_BYTES). */
#define TOKENIZER_MAX_ADDED_BYTES 256

typedef struct added_token {
  char *content; /* owned */
  size_t len;
  uint32_t id;
  bool special, normalized;
} added_token;

/* A byte trie of added tokens' texts (first-child / next-sibling lists); node 0 is the root. */
typedef struct trie_node {
  uint32_t child, sibling; /* 0: none */
  int32_t token;           /* index into added, -1: none ends here */
  unsigned char byte;
} trie_node;

typedef struct trie {
  trie_node *node; /* owned */
  size_t n, cap;
} trie;

struct tokenizer {
  /* the model's vocabulary */
  char **tok;         /* owned; by id, NULL where the vocabulary has no such id */
  uint32_t *tok_len;  /* owned */
  uint32_t n_ids;     /* the largest id (model or added) + 1 */
  uint32_t vocab_count;
  uint32_t *map;      /* owned; open addressing over tok: id + 1, 0 for an empty slot */
  size_t map_cap;
  bpe_merges merges;
  int64_t byte_id[256]; /* the id of each byte's ByteLevel character; -1: not in the vocabulary */
  bool ignore_merges, fuse_unk;
  int64_t unk_id; /* -1: none (characters not in the vocabulary are dropped, as tokenizers does) */
  /* normalizer, pre-tokenizer, decoder */
  bool lowercase;
  bool add_prefix_space, use_regex;
  bool byte_level_decoder;
  /* added tokens */
  added_token *added; /* owned */
  size_t n_added;
  trie all;       /* every added token by its content: lookups */
  trie raw;       /* "normalized": false, matched on the input as given */
  trie norm;      /* "normalized": true, matched on the normalized input */
  /* decoding, by id */
  const char **text;       /* the token's text: the added token's, else the vocabulary's */
  uint32_t *text_len;
  unsigned char **dec;     /* owned (each); the bytes the decoder makes of the token */
  uint32_t *dec_len;
  unsigned char *special;  /* owned; 1 for special added tokens */
};

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for
 * U+0100 onwards, so every byte is a visible character in the vocabulary's strings. */
static uint32_t byte_char[256];
static int16_t char_byte[0x144];

static void byte_level_tables_init(void) {
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    byte_char[b] = printable ? b : next++;
  }
  for (size_t c = 0; c < sizeof char_byte / sizeof *char_byte; c++) char_byte[c] = -1;
  for (uint32_t b = 0; b < 256; b++) char_byte[byte_char[b]] = (int16_t)b;
}

static pthread_once_t byte_level_once = PTHREAD_ONCE_INIT;

static void byte_level_tables(void) { pthread_once(&byte_level_once, byte_level_tables_init); }

static size_t utf8_put(char *out, uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18);
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---- the vocabulary's map ---- */

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  return h;
}

static int64_t vocab_get(const tokenizer *t, const char *s, size_t n) {
  if (t->map_cap == 0) return -1;
  for (size_t i = (size_t)fnv1a(s, n) & (t->map_cap - 1);; i = (i + 1) & (t->map_cap - 1)) {
    uint32_t v = t->map[i];
    if (v == 0) return -1;
    uint32_t id = v - 1;
    if (t->tok_len[id] == n && memcmp(t->tok[id], s, n) == 0) return id;
  }
}

static void vocab_put(tokenizer *t, uint32_t id) {
  size_t i = (size_t)fnv1a(t->tok[id], t->tok_len[id]) & (t->map_cap - 1);
  while (t->map[i] != 0) i = (i + 1) & (t->map_cap - 1);
  t->map[i] = id + 1;
}

/* ---- tries of added tokens ---- */

static inferd_status trie_init(trie *tr) {
  tr->cap = 64;
  tr->node = calloc(tr->cap, sizeof *tr->node);
  if (!tr->node) return status_make(INFERD_INTERNAL, "out of memory");
  tr->n = 1;
  tr->node[0].token = -1;
  return status_ok();
}

/* The node for s[0..n), created when create; 0 when absent. */
static uint32_t trie_walk(trie *tr, const char *s, size_t n, bool create) {
  uint32_t at = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    uint32_t c = tr->node[at].child;
    while (c && tr->node[c].byte != b) c = tr->node[c].sibling;
    if (!c) {
      if (!create) return 0;
      if (tr->n == tr->cap) {
        trie_node *grown = realloc(tr->node, 2 * tr->cap * sizeof *grown);
        if (!grown) return 0;
        tr->node = grown;
        tr->cap *= 2;
      }
      c = (uint32_t)tr->n++;
      tr->node[c] = (trie_node){.child = 0, .sibling = tr->node[at].child, .token = -1, .byte = b};
      tr->node[at].child = c;
    }
    at = c;
  }
  return at;
}

/* The longest added token that starts at s[0] (at most n bytes): its index, -1 if none. */
static int32_t trie_longest(const trie *tr, const char *s, size_t n, size_t *match_len) {
  int32_t best = -1;
  uint32_t at = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    uint32_t c = tr->node[at].child;
    while (c && tr->node[c].byte != b) c = tr->node[c].sibling;
    if (!c) break;
    at = c;
    if (tr->node[at].token >= 0) {
      best = tr->node[at].token;
      *match_len = i + 1;
    }
  }
  return best;
}

/* ---- destroy ---- */

void tokenizer_destroy(tokenizer *t) {
  if (!t) return;
  if (t->tok)
    for (uint32_t i = 0; i < t->n_ids; i++) free(t->tok[i]);
  if (t->dec)
    for (uint32_t i = 0; i < t->n_ids; i++) free(t->dec[i]);
  for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
  free(t->tok);
  free(t->tok_len);
  free(t->map);
  bpe_merges_free(&t->merges);
  free(t->added);
  free(t->all.node);
  free(t->raw.node);
  free(t->norm.node);
  free(t->text);
  free(t->text_len);
  free(t->dec);
  free(t->dec_len);
  free(t->special);
  free(t);
}

/* ---- loading ---- */

#define BAD(...) status_make(INFERD_INVALID_ARGUMENT, __VA_ARGS__)

static inferd_status check_keys(const char *src, const json_t *obj, const char *path, const char *const *allowed) {
  const char *unknown = jsonkeys_unknown(obj, allowed);
  if (!unknown) return status_ok();
  char list[256];
  jsonkeys_list(allowed, list, sizeof list);
  return BAD("%s: %s: unknown field \"%.64s\" (this tokenizer knows %s)", src, path, unknown, list);
}

/* A field that must be a boolean when present; *out keeps its default otherwise. */
static inferd_status get_bool(const char *src, const json_t *obj, const char *path, const char *key, bool *out) {
  const json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) return status_ok();
  if (!json_is_boolean(v)) return BAD("%s: %s.%s must be true or false", src, path, key);
  *out = json_is_true(v);
  return status_ok();
}

static const char *type_of(const json_t *obj) {
  const json_t *ty = json_object_get(obj, "type");
  return json_is_string(ty) ? json_string_value(ty) : NULL;
}

static inferd_status load_byte_level(const char *src, const json_t *obj, const char *path, bool *add_prefix_space,
                                     bool *use_regex) {
  static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
  TRY(check_keys(src, obj, path, keys));
  bool unused = true;
  TRY(get_bool(src, obj, path, "trim_offsets", &unused)); /* offsets only: ids do not change */
  bool aps = false, regex = true;
  TRY(get_bool(src, obj, path, "add_prefix_space", &aps));
  TRY(get_bool(src, obj, path, "use_regex", &regex));
  if (add_prefix_space) *add_prefix_space = aps;
  if (use_regex) *use_regex = regex;
  return status_ok();
}

static inferd_status load_normalizer(const char *src, tokenizer *t, const json_t *n, const char *path, int depth) {
  if (!n || json_is_null(n)) return status_ok();
  if (!json_is_object(n)) return BAD("%s: %s must be an object or null", src, path);
  const char *type = type_of(n);
  if (!type) return BAD("%s: %s.type must be a string", src, path);
  if (strcmp(type, "Lowercase") == 0) {
    static const char *const keys[] = {"type", NULL};
    TRY(check_keys(src, n, path, keys));
    t->lowercase = true;
    return status_ok();
  }
  if (strcmp(type, "Sequence") == 0 && depth == 0) {
    static const char *const keys[] = {"type", "normalizers", NULL};
    TRY(check_keys(src, n, path, keys));
    const json_t *list = json_object_get(n, "normalizers");
    if (!json_is_array(list)) return BAD("%s: %s.normalizers must be an array", src, path);
    for (size_t i = 0; i < json_array_size(list); i++) {
      char sub[96];
      snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
      TRY(load_normalizer(src, t, json_array_get(list, i), sub, depth + 1));
    }
    return status_ok();
  }
  if (strcmp(type, "NFC") == 0 || strcmp(type, "NFD") == 0 || strcmp(type, "NFKC") == 0 || strcmp(type, "NFKD") == 0)
    return BAD("%s: %s.type \"%s\" is not supported: Unicode normalization forms are not built in "
               "(supported normalizers: null, Lowercase, a Sequence of those)",
               src, path, type);
  return BAD("%s: %s.type \"%.64s\" is not supported (supported normalizers: null, Lowercase, a Sequence of those)",
             src, path, type);
}

/* A token of a merge rule: its id, or a message naming the rule. */
static inferd_status merge_part(const char *src, const tokenizer *t, size_t i, const char *s, size_t n, uint32_t *id) {
  int64_t v = vocab_get(t, s, n);
  if (v < 0) return BAD("%s: model.merges[%zu]: \"%.*s\" is not in model.vocab", src, i, (int)(n > 64 ? 64 : n), s);
  *id = (uint32_t)v;
  return status_ok();
}

static inferd_status load_merges(const char *src, tokenizer *t, const json_t *merges) {
  if (!json_is_array(merges)) return BAD("%s: model.merges must be an array", src);
  size_t n = json_array_size(merges);
  if (n > TOKENIZER_MAX_MERGES) return BAD("%s: model.merges has %zu rules, over the limit of %u", src, n, TOKENIZER_MAX_MERGES);
  TRY(bpe_merges_init(&t->merges, n));
  char buf[2 * TOKENIZER_MAX_TOKEN_BYTES + 1];
  int form = 0; /* 1: "a b" strings, 2: [a, b] pairs; tokenizers takes one form or the other */
  for (size_t i = 0; i < n; i++) {
    const json_t *m = json_array_get(merges, i);
    const char *a, *b;
    size_t la, lb;
    if (json_is_string(m)) {
      if (form == 2) return BAD("%s: model.merges[%zu]: a string among [a, b] pairs (use one form)", src, i);
      form = 1;
      const char *s = json_string_value(m);
      size_t len = json_string_length(m);
      const char *sp = memchr(s, ' ', len);
      if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)) || sp == s || sp + 1 == s + len)
        return BAD("%s: model.merges[%zu] must be two tokens separated by one space", src, i);
      a = s, la = (size_t)(sp - s), b = sp + 1, lb = len - la - 1;
    } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
               json_is_string(json_array_get(m, 1))) {
      if (form == 1) return BAD("%s: model.merges[%zu]: an [a, b] pair among \"a b\" strings (use one form)", src, i);
      form = 2;
      a = json_string_value(json_array_get(m, 0)), la = json_string_length(json_array_get(m, 0));
      b = json_string_value(json_array_get(m, 1)), lb = json_string_length(json_array_get(m, 1));
    } else {
      return BAD("%s: model.merges[%zu] must be a string \"a b\" or a pair [\"a\", \"b\"]", src, i);
    }
    uint32_t ia = 0, ib = 0;
    TRY(merge_part(src, t, i, a, la, &ia));
    TRY(merge_part(src, t, i, b, lb, &ib));
    if (la + lb > TOKENIZER_MAX_TOKEN_BYTES) return BAD("%s: model.merges[%zu]: the merged token is too long", src, i);
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb);
    int64_t merged = vocab_get(t, buf, la + lb);
    if (merged < 0)
      return BAD("%s: model.merges[%zu]: the merged token \"%.*s\" is not in model.vocab", src, i,
                 (int)(la + lb > 64 ? 64 : la + lb), buf);
    bpe_merges_put(&t->merges, ia, ib, (uint32_t)i, (uint32_t)merged);
  }
  return status_ok();
}

static inferd_status load_model(const char *src, tokenizer *t, const json_t *model) {
  if (!json_is_object(model)) return BAD("%s: model must be an object", src);
  const char *type = type_of(model);
  if (!type) return BAD("%s: model.type must be a string (\"BPE\")", src);
  if (strcmp(type, "BPE") != 0)
    return BAD("%s: model.type \"%.64s\" is not supported: only BPE (byte-level, as GPT-2 uses it)", src, type);
  static const char *const keys[] = {"type",      "dropout",      "unk_token",     "continuing_subword_prefix",
                                     "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges",
                                     "vocab",     "merges",       NULL};
  TRY(check_keys(src, model, "model", keys));
  const json_t *dropout = json_object_get(model, "dropout");
  if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
    return BAD("%s: model.dropout is not supported (encoding must be deterministic): use null", src);
  static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (size_t i = 0; i < 2; i++) {
    const json_t *v = json_object_get(model, affixes[i]);
    if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
      return BAD("%s: model.%s is not supported (byte-level BPE has none): use null", src, affixes[i]);
  }
  bool byte_fallback = false;
  TRY(get_bool(src, model, "model", "byte_fallback", &byte_fallback));
  if (byte_fallback) return BAD("%s: model.byte_fallback is not supported (byte-level BPE needs none): use false", src);
  TRY(get_bool(src, model, "model", "fuse_unk", &t->fuse_unk));
  TRY(get_bool(src, model, "model", "ignore_merges", &t->ignore_merges));

  const json_t *vocab = json_object_get(model, "vocab");
  if (!json_is_object(vocab)) return BAD("%s: model.vocab must be an object of token: id", src);
  size_t count = json_object_size(vocab);
  if (count > TOKENIZER_MAX_VOCAB)
    return BAD("%s: model.vocab has %zu tokens, over the limit of %u", src, count, TOKENIZER_MAX_VOCAB);
  uint32_t max_id = 0;
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)vocab, key, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > TOKENIZER_MAX_ID)
      return BAD("%s: model.vocab[\"%.64s\"] must be an id from 0 to %u", src, key, TOKENIZER_MAX_ID);
    if ((uint32_t)json_integer_value(v) > max_id) max_id = (uint32_t)json_integer_value(v);
  }
  t->n_ids = count ? max_id + 1 : 0;
  t->vocab_count = (uint32_t)count;
  t->map_cap = 16;
  while (t->map_cap < 2 * count) t->map_cap <<= 1;
  t->tok = calloc(t->n_ids ? t->n_ids : 1, sizeof *t->tok);
  t->tok_len = calloc(t->n_ids ? t->n_ids : 1, sizeof *t->tok_len);
  t->map = calloc(t->map_cap, sizeof *t->map);
  if (!t->tok || !t->tok_len || !t->map) return status_make(INFERD_INTERNAL, "out of memory for the vocabulary");
  json_object_foreach((json_t *)vocab, key, v) {
    uint32_t id = (uint32_t)json_integer_value(v);
    size_t len = strlen(key);
    if (len == 0 || len > TOKENIZER_MAX_TOKEN_BYTES)
      return BAD("%s: model.vocab[\"%.64s\"]: a token is 1 to %d bytes", src, key, TOKENIZER_MAX_TOKEN_BYTES);
    if (t->tok[id]) return BAD("%s: model.vocab[\"%.64s\"]: id %u is also \"%.64s\"", src, key, id, t->tok[id]);
    t->tok[id] = strdup(key);
    if (!t->tok[id]) return status_make(INFERD_INTERNAL, "out of memory for the vocabulary");
    t->tok_len[id] = (uint32_t)len;
    vocab_put(t, id);
  }
  const json_t *unk = json_object_get(model, "unk_token");
  t->unk_id = -1;
  if (unk && !json_is_null(unk)) {
    if (!json_is_string(unk)) return BAD("%s: model.unk_token must be a string or null", src);
    t->unk_id = vocab_get(t, json_string_value(unk), json_string_length(unk));
    if (t->unk_id < 0) return BAD("%s: model.unk_token \"%.64s\" is not in model.vocab", src, json_string_value(unk));
  }
  char ch[4];
  for (int b = 0; b < 256; b++) t->byte_id[b] = vocab_get(t, ch, utf8_put(ch, byte_char[b]));
  return load_merges(src, t, json_object_get(model, "merges"));
}

/* tokenizers gives an added token the vocabulary's id for its text when there is one, else the
 * next id after the vocabulary and the added tokens so far. The file's "id" must agree. */
static inferd_status load_added(const char *src, tokenizer *t, const json_t *list) {
  if (!list || json_is_null(list)) return status_ok();
  if (!json_is_array(list)) return BAD("%s: added_tokens must be an array", src);
  size_t n = json_array_size(list);
  if (n > TOKENIZER_MAX_ADDED) return BAD("%s: added_tokens has %zu tokens, over the limit of %d", src, n, TOKENIZER_MAX_ADDED);
  t->added = calloc(n ? n : 1, sizeof *t->added);
  if (!t->added) return status_make(INFERD_INTERNAL, "out of memory for added_tokens");
  TRY(trie_init(&t->all));
  TRY(trie_init(&t->raw));
  TRY(trie_init(&t->norm));
  int64_t max_added = -1;
  for (size_t i = 0; i < n; i++) {
    const json_t *a = json_array_get(list, i);
    char path[48];
    snprintf(path, sizeof path, "added_tokens[%zu]", i);
    if (!json_is_object(a)) return BAD("%s: %s must be an object", src, path);
    static const char *const keys[] = {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special", NULL};
    TRY(check_keys(src, a, path, keys));
    const json_t *content = json_object_get(a, "content"), *id = json_object_get(a, "id");
    if (!json_is_string(content) || json_string_length(content) == 0 ||
        json_string_length(content) > TOKENIZER_MAX_ADDED_BYTES)
      return BAD("%s: %s.content must be a string of 1 to %d bytes", src, path, TOKENIZER_MAX_ADDED_BYTES);
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > TOKENIZER_MAX_ID)
      return BAD("%s: %s.id must be an id from 0 to %u", src, path, TOKENIZER_MAX_ID);
    static const char *const refused[] = {"single_word", "lstrip", "rstrip"};
    for (size_t k = 0; k < 3; k++) {
      bool on = false;
      TRY(get_bool(src, a, path, refused[k], &on));
      if (on) return BAD("%s: %s.%s is not supported: use false", src, path, refused[k]);
    }
    bool special = false, normalized = true;
    TRY(get_bool(src, a, path, "special", &special));
    TRY(get_bool(src, a, path, "normalized", &normalized));
    const char *s = json_string_value(content);
    size_t len = json_string_length(content);
    uint32_t node = trie_walk(&t->all, s, len, true);
    if (!node) return status_make(INFERD_INTERNAL, "out of memory for added_tokens");
    int64_t want;
    if (t->all.node[node].token >= 0)
      want = t->added[t->all.node[node].token].id;
    else if ((want = vocab_get(t, s, len)) < 0)
      want = max_added < 0 ? (int64_t)t->vocab_count
             : (max_added >= (int64_t)t->vocab_count || t->vocab_count == 0) ? max_added + 1
                                                                           : (int64_t)t->vocab_count;
    if (json_integer_value(id) != want)
      return BAD("%s: %s.id is %lld, but tokenizers gives \"%.64s\" the id %lld", src, path,
                 (long long)json_integer_value(id), s, (long long)want);
    if (t->all.node[node].token >= 0) continue; /* the same text again: tokenizers keeps the first */
    if (want > max_added) max_added = want;
    added_token *at = &t->added[t->n_added];
    at->content = malloc(len + 1);
    if (!at->content) return status_make(INFERD_INTERNAL, "out of memory for added_tokens");
    memcpy(at->content, s, len + 1);
    at->len = len;
    at->id = (uint32_t)want;
    at->special = special;
    at->normalized = normalized;
    t->all.node[node].token = (int32_t)t->n_added;
    t->n_added++;
  }
  return status_ok();
}

static bool normalize(const tokenizer *t, const char *s, size_t len, char **out, size_t *out_len);

/* The decoding tables by id, and the tries added tokens are matched with. */
static inferd_status build_tables(tokenizer *t) {
  uint32_t vocab_ids = t->n_ids; /* tok[] covers [0, vocab_ids) */
  for (size_t i = 0; i < t->n_added; i++)
    if (t->added[i].id + 1 > t->n_ids) t->n_ids = t->added[i].id + 1;
  size_t n = t->n_ids ? t->n_ids : 1;
  char **tok = realloc(t->tok, n * sizeof *tok);
  if (tok) t->tok = tok;
  uint32_t *tok_len = realloc(t->tok_len, n * sizeof *tok_len);
  if (tok_len) t->tok_len = tok_len;
  if (!tok || !tok_len) return status_make(INFERD_INTERNAL, "out of memory for the decoding tables");
  for (size_t id = vocab_ids; id < n; id++) tok[id] = NULL, tok_len[id] = 0;
  t->text = calloc(n, sizeof *t->text);
  t->text_len = calloc(n, sizeof *t->text_len);
  t->dec = calloc(n, sizeof *t->dec);
  t->dec_len = calloc(n, sizeof *t->dec_len);
  t->special = calloc(n, 1);
  if (!t->text || !t->text_len || !t->dec || !t->dec_len || !t->special)
    return status_make(INFERD_INTERNAL, "out of memory for the decoding tables");
  for (uint32_t id = 0; id < t->n_ids; id++) t->text[id] = t->tok[id], t->text_len[id] = t->tok_len[id];
  for (size_t i = 0; i < t->n_added; i++) {
    const added_token *a = &t->added[i];
    t->text[a->id] = a->content;
    t->text_len[a->id] = (uint32_t)a->len;
    t->special[a->id] = a->special;
    trie *tr = a->normalized ? &t->norm : &t->raw;
    char *norm = NULL;
    size_t norm_len = a->len;
    if (a->normalized && !normalize(t, a->content, a->len, &norm, &norm_len))
      return status_make(INFERD_INTERNAL, "out of memory for added_tokens");
    uint32_t node = trie_walk(tr, norm ? norm : a->content, norm_len, true);
    free(norm);
    if (!node) return status_make(INFERD_INTERNAL, "out of memory for added_tokens");
    if (tr->node[node].token < 0) tr->node[node].token = (int32_t)i;
  }
  for (uint32_t id = 0; id < t->n_ids; id++) {
    const char *s = t->text[id];
    size_t len = t->text_len[id];
    if (!s) continue;
    unsigned char *d = malloc(len ? len : 1);
    if (!d) return status_make(INFERD_INTERNAL, "out of memory for the decoding tables");
    size_t dn = 0;
    bool mapped = t->byte_level_decoder;
    /* ByteLevel: each character back to its byte; a token with a character outside the 256
     * (an added token such as "<|endoftext|> " with a real space) decodes to its own text. */
    for (size_t p = 0; mapped && p < len;) {
      uint32_t cp;
      p += gpt2_utf8_decode(s, len, p, &cp);
      if (cp < sizeof char_byte / sizeof *char_byte && char_byte[cp] >= 0)
        d[dn++] = (unsigned char)char_byte[cp];
      else
        mapped = false;
    }
    if (!mapped) memcpy(d, s, dn = len);
    t->dec[id] = d;
    t->dec_len[id] = (uint32_t)dn;
  }
  return status_ok();
}

static inferd_status load_root(const char *src, tokenizer *t, const json_t *root) {
  if (!json_is_object(root)) return BAD("%s: the top level must be an object", src);
  static const char *const keys[] = {"version",       "truncation", "padding", "added_tokens", "normalizer",
                                     "pre_tokenizer", "post_processor", "decoder", "model", NULL};
  TRY(check_keys(src, root, "(top level)", keys));
  static const char *const nulls[] = {"truncation", "padding"};
  for (size_t i = 0; i < 2; i++) {
    const json_t *v = json_object_get(root, nulls[i]);
    if (v && !json_is_null(v)) return BAD("%s: %s is not supported: use null", src, nulls[i]);
  }
  TRY(load_model(src, t, json_object_get(root, "model")));
  TRY(load_normalizer(src, t, json_object_get(root, "normalizer"), "normalizer", 0));

  const json_t *pre = json_object_get(root, "pre_tokenizer");
  if (!json_is_object(pre))
    return BAD("%s: pre_tokenizer must be a ByteLevel pre-tokenizer (this tokenizer supports byte-level BPE)", src);
  const char *type = type_of(pre);
  if (!type || strcmp(type, "ByteLevel") != 0)
    return BAD("%s: pre_tokenizer.type \"%.64s\" is not supported: only ByteLevel (GPT-2's split)", src,
               type ? type : "(none)");
  TRY(load_byte_level(src, pre, "pre_tokenizer", &t->add_prefix_space, &t->use_regex));

  const json_t *post = json_object_get(root, "post_processor");
  if (post && !json_is_null(post)) {
    type = json_is_object(post) ? type_of(post) : NULL;
    if (!type || strcmp(type, "ByteLevel") != 0)
      return BAD("%s: post_processor.type \"%.64s\" is not supported: only null or ByteLevel (which add no ids)", src,
                 type ? type : "(none)");
    TRY(load_byte_level(src, post, "post_processor", NULL, NULL));
  }
  const json_t *dec = json_object_get(root, "decoder");
  if (dec && !json_is_null(dec)) {
    type = json_is_object(dec) ? type_of(dec) : NULL;
    if (!type || strcmp(type, "ByteLevel") != 0)
      return BAD("%s: decoder.type \"%.64s\" is not supported: only null or ByteLevel", src, type ? type : "(none)");
    TRY(load_byte_level(src, dec, "decoder", NULL, NULL));
    t->byte_level_decoder = true;
  }
  TRY(load_added(src, t, json_object_get(root, "added_tokens")));
  if (!t->all.node) { /* no added_tokens: empty tries */
    TRY(trie_init(&t->all));
    TRY(trie_init(&t->raw));
    TRY(trie_init(&t->norm));
  }
  return build_tables(t);
}

inferd_status tokenizer_load(const char *json, size_t len, const char *source, tokenizer **out) {
  *out = NULL;
  byte_level_tables();
  if (len > TOKENIZER_MAX_FILE_BYTES)
    return BAD("%s: %zu bytes, over the limit of %u", source, len, TOKENIZER_MAX_FILE_BYTES);
  json_error_t err;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (!root) {
    char where[300];
    return BAD("%s: not valid JSON: %s", source, jsonerr_describe(&err, where, sizeof where));
  }
  tokenizer *t = calloc(1, sizeof *t);
  inferd_status st = t ? load_root(source, t, root) : status_make(INFERD_INTERNAL, "out of memory");
  json_decref(root);
  if (!status_is_ok(&st)) {
    tokenizer_destroy(t);
    return st;
  }
  *out = t;
  return status_ok();
}

inferd_status tokenizer_load_file(const char *path, tokenizer **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return status_make(INFERD_NOT_FOUND, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return BAD("%s: not a regular file", path);
  }
  if ((unsigned long long)sb.st_size > TOKENIZER_MAX_FILE_BYTES) {
    fclose(f);
    return BAD("%s: %lld bytes, over the limit of %u", path, (long long)sb.st_size, TOKENIZER_MAX_FILE_BYTES);
  }
  size_t len = (size_t)sb.st_size;
  char *buf = malloc(len ? len : 1);
  if (!buf) {
    fclose(f);
    return status_make(INFERD_INTERNAL, "out of memory reading %s", path);
  }
  size_t got = fread(buf, 1, len, f);
  fclose(f);
  if (got != len) {
    free(buf);
    return status_make(INFERD_INTERNAL, "%s: read %zu of %zu bytes", path, got, len);
  }
  inferd_status st = tokenizer_load(buf, len, path, out);
  free(buf);
  return st;
}

/* ---- encoding ---- */

static bool normalize(const tokenizer *t, const char *s, size_t len, char **out, size_t *out_len) {
  *out = NULL;
  *out_len = len;
  if (!t->lowercase) return true;
  /* A lowercase mapping at most doubles a character's UTF-8 (U+0130, 2 bytes, gives 3). */
  char *d = malloc(2 * len + 1);
  if (!d) return false;
  size_t dn = 0;
  for (size_t p = 0; p < len;) {
    uint32_t cp, low[2];
    p += gpt2_utf8_decode(s, len, p, &cp);
    size_t k = unicode_to_lower(cp, low);
    for (size_t j = 0; j < k; j++) dn += utf8_put(d + dn, low[j]);
  }
  *out = d;
  *out_len = dn;
  return true;
}

typedef struct encoder {
  const tokenizer *t;
  uint32_t *ids; /* owned until handed to the caller */
  size_t n, cap;
  uint32_t *word; /* owned: one word's symbols */
  size_t word_cap;
  char *buf; /* owned: the prefix-spaced piece, the mapped word */
  size_t buf_cap;
  bpe_scratch scratch;
} encoder;

/* The encoding path returns bools (false: out of memory), not 516-byte statuses. */
static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return false;
  *p = q;
  *cap = c;
  return true;
}

static bool emit(encoder *e, const uint32_t *ids, size_t n) {
  if (n == 0) return true; /* a word of dropped characters: ids may still be NULL */
  if (!(grow((void **)&e->ids, &e->cap, e->n + n, sizeof *e->ids))) return false;
  memcpy(e->ids + e->n, ids, n * sizeof *ids);
  e->n += n;
  return true;
}

/* One pre-tokenized word (raw bytes) through the BPE model. */
static bool encode_word(encoder *e, const char *w, size_t len) {
  const tokenizer *t = e->t;
  if (t->ignore_merges) { /* a word that is a token is that token */
    if (!(grow((void **)&e->buf, &e->buf_cap, 2 * len, 1))) return false;
    size_t m = 0;
    for (size_t i = 0; i < len; i++) m += utf8_put(e->buf + m, byte_char[(unsigned char)w[i]]);
    int64_t id = vocab_get(t, e->buf, m);
    if (id >= 0) {
      uint32_t one = (uint32_t)id;
      return emit(e, &one, 1);
    }
  }
  if (!(grow((void **)&e->word, &e->word_cap, len, sizeof *e->word))) return false;
  size_t n = 0;
  bool pending_unk = false;
  for (size_t i = 0; i < len; i++) {
    int64_t id = t->byte_id[(unsigned char)w[i]];
    if (id >= 0) {
      if (pending_unk) e->word[n++] = (uint32_t)t->unk_id, pending_unk = false;
      e->word[n++] = (uint32_t)id;
    } else if (t->unk_id >= 0) { /* tokenizers: consecutive unknowns fuse into one with fuse_unk */
      if (pending_unk && !t->fuse_unk) e->word[n++] = (uint32_t)t->unk_id;
      pending_unk = true;
    } /* no unk_token: the character is dropped */
  }
  if (pending_unk) e->word[n++] = (uint32_t)t->unk_id;
  if (!(bpe_merge_word(&t->merges, &e->scratch, e->word, &n))) return false;
  return emit(e, e->word, n);
}

/* A piece between added tokens, normalized: the ByteLevel pre-tokenizer, then BPE per word. */
static bool encode_text(encoder *e, const char *s, size_t len) {
  const tokenizer *t = e->t;
  if (len == 0) return true;
  if (t->add_prefix_space && s[0] != ' ') {
    /* a copy, not e->buf: encode_word uses that for each word */
    char *copy = malloc(len + 1);
    if (!copy) return false;
    copy[0] = ' ';
    memcpy(copy + 1, s, len);
    bool ok = true;
    size_t n = len + 1;
    for (size_t pos = 0; pos < n && ok;) {
      size_t end = t->use_regex ? gpt2_split_next(copy, n, pos) : n;
      ok = encode_word(e, copy + pos, end - pos);
      pos = end;
    }
    free(copy);
    return ok;
  }
  for (size_t pos = 0; pos < len;) {
    size_t end = t->use_regex ? gpt2_split_next(s, len, pos) : len;
    if (!(encode_word(e, s + pos, end - pos))) return false;
    pos = end;
  }
  return true;
}

/* Splits s[0..len) at the added tokens of tr (leftmost match, then longest). The pieces between
 * are normalized and split again at the normalized added tokens (the first pass, over the text
 * as given), or pre-tokenized and encoded (the second, over normalized text). */
static bool split_added(encoder *e, const trie *tr, const char *s, size_t len, bool normalized);

static bool encode_between(encoder *e, const char *s, size_t len, bool normalized) {
  if (len == 0) return true;
  if (normalized) return encode_text(e, s, len);
  char *norm;
  size_t norm_len;
  if (!(normalize(e->t, s, len, &norm, &norm_len))) return false;
  bool ok = split_added(e, &e->t->norm, norm ? norm : s, norm_len, true);
  free(norm);
  return ok;
}

static bool split_added(encoder *e, const trie *tr, const char *s, size_t len, bool normalized) {
  size_t start = 0;
  if (tr->node[0].child)
    for (size_t i = 0; i < len;) {
      size_t m = 0;
      int32_t k = trie_longest(tr, s + i, len - i, &m);
      if (k < 0) {
        i++;
        continue;
      }
      if (!(encode_between(e, s + start, i - start, normalized))) return false;
      if (!(emit(e, &e->t->added[k].id, 1))) return false;
      i += m;
      start = i;
    }
  return encode_between(e, s + start, len - start, normalized);
}

inferd_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, uint32_t **ids, size_t *n) {
  *ids = NULL;
  *n = 0;
  if (len > TOKENIZER_MAX_INPUT_BYTES)
    return BAD("the text is %zu bytes, over the limit of %u", len, TOKENIZER_MAX_INPUT_BYTES);
  size_t bad;
  if (!utf8_valid(text, len, &bad)) return BAD("the text is not valid UTF-8 (at byte %zu)", bad);
  encoder e = {.t = t};
  bool ok = split_added(&e, &t->raw, text, len, false);
  free(e.word);
  free(e.buf);
  bpe_scratch_free(&e.scratch);
  if (!ok) {
    free(e.ids);
    return status_make(INFERD_INTERNAL, "out of memory encoding %zu bytes", len);
  }
  *ids = e.ids;
  *n = e.n;
  return status_ok();
}

/* ---- decoding ---- */

size_t tokenizer_utf8_lossy(const unsigned char *b, size_t n, bool final, char *out, size_t *pos) {
  size_t i = 0, o = *pos;
  while (i < n) {
    unsigned char c = b[i];
    if (c < 0x80) {
      out[o++] = (char)c;
      i++;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range (RFC 3629's table) */
    if (c >= 0xC2 && c <= 0xDF)
      need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else { /* a continuation byte or a byte that never starts a sequence */
      o += utf8_put(out + o, 0xFFFD);
      i++;
      continue;
    }
    size_t k = 1;
    while (k <= need && i + k < n) {
      unsigned char x = b[i + k];
      if (x < (k == 1 ? lo : 0x80) || x > (k == 1 ? hi : 0xBF)) break;
      k++;
    }
    if (k > need) { /* complete */
      memcpy(out + o, b + i, k);
      o += k;
      i += k;
    } else if (i + k == n && !final) { /* a valid start cut by the end: wait for the rest */
      break;
    } else { /* the maximal invalid subpart b[i..i+k) is one U+FFFD */
      o += utf8_put(out + o, 0xFFFD);
      i += k;
    }
  }
  *pos = o;
  return i;
}

static bool decodable(const tokenizer *t, uint32_t id, bool skip_special) {
  return id < t->n_ids && t->text[id] && !(skip_special && t->special[id]);
}

inferd_status tokenizer_decode(const tokenizer *t, const uint32_t *ids, size_t n, bool skip_special, char **text,
                               size_t *text_len) {
  *text = NULL;
  *text_len = 0;
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    if (decodable(t, ids[i], skip_special)) total += t->dec_len[ids[i]] + 1;
  unsigned char *bytes = malloc(total + 1);
  char *out = malloc(3 * total + 1);
  if (!bytes || !out) {
    free(bytes);
    free(out);
    return status_make(INFERD_INTERNAL, "out of memory decoding %zu ids", n);
  }
  size_t bn = 0;
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (!decodable(t, ids[i], skip_special)) continue;
    if (!t->byte_level_decoder && !first) bytes[bn++] = ' '; /* no decoder: tokens joined by spaces */
    memcpy(bytes + bn, t->dec[ids[i]], t->dec_len[ids[i]]);
    bn += t->dec_len[ids[i]];
    first = false;
  }
  size_t on = 0;
  tokenizer_utf8_lossy(bytes, bn, true, out, &on);
  free(bytes);
  out[on] = '\0';
  *text = out;
  *text_len = on;
  return status_ok();
}

void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t, bool skip_special) {
  memset(s, 0, sizeof *s);
  s->t = t;
  s->skip_special = skip_special;
}

void tokenizer_stream_push(tokenizer_stream *s, uint32_t id, char *out, size_t cap, size_t *out_len) {
  const tokenizer *t = s->t;
  *out_len = 0;
  if (cap) out[0] = '\0';
  if (!decodable(t, id, s->skip_special) || cap < TOKENIZER_STREAM_MAX_OUT) return;
  unsigned char buf[4 + TOKENIZER_MAX_TOKEN_BYTES + 1];
  size_t n = 0;
  if (!t->byte_level_decoder && s->started) buf[n++] = ' ';
  memcpy(buf + n, s->held, s->n_held);
  n += s->n_held;
  memcpy(buf + n, t->dec[id], t->dec_len[id]);
  n += t->dec_len[id];
  s->started = true;
  size_t used = tokenizer_utf8_lossy(buf, n, false, out, out_len);
  s->n_held = n - used; /* under 4: an incomplete sequence */
  memcpy(s->held, buf + used, s->n_held);
  out[*out_len] = '\0';
}

void tokenizer_stream_finish(tokenizer_stream *s, char *out, size_t cap, size_t *out_len) {
  *out_len = 0;
  if (cap < TOKENIZER_STREAM_MAX_OUT) {
    if (cap) out[0] = '\0';
    return;
  }
  tokenizer_utf8_lossy(s->held, s->n_held, true, out, out_len);
  out[*out_len] = '\0';
  s->n_held = 0;
}

/* ---- lookups ---- */

size_t tokenizer_vocab_size(const tokenizer *t) {
  size_t n = 0;
  for (uint32_t id = 0; id < t->n_ids; id++) n += t->text[id] != NULL;
  return n;
}

int64_t tokenizer_token_id(const tokenizer *t, const char *token, size_t len) {
  uint32_t node = trie_walk((trie *)&t->all, token, len, false);
  if (node && t->all.node[node].token >= 0) return t->added[t->all.node[node].token].id;
  return vocab_get(t, token, len);
}

const char *tokenizer_id_token(const tokenizer *t, uint32_t id) { return id < t->n_ids ? t->text[id] : NULL; }

bool tokenizer_is_special(const tokenizer *t, uint32_t id) { return id < t->n_ids && t->special[id]; }
