/* traffic/policy: the pure half of traffic management: parsing and printing a policy, the
 * sticky hash, the split, alias resolution, and the rollout step machine with its guards. */
#include "traffic/policy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/jsonkeys.h"

uint64_t traffic_mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double traffic_hash_unit(const char *key, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: fixed, simple, the same everywhere */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 0x100000001b3ULL;
  }
  /* FNV's values for keys that differ in their last characters are affinely related, and one
   * splitmix round leaves that visible (a chi-square of 26 over 10 buckets for "user-0".."user-99999");
   * two rounds do not (10.6, as random keys give) */
  return traffic_unit_of(traffic_mix64(traffic_mix64(h)));
}

int traffic_pick_arm(const traffic_policy *p, double u) {
  double total = 0;
  for (int i = 0; i < p->n_arms; i++) total += p->arms[i].weight;
  if (!(total > 0)) return -1;
  double edge = 0, x = u * total;
  int last = -1;
  for (int i = 0; i < p->n_arms; i++) {
    if (p->arms[i].weight <= 0) continue;
    last = i;
    edge += p->arms[i].weight;
    if (x < edge) return i;
  }
  return last; /* rounding at the top edge */
}

bool traffic_is_version_number(const char *s) {
  if (s == NULL || *s < '1' || *s > '9') return false;
  size_t n = 0;
  for (; s[n]; n++)
    if (s[n] < '0' || s[n] > '9') return false;
  return n <= 18;
}

const char *traffic_resolve_version(const traffic_policy *p, const char *version) {
  if (traffic_is_version_number(version)) return version;
  for (int i = 0; p && i < p->n_aliases; i++)
    if (strcmp(p->aliases[i].name, version) == 0) return p->aliases[i].version;
  return NULL;
}

