/* traffic/policy: the sticky hash, the weighted split (and how little a weight change moves),
 * alias resolution and explicit overrides, the policy's JSON checks, and the rollout step
 * machine with its guards driven through whole rollouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "traffic/policy.h"

static traffic_policy parse(const char *text) {
  json_error_t je;
  json_t *doc = json_loads(text, 0, &je);
  assert_non_null(doc);
  traffic_policy p;
  inferd_status st = traffic_policy_from_json(doc, "$", &p);
  if (!status_is_ok(&st)) fail_msg("%s: %s", text, st.msg);
  json_decref(doc);
  return p;
}

static void expect_error(const char *text, const char *want) {
  json_t *doc = json_loads(text, 0, NULL);
  assert_non_null(doc);
  traffic_policy p;
  inferd_status st = traffic_policy_from_json(doc, "$", &p);
  json_decref(doc);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  if (strstr(st.msg, want) == NULL) fail_msg("%s: message '%s' lacks '%s'", text, st.msg, want);
}

static double key_unit(int i) {
  char k[32];
  int n = snprintf(k, sizeof k, "user-%d", i);
  return traffic_hash_unit(k, (size_t)n);
}

static void test_hash_is_stable_and_uniform(void **state) {
  (void)state;
  /* the same key, the same value, on every run and replica: pinned so a change is noticed */
  assert_true(traffic_hash_unit("alice", 5) == traffic_hash_unit("alice", 5));
  assert_true(traffic_hash_unit("alice", 5) != traffic_hash_unit("alicf", 5));
  double a = traffic_hash_unit("alice", 5);
  assert_true(a >= 0 && a < 1);
  /* uniform: 100,000 keys in 10 buckets, each within 3 % of 10,000 */
  int buckets[10] = {0};
  for (int i = 0; i < 100000; i++) {
    double u = key_unit(i);
    assert_true(u >= 0 && u < 1);
    buckets[(int)(u * 10)]++;
  }
  for (int b = 0; b < 10; b++) assert_in_range(buckets[b], 9700, 10300);
  /* the counter draw for key-less requests is uniform too */
  int low = 0;
  for (uint64_t i = 0; i < 100000; i++) low += traffic_unit_of(traffic_mix64(i)) < 0.1;
  assert_in_range(low, 9700, 10300);
}

static void test_pick_arm_slices(void **state) {
  (void)state;
  traffic_policy p = parse("{\"arms\": [{\"name\": \"a\", \"version\": 1, \"weight\": 1},"
                           "{\"name\": \"b\", \"version\": 2, \"weight\": 0},"
                           "{\"name\": \"c\", \"version\": 3, \"weight\": 3}]}");
  assert_int_equal(traffic_pick_arm(&p, 0.0), 0);
  assert_int_equal(traffic_pick_arm(&p, 0.2499), 0);
  assert_int_equal(traffic_pick_arm(&p, 0.25), 2); /* b weighs 0: never chosen */
  assert_int_equal(traffic_pick_arm(&p, 0.9999999), 2);
  traffic_policy none = parse("{}");
  assert_int_equal(traffic_pick_arm(&none, 0.5), -1);
}

/* Raising the canary from 10 % to 25 % moves exactly the keys that must move: all from
 * stable to canary, about 15 % of them; none the other way. */
