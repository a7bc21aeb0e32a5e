/* The tokenizer's pieces: GPT-2's split, the Unicode classes, lowercasing, the BPE merge order,
 * lossy UTF-8, loading (what is refused and where), encoding with added tokens, decoding and
 * incremental decoding. The whole against Hugging Face's own ids is
 * tests/e2e/test_tokenizer_reference.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../tokenizer/tiny_tokenizer.h"
#include "generate/bpe.h"
#include "generate/gpt2_split.h"
#include "generate/tokenizer.h"
#include "generate/unicode_classes.h"

/* The pieces of s joined by '|'. */
static void split(const char *s, char *out) {
  size_t len = strlen(s), o = 0;
  for (size_t pos = 0; pos < len;) {
    size_t end = gpt2_split_next(s, len, pos);
    assert_true(end > pos && end <= len);
    if (pos) out[o++] = '|';
    memcpy(out + o, s + pos, end - pos);
    o += end - pos;
    pos = end;
  }
  out[o] = '\0';
}

static void test_gpt2_split(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"Hello world", "Hello| world"},
      {"Hello  world", "Hello| | world"},     /* the last space of a run joins the word */
      {"a\n\nb", "a|\n|\n|b"},                /* ... but a newline does not: it stands alone */
      {"x   ", "x|   "},                      /* a run at the end stays whole */
      {"it's they'll I'M", "it|'s| they|'ll| I|'|M"}, /* contractions are lowercase only */
      {"'tis", "'t|is"},
      {"?'s", "?'|s"},                        /* an apostrophe inside punctuation is punctuation */
      {" 123abc 4.5", " 123|abc| 4|.|5"},
      {"日本語。テスト", "日本語|。|テスト"},
      {"\xd9\xa1\xd9\xa2 x", "\xd9\xa1\xd9\xa2| x"},  /* Arabic-Indic digits are numbers */
      {"a \xc2\xa0" "b", "a| |\xc2\xa0|b"},    /* NBSP is whitespace, but only " " joins a word */
      {"e\xcc\x81t\xc3\xa9", "e|\xcc\x81|t\xc3\xa9"}, /* a combining mark is not a letter */
      {"\xf0\x9f\x98\x80!! x", "\xf0\x9f\x98\x80!!| x"},
      {" ", " "},
      {"\t x", "\t| x"},
  };
  char out[256];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    split(cases[i][0], out);
    assert_string_equal(out, cases[i][1]);
  }
}

static void test_unicode_classes(void **state) {
  (void)state;
  assert_int_equal(unicode_class_of('a'), UNICODE_LETTER);
  assert_int_equal(unicode_class_of(0xE9), UNICODE_LETTER);    /* é */
  assert_int_equal(unicode_class_of(0x65E5), UNICODE_LETTER);  /* 日 */
  assert_int_equal(unicode_class_of(0x0663), UNICODE_NUMBER);  /* ٣ (Nd) */
  assert_int_equal(unicode_class_of(0xBD), UNICODE_NUMBER);    /* ½ (No) */
  assert_int_equal(unicode_class_of(0x216B), UNICODE_NUMBER);  /* Ⅻ (Nl) */
  assert_int_equal(unicode_class_of(0x3000), UNICODE_SPACE);
  assert_int_equal(unicode_class_of(0x85), UNICODE_SPACE);     /* Oniguruma's \s has NEL */
  assert_int_equal(unicode_class_of(0x2029), UNICODE_SPACE);
  assert_int_equal(unicode_class_of(0xFEFF), UNICODE_OTHER);   /* ... and not the BOM */
  assert_int_equal(unicode_class_of(0x200B), UNICODE_OTHER);
  assert_int_equal(unicode_class_of(0x0301), UNICODE_OTHER);   /* combining acute (Mn) */
  assert_int_equal(unicode_class_of(0x1F600), UNICODE_OTHER);
  assert_int_equal(unicode_class_of(0x10FFFF), UNICODE_OTHER);
  uint32_t low[2];
  assert_int_equal(unicode_to_lower('Q', low), 1);
  assert_int_equal(low[0], 'q');
  assert_int_equal(unicode_to_lower(0x3A3, low), 1); /* Σ -> σ, never the final ς */
  assert_int_equal(low[0], 0x3C3);
  assert_int_equal(unicode_to_lower(0x130, low), 2); /* İ -> i + combining dot */
  assert_int_equal(low[0], 'i');
  assert_int_equal(low[1], 0x307);
  assert_int_equal(unicode_to_lower(0xDF, low), 1); /* ß stays */
  assert_int_equal(low[0], 0xDF);
}