static void copy_name(char dst[TRAFFIC_NAME_MAX], const char *src) {
  size_t n = strnlen(src, TRAFFIC_NAME_MAX - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

inferd_status traffic_route(const traffic_policy *p, const char *model, const char *requested, double u,
                            char version[TRAFFIC_NAME_MAX], char arm[TRAFFIC_NAME_MAX]) {
  version[0] = arm[0] = '\0';
  if (requested && requested[0]) {
    const char *v = traffic_resolve_version(p, requested);
    if (v == NULL)
      return status_make(INFERD_NOT_FOUND, "model '%s' has no version or alias '%s'", model, requested);
    copy_name(version, v);
    if (p) copy_name(arm, TRAFFIC_ARM_EXPLICIT);
    return status_ok();
  }
  if (p == NULL) return status_ok();
  int i = traffic_pick_arm(p, u);
  if (i < 0) return status_ok(); /* no split: the model's default version */
  const char *v = traffic_resolve_version(p, p->arms[i].version);
  if (v == NULL) /* from_json refuses this; kept so a bad store never routes blindly */
    return status_make(INFERD_UNAVAILABLE, "model '%s': arm '%s' names the unknown alias '%s'", model,
                       p->arms[i].name, p->arms[i].version);
  copy_name(version, v);
  copy_name(arm, p->arms[i].name);
  return status_ok();
}

/* ---- JSON ------------------------------------------------------------------------------- */

static const char *const state_names[] = {"none", "running", "paused", "rolled_back", "complete"};

const char *traffic_rollout_state_name(traffic_rollout_state s) {
  return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "?";
}

json_t *traffic_policy_to_json(const traffic_policy *p) {
  json_t *doc = json_object();
  json_t *aliases = json_object();
  for (int i = 0; i < p->n_aliases; i++) json_object_set_new(aliases, p->aliases[i].name, json_string(p->aliases[i].version));
  json_object_set_new(doc, "aliases", aliases);
  json_t *arms = json_array();
  for (int i = 0; i < p->n_arms; i++)
    json_array_append_new(arms, json_pack("{ss ss sf}", "name", p->arms[i].name, "version", p->arms[i].version,
                                          "weight", p->arms[i].weight));
  json_object_set_new(doc, "arms", arms);
  if (p->sticky == TRAFFIC_STICKY_HEADER)
    json_object_set_new(doc, "sticky_key", json_pack("{ss}", "header", p->sticky_header));
  else if (p->sticky == TRAFFIC_STICKY_PRINCIPAL)
    json_object_set_new(doc, "sticky_key", json_pack("{sb}", "principal", 1));
  else if (p->sticky == TRAFFIC_STICKY_RECORD_FIELD)
    json_object_set_new(doc, "sticky_key", json_pack("{ss}", "record_field", p->sticky_header));
  if (p->shadow.on)
    json_object_set_new(doc, "shadow", json_pack("{ss sf si}", "version", p->shadow.version, "percent", p->shadow.percent,
                                                 "max_in_flight", p->shadow.max_in_flight));
  const traffic_rollout *r = &p->rollout;
  if (r->state != ROLLOUT_NONE) {
    json_t *steps = json_array();
    for (int i = 0; i < r->n_steps; i++) json_array_append_new(steps, json_integer(r->steps[i]));
    json_t *ro = json_pack("{ss ss ss so sI sI sf sf sf sf si sI ss}", "state", traffic_rollout_state_name(r->state),
                           "candidate", r->candidate, "baseline", r->baseline, "steps", steps, "min_dwell_ms",
                           (json_int_t)r->min_dwell_ms, "min_requests", (json_int_t)r->min_requests, "max_error_rate",
                           r->max_error_rate, "max_p99_ratio", r->max_p99_ratio, "p99_slack_ms", r->p99_slack_ms,
                           "max_shadow_disagreement", r->max_shadow_disagreement, "step", r->step,
                           "step_started_ms", (json_int_t)r->step_started_ms, "reason", r->reason);
    json_object_set_new(doc, "rollout", ro);
  }
  return doc;
}

/* A name: letters, digits, '_', '-', '.', 1..31 characters, not all digits (that is a version). */
static bool name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= TRAFFIC_NAME_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return !traffic_is_version_number(s);
}

#define FAIL(...) return status_make(INFERD_INVALID_ARGUMENT, __VA_ARGS__)

static inferd_status get_version(const json_t *v, const char *path, char out[TRAFFIC_NAME_MAX]) {
  if (json_is_integer(v) && json_integer_value(v) > 0) {
    snprintf(out, TRAFFIC_NAME_MAX, "%lld", (long long)json_integer_value(v));
    return status_ok();
  }
  if (!json_is_string(v) || !(traffic_is_version_number(json_string_value(v)) || name_ok(json_string_value(v))))
    FAIL("%s must be a version number or an alias name (letters, digits, '_', '-', '.'; under %d characters)", path,
         TRAFFIC_NAME_MAX);
  copy_name(out, json_string_value(v));
  return status_ok();
}

static inferd_status get_number(const json_t *o, const char *key, const char *path, double lo, double hi, double *out) {
  const json_t *v = json_object_get(o, key);
  if (v == NULL) return status_ok();
  if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
    FAIL("%s.%s must be a number from %g to %g", path, key, lo, hi);
  *out = json_number_value(v);
  return status_ok();
}

static inferd_status parse_rollout(const json_t *ro, const char *path, traffic_policy *p) {
  static const char *const keys[] = {"state",          "candidate",      "baseline",     "steps",
                                     "min_dwell_ms",   "min_requests",   "max_error_rate", "max_p99_ratio",
                                     "p99_slack_ms",   "max_shadow_disagreement", "step", "step_started_ms",
                                     "reason",         NULL};
  traffic_rollout *r = &p->rollout;
  if (!json_is_object(ro)) FAIL("%s.rollout must be an object", path);
  const char *bad = jsonkeys_unknown(ro, keys);
  if (bad) {
    char list[400];
    jsonkeys_list(keys, list, sizeof list);
    FAIL("%s.rollout has an unknown field '%s' (known: %s)", path, bad, list);
  }
  char sub[128];
  snprintf(sub, sizeof sub, "%s.rollout", path);
  *r = (traffic_rollout){.state = ROLLOUT_RUNNING, .min_dwell_ms = 30000, .min_requests = 100, .max_error_rate = 0.05,
                         .max_p99_ratio = 2.0, .p99_slack_ms = 1.0, .n_steps = 4, .steps = {5, 25, 50, 100}};
  const json_t *v = json_object_get(ro, "candidate");
  if (v == NULL) FAIL("%s.candidate is required", sub);
  char cand[TRAFFIC_NAME_MAX];
  TRY(get_version(v, sub, cand));
  const char *cv = traffic_resolve_version(p, cand);
  if (cv == NULL) FAIL("%s.candidate names the unknown alias '%s'", sub, cand);
  copy_name(r->candidate, cv);
  if ((v = json_object_get(ro, "baseline")) != NULL) {
    TRY(get_version(v, sub, r->baseline));
  } else if (traffic_resolve_version(p, "production")) {
    copy_name(r->baseline, "production");
  } else if (p->n_arms > 0) {
    copy_name(r->baseline, p->arms[0].version);
  } else {
    FAIL("%s.baseline is required when the policy has no 'production' alias and no arms", sub);
  }
  const char *bv = traffic_resolve_version(p, r->baseline);
  if (bv == NULL) FAIL("%s.baseline names the unknown alias '%s'", sub, r->baseline);
  if (strcmp(bv, r->candidate) == 0) FAIL("%s: candidate and baseline are both version %s", sub, bv);
  if ((v = json_object_get(ro, "steps")) != NULL) {
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > TRAFFIC_MAX_STEPS)
      FAIL("%s.steps must be an array of 1 to %d percentages", sub, TRAFFIC_MAX_STEPS);
    r->n_steps = (int)json_array_size(v);
    for (int i = 0; i < r->n_steps; i++) {
      const json_t *s = json_array_get(v, (size_t)i);
      int prev = i ? r->steps[i - 1] : 0;
      if (!json_is_integer(s) || json_integer_value(s) <= prev || json_integer_value(s) > 100)
        FAIL("%s.steps[%d] must be a whole percentage above the previous step and at most 100", sub, i);
      r->steps[i] = (int)json_integer_value(s);
    }
    if (r->steps[r->n_steps - 1] != 100) FAIL("%s.steps must end at 100", sub);
  }
  double d;
  d = (double)r->min_dwell_ms;
  TRY(get_number(ro, "min_dwell_ms", sub, 0, 86400000.0 * 30, &d));
  r->min_dwell_ms = (int64_t)d;
  d = (double)r->min_requests;
  TRY(get_number(ro, "min_requests", sub, 1, 1e9, &d));
  r->min_requests = (int64_t)d;
  TRY(get_number(ro, "max_error_rate", sub, 0, 1, &r->max_error_rate));
  TRY(get_number(ro, "max_p99_ratio", sub, 0, 1e6, &r->max_p99_ratio));
  TRY(get_number(ro, "p99_slack_ms", sub, 0, 1e6, &r->p99_slack_ms));
  TRY(get_number(ro, "max_shadow_disagreement", sub, 0, 1, &r->max_shadow_disagreement));
  /* progress fields: written by the server (store round trip); a client may leave them out */
  if ((v = json_object_get(ro, "state")) != NULL) {
    int k = -1;
    for (int i = 1; i < (int)(sizeof state_names / sizeof state_names[0]); i++)
      if (json_is_string(v) && strcmp(json_string_value(v), state_names[i]) == 0) k = i;
    if (k < 0) FAIL("%s.state must be running, paused, rolled_back or complete", sub);
    r->state = (traffic_rollout_state)k;
  }
  if ((v = json_object_get(ro, "step")) != NULL) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= r->n_steps)
      FAIL("%s.step must be an index into steps", sub);
    r->step = (int)json_integer_value(v);
  }
  if ((v = json_object_get(ro, "step_started_ms")) != NULL) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) FAIL("%s.step_started_ms must be unix milliseconds", sub);
    r->step_started_ms = json_integer_value(v);
  }
  if ((v = json_object_get(ro, "reason")) != NULL) {
    if (!json_is_string(v)) FAIL("%s.reason must be a string", sub);
    snprintf(r->reason, sizeof r->reason, "%s", json_string_value(v));
  }
  return status_ok();
}

