/* Content codings for the HTTP frontend (http_compress.h): zlib inflate under a cap, gzip
 * deflate for replies, and the coding headers. */
#include "frontends/http/http_compress.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Decoded bytes are produced into the output buffer this much at a time. */
#define STEP_BYTES (64 * 1024)

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

inferd_status http_content_coding_parse(const char *value, http_coding *out) {
  const char *b = value, *e = value + strlen(value);
  while (b < e && is_ows(*b)) b++;
  while (e > b && is_ows(e[-1])) e--;
  size_t n = (size_t)(e - b);
  static const struct {
    const char *name;
    http_coding coding;
  } known[] = {{"gzip", HTTP_CODING_GZIP}, {"x-gzip", HTTP_CODING_GZIP}, {"deflate", HTTP_CODING_DEFLATE},
               {"identity", HTTP_CODING_IDENTITY}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strlen(known[i].name) == n && strncasecmp(b, known[i].name, n) == 0) {
      *out = known[i].coding;
      return status_ok();
    }
  return status_make(INFERD_UNSUPPORTED_MEDIA,
                     "Content-Encoding '%.64s' is not supported: send the body as it is, or with one of gzip or deflate",
                     value);
}

/* zlib's own words name its internals; say what is wrong with the body instead. */
static inferd_status corrupt(http_coding coding, const z_stream *z, const char *why) {
  const char *name = coding == HTTP_CODING_GZIP ? "gzip" : "deflate";
  if (why == NULL) {
    const char *m = z->msg ? z->msg : "";
    if (strstr(m, "header") || strstr(m, "method") || strstr(m, "window size"))
      why = coding == HTTP_CODING_GZIP ? "it does not begin with a valid gzip header"
                                       : "it does not begin with a valid zlib header";
    else if (strstr(m, "check"))
      why = "the checksum or length at its end does not match the data";
    else
      why = "the compressed data is invalid";
  }
  return status_make(INFERD_INVALID_ARGUMENT, "the %s body is corrupt: %s", name, why);
}

/* deflate in HTTP is the zlib format, but raw deflate is common enough: a zlib stream starts
 * with CM=8, a window of at most 32 KiB and a header check (RFC 1950 2.2). */
/* Gives zlib the next stretch of a piece once it has used up the last (avail_in is a uInt). */
static void feed(z_stream *z, const unsigned char **p, size_t *left) {
  if (z->avail_in > 0 || *left == 0) return;
  uInt take = *left > UINT_MAX ? UINT_MAX : (uInt)*left;
  z->next_in = (Bytef *)*p;
  z->avail_in = take;
  *p += take;
  *left -= take;
}

static bool looks_zlib(struct evbuffer *in) {
  unsigned char h[2];
  if (evbuffer_copyout(in, h, 2) != 2) return false;
  return (h[0] & 0x0f) == 8 && (h[0] >> 4) <= 7 && ((unsigned)h[0] << 8 | h[1]) % 31 == 0;
}

inferd_status http_body_decode(http_coding coding, struct evbuffer *in, struct evbuffer *out, size_t max_out,
                               const char *limit_name) {
  size_t in_len = evbuffer_get_length(in);
  if (in_len == 0) return status_ok();
  if (coding == HTTP_CODING_IDENTITY) {
    if (in_len > max_out)
      return status_make(INFERD_TOO_LARGE, "the request body is larger than %s (%zu bytes)", limit_name, max_out);
    return evbuffer_add_buffer_reference(out, in) == 0 ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
  }
  int n_pieces = evbuffer_peek(in, -1, NULL, NULL, 0);
  struct evbuffer_iovec *pieces = n_pieces > 0 ? malloc((size_t)n_pieces * sizeof *pieces) : NULL;
  z_stream z;
  memset(&z, 0, sizeof z);
  int wbits = coding == HTTP_CODING_GZIP ? 16 + MAX_WBITS : looks_zlib(in) ? MAX_WBITS : -MAX_WBITS;
  if (pieces == NULL || inflateInit2(&z, wbits) != Z_OK) {
    free(pieces);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  evbuffer_peek(in, -1, NULL, pieces, n_pieces);
  inferd_status st = status_ok();
  size_t total = 0;
  bool ended = false;
  for (int i = 0; i < n_pieces && status_is_ok(&st); i++) {
    const unsigned char *p = pieces[i].iov_base;
    size_t left = pieces[i].iov_len;
    z.avail_in = 0;
    /* go on while there is input, or while the last step filled its output (zlib may hold
     * more decoded bytes than fitted) */
    while (status_is_ok(&st) && (left > 0 || z.avail_in > 0 || (!ended && z.avail_out == 0))) {
      feed(&z, &p, &left);
      if (ended) {
        if (z.avail_in == 0) break;
        if (coding != HTTP_CODING_GZIP) {
          st = corrupt(coding, &z, "data follows the end of the compressed stream");
          break;
        }
        inflateReset(&z); /* another gzip member */
        ended = false;
      }
      /* never inflate past one byte over the cap: a bomb costs max_out + 1 bytes, no more */
      size_t room = max_out - total + 1, want = room < STEP_BYTES ? room : STEP_BYTES;
      struct evbuffer_iovec v;
      if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) < 1) {
        st = status_make(INFERD_INTERNAL, "out of memory");
        break;
      }
      if (v.iov_len > want) v.iov_len = want;
      z.next_out = v.iov_base;
      z.avail_out = (uInt)v.iov_len;
      int r = inflate(&z, Z_NO_FLUSH);
      v.iov_len -= z.avail_out;
      evbuffer_commit_space(out, &v, 1);
      total += v.iov_len;
      if (total > max_out)
        st = status_make(INFERD_TOO_LARGE, "the request body is larger than %s (%zu bytes) once decompressed",
                         limit_name, max_out);
      else if (r == Z_STREAM_END)
        ended = true;
      else if (r == Z_NEED_DICT)
        st = corrupt(coding, &z, "it needs a preset dictionary");
      else if (r == Z_DATA_ERROR)
        st = corrupt(coding, &z, NULL);
      else if (r == Z_MEM_ERROR)
        st = status_make(INFERD_INTERNAL, "out of memory");
      else if (r == Z_BUF_ERROR && z.avail_in == 0 && left == 0)
        break; /* needs more input than this piece: the next one, or it is truncated */
      else if (r != Z_OK && r != Z_BUF_ERROR)
        st = corrupt(coding, &z, NULL);
      /* every byte of the piece handed to zlib is consumed or the output was full */
      if (status_is_ok(&st) && z.avail_in == 0 && left == 0 && z.avail_out > 0) break;
    }
  }
  if (status_is_ok(&st) && !ended) st = corrupt(coding, &z, "it ends before the compressed data does (truncated)");
  inflateEnd(&z);
  free(pieces);
  return st;
}

