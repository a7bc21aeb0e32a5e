/* generate/sampling and genconfig: the seeded RNG, penalties, greedy / temperature / top_k /
 * top_p choice, log-probabilities, stop sequences split across pieces, the "generate" section's
 * parsing and the chat template. The engine's batching against each sequence alone is
 * tests/e2e/test_generate.py. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "generate/genconfig.h"
#include "generate/sampling.h"

static void test_rng_seeded(void **state) {
  (void)state;
  gen_rng a, b, c;
  gen_rng_seed(&a, 42);
  gen_rng_seed(&b, 42);
  gen_rng_seed(&c, 43);
  int same_c = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = gen_rng_next(&a), y = gen_rng_next(&b), z = gen_rng_next(&c);
    assert_true(x == y);
    same_c += x == z;
  }
  assert_int_equal(same_c, 0);
  /* a fixed value: the same seed gives the same draws on every machine and build */
  gen_rng_seed(&a, 0);
  uint64_t first = gen_rng_next(&a);
  gen_rng_seed(&a, 0);
  assert_true(first == gen_rng_next(&a));
  for (int i = 0; i < 10000; i++) {
    double u = gen_rng_uniform(&a);
    assert_true(u >= 0 && u < 1);
  }
}

static void test_penalties(void **state) {
  (void)state;
  float l[5] = {1, 1, 1, 1, 1};
  uint32_t hist[] = {3, 1, 3, 3, 9 /* out of the vocabulary: ignored */}, scratch[5];
  sample_apply_penalties(l, 5, hist, 5, 0.5, 0.25, scratch);
  assert_float_equal(l[0], 1, 1e-6);
  assert_float_equal(l[1], 1 - 0.5 - 0.25, 1e-6);
  assert_float_equal(l[3], 1 - 0.5 - 3 * 0.25, 1e-6);
  assert_float_equal(l[4], 1, 1e-6);
  float m[2] = {2, 2};
  sample_apply_penalties(m, 2, hist, 0, 1, 1, scratch); /* nothing generated: no change */
  assert_float_equal(m[0], 2, 0);
  uint32_t h2[] = {0};
  sample_apply_penalties(m, 2, h2, 1, -1, 0, scratch); /* a negative penalty encourages */
  assert_float_equal(m[0], 3, 1e-6);
}

static void test_greedy(void **state) {
  (void)state;
  float l[6] = {0.1f, 2.0f, -1, 2.0f, 1.9f, 0};
  sample_cand c[6];
  gen_rng r;
  gen_rng_seed(&r, 1);
  sample_params p = {.temperature = 0, .top_p = 1};
  assert_int_equal(sample_choose(l, 6, &p, &r, c), 1); /* a tie: the lower id */
}

/* Draw counts over many draws of a small distribution. */
static void draws(const float *l, size_t V, const sample_params *p, uint64_t seed, int n, int *count) {
  sample_cand c[16];
  gen_rng r;
  gen_rng_seed(&r, seed);
  memset(count, 0, V * sizeof *count);
  for (int i = 0; i < n; i++) count[sample_choose(l, V, p, &r, c)]++;
}

static void test_temperature_top_k_top_p(void **state) {
  (void)state;
  /* probabilities at temperature 1: 0.5, 0.25, 0.125, 0.125 */
  float l[4] = {logf(4), logf(2), 0, 0};
  int cnt[4];
  sample_params p = {.temperature = 1, .top_p = 1};
  draws(l, 4, &p, 7, 40000, cnt);
  assert_true(abs(cnt[0] - 20000) < 600 && abs(cnt[1] - 10000) < 500 && abs(cnt[2] - 5000) < 400);
  /* top_k 2: only ids 0 and 1, 2:1 */
  p.top_k = 2;
  draws(l, 4, &p, 7, 30000, cnt);
  assert_int_equal(cnt[2] + cnt[3], 0);
  assert_true(abs(cnt[0] - 20000) < 600);
  /* top_p 0.7: 0.5 is not enough, 0.5 + 0.25 reaches it: ids 0 and 1 */
  p.top_k = 0;
  p.top_p = 0.7;
  draws(l, 4, &p, 7, 30000, cnt);
  assert_int_equal(cnt[2] + cnt[3], 0);
  assert_true(cnt[1] > 9000);
  /* top_p 0.5: exactly the first one's mass: only id 0 */
  p.top_p = 0.5;
  draws(l, 4, &p, 7, 1000, cnt);
  assert_int_equal(cnt[0], 1000);
  /* a low temperature sharpens: id 0 almost always */
  p.top_p = 1;
  p.temperature = 0.1;
  draws(l, 4, &p, 7, 10000, cnt);
  assert_true(cnt[0] > 9990);
  /* a high one flattens */
  p.temperature = 2;
  draws(l, 4, &p, 7, 40000, cnt);
  assert_true(cnt[0] < 16000 && cnt[3] > 6000);
  /* the same seed, the same sequence of choices */
  int a[4], b[4];
  draws(l, 4, &p, 99, 500, a);
  draws(l, 4, &p, 99, 500, b);
  assert_memory_equal(a, b, sizeof a);
}

