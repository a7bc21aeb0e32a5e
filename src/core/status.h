/* inferd_status: an error code plus a message that says what to fix. One table maps the codes
 * to HTTP and gRPC status so every frontend answers the same failure the same way. */
#ifndef INFERD_STATUS_H
#define INFERD_STATUS_H

#include <stdbool.h>

typedef enum {
  INFERD_OK = 0,
  INFERD_INVALID_ARGUMENT,   /* the request is wrong: 400 */
  INFERD_NOT_FOUND,          /* no such route, model or version: 404 */
  INFERD_METHOD_NOT_ALLOWED, /* 405 */
  INFERD_TOO_LARGE,          /* body or batch over a limit: 413 */
  INFERD_UNSUPPORTED_MEDIA,  /* 415 */
  INFERD_UNAVAILABLE,        /* not ready or draining: 503 */
  INFERD_RESOURCE_EXHAUSTED, /* queue full: 503 with Retry-After */
  INFERD_DEADLINE_EXCEEDED,  /* 504 */
  INFERD_INTERNAL,           /* a backend or server failure: 500 */
  INFERD_REQUEST_TIMEOUT,    /* the client sent its request too slowly: 408 */
  INFERD_UNAUTHENTICATED,    /* no credential, or a bad one: 401 (with WWW-Authenticate) */
  INFERD_PERMISSION_DENIED,  /* a credential without the scope the route needs: 403 */
  INFERD_RATE_LIMITED,       /* the caller's rate or quota: 429 with Retry-After */
  INFERD_CODE_COUNT
} inferd_code;

typedef struct inferd_status {
  inferd_code code;
  char msg[512];
} inferd_status;

/* OK. Sets the code and an empty message only: zeroing the whole 512-byte message on every
 * success (the most common value in the program) cost ~100 instructions a call. */
static inline inferd_status status_ok(void) {
  inferd_status s;
  s.code = INFERD_OK;
  s.msg[0] = '\0';
  return s;
}
inferd_status status_make(inferd_code code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline bool status_is_ok(const inferd_status *s) { return s->code == INFERD_OK; }

/* Returns from the calling function with the status of expr when it is not OK. */
#define TRY(expr)                                  \
  do {                                             \
    inferd_status try_st_ = (expr);                \
    if (try_st_.code != INFERD_OK) return try_st_; \
  } while (0)

int status_http_code(inferd_code code);
const char *status_http_reason(inferd_code code);
int status_grpc_code(inferd_code code);
/* The reason phrase of an HTTP status number, for a status line: the table's, plus the few
 * the HTTP wire layer answers by itself (100, 408). */
const char *status_http_phrase(int http_status);

#endif
