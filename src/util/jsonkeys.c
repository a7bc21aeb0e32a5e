/* Strict key checks for JSON objects (util/jsonkeys.h). */
#include "util/jsonkeys.h"

#include <stdbool.h>
#include <string.h>

#include "util/strbuf.h"

const char *jsonkeys_unknown(const json_t *obj, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    bool ok = false;
    for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, key) == 0;
    if (!ok) return key;
  }
  return NULL;
}

void jsonkeys_list(const char *const *allowed, char *buf, size_t len) {
  sbuf b;
  sbuf_init(&b, buf, len);
  for (const char *const *a = allowed; *a; a++) sbuf_appendf(&b, "%s%s", a == allowed ? "" : ", ", *a);
}