static void test_weight_change_moves_only_what_must_move(void **state) {
  (void)state;
  traffic_policy before = parse("{\"arms\": [{\"name\": \"stable\", \"version\": 1, \"weight\": 90},"
                                "{\"name\": \"canary\", \"version\": 2, \"weight\": 10}]}");
  traffic_policy after = parse("{\"arms\": [{\"name\": \"stable\", \"version\": 1, \"weight\": 75},"
                               "{\"name\": \"canary\", \"version\": 2, \"weight\": 25}]}");
  int moved = 0, wrong_way = 0, canary = 0;
  const int n = 50000;
  for (int i = 0; i < n; i++) {
    double u = key_unit(i);
    int b = traffic_pick_arm(&before, u), a = traffic_pick_arm(&after, u);
    canary += b == 1;
    if (a != b) moved++;
    if (b == 1 && a == 0) wrong_way++;
  }
  assert_int_equal(wrong_way, 0);
  assert_in_range(moved, (int)(n * 0.14), (int)(n * 0.16));
  assert_in_range(canary, (int)(n * 0.09), (int)(n * 0.11));
  /* three arms: taking weight from the last arm only moves keys out of it */
  traffic_policy t1 = parse("{\"arms\": [{\"name\": \"a\", \"version\": 1, \"weight\": 50},"
                            "{\"name\": \"b\", \"version\": 2, \"weight\": 30},"
                            "{\"name\": \"c\", \"version\": 3, \"weight\": 20}]}");
  traffic_policy t2 = parse("{\"arms\": [{\"name\": \"a\", \"version\": 1, \"weight\": 50},"
                            "{\"name\": \"b\", \"version\": 2, \"weight\": 40},"
                            "{\"name\": \"c\", \"version\": 3, \"weight\": 10}]}");
  moved = 0;
  for (int i = 0; i < n; i++) {
    double u = key_unit(i);
    int x = traffic_pick_arm(&t1, u), y = traffic_pick_arm(&t2, u);
    if (x != y) {
      moved++;
      assert_int_equal(x, 2); /* only c loses keys */
      assert_int_equal(y, 1);
    }
  }
  assert_in_range(moved, (int)(n * 0.09), (int)(n * 0.11));
}

static void test_route_aliases_and_overrides(void **state) {
  (void)state;
  traffic_policy p = parse("{\"aliases\": {\"production\": 1, \"staging\": \"2\"},"
                           "\"arms\": [{\"name\": \"stable\", \"version\": \"production\", \"weight\": 90},"
                           "{\"name\": \"canary\", \"version\": 2, \"weight\": 10}]}");
  char v[TRAFFIC_NAME_MAX], arm[TRAFFIC_NAME_MAX];
  /* unpinned: the split, through the alias */
  assert_int_equal(traffic_route(&p, "m", NULL, 0.5, v, arm).code, INFERD_OK);
  assert_string_equal(v, "1");
  assert_string_equal(arm, "stable");
  assert_int_equal(traffic_route(&p, "m", "", 0.95, v, arm).code, INFERD_OK);
  assert_string_equal(v, "2");
  assert_string_equal(arm, "canary");
  /* an explicit version or alias overrides the split, whatever the draw */
  assert_int_equal(traffic_route(&p, "m", "3", 0.95, v, arm).code, INFERD_OK);
  assert_string_equal(v, "3");
  assert_string_equal(arm, TRAFFIC_ARM_EXPLICIT);
  assert_int_equal(traffic_route(&p, "m", "staging", 0.1, v, arm).code, INFERD_OK);
  assert_string_equal(v, "2");
  assert_string_equal(arm, TRAFFIC_ARM_EXPLICIT);
  inferd_status st = traffic_route(&p, "m", "champion", 0.1, v, arm);
  assert_int_equal(st.code, INFERD_NOT_FOUND);
  assert_non_null(strstr(st.msg, "model 'm' has no version or alias 'champion'"));
  /* no policy: the request as it came, no arm */
  assert_int_equal(traffic_route(NULL, "m", "7", 0.1, v, arm).code, INFERD_OK);
  assert_string_equal(v, "7");
  assert_string_equal(arm, "");
  assert_int_equal(traffic_route(NULL, "m", NULL, 0.1, v, arm).code, INFERD_OK);
  assert_string_equal(v, "");
  /* aliases only, no arms: unpinned requests take the model's default */
  traffic_policy a = parse("{\"aliases\": {\"production\": 4}}");
  assert_int_equal(traffic_route(&a, "m", NULL, 0.1, v, arm).code, INFERD_OK);
  assert_string_equal(v, "");
  assert_string_equal(arm, "");
  assert_true(traffic_is_version_number("12"));
  assert_false(traffic_is_version_number("012"));
  assert_false(traffic_is_version_number("1a"));
  assert_false(traffic_is_version_number(""));
}

