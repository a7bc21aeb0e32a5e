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

/* "2026-11-22T15:30:00.123456Z". The date and time to the second are formatted once a second
 * per thread (gmtime_r + strftime were a sixth of an access line's instructions). */
static void append_time(sbuf *b) {
  static _Thread_local time_t cached_sec = -1;
  static _Thread_local char cached[32];
  static _Thread_local size_t cached_len;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  if (tv.tv_sec != cached_sec) {
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    cached_len = strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_sec = tv.tv_sec;
  }
  char us[8] = {'.', 0, 0, 0, 0, 0, 0, 'Z'};
  long u = (long)tv.tv_usec;
  for (int i = 6; i >= 1; i--, u /= 10) us[i] = (char)('0' + u % 10);
  sbuf_appendn(b, cached, cached_len);
  sbuf_appendn(b, us, sizeof us);
}

/* The format chosen by main before any thread starts; read on every line. */
static _Atomic int log_fmt = LOG_FORMAT_JSON;
void log_set_format(log_format f) { log_fmt = f; }
log_format log_get_format(void) { return (log_format)log_fmt; }

/* One line's fields in either format: JSON ({"k":v,...}) or logfmt (k=v k=v); string values
 * are JSON string literals in both, so a value never breaks its line. */
typedef struct line_writer {
  sbuf *b;
  bool text;
  bool first;
} line_writer;

static void lw_begin(line_writer *w, sbuf *b) {
  w->b = b;
  w->text = log_fmt == LOG_FORMAT_TEXT;
  w->first = true;
  if (!w->text) sbuf_appendc(b, '{');
}

/* Plain appends, not a formatter: an access line has sixteen keys, and printf per key showed in
 * the per-request instruction count. */
static void lw_key(line_writer *w, const char *key) {
  if (w->text) {
    if (!w->first) sbuf_appendc(w->b, ' ');
    sbuf_append(w->b, key);
    sbuf_appendc(w->b, '=');
  } else {
    sbuf_append(w->b, w->first ? "\"" : ",\"");
    sbuf_append(w->b, key);
    sbuf_append(w->b, "\":");
  }
  w->first = false;
}

/* Decimal integers, without a formatter (see lw_key). */
static void append_num(sbuf *b, uint64_t u, bool negative) {
  char d[24], *p = d + sizeof d;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (negative) *--p = '-';
  sbuf_appendn(b, p, (size_t)(d + sizeof d - p));
}
static void append_i64(sbuf *b, int64_t v) { append_num(b, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, v < 0); }

/* "time": the current UTC time */
static void lw_time(line_writer *w) {
  lw_key(w, "time");
  if (!w->text) sbuf_appendc(w->b, '"');
  append_time(w->b);
  if (!w->text) sbuf_appendc(w->b, '"');
}

/* Appends the end of a line: a "truncated" flag when something was cut, the closing brace and
 * the newline. The callers keep LOG_LINE_END_MAX bytes free for it, so it always fits. */
