/* The log lines (util/log.h), composed with the truncating appender so that no input can
 * make a line pass its buffer, and every line stays one valid JSON object. */
#include "util/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/strbuf.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* "2026-11-22T15:30:00.123456Z" */
static void append_time(sbuf *b) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char t[32];
  if (strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm) == 0) t[0] = '\0';
  sbuf_appendf(b, "%s.%06ldZ", t, (long)tv.tv_usec);
}

/* Appends the end of a line: a "truncated" flag when something was cut, the closing brace and
 * the newline. The callers keep LOG_LINE_END_MAX bytes free for it, so it always fits. */
#define LOG_LINE_END ",\"truncated\":true}\n"
#define LOG_LINE_END_MAX (sizeof LOG_LINE_END - 1)
static void end_line(sbuf *b, bool cut) {
  sbuf_append(b, cut ? LOG_LINE_END : "}\n");
}

/* The room a field may take when `keep` bytes must stay free after it. */
static size_t room_less(const sbuf *b, size_t keep) {
  size_t room = sbuf_room(b);
  return room > keep ? room - keep : 0;
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

/* The most a model name may take in a line, as a JSON literal; the rest of the line is the
 * message's (the path's in an access line). */
#define LOG_MODEL_MAX 520
#define LOG_LINE_MAX 2048

void log_msg(log_level level, const char *model, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bool cut = n < 0 || (size_t)n >= sizeof msg;
  if (n < 0) msg[0] = '\0';
  char line[LOG_LINE_MAX];
  sbuf b;
  sbuf_init(&b, line, sizeof line);
  sbuf_append(&b, "{\"time\":\"");
  append_time(&b);
  sbuf_appendf(&b, "\",\"type\":\"log\",\"level\":\"%s\"", level_names[level]);
  if (model) {
    sbuf_append(&b, ",\"model\":");
    cut |= !sbuf_append_json_string(&b, model, LOG_MODEL_MAX);
  }
  sbuf_append(&b, ",\"msg\":");
  cut |= !sbuf_append_json_string(&b, msg, room_less(&b, LOG_LINE_END_MAX));
  end_line(&b, cut);
  /* one write() per line keeps lines from different threads whole */
  ssize_t w = write(STDERR_FILENO, line, b.len);
  (void)w;
}

/* The most each short field of an access line may take as a JSON literal. Request ids are at
 * most REQUEST_ID_MAX bytes without control characters (util/request_id.h), so 2 * 128 + 2
 * escaped; the others come from fixed-size arrays in the frontends, but are cut here anyway
 * so that the line's size never depends on them. */
#define ACCESS_ID_MAX 260
#define ACCESS_METHOD_MAX 40
#define ACCESS_VERSION_MAX 100
#define ACCESS_PRINCIPAL_MAX 260 /* PRINCIPAL_NAME_MAX bytes, escaped */
/* Everything of a line but the path, at its largest: time 27, keys and punctuation 150, the
 * fields above, four numbers of at most 20 digits, the end. The path gets the rest, at least
 * LOG_ACCESS_LINE_MAX - ACCESS_FIXED_MAX bytes. */
#define ACCESS_FIXED_MAX \
  (27 + 165 + ACCESS_ID_MAX + ACCESS_METHOD_MAX + LOG_MODEL_MAX + ACCESS_VERSION_MAX + ACCESS_PRINCIPAL_MAX + 4 * 20 + \
   LOG_LINE_END_MAX)
_Static_assert(LOG_ACCESS_LINE_MAX >= ACCESS_FIXED_MAX + 512, "an access line leaves the path too little room");

size_t log_access_format(const access_record *r, char *line, size_t cap) {
  bool cut = false;
  /* What follows the path is formatted first, so that the path can be given the room left. */
  char after[ACCESS_FIXED_MAX];
  sbuf a;
  sbuf_init(&a, after, sizeof after);
  sbuf_append(&a, ",\"model\":");
  cut |= !sbuf_append_json_string(&a, r->model, LOG_MODEL_MAX);
  sbuf_append(&a, ",\"version\":");
  cut |= !sbuf_append_json_string(&a, r->version, ACCESS_VERSION_MAX);
  if (r->principal) {
    sbuf_append(&a, ",\"principal\":");
    cut |= !sbuf_append_json_string(&a, r->principal, ACCESS_PRINCIPAL_MAX);
  }
  sbuf_appendf(&a, ",\"status\":%d,\"latency_us\":%lld,\"bytes_in\":%zu,\"bytes_out\":%zu",
               r->status, (long long)r->latency_us, r->bytes_in, r->bytes_out);

  sbuf b;
  sbuf_init(&b, line, cap);
  sbuf_append(&b, "{\"time\":\"");
  append_time(&b);
  sbuf_append(&b, "\",\"type\":\"access\",\"request_id\":");
  cut |= !sbuf_append_json_string(&b, r->request_id, ACCESS_ID_MAX);
  if (r->trace_id) { /* 32 hex digits: nothing to escape */
    sbuf_append(&b, ",\"trace_id\":\"");
    sbuf_appendn(&b, r->trace_id, strspn(r->trace_id, "0123456789abcdef") == 32 && r->trace_id[32] == '\0' ? 32 : 0);
    sbuf_append(&b, "\"");
  }
  sbuf_append(&b, ",\"method\":");
  cut |= !sbuf_append_json_string(&b, r->method, ACCESS_METHOD_MAX);
  sbuf_append(&b, ",\"path\":");
  cut |= !sbuf_append_json_string(&b, r->path, room_less(&b, a.len + LOG_LINE_END_MAX));
  sbuf_appendn(&b, after, a.len);
  end_line(&b, cut);
  return b.len;
}