static void test_logprobs(void **state) {
  (void)state;
  float l[4] = {logf(4), logf(2), 0, 0};
  uint32_t ids[3];
  float lp[3];
  float x = sample_logprob(l, 4, 1, 1, ids, lp, 3);
  assert_float_equal(x, logf(0.25f), 1e-5);
  assert_int_equal(ids[0], 0);
  assert_int_equal(ids[1], 1);
  assert_int_equal(ids[2], 2); /* tie between 2 and 3: the lower id */
  assert_float_equal(lp[0], logf(0.5f), 1e-5);
  assert_float_equal(lp[2], logf(0.125f), 1e-5);
  /* temperature 0 reports the model's own distribution (temperature 1) */
  assert_float_equal(sample_logprob(l, 4, 0, 0, ids, lp, 0), logf(0.5f), 1e-5);
  /* temperature 2: softmax(l / 2) */
  double z = 2 + sqrt(2) + 1 + 1;
  assert_float_equal(sample_logprob(l, 4, 2, 0, ids, lp, 1), (float)log(2 / z), 1e-5);
}

/* Pushes pieces through a matcher; returns the released text joined, and whether it matched. */
static bool run_stop(const char *const *stops, size_t n, const char *const *pieces, size_t np, char *got) {
  stop_matcher m;
  stop_init(&m, stops, n);
  char out[512];
  size_t len, g = 0;
  bool matched = false;
  for (size_t i = 0; i < np && !matched; i++) {
    matched = stop_push(&m, pieces[i], strlen(pieces[i]), out, &len);
    memcpy(got + g, out, len);
    g += len;
  }
  if (!matched) {
    stop_flush(&m, out, &len);
    memcpy(got + g, out, len);
    g += len;
  }
  got[g] = '\0';
  return matched;
}

static void test_stop_sequences(void **state) {
  (void)state;
  char got[512];
  const char *s1[] = {"END"};
  /* across three pieces */
  const char *p1[] = {"hello E", "N", "D and more"};
  assert_true(run_stop(s1, 1, p1, 3, got));
  assert_string_equal(got, "hello ");
  /* a false start is released when it turns out not to be the stop */
  const char *p2[] = {"EN", "X E", "!"};
  assert_false(run_stop(s1, 1, p2, 3, got));
  assert_string_equal(got, "ENX E!");
  /* a held tail is released at the end */
  const char *p3[] = {"abc E", "N"};
  assert_false(run_stop(s1, 1, p3, 2, got));
  assert_string_equal(got, "abc EN");
  /* the earliest of several; one inside a piece */
  const char *s2[] = {"\n\n", "###"};
  const char *p4[] = {"a\n", "b## c###d\n\n"};
  assert_true(run_stop(s2, 2, p4, 2, got));
  assert_string_equal(got, "a\nb## c");
  /* what is held is released as soon as it cannot start a stop */
  stop_matcher m;
  stop_init(&m, s1, 1);
  char out[512];
  size_t len;
  assert_false(stop_push(&m, "xE", 2, out, &len));
  assert_int_equal(len, 1); /* "E" held */
  assert_false(stop_push(&m, "z", 1, out, &len));
  assert_int_equal(len, 2);
  assert_memory_equal(out, "Ez", 2);
  /* after a match nothing more comes out */
  assert_true(stop_push(&m, "END", 3, out, &len));
  assert_int_equal(len, 0);
  assert_true(stop_push(&m, "more", 4, out, &len));
  assert_int_equal(len, 0);
  /* multi-byte: a stop in UTF-8 split across pieces */
  const char *s3[] = {"ü!"};
  const char *p5[] = {"grü", "!x"};
  assert_true(run_stop(s3, 1, p5, 2, got));
  assert_string_equal(got, "gr");
  /* no stops: everything passes */
  const char *p6[] = {"a", "b"};
  assert_false(run_stop(NULL, 0, p6, 2, got));
  assert_string_equal(got, "ab");
}

