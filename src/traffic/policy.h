/* traffic/policy: one model's traffic policy (aliases, weighted arms, sticky key, rollout) and
 * its pure decisions: the stable hash, the arm a request lands on, what a version or alias
 * names. No threads, no clock, no I/O: the runtime (traffic.c) wraps these. */
#ifndef INFERD_TRAFFIC_POLICY_H
#define INFERD_TRAFFIC_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define TRAFFIC_MAX_ARMS 8
#define TRAFFIC_MAX_ALIASES 16
#define TRAFFIC_MAX_STEPS 16
#define TRAFFIC_NAME_MAX 32 /* = infer_request.arm, serve_request.routed_version */

/* The arm name a request that named its version (a number or an alias) reports. */
#define TRAFFIC_ARM_EXPLICIT "explicit"

typedef struct traffic_alias {
  char name[TRAFFIC_NAME_MAX];
  char version[TRAFFIC_NAME_MAX]; /* a version number */
} traffic_alias;

typedef struct traffic_arm {
  char name[TRAFFIC_NAME_MAX];
  char version[TRAFFIC_NAME_MAX]; /* a version number or an alias */
  double weight;                  /* >= 0; the arms' weights are relative */
} traffic_arm;

typedef enum {
  TRAFFIC_STICKY_NONE,
  TRAFFIC_STICKY_HEADER,      /* a request header / gRPC metadata key: sticky_header */
  TRAFFIC_STICKY_PRINCIPAL,   /* the authenticated caller's name */
  TRAFFIC_STICKY_RECORD_FIELD /* a field of the /v1 records: sticky_header holds its name */
} traffic_sticky_kind;

typedef enum {
  ROLLOUT_NONE,        /* no rollout declared */
  ROLLOUT_RUNNING,     /* the tick advances it */
  ROLLOUT_PAUSED,      /* weights held until resume */
  ROLLOUT_ROLLED_BACK, /* a guard or a person sent the candidate back to 0 % */
  ROLLOUT_COMPLETE     /* the candidate took all the traffic (promoted) */
} traffic_rollout_state;

typedef struct traffic_rollout {
  traffic_rollout_state state;
  char candidate[TRAFFIC_NAME_MAX]; /* a version number */
  char baseline[TRAFFIC_NAME_MAX];  /* a version number or an alias */
  int steps[TRAFFIC_MAX_STEPS];     /* candidate percent per step, increasing, the last 100 */
  int n_steps;
  int64_t min_dwell_ms;   /* per step */
  int64_t min_requests;   /* per step, on the candidate, before it may advance or be judged */
  double max_error_rate;  /* guard: candidate errors / requests in the step's window */
  double max_p99_ratio;   /* guard: candidate p99 / baseline p99 in the same window; 0: off */
  double p99_slack_ms;    /* the p99 guard ignores a difference below this (noise at µs scale) */
  double max_shadow_disagreement; /* guard once shadow traffic exists; 0: off */
  /* progress */
  int step;                 /* index into steps */
  int64_t step_started_ms;  /* unix ms */
  char reason[256];         /* why it stopped (rolled back, completed, paused) */
} traffic_rollout;

/* Shadow traffic: a copy of a share of the live requests to another version, at the lowest
 * priority, never waited on; the answers are compared when both are in. */
typedef struct traffic_shadow {
  bool on;
  char version[TRAFFIC_NAME_MAX]; /* a version number or an alias */
  double percent;                 /* of the model's requests, 0..100 */
  int max_in_flight;              /* shadow copies queued or running at once; past it, dropped */
} traffic_shadow;

typedef struct traffic_policy {
  traffic_alias aliases[TRAFFIC_MAX_ALIASES];
  int n_aliases;
  traffic_arm arms[TRAFFIC_MAX_ARMS]; /* in a fixed order: the cumulative split depends on it */
  int n_arms;
  traffic_sticky_kind sticky;
  char sticky_header[64]; /* the header's, or the record field's, name */
  traffic_rollout rollout;
  traffic_shadow shadow;
} traffic_policy;

