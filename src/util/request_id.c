#include "util/request_id.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void request_ids_init(request_ids *g) {
  if (getrandom(&g->state, sizeof g->state, 0) != sizeof g->state || g->state == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    g->state = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) | 1;
  }
}

static uint64_t next_random(request_ids *g) {
  g->state ^= g->state >> 12;
  g->state ^= g->state << 25;
  g->state ^= g->state >> 27;
  return g->state * 0x2545F4914F6CDD1DULL;
}

void request_id_new(request_ids *g, char *out, size_t cap) {
  uint64_t a = next_random(g), b = next_random(g);
  snprintf(out, cap, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

bool request_id_usable(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > REQUEST_ID_MAX) return false;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
  return true;
}
