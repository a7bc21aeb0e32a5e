/* Instructions per number of the V2 JSON number scanner (src/frontends/http/json_numbers.c):
 * scans an array of 240,000 numbers (floats printed with 9 digits, every fifth an integer)
 * REPS times. Built by hand against any version of json_numbers.c, so two versions compare
 * side by side under callgrind (bench/RESULTS.md gives the commands). */
#include <stdio.h>
#include <stdlib.h>

#include "frontends/http/json_numbers.h"

static bool sink(const jnum_scalar *v, void *ctx) {
  *(double *)ctx += v->d;
  return true;
}

int main(int argc, char **argv) {
  int n = 200000, reps = argc > 1 ? atoi(argv[1]) : 5;
  char *buf = malloc((size_t)n * 24 + 16), *p = buf;
  if (buf == NULL) return 1;
  unsigned s = 12345;
  *p++ = '[';
  for (int i = 0; i < n; i++) {
    s = s * 1103515245u + 12345u;
    p += sprintf(p, "%s%.9g", i ? "," : "", (double)(s % 2000000) / 1000.0 - 1000.0 + (i % 7 == 0 ? 0.5 : 0));
    if (i % 5 == 0) p += sprintf(p, ",%d", (int)(s % 1000) - 500);
  }
  *p++ = ']';
  double acc = 0;
  for (int r = 0; r < reps; r++)
    if (jnum_scan(buf, (size_t)(p - buf), 4, sink, &acc) != SCAN_OK) return 1;
  printf("%g\n", acc);
  free(buf);
  return 0;
}
