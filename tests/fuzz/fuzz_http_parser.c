/* libFuzzer harness for the HTTP/1.1 request parser (src/frontends/http/http_parse.c): the
 * input is what a client sends. It runs the head, the framing decision and a chunked body
 * the way conn.c does, and checks that feeding the bytes in pieces decides exactly as
 * feeding them at once (a split read must never change how a request is framed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/http_parse.h"

#define CHECK(cond) \
  do {              \
    if (!(cond)) abort(); \
  } while (0)

typedef struct {
  inferd_code code;
  int done;
  size_t consumed, data_len;
  uint64_t data_hash;
} chunked_result;

/* Decodes a chunked body arriving `piece` bytes at a time (0: all at once). */
static chunked_result run_chunked(const char *body, size_t len, size_t piece, uint64_t max) {
  chunked_result r = {INFERD_OK, 0, 0, 0, 1469598103934665603ULL};
  http_chunked d;
  http_chunked_init(&d, max);
  size_t have = piece == 0 ? len : (piece < len ? piece : len);
  while (d.state != HTTP_CHUNK_DONE) {
    size_t used = 0, data = 0;
    inferd_status st = http_chunked_step(&d, body + r.consumed, have - r.consumed, &used, &data);
    if (!status_is_ok(&st)) {
      r.code = st.code;
      return r;
    }
    CHECK(used <= have - r.consumed);
    CHECK(data == 0 || data == used);
    for (size_t i = 0; i < data; i++) r.data_hash = (r.data_hash ^ (uint8_t)body[r.consumed + i]) * 1099511628211ULL;
    r.data_len += data;
    r.consumed += used;
    if (used == 0) {
      if (have == len) return r; /* waits for more */
      have = piece == 0 || have + piece > len ? len : have + piece;
    }
  }
  r.done = 1;
  CHECK(r.data_len <= max);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  size_t skip = http_skip_empty_lines(buf, size);
  CHECK(skip <= size);
  buf += skip;
  size -= skip;

  size_t scan = 0;
  size_t end = http_head_end(buf, size, &scan);
  CHECK(end <= size);
  /* the same bytes in pieces of a varying size find the same end */
  size_t scan2 = 0, end2 = 0, have = 0, step = size ? (uint8_t)buf[0] % 13 + 1 : 1;
  for (;;) {
    have = have + step < size ? have + step : size;
    end2 = http_head_end(buf, have, &scan2);
    if (end2 || have == size) break;
  }
  CHECK(end2 == end);

  http_head h;
  if (end == 0) { /* not a whole head: the parser must still refuse it cleanly */
    inferd_status st = http_parse_head(buf, size, &h);
    (void)st;
    return 0;
  }
  inferd_status st = http_parse_head(buf, end, &h);
  if (!status_is_ok(&st)) {
    CHECK(st.code == INFERD_INVALID_ARGUMENT && st.msg[0]);
    return 0;
  }
  CHECK(h.n_headers <= HTTP_PARSE_MAX_HEADERS);
  CHECK(h.target.p >= buf && h.target.p + h.target.n <= buf + end);
  for (int i = 0; i < h.n_headers; i++) {
    CHECK(h.headers[i].name.n > 0);
    CHECK(h.headers[i].value.p >= buf && h.headers[i].value.p + h.headers[i].value.n <= buf + end);
  }

  http_framing f;
  uint64_t max = 1 << 16;
  st = http_parse_framing(&h, max, &f);
  if (!status_is_ok(&st)) {
    CHECK((st.code == INFERD_INVALID_ARGUMENT || st.code == INFERD_TOO_LARGE) && st.msg[0]);
    return 0;
  }
  if (f.kind == HTTP_BODY_LENGTH) CHECK(f.length <= max);
  if (f.kind != HTTP_BODY_CHUNKED) return 0;

  const char *body = buf + end;
  size_t blen = size - end;
  chunked_result whole = run_chunked(body, blen, 0, max);
  for (size_t piece = 1; piece <= 3; piece++) {
    chunked_result part = run_chunked(body, blen, piece, max);
    CHECK(part.code == whole.code && part.done == whole.done);
    if (whole.code == INFERD_OK) CHECK(part.consumed == whole.consumed && part.data_len == whole.data_len &&
                                       part.data_hash == whole.data_hash);
  }
  return 0;
}