inferd_status traffic_policy_from_json(const json_t *doc, const char *path, traffic_policy *out) {
  static const char *const keys[] = {"aliases", "arms", "sticky_key", "rollout", "shadow", NULL};
  traffic_policy p;
  memset(&p, 0, sizeof p);
  if (!json_is_object(doc)) FAIL("%s must be an object", path);
  const char *bad = jsonkeys_unknown(doc, keys);
  if (bad) FAIL("%s has an unknown field '%s' (known: aliases, arms, sticky_key, rollout, shadow)", path, bad);
  const json_t *v = json_object_get(doc, "aliases");
  if (v) {
    if (!json_is_object(v)) FAIL("%s.aliases must be an object of alias name to version number", path);
    if (json_object_size(v) > TRAFFIC_MAX_ALIASES) FAIL("%s.aliases: at most %d aliases", path, TRAFFIC_MAX_ALIASES);
    const char *k;
    const json_t *e;
    json_object_foreach((json_t *)v, k, e) {
      if (!name_ok(k)) FAIL("%s.aliases: '%s' is not an alias name (letters, digits, '_', '-', '.'; not a number)", path, k);
      char sub[128];
      snprintf(sub, sizeof sub, "%s.aliases.%s", path, k);
      char ver[TRAFFIC_NAME_MAX];
      TRY(get_version(e, sub, ver));
      if (!traffic_is_version_number(ver)) FAIL("%s must be a version number (an alias may not name an alias)", sub);
      copy_name(p.aliases[p.n_aliases].name, k);
      copy_name(p.aliases[p.n_aliases].version, ver);
      p.n_aliases++;
    }
  }
  if ((v = json_object_get(doc, "arms")) != NULL) {
    if (!json_is_array(v) || json_array_size(v) > TRAFFIC_MAX_ARMS)
      FAIL("%s.arms must be an array of at most %d arms", path, TRAFFIC_MAX_ARMS);
    double total = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
      static const char *const akeys[] = {"name", "version", "weight", NULL};
      const json_t *a = json_array_get(v, i);
      char sub[128];
      snprintf(sub, sizeof sub, "%s.arms[%zu]", path, i);
      if (!json_is_object(a)) FAIL("%s must be an object {name, version, weight}", sub);
      if ((bad = jsonkeys_unknown(a, akeys)) != NULL) FAIL("%s has an unknown field '%s' (known: name, version, weight)", sub, bad);
      traffic_arm *arm = &p.arms[p.n_arms];
      const json_t *n = json_object_get(a, "name");
      if (!json_is_string(n) || !name_ok(json_string_value(n)))
        FAIL("%s.name must be a name (letters, digits, '_', '-', '.'; not a number; under %d characters)", sub,
             TRAFFIC_NAME_MAX);
      if (strcmp(json_string_value(n), TRAFFIC_ARM_EXPLICIT) == 0) FAIL("%s.name: '%s' is reserved", sub, TRAFFIC_ARM_EXPLICIT);
      copy_name(arm->name, json_string_value(n));
      for (int j = 0; j < p.n_arms; j++)
        if (strcmp(p.arms[j].name, arm->name) == 0) FAIL("%s.name: arm '%s' appears twice", sub, arm->name);
      char vsub[160];
      snprintf(vsub, sizeof vsub, "%s.version", sub);
      const json_t *ver = json_object_get(a, "version");
      if (ver == NULL) FAIL("%s is required", vsub);
      TRY(get_version(ver, vsub, arm->version));
      if (traffic_resolve_version(&p, arm->version) == NULL) FAIL("%s names the unknown alias '%s'", vsub, arm->version);
      arm->weight = 1;
      TRY(get_number(a, "weight", sub, 0, 1e9, &arm->weight));
      total += arm->weight;
      p.n_arms++;
    }
    if (p.n_arms > 0 && !(total > 0)) FAIL("%s.arms: the weights add up to 0", path);
  }
  if ((v = json_object_get(doc, "sticky_key")) != NULL) {
    const json_t *h = json_is_object(v) ? json_object_get(v, "header") : NULL;
    const json_t *pr = json_is_object(v) ? json_object_get(v, "principal") : NULL;
    const json_t *rf = json_is_object(v) ? json_object_get(v, "record_field") : NULL;
    if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(h) && json_string_length(h) > 0 &&
        json_string_length(h) < sizeof p.sticky_header) {
      p.sticky = TRAFFIC_STICKY_HEADER;
      snprintf(p.sticky_header, sizeof p.sticky_header, "%s", json_string_value(h));
    } else if (json_is_object(v) && json_object_size(v) == 1 && json_is_true(pr)) {
      p.sticky = TRAFFIC_STICKY_PRINCIPAL;
    } else if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(rf) && json_string_length(rf) > 0 &&
               json_string_length(rf) < sizeof p.sticky_header) {
      p.sticky = TRAFFIC_STICKY_RECORD_FIELD;
      snprintf(p.sticky_header, sizeof p.sticky_header, "%s", json_string_value(rf));
    } else if (!json_is_null(v)) {
      FAIL("%s.sticky_key must be {\"header\": \"X-User-Id\"} (a header name under 64 characters), "
           "{\"record_field\": \"customer_id\"} (a /v1 record field's name under 64 characters) or {\"principal\": true}",
           path);
    }
  }
  if ((v = json_object_get(doc, "shadow")) != NULL && !json_is_null(v)) {
    static const char *const skeys[] = {"version", "percent", "max_in_flight", NULL};
    char sub[128];
    snprintf(sub, sizeof sub, "%s.shadow", path);
    if (!json_is_object(v)) FAIL("%s must be an object {version, percent, max_in_flight}", sub);
    if ((bad = jsonkeys_unknown(v, skeys)) != NULL)
      FAIL("%s has an unknown field '%s' (known: version, percent, max_in_flight)", sub, bad);
    const json_t *sv = json_object_get(v, "version");
    char vsub[160];
    snprintf(vsub, sizeof vsub, "%s.version", sub);
    if (sv == NULL) FAIL("%s is required", vsub);
    TRY(get_version(sv, vsub, p.shadow.version));
    if (traffic_resolve_version(&p, p.shadow.version) == NULL)
      FAIL("%s names the unknown alias '%s'", vsub, p.shadow.version);
    p.shadow.percent = 100;
    TRY(get_number(v, "percent", sub, 0, 100, &p.shadow.percent));
    double mif = 16;
    TRY(get_number(v, "max_in_flight", sub, 1, 100000, &mif));
    p.shadow.max_in_flight = (int)mif;
    p.shadow.on = true;
  }
  if ((v = json_object_get(doc, "rollout")) != NULL && !json_is_null(v)) {
    TRY(parse_rollout(v, path, &p));
    /* a rollout that has not stopped owns the arms: they follow its step */
    if (p.rollout.state == ROLLOUT_RUNNING || p.rollout.state == ROLLOUT_PAUSED) traffic_rollout_set_arms(&p);
  }
  *out = p;
  return status_ok();
}

