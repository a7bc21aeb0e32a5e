/* jobs/job_input: splits a batch job's upload into records as its bytes arrive, so a body of
 * millions of records is never held whole: JSON Lines (one record object a line), CSV (a header
 * row naming the features, then one record a row) and the JSON form {"model", "inputs": [...],
 * ...} (the "inputs" array's elements are cut out as they come; the rest, the envelope, is
 * kept and parsed at the end). Pure: bytes in, records out (tests/unit/test_jobs_input.c). */
#ifndef INFERD_JOBS_JOB_INPUT_H
#define INFERD_JOBS_JOB_INPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum { JOB_INPUT_JSONL, JOB_INPUT_CSV, JOB_INPUT_JSON } job_input_format;

/* One record: its JSON object text as sent (CSV: made from the row), len bytes, NUL-terminated. A status other than
 * OK stops the upload with it. */
typedef inferd_status (*job_input_record_fn)(void *user, const char *json, size_t len);

typedef struct job_input job_input;

/* NULL when out of memory. */
job_input *job_input_create(job_input_format format, job_input_record_fn fn, void *user);
void job_input_destroy(job_input *in);
/* Feeds the next bytes. INVALID_ARGUMENT naming the line (JSONL, CSV) or JSON path ($.inputs[i])
 * of what is wrong: a line that is not a JSON object, a row with the wrong number of fields, a
 * record over 1 MiB... */
inferd_status job_input_feed(job_input *in, const char *data, size_t len);
/* The end of the body: the last line without its newline, an unterminated JSON document. */
inferd_status job_input_finish(job_input *in);
/* Records emitted so far. */
int64_t job_input_records(const job_input *in);
/* JSON form, after finish: the top-level object without the inputs' elements ("inputs": []);
 * borrowed. NULL for the other formats. */
json_t *job_input_envelope(const job_input *in);
/* JSON form: whether the body had an "inputs" array at its top level. */
bool job_input_has_inputs(const job_input *in);

/* Which format a Content-Type names: application/x-ndjson, application/jsonl,
 * application/json-lines and text/jsonl are JSONL, text/csv CSV, application/json JSON.
 * -1 for none of them (parameters such as "; charset=utf-8" are ignored). */
int job_input_format_of(const char *content_type);

#endif
