/* SHA-256 (FIPS 180-4), for artifact digests in the model catalogue. */
#ifndef INFERD_SHA256_H
#define INFERD_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t buf[64];
  size_t used;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t digest[32]);
/* Lowercase hex digest of a file into hex[65]; -1 (errno set) when it cannot be read. */
int sha256_file_hex(const char *path, char hex[65]);

#endif
