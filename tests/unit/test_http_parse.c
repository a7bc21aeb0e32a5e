/* The HTTP/1.1 request parser on byte buffers: head end detection (CRLF and bare LF), the
 * request line and header fields, framing decisions (the smuggling shapes are 400), and
 * chunked bodies fed whole and byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "frontends/http/http_parse.h"

/* Parses a whole head (with its empty line) and the framing; returns the status code. */
static inferd_code parse(const char *req, http_head *h, http_framing *f) {
  size_t scan = 0, len = strlen(req);
  size_t end = http_head_end(req, len, &scan);
  if (end == 0) return INFERD_CODE_COUNT; /* incomplete */
  inferd_status st = http_parse_head(req, end, h);
  if (!status_is_ok(&st)) return st.code;
  st = http_parse_framing(h, 1000, f);
  return st.code;
}

static inferd_code code_of(const char *req) {
  http_head h;
  http_framing f;
  return parse(req, &h, &f);
}

static void test_head_end(void **state) {
  (void)state;
  size_t scan = 0;
  const char *r = "GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
  assert_int_equal(http_head_end(r, strlen(r), &scan), strlen(r) - 4);
  /* bare LF lines end a head too (RFC 9112 2.2), and mixed ones */
  scan = 0;
  r = "GET / HTTP/1.1\nHost: x\n\nrest";
  assert_int_equal(http_head_end(r, strlen(r), &scan), strlen(r) - 4);
  scan = 0;
  r = "GET / HTTP/1.1\r\nHost: x\n\r\n";
  assert_int_equal(http_head_end(r, strlen(r), &scan), strlen(r));
  /* incremental: each prefix is incomplete, scanning resumes where it stopped */
  r = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  scan = 0;
  for (size_t i = 1; i < strlen(r); i++) assert_int_equal(http_head_end(r, i, &scan), 0);
  assert_int_equal(http_head_end(r, strlen(r), &scan), strlen(r));
  assert_int_equal(http_skip_empty_lines("\r\n\n\r\nGET", 8), 5);
  assert_int_equal(http_skip_empty_lines("\r", 1), 0);
}

static void test_good_request(void **state) {
  (void)state;
  http_head h;
  http_framing f;
  const char *r = "POST /v2/models/m/infer?x=1 HTTP/1.1\r\nHost: inferd:8000\r\nContent-Length:  12 \r\n"
                  "X-Empty:\r\nexpect: 100-Continue\r\n\r\n";
  assert_int_equal(parse(r, &h, &f), INFERD_OK);
  assert_string_equal(h.method, "POST");
  assert_int_equal(h.target.n, strlen("/v2/models/m/infer?x=1"));
  assert_memory_equal(h.target.p, "/v2/models/m/infer?x=1", h.target.n);
  assert_int_equal(h.minor, 1);
  assert_int_equal(h.n_headers, 4);
  const http_span *v = http_head_header(&h, "content-length");
  assert_non_null(v);
  assert_int_equal(v->n, 2);
  assert_int_equal(http_head_header(&h, "X-Empty")->n, 0);
  assert_null(http_head_header(&h, "Absent"));
  assert_int_equal(f.kind, HTTP_BODY_LENGTH);
  assert_int_equal(f.length, 12);
  assert_true(f.keep_alive);
  assert_true(f.expect_continue);
}

static void test_bare_lf_request(void **state) {
  (void)state;
  http_head h;
  http_framing f;
  assert_int_equal(parse("GET /v2 HTTP/1.1\nHost: x\nConnection: close\n\n", &h, &f), INFERD_OK);
  assert_int_equal(h.n_headers, 2);
  assert_false(f.keep_alive);
  assert_int_equal(f.kind, HTTP_BODY_NONE);
}

static void test_connection_and_version(void **state) {
  (void)state;
  http_head h;
  http_framing f;
  assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &h, &f), INFERD_OK);
  assert_false(f.keep_alive);
  assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, &f), INFERD_OK);
  assert_true(f.keep_alive);
  assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", &h, &f), INFERD_OK);
  assert_false(f.keep_alive);
  assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", &h, &f), INFERD_OK);
  assert_int_equal(f.kind, HTTP_BODY_CHUNKED);
}

