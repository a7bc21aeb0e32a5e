/* Matches a request path and method against a table of routes. Patterns are paths whose
 * segments may be {model}, {version} or {id}, optionally followed by a literal suffix in the same
 * segment (TF Serving's "{model}:predict"); captured segments are URL-decoded. */
#ifndef INFERD_ROUTER_H
#define INFERD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

enum {
  ROUTE_GET = 1 << 0,
  ROUTE_POST = 1 << 1,
  ROUTE_HEAD = 1 << 2,
  ROUTE_PUT = 1 << 3,
  ROUTE_DELETE = 1 << 4,
  ROUTE_OTHER = 1 << 5,
};

typedef struct route_params {
  char model[256];
  char version[32];
  char id[64]; /* {id}: a batch job's or file's id (jobs_api.c) */
} route_params;

typedef struct route {
  unsigned methods;
  const char *pattern;
  void (*handler)(void *call, const route_params *params);
  /* The scope a caller needs (security/scope.h: SCOPE_OPEN, SCOPE_READ, SCOPE_INFER...); NULL:
   * scope_for_pattern decides, which refuses all but admin for an undeclared route. */
  const char *scope;
  /* NULL, or a route that takes its body as it arrives rather than buffered whole (job uploads;
   * its pattern is a literal path): this opener runs once the head is read, before any body
   * byte, and sets call->sink; the handler then runs when the body is complete. Every other
   * route's body is buffered up to --max-body-bytes. */
  inferd_status (*open_sink)(void *call, const route_params *params);
} route;

typedef enum { ROUTE_MATCHED, ROUTE_NO_PATH, ROUTE_BAD_METHOD, ROUTE_BAD_PARAM } route_result;

/* On ROUTE_MATCHED sets *out and params; on ROUTE_BAD_METHOD sets *allowed to the methods the
 * path takes. path excludes the query string. */
route_result router_match(const route *table, size_t n, const char *path, unsigned method,
                          const route **out, route_params *params, unsigned *allowed);

/* "GET, POST" into buf. */
const char *router_methods_str(unsigned methods, char *buf, size_t len);

#endif
