/* An allocation arena: many small allocations a message points into (a protobuf response
 * being filled), freed together once it has been packed. */
#ifndef INFERD_UTIL_ARENA_H
#define INFERD_UTIL_ARENA_H

#include <stddef.h>

typedef struct arena {
  void **p; /* owned, each owned */
  size_t n;
} arena;

/* Zeroed memory owned by the arena; NULL when out of memory. An arena starts as {0}. */
void *arena_alloc(arena *a, size_t size);
char *arena_strdup(arena *a, const char *s);
/* Frees every allocation; the arena can be used again. */
void arena_free(arena *a);

#endif
