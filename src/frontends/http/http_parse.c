/* The HTTP/1.1 request parser (http_parse.h): request head, body framing and chunked bodies
 * over byte buffers. Messages never quote header values: they may be any bytes. */
#include "frontends/http/http_parse.h"

#include <string.h>
#include <strings.h>

static inferd_status bad(const char *msg) { return status_make(INFERD_INVALID_ARGUMENT, "%s", msg); }

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~", digits and letters. Every byte of every header name
 * is checked, so by a table of the 256 byte values (a strchr per byte cost ~20 instructions,
 * ~1,800 a request of nine ordinary headers; the table, ~5 a byte), made at compile time from the
 * set as two 64-bit masks of the ASCII codes. */
#define TBIT(ch) (UINT64_C(1) << ((unsigned)(ch) & 63))
#define TBITS(from, to) ((UINT64_C(2) << ((unsigned)(to) & 63)) - TBIT(from)) /* from..to, one word */
#define TCHAR_LO                                                                                                 \
  (TBIT('!') | TBIT('#') | TBIT('$') | TBIT('%') | TBIT('&') | TBIT('\'') | TBIT('*') | TBIT('+') | TBIT('-') | \
   TBIT('.') | TBITS('0', '9'))
#define TCHAR_HI (TBITS('A', 'Z') | TBIT('^') | TBIT('_') | TBIT('`') | TBITS('a', 'z') | TBIT('|') | TBIT('~'))
#define TC(c) ((c) < 128 && ((((c) < 64 ? TCHAR_LO : TCHAR_HI) >> ((c) & 63)) & 1))
#define TC4(c) TC(c), TC((c) + 1), TC((c) + 2), TC((c) + 3)
#define TC16(c) TC4(c), TC4((c) + 4), TC4((c) + 8), TC4((c) + 12)
#define TC64(c) TC16(c), TC16((c) + 16), TC16((c) + 32), TC16((c) + 48)
static const bool tchar_table[256] = {TC64(0), TC64(64), TC64(128), TC64(192)};

static bool token_char(unsigned char ch) { return tchar_table[ch]; }

static bool ows(char ch) { return ch == ' ' || ch == '\t'; }

/* A field value byte: visible, space, tab or obs-text; never a control character. */
static bool value_char(unsigned char ch) { return ch == '\t' || (ch >= 0x20 && ch != 0x7f); }

/* Every byte of p[0..n) a value_char. Eight bytes at a time (a credential header is ~100 bytes,
 * checked on every request): a word with no byte below 0x20 and none equal to 0x7f passes whole;
 * one that has either (a tab, or a byte to refuse) is checked byte by byte. The tests are exact
 * as yes/no answers (Bit Twiddling Hacks' hasless and haszero, for n <= 128), whatever the
 * byte order. */
static bool value_bytes_ok(const char *p, size_t n) {
  const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t below_space = (w - ones * 0x20) & ~w & highs;
    uint64_t d = w ^ (ones * 0x7f);
    uint64_t del = (d - ones) & ~d & highs;
    if (below_space | del)
      for (int i = 0; i < 8; i++)
        if (!value_char((unsigned char)p[i])) return false;
  }
  for (size_t i = 0; i < n; i++)
    if (!value_char((unsigned char)p[i])) return false;
  return true;
}

static bool span_is(const http_span *s, const char *lit) {
  size_t n = strlen(lit);
  return s->n == n && strncasecmp(s->p, lit, n) == 0;
}

size_t http_skip_empty_lines(const char *buf, size_t len) {
  size_t i = 0;
  for (;;) {
    if (i < len && buf[i] == '\n')
      i += 1;
    else if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
      i += 2;
    else
      return i;
  }
}

