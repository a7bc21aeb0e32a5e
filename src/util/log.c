#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static size_t format_time(char *buf, size_t len) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(buf + n, len - n, ".%06ldZ", (long)tv.tv_usec);
  return n;
}

void json_escape_into(char *buf, size_t len, size_t *off, const char *s) {
  size_t o = *off;
#define PUT(c)                  \
  do {                          \
    if (o + 1 < len) buf[o] = (c); \
    o++;                        \
  } while (0)
  PUT('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if (c == '"' || c == '\\') {
      PUT('\\');
      PUT((char)c);
    } else if (c == '\n') {
      PUT('\\');
      PUT('n');
    } else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      for (char *e = esc; *e; e++) PUT(*e);
    } else {
      PUT((char)c);
    }
  }
  PUT('"');
#undef PUT
  if (o >= len) o = len - 1;
  buf[o] = '\0';
  *off = o;
}

/* Closes the object and the line; returns the line's length. */
static size_t end_line(char *buf, size_t len, size_t off) {
  if (off >= len - 2) off = len - 3;
  buf[off++] = '}';
  buf[off++] = '\n';
  return off;
}

/* One write() per line keeps lines from different threads whole. */
static void write_line(char *buf, size_t len, size_t off) {
  ssize_t w = write(STDERR_FILENO, buf, end_line(buf, len, off));
  (void)w;
}

void log_write_lines(const char *buf, size_t len) {
  /* a write of at most PIPE_BUF bytes to a pipe is not interleaved with other writers: cut at
   * line ends within that */
  while (len > 0) {
    size_t n = len;
    if (n > 4096) {
      n = 4096;
      while (n > 0 && buf[n - 1] != '\n') n--;
      if (n == 0) n = len < 4096 ? len : 4096; /* a line longer than PIPE_BUF: as it comes */
    }
    ssize_t w = write(STDERR_FILENO, buf, n);
    if (w <= 0) return;
    buf += w;
    len -= (size_t)w;
  }
}

void log_msg(log_level level, const char *model, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char line[2048];
  size_t off = 0;
  off += (size_t)snprintf(line, sizeof line, "{\"time\":\"");
  off += format_time(line + off, sizeof line - off);
  off += (size_t)snprintf(line + off, sizeof line - off, "\",\"type\":\"log\",\"level\":\"%s\"",
                          level_names[level]);
  if (model) {
    off += (size_t)snprintf(line + off, sizeof line - off, ",\"model\":");
    json_escape_into(line, sizeof line, &off, model);
  }
  off += (size_t)snprintf(line + off, sizeof line - off, ",\"msg\":");
  json_escape_into(line, sizeof line, &off, msg);
  write_line(line, sizeof line, off);
}

size_t log_access_format(const access_record *r, char *line, size_t cap) {
  size_t off = 0;
  off += (size_t)snprintf(line, cap, "{\"time\":\"");
  off += format_time(line + off, cap - off);
  off += (size_t)snprintf(line + off, cap - off, "\",\"type\":\"access\",\"request_id\":");
  json_escape_into(line, cap, &off, r->request_id);
  off += (size_t)snprintf(line + off, cap - off, ",\"method\":");
  json_escape_into(line, cap, &off, r->method);
  off += (size_t)snprintf(line + off, cap - off, ",\"path\":");
  json_escape_into(line, cap, &off, r->path);
  off += (size_t)snprintf(line + off, cap - off, ",\"model\":");
  if (r->model)
    json_escape_into(line, cap, &off, r->model);
  else
    off += (size_t)snprintf(line + off, cap - off, "null");
  off += (size_t)snprintf(line + off, cap - off, ",\"version\":");
  if (r->version)
    json_escape_into(line, cap, &off, r->version);
  else
    off += (size_t)snprintf(line + off, cap - off, "null");
  if (off < cap)
    off += (size_t)snprintf(line + off, cap - off,
                            ",\"status\":%d,\"latency_us\":%lld,\"bytes_in\":%zu,\"bytes_out\":%zu",
                            r->status, (long long)r->latency_us, r->bytes_in, r->bytes_out);
  return end_line(line, cap, off < cap ? off : cap - 1);
}
