/* observability/capture: payload capture — a sampled share of the requests served, with their
 * responses, model, version, arm, latency and request id, as JSON lines in rotating files for
 * offline analysis. The LOG completion stage builds a sampled record and hands it to a bounded
 * queue; one background thread writes the files. A request never waits: a full queue, a failed
 * write (a full disk) or an oversized record drops the record and counts it. */
#ifndef INFERD_CAPTURE_H
#define INFERD_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

struct serve;

typedef struct capture_options {
  const char *dir;          /* where capture-NNNNNN.jsonl files go; NULL: capture is off */
  double percent;           /* of requests sampled, 0..100 */
  size_t max_file_bytes;    /* a file is closed and the next begun past this (default 64 MiB) */
  int max_files;            /* the oldest files beyond this many are deleted (default 10; 0: keep all) */
  size_t queue_records;     /* records waiting for the writer at most (default 4096) */
  size_t max_record_bytes;  /* larger records are dropped (default 1 MiB) */
} capture_options;

#define CAPTURE_DEFAULT_OPTIONS \
  ((capture_options){.percent = 1, .max_file_bytes = 64u << 20, .max_files = 10, .queue_records = 4096, \
                     .max_record_bytes = 1u << 20})

typedef struct capture capture;

typedef struct capture_counts {
  uint64_t sampled;       /* records built */
  uint64_t written;       /* records in the files */
  uint64_t bytes;         /* bytes written */
  uint64_t dropped_queue; /* the writer was behind: the queue was full */
  uint64_t dropped_write; /* a write or open failed (disk full, no permission) */
  uint64_t dropped_size;  /* over max_record_bytes */
  uint64_t files;         /* files begun */
} capture_counts;

/* Creates the directory if needed (INVALID_ARGUMENT naming it when it cannot be made) and
 * starts the writer thread. Numbering continues after the highest-numbered regular
 * capture-N.jsonl already there, so a restart never appends to an old file; what sits at the
 * next name and is not a regular file (a FIFO a consumer reads, a link to a device) is written
 * to. */
inferd_status capture_create(const capture_options *opts, capture **out);
/* Registers the stages: the request's id at fork, the sampled record at log. */
inferd_status capture_serve_register(capture *c, struct serve *s);
/* Writes what is queued, stops the writer and frees. Call once no request can complete. */
void capture_destroy(capture *c);
void capture_get_counts(capture *c, capture_counts *out);
/* Prometheus text: inferd_capture_records_total, inferd_capture_bytes_total,
 * inferd_capture_dropped_total{reason="queue_full"|"write_error"|"too_large"}. */
void capture_metrics_write(capture *c, FILE *out);

#endif