size_t http_head_end(const char *buf, size_t len, size_t *scan) {
  size_t i = *scan;
  while (i < len) {
    const char *lf = memchr(buf + i, '\n', len - i);
    if (lf == NULL) break;
    size_t at = (size_t)(lf - buf);
    /* the line that this LF ends is empty: it starts right here, or one CR before */
    if (at == 0 || buf[at - 1] == '\n' || (buf[at - 1] == '\r' && (at == 1 || buf[at - 2] == '\n'))) return at + 1;
    i = at + 1;
  }
  *scan = len;
  return 0;
}

/* The next line of buf[*pos..len): its content without the line end. False at the end. A CR
 * is allowed only right before the LF. */
static bool next_line(const char *buf, size_t len, size_t *pos, http_span *line, inferd_status *st) {
  if (*pos >= len) return false;
  const char *start = buf + *pos;
  const char *lf = memchr(start, '\n', len - *pos);
  size_t n = lf ? (size_t)(lf - start) : len - *pos;
  *pos += n + (lf != NULL);
  /* cppcheck-suppress knownConditionTrueFalse ; n is 0 for an empty line (buf[*pos] is the LF) */
  if (n && start[n - 1] == '\r') n--;
  if (memchr(start, '\r', n)) {
    *st = bad("the request has a CR that does not end a line");
    return false;
  }
  if (memchr(start, '\0', n)) {
    *st = bad("the request head contains a NUL byte");
    return false;
  }
  line->p = start;
  line->n = n;
  return true;
}

inferd_status http_parse_field_line(const char *line, size_t len, http_span *name, http_span *value) {
  if (len && ows(line[0])) return bad("obsolete header line folding is not accepted");
  const char *colon = memchr(line, ':', len);
  if (colon == NULL) return bad("a header line has no colon");
  if (colon == line) return bad("a header line has no name");
  for (const char *p = line; p < colon; p++)
    if (!token_char((unsigned char)*p)) return bad("malformed header name (no spaces are allowed before the colon)");
  const char *v = colon + 1, *end = line + len;
  while (v < end && ows(*v)) v++;
  while (end > v && ows(end[-1])) end--;
  if (!value_bytes_ok(v, (size_t)(end - v))) return bad("a header value contains a control character");
  name->p = line;
  name->n = (size_t)(colon - line);
  value->p = v;
  value->n = (size_t)(end - v);
  return status_ok();
}

static inferd_status parse_request_line(const http_span *l, http_head *out) {
  const char *p = l->p, *end = l->p + l->n;
  const char *sp1 = memchr(p, ' ', l->n);
  if (sp1 == NULL) return bad("malformed request line");
  const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
  if (sp2 == NULL || memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1))) return bad("malformed request line");
  size_t mlen = (size_t)(sp1 - p);
  if (mlen == 0 || mlen >= sizeof out->method) return bad("malformed method");
  for (size_t i = 0; i < mlen; i++)
    if (!token_char((unsigned char)p[i])) return bad("malformed method");
  memcpy(out->method, p, mlen);
  out->method[mlen] = '\0';
  out->target.p = sp1 + 1;
  out->target.n = (size_t)(sp2 - sp1 - 1);
  /* absolute-form (RFC 9112 3.2.2: a server MUST accept it): serve its path, as a proxy
   * would have sent it */
  static const char *const schemes[] = {"http://", "https://"};
  for (size_t k = 0; k < 2; k++) {
    size_t sl = strlen(schemes[k]);
    if (out->target.n > sl && strncasecmp(out->target.p, schemes[k], sl) == 0) {
      const char *path = memchr(out->target.p + sl, '/', out->target.n - sl);
      if (path == NULL) return bad("an absolute-form request target must have a path");
      out->target.n -= (size_t)(path - out->target.p);
      out->target.p = path;
      break;
    }
  }
  if (out->target.n == 0 || out->target.p[0] != '/') return bad("the request target must be a path starting with /");
  for (size_t i = 0; i < out->target.n; i++) {
    unsigned char ch = (unsigned char)out->target.p[i];
    if (ch <= 0x20 || ch == 0x7f) return bad("malformed request target");
  }
  http_span version = {sp2 + 1, (size_t)(end - sp2 - 1)};
  if (version.n == 8 && memcmp(version.p, "HTTP/1.1", 8) == 0)
    out->minor = 1;
  else if (version.n == 8 && memcmp(version.p, "HTTP/1.0", 8) == 0)
    out->minor = 0;
  else
    return bad("unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)");
  return status_ok();
}

