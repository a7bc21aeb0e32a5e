/* A traffic policy as the admin API and the state store take it (traffic/policy.c): parsed and
 * checked, printed and parsed again (what the store does on restart), then routed with a few
 * versions, aliases and draws, and its rollout judged and stepped. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "traffic/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
  if (doc == NULL) return 0;
  traffic_policy p;
  inferd_status st = traffic_policy_from_json(doc, "$", &p);
  json_decref(doc);
  if (!status_is_ok(&st)) return 0;
  /* what the server prints it reads back: a stored policy always loads */
  json_t *out = traffic_policy_to_json(&p);
  traffic_policy q;
  st = traffic_policy_from_json(out, "$", &q);
  json_decref(out);
  if (!status_is_ok(&st)) abort();
  static const char *const asked[] = {NULL, "", "1", "2", "production", "staging", "canary", "x"};
  char version[TRAFFIC_NAME_MAX], arm[TRAFFIC_NAME_MAX];
  for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++)
    for (double u = 0; u < 1; u += 0.125) (void)traffic_route(&p, "m", asked[i], u, version, arm);
  traffic_observation obs = {.candidate = {100, 3, 12.5}, .baseline = {1000, 1, 2.0}, .has_shadow = true,
                             .shadow_disagreement = 0.2};
  char why[512];
  traffic_decision d = traffic_rollout_decide(&p.rollout, 1000000, &obs, why, sizeof why);
  traffic_rollout_apply(&p, d, 1000000, why);
  if (p.rollout.state != ROLLOUT_NONE && p.rollout.step >= p.rollout.n_steps) abort();
  return 0;
}
