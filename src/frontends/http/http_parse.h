/* The HTTP/1.1 request parser as pure functions on byte buffers: the request head, the body's
 * framing, and chunked bodies. No socket and no allocation, so conn.c and the fuzzer
 * (tests/fuzz/fuzz_http_parser.c) run the same code. Strict in the way nginx is: anything
 * that could be read two ways is a 400 (RFC 9112). */
#ifndef INFERD_HTTP_PARSE_H
#define INFERD_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define HTTP_PARSE_MAX_HEADERS 64
#define HTTP_PARSE_MAX_HEAD_BYTES (64 * 1024) /* request line + headers + the empty line */
#define HTTP_PARSE_MAX_CHUNK_LINE 4096        /* a chunk-size line with its extensions */
#define HTTP_PARSE_MAX_TRAILER_BYTES (64 * 1024)

/* A piece of the caller's buffer. */
typedef struct http_span {
  const char *p;
  size_t n;
} http_span;

typedef struct http_head {
  char method[16];
  http_span target;
  int minor; /* HTTP/1.<minor>: 0 or 1 */
  int n_headers;
  struct {
    http_span name, value; /* value without surrounding whitespace */
  } headers[HTTP_PARSE_MAX_HEADERS];
} http_head;

typedef enum { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED } http_body_kind;

typedef struct http_framing {
  http_body_kind kind;
  uint64_t length;       /* HTTP_BODY_LENGTH */
  bool keep_alive;       /* from the version and Connection */
  bool expect_continue;  /* Expect: 100-continue */
} http_framing;

/* Skips the empty lines RFC 9112 lets a server ignore before a request line; returns how
 * many bytes they take. */
size_t http_skip_empty_lines(const char *buf, size_t len);

/* Looks for the empty line that ends a request head in buf[0..len). A line ends with LF,
 * with or without a CR before it (RFC 9112 2.2 lets a recipient accept a bare LF). *scan is
 * where to resume (0 on the first call; kept between calls so a head trickled in byte by
 * byte is scanned once). Returns the head's length including its empty line, or 0 when it
 * has not all arrived. */
size_t http_head_end(const char *buf, size_t len, size_t *scan);

/* Parses a complete head (as http_head_end measured it). out's spans point into buf. */
inferd_status http_parse_head(const char *buf, size_t len, http_head *out);

/* The first header named name (case-insensitive), or NULL. */
const http_span *http_head_header(const http_head *h, const char *name);

/* Decides how the body is framed: Content-Length (digits only, at most one), chunked (the
 * only transfer coding; never with Content-Length or on HTTP/1.0), or none; and checks Host
 * (exactly one on HTTP/1.1, at most one on 1.0). A Content-Length over max_body is a
 * INFERD_TOO_LARGE. */
inferd_status http_parse_framing(const http_head *h, uint64_t max_body, http_framing *out);

/* A chunked body, decoded incrementally. */
typedef enum { HTTP_CHUNK_SIZE, HTTP_CHUNK_DATA, HTTP_CHUNK_DATA_END, HTTP_CHUNK_TRAILER, HTTP_CHUNK_DONE } http_chunk_state;

typedef struct http_chunked {
  http_chunk_state state;
  uint64_t left;          /* data bytes left in the current chunk */
  uint64_t total;         /* body bytes so far */
  uint64_t max;           /* the body limit */
  size_t trailer_bytes;
} http_chunked;

void http_chunked_init(http_chunked *d, uint64_t max_body);

/* One step over the bytes that have arrived (buf[0..len), the start of what is unread).
 * Sets *used to the bytes consumed: 0 means more bytes are needed. In the data state the
 * consumed bytes are body data and *data is set to how many (else 0). Call again while it
 * consumes something and d->state is not HTTP_CHUNK_DONE. */
inferd_status http_chunked_step(http_chunked *d, const char *buf, size_t len, size_t *used, size_t *data);

/* A chunk-size line without its line end: hex digits, then optional extensions
 * (; name[=token or quoted-string]), which are checked and ignored. */
inferd_status http_parse_chunk_size(const char *line, size_t len, uint64_t *size);

/* A trailer field line without its line end: name ":" value, as a header. */
inferd_status http_parse_field_line(const char *line, size_t len, http_span *name, http_span *value);

#endif
