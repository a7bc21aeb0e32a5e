/* jobs/job_input: the upload splitter (job_input.h). Each format is a small state machine over
 * the bytes; a record is validated (a JSON object) when it is complete and handed on. */
#include "jobs/job_input.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RECORD_MAX (1 << 20)   /* bytes of one record (or line) */
#define ENVELOPE_MAX (1 << 16) /* the JSON form's fields besides inputs */
#define CSV_MAX_FIELDS 4096

typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

static bool buf_add(buf *b, const char *d, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) return false;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
  b->p[b->n] = '\0';
  return true;
}

struct job_input {
  job_input_format format;
  job_input_record_fn fn;
  void *user;
  int64_t records;
  int64_t line; /* 1-based line being read (JSONL, CSV) */
  buf cur;      /* the record, line or field being read */
  /* CSV */
  char **header;
  size_t n_header;
  char **fields;
  size_t n_fields;
  bool in_quotes, after_quote, field_quoted;
  bool row_started;
  /* JSON */
  buf env;
  json_t *envelope;
  int depth;
  bool in_string, escape, started, done, in_inputs, has_inputs, in_record, expect_value;
  buf key, last_string;
  bool capturing_string;
  int64_t elements;
};

job_input *job_input_create(job_input_format format, job_input_record_fn fn, void *user) {
  job_input *in = calloc(1, sizeof *in);
  if (in == NULL) return NULL;
  in->format = format;
  in->fn = fn;
  in->user = user;
  in->line = 1;
  return in;
}

