/* libFuzzer harness for the HTTP content codings (src/frontends/http/http_compress.c). The
 * first byte picks the coding and the cap on the decoded size, the second how the body is cut
 * into buffer pieces; the rest is the body. Checks: decoding in pieces decides exactly as
 * decoding in one piece (status and bytes); nothing past cap + 1 bytes is ever inflated; what
 * decodes re-encodes with http_gzip_encode and decodes back to the same bytes; the input
 * itself survives a gzip round trip; and the header parsers take the input as a header
 * value without reading past it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/http_compress.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static struct evbuffer *pieces_of(const uint8_t *data, size_t n, size_t piece) {
  struct evbuffer *b = evbuffer_new();
  CHECK(b);
  if (piece == 0) piece = n ? n : 1;
  for (size_t off = 0; off < n; off += piece)
    CHECK(evbuffer_add_reference(b, data + off, n - off < piece ? n - off : piece, NULL, NULL) == 0);
  return b;
}

static bool same_bytes(struct evbuffer *a, struct evbuffer *b) {
  size_t n = evbuffer_get_length(a);
  return n == evbuffer_get_length(b) && (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  http_coding coding = data[0] & 1 ? HTTP_CODING_DEFLATE : HTTP_CODING_GZIP;
  size_t cap = (size_t)1 << ((data[0] >> 1) % 21); /* 1 B .. 1 MiB */
  size_t piece = data[1] % 8 == 0 ? 0 : data[1];
  const uint8_t *body = data + 2;
  size_t n = size - 2;

  struct evbuffer *whole = pieces_of(body, n, 0), *split = pieces_of(body, n, piece);
  struct evbuffer *out1 = evbuffer_new(), *out2 = evbuffer_new();
  CHECK(out1 && out2);
  inferd_status s1 = http_body_decode(coding, whole, out1, cap, "--max-body-bytes");
  inferd_status s2 = http_body_decode(coding, split, out2, cap, "--max-body-bytes");
  CHECK(s1.code == s2.code);
  CHECK(strcmp(s1.msg, s2.msg) == 0);
  CHECK(evbuffer_get_length(whole) == n && evbuffer_get_length(split) == n); /* inputs untouched */
  CHECK(evbuffer_get_length(out1) <= cap + 1);
  CHECK(s1.code == INFERD_OK || s1.code == INFERD_INVALID_ARGUMENT || s1.code == INFERD_TOO_LARGE);
  if (s1.code == INFERD_OK) {
    CHECK(same_bytes(out1, out2));
    CHECK(evbuffer_get_length(out1) <= cap);
    struct evbuffer *gz = evbuffer_new(), *back = evbuffer_new();
    CHECK(gz && back);
    CHECK(http_gzip_encode(out1, gz, HTTP_COMPRESS_LEVEL).code == INFERD_OK);
    inferd_status s3 = http_body_decode(HTTP_CODING_GZIP, gz, back, cap, "x");
    CHECK(status_is_ok(&s3) && same_bytes(out1, back));
    evbuffer_free(gz);
    evbuffer_free(back);
  }

  /* the input as a reply body */
  struct evbuffer *gz = evbuffer_new(), *back = evbuffer_new();
  CHECK(gz && back);
  CHECK(http_gzip_encode(split, gz, 1 + data[1] % 9).code == INFERD_OK);
  inferd_status s4 = http_body_decode(HTTP_CODING_GZIP, gz, back, n, "x");
  CHECK(status_is_ok(&s4) && same_bytes(back, whole));

  /* the input as header values (NUL-terminated copies, so ASan sees any overread) */
  char *value = malloc(n + 1);
  CHECK(value);
  memcpy(value, body, n);
  value[n] = '\0';
  http_accept_encoding acc;
  http_accept_encoding_init(&acc);
  http_accept_encoding_scan(&acc, value);
  CHECK(acc.gzip_q >= -1 && acc.gzip_q <= 1000 && acc.any_q >= -1 && acc.any_q <= 1000);
  (void)http_accept_encoding_gzip(&acc);
  http_coding c;
  inferd_status s5 = http_content_coding_parse(value, &c);
  CHECK(s5.code == INFERD_OK || s5.code == INFERD_UNSUPPORTED_MEDIA);

  free(value);
  evbuffer_free(gz);
  evbuffer_free(back);
  evbuffer_free(whole);
  evbuffer_free(split);
  evbuffer_free(out1);
  evbuffer_free(out2);
  return 0;
}