static void test_json_errors_name_the_path(void **state) {
  (void)state;
  expect_error("[]", "$ must be an object");
  expect_error("{\"weights\": 1}", "$ has an unknown field 'weights'");
  expect_error("{\"aliases\": {\"production\": \"staging\"}}", "$.aliases.production must be a version number");
  expect_error("{\"aliases\": {\"12\": 1}}", "'12' is not an alias name");
  expect_error("{\"aliases\": {\"p\": 0}}", "$.aliases.p must be a version number or an alias name");
  expect_error("{\"arms\": [{\"name\": \"a\", \"version\": 1, \"weight\": -1}]}", "$.arms[0].weight must be a number from 0");
  expect_error("{\"arms\": [{\"name\": \"a\", \"version\": 1}, {\"name\": \"a\", \"version\": 2}]}",
               "$.arms[1].name: arm 'a' appears twice");
  expect_error("{\"arms\": [{\"name\": \"a\", \"version\": \"prod\"}]}", "$.arms[0].version names the unknown alias 'prod'");
  expect_error("{\"arms\": [{\"name\": \"a\", \"version\": 1, \"weight\": 0}]}", "the weights add up to 0");
  expect_error("{\"arms\": [{\"name\": \"explicit\", \"version\": 1}]}", "'explicit' is reserved");
  expect_error("{\"arms\": [{\"name\": \"a\", \"version\": 1, \"share\": 3}]}", "$.arms[0] has an unknown field 'share'");
  expect_error("{\"sticky_key\": \"X-User-Id\"}", "$.sticky_key must be");
  expect_error("{\"sticky_key\": {\"record_field\": \"\"}}", "$.sticky_key must be");
  expect_error("{\"sticky_key\": {\"record_field\": 7}}", "{\"record_field\": \"customer_id\"}");
  expect_error("{\"sticky_key\": {\"record_field\": \"a\", \"header\": \"b\"}}", "$.sticky_key must be");
  expect_error("{\"sticky_key\": {\"record_field\": \"0123456789012345678901234567890123456789012345678901234567890123\"}}",
               "under 64 characters");
  expect_error("{\"aliases\": {\"production\": 1}, \"rollout\": {\"candidate\": 2, \"steps\": [5, 5, 100]}}",
               "$.rollout.steps[1] must be a whole percentage above the previous step");
  expect_error("{\"aliases\": {\"production\": 1}, \"rollout\": {\"candidate\": 2, \"steps\": [5, 50]}}",
               "$.rollout.steps must end at 100");
  expect_error("{\"rollout\": {\"candidate\": 2}}", "$.rollout.baseline is required");
  expect_error("{\"aliases\": {\"production\": 2}, \"rollout\": {\"candidate\": 2}}", "candidate and baseline are both version 2");
  expect_error("{\"aliases\": {\"production\": 1}, \"rollout\": {\"candidate\": 2, \"max_error_rate\": 2}}",
               "$.rollout.max_error_rate must be a number from 0 to 1");
  expect_error("{\"shadow\": {\"percent\": 5}}", "$.shadow.version is required");
  expect_error("{\"shadow\": {\"version\": 2, \"percent\": 101}}", "$.shadow.percent must be a number from 0 to 100");
  expect_error("{\"shadow\": {\"version\": \"canary\"}}", "$.shadow.version names the unknown alias 'canary'");
  expect_error("{\"aliases\": {\"production\": 1}, \"rollout\": {\"candidate\": 2, \"speed\": 2}}",
               "$.rollout has an unknown field 'speed'");
}

