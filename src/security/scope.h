/* security/scope: what a principal's scopes allow, and the scope a route or RPC needs when its
 * table gives none. Pure: strings in, a decision out (tests/unit/test_security_scope.c). */
#ifndef INFERD_SCOPE_H
#define INFERD_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/principal.h"
#include "core/status.h"

/* What a route or RPC declares in its table. */
#define SCOPE_OPEN ""          /* no credential: the health probes */
#define SCOPE_READ "read"      /* metadata, model lists, stats, config, OpenAPI, docs */
#define SCOPE_METRICS "metrics"
#define SCOPE_JOBS "jobs"
#define SCOPE_ADMIN "admin"    /* repository load/unload/index, traffic changes, keys */
/* An inference route: the caller needs infer:<model> (or infer:*). Where the path names the
 * model it is checked at dispatch; the admit stage checks it for every request once the model
 * is known (body-named models, gRPC), so no route can skip it. */
#define SCOPE_INFER "infer"
#define SCOPE_INFER_PREFIX "infer:"

/* Whether one held scope grants `need`. "*" grants everything; "infer:*" every infer:<model>;
 * "infer:<prefix>*" the models whose name starts with prefix; otherwise an exact match. No
 * other scope implies another (admin does not imply read). need "infer" (no model) is granted
 * by any infer scope. */
bool scope_grants(const char *have, const char *need);
/* Whether any of p's scopes grants need (p NULL: no). */
bool scope_allows(const principal *p, const char *need);
/* scope_allows(p, "infer:<model>") without building the string (the admit stage's check, on
 * every request). */
bool scope_allows_infer(const principal *p, const char *model);
/* need for a route: SCOPE_INFER with a model becomes "infer:<model>" in buf, else need. */
const char *scope_needed(const char *need, const char *model, char *buf, size_t len);
/* A scope a key may hold: read, metrics, jobs, admin, *, infer:*, infer:<model>,
 * infer:<prefix>*. INVALID_ARGUMENT naming it otherwise. */
inferd_status scope_validate(const char *scope);
/* For a route or RPC whose table row names no scope, from its pattern: "metrics" for a
 * /metrics path, "jobs" for a jobs path, else "admin": an undeclared route is refused to all
 * but administrators rather than left open. */
const char *scope_for_pattern(const char *pattern);
/* True for SCOPE_OPEN. */
bool scope_is_open(const char *scope);

#endif