static void free_strings(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

void job_input_destroy(job_input *in) {
  if (in == NULL) return;
  free(in->cur.p);
  free_strings(in->header, in->n_header);
  free_strings(in->fields, in->n_fields);
  free(in->env.p);
  free(in->key.p);
  free(in->last_string.p);
  json_decref(in->envelope);
  free(in);
}

int64_t job_input_records(const job_input *in) { return in->records; }
json_t *job_input_envelope(const job_input *in) { return in->envelope; }
bool job_input_has_inputs(const job_input *in) { return in->has_inputs; }

static inferd_status oom(void) { return status_make(INFERD_INTERNAL, "out of memory"); }

/* A complete record's text: it must be one JSON object. where: "line 12" or "$.inputs[3]". */
static inferd_status emit_json(job_input *in, const char *text, size_t len, const char *where) {
  json_error_t e;
  json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
  if (v == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "%s is not valid JSON: %s (column %d)", where, e.text, e.column);
  if (!json_is_object(v)) {
    json_decref(v);
    return status_make(INFERD_INVALID_ARGUMENT, "%s must be a JSON object of feature values", where);
  }
  json_decref(v);
  /* stored as sent (it parsed): re-serialising a million records would cost more than the parse */
  in->records++;
  if (text[len] == '\0') return in->fn(in->user, text, len);
  char *copy = strndup(text, len);
  if (copy == NULL) return oom();
  inferd_status st = in->fn(in->user, copy, len);
  free(copy);
  return st;
}

/* ---- JSON Lines ---- */

static inferd_status jsonl_line(job_input *in) {
  const char *p = in->cur.p ? in->cur.p : "";
  size_t n = in->cur.n;
  while (n && (p[n - 1] == '\r' || isspace((unsigned char)p[n - 1]))) n--;
  while (n && isspace((unsigned char)*p)) p++, n--;
  inferd_status st = status_ok();
  if (n) { /* blank lines are skipped */
    char where[48];
    snprintf(where, sizeof where, "line %lld", (long long)in->line);
    st = emit_json(in, p, n, where);
  }
  in->cur.n = 0;
  in->line++;
  return st;
}

static inferd_status jsonl_feed(job_input *in, const char *d, size_t len) {
  while (len) {
    const char *nl = memchr(d, '\n', len);
    size_t take = nl ? (size_t)(nl - d) : len;
    if (in->cur.n + take > RECORD_MAX)
      return status_make(INFERD_INVALID_ARGUMENT, "line %lld is longer than 1 MiB", (long long)in->line);
    if (!buf_add(&in->cur, d, take)) return oom();
    if (!nl) return status_ok();
    TRY(jsonl_line(in));
    d += take + 1;
    len -= take + 1;
  }
  return status_ok();
}

/* ---- CSV (RFC 4180: quoted fields may hold commas, newlines and "" for a quote) ---- */

static inferd_status csv_end_field(job_input *in) {
  if (in->n_fields >= CSV_MAX_FIELDS)
    return status_make(INFERD_INVALID_ARGUMENT, "line %lld has more than %d fields", (long long)in->line, CSV_MAX_FIELDS);
  char **f = realloc(in->fields, (in->n_fields + 1) * sizeof *f);
  if (f == NULL) return oom();
  in->fields = f;
  /* a quoted field is always a string: mark it with a leading \x01 the row conversion strips */
  size_t n = in->cur.n;
  char *s = malloc(n + 2);
  if (s == NULL) return oom();
  s[0] = in->field_quoted ? '\x01' : '\x02';
  if (n) memcpy(s + 1, in->cur.p, n);
  s[n + 1] = '\0';
  in->fields[in->n_fields++] = s;
  in->cur.n = 0;
  in->field_quoted = false;
  return status_ok();
}

/* An unquoted field's value: a number when it reads as one, null when empty, else a string. */
static json_t *csv_value(const char *s) {
  bool quoted = s[0] == '\x01';
  s++;
  if (quoted) return json_string(s);
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  if (n == 0) return json_null();
  char tmp[64];
  if (n < sizeof tmp) {
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long long i = strtoll(tmp, &end, 10);
    if (*end == '\0' && errno == 0) return json_integer(i);
    double d = strtod(tmp, &end);
    if (*end == '\0' && isfinite(d) && !isalpha((unsigned char)tmp[0]) && !(n > 1 && isalpha((unsigned char)tmp[1])))
      return json_real(d);
  }
  return json_stringn(s, n);
}

static inferd_status csv_end_row(job_input *in) {
  TRY(csv_end_field(in));
  inferd_status st = status_ok();
  bool blank = in->n_fields == 1 && in->fields[0][0] == '\x02' && in->fields[0][1] == '\0';
  if (blank) {
    /* an empty line */
  } else if (in->header == NULL) {
    for (size_t i = 0; i < in->n_fields; i++) {
      memmove(in->fields[i], in->fields[i] + 1, strlen(in->fields[i])); /* drop the marker */
      char *h = in->fields[i];
      size_t lead = strspn(h, " \t");
      memmove(h, h + lead, strlen(h + lead) + 1); /* column names are trimmed both sides */
      size_t n = strlen(h);
      while (n && isspace((unsigned char)h[n - 1])) h[--n] = '\0';
      if (*h == '\0') {
        st = status_make(INFERD_INVALID_ARGUMENT, "the CSV header (line %lld) has an empty column name (column %zu)",
                         (long long)in->line, i + 1);
        break;
      }
      for (size_t j = 0; j < i; j++)
        if (strcmp(in->fields[j], h) == 0) {
          st = status_make(INFERD_INVALID_ARGUMENT, "the CSV header names '%.60s' twice", h);
          break;
        }
      if (!status_is_ok(&st)) break;
    }
    if (status_is_ok(&st)) {
      in->header = in->fields;
      in->n_header = in->n_fields;
      in->fields = NULL;
      in->n_fields = 0;
    }
  } else if (in->n_fields != in->n_header) {
    st = status_make(INFERD_INVALID_ARGUMENT, "line %lld has %zu fields but the header names %zu columns",
                     (long long)in->line, in->n_fields, in->n_header);
  } else {
    json_t *rec = json_object();
    for (size_t i = 0; i < in->n_fields && rec; i++) {
      json_t *v = csv_value(in->fields[i]);
      if (v == NULL || json_object_set_new(rec, in->header[i], v) != 0) {
        json_decref(rec);
        rec = NULL;
      }
    }
    char *text = rec ? json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(rec);
    if (text == NULL) {
      st = oom();
    } else {
      in->records++;
      st = in->fn(in->user, text, strlen(text));
      free(text);
    }
  }
  free_strings(in->fields, in->n_fields);
  in->fields = NULL;
  in->n_fields = 0;
  in->row_started = false;
  return st;
}

static inferd_status csv_feed(job_input *in, const char *d, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = d[i];
    if (in->cur.n > RECORD_MAX)
      return status_make(INFERD_INVALID_ARGUMENT, "line %lld has a field longer than 1 MiB", (long long)in->line);
    if (in->in_quotes) {
      if (c == '"') {
        in->in_quotes = false;
        in->after_quote = true;
      } else {
        if (c == '\n') in->line++;
        if (!buf_add(&in->cur, &c, 1)) return oom();
      }
      continue;
    }
    if (in->after_quote) {
      in->after_quote = false;
      if (c == '"') { /* "" inside a quoted field */
        in->in_quotes = true;
        if (!buf_add(&in->cur, &c, 1)) return oom();
        continue;
      }
      if (c != ',' && c != '\n' && c != '\r')
        return status_make(INFERD_INVALID_ARGUMENT, "line %lld: a quoted field must end at a comma or the line's end",
                           (long long)in->line);
    }
    in->row_started = true;
    if (c == '"' && in->cur.n == 0 && !in->field_quoted) {
      in->in_quotes = in->field_quoted = true;
    } else if (c == ',') {
      TRY(csv_end_field(in));
    } else if (c == '\n') {
      TRY(csv_end_row(in));
      in->line++;
    } else if (c == '\r') {
      /* CRLF: the \n ends the row */
    } else if (c == '"') {
      return status_make(INFERD_INVALID_ARGUMENT, "line %lld: a quote inside an unquoted field (quote the whole field)",
                         (long long)in->line);
    } else if (!buf_add(&in->cur, &c, 1)) {
      return oom();
    }
  }
  return status_ok();
}

