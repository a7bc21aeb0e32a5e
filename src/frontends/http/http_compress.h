/* HTTP content codings with zlib, as pure functions on buffers: decoding a gzip or deflate
 * request body under a hard cap on the decoded size (a zip bomb stops at the cap), gzip for
 * replies, and the Content-Encoding / Accept-Encoding headers. No sockets and no calls, so the
 * unit tests and the fuzzer (tests/fuzz/fuzz_http_compress.c) run the server's code. */
#ifndef INFERD_HTTP_COMPRESS_H
#define INFERD_HTTP_COMPRESS_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

/* Replies smaller than this are sent as they are: a gzip stream costs 18 bytes of framing and
 * a small reply fits one packet either way. */
#define HTTP_COMPRESS_MIN_BYTES 1024
/* zlib level for replies: 1 is the fastest; a higher level saves a few percent of bytes for
 * several times the CPU, on the worker thread that encodes the reply. */
#define HTTP_COMPRESS_LEVEL 1

typedef enum { HTTP_CODING_IDENTITY, HTTP_CODING_GZIP, HTTP_CODING_DEFLATE } http_coding;

/* A Content-Encoding value: "gzip" (or "x-gzip"), "deflate" or "identity", one coding,
 * case-insensitive. Anything else (br, zstd, a list of codings) is INFERD_UNSUPPORTED_MEDIA
 * naming what was sent. */
inferd_status http_content_coding_parse(const char *value, http_coding *out);

/* Decodes the whole body in (left as it is) by coding, appending to out. "deflate" is the
 * zlib format (RFC 9110 8.4.1.2); raw deflate, which some clients send under that name, is
 * accepted too. gzip may hold several members one after the other (RFC 1952). More than
 * max_out decoded bytes is INFERD_TOO_LARGE naming limit_name, found after inflating at most
 * max_out + 1 bytes; a corrupt or truncated stream is INFERD_INVALID_ARGUMENT. An empty body
 * stays empty. On failure out holds what was decoded so far. */
inferd_status http_body_decode(http_coding coding, struct evbuffer *in, struct evbuffer *out, size_t max_out,
                               const char *limit_name);

/* Appends the gzip stream of all of in (left as it is) to out, at zlib level `level`. */
inferd_status http_gzip_encode(struct evbuffer *in, struct evbuffer *out, int level);

/* What Accept-Encoding headers say about gzip: weights in thousandths (q=0.5 is 500), -1 for
 * a coding they do not name. */
typedef struct http_accept_encoding {
  int gzip_q; /* "gzip" or "x-gzip" */
  int any_q;  /* "*" */
} http_accept_encoding;

void http_accept_encoding_init(http_accept_encoding *a);
/* Adds one Accept-Encoding value (call once per header: several headers are one list). The
 * first mention of a coding counts; an element with a malformed weight is ignored. */
void http_accept_encoding_scan(http_accept_encoding *a, const char *value);
/* gzip is acceptable: named with a weight above 0, or not named and "*" is (RFC 9110 12.5.3). */
bool http_accept_encoding_gzip(const http_accept_encoding *a);

#endif