static void test_bpe_merge_order(void **state) {
  (void)state;
  bpe_merges m;
  assert_int_equal(bpe_merges_init(&m, 8).code, INFERD_OK);
  enum { A = 1, B = 2, C = 3, AA = 10, BC = 11, AB = 12, A_BC = 13, AAA = 14 };
  bpe_merges_put(&m, B, C, 0, BC);    /* rank 0: first */
  bpe_merges_put(&m, A, B, 1, AB);
  bpe_merges_put(&m, A, BC, 2, A_BC);
  bpe_merges_put(&m, A, A, 3, AA);
  bpe_merges_put(&m, AA, A, 4, AAA);
  bpe_scratch s = {0};
  uint32_t w1[] = {A, B, C};
  size_t n = 3;
  assert_true(bpe_merge_word(&m, &s, w1, &n));
  assert_int_equal(n, 1); /* b+c before a+b, then a+bc */
  assert_int_equal(w1[0], A_BC);
  uint32_t w2[] = {A, A, A, A, A};
  n = 5;
  assert_true(bpe_merge_word(&m, &s, w2, &n));
  /* equal ranks go leftmost first: (aa)(aa)a, then aa+a is only formed at the end: aa, aaa */
  assert_int_equal(n, 2);
  assert_int_equal(w2[0], AA);
  assert_int_equal(w2[1], AAA);
  uint32_t w3[] = {C, B, A};
  n = 3;
  assert_true(bpe_merge_word(&m, &s, w3, &n));
  assert_int_equal(n, 3);
  bpe_merges_put(&m, A, B, 5, AB); /* a later rule for the same pair replaces the earlier */
  uint32_t r, mg;
  assert_true(bpe_merges_get(&m, A, B, &r, &mg));
  assert_int_equal(r, 5);
  bpe_scratch_free(&s);
  bpe_merges_free(&m);
}

static void lossy(const char *in, size_t n, bool final, const char *want, size_t want_used) {
  char out[64];
  size_t pos = 0;
  size_t used = tokenizer_utf8_lossy((const unsigned char *)in, n, final, out, &pos);
  out[pos] = '\0';
  assert_string_equal(out, want);
  assert_int_equal(used, want_used);
}

static void test_utf8_lossy(void **state) {
  (void)state;
  lossy("ab", 2, true, "ab", 2);
  lossy("\xe2\x82", 2, true, "\xef\xbf\xbd", 2);          /* cut sequence: one U+FFFD */
  lossy("\xe2\x82" "A", 3, true, "\xef\xbf\xbd" "A", 3);
  lossy("x\xf0\x9f\x98", 4, false, "x", 1);                /* held back: may still complete */
  lossy("\x80\x80", 2, false, "\xef\xbf\xbd\xef\xbf\xbd", 2); /* lone continuations */
  lossy("\xed\xa0\x80", 3, true, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3); /* a surrogate */
  lossy("\xf4\x90\x80\x80", 4, true, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 4);
  lossy("\xc0\xaf", 2, true, "\xef\xbf\xbd\xef\xbf\xbd", 2); /* overlong */
  lossy("\xf0\x9f\x98\x80", 4, false, "\xf0\x9f\x98\x80", 4);
}

static tokenizer *load_tiny_unk(bool add_prefix_space, bool lowercase, int unk_mode) {
  char *json = tiny_tokenizer_json(add_prefix_space, lowercase, unk_mode);
  tokenizer *t = NULL;
  inferd_status st = tokenizer_load(json, strlen(json), "tiny.json", &t);
  free(json);
  if (st.code != INFERD_OK) fail_msg("%s", st.msg);
  return t;
}

