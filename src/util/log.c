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

/* One write() per line keeps lines from different threads whole. */
static void write_line(char *buf, size_t len, size_t off) {
  if (off >= len - 2) off = len - 3;
  buf[off++] = '}';
  buf[off++] = '\n';
  ssize_t w = write(STDERR_FILENO, buf, off);
  (void)w;
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

void log_access(const access_record *r) {
  char line[2048];
  size_t off = 0;
  off += (size_t)snprintf(line, sizeof line, "{\"time\":\"");
  off += format_time(line + off, sizeof line - off);
  off += (size_t)snprintf(line + off, sizeof line - off, "\",\"type\":\"access\",\"request_id\":");
  json_escape_into(line, sizeof line, &off, r->request_id);
  off += (size_t)snprintf(line + off, sizeof line - off, ",\"method\":");
  json_escape_into(line, sizeof line, &off, r->method);
  off += (size_t)snprintf(line + off, sizeof line - off, ",\"path\":");
  json_escape_into(line, sizeof line, &off, r->path);
  off += (size_t)snprintf(line + off, sizeof line - off, ",\"model\":");
  if (r->model)
    json_escape_into(line, sizeof line, &off, r->model);
  else
    off += (size_t)snprintf(line + off, sizeof line - off, "null");
  off += (size_t)snprintf(line + off, sizeof line - off, ",\"version\":");
  if (r->version)
    json_escape_into(line, sizeof line, &off, r->version);
  else
    off += (size_t)snprintf(line + off, sizeof line - off, "null");
  if (off < sizeof line)
    off += (size_t)snprintf(line + off, sizeof line - off,
                            ",\"status\":%d,\"latency_us\":%lld,\"bytes_in\":%zu,\"bytes_out\":%zu",
                            r->status, (long long)r->latency_us, r->bytes_in, r->bytes_out);
  write_line(line, sizeof line, off < sizeof line ? off : sizeof line - 1);
}
