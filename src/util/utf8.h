/* UTF-8 checks for text that came from a client: ONNX string tensors, gRPC string fields and
 * every message that quotes the request must be valid UTF-8 (JSON and proto3 require it). */
#ifndef INFERD_UTF8_H
#define INFERD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is valid UTF-8 (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF). On false, *bad_at (when not NULL) is the offset of the first invalid byte. */
bool utf8_valid(const char *s, size_t len, size_t *bad_at);

/* Copies the NUL-terminated src into dst[cap] as valid UTF-8: each invalid byte becomes
 * U+FFFD, and the copy stops before a character that would not fit, so truncation never cuts
 * a sequence. Returns the length written (dst is always terminated when cap > 0). */
size_t utf8_sanitize(char *dst, size_t cap, const char *src);

#endif