/* ---- the JSON form ---- */

static inferd_status json_feed(job_input *in, const char *d, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = d[i];
    if (in->done) {
      if (!isspace((unsigned char)c))
        return status_make(INFERD_INVALID_ARGUMENT, "the body has more after its JSON object");
      continue;
    }
    if (!in->started) {
      if (isspace((unsigned char)c)) continue;
      if (c != '{') return status_make(INFERD_INVALID_ARGUMENT, "the body must be a JSON object {\"model\": ..., \"inputs\": [...]}");
      in->started = true;
    }
    bool to_record = in->in_record;
    if (in->in_string) {
      if (in->escape) in->escape = false;
      else if (c == '\\') in->escape = true;
      else if (c == '"') in->in_string = false;
      if (in->in_string && in->capturing_string && !buf_add(&in->last_string, &c, 1)) return oom();
      if (!in->in_string) in->capturing_string = false;
    } else if (c == '"') {
      in->in_string = true;
      in->capturing_string = in->depth == 1;
      if (in->capturing_string) in->last_string.n = 0;
      if (in->last_string.p) in->last_string.p[0] = '\0';
    } else if (c == ':' && in->depth == 1) {
      in->key.n = 0;
      if (!buf_add(&in->key, in->last_string.p ? in->last_string.p : "", in->last_string.n)) return oom();
      in->expect_value = true;
    } else if (c == '{' || c == '[') {
      if (in->in_inputs && in->depth == 2 && !in->in_record) {
        if (c != '{')
          return status_make(INFERD_INVALID_ARGUMENT, "$.inputs[%lld] must be a JSON object of feature values",
                             (long long)in->elements);
        in->in_record = to_record = true;
        in->cur.n = 0;
      }
      if (c == '[' && in->depth == 1 && in->expect_value && strcmp(in->key.p ? in->key.p : "", "inputs") == 0) {
        if (in->has_inputs) return status_make(INFERD_INVALID_ARGUMENT, "$.inputs is given twice");
        in->in_inputs = in->has_inputs = true;
        in->depth++;
        if (!buf_add(&in->env, &c, 1)) return oom(); /* the envelope keeps "inputs": [] */
        continue;
      }
      in->depth++;
      if (in->depth > 64) return status_make(INFERD_INVALID_ARGUMENT, "the body nests deeper than 64 levels");
    } else if (c == '}' || c == ']') {
      in->depth--;
      if (in->depth < 0) return status_make(INFERD_INVALID_ARGUMENT, "the body's brackets do not match");
      if (in->in_record && in->depth == 2) { /* the record's closing brace */
        if (!buf_add(&in->cur, &c, 1)) return oom();
        char where[48];
        snprintf(where, sizeof where, "$.inputs[%lld]", (long long)in->elements);
        TRY(emit_json(in, in->cur.p, in->cur.n, where));
        in->elements++;
        in->in_record = false;
        in->cur.n = 0;
        continue;
      }
      if (in->in_inputs && in->depth == 1) in->in_inputs = false;
      if (in->depth == 0) in->done = true;
    } else if (!isspace((unsigned char)c) && c != ',' && in->in_inputs && in->depth == 2 && !in->in_record) {
      return status_make(INFERD_INVALID_ARGUMENT, "$.inputs[%lld] must be a JSON object of feature values",
                         (long long)in->elements);
    }
    if (c == ',' && in->depth == 1) in->expect_value = false;
    if (to_record) {
      if (in->cur.n >= RECORD_MAX)
        return status_make(INFERD_INVALID_ARGUMENT, "$.inputs[%lld] is larger than 1 MiB", (long long)in->elements);
      if (!buf_add(&in->cur, &c, 1)) return oom();
    } else if (!(in->in_inputs && in->depth >= 2)) {
      if (in->env.n >= ENVELOPE_MAX)
        return status_make(INFERD_INVALID_ARGUMENT, "the fields besides \"inputs\" are larger than 64 KiB");
      if (!buf_add(&in->env, &c, 1)) return oom();
    }
  }
  return status_ok();
}