static tokenizer *load_tiny(bool add_prefix_space, bool lowercase) {
  return load_tiny_unk(add_prefix_space, lowercase, TINY_UNK_NONE);
}

static void expect_ids_n(const tokenizer *t, const char *text, size_t len, const uint32_t *want, size_t n_want) {
  uint32_t *ids;
  size_t n;
  inferd_status st = tokenizer_encode(t, text, len, &ids, &n);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(n, n_want);
  for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
  free(ids);
}

static void expect_ids(const tokenizer *t, const char *text, const uint32_t *want, size_t n_want) {
  expect_ids_n(t, text, strlen(text), want, n_want);
}

#define M(i) (256 + (i)) /* the id of tiny_merges[i]'s result */

static void test_encode(void **state) {
  (void)state;
  tokenizer *t = load_tiny(false, false);
  assert_int_equal(tokenizer_vocab_size(t), 256 + TINY_N_MERGES + 3);
  expect_ids(t, "hello world", (uint32_t[]){TINY_ID_HELLO_WORLD}, 1); /* the added token wins */
  expect_ids(t, "hello  world", (uint32_t[]){M(3), ' ', M(8)}, 3);
  expect_ids(t, "hello<|endoftext|> the<|pad|>", (uint32_t[]){M(3), TINY_ID_ENDOFTEXT, M(10), TINY_ID_PAD}, 4);
  expect_ids(t, "<|endoftext|", (uint32_t[]){'<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|'}, 12);
  expect_ids(t, "it's", (uint32_t[]){M(18), M(19)}, 2);
  expect_ids(t, "aaaaa", (uint32_t[]){M(16), 'a'}, 2);
  expect_ids(t, "\xf0\x9f\x98\x80", (uint32_t[]){M(14), 0x80}, 2); /* 😀: three bytes merged, one not */
  expect_ids(t, "", NULL, 0);
  expect_ids_n(t, "a\0b", 3, (uint32_t[]){'a', 0, 'b'}, 3); /* NUL is a character like another */
  /* HELLO: no Lowercase normalizer, so no merges apply to capitals */
  expect_ids(t, "HE", (uint32_t[]){'H', 'E'}, 2);
  tokenizer_destroy(t);

  t = load_tiny(true, true); /* add_prefix_space, Lowercase */
  expect_ids(t, "HELLO  World", (uint32_t[]){' ', M(3), ' ', M(8)}, 4);
  /* each piece between added tokens gets its own prefix space; "HELLO WORLD" lowercased matches
   * the normalized added token (and, a token, gets none) */
  expect_ids(t, "<|pad|>the<|pad|>HELLO WORLD", (uint32_t[]){TINY_ID_PAD, M(10), TINY_ID_PAD, TINY_ID_HELLO_WORLD}, 4);
  tokenizer_destroy(t);
}

/* "é" is C3 A9 and "ő" C5 91: the characters of C3, A9 and 91 are not in these vocabularies. */
static void test_unknown_characters(void **state) {
  (void)state;
  tokenizer *t = load_tiny_unk(false, false, TINY_UNK_DROPPED);
  expect_ids(t, "\xc3\xa9\xc5\x91x", (uint32_t[]){0xC5, 'x'}, 2);
  expect_ids(t, "\xc3\xa9", NULL, 0);
  tokenizer_destroy(t);
  t = load_tiny_unk(false, false, TINY_UNK_FUSED); /* <unk> has the id 0xC3 */
  expect_ids(t, "\xc3\xa9\xc5\x91x", (uint32_t[]){0xC3, 0xC5, 0xC3, 'x'}, 4);
  tokenizer_destroy(t);
  t = load_tiny_unk(false, false, TINY_UNK_EACH);
  expect_ids(t, "\xc3\xa9\xc5\x91x", (uint32_t[]){0xC3, 0xC3, 0xC5, 0xC3, 'x'}, 5);
  tokenizer_destroy(t);
}