static void test_json_round_trip(void **state) {
  (void)state;
  traffic_policy p = parse("{\"aliases\": {\"production\": 1}, \"sticky_key\": {\"header\": \"X-User-Id\"},"
                           "\"rollout\": {\"candidate\": 2, \"steps\": [10, 100], \"min_dwell_ms\": 5, \"min_requests\": 7}}");
  assert_int_equal(p.sticky, TRAFFIC_STICKY_HEADER);
  assert_string_equal(p.sticky_header, "X-User-Id");
  assert_int_equal(p.rollout.state, ROLLOUT_RUNNING);
  assert_string_equal(p.rollout.baseline, "production");
  /* a running rollout owns the arms: stable 90 / canary 10 */
  assert_int_equal(p.n_arms, 2);
  assert_true(p.arms[1].weight == 10);
  p.rollout.step = 1;
  p.rollout.step_started_ms = 123456;
  json_t *j = traffic_policy_to_json(&p);
  traffic_policy q;
  inferd_status st = traffic_policy_from_json(j, "$", &q);
  json_decref(j);
  assert_true(status_is_ok(&st));
  assert_int_equal(q.rollout.step, 1);
  assert_int_equal(q.rollout.step_started_ms, 123456);
  assert_int_equal(q.n_arms, 2); /* 100 %: the candidate alone takes traffic */
  assert_true(q.arms[0].weight == 0);
  assert_string_equal(q.arms[1].version, "2");
  assert_true(q.arms[1].weight == 100);
  assert_int_equal(q.rollout.min_requests, 7);
  traffic_policy sh = parse("{\"aliases\": {\"next\": 4}, \"shadow\": {\"version\": \"next\", \"percent\": 25}}");
  assert_true(sh.shadow.on);
  assert_string_equal(sh.shadow.version, "next");
  assert_true(sh.shadow.percent == 25);
  assert_int_equal(sh.shadow.max_in_flight, 16);
  j = traffic_policy_to_json(&sh);
  inferd_status sst = traffic_policy_from_json(j, "$", &q);
  json_decref(j);
  assert_true(status_is_ok(&sst));
  assert_true(q.shadow.on && q.shadow.percent == 25 && strcmp(q.shadow.version, "next") == 0);
  traffic_policy pr = parse("{\"sticky_key\": {\"principal\": true}}");
  assert_int_equal(pr.sticky, TRAFFIC_STICKY_PRINCIPAL);
  traffic_policy rf = parse("{\"sticky_key\": {\"record_field\": \"customer_id\"}}");
  assert_int_equal(rf.sticky, TRAFFIC_STICKY_RECORD_FIELD);
  assert_string_equal(rf.sticky_header, "customer_id");
  j = traffic_policy_to_json(&rf);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "sticky_key"), "record_field")), "customer_id");
  inferd_status rst = traffic_policy_from_json(j, "$", &q);
  json_decref(j);
  assert_true(status_is_ok(&rst));
  assert_int_equal(q.sticky, TRAFFIC_STICKY_RECORD_FIELD);
  assert_string_equal(q.sticky_header, "customer_id");
}

/* ---- the step machine ------------------------------------------------------------------- */

static traffic_policy rollout_policy(void) {
  traffic_policy p = parse("{\"aliases\": {\"production\": 1}, \"rollout\": {\"candidate\": 2, \"steps\": [5, 25, 50, 100],"
                           "\"min_dwell_ms\": 1000, \"min_requests\": 100, \"max_error_rate\": 0.05,"
                           "\"max_p99_ratio\": 2, \"p99_slack_ms\": 1, \"max_shadow_disagreement\": 0.1}}");
  p.rollout.step_started_ms = 0;
  return p;
}

static traffic_observation healthy(int64_t n) {
  return (traffic_observation){.candidate = {n, 0, 5.0}, .baseline = {n * 10, 0, 5.0}};
}

