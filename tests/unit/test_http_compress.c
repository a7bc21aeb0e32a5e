/* Content codings (frontends/http/http_compress.c): gzip, zlib and raw deflate round trips,
 * bodies split across buffer pieces, the decoded-size cap against a zip bomb, corrupt and
 * truncated streams, Content-Encoding values and Accept-Encoding weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "frontends/http/http_compress.h"

/* Compresses data with zlib directly (not the code under test): wbits 16+15 gzip, 15 zlib,
 * -15 raw deflate. Returns a malloc'd buffer. */
static unsigned char *compress_with(int wbits, const void *data, size_t n, size_t *out_n) {
  z_stream z;
  memset(&z, 0, sizeof z);
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  size_t cap = deflateBound(&z, (uLong)n) + 64;
  unsigned char *out = malloc(cap);
  z.next_in = (Bytef *)data;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  *out_n = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

/* An evbuffer holding data in pieces of `piece` bytes each (0: one piece), as a body read
 * from the socket in several reads would be. */
static struct evbuffer *buffer_of(const void *data, size_t n, size_t piece) {
  struct evbuffer *b = evbuffer_new();
  const unsigned char *p = data;
  if (piece == 0) piece = n ? n : 1;
  for (size_t off = 0; off < n; off += piece) {
    size_t k = n - off < piece ? n - off : piece;
    /* a reference makes each piece its own chain link */
    evbuffer_add_reference(b, p + off, k, NULL, NULL);
  }
  return b;
}

static char *pattern(size_t n) {
  char *s = malloc(n + 1);
  for (size_t i = 0; i < n; i++) s[i] = "{\"inputs\":[0.125, 7, -3]}"[i % 26] + (char)(i / 4096 % 3);
  s[n] = '\0';
  return s;
}

/* Decodes body with the code under test; returns the status code and the decoded bytes. */
static inferd_code decode(http_coding coding, const void *body, size_t n, size_t piece, size_t max,
                          struct evbuffer **decoded, char *msg, size_t msg_n) {
  struct evbuffer *in = buffer_of(body, n, piece);
  struct evbuffer *out = evbuffer_new();
  inferd_status st = http_body_decode(coding, in, out, max, "--max-body-bytes");
  assert_int_equal(evbuffer_get_length(in), n); /* left as it was */
  evbuffer_free(in);
  if (msg) snprintf(msg, msg_n, "%s", st.msg);
  if (decoded)
    *decoded = out;
  else
    evbuffer_free(out);
  return st.code;
}

static void check_round_trip(http_coding coding, int wbits, size_t n, size_t piece) {
  char *plain = pattern(n);
  size_t zn;
  unsigned char *z = compress_with(wbits, plain, n, &zn);
  struct evbuffer *out;
  assert_int_equal(decode(coding, z, zn, piece, n, &out, NULL, 0), INFERD_OK);
  assert_int_equal(evbuffer_get_length(out), n);
  assert_memory_equal(evbuffer_pullup(out, -1), plain, n);
  evbuffer_free(out);
  free(z);
  free(plain);
}

static void test_round_trips(void **state) {
  (void)state;
  size_t sizes[] = {1, 100, 70000, 300000};
  size_t pieces[] = {0, 1, 7, 4096};
  for (size_t i = 0; i < 4; i++)
    for (size_t j = 0; j < 4; j++) {
      if (sizes[i] > 1000 && pieces[j] == 1) continue; /* byte pieces: small bodies are enough */
      check_round_trip(HTTP_CODING_GZIP, 16 + 15, sizes[i], pieces[j]);
      check_round_trip(HTTP_CODING_DEFLATE, 15, sizes[i], pieces[j]);  /* zlib, as HTTP says */
      check_round_trip(HTTP_CODING_DEFLATE, -15, sizes[i], pieces[j]); /* raw, as some send */
    }
}

static void test_exactly_at_the_cap(void **state) {
  (void)state;
  size_t n = 50000, zn;
  char *plain = pattern(n);
  unsigned char *z = compress_with(16 + 15, plain, n, &zn);
  assert_int_equal(decode(HTTP_CODING_GZIP, z, zn, 0, n, NULL, NULL, 0), INFERD_OK);
  char msg[512];
  assert_int_equal(decode(HTTP_CODING_GZIP, z, zn, 0, n - 1, NULL, msg, sizeof msg), INFERD_TOO_LARGE);
  assert_non_null(strstr(msg, "--max-body-bytes"));
  free(z);
  free(plain);
}

static void test_gzip_members_concatenated(void **state) {
  (void)state;
  size_t an, bn;
  unsigned char *a = compress_with(16 + 15, "hello, ", 7, &an), *b = compress_with(16 + 15, "world", 5, &bn);
  unsigned char *both = malloc(an + bn);
  memcpy(both, a, an);
  memcpy(both + an, b, bn);
  struct evbuffer *out;
  assert_int_equal(decode(HTTP_CODING_GZIP, both, an + bn, 3, 100, &out, NULL, 0), INFERD_OK);
  assert_int_equal(evbuffer_get_length(out), 12);
  assert_memory_equal(evbuffer_pullup(out, -1), "hello, world", 12);
  evbuffer_free(out);
  /* a deflate stream is one stream: anything after it is wrong */
  unsigned char *za = compress_with(15, "hello", 5, &an);
  unsigned char *zz = malloc(an + 1);
  memcpy(zz, za, an);
  zz[an] = 'x';
  char msg[512];
  assert_int_equal(decode(HTTP_CODING_DEFLATE, zz, an + 1, 0, 100, NULL, msg, sizeof msg), INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(msg, "the deflate body is corrupt"));
  free(a);
  free(b);
  free(both);
  free(za);
  free(zz);
}

/* 10 MB of zeros gzip to about 10 KB; against a 1 MB cap the decoder must stop right after the
 * cap, not inflate the rest. */
static void test_zip_bomb_stops_at_the_cap(void **state) {
  (void)state;
  size_t n = 10 * 1000 * 1000, zn, cap = 1000 * 1000;
  char *zeros = calloc(1, n);
  unsigned char *z = compress_with(16 + 15, zeros, n, &zn);
  assert_true(zn < 20000);
  struct evbuffer *out;
  char msg[512];
  assert_int_equal(decode(HTTP_CODING_GZIP, z, zn, 0, cap, &out, msg, sizeof msg), INFERD_TOO_LARGE);
  assert_true(evbuffer_get_length(out) <= cap + 1); /* what was inflated before stopping */
  assert_non_null(strstr(msg, "--max-body-bytes"));
  assert_non_null(strstr(msg, "decompressed"));
  evbuffer_free(out);
  free(z);
  free(zeros);
}

static void test_corrupt_streams(void **state) {
  (void)state;
  char msg[512];
  size_t n = 5000, zn;
  char *plain = pattern(n);
  unsigned char *z = compress_with(16 + 15, plain, n, &zn);
  /* not gzip at all: the case a JSON body with a wrong header is */
  const char *json = "{\"inputs\": []}";
  assert_int_equal(decode(HTTP_CODING_GZIP, json, strlen(json), 0, 1000, NULL, msg, sizeof msg), INFERD_INVALID_ARGUMENT);
  assert_string_equal(msg, "the gzip body is corrupt: it does not begin with a valid gzip header");
  /* truncated, at every length in pieces */
  for (size_t cut = 1; cut < zn; cut += cut < 30 ? 1 : 97) {
    assert_int_equal(decode(HTTP_CODING_GZIP, z, cut, 0, n, NULL, msg, sizeof msg), INFERD_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "the gzip body is corrupt: "));
  }
  assert_int_equal(decode(HTTP_CODING_GZIP, z, zn - 4, 5, n, NULL, msg, sizeof msg), INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(msg, "truncated"));
  /* a changed byte in the CRC at the end */
  z[zn - 6] ^= 0x55;
  assert_int_equal(decode(HTTP_CODING_GZIP, z, zn, 0, n, NULL, msg, sizeof msg), INFERD_INVALID_ARGUMENT);
  assert_string_equal(msg, "the gzip body is corrupt: the checksum or length at its end does not match the data");
  z[zn - 6] ^= 0x55;
  /* flipped bits in the data: never a crash, an error or (rarely) a different body caught by the CRC */
  for (size_t i = 10; i < zn - 8; i += 13) {
    z[i] ^= 0xff;
    inferd_code c = decode(HTTP_CODING_GZIP, z, zn, 0, n, NULL, msg, sizeof msg);
    assert_true(c == INFERD_INVALID_ARGUMENT || c == INFERD_TOO_LARGE);
    z[i] ^= 0xff;
  }
  /* an empty body stays empty */
  struct evbuffer *out;
  assert_int_equal(decode(HTTP_CODING_GZIP, "", 0, 0, 10, &out, NULL, 0), INFERD_OK);
  assert_int_equal(evbuffer_get_length(out), 0);
  evbuffer_free(out);
  free(z);
  free(plain);
}