#define LOG_LINE_END ",\"truncated\":true}\n"
#define LOG_LINE_END_MAX (sizeof LOG_LINE_END - 1)
static void lw_end(line_writer *w, bool cut) {
  if (w->text) sbuf_append(w->b, cut ? " truncated=true\n" : "\n");
  else sbuf_append(w->b, cut ? LOG_LINE_END : "}\n");
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
  line_writer lw;
  lw_begin(&lw, &b);
  lw_time(&lw);
  lw_key(&lw, "type");
  sbuf_append(&b, "\"log\"");
  lw_key(&lw, "level");
  sbuf_appendf(&b, "\"%s\"", level_names[level]);
  if (model) {
    lw_key(&lw, "model");
    cut |= !sbuf_append_json_string(&b, model, LOG_MODEL_MAX);
  }
  lw_key(&lw, "msg");
  cut |= !sbuf_append_json_string(&b, msg, room_less(&b, LOG_LINE_END_MAX));
  lw_end(&lw, cut);
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
#define ACCESS_TRACE_MAX 70
#define ACCESS_PRINCIPAL_MAX 260
#define ACCESS_ARM_MAX 70
/* Everything of a line but the path, at its largest: time 27, keys and punctuation 250 (+60 for
 * the token counts), the fields above, ten numbers of at most 20 digits, the end. The path gets the rest, at least
 * LOG_ACCESS_LINE_MAX - ACCESS_FIXED_MAX bytes. */
#define ACCESS_FIXED_MAX \
  (27 + 250 + 60 + ACCESS_ID_MAX + ACCESS_METHOD_MAX + LOG_MODEL_MAX + ACCESS_VERSION_MAX + ACCESS_TRACE_MAX + \
   ACCESS_PRINCIPAL_MAX + ACCESS_ARM_MAX + 10 * 20 + LOG_LINE_END_MAX)
_Static_assert(LOG_ACCESS_LINE_MAX >= ACCESS_FIXED_MAX + 512, "an access line leaves the path too little room");

/* A string field that may be absent: "" when s is NULL, so every line has the same keys. */
static bool append_opt(sbuf *b, const char *s, size_t max) { return sbuf_append_json_string(b, s ? s : "", max); }

size_t log_access_format(const access_record *r, char *line, size_t cap) {
  bool cut = false;
  /* What follows the path is formatted first, so that the path can be given the room left.
   * It continues the line, so it is written as fields after the first. */
  char after[ACCESS_FIXED_MAX];
  sbuf a;
  sbuf_init(&a, after, sizeof after);
  line_writer wa = {.b = &a, .text = log_fmt == LOG_FORMAT_TEXT, .first = false};
  lw_key(&wa, "model");
  cut |= !sbuf_append_json_string(&a, r->model, LOG_MODEL_MAX);
  lw_key(&wa, "version");
  cut |= !sbuf_append_json_string(&a, r->version, ACCESS_VERSION_MAX);
  lw_key(&wa, "arm");
  cut |= !append_opt(&a, r->arm, ACCESS_ARM_MAX);
  lw_key(&wa, "status");
  append_i64(&a, r->status);
  lw_key(&wa, "latency_us");
  append_i64(&a, r->latency_us);
  lw_key(&wa, "queue_us");
  if (r->timed) append_i64(&a, r->queue_us);
  else sbuf_append(&a, "null");
  lw_key(&wa, "compute_us");
  if (r->timed) append_i64(&a, r->compute_us);
  else sbuf_append(&a, "null");
  lw_key(&wa, "bytes_in");
  append_num(&a, r->bytes_in, false);
  lw_key(&wa, "bytes_out");
  append_num(&a, r->bytes_out, false);
  lw_key(&wa, "trace_id");
  cut |= !append_opt(&a, r->trace_id, ACCESS_TRACE_MAX);
  lw_key(&wa, "principal");
  cut |= !append_opt(&a, r->principal, ACCESS_PRINCIPAL_MAX);
  if (r->has_usage) { /* only generation requests count tokens: other lines stay as they were */
    lw_key(&wa, "prompt_tokens");
    append_i64(&a, r->prompt_tokens);
    lw_key(&wa, "completion_tokens");
    append_i64(&a, r->completion_tokens);
    lw_key(&wa, "total_tokens");
    append_i64(&a, r->prompt_tokens + r->completion_tokens);
  }

  sbuf b;
  sbuf_init(&b, line, cap);
  line_writer w;
  lw_begin(&w, &b);
  lw_time(&w);
  lw_key(&w, "type");
  sbuf_append(&b, "\"access\"");
  lw_key(&w, "request_id");
  cut |= !sbuf_append_json_string(&b, r->request_id, ACCESS_ID_MAX);
  lw_key(&w, "method");
  cut |= !sbuf_append_json_string(&b, r->method, ACCESS_METHOD_MAX);
  lw_key(&w, "path");
  cut |= !sbuf_append_json_string(&b, r->path, room_less(&b, a.len + LOG_LINE_END_MAX));
  sbuf_appendn(&b, after, a.len);
  lw_end(&w, cut);
  return b.len;
}
