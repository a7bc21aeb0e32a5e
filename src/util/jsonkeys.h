/* Checking a JSON object's keys against the fields a document allows: the loop every strict
 * parser (config.json, the application section, the repository API's bodies) shares. Each
 * caller words its own message with the key this returns. */
#ifndef INFERD_UTIL_JSONKEYS_H
#define INFERD_UTIL_JSONKEYS_H

#include <jansson.h>
#include <stddef.h>

/* The first key of obj that allowed (NULL-terminated) does not list; NULL when all are listed. */
const char *jsonkeys_unknown(const json_t *obj, const char *const *allowed);
/* allowed joined with ", " into buf (truncated to len). */
void jsonkeys_list(const char *const *allowed, char *buf, size_t len);

#endif