static void test_gzip_encode_round_trip(void **state) {
  (void)state;
  size_t sizes[] = {0, 1, 1500, 200000};
  for (size_t i = 0; i < 4; i++) {
    char *plain = pattern(sizes[i]);
    struct evbuffer *in = buffer_of(plain, sizes[i], 1000), *gz = evbuffer_new(), *back = evbuffer_new();
    assert_int_equal(http_gzip_encode(in, gz, HTTP_COMPRESS_LEVEL).code, INFERD_OK);
    assert_int_equal(evbuffer_get_length(in), sizes[i]);
    unsigned char head[2];
    assert_int_equal(evbuffer_copyout(gz, head, 2), 2);
    assert_int_equal(head[0], 0x1f);
    assert_int_equal(head[1], 0x8b);
    if (sizes[i] > 1000) assert_true(evbuffer_get_length(gz) < sizes[i] / 2);
    /* zlib itself reads it back */
    size_t gn = evbuffer_get_length(gz);
    unsigned char *dst = malloc(sizes[i] + 1);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 16 + 15), Z_OK);
    z.next_in = evbuffer_pullup(gz, -1);
    z.avail_in = (uInt)gn;
    z.next_out = dst;
    z.avail_out = (uInt)sizes[i] + 1;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, sizes[i]);
    assert_memory_equal(dst, plain, sizes[i]);
    inflateEnd(&z);
    /* and so does the decoder */
    assert_int_equal(http_body_decode(HTTP_CODING_GZIP, gz, back, sizes[i], "x").code, INFERD_OK);
    assert_int_equal(evbuffer_get_length(back), sizes[i]);
    free(dst);
    evbuffer_free(in);
    evbuffer_free(gz);
    evbuffer_free(back);
    free(plain);
  }
}

