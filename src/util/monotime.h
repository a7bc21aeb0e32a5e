/* The monotonic clock every deadline, latency and timer in the server reads. */
#ifndef INFERD_UTIL_MONOTIME_H
#define INFERD_UTIL_MONOTIME_H

#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC: only differences mean anything. */
int64_t monotime_ns(void);

#endif
