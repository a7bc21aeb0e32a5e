/* Request ids, for the access log and the X-Request-ID header: the client's own when usable,
 * else 32 hex digits from a generator. Ids need uniqueness, not secrecy. */
#ifndef INFERD_REQUEST_ID_H
#define INFERD_REQUEST_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQUEST_ID_MAX 128 /* a client's id longer than this is replaced */

typedef struct request_ids {
  uint64_t state; /* xorshift64* */
} request_ids;

/* Seeds g from getrandom (the clock when that fails). */
void request_ids_init(request_ids *g);
/* Writes a new id (32 hex digits) to out[0..cap). One generator per thread, or a lock. */
void request_id_new(request_ids *g, char *out, size_t cap);
/* A client's id is kept when it is 1 to REQUEST_ID_MAX bytes with no control character (the
 * log escapes quotes and backslashes). */
bool request_id_usable(const char *id);

#endif
