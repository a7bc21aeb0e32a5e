/* util/ct: equality of secrets (API keys, digests, MACs) in constant time: the time taken
 * depends on the length only, never on where the bytes first differ, so a timing observer
 * learns nothing of a secret from a failed guess. */
#ifndef INFERD_UTIL_CT_H
#define INFERD_UTIL_CT_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the n bytes at a and b are equal. Compares by 64-bit words (OpenSSL's CRYPTO_memcmp
 * goes a byte at a time: ~7 instructions a byte, which showed on a credential checked on
 * every request), accumulating differences with no branch on the data. */
bool ct_equal(const void *a, const void *b, size_t n);

#endif