static void test_content_coding_values(void **state) {
  (void)state;
  http_coding c;
  assert_int_equal(http_content_coding_parse("gzip", &c).code, INFERD_OK);
  assert_int_equal(c, HTTP_CODING_GZIP);
  assert_int_equal(http_content_coding_parse(" GZip ", &c).code, INFERD_OK);
  assert_int_equal(c, HTTP_CODING_GZIP);
  assert_int_equal(http_content_coding_parse("x-gzip", &c).code, INFERD_OK);
  assert_int_equal(c, HTTP_CODING_GZIP);
  assert_int_equal(http_content_coding_parse("deflate", &c).code, INFERD_OK);
  assert_int_equal(c, HTTP_CODING_DEFLATE);
  assert_int_equal(http_content_coding_parse("identity", &c).code, INFERD_OK);
  assert_int_equal(c, HTTP_CODING_IDENTITY);
  const char *bad[] = {"br", "zstd", "gzip, br", "gzip,gzip", "", "compress", "gzip;q=1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    inferd_status st = http_content_coding_parse(bad[i], &c);
    assert_int_equal(st.code, INFERD_UNSUPPORTED_MEDIA);
    char want[80];
    snprintf(want, sizeof want, "'%s'", bad[i]);
    assert_non_null(strstr(st.msg, want));
  }
}

static bool accepts(const char *a, const char *b) {
  http_accept_encoding acc;
  http_accept_encoding_init(&acc);
  http_accept_encoding_scan(&acc, a);
  if (b) http_accept_encoding_scan(&acc, b);
  return http_accept_encoding_gzip(&acc);
}

static void test_accept_encoding_weights(void **state) {
  (void)state;
  assert_true(accepts("gzip", NULL));
  assert_true(accepts("gzip, deflate, br", NULL));
  assert_true(accepts("br;q=1.0, GZIP;q=0.5", NULL));
  assert_true(accepts("x-gzip", NULL));
  assert_true(accepts("*", NULL));
  assert_true(accepts("gzip ; q=0.001", NULL));
  assert_true(accepts("gzip;q=1.000", NULL));
  assert_true(accepts("deflate", "gzip")); /* two headers are one list */
  assert_false(accepts("", NULL));
  assert_false(accepts("identity", NULL));
  assert_false(accepts("deflate, br", NULL));
  assert_false(accepts("gzip;q=0", NULL));
  assert_false(accepts("gzip;q=0.000", NULL));
  assert_false(accepts("gzip; Q=0", NULL));
  assert_false(accepts("gzip;q=0, *", NULL));       /* named beats "*" */
  assert_false(accepts("*;q=0", NULL));
  assert_false(accepts("*, gzip;q=0", NULL));
  assert_true(accepts("*;q=0, gzip", NULL));
  assert_false(accepts("gzip;q=0", "gzip"));        /* the first mention counts */
  assert_false(accepts("gzip;q=2", NULL));          /* malformed weights: the element is ignored */
  assert_false(accepts("gzip;q=1.5", NULL));
  assert_false(accepts("gzip;q=0.1234", NULL));
  assert_false(accepts("gzip;q=", NULL));
  assert_false(accepts("gzip;q=abc", NULL));
  assert_false(accepts("gzip garbage", NULL));
  assert_true(accepts("gzip;q=x, *", NULL));        /* ... so "*" decides */
  assert_true(accepts("gzip;level=\"a,b\";q=0.5", NULL)); /* other parameters are skipped, quoted ones too */
  assert_false(accepts("gzipx, xgzip", NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_exactly_at_the_cap),
      cmocka_unit_test(test_gzip_members_concatenated),
      cmocka_unit_test(test_zip_bomb_stops_at_the_cap),
      cmocka_unit_test(test_corrupt_streams),
      cmocka_unit_test(test_gzip_encode_round_trip),
      cmocka_unit_test(test_content_coding_values),
      cmocka_unit_test(test_accept_encoding_weights),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