static void test_bad_heads(void **state) {
  (void)state;
  static const char *bad[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                 /* two Host */
      "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",                 /* two Host, same value */
      "GET / HTTP/1.1\r\n\r\n",                                       /* HTTP/1.1 without Host */
      "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",                          /* Host not a host */
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n",
      "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n",     /* space before colon */
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",             /* obs-fold */
      "GET / HTTP/1.1\r\n Host: x\r\n\r\n",                           /* whitespace before the first field */
      "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n: novalue\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",               /* bare CR */
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",             /* control character */
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
      "GET / http/1.1\r\nHost: x\r\n\r\n",
      "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
      "AVERYVERYLONGMETHOD / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    inferd_code c = code_of(bad[i]);
    if (c != INFERD_INVALID_ARGUMENT) fail_msg("case %zu (%s): code %d, expected 400", i, bad[i], c);
  }
}

static void test_nul_in_head(void **state) {
  (void)state;
  const char r[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
  http_head h;
  inferd_status st = http_parse_head(r, sizeof r - 1, &h);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "NUL"));
}

static void test_too_many_headers(void **state) {
  (void)state;
  char buf[8192];
  size_t off = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 64; i++) off += (size_t)snprintf(buf + off, sizeof buf - off, "X-%d: v\r\n", i);
  snprintf(buf + off, sizeof buf - off, "\r\n");
  assert_int_equal(code_of(buf), INFERD_INVALID_ARGUMENT);
}

static void test_length_limits(void **state) {
  (void)state;
  http_head h;
  http_framing f;
  assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", &h, &f), INFERD_OK);
  assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", &h, &f), INFERD_TOO_LARGE);
  assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 000000000000000000000000007\r\n\r\n", &h, &f),
                   INFERD_OK);
  assert_int_equal(f.length, 7);
  size_t scan = 0;
  const char *r = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n";
  size_t end = http_head_end(r, strlen(r), &scan);
  inferd_status st = http_parse_head(r, end, &h);
  assert_true(status_is_ok(&st));
  st = http_parse_framing(&h, UINT64_MAX, &f);
  assert_int_equal(st.code, INFERD_TOO_LARGE);
}