static void test_encode_refuses(void **state) {
  (void)state;
  tokenizer *t = load_tiny(false, false);
  uint32_t *ids;
  size_t n;
  inferd_status st = tokenizer_encode(t, "ab\xff", 3, &ids, &n);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "not valid UTF-8 (at byte 2)"));
  st = tokenizer_encode(t, "x", TOKENIZER_MAX_INPUT_BYTES + 1, &ids, &n); /* refused before reading */
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "over the limit"));
  tokenizer_destroy(t);
}

static void test_decode_and_stream(void **state) {
  (void)state;
  tokenizer *t = load_tiny(false, false);
  uint32_t ids[] = {M(3), TINY_ID_ENDOFTEXT, M(8), 99999, M(14), 0x80, TINY_ID_HELLO_WORLD};
  char *text;
  size_t len;
  assert_int_equal(tokenizer_decode(t, ids, 7, false, &text, &len).code, INFERD_OK);
  assert_string_equal(text, "hello<|endoftext|> world\xf0\x9f\x98\x80hello world");
  free(text);
  assert_int_equal(tokenizer_decode(t, ids, 7, true, &text, &len).code, INFERD_OK);
  assert_string_equal(text, "hello world\xf0\x9f\x98\x80hello world"); /* the non-special added token stays */
  free(text);
  uint32_t cut[] = {'a', M(14)};
  assert_int_equal(tokenizer_decode(t, cut, 2, false, &text, &len).code, INFERD_OK);
  assert_string_equal(text, "a\xef\xbf\xbd");
  free(text);

  static char out[TOKENIZER_STREAM_MAX_OUT];
  size_t n;
  tokenizer_stream s;
  tokenizer_stream_init(&s, t, true);
  tokenizer_stream_push(&s, M(3), out, sizeof out, &n);
  assert_string_equal(out, "hello");
  tokenizer_stream_push(&s, TINY_ID_ENDOFTEXT, out, sizeof out, &n);
  assert_string_equal(out, "");
  tokenizer_stream_push(&s, M(14), out, sizeof out, &n); /* 3 of 😀's 4 bytes: held back */
  assert_int_equal(n, 0);
  tokenizer_stream_push(&s, 0x80, out, sizeof out, &n);
  assert_string_equal(out, "\xf0\x9f\x98\x80");
  tokenizer_stream_push(&s, 0xE6, out, sizeof out, &n); /* a lead byte, then the end */
  assert_int_equal(n, 0);
  tokenizer_stream_finish(&s, out, sizeof out, &n);
  assert_string_equal(out, "\xef\xbf\xbd");
  tokenizer_stream_push(&s, 'x', out, 8, &n); /* too small a buffer: nothing, never past it */
  assert_int_equal(n, 0);
  tokenizer_destroy(t);
}

static void test_lookups(void **state) {
  (void)state;
  tokenizer *t = load_tiny(false, false);
  assert_int_equal(tokenizer_token_id(t, "<|pad|>", 7), TINY_ID_PAD);
  assert_int_equal(tokenizer_token_id(t, "hello", 5), M(3));
  assert_int_equal(tokenizer_token_id(t, "nope!", 5), -1);
  assert_string_equal(tokenizer_id_token(t, M(10)), "Ġthe");
  assert_null(tokenizer_id_token(t, 1u << 30));
  assert_true(tokenizer_is_special(t, TINY_ID_ENDOFTEXT));
  assert_false(tokenizer_is_special(t, TINY_ID_HELLO_WORLD));
  assert_false(tokenizer_is_special(t, 1u << 30));
  tokenizer_destroy(t);
}

/* Loads tiny with one change (fn) and expects a refusal whose message has want. */
static void refused(void (*change)(json_t *), const char *want) {
  json_t *j = tiny_tokenizer(false, false, TINY_UNK_NONE);
  change(j);
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  tokenizer *t = NULL;
  inferd_status st = tokenizer_load(s, strlen(s), "tiny.json", &t);
  free(s);
  assert_null(t);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  if (!strstr(st.msg, want)) fail_msg("\"%s\" lacks \"%s\"", st.msg, want);
}