inferd_status http_gzip_encode(struct evbuffer *in, struct evbuffer *out, int level) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return status_make(INFERD_INTERNAL, "out of memory");
  int n_pieces = evbuffer_peek(in, -1, NULL, NULL, 0);
  struct evbuffer_iovec *pieces = malloc((size_t)(n_pieces > 0 ? n_pieces : 1) * sizeof *pieces);
  if (pieces == NULL) {
    deflateEnd(&z);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  if (n_pieces > 0) evbuffer_peek(in, -1, NULL, pieces, n_pieces);
  inferd_status st = status_ok();
  for (int i = 0; i <= n_pieces && status_is_ok(&st); i++) {
    bool last = i == n_pieces; /* the extra round finishes the stream */
    const unsigned char *p = last ? NULL : pieces[i].iov_base;
    size_t left = last ? 0 : pieces[i].iov_len;
    int r;
    do {
      feed(&z, &p, &left);
      struct evbuffer_iovec v;
      if (evbuffer_reserve_space(out, STEP_BYTES, &v, 1) < 1) {
        st = status_make(INFERD_INTERNAL, "out of memory");
        break;
      }
      z.next_out = v.iov_base;
      z.avail_out = v.iov_len > UINT_MAX ? UINT_MAX : (uInt)v.iov_len;
      size_t room = z.avail_out;
      r = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
      v.iov_len = room - z.avail_out;
      evbuffer_commit_space(out, &v, 1);
      if (r == Z_STREAM_ERROR) st = status_make(INFERD_INTERNAL, "compressing the reply failed");
    } while (status_is_ok(&st) && (last ? r != Z_STREAM_END : (z.avail_in > 0 || left > 0 || z.avail_out == 0)));
  }
  deflateEnd(&z);
  free(pieces);
  return st;
}

void http_accept_encoding_init(http_accept_encoding *a) { a->gzip_q = a->any_q = -1; }

/* A weight (RFC 9110 12.4.2): 0, 0.x to 0.xxx, 1, 1.0 to 1.000; thousandths, -1 when malformed. */
static int parse_qvalue(const char *s, size_t n) {
  if (n == 0 || (s[0] != '0' && s[0] != '1')) return -1;
  int q = (s[0] - '0') * 1000;
  if (n == 1) return q;
  if (s[1] != '.' || n > 5) return -1;
  int scale = 100;
  for (size_t i = 2; i < n; i++, scale /= 10) {
    if (s[i] < '0' || s[i] > '9') return -1;
    q += (s[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

static bool ends_token(char ch) { return ch == '\0' || ch == ',' || ch == ';' || ch == '=' || is_ows(ch); }

void http_accept_encoding_scan(http_accept_encoding *a, const char *value) {
  const char *p = value;
  while (*p) {
    while (*p == ',' || is_ows(*p)) p++;
    if (*p == '\0') break;
    const char *name = p;
    while (!ends_token(*p)) p++;
    size_t name_len = (size_t)(p - name);
    int q = 1000;
    bool ok = name_len > 0;
    while (is_ows(*p)) p++;
    while (ok && *p == ';') {
      p++;
      while (is_ows(*p)) p++;
      const char *pn = p;
      while (!ends_token(*p)) p++;
      size_t pn_len = (size_t)(p - pn);
      const char *pv = p;
      size_t pv_len = 0;
      if (*p == '=') {
        pv = ++p;
        if (*p == '"') { /* a quoted value: only for parameters other than q */
          p++;
          while (*p && *p != '"') p += (p[0] == '\\' && p[1]) ? 2 : 1;
          if (*p == '"') p++;
        } else {
          while (!ends_token(*p)) p++;
        }
        pv_len = (size_t)(p - pv);
      }
      if (pn_len == 1 && (*pn == 'q' || *pn == 'Q')) {
        q = parse_qvalue(pv, pv_len);
        if (q < 0) ok = false;
      }
      while (is_ows(*p)) p++;
    }
    if (*p != ',' && *p != '\0') ok = false; /* something after the element: skip it */
    while (*p && *p != ',') p++;
    if (!ok) continue;
    int *slot = NULL;
    if ((name_len == 4 && strncasecmp(name, "gzip", 4) == 0) || (name_len == 6 && strncasecmp(name, "x-gzip", 6) == 0))
      slot = &a->gzip_q;
    else if (name_len == 1 && name[0] == '*')
      slot = &a->any_q;
    if (slot && *slot < 0) *slot = q;
  }
}

bool http_accept_encoding_gzip(const http_accept_encoding *a) {
  return a->gzip_q >= 0 ? a->gzip_q > 0 : a->any_q > 0;
}