static void test_decide_every_transition(void **state) {
  (void)state;
  traffic_policy p = rollout_policy();
  char why[512];
  traffic_observation o = healthy(50);
  /* too few requests: hold, even after the dwell */
  assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_HOLD);
  assert_non_null(strstr(why, "50 of 100 requests"));
  /* enough requests, dwell not over: hold */
  o = healthy(100);
  assert_int_equal(traffic_rollout_decide(&p.rollout, 999, &o, why, sizeof why), ROLLOUT_HOLD);
  assert_non_null(strstr(why, "dwelling"));
  /* both: advance */
  assert_int_equal(traffic_rollout_decide(&p.rollout, 1000, &o, why, sizeof why), ROLLOUT_ADVANCE);
  assert_non_null(strstr(why, "on to 25 %"));
  /* the last step passed: promote */
  p.rollout.step = 3;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 1000, &o, why, sizeof why), ROLLOUT_PROMOTE);
  p.rollout.step = 0;
  /* error-rate guard once the sample is in: 6 of 100 > 5 % -- but 6 > 5 allowed trips earlier */
  o = healthy(100);
  o.candidate.errors = 5;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 1000, &o, why, sizeof why), ROLLOUT_ADVANCE); /* 5 % is allowed */
  o.candidate.errors = 6;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 0, &o, why, sizeof why), ROLLOUT_ROLLBACK);
  assert_non_null(strstr(why, "error-rate guard"));
  /* early trip: 6 errors in the first 10 requests already exceed what 100 could absorb */
  o = healthy(10);
  o.candidate.errors = 6;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 0, &o, why, sizeof why), ROLLOUT_ROLLBACK);
  assert_non_null(strstr(why, "minimum sample of 100"));
  o.candidate.errors = 5; /* not yet: 5 errors could still be 5 % */
  assert_int_equal(traffic_rollout_decide(&p.rollout, 0, &o, why, sizeof why), ROLLOUT_HOLD);
  /* error rate over the limit past the sample: 20 of 300 (6.7 %) */
  o = healthy(300);
  o.candidate.errors = 20;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_ROLLBACK);
  /* p99 guard: 5x the baseline */
  o = healthy(100);
  o.candidate.p99_ms = 25;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_ROLLBACK);
  assert_non_null(strstr(why, "latency guard"));
  assert_non_null(strstr(why, "5.0x > 2.0x"));
  /* ... but not before the sample is in */
  o.candidate.requests = 99;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_HOLD);
  /* a ratio over the limit within the slack (µs-scale noise) is not a trip */
  o = healthy(100);
  o.baseline.p99_ms = 0.1;
  o.candidate.p99_ms = 0.5;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_ADVANCE);
  /* shadow guard, only when shadow data exists */
  o = healthy(100);
  o.shadow_disagreement = 0.2;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_ADVANCE);
  o.has_shadow = true;
  assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_ROLLBACK);
  assert_non_null(strstr(why, "shadow guard"));
  /* paused, rolled back, complete: nothing happens, whatever the counters */
  o = healthy(100);
  o.candidate.errors = 100;
  for (int s = ROLLOUT_PAUSED; s <= ROLLOUT_COMPLETE; s++) {
    p.rollout.state = (traffic_rollout_state)s;
    assert_int_equal(traffic_rollout_decide(&p.rollout, 5000, &o, why, sizeof why), ROLLOUT_HOLD);
  }
}

/* A healthy rollout from 5 % to promotion, one simulated tick every 100 ms, 2,000 requests a
 * second split by the current weights. */
static void test_whole_rollout_promotes(void **state) {
  (void)state;
  traffic_policy p = rollout_policy();
  int64_t now = 0, cand = 0, base = 0;
  int seen_steps[4] = {0};
  char why[512];
  for (int tick = 0; tick < 1000 && p.rollout.state == ROLLOUT_RUNNING; tick++) {
    now += 100;
    int64_t n = 200; /* requests this tick */
    double cw = p.n_arms == 2 ? p.arms[1].weight / 100.0 : 0;
    cand += (int64_t)(n * cw);
    base += n - (int64_t)(n * cw);
    seen_steps[p.rollout.step] = (int)(p.n_arms == 2 ? p.arms[1].weight : 100);
    traffic_observation o = {.candidate = {cand, 0, 4.0}, .baseline = {base, 0, 4.0}};
    traffic_decision d = traffic_rollout_decide(&p.rollout, now, &o, why, sizeof why);
    if (d != ROLLOUT_HOLD) {
      traffic_rollout_apply(&p, d, now, why);
      cand = base = 0; /* a new window */
    }
  }
  assert_int_equal(p.rollout.state, ROLLOUT_COMPLETE);
  assert_int_equal(seen_steps[0], 5);
  assert_int_equal(seen_steps[1], 25);
  assert_int_equal(seen_steps[2], 50);
  /* promoted: production names the candidate, and every request goes through it */
  assert_string_equal(traffic_resolve_version(&p, "production"), "2");
  assert_int_equal(p.n_arms, 1);
  assert_string_equal(p.arms[0].version, "production");
  assert_non_null(strstr(p.rollout.reason, "promoted"));
  assert_true(now >= 4000); /* four steps, each at least its dwell */
}

