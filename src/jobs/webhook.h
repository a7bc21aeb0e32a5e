/* jobs/webhook: outbound webhook deliveries signed per Standard Webhooks, sent from one thread of
 * their own (a libevent loop driving libcurl's multi interface), retried with backoff and jitter
 * within a time window. The policy parts (signing, backoff, Retry-After, what to retry) are pure
 * functions, tested alone (tests/unit/test_webhook.c). */
#ifndef INFERD_JOBS_WEBHOOK_H
#define INFERD_JOBS_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef struct webhooks webhooks;

typedef struct webhook_options {
  /* The signing secret, Standard Webhooks' serialization: "whsec_" + base64 of 24 to 64 random
   * bytes (the prefix may be left off). Either secret or secret_file (a file holding it, trailing
   * whitespace ignored), or neither: then deliveries carry webhook-id and webhook-timestamp but no
   * webhook-signature. Copied at create; never logged. */
  const char *secret;
  const char *secret_file;
  int64_t retry_window_ms;    /* retries stop once the next attempt would start past this (3600000) */
  int timeout_ms;             /* one attempt, connect included (15000: the spec's 15-30 s) */
  int max_concurrent;         /* attempts in flight at once (16) */
  int max_queued;             /* deliveries held (waiting, in flight or between retries) (10000) */
  int initial_backoff_ms;     /* the first retry's upper bound; doubles per retry (1000) */
  int max_backoff_ms;         /* the bound the doubling stops at (600000) */
  size_t max_payload_bytes;   /* largest json_payload accepted (1 MiB) */
  size_t max_response_bytes;  /* response body read (and discarded) before the connection is cut (64 KiB) */
} webhook_options;

/* The defaults above; webhooks_create also takes 0 in a field as its default. */
void webhook_options_default(webhook_options *o);

/* The outcome of one delivery, once: delivered (a 2xx; last_error is NULL), or not after
 * `attempts` attempts, with the last one's reason ("HTTP 500", "timed out after 200 ms",
 * "connection refused or unreachable", "shutting down", ...). Runs on the webhook thread: keep it
 * short, never block; it may call webhooks_send, never webhooks_destroy. */
typedef void (*webhook_result_fn)(void *ctx, const char *msg_id, bool delivered, int attempts, const char *last_error);

/* Starts the webhook thread. INVALID_ARGUMENT names what is wrong with the secret (never its
 * value) or an option. */
inferd_status webhooks_create(const webhook_options *o, webhooks **out);

/* Thread-safe. Queues one delivery of json_payload (copied) to url; fn runs once, on the webhook
 * thread, with the final outcome. msg_id is the webhook-id (the receiver's idempotency key, the
 * same on every retry): 1 to 255 visible ASCII characters, no '.'. INVALID_ARGUMENT for a url
 * that is not http:// or https:// with a host (or over 2048 bytes), a bad msg_id or a payload
 * too large; RESOURCE_EXHAUSTED when max_queued deliveries are held; UNAVAILABLE once stopping.
 * On any error fn is not called. */
inferd_status webhooks_send(webhooks *w, const char *url, const char *msg_id, const char *json_payload,
                            webhook_result_fn fn, void *ctx);

/* Stops the thread; deliveries still held end with fn(delivered=false, "shutting down") (on the
 * webhook thread, before this returns). NULL is fine. */
void webhooks_destroy(webhooks *w);
/* The stopping half of destroy alone: after it, webhooks_send answers UNAVAILABLE and the
 * counters stay readable (a /metrics scrape may still come) until webhooks_destroy. Idempotent. */
void webhooks_stop(webhooks *w);

/* True when deliveries are signed (a secret was given). */
bool webhooks_signed(const webhooks *w);

/* Counters since create, for /metrics and tests. */
typedef struct webhook_counters {
  uint64_t delivered; /* deliveries that got a 2xx */
  uint64_t failed;    /* deliveries given up (4xx, window over, shutting down) */
  uint64_t retries;   /* attempts after a delivery's first */
  uint64_t refused;   /* webhooks_send refused for a full queue */
  uint64_t held;      /* deliveries held now (gauge) */
} webhook_counters;
void webhooks_counters(const webhooks *w, webhook_counters *out);

/* Prometheus text of the counters (inferd_webhook_*); an obs_stream_collector's write
 * (observability/collectors.h): ctx is the webhooks. */
void webhooks_metrics_write(void *ctx, FILE *f);

/* ---- the pure parts ---- */

/* Decodes a "whsec_..." (or bare base64) secret into key[0..cap); INVALID_ARGUMENT when it is not
 * base64 or not 24 to 64 bytes. */
inferd_status webhook_secret_decode(const char *secret, unsigned char *key, size_t cap, size_t *key_len);

#define WEBHOOK_SIGNATURE_MAX 64 /* "v1," + base64 of 32 bytes + NUL, rounded up */
/* out = "v1," + base64(HMAC-SHA256(key, "<msg_id>.<timestamp>.<body>")). */
inferd_status webhook_sign(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                           const char *body, size_t body_len, char out[WEBHOOK_SIGNATURE_MAX]);

/* The delay before retry number `retry` (1 = the first retry): full jitter, a uniform draw from
 * [0, min(max_backoff_ms, initial_backoff_ms * 2^(retry-1))] made from `rnd` (any 64 random bits). */
int64_t webhook_backoff_ms(int initial_backoff_ms, int max_backoff_ms, int retry, uint64_t rnd);

/* A Retry-After value (delta-seconds, or an HTTP-date against now_epoch_s) in ms; -1 when it
 * does not parse. A date in the past gives 0. */
int64_t webhook_retry_after_ms(const char *value, int64_t now_epoch_s);

/* Whether an attempt's outcome is worth another: http_status 0 means no response (connection
 * error, timeout); 5xx, 429 and 408 are retried; 2xx is success; every other status (3xx
 * redirects are not followed, 4xx) fails the delivery at once. */
bool webhook_status_retryable(int http_status);

/* The wait before the next attempt, or -1 when there is none within the window: elapsed_ms since
 * the first attempt began, retry_after_ms the receiver's Retry-After (-1: none), which replaces
 * the backoff when given (and a Retry-After past the window ends the delivery at once). */
int64_t webhook_next_delay_ms(int64_t elapsed_ms, int64_t window_ms, int64_t backoff_ms, int64_t retry_after_ms);

/* url is http:// or https:// with a host, at most 2048 bytes, no spaces or control characters. */
inferd_status webhook_url_check(const char *url);

#endif