inferd_status http_parse_head(const char *buf, size_t len, http_head *out) {
  memset(out, 0, sizeof *out);
  if (len > HTTP_PARSE_MAX_HEAD_BYTES) return bad("the request head is larger than 64 KiB");
  inferd_status st = status_ok();
  size_t pos = 0;
  http_span line;
  if (!next_line(buf, len, &pos, &line, &st)) return status_is_ok(&st) ? bad("empty request") : st;
  if (line.n == 0) return bad("empty request");
  TRY(parse_request_line(&line, out));
  while (next_line(buf, len, &pos, &line, &st)) {
    if (line.n == 0) return pos == len ? status_ok() : bad("bytes after the end of the request head");
    if (out->n_headers == HTTP_PARSE_MAX_HEADERS) return bad("more than 64 header lines");
    TRY(http_parse_field_line(line.p, line.n, &out->headers[out->n_headers].name, &out->headers[out->n_headers].value));
    out->n_headers++;
  }
  if (!status_is_ok(&st)) return st;
  return bad("the request head does not end with an empty line");
}

const http_span *http_head_header(const http_head *h, const char *name) {
  for (int i = 0; i < h->n_headers; i++)
    if (span_is(&h->headers[i].name, name)) return &h->headers[i].value;
  return NULL;
}

/* Calls fn on each element of a comma-separated list value, without its whitespace; empty
 * elements are skipped as RFC 9110 5.6.1 asks. */
static void each_element(const http_span *v, void (*fn)(const http_span *el, void *arg), void *arg) {
  const char *p = v->p, *end = v->p + v->n;
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma ? comma : end;
    const char *a = p, *b = e;
    while (a < b && ows(*a)) a++;
    while (b > a && ows(b[-1])) b--;
    if (b > a) {
      http_span el = {a, (size_t)(b - a)};
      fn(&el, arg);
    }
    if (comma == NULL) break;
    p = comma + 1;
  }
}

typedef struct {
  int codings, chunked;
} te_count;

static void count_coding(const http_span *el, void *arg) {
  te_count *t = arg;
  t->codings++;
  if (span_is(el, "chunked")) t->chunked++;
}

typedef struct {
  bool close, keep_alive;
} conn_tokens;

static void connection_token(const http_span *el, void *arg) {
  conn_tokens *c = arg;
  if (span_is(el, "close")) c->close = true;
  if (span_is(el, "keep-alive")) c->keep_alive = true;
}

/* uri-host [":" port]: reg-name, IPv4 or an IP literal in brackets. */
static bool host_value_ok(const http_span *v) {
  for (size_t i = 0; i < v->n; i++) {
    unsigned char ch = (unsigned char)v->p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          strchr("-._~!$&'()*+,;=:[]%", ch)))
      return false;
  }
  return true;
}