static inferd_status parse_text(const char *text, genconfig *c) {
  json_t *j = json_loads(text, 0, NULL);
  assert_non_null(j);
  inferd_status st = genconfig_parse(j, c);
  json_decref(j);
  return st;
}

static void test_genconfig(void **state) {
  (void)state;
  genconfig c;
  inferd_status st = parse_text(
      "{\"eos_token_ids\": [2, 7], \"context_length\": 128, \"chat_template\": {\"bos\": \"<s>\", "
      "\"roles\": {\"user\": {\"prefix\": \"U: \", \"suffix\": \"\\n\"}, \"assistant\": {\"prefix\": \"A: \", "
      "\"suffix\": \"</s>\"}}, \"generation_prompt\": \"A:\"}, \"defaults\": {\"temperature\": 0.7, \"top_k\": 40}}",
      &c);
  assert_true(status_is_ok(&st));
  assert_int_equal(c.n_eos, 2);
  assert_int_equal(c.eos[1], 7);
  assert_int_equal(c.context_length, 128);
  assert_int_equal(c.max_sequences, 16);
  assert_float_equal(c.defaults.temperature, 0.7, 1e-9);
  assert_int_equal(c.defaults.top_k, 40);
  assert_true(isnan(c.defaults.top_p));
  gen_message msgs[] = {{"user", "hi"}, {"assistant", "hello"}, {"user", "again"}};
  char *p;
  size_t len;
  st = genconfig_chat(&c, msgs, 3, true, &p, &len);
  assert_true(status_is_ok(&st));
  assert_string_equal(p, "<s>U: hi\nA: hello</s>U: again\nA:");
  assert_int_equal(len, strlen(p));
  free(p);
  gen_message bad[] = {{"tool", "x"}};
  st = genconfig_chat(&c, bad, 1, true, &p, &len);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "messages[0].role 'tool'"));
  genconfig_free(&c);

  static const char *const refused[][2] = {
      {"{\"context_length\": 1}", "generate.context_length"},
      {"{\"eos_token_ids\": 3}", "generate.eos_token_ids"},
      {"{\"eos_token_ids\": [-1]}", "generate.eos_token_ids"},
      {"{\"temperature\": 1}", "unknown field 'temperature'"},
      {"{\"defaults\": {\"temperature\": 3}}", "generate.defaults.temperature"},
      {"{\"defaults\": {\"top_p\": 0}}", "generate.defaults.top_p"},
      {"{\"defaults\": {\"seed\": 1}}", "unknown field 'seed'"},
      {"{\"chat_template\": {\"roles\": {}}}", "generate.chat_template.roles"},
      {"{\"chat_template\": {\"roles\": {\"user\": {\"prefix\": 1}}}}", "roles.user"},
      {"{\"chat_template\": {\"roles\": {\"user\": {\"before\": \"x\"}}}}", "unknown field 'before'"},
      {"{\"max_sequences\": 0}", "generate.max_sequences"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    st = parse_text(refused[i][0], &c);
    if (st.code != INFERD_INVALID_ARGUMENT || strstr(st.msg, refused[i][1]) == NULL)
      fail_msg("%s: got %d '%s', want a message naming %s", refused[i][0], st.code, st.msg, refused[i][1]);
  }
  /* no template: a chat is refused, naming the section */
  st = parse_text("{\"context_length\": 64}", &c);
  assert_true(status_is_ok(&st));
  st = genconfig_chat(&c, msgs, 1, true, &p, &len);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "chat_template"));
  genconfig_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rng_seeded),  cmocka_unit_test(test_penalties),
      cmocka_unit_test(test_greedy),      cmocka_unit_test(test_temperature_top_k_top_p),
      cmocka_unit_test(test_logprobs),    cmocka_unit_test(test_stop_sequences),
      cmocka_unit_test(test_genconfig),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