/* A candidate failing 20 % of its requests is rolled back in its first step, having failed no
 * more requests than the guard's limit over the minimum sample allows (5 of 100, plus the one
 * that tripped it). */
static void test_whole_rollout_rolls_back_failing_candidate(void **state) {
  (void)state;
  traffic_policy p = rollout_policy();
  char why[512];
  int64_t now = 0, cand = 0, errs = 0;
  /* judged after every candidate completion, as the runtime pokes its tick on each failure */
  for (int i = 0; i < 100000 && p.rollout.state == ROLLOUT_RUNNING; i++) {
    cand++;
    if (i % 5 == 4) errs++;
    now += 1;
    traffic_observation o = {.candidate = {cand, errs, 4.0}, .baseline = {cand * 19, 0, 4.0}};
    traffic_decision d = traffic_rollout_decide(&p.rollout, now, &o, why, sizeof why);
    if (d != ROLLOUT_HOLD) traffic_rollout_apply(&p, d, now, why);
  }
  assert_int_equal(p.rollout.state, ROLLOUT_ROLLED_BACK);
  assert_int_equal(p.rollout.step, 0);
  assert_true(errs <= 6);
  assert_non_null(strstr(p.rollout.reason, "error-rate guard"));
  /* 0 %: the baseline alone; the alias did not move */
  assert_int_equal(p.n_arms, 1);
  assert_string_equal(p.arms[0].name, "stable");
  assert_string_equal(p.arms[0].version, "production");
  assert_string_equal(traffic_resolve_version(&p, "production"), "1");
}

/* A 5x slower candidate passes its error guard and is rolled back by the latency guard at the
 * first judgement after its sample. */
static void test_whole_rollout_rolls_back_slow_candidate(void **state) {
  (void)state;
  traffic_policy p = rollout_policy();
  char why[512];
  int64_t now = 0, cand = 0;
  int judgements = 0;
  for (int tick = 0; tick < 1000 && p.rollout.state == ROLLOUT_RUNNING; tick++) {
    now += 100;
    cand += 10;
    traffic_observation o = {.candidate = {cand, 0, 20.0}, .baseline = {cand * 19, 0, 4.0}};
    traffic_decision d = traffic_rollout_decide(&p.rollout, now, &o, why, sizeof why);
    judgements++;
    if (d != ROLLOUT_HOLD) traffic_rollout_apply(&p, d, now, why);
  }
  assert_int_equal(p.rollout.state, ROLLOUT_ROLLED_BACK);
  assert_int_equal(judgements, 10); /* the 100th request's tick */
  assert_non_null(strstr(p.rollout.reason, "latency guard"));
}

static void test_histogram_quantiles(void **state) {
  (void)state;
  int64_t h[TRAFFIC_HIST_BUCKETS] = {0};
  assert_true(traffic_hist_quantile(h, 0.5) == 0);
  for (int i = 0; i < 99; i++) h[traffic_hist_bucket(1.0)]++;
  h[traffic_hist_bucket(50.0)]++;
  double p50 = traffic_hist_quantile(h, 0.5), p99 = traffic_hist_quantile(h, 0.99), p100 = traffic_hist_quantile(h, 1.0);
  assert_true(p50 >= 1.0 && p50 < 1.25);
  assert_true(p99 >= 1.0 && p99 < 1.25);
  assert_true(p100 >= 50.0 && p100 < 62.5);
  assert_int_equal(traffic_hist_bucket(0.0), 0);
  assert_int_equal(traffic_hist_bucket(1e12), TRAFFIC_HIST_BUCKETS - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash_is_stable_and_uniform),
      cmocka_unit_test(test_pick_arm_slices),
      cmocka_unit_test(test_weight_change_moves_only_what_must_move),
      cmocka_unit_test(test_route_aliases_and_overrides),
      cmocka_unit_test(test_json_errors_name_the_path),
      cmocka_unit_test(test_json_round_trip),
      cmocka_unit_test(test_decide_every_transition),
      cmocka_unit_test(test_whole_rollout_promotes),
      cmocka_unit_test(test_whole_rollout_rolls_back_failing_candidate),
      cmocka_unit_test(test_whole_rollout_rolls_back_slow_candidate),
      cmocka_unit_test(test_histogram_quantiles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
