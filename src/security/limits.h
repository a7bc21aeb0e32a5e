/* security/limits: per-caller rate limits and quotas in the request pipeline. An admit handler
 * enforces requests per second (with a burst) and requests in flight per principal (optionally
 * per principal and model); a check handler enforces records (rows) per minute. Every answer to
 * a limited caller carries the IETF RateLimit-Policy and RateLimit fields; a refusal is 429 with
 * Retry-After. The state lives behind limits_store.h. */
#ifndef INFERD_LIMITS_H
#define INFERD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/principal.h"
#include "core/serve.h"
#include "core/status.h"
#include "security/limits_store.h"
#include "security/ratelimit.h"

/* The defaults, for every principal (anonymous included) whose own limits do not say otherwise
 * (core/principal.h's rate_per_s, burst, max_concurrent, records_per_min; 0 there: the default). */
typedef struct limits_options {
  double rate_per_s;       /* requests per second; 0: no limit */
  int64_t burst;           /* 0: the rate's one second, at least 1 */
  int64_t max_concurrent;  /* requests in flight; 0: no limit */
  int64_t records_per_min; /* rows per minute; 0: no limit */
  int64_t tokens_per_min;  /* text generation: prompt + completion tokens per minute; 0: no limit */
  bool per_model;          /* a budget per principal and model, rather than per principal */
  size_t max_keys;         /* the local store's bound; 0: its default */
} limits_options;

/* What applies to one principal: the defaults with its own limits over them. */
typedef struct limits_policy {
  bool has_requests, has_records, has_tokens;
  ratelimit_rule requests;
  ratelimit_rule records; /* records_per_min / 60 per second, a minute's worth of burst */
  ratelimit_rule tokens;  /* tokens_per_min, the same way */
  int64_t max_concurrent; /* 0: none */
} limits_policy;

/* Pure. p may be NULL (anonymous). Values out of the limiter's range are brought into it. */
void limits_policy_of(const limits_options *defaults, const principal *p, limits_policy *out);

/* Parses a rate as users write it: "10", "10/s", "600/m" or "600/min", "36000/h"; to per second.
 * INVALID_ARGUMENT naming `what` when it is not one, not positive, or above 1000000/s. */
inferd_status limits_parse_rate(const char *what, const char *text, double *per_s);

typedef struct limits limits;

/* store: taken over (destroyed with the limits); NULL: a local store of o->max_keys keys. */
inferd_status limits_create(const limits_options *o, limit_store *store, limits **out);
/* Adds the admit and check handlers to the pipeline (before serving starts). Register after
 * authentication's admit handler: the principal must be known. A request whose principal has no
 * limits, with no defaults set, costs the handlers a few compares. */
inferd_status limits_register(limits *l, serve *s);
/* Text generation's tokens per minute (generate/ calls these through main's glue: the layers do
 * not see each other). take reserves `tokens` (the prompt + max_tokens, known once the prompt is
 * tokenized, at the hand-off): RATE_LIMITED naming the budget and when it fits, TOO_LARGE when it
 * never can; OK also when the caller has no token limit or the store fails (logged). give_back
 * returns what the generation did not use when it ends. p may be NULL (anonymous). */
inferd_status limits_tokens_take(limits *l, const principal *p, const char *model, int64_t tokens);
void limits_tokens_give_back(limits *l, const principal *p, const char *model, int64_t tokens);

/* After the pipeline has stopped (no request still holds a concurrency slot). */
void limits_destroy(limits *l);

#endif