static void test_chunk_size_lines(void **state) {
  (void)state;
  uint64_t n = 0;
  assert_int_equal(http_parse_chunk_size("1aF", 3, &n).code, INFERD_OK);
  assert_int_equal(n, 0x1af);
  const char *ok[] = {"5;a", "5;a=b", "5 ; a = \"q\\\"x\" ;b", "0005;name=\"\"", "ffffffffffffffff"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (http_parse_chunk_size(ok[i], strlen(ok[i]), &n).code != INFERD_OK) fail_msg("refused %s", ok[i]);
  const char *bad[] = {"", "x", "-5", "+5", "5 ", "5;", "5;=b", "5;a=", "5;a=\"open", "5 6", "0x5", "5;a b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (http_parse_chunk_size(bad[i], strlen(bad[i]), &n).code != INFERD_INVALID_ARGUMENT) fail_msg("took '%s'", bad[i]);
  assert_int_equal(http_parse_chunk_size("10000000000000000", 17, &n).code, INFERD_TOO_LARGE);
}

/* Runs a chunked body through the decoder, `piece` bytes at a time (0: all at once). Returns
 * the status, the decoded data in out. */
static inferd_code decode(const char *body, size_t len, size_t piece, char *out, size_t *out_len, uint64_t max) {
  http_chunked d;
  http_chunked_init(&d, max);
  size_t have = 0, pos = 0; /* bytes delivered so far, and consumed */
  *out_len = 0;
  while (d.state != HTTP_CHUNK_DONE) {
    size_t used, data;
    inferd_status st = http_chunked_step(&d, body + pos, have - pos, &used, &data);
    if (!status_is_ok(&st)) return st.code;
    if (data) {
      memcpy(out + *out_len, body + pos, data);
      *out_len += data;
    }
    pos += used;
    if (used == 0) {
      if (have == len) return INFERD_CODE_COUNT; /* wants more than there is */
      have = piece == 0 ? len : (have + piece < len ? have + piece : len);
    }
  }
  return pos == len ? INFERD_OK : INFERD_NOT_FOUND; /* NOT_FOUND: bytes left after the body */
}

static void test_chunked_bodies(void **state) {
  (void)state;
  char out[256];
  size_t n;
  const char *b = "5;ext=1\r\nhello\r\nA\r\n, chunked!\r\n0\r\nX-Trailer: yes\r\n\r\n";
  for (size_t piece = 0; piece < 8; piece++) {
    assert_int_equal(decode(b, strlen(b), piece, out, &n, 1000), INFERD_OK);
    assert_int_equal(n, 15);
    assert_memory_equal(out, "hello, chunked!", 15);
  }
  b = "3\nabc\n0\n\n"; /* bare LF line ends */
  assert_int_equal(decode(b, strlen(b), 1, out, &n, 1000), INFERD_OK);
  assert_memory_equal(out, "abc", 3);
  b = "5\r\nhello\r\n0\r\n\r\n";
  assert_int_equal(decode(b, strlen(b), 0, out, &n, 4), INFERD_TOO_LARGE);
  assert_int_equal(decode(b, strlen(b), 0, out, &n, 5), INFERD_OK);
  const char *bad[] = {
      "5\r\nhelloX\r\n0\r\n\r\n",          /* data longer than the size */
      "5\r\nhello\rX0\r\n\r\n",
      "0\r\nNoColonTrailer\r\n\r\n",        /* a trailer line without a colon */
      "0\r\n Folded: x\r\n\r\n",
      "0\r\nX-A: a\rb\r\n\r\n",
      "zz\r\nabc\r\n0\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    for (size_t piece = 0; piece < 3; piece++)
      if (decode(bad[i], strlen(bad[i]), piece, out, &n, 1000) != INFERD_INVALID_ARGUMENT)
        fail_msg("took chunked body %zu in pieces of %zu", i, piece);
}

static void test_chunked_line_limits(void **state) {
  (void)state;
  static char body[HTTP_PARSE_MAX_TRAILER_BYTES + 64];
  char out[16];
  size_t n;
  memset(body, ';', HTTP_PARSE_MAX_CHUNK_LINE + 8); /* a size line that never ends */
  body[0] = '5';
  assert_int_equal(decode(body, HTTP_PARSE_MAX_CHUNK_LINE + 8, 0, out, &n, 1000), INFERD_INVALID_ARGUMENT);
  memcpy(body, "0\r\n", 3);
  memset(body + 3, 'a', sizeof body - 3); /* a trailer that never ends */
  assert_int_equal(decode(body, sizeof body, 0, out, &n, 1000), INFERD_INVALID_ARGUMENT);
}

static void test_absolute_form_and_body_headers(void **state) {
  (void)state;
  http_head h;
  http_framing f;
  /* absolute-form is served as its path (RFC 9112 3.2.2) */
  assert_int_equal(parse("GET http://inferd:8000/v2/health/live?x=1 HTTP/1.1\r\nHost: inferd\r\n\r\n", &h, &f), INFERD_OK);
  assert_int_equal(h.target.n, strlen("/v2/health/live?x=1"));
  assert_memory_equal(h.target.p, "/v2/health/live?x=1", h.target.n);
  assert_int_equal(code_of("GET HTTPS://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), INFERD_OK);
  assert_int_equal(code_of("GET http://a HTTP/1.1\r\nHost: a\r\n\r\n"), INFERD_INVALID_ARGUMENT);
  assert_int_equal(code_of("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), INFERD_INVALID_ARGUMENT);
  /* the headers that decide how a body is read come once */
  assert_int_equal(code_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\ncontent-type: a\r\n\r\n"),
                   INFERD_INVALID_ARGUMENT);
  assert_int_equal(code_of("POST / HTTP/1.1\r\nHost: a\r\nInference-Header-Content-Length: 1\r\n"
                           "Inference-Header-Content-Length: 2\r\n\r\n"),
                   INFERD_INVALID_ARGUMENT);
}

/* RFC 9110 5.5: a field value byte is a tab, a space, a visible character or obs-text (0x80 and
 * up); every other byte (the controls and DEL) refuses the line. */
static bool value_byte_allowed(unsigned b) { return b == '\t' || (b >= 0x20 && b != 0x7f); }

/* The value check goes eight bytes at a time: every byte value at every position of values of 1
 * to 40 bytes (so every position mod 8, in whole words and in the tail), the line at each of 8
 * memory alignments, between fillers that keep words on the fast path ('a', obs-text) or send them
 * to the byte-by-byte one (a tab), is refused exactly when the byte is not allowed. */
static void test_field_value_bytes(void **state) {
  (void)state;
  static const unsigned char fillers[] = {'a', 0x80, 0xff, '\t', ' ', '~'};
  char buf[8 + 64];
  for (size_t fi = 0; fi < sizeof fillers; fi++)
    for (size_t len = 1; len <= 40; len++)
      for (size_t pos = 0; pos < len; pos++)
        for (unsigned b = 0; b < 256; b++) {
          size_t off = (len + pos + b) % 8; /* every alignment, without a fifth loop */
          char *line = buf + off;
          memcpy(line, "X-K: ", 5);
          char *v = line + 5;
          memset(v, fillers[fi], len);
          v[0] = v[len - 1] = 'z'; /* no whitespace to trim at the ends, but b's own */
          v[pos] = (char)b;
          http_span name, value;
          inferd_status st = http_parse_field_line(line, 5 + len, &name, &value);
          if (status_is_ok(&st) != value_byte_allowed(b))
            fail_msg("byte 0x%02x at %zu of a %zu-byte value (filler 0x%02x): %s", b, pos, len, fillers[fi],
                     status_is_ok(&st) ? "accepted" : "refused");
          if (status_is_ok(&st)) {
            size_t a = 0, e = len; /* the value without its surrounding whitespace */
            while (a < e && (v[a] == ' ' || v[a] == '\t')) a++;
            while (e > a && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
            assert_ptr_equal(value.p, v + a);
            assert_int_equal(value.n, e - a);
            assert_int_equal(name.n, 3);
          } else {
            assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
          }
        }
  /* and through a whole head, at the line's end and in the middle of a long value */
  assert_int_equal(code_of("GET / HTTP/1.1\r\nHost: x\r\nX-A: abcdefghijklmno\x1fpq\r\n\r\n"), INFERD_INVALID_ARGUMENT);
  assert_int_equal(code_of("GET / HTTP/1.1\r\nHost: x\r\nX-A: abcdefg\x7f\r\n\r\n"), INFERD_INVALID_ARGUMENT);
  assert_int_equal(code_of("GET / HTTP/1.1\r\nHost: x\r\nX-A: abcdefg\thijklmn\x80\xff\r\n\r\n"), INFERD_OK);
}

/* A header name and a method are tokens (RFC 9110 5.6.2): every byte value in every position
 * of a name is accepted exactly when it is a tchar. */
static void test_token_bytes(void **state) {
  (void)state;
  static const char punct[] = "!#$%&'*+-.^_`|~";
  for (unsigned b = 0; b < 256; b++) {
    bool tchar = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                 (b != 0 && strchr(punct, (int)b) != NULL);
    if (b == ':') continue; /* it ends the name */
    for (size_t len = 1; len <= 12; len++)
      for (size_t pos = 0; pos < len; pos++) {
        char line[32];
        memset(line, 'n', len);
        line[pos] = (char)b;
        memcpy(line + len, ": v", 3);
        http_span name, value;
        inferd_status st = http_parse_field_line(line, len + 3, &name, &value);
        /* a name that starts with a space or tab is obs-fold, refused as well */
        if (status_is_ok(&st) != tchar)
          fail_msg("byte 0x%02x at %zu of a %zu-byte name: %s", b, pos, len, status_is_ok(&st) ? "accepted" : "refused");
      }
    if (b == ' ' || b == '\r' || b == '\n' || b == 0) continue; /* they end or break the request line */
    char req[64];
    snprintf(req, sizeof req, "G%cT / HTTP/1.1\r\nHost: x\r\n\r\n", (char)b);
    if ((code_of(req) == INFERD_OK) != tchar) fail_msg("byte 0x%02x in a method", b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_head_end),          cmocka_unit_test(test_good_request),
      cmocka_unit_test(test_bare_lf_request),   cmocka_unit_test(test_connection_and_version),
      cmocka_unit_test(test_bad_heads),         cmocka_unit_test(test_nul_in_head),
      cmocka_unit_test(test_too_many_headers),  cmocka_unit_test(test_length_limits),
      cmocka_unit_test(test_chunk_size_lines),  cmocka_unit_test(test_chunked_bodies),
      cmocka_unit_test(test_chunked_line_limits), cmocka_unit_test(test_absolute_form_and_body_headers),
      cmocka_unit_test(test_field_value_bytes), cmocka_unit_test(test_token_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
