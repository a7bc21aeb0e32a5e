/* security/cors: which browser origins may call the API (--cors-origins), pure. Off by
 * default: with no list, no CORS header is ever sent and browsers keep other origins out. */
#ifndef INFERD_CORS_H
#define INFERD_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

typedef struct cors_policy cors_policy;

/* A comma-separated list of origins ("https://app.example.com,http://localhost:3000") or "*"
 * for any. INVALID_ARGUMENT naming an entry that is not scheme://host[:port]. NULL or "":
 * *out = NULL (CORS off). */
inferd_status cors_parse(const char *list, cors_policy **out);
void cors_free(cors_policy *c);
/* Whether origin (the request's Origin header) may call; false for a NULL policy. Scheme and
 * host compare case-insensitively, as browsers serialise them in lower case anyway. */
bool cors_allows(const cors_policy *c, const char *origin);
/* A preflight's Access-Control-Request-Headers value is safe to echo back: header-name
 * tokens, commas and spaces, at most 1024 bytes. */
bool cors_headers_token_list(const char *value);

#endif