inferd_status http_parse_framing(const http_head *h, uint64_t max_body, http_framing *out) {
  memset(out, 0, sizeof *out);
  int hosts = 0, lengths = 0, tes = 0;
  const http_span *cl = NULL;
  te_count te = {0, 0};
  conn_tokens ct = {false, false};
  for (int i = 0; i < h->n_headers; i++) {
    const http_span *name = &h->headers[i].name, *value = &h->headers[i].value;
    if (span_is(name, "Host")) {
      hosts++;
      if (!host_value_ok(value)) return bad("the Host header is not a host name or address");
    } else if (span_is(name, "Content-Length")) {
      lengths++;
      cl = value;
    } else if (span_is(name, "Transfer-Encoding")) {
      tes++;
      each_element(value, count_coding, &te);
    } else if (span_is(name, "Connection")) {
      each_element(value, connection_token, &ct);
    } else if (span_is(name, "Content-Type") || span_is(name, "Inference-Header-Content-Length")) {
      /* one value decides how the body is read: two would let two readers disagree */
      const char *which = span_is(name, "Content-Type") ? "Content-Type" : "Inference-Header-Content-Length";
      for (int j = 0; j < i; j++)
        if (span_is(&h->headers[j].name, which))
          return span_is(name, "Content-Type") ? bad("more than one Content-Type header")
                                               : bad("more than one Inference-Header-Content-Length header");
    } else if (span_is(name, "Expect")) {
      if (span_is(value, "100-continue")) out->expect_continue = true;
    }
  }
  if (hosts > 1) return bad("more than one Host header");
  if (hosts == 0 && h->minor == 1) return bad("an HTTP/1.1 request must have a Host header");
  out->keep_alive = h->minor == 1 ? !ct.close : ct.keep_alive && !ct.close;
  if (tes) {
    if (h->minor == 0) return bad("Transfer-Encoding is not allowed in an HTTP/1.0 request");
    if (lengths) return bad("a request may not have both Content-Length and Transfer-Encoding");
    if (te.codings == 1 && te.chunked == 1) {
      out->kind = HTTP_BODY_CHUNKED;
      return status_ok();
    }
    if (te.codings == 1 || te.chunked == 0)
      return bad("Transfer-Encoding other than chunked is not supported");
    return bad("Transfer-Encoding must be chunked alone (no list of codings, no repeated header)");
  }
  if (lengths == 0) {
    out->kind = HTTP_BODY_NONE;
    return status_ok();
  }
  if (lengths > 1) return bad("more than one Content-Length header");
  if (cl->n == 0) return bad("Content-Length is empty");
  uint64_t n = 0;
  bool overflow = false;
  for (size_t i = 0; i < cl->n; i++) {
    unsigned char ch = (unsigned char)cl->p[i];
    if (ch < '0' || ch > '9') return bad("Content-Length is not a number (digits only)");
    if (n > (UINT64_MAX - (ch - '0')) / 10) overflow = true;
    n = overflow ? UINT64_MAX : n * 10 + (ch - '0');
  }
  if (overflow || n > max_body)
    return status_make(INFERD_TOO_LARGE, "the body is %s%llu bytes, more than the limit of %llu (--max-body-bytes)",
                       overflow ? "over " : "", (unsigned long long)n, (unsigned long long)max_body);
  out->kind = HTTP_BODY_LENGTH;
  out->length = n;
  return status_ok();
}

void http_chunked_init(http_chunked *d, uint64_t max_body) {
  memset(d, 0, sizeof *d);
  d->state = HTTP_CHUNK_SIZE;
  d->max = max_body;
}