/* ---- the rollout step machine ----------------------------------------------------------- */

static void set_two_arms(traffic_policy *p, int candidate_pct) {
  traffic_rollout *r = &p->rollout;
  p->n_arms = 0;
  traffic_arm *a = &p->arms[p->n_arms++];
  copy_name(a->name, "stable");
  copy_name(a->version, r->baseline);
  a->weight = 100 - candidate_pct;
  if (candidate_pct > 0) {
    a = &p->arms[p->n_arms++];
    copy_name(a->name, "canary");
    copy_name(a->version, r->candidate);
    a->weight = candidate_pct;
  }
}

void traffic_rollout_set_arms(traffic_policy *p) {
  traffic_rollout *r = &p->rollout;
  if (r->n_steps == 0) return;
  set_two_arms(p, r->steps[r->step]);
}

traffic_decision traffic_rollout_decide(const traffic_rollout *r, int64_t now_ms, const traffic_observation *obs,
                                        char *why, size_t why_len) {
  if (r->state != ROLLOUT_RUNNING) {
    snprintf(why, why_len, "the rollout is %s", traffic_rollout_state_name(r->state));
    return ROLLOUT_HOLD;
  }
  const traffic_window *c = &obs->candidate, *b = &obs->baseline;
  /* errors beyond what the limit allows over a whole minimum sample: no later success can
   * bring the rate back under, so waiting for the sample would only fail more requests */
  double allowed = r->max_error_rate * (double)r->min_requests;
  if ((double)c->errors > allowed && c->errors > 0) {
    snprintf(why, why_len,
             "error-rate guard: the candidate (version %s) failed %lld of %lld requests at %d %%, more than %.4g "
             "%% of the minimum sample of %lld allows",
             r->candidate, (long long)c->errors, (long long)c->requests, r->steps[r->step], r->max_error_rate * 100,
             (long long)r->min_requests);
    return ROLLOUT_ROLLBACK;
  }
  if (c->requests >= r->min_requests) {
    double rate = (double)c->errors / (double)c->requests;
    if (rate > r->max_error_rate) {
      snprintf(why, why_len, "error-rate guard: the candidate (version %s) failed %lld of %lld requests (%.2f %% > %.2f %%)",
               r->candidate, (long long)c->errors, (long long)c->requests, rate * 100, r->max_error_rate * 100);
      return ROLLOUT_ROLLBACK;
    }
    if (r->max_p99_ratio > 0 && b->requests > 0 && c->p99_ms > r->max_p99_ratio * b->p99_ms &&
        c->p99_ms - b->p99_ms > r->p99_slack_ms) {
      snprintf(why, why_len,
               "latency guard: the candidate's p99 (version %s) is %.3f ms against the baseline's %.3f ms over the same "
               "window (%.1fx > %.1fx)",
               r->candidate, c->p99_ms, b->p99_ms, b->p99_ms > 0 ? c->p99_ms / b->p99_ms : INFINITY, r->max_p99_ratio);
      return ROLLOUT_ROLLBACK;
    }
    if (r->max_shadow_disagreement > 0 && obs->has_shadow && obs->shadow_disagreement > r->max_shadow_disagreement) {
      snprintf(why, why_len, "shadow guard: the candidate disagreed with the baseline on %.2f %% of shadowed requests (> %.2f %%)",
               obs->shadow_disagreement * 100, r->max_shadow_disagreement * 100);
      return ROLLOUT_ROLLBACK;
    }
  }
  if (c->requests < r->min_requests) {
    snprintf(why, why_len, "step %d (%d %%): %lld of %lld requests seen", r->step + 1, r->steps[r->step],
             (long long)c->requests, (long long)r->min_requests);
    return ROLLOUT_HOLD;
  }
  if (now_ms - r->step_started_ms < r->min_dwell_ms) {
    snprintf(why, why_len, "step %d (%d %%): dwelling %lld of %lld ms", r->step + 1, r->steps[r->step],
             (long long)(now_ms - r->step_started_ms), (long long)r->min_dwell_ms);
    return ROLLOUT_HOLD;
  }
  if (r->step + 1 >= r->n_steps) {
    snprintf(why, why_len, "step %d (%d %%) passed its guards over %lld requests: the candidate (version %s) is promoted",
             r->step + 1, r->steps[r->step], (long long)c->requests, r->candidate);
    return ROLLOUT_PROMOTE;
  }
  snprintf(why, why_len, "step %d (%d %%) passed its guards over %lld requests (%lld errors): on to %d %%", r->step + 1,
           r->steps[r->step], (long long)c->requests, (long long)c->errors, r->steps[r->step + 1]);
  return ROLLOUT_ADVANCE;
}

