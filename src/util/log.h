/* One JSON object per line on stderr, so log collectors need no parser of their own (or, with
 * --log-format text, one logfmt line: key=value, strings quoted and escaped as in JSON). */
#ifndef INFERD_LOG_H
#define INFERD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* The process's one log setting, chosen by main before any thread starts (JSON by default). */
typedef enum { LOG_FORMAT_JSON, LOG_FORMAT_TEXT } log_format;
void log_set_format(log_format f);
log_format log_get_format(void);

/* {"time":..,"type":"log","level":..,"model":..(if not NULL),"msg":..} */
void log_msg(log_level level, const char *model, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct access_record {
  const char *request_id;
  const char *method;
  const char *path;
  const char *model;   /* NULL when the request named none */
  const char *version; /* NULL when none was resolved */
  int status;
  int64_t latency_us;  /* arrival to reply: the request's total */
  size_t bytes_in;
  size_t bytes_out;
  const char *trace_id;  /* W3C trace id (tracing fills it); NULL or "": none */
  const char *principal; /* who called (a key's name, a JWT subject), never a secret; NULL: none */
  const char *arm;       /* traffic's arm; NULL or "": none */
  bool timed;            /* the request ran: queue_us and compute_us are set */
  int64_t queue_us;      /* waiting in the scheduler */
  int64_t compute_us;    /* its batch's run */
  bool has_usage;        /* a generation: the token counts below are written */
  int64_t prompt_tokens, completion_tokens;
} access_record;

/* The frontends write the access log in batches, not a write() per request: at these sizes,
 * and so that a line reaches stderr within LOG_ACCESS_FLUSH_MS. */
#define LOG_ACCESS_FLUSH_BYTES (32 * 1024)
#define LOG_ACCESS_FLUSH_MS 50
#define LOG_ACCESS_LINE_MAX 3072

/* Formats r as one access-log line (newline included) into line[0..cap); returns its length,
 * always less than cap. With cap >= LOG_ACCESS_LINE_MAX the line is always one whole, valid JSON
 * object: a field too long for it is cut, its value ending in "...", and the line gets
 * "truncated":true (the path takes whatever room the other fields leave). The frontends gather
 * these and flush them with log_write_lines. */
size_t log_access_format(const access_record *r, char *line, size_t cap);
/* Writes whole lines to stderr, in writes a pipe keeps whole. */
void log_write_lines(const char *buf, size_t len);

#endif