static int hexval(unsigned char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

inferd_status http_parse_chunk_size(const char *line, size_t len, uint64_t *size) {
  size_t i = 0;
  uint64_t n = 0;
  for (; i < len && hexval((unsigned char)line[i]) >= 0; i++) {
    if (n > (UINT64_MAX >> 4)) return status_make(INFERD_TOO_LARGE, "a chunk size does not fit in 64 bits");
    n = n << 4 | (uint64_t)hexval((unsigned char)line[i]);
  }
  if (i == 0) return bad("malformed chunk size (hex digits expected)");
  /* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
  while (i < len) {
    while (i < len && ows(line[i])) i++;
    if (i == len || line[i] != ';') return bad("malformed chunk size (hex digits expected)");
    i++;
    while (i < len && ows(line[i])) i++;
    size_t start = i;
    while (i < len && token_char((unsigned char)line[i])) i++;
    if (i == start) return bad("malformed chunk extension");
    size_t save = i;
    while (i < len && ows(line[i])) i++;
    if (i == len || line[i] != '=') {
      i = save;
      continue;
    }
    i++;
    while (i < len && ows(line[i])) i++;
    if (i < len && line[i] == '"') {
      for (i++;; i++) {
        if (i >= len) return bad("malformed chunk extension");
        unsigned char ch = (unsigned char)line[i];
        if (ch == '"') break;
        if (ch == '\\') {
          if (++i >= len || !value_char((unsigned char)line[i])) return bad("malformed chunk extension");
        } else if (!value_char(ch)) {
          return bad("malformed chunk extension");
        }
      }
      i++;
    } else {
      start = i;
      while (i < len && token_char((unsigned char)line[i])) i++;
      if (i == start) return bad("malformed chunk extension");
    }
  }
  *size = n;
  return status_ok();
}

/* A complete line at the start of buf (content without the line end, and the bytes with it);
 * false when it has not all arrived. */
static bool take_line(const char *buf, size_t len, size_t limit, http_span *line, size_t *used) {
  const char *lf = memchr(buf, '\n', len < limit ? len : limit);
  if (lf == NULL) return false;
  size_t n = (size_t)(lf - buf);
  *used = n + 1;
  if (n && buf[n - 1] == '\r') n--;
  line->p = buf;
  line->n = n;
  return true;
}

static inferd_status line_chars_ok(const http_span *l) {
  if (memchr(l->p, '\r', l->n)) return bad("the request has a CR that does not end a line");
  if (memchr(l->p, '\0', l->n)) return bad("a chunked body line contains a NUL byte");
  return status_ok();
}

inferd_status http_chunked_step(http_chunked *d, const char *buf, size_t len, size_t *used, size_t *data) {
  *used = 0;
  *data = 0;
  http_span line;
  size_t n;
  switch (d->state) {
    case HTTP_CHUNK_SIZE: {
      if (!take_line(buf, len, HTTP_PARSE_MAX_CHUNK_LINE + 2, &line, &n)) {
        if (len > HTTP_PARSE_MAX_CHUNK_LINE + 1) return bad("a chunk-size line is longer than 4096 bytes");
        return status_ok();
      }
      TRY(line_chars_ok(&line));
      uint64_t size;
      TRY(http_parse_chunk_size(line.p, line.n, &size));
      if (size > d->max - d->total)
        return status_make(INFERD_TOO_LARGE, "the chunked body is more than the limit of %llu bytes (--max-body-bytes)",
                           (unsigned long long)d->max);
      *used = n;
      d->left = size;
      d->state = size == 0 ? HTTP_CHUNK_TRAILER : HTTP_CHUNK_DATA;
      return status_ok();
    }
    case HTTP_CHUNK_DATA: {
      size_t take = len < d->left ? len : (size_t)d->left;
      *used = *data = take;
      d->left -= take;
      d->total += take;
      if (d->left == 0) d->state = HTTP_CHUNK_DATA_END;
      return status_ok();
    }
    case HTTP_CHUNK_DATA_END:
      if (len == 0) return status_ok();
      if (buf[0] == '\n') {
        *used = 1;
      } else if (buf[0] == '\r') {
        if (len < 2) return status_ok();
        if (buf[1] != '\n') return bad("a chunk's data is longer than its size");
        *used = 2;
      } else {
        return bad("a chunk's data is longer than its size");
      }
      d->state = HTTP_CHUNK_SIZE;
      return status_ok();
    case HTTP_CHUNK_TRAILER: {
      size_t room = HTTP_PARSE_MAX_TRAILER_BYTES - d->trailer_bytes;
      if (!take_line(buf, len, room, &line, &n)) {
        if (len >= room) return bad("the chunked trailer is larger than 64 KiB");
        return status_ok();
      }
      TRY(line_chars_ok(&line));
      *used = n;
      d->trailer_bytes += n;
      if (line.n == 0) {
        d->state = HTTP_CHUNK_DONE;
        return status_ok();
      }
      http_span name, value;
      return http_parse_field_line(line.p, line.n, &name, &value);
    }
    case HTTP_CHUNK_DONE:
      return status_ok();
  }
  return status_ok();
}
