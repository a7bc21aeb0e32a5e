/* util/ct: constant-time equality (ct.h). */
#include "util/ct.h"

#include <stdint.h>
#include <string.h>

bool ct_equal(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t u, v;
    memcpy(&u, x + i, 8);
    memcpy(&v, y + i, 8);
    acc |= u ^ v;
  }
  for (; i < n; i++) acc |= (uint64_t)(x[i] ^ y[i]);
  /* through a volatile, so that the compiler cannot end the loops early once acc is non-zero */
  volatile uint64_t diff = acc;
  return diff == 0;
}