inferd_status job_input_feed(job_input *in, const char *data, size_t len) {
  switch (in->format) {
    case JOB_INPUT_JSONL: return jsonl_feed(in, data, len);
    case JOB_INPUT_CSV: return csv_feed(in, data, len);
    case JOB_INPUT_JSON: return json_feed(in, data, len);
  }
  return status_make(INFERD_INTERNAL, "unknown input format");
}

inferd_status job_input_finish(job_input *in) {
  switch (in->format) {
    case JOB_INPUT_JSONL:
      if (in->cur.n) TRY(jsonl_line(in));
      break;
    case JOB_INPUT_CSV:
      if (in->in_quotes) return status_make(INFERD_INVALID_ARGUMENT, "line %lld: a quoted field is not closed", (long long)in->line);
      if (in->row_started || in->cur.n) TRY(csv_end_row(in));
      if (in->header == NULL) return status_make(INFERD_INVALID_ARGUMENT, "the CSV body is empty: it needs a header row naming the features");
      break;
    case JOB_INPUT_JSON: {
      if (!in->started) return status_make(INFERD_INVALID_ARGUMENT, "the body is empty: send {\"model\": ..., \"inputs\": [...]}");
      if (!in->done) return status_make(INFERD_INVALID_ARGUMENT, "the body ends before its JSON object does");
      json_error_t e;
      in->envelope = json_loadb(in->env.p, in->env.n, JSON_REJECT_DUPLICATES, &e);
      if (in->envelope == NULL)
        return status_make(INFERD_INVALID_ARGUMENT, "the body is not valid JSON: %s", e.text);
      break;
    }
  }
  return status_ok();
}

int job_input_format_of(const char *ct) {
  if (ct == NULL) return -1;
  while (*ct == ' ') ct++;
  size_t n = strcspn(ct, "; ");
  static const struct {
    const char *name;
    job_input_format f;
  } known[] = {{"application/x-ndjson", JOB_INPUT_JSONL}, {"application/jsonl", JOB_INPUT_JSONL},
               {"application/json-lines", JOB_INPUT_JSONL}, {"application/x-jsonlines", JOB_INPUT_JSONL},
               {"text/jsonl", JOB_INPUT_JSONL}, {"text/csv", JOB_INPUT_CSV}, {"application/json", JOB_INPUT_JSON}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strlen(known[i].name) == n && strncasecmp(ct, known[i].name, n) == 0) return (int)known[i].f;
  return -1;
}
