/* store/rstore_policy: URL parsing, backoff and the link state machine (rstore_policy.h). */
#include "store/rstore_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Percent-decoding of the credential part: a password may hold ':' or '@' written as %3A / %40. */
static bool pct_decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n) return false;
      char hex[3] = {s[i + 1], s[i + 2], 0};
      char *end;
      long v = strtol(hex, &end, 16);
      if (*end != '\0' || hex[0] == '\0' || hex[1] == '\0') return false;
      c = (char)v;
      i += 2;
    }
    if (o + 1 >= cap) return false;
    out[o++] = c;
  }
  out[o] = '\0';
  return true;
}

inferd_status rstore_url_parse(const char *text, rstore_url *out) {
  memset(out, 0, sizeof *out);
  out->port = 6379;
  static const char scheme[] = "redis://";
  if (text == NULL || strncmp(text, scheme, sizeof scheme - 1) != 0)
    return status_make(INFERD_INVALID_ARGUMENT,
                       "--redis-url must look like redis://[:password@]host[:port][/db] (rediss:// and unix sockets "
                       "are not supported)");
  const char *p = text + sizeof scheme - 1;
  const char *at = strrchr(p, '@'); /* the last '@': an unencoded one in a password stays in it */
  const char *slash_after = strchr(at ? at : p, '/');
  if (at && slash_after && slash_after < at) at = NULL;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *user_end = colon ? colon : at;
    if (!pct_decode(p, (size_t)(user_end - p), out->user, sizeof out->user))
      return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: the user name is too long or badly %%-encoded");
    if (colon && !pct_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password))
      return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: the password is too long or badly %%-encoded");
    if (!colon && out->user[0]) { /* redis://secret@host: the common shorthand for a password */
      snprintf(out->password, sizeof out->password, "%s", out->user);
      out->user[0] = '\0';
    }
    p = at + 1;
  }
  const char *end = p + strcspn(p, "/");
  const char *hend = end;
  const char *colon = NULL;
  if (*p == '[') { /* [::1]:6379 */
    const char *rb = memchr(p, ']', (size_t)(end - p));
    if (rb == NULL) return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: an IPv6 host needs its closing ']'");
    if (rb + 1 < end && rb[1] == ':') colon = rb + 1;
    else if (rb + 1 != end) return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: junk after the IPv6 host");
    p++;
    hend = rb;
  } else {
    colon = memchr(p, ':', (size_t)(end - p));
    if (colon) hend = colon;
  }
  size_t hl = (size_t)(hend - p);
  if (hl == 0) return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: the host is missing");
  if (hl >= sizeof out->host) return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: the host is too long");
  memcpy(out->host, p, hl);
  out->host[hl] = '\0';
  if (colon) {
    char num[8];
    size_t nl = (size_t)(end - colon - 1);
    char *e;
    if (nl == 0 || nl >= sizeof num) return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: the port must be 1 to 65535");
    memcpy(num, colon + 1, nl);
    num[nl] = '\0';
    errno = 0;
    long v = strtol(num, &e, 10);
    if (errno || *e || v < 1 || v > 65535 || num[0] == '+' || num[0] == '-')
      return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: the port must be 1 to 65535, got '%s'", num);
    out->port = (int)v;
  }
  if (*end == '/' && end[1] != '\0') {
    char *e;
    errno = 0;
    long v = strtol(end + 1, &e, 10);
    if (errno || *e || v < 0 || v > 1000000 || end[1] == '+' || end[1] == '-')
      return status_make(INFERD_INVALID_ARGUMENT, "--redis-url: the database must be a number (the /db part), got '%s'",
                         end + 1);
    out->db = (int)v;
  }
  return status_ok();
}

void rstore_url_redacted(const rstore_url *u, char *buf, size_t cap) {
  const bool v6 = strchr(u->host, ':') != NULL;
  snprintf(buf, cap, "redis://%s%s%s%s%s%s:%d/%d", u->user, u->password[0] ? ":***" : "",
           u->user[0] || u->password[0] ? "@" : "", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, u->db);
}

int64_t rstore_backoff_ms(int attempt, double jitter01) {
  int64_t ms = 100;
  for (int i = 0; i < attempt && ms < 2000; i++) ms *= 2;
  if (ms > 2000) ms = 2000;
  if (!(jitter01 >= 0) || jitter01 >= 1) jitter01 = 0;
  return (int64_t)((double)ms * (0.5 + jitter01 / 2));
}

bool rstore_fsm_step(rstore_fsm *f, rstore_event ev) {
  rstore_link before = f->link;
  switch (ev) {
    case RSTORE_EV_READY:
      f->link = RSTORE_UP;
      f->timeouts_in_row = 0;
      break;
    case RSTORE_EV_LOST:
      f->link = RSTORE_DOWN;
      f->timeouts_in_row = 0;
      break;
    case RSTORE_EV_REPLY:
      f->timeouts_in_row = 0;
      break;
    case RSTORE_EV_TIMEOUT:
      if (f->link == RSTORE_UP && ++f->timeouts_in_row >= (f->max_timeouts > 0 ? f->max_timeouts : 1)) {
        f->link = RSTORE_DOWN;
        f->timeouts_in_row = 0;
      }
      break;
  }
  return f->link != before;
}