void traffic_rollout_apply(traffic_policy *p, traffic_decision d, int64_t now_ms, const char *why) {
  traffic_rollout *r = &p->rollout;
  switch (d) {
    case ROLLOUT_HOLD:
      return;
    case ROLLOUT_ADVANCE:
      if (r->step + 1 < r->n_steps) r->step++;
      r->step_started_ms = now_ms;
      traffic_rollout_set_arms(p);
      break;
    case ROLLOUT_PROMOTE: {
      r->state = ROLLOUT_COMPLETE;
      r->step = r->n_steps - 1;
      r->step_started_ms = now_ms;
      /* the baseline alias (production) now names the candidate; every request goes there */
      bool moved = false;
      for (int i = 0; i < p->n_aliases; i++)
        if (strcmp(p->aliases[i].name, r->baseline) == 0) {
          copy_name(p->aliases[i].version, r->candidate);
          moved = true;
        }
      p->n_arms = 1;
      copy_name(p->arms[0].name, "stable");
      copy_name(p->arms[0].version, moved ? r->baseline : r->candidate);
      p->arms[0].weight = 100;
      break;
    }
    case ROLLOUT_ROLLBACK:
      r->state = ROLLOUT_ROLLED_BACK;
      r->step_started_ms = now_ms;
      set_two_arms(p, 0);
      break;
  }
  if (why) snprintf(r->reason, sizeof r->reason, "%s", why);
}

/* ---- latency histogram ------------------------------------------------------------------ */

#define HIST_BASE_MS 0.01
#define HIST_RATIO 1.25

int traffic_hist_bucket(double ms) {
  if (!(ms > HIST_BASE_MS)) return 0;
  int b = (int)ceil(log(ms / HIST_BASE_MS) / log(HIST_RATIO));
  return b >= TRAFFIC_HIST_BUCKETS ? TRAFFIC_HIST_BUCKETS - 1 : b;
}

double traffic_hist_upper_ms(int bucket) { return HIST_BASE_MS * pow(HIST_RATIO, bucket); }

double traffic_hist_quantile(const int64_t *counts, double q) {
  int64_t total = 0;
  for (int i = 0; i < TRAFFIC_HIST_BUCKETS; i++) total += counts[i];
  if (total == 0) return 0;
  int64_t rank = (int64_t)ceil(q * (double)total);
  if (rank < 1) rank = 1;
  int64_t seen = 0;
  for (int i = 0; i < TRAFFIC_HIST_BUCKETS; i++) {
    seen += counts[i];
    if (seen >= rank) return traffic_hist_upper_ms(i);
  }
  return traffic_hist_upper_ms(TRAFFIC_HIST_BUCKETS - 1);
}
