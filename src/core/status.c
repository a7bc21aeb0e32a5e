#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>

#include "util/utf8.h"

static const struct {
  int http;
  const char *reason;
  int grpc; /* grpc_status_code values, spelled out so the core needs no gRPC header */
} status_table[INFERD_CODE_COUNT] = {
    [INFERD_OK] = {200, "OK", 0},
    [INFERD_INVALID_ARGUMENT] = {400, "Bad Request", 3},
    [INFERD_NOT_FOUND] = {404, "Not Found", 5},
    [INFERD_METHOD_NOT_ALLOWED] = {405, "Method Not Allowed", 12},
    [INFERD_TOO_LARGE] = {413, "Payload Too Large", 8},
    [INFERD_UNSUPPORTED_MEDIA] = {415, "Unsupported Media Type", 3},
    [INFERD_UNAVAILABLE] = {503, "Service Unavailable", 14},
    [INFERD_RESOURCE_EXHAUSTED] = {503, "Service Unavailable", 8},
    [INFERD_DEADLINE_EXCEEDED] = {504, "Gateway Timeout", 4},
    [INFERD_INTERNAL] = {500, "Internal Server Error", 13},
    [INFERD_REQUEST_TIMEOUT] = {408, "Request Timeout", 4},
    [INFERD_UNAUTHENTICATED] = {401, "Unauthorized", 16},
    [INFERD_PERMISSION_DENIED] = {403, "Forbidden", 7},
    [INFERD_RATE_LIMITED] = {429, "Too Many Requests", 8},
};

inferd_status status_make(inferd_code code, const char *fmt, ...) {
  inferd_status s = {.code = code};
  char raw[sizeof s.msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  /* Messages quote the request (a model name from the path, a tensor name, an id), and go out
   * as JSON strings and gRPC status text, which must be UTF-8: a message that is not would be
   * refused by the JSON encoder and answered with an empty body. */
  utf8_sanitize(s.msg, sizeof s.msg, raw);
  return s;
}

int status_http_code(inferd_code code) {
  return code < INFERD_CODE_COUNT ? status_table[code].http : 500;
}

const char *status_http_reason(inferd_code code) {
  return code < INFERD_CODE_COUNT ? status_table[code].reason : "Internal Server Error";
}

int status_grpc_code(inferd_code code) {
  return code < INFERD_CODE_COUNT ? status_table[code].grpc : 13;
}

const char *status_http_phrase(int http_status) {
  for (int i = 0; i < INFERD_CODE_COUNT; i++)
    if (status_table[i].http == http_status) return status_table[i].reason;
  switch (http_status) {
    case 100: return "Continue"; /* the interim answer to Expect: 100-continue, not an outcome */
    default: return "Unknown";
  }
}
