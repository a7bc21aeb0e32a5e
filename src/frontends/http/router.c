#include "frontends/http/router.h"

#include <stdio.h>
#include <string.h>

#include "util/strbuf.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes %XX in seg[0..len) into dst; false when it does not fit, is malformed or holds NUL. */
static bool decode_segment(const char *seg, size_t len, char *dst, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = seg[i];
    if (c == '%') {
      if (i + 2 >= len) return false;
      int hi = hexval(seg[i + 1]), lo = hexval(seg[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = (char)(hi * 16 + lo);
      if (c == '\0') return false;
      i += 2;
    }
    if (o + 1 >= cap) return false;
    dst[o++] = c;
  }
  dst[o] = '\0';
  return o > 0;
}

/* Matches one pattern; returns 1 on a match, 0 on none, -1 on a malformed capture. */
static int match_pattern(const char *pattern, const char *path, route_params *params) {
  const char *p = pattern, *s = path;
  while (*p && *s) {
    if (*p != '/' || *s != '/') return 0;
    p++;
    s++;
    const char *pe = strchr(p, '/');
    const char *se = strchr(s, '/');
    size_t plen = pe ? (size_t)(pe - p) : strlen(p);
    size_t slen = se ? (size_t)(se - s) : strlen(s);
    /* a capture may be followed by a literal suffix within its segment, as in TF Serving's
     * "{model}:predict": the segment must end with it, and the rest is captured */
    size_t cap = 0;
    if (plen >= 7 && strncmp(p, "{model}", 7) == 0) cap = 7;
    else if (plen >= 9 && strncmp(p, "{version}", 9) == 0) cap = 9;
    else if (plen >= 4 && strncmp(p, "{id}", 4) == 0) cap = 4;
    if (cap) {
      size_t suffix = plen - cap;
      if (slen < suffix || strncmp(s + slen - suffix, p + cap, suffix) != 0) return 0;
      char *dst = cap == 7 ? params->model : cap == 9 ? params->version : params->id;
      size_t dcap = cap == 7 ? sizeof params->model : cap == 9 ? sizeof params->version : sizeof params->id;
      if (!decode_segment(s, slen - suffix, dst, dcap)) return slen > suffix ? -1 : 0;
    } else if (plen != slen || strncmp(p, s, plen) != 0) {
      return 0;
    }
    p += plen;
    s += slen;
  }
  /* a trailing slash on the request is tolerated */
  if (*p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0'))) return 1;
  return 0;
}

route_result router_match(const route *table, size_t n, const char *path, unsigned method,
                          const route **out, route_params *params, unsigned *allowed) {
  unsigned methods = 0;
  bool bad_param = false;
  const route *hit = NULL;
  for (size_t i = 0; i < n; i++) {
    route_params tmp = {{0}, {0}, {0}};
    int m = match_pattern(table[i].pattern, path, &tmp);
    if (m < 0) bad_param = true;
    if (m <= 0) continue;
    methods |= table[i].methods;
    if ((table[i].methods & method) && hit == NULL) {
      hit = &table[i];
      *params = tmp;
    }
  }
  if (hit) {
    *out = hit;
    return ROUTE_MATCHED;
  }
  if (methods) {
    *allowed = methods;
    return ROUTE_BAD_METHOD;
  }
  return bad_param ? ROUTE_BAD_PARAM : ROUTE_NO_PATH;
}

const char *router_methods_str(unsigned methods, char *buf, size_t len) {
  static const char *const names[] = {"GET", "POST", "HEAD", "PUT", "DELETE"};
  sbuf b;
  sbuf_init(&b, buf, len);
  for (int i = 0; i < 5; i++)
    if (methods & (1u << i)) sbuf_appendf(&b, "%s%s", b.len ? ", " : "", names[i]);
  return buf;
}