/* The stable hash of a sticky key into [0, 1): the same key gives the same value on every
 * replica and every run (FNV-1a 64 then two splitmix64 rounds, 53 bits). */
double traffic_hash_unit(const char *key, size_t len);
/* splitmix64: turns a counter into a well-spread 64-bit value (unpinned, key-less requests). */
uint64_t traffic_mix64(uint64_t x);
static inline double traffic_unit_of(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

/* The arm u in [0, 1) lands on: arms take consecutive slices of [0, 1) in their fixed order,
 * each as wide as its share of the total weight, so raising one arm's weight moves only the
 * keys at the slices' borders. -1 when there are no arms or every weight is 0. */
int traffic_pick_arm(const traffic_policy *p, double u);

/* What a version string names: a number stays itself; an alias becomes its version. NULL when
 * it is neither (an alias the policy lacks). */
const char *traffic_resolve_version(const traffic_policy *p, const char *version);
bool traffic_is_version_number(const char *s);

/* A request's route: requested is the version or alias it named (NULL or "": none); u the
 * draw for an unpinned one (the sticky key's hash, else a random value). Out: the version
 * number to acquire ("" : the model's default) and the arm ("" when the policy has no arms).
 * NOT_FOUND naming the model and the name when requested is neither a number nor an alias. */
inferd_status traffic_route(const traffic_policy *p, const char *model, const char *requested, double u,
                            char version[TRAFFIC_NAME_MAX], char arm[TRAFFIC_NAME_MAX]);

/* The policy as JSON (the API's and the store's form) and back. from_json checks everything
 * (names, weights, versions, steps, guards) and names the JSON path of a fault, "traffic.arms[1].weight". */
json_t *traffic_policy_to_json(const traffic_policy *p);
inferd_status traffic_policy_from_json(const json_t *doc, const char *path, traffic_policy *out);
const char *traffic_rollout_state_name(traffic_rollout_state s);

/* ---- the rollout step machine and its guards (pure) ------------------------------------- */

/* What one arm did in the current step's window. */
typedef struct traffic_window {
  int64_t requests;
  int64_t errors;
  double p99_ms; /* 0 when no requests */
} traffic_window;

typedef struct traffic_observation {
  traffic_window candidate, baseline;
  bool has_shadow;
  double shadow_disagreement; /* fraction of compared shadow requests that disagreed */
} traffic_observation;

typedef enum {
  ROLLOUT_HOLD,     /* nothing to do yet */
  ROLLOUT_ADVANCE,  /* go to the next step */
  ROLLOUT_PROMOTE,  /* the last step passed: the candidate takes everything */
  ROLLOUT_ROLLBACK  /* a guard tripped: the candidate back to 0 % at once */
} traffic_decision;

/* The guards first, then the step: a running rollout is rolled back as soon as the errors seen
 * already exceed what max_error_rate allows over min_requests (so the candidate never fails
 * more than that many), or once min_requests are in and its error rate, p99 ratio or shadow
 * disagreement is over the limit; it advances when min_dwell_ms has passed and min_requests
 * were seen. why says which guard tripped, with the figures, or why it holds. */
traffic_decision traffic_rollout_decide(const traffic_rollout *r, int64_t now_ms, const traffic_observation *obs,
                                        char *why, size_t why_len);

/* Applies a decision (or a manual action) to p: rebuilds the arms from the rollout's step
 * (baseline "stable", candidate "canary"), moves the baseline alias on promotion. now_ms
 * starts the next step's window. */
void traffic_rollout_apply(traffic_policy *p, traffic_decision d, int64_t now_ms, const char *why);
/* Sets the arms for the rollout's current step (used when a rollout starts or resumes). */
void traffic_rollout_set_arms(traffic_policy *p);

/* Latency histogram: log-spaced buckets from 10 µs to ~100 s; quantiles from the bucket's
 * upper edge (at most 25 % high). */
#define TRAFFIC_HIST_BUCKETS 72
int traffic_hist_bucket(double ms);
double traffic_hist_upper_ms(int bucket);
double traffic_hist_quantile(const int64_t *counts, double q);

#endif
