/* security/cors: the allowed-origins list (cors.h). */
#include "security/cors.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cors_policy {
  bool any;
  char **origins; /* owned */
  size_t n;
};

void cors_free(cors_policy *c) {
  if (c == NULL) return;
  for (size_t i = 0; i < c->n; i++) free(c->origins[i]);
  free(c->origins);
  free(c);
}

/* scheme://host[:port], no path, no user info, no spaces. */
static bool origin_valid(const char *o, size_t n) {
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < n; i++)
    if (o[i] == ':' && o[i + 1] == '/' && o[i + 2] == '/') {
      sep = o + i;
      break;
    }
  if (sep == NULL || sep == o) return false;
  for (const char *p = o; p < sep; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))
      return false;
  const char *host = sep + 3, *end = o + n;
  if (host == end) return false;
  for (const char *p = host; p < end; p++)
    if (*p == '/' || *p == '@' || *p == ' ' || *p == '?' || *p == '#' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
      return false;
  return true;
}

inferd_status cors_parse(const char *list, cors_policy **out) {
  *out = NULL;
  if (list == NULL || *list == '\0') return status_ok();
  cors_policy *c = calloc(1, sizeof *c);
  if (c == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == '\0') break;
    const char *e = p;
    while (*e && *e != ',') e++;
    size_t n = (size_t)(e - p);
    while (n && p[n - 1] == ' ') n--;
    if (n == 1 && *p == '*') {
      c->any = true;
    } else if (!origin_valid(p, n)) {
      cors_free(c);
      return status_make(INFERD_INVALID_ARGUMENT, "--cors-origins: '%.*s' is not an origin like https://app.example.com (or *)",
                         (int)(n > 200 ? 200 : n), p);
    } else {
      char **o = realloc(c->origins, (c->n + 1) * sizeof *o);
      if (o == NULL || (o[c->n] = strndup(p, n)) == NULL) {
        if (o) c->origins = o;
        cors_free(c);
        return status_make(INFERD_INTERNAL, "out of memory");
      }
      c->origins = o;
      c->n++;
    }
    p = e;
  }
  if (!c->any && c->n == 0) {
    cors_free(c);
    return status_make(INFERD_INVALID_ARGUMENT, "--cors-origins names no origin");
  }
  *out = c;
  return status_ok();
}

bool cors_allows(const cors_policy *c, const char *origin) {
  if (c == NULL || origin == NULL || *origin == '\0' || strcmp(origin, "null") == 0) return false;
  if (!origin_valid(origin, strlen(origin))) return false;
  if (c->any) return true;
  for (size_t i = 0; i < c->n; i++)
    if (strcasecmp(c->origins[i], origin) == 0) return true;
  return false;
}

bool cors_headers_token_list(const char *v) {
  size_t n = strlen(v);
  if (n > 1024) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = v[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == ',' || ch == ' ';
    if (!ok) return false;
  }
  return true;
}
