/* The allocation arena (util/arena.h): a list of blocks, one per allocation, so pointers handed
 * out stay valid until arena_free. */
#include "util/arena.h"

#include <stdlib.h>
#include <string.h>

void *arena_alloc(arena *a, size_t size) {
  void **np = realloc(a->p, (a->n + 1) * sizeof *np);
  if (np == NULL) return NULL;
  a->p = np;
  void *m = calloc(1, size ? size : 1);
  if (m) a->p[a->n++] = m;
  return m;
}

char *arena_strdup(arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = arena_alloc(a, n);
  if (d) memcpy(d, s, n);
  return d;
}

void arena_free(arena *a) {
  for (size_t i = 0; i < a->n; i++) free(a->p[i]);
  free(a->p);
  a->p = NULL;
  a->n = 0;
}
