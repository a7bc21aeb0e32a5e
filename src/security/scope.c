/* security/scope: scope matching and validation (scope.h). */
#include "security/scope.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool scope_is_open(const char *scope) { return scope != NULL && scope[0] == '\0'; }

bool scope_grants(const char *have, const char *need) {
  if (have == NULL || need == NULL || *have == '\0') return false;
  if (strcmp(have, "*") == 0) return true;
  size_t pl = strlen(SCOPE_INFER_PREFIX);
  bool have_infer = strncmp(have, SCOPE_INFER_PREFIX, pl) == 0;
  if (strcmp(need, SCOPE_INFER) == 0) return have_infer;
  if (strncmp(need, SCOPE_INFER_PREFIX, pl) == 0) {
    if (!have_infer) return false;
    size_t hl = strlen(have);
    if (have[hl - 1] == '*') /* infer:* or infer:<prefix>* */
      return strlen(need) >= hl - 1 && strncmp(have, need, hl - 1) == 0 && need[pl] != '\0';
    return strcmp(have, need) == 0;
  }
  return strcmp(have, need) == 0;
}

bool scope_allows(const principal *p, const char *need) {
  if (p == NULL) return false;
  for (size_t i = 0; i < p->n_scopes; i++)
    if (scope_grants(p->scopes[i], need)) return true;
  return false;
}

/* "infer:" at the start of h, compared a byte at a time (stopping at h's end): this runs twice on
 * every inference, and strncmp + strlen cost more than the rest of the check. */
static bool infer_prefixed(const char *h) {
  static const char pre[] = SCOPE_INFER_PREFIX;
  for (size_t i = 0; i < sizeof pre - 1; i++)
    if (h[i] != pre[i]) return false;
  return true;
}

bool scope_allows_infer(const principal *p, const char *model) {
  if (p == NULL || model == NULL || *model == '\0') return false;
  for (size_t i = 0; i < p->n_scopes; i++) {
    const char *h = p->scopes[i];
    if (h[0] == '*' && h[1] == '\0') return true;
    if (!infer_prefixed(h)) continue;
    h += sizeof SCOPE_INFER_PREFIX - 1;
    if (h[0] == '*' && h[1] == '\0') return true; /* infer:* */
    size_t hl = strlen(h);
    if (hl && h[hl - 1] == '*' ? strncmp(h, model, hl - 1) == 0 : strcmp(h, model) == 0) return true;
  }
  return false;
}

const char *scope_needed(const char *need, const char *model, char *buf, size_t len) {
  if (strcmp(need, SCOPE_INFER) == 0 && model && *model) {
    snprintf(buf, len, "%s%s", SCOPE_INFER_PREFIX, model);
    return buf;
  }
  return need;
}

inferd_status scope_validate(const char *scope) {
  static const char *const plain[] = {SCOPE_READ, SCOPE_METRICS, SCOPE_JOBS, SCOPE_ADMIN, "*"};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if (strcmp(scope, plain[i]) == 0) return status_ok();
  size_t pl = strlen(SCOPE_INFER_PREFIX);
  if (strncmp(scope, SCOPE_INFER_PREFIX, pl) == 0 && scope[pl] != '\0' && strlen(scope) < 256 + pl) {
    const char *m = scope + pl;
    bool ok = true;
    for (const char *c = m; *c && ok; c++)
      ok = (unsigned char)*c > ' ' && *c != 0x7f && *c != ',' && (*c != '*' || c[1] == '\0');
    if (ok) return status_ok();
  }
  return status_make(INFERD_INVALID_ARGUMENT,
                     "unknown scope '%.100s' (use read, metrics, jobs, admin, *, infer:* or infer:<model>)", scope);
}

const char *scope_for_pattern(const char *pattern) {
  if (pattern == NULL) return SCOPE_ADMIN;
  if (strcmp(pattern, "/metrics") == 0 || strncmp(pattern, "/metrics/", 9) == 0) return SCOPE_METRICS;
  /* HTTP: /v1/jobs, /v2/jobs...; gRPC: a Jobs service's methods */
  const char *j = strstr(pattern, "/jobs");
  if (j && (j[5] == '\0' || j[5] == '/')) return SCOPE_JOBS;
  if (strncasecmp(pattern, "/inferd.Jobs", 12) == 0) return SCOPE_JOBS;
  return SCOPE_ADMIN;
}