static json_t *model(json_t *j) { return json_object_get(j, "model"); }
static void set_wordpiece(json_t *j) { json_object_set_new(model(j), "type", json_string("WordPiece")); }
static void set_nfkc(json_t *j) { json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "NFKC")); }
static void set_metaspace(json_t *j) { json_object_set_new(j, "pre_tokenizer", json_pack("{s:s}", "type", "Metaspace")); }
static void set_bad_merge(json_t *j) {
  json_array_set_new(json_object_get(model(j), "merges"), 2, json_string("l zz"));
}
static void set_merge_not_in_vocab(json_t *j) {
  json_array_set_new(json_object_get(model(j), "merges"), 1, json_string("q q"));
}
static void set_dup_id(json_t *j) { json_object_set_new(json_object_get(model(j), "vocab"), "zz", json_integer(5)); }
static void set_big_id(json_t *j) { json_object_set_new(json_object_get(model(j), "vocab"), "zz", json_integer(1 << 30)); }
static void set_rstrip(json_t *j) {
  json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 1), "rstrip", json_true());
}
static void set_added_id(json_t *j) {
  json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 0), "id", json_integer(3));
}
static void set_unk_missing(json_t *j) { json_object_set_new(model(j), "unk_token", json_string("<unk>")); }
static void set_prefix(json_t *j) { json_object_set_new(model(j), "continuing_subword_prefix", json_string("##")); }
static void set_decoder(json_t *j) { json_object_set_new(j, "decoder", json_pack("{s:s}", "type", "Metaspace")); }
static void set_unknown_key(json_t *j) {
  json_object_set_new(json_object_get(j, "pre_tokenizer"), "prepend_scheme", json_string("first"));
}

static void test_load_refuses(void **state) {
  (void)state;
  refused(set_wordpiece, "tiny.json: model.type \"WordPiece\" is not supported: only BPE");
  refused(set_nfkc, "normalizer.type \"NFKC\" is not supported");
  refused(set_metaspace, "pre_tokenizer.type \"Metaspace\" is not supported");
  refused(set_bad_merge, "model.merges[2]: \"zz\" is not in model.vocab");
  refused(set_merge_not_in_vocab, "model.merges[1]: the merged token \"qq\" is not in model.vocab");
  refused(set_dup_id, "model.vocab[\"zz\"]: id 5 is also");
  refused(set_big_id, "model.vocab[\"zz\"] must be an id from 0 to");
  refused(set_rstrip, "added_tokens[1].rstrip is not supported");
  refused(set_added_id, "added_tokens[0].id is 3, but tokenizers gives \"<|endoftext|>\" the id 276");
  refused(set_unk_missing, "model.unk_token \"<unk>\" is not in model.vocab");
  refused(set_prefix, "model.continuing_subword_prefix is not supported");
  refused(set_decoder, "decoder.type \"Metaspace\" is not supported");
  refused(set_unknown_key, "pre_tokenizer: unknown field \"prepend_scheme\"");

  tokenizer *t = NULL;
  inferd_status st = tokenizer_load("{\"model\": [1,", 13, "x.json", &t);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "x.json: not valid JSON: line 1"));
  st = tokenizer_load("{}", 2, "x.json", &t);
  assert_non_null(strstr(st.msg, "x.json: model must be an object"));
  st = tokenizer_load_file("/nonexistent/tokenizer.json", &t);
  assert_int_equal(st.code, INFERD_NOT_FOUND);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gpt2_split),   cmocka_unit_test(test_unicode_classes), cmocka_unit_test(test_bpe_merge_order),
      cmocka_unit_test(test_utf8_lossy),   cmocka_unit_test(test_encode),          cmocka_unit_test(test_encode_refuses),
      cmocka_unit_test(test_unknown_characters),
      cmocka_unit_test(test_decode_and_stream), cmocka_unit_test(test_lookups),    cmocka_unit_test(test_load_refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
