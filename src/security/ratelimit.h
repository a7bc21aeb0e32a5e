/* security/ratelimit: the pure limiter. GCRA (the generic cell rate algorithm: a token bucket kept
 * as one timestamp) for units per second with a burst, a cost per take so the same code limits
 * requests per second and records per minute; a concurrency counter; and the IETF RateLimit
 * fields (draft-ietf-httpapi-ratelimit-headers) that describe a decision. State and time in,
 * decision out: no clock, no lock, no allocation, so a shared store (Redis) can run the same
 * arithmetic. */
#ifndef INFERD_RATELIMIT_H
#define INFERD_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bounds a rule must keep (ratelimit_rule_check): the arithmetic is exact in whole
 * nanoseconds (a unit's interval rounded to 1 ns, so at most 0.05 % off the rate asked for), and
 * a full bucket's refill time (burst / rate) stays under RATELIMIT_MAX_REFILL_S, so no product
 * comes near 2^63. */
#define RATELIMIT_MAX_RATE 1e6 /* units per second */
#define RATELIMIT_MAX_REFILL_S 1e6

typedef struct ratelimit_rule {
  double rate_per_s; /* units refilled per second, > 0 */
  int64_t burst;     /* units a full bucket holds: what may be taken at once after a pause, >= 1 */
} ratelimit_rule;

/* NULL when the rule is usable, else what is wrong with it (a constant string). */
const char *ratelimit_rule_check(const ratelimit_rule *r);

typedef struct ratelimit_decision {
  bool allowed;
  bool never;             /* refused, and no wait would help: the cost is above the burst */
  int64_t limit;          /* the policy's quota (burst, or the concurrency maximum) */
  int64_t remaining;      /* whole units that could be taken right after this decision */
  int64_t retry_after_ns; /* refused: until the same take would pass (0 when allowed or never) */
  int64_t reset_ns;       /* until the bucket is full again (0: full); concurrency: 0 */
} ratelimit_decision;

/* GCRA. *tat_ns is the key's state (its theoretical arrival time, ns on the caller's clock; 0 for
 * a key never seen, which is a full bucket). Takes `cost` units at now_ns when the bucket holds
 * them, advancing *tat_ns; else leaves it and says when to retry. A cost of 0 is always allowed
 * (and reports the state). A clock that went backwards (a state from a later clock, as replicas
 * sharing a store may have) is clamped: the caller waits at most one full bucket's refill. */
ratelimit_decision ratelimit_take(int64_t *tat_ns, const ratelimit_rule *r, int64_t cost, int64_t now_ns);

/* Gives back `cost` units taken at or before now_ns (a request refused by a later check): the
 * bucket never ends fuller than full. */
void ratelimit_return(int64_t *tat_ns, const ratelimit_rule *r, int64_t cost, int64_t now_ns);

/* True when the key's bucket is full at now_ns: its state is then the same as a key never seen,
 * so a store may forget it without changing any decision. */
bool ratelimit_idle(int64_t tat_ns, int64_t now_ns);

/* A concurrency limit: one more in flight when fewer than max are; retry_after_ns is a second
 * (nobody knows when a request in flight ends). */
ratelimit_decision ratelimit_concurrency_take(int64_t *in_flight, int64_t max);
void ratelimit_concurrency_return(int64_t *in_flight);

/* Whole seconds for Retry-After and the "t" parameter: rounded up, so that a client that waits
 * them never comes back early; a refusal waits at least 1. */
int64_t ratelimit_seconds(int64_t us);

/* The IETF fields, built item by item into buf (NUL-terminated, never past cap; false when the
 * item did not fit, and then nothing is added). A second item is joined with ", ".
 * RateLimit-Policy: "name";q=Q;w=W[;qu="unit"][;inferd-burst=B]  (w 0: none; burst 0: none; a
 *                   unit the draft does not register, such as "records", goes in inferd-unit)
 * RateLimit:        "name";r=R[;t=T]                             (t < 0: none)
 * A policy name is checked to be a valid sf-string (printable, no '"' or '\\') by
 * ratelimit_policy_item; ratelimit_limit_item, built on every request, takes the same names
 * unchecked. */
bool ratelimit_policy_item(char *buf, size_t cap, const char *name, int64_t quota, int64_t window_s,
                           const char *unit, int64_t burst);
bool ratelimit_limit_item(char *buf, size_t cap, const char *name, int64_t remaining, int64_t reset_s);

/* A rate as a RateLimit-Policy quota over a window: the smallest window of 1..60 s in which the
 * rate is a whole number of units (2.5/s: 5 per 2 s), else the units of a minute rounded down,
 * or for a rate under one a minute, 1 per its interval rounded up. */
void ratelimit_rate_window(double rate_per_s, int64_t *quota, int64_t *window_s);

#endif
