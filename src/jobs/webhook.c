/* Webhook deliveries (jobs/webhook.h): a thread running a libevent loop that drives libcurl's
 * multi interface through its socket and timer callbacks, so one thread carries every attempt
 * in flight and no worker or frontend thread ever waits on a receiver. */
#include "jobs/webhook.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/version.h"
#include "util/monotime.h"

#define URL_MAX 2048
#define MSG_ID_MAX 255
#define KEY_MIN 24 /* the spec's bounds on a symmetric secret */
#define KEY_MAX 64

typedef struct delivery delivery;
typedef struct dlist {
  delivery *head, *tail;
} dlist;

struct delivery {
  delivery *prev, *next; /* in exactly one of incoming, pending, active, waiting */
  webhooks *w;
  char *url, *msg_id, *payload; /* owned */
  size_t payload_len;
  webhook_result_fn fn;
  void *ctx;
  int attempts;
  int64_t first_ns;       /* when the first attempt began (monotonic) */
  CURL *easy;             /* the attempt in flight, NULL between attempts */
  struct curl_slist *hdrs;
  struct event *retry_ev; /* the wait before the next attempt */
  int64_t retry_after_ms; /* this attempt's response's Retry-After; -1: none */
  size_t resp_bytes;
  bool resp_cut; /* the body passed max_response_bytes and the transfer was stopped */
  char last_error[160];
};

struct webhooks {
  webhook_options o;
  unsigned char key[KEY_MAX];
  size_t key_len; /* 0: unsigned deliveries */
  pthread_t thread;
  bool started, curl_inited;
  /* shared with webhooks_send's callers */
  pthread_mutex_t mu;
  dlist incoming;
  bool stopping;
  int held; /* every delivery not yet ended, under mu */
  int wake_fds[2];
  atomic_uint_fast64_t delivered, failed, retries, refused;
  atomic_int held_gauge;
  /* the loop thread's own */
  struct event_base *base;
  struct event *wake_ev, *curl_timer;
  CURLM *multi;
  dlist pending, active, waiting;
  int n_active;
  uint64_t rng;
};

/* ---------------------------------------------------------------- lists */

static void dl_push(dlist *l, delivery *d) {
  d->next = NULL;
  d->prev = l->tail;
  if (l->tail) l->tail->next = d;
  else l->head = d;
  l->tail = d;
}

static void dl_remove(dlist *l, delivery *d) {
  if (d->prev) d->prev->next = d->next;
  else l->head = d->next;
  if (d->next) d->next->prev = d->prev;
  else l->tail = d->prev;
  d->prev = d->next = NULL;
}

/* ---------------------------------------------------------------- pure parts */

void webhook_options_default(webhook_options *o) {
  *o = (webhook_options){.retry_window_ms = 3600000, .timeout_ms = 15000, .max_concurrent = 16,
                         .max_queued = 10000, .initial_backoff_ms = 1000, .max_backoff_ms = 600000,
                         .max_payload_bytes = 1 << 20, .max_response_bytes = 64 << 10};
}

static int b64_value(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Standard base64 (padding optional); false on any other character or a dangling bit group. */
static bool b64_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *out_len) {
  while (n > 0 && s[n - 1] == '=') n--;
  uint32_t acc = 0;
  int bits = 0;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) return false;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (len == cap) return false;
      out[len++] = (unsigned char)(acc >> bits);
    }
  }
  if (bits >= 6) return false; /* one character alone cannot make a byte */
  *out_len = len;
  return true;
}

inferd_status webhook_secret_decode(const char *secret, unsigned char *key, size_t cap, size_t *key_len) {
  if (secret == NULL || *secret == '\0') return status_make(INFERD_INVALID_ARGUMENT, "the webhook secret is empty");
  if (strncmp(secret, "whsec_", 6) == 0) secret += 6;
  size_t n = strlen(secret);
  unsigned char tmp[128];
  size_t len = 0;
  bool ok = b64_decode(secret, n, tmp, sizeof tmp, &len);
  if (ok && len >= KEY_MIN && len <= KEY_MAX && len <= cap) {
    memcpy(key, tmp, len);
    *key_len = len;
  }
  OPENSSL_cleanse(tmp, sizeof tmp);
  if (!ok) return status_make(INFERD_INVALID_ARGUMENT, "the webhook secret is not base64 (\"whsec_\" + base64 of 24 to 64 bytes)");
  if (len < KEY_MIN || len > KEY_MAX || len > cap)
    return status_make(INFERD_INVALID_ARGUMENT, "the webhook secret decodes to %zu bytes; Standard Webhooks wants 24 to 64",
                       len);
  return status_ok();
}

inferd_status webhook_sign(const unsigned char *key, size_t key_len, const char *msg_id, int64_t timestamp,
                           const char *body, size_t body_len, char out[WEBHOOK_SIGNATURE_MAX]) {
  char prefix[MSG_ID_MAX + 32];
  int n = snprintf(prefix, sizeof prefix, "%s.%lld.", msg_id, (long long)timestamp);
  if (n < 0 || (size_t)n >= sizeof prefix) return status_make(INFERD_INVALID_ARGUMENT, "webhook id too long");
  unsigned char mac[EVP_MAX_MD_SIZE];
  /* EVP_MAC (HMAC_CTX is deprecated in OpenSSL 3) over the three parts: the body is not copied */
  EVP_MAC *mac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac_alg ? EVP_MAC_CTX_new(mac_alg) : NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end()};
  size_t outl = 0;
  bool ok = ctx && EVP_MAC_init(ctx, key, key_len, params) && EVP_MAC_update(ctx, (unsigned char *)prefix, (size_t)n) &&
            EVP_MAC_update(ctx, (const unsigned char *)body, body_len) && EVP_MAC_final(ctx, mac, &outl, sizeof mac);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac_alg);
  if (!ok) return status_make(INFERD_INTERNAL, "webhook signing failed (HMAC-SHA256 unavailable)");
  memcpy(out, "v1,", 3);
  EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)outl); /* 44 characters and a NUL for 32 bytes */
  return status_ok();
}

int64_t webhook_backoff_ms(int initial_backoff_ms, int max_backoff_ms, int retry, uint64_t rnd) {
  int64_t cap = initial_backoff_ms > 0 ? initial_backoff_ms : 1;
  for (int i = 1; i < retry && cap < max_backoff_ms; i++) cap *= 2; /* stops before it can overflow */
  if (cap > max_backoff_ms) cap = max_backoff_ms;
  if (cap < 0) cap = 0;
  return (int64_t)(rnd % (uint64_t)(cap + 1));
}

int64_t webhook_retry_after_ms(const char *value, int64_t now_epoch_s) {
  if (value == NULL) return -1;
  while (*value == ' ' || *value == '\t') value++;
  if (isdigit((unsigned char)*value)) {
    char *end;
    errno = 0;
    long long s = strtoll(value, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (errno || *end != '\0' || s < 0) return -1;
    if (s > 100LL * 365 * 86400) s = 100LL * 365 * 86400; /* "forever": past any window */
    return s * 1000;
  }
  struct tm tm = {0}; /* IMF-fixdate, the form RFC 9110 says senders use */
  const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == NULL) return -1;
  while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
  if (*end != '\0') return -1;
  int64_t at = (int64_t)timegm(&tm);
  return at <= now_epoch_s ? 0 : (at - now_epoch_s) * 1000;
}

bool webhook_status_retryable(int http_status) {
  return http_status == 0 || http_status >= 500 || http_status == 429 || http_status == 408;
}

int64_t webhook_next_delay_ms(int64_t elapsed_ms, int64_t window_ms, int64_t backoff_ms, int64_t retry_after_ms) {
  if (elapsed_ms >= window_ms) return -1;
  if (retry_after_ms >= 0) return elapsed_ms + retry_after_ms > window_ms ? -1 : retry_after_ms;
  int64_t left = window_ms - elapsed_ms;
  return backoff_ms < left ? backoff_ms : left; /* the last attempt lands on the window's end */
}

inferd_status webhook_url_check(const char *url) {
  if (url == NULL || *url == '\0') return status_make(INFERD_INVALID_ARGUMENT, "callback_url is empty");
  size_t n = strnlen(url, URL_MAX + 1);
  if (n > URL_MAX) return status_make(INFERD_INVALID_ARGUMENT, "callback_url is longer than %d bytes", URL_MAX);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
      return status_make(INFERD_INVALID_ARGUMENT, "callback_url has a space or control character at byte %zu", i);
  if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
    return status_make(INFERD_INVALID_ARGUMENT, "callback_url must be an http:// or https:// URL");
  CURLU *u = curl_url();
  if (u == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  char *host = NULL;
  bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
            host && *host;
  curl_free(host);
  curl_url_cleanup(u);
  if (!ok) return status_make(INFERD_INVALID_ARGUMENT, "callback_url is not a valid URL with a host");
  return status_ok();
}

static inferd_status msg_id_check(const char *id) {
  if (id == NULL || *id == '\0') return status_make(INFERD_INVALID_ARGUMENT, "webhook id is empty");
  size_t n = strnlen(id, MSG_ID_MAX + 1);
  if (n > MSG_ID_MAX) return status_make(INFERD_INVALID_ARGUMENT, "webhook id is longer than %d bytes", MSG_ID_MAX);
  for (size_t i = 0; i < n; i++) /* a '.' would make "id.timestamp.body" ambiguous (the spec forbids it) */
    if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f || id[i] == '.')
      return status_make(INFERD_INVALID_ARGUMENT, "webhook id may hold visible ASCII but '.' only");
  return status_ok();
}

/* ---------------------------------------------------------------- the loop thread */

static uint64_t rng_next(webhooks *w) { /* splitmix64: jitter needs spread, not secrecy */
  uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void delivery_free(delivery *d) {
  if (d->retry_ev) event_free(d->retry_ev);
  free(d->url);
  free(d->msg_id);
  free(d->payload);
  free(d);
}

/* The one end of a delivery: its callback, the counters, the slot in the queue. */
static void finish(webhooks *w, delivery *d, bool delivered, const char *err) {
  atomic_fetch_add(delivered ? &w->delivered : &w->failed, 1);
  d->fn(d->ctx, d->msg_id, delivered, d->attempts, delivered ? NULL : err);
  pthread_mutex_lock(&w->mu);
  w->held--;
  pthread_mutex_unlock(&w->mu);
  atomic_fetch_sub(&w->held_gauge, 1);
  delivery_free(d);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  (void)ptr;
  delivery *d = userdata;
  size_t n = size * nmemb;
  d->resp_bytes += n;
  if (d->resp_bytes > d->w->o.max_response_bytes) {
    d->resp_cut = true;
    return 0; /* stops the transfer: nothing in a receiver's answer but its status matters */
  }
  return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata) {
  delivery *d = userdata;
  size_t n = size * nitems;
  if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) d->retry_after_ms = -1; /* a new response (after a 1xx) */
  if (n > 12 && strncasecmp(buf, "retry-after:", 12) == 0 && n < 128) {
    char v[128];
    memcpy(v, buf + 12, n - 12);
    v[n - 12] = '\0';
    d->retry_after_ms = webhook_retry_after_ms(v, (int64_t)time(NULL));
  }
  return n;
}

static void start_pending(webhooks *w);

static void on_retry_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  delivery *d = arg;
  webhooks *w = d->w;
  dl_remove(&w->waiting, d);
  dl_push(&w->pending, d);
  start_pending(w);
}

/* After a failed attempt: another one later within the window, or the end. */
static void attempt_failed(webhooks *w, delivery *d, int http_status) {
  if (http_status != 0 && !webhook_status_retryable(http_status)) {
    finish(w, d, false, d->last_error);
    return;
  }
  int64_t elapsed = (monotime_ns() - d->first_ns) / 1000000;
  int64_t backoff = webhook_backoff_ms(w->o.initial_backoff_ms, w->o.max_backoff_ms, d->attempts, rng_next(w));
  int64_t delay = webhook_next_delay_ms(elapsed, w->o.retry_window_ms, backoff, d->retry_after_ms);
  if (delay < 0) {
    if (d->retry_after_ms >= 0 && elapsed < w->o.retry_window_ms) {
      size_t len = strlen(d->last_error);
      snprintf(d->last_error + len, sizeof d->last_error - len, " (its Retry-After is past the retry window)");
    }
    finish(w, d, false, d->last_error);
    return;
  }
  if (d->retry_ev == NULL) d->retry_ev = evtimer_new(w->base, on_retry_timer, d);
  if (d->retry_ev == NULL) {
    finish(w, d, false, "out of memory");
    return;
  }
  struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
  dl_push(&w->waiting, d);
  evtimer_add(d->retry_ev, &tv);
}

static const char *curl_reason(CURLcode rc, int timeout_ms, char *buf, size_t cap) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT: return "connection refused or unreachable";
    case CURLE_OPERATION_TIMEDOUT: snprintf(buf, cap, "timed out after %d ms", timeout_ms); return buf;
    case CURLE_COULDNT_RESOLVE_HOST: return "could not resolve the host";
    case CURLE_SSL_CONNECT_ERROR: return "TLS handshake failed";
    case CURLE_PEER_FAILED_VERIFICATION: return "the receiver's TLS certificate did not verify";
    case CURLE_GOT_NOTHING: return "connection closed without a response";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR: return "connection reset";
    default: snprintf(buf, cap, "request failed: %s", curl_easy_strerror(rc)); return buf;
  }
}

static void check_done(webhooks *w) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(w->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode rc = m->data.result;
    delivery *d = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&d);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(w->multi, e);
    curl_easy_cleanup(e);
    curl_slist_free_all(d->hdrs);
    d->easy = NULL;
    d->hdrs = NULL;
    dl_remove(&w->active, d);
    w->n_active--;
    int status = 0;
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && d->resp_cut && code > 0)) status = (int)code;
    if (status >= 200 && status < 300) {
      finish(w, d, true, NULL);
      continue;
    }
    if (status) {
      snprintf(d->last_error, sizeof d->last_error, "HTTP %d", status);
    } else {
      char buf[128];
      snprintf(d->last_error, sizeof d->last_error, "%s", curl_reason(rc, w->o.timeout_ms, buf, sizeof buf));
    }
    attempt_failed(w, d, status);
  }
}

/* One attempt: fresh headers (the timestamp and so the signature are the attempt's, as the spec
 * asks), a fresh easy handle on the multi. */
static bool attempt_start(webhooks *w, delivery *d) {
  if (d->attempts == 0) d->first_ns = monotime_ns();
  else atomic_fetch_add(&w->retries, 1);
  d->attempts++;
  d->retry_after_ms = -1;
  d->resp_bytes = 0;
  d->resp_cut = false;
  char h[MSG_ID_MAX + 64];
  struct curl_slist *hl = NULL, *t;
  bool ok = true;
#define ADD(...)                                      \
  do {                                                \
    snprintf(h, sizeof h, __VA_ARGS__);               \
    t = ok ? curl_slist_append(hl, h) : NULL;         \
    if (t) hl = t;                                    \
    else ok = false;                                  \
  } while (0)
  int64_t ts = (int64_t)time(NULL);
  ADD("Content-Type: application/json");
  ADD("Expect:"); /* no 100-continue round trip */
  ADD("webhook-id: %s", d->msg_id);
  ADD("webhook-timestamp: %lld", (long long)ts);
  if (w->key_len) {
    char sig[WEBHOOK_SIGNATURE_MAX];
    inferd_status st = webhook_sign(w->key, w->key_len, d->msg_id, ts, d->payload, d->payload_len, sig);
    if (status_is_ok(&st)) ADD("webhook-signature: %s", sig);
    else ok = false;
  }
#undef ADD
  CURL *e = ok ? curl_easy_init() : NULL;
  if (e) {
    curl_easy_setopt(e, CURLOPT_URL, d->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->payload);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->payload_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "inferd/" INFERD_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)w->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a 3xx is a failure (Standard Webhooks) */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(e, CURLOPT_PRIVATE, d);
    d->easy = e;
    d->hdrs = hl;
    dl_push(&w->active, d);
    w->n_active++;
    if (curl_multi_add_handle(w->multi, e) == CURLM_OK) return true;
    dl_remove(&w->active, d);
    w->n_active--;
    d->easy = NULL;
    d->hdrs = NULL;
    curl_easy_cleanup(e);
  }
  curl_slist_free_all(hl);
  snprintf(d->last_error, sizeof d->last_error, "could not start a request (out of memory)");
  return false;
}

static void start_pending(webhooks *w) {
  while (w->n_active < w->o.max_concurrent && w->pending.head) {
    delivery *d = w->pending.head;
    dl_remove(&w->pending, d);
    if (!attempt_start(w, d)) attempt_failed(w, d, 0);
  }
}

/* libcurl says which sockets to watch: one persistent event per socket, kept as its socketp. */
static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
  webhooks *w = arg;
  int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  int running = 0;
  curl_multi_socket_action(w->multi, fd, action, &running);
  check_done(w);
  if (running <= 0) evtimer_del(w->curl_timer);
  start_pending(w);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)e;
  webhooks *w = userp;
  struct event *ev = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (ev) event_free(ev);
    return 0;
  }
  short kind = (short)(EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
  if (ev) {
    event_del(ev);
    event_assign(ev, w->base, s, kind, on_socket_event, w);
  } else {
    ev = event_new(w->base, s, kind, on_socket_event, w);
    if (ev == NULL) return -1;
    curl_multi_assign(w->multi, s, ev);
  }
  event_add(ev, NULL);
  return 0;
}

static void on_curl_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  webhooks *w = arg;
  int running = 0;
  curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(w);
  start_pending(w);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  webhooks *w = userp;
  if (timeout_ms < 0) {
    evtimer_del(w->curl_timer);
    return 0;
  }
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  evtimer_add(w->curl_timer, &tv); /* 0 too: libcurl must not be called back from inside here */
  return 0;
}

/* Ends every delivery still held, on the way out. */
static void fail_all(webhooks *w) {
  delivery *d;
  while ((d = w->active.head)) {
    dl_remove(&w->active, d);
    curl_multi_remove_handle(w->multi, d->easy);
    curl_easy_cleanup(d->easy);
    curl_slist_free_all(d->hdrs);
    finish(w, d, false, "shutting down");
  }
  w->n_active = 0;
  while ((d = w->waiting.head)) {
    dl_remove(&w->waiting, d);
    finish(w, d, false, "shutting down");
  }
  while ((d = w->pending.head)) {
    dl_remove(&w->pending, d);
    finish(w, d, false, "shutting down");
  }
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  webhooks *w = arg;
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  pthread_mutex_lock(&w->mu);
  bool stopping = w->stopping;
  delivery *d;
  while ((d = w->incoming.head)) {
    dl_remove(&w->incoming, d);
    dl_push(&w->pending, d);
  }
  pthread_mutex_unlock(&w->mu);
  if (stopping) {
    fail_all(w);
    event_base_loopbreak(w->base);
    return;
  }
  start_pending(w);
}

static void *loop_main(void *arg) {
  webhooks *w = arg;
  event_base_dispatch(w->base);
  /* sockets libcurl still keeps (its connection cache) are unwatched through on_curl_socket,
   * which needs the base: the multi goes first */
  curl_multi_cleanup(w->multi);
  w->multi = NULL;
  return NULL;
}

/* ---------------------------------------------------------------- the API */

static inferd_status read_secret_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return status_make(INFERD_INVALID_ARGUMENT, "--webhook-secret-file %s: %s", path, strerror(errno));
  size_t n = fread(buf, 1, cap - 1, f);
  bool more = fgetc(f) != EOF;
  fclose(f);
  if (more) return status_make(INFERD_INVALID_ARGUMENT, "--webhook-secret-file %s: longer than a secret", path);
  buf[n] = '\0';
  while (n > 0 && isspace((unsigned char)buf[n - 1])) buf[--n] = '\0';
  return status_ok();
}

inferd_status webhooks_create(const webhook_options *o, webhooks **out) {
  webhook_options d;
  webhook_options_default(&d);
  webhook_options opt = *o;
  if (opt.retry_window_ms <= 0) opt.retry_window_ms = d.retry_window_ms;
  if (opt.timeout_ms <= 0) opt.timeout_ms = d.timeout_ms;
  if (opt.max_concurrent <= 0) opt.max_concurrent = d.max_concurrent;
  if (opt.max_queued <= 0) opt.max_queued = d.max_queued;
  if (opt.initial_backoff_ms <= 0) opt.initial_backoff_ms = d.initial_backoff_ms;
  if (opt.max_backoff_ms <= 0) opt.max_backoff_ms = d.max_backoff_ms;
  if (opt.max_backoff_ms < opt.initial_backoff_ms) opt.max_backoff_ms = opt.initial_backoff_ms;
  if (opt.max_payload_bytes == 0) opt.max_payload_bytes = d.max_payload_bytes;
  if (opt.max_response_bytes == 0) opt.max_response_bytes = d.max_response_bytes;
  if (opt.secret && opt.secret_file)
    return status_make(INFERD_INVALID_ARGUMENT, "a webhook secret and a secret file are both given: choose one");

  webhooks *w = calloc(1, sizeof *w);
  if (w == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  w->wake_fds[0] = w->wake_fds[1] = -1;
  inferd_status st = status_ok();
  if (opt.secret_file) {
    char text[512];
    st = read_secret_file(opt.secret_file, text, sizeof text);
    if (status_is_ok(&st)) {
      st = webhook_secret_decode(text, w->key, sizeof w->key, &w->key_len);
      if (!status_is_ok(&st)) {
        char msg[sizeof st.msg];
        snprintf(msg, sizeof msg, "%s", st.msg);
        st = status_make(INFERD_INVALID_ARGUMENT, "--webhook-secret-file %s: %s", opt.secret_file, msg);
      }
    }
    OPENSSL_cleanse(text, sizeof text);
  } else if (opt.secret) {
    st = webhook_secret_decode(opt.secret, w->key, sizeof w->key, &w->key_len);
  }
  opt.secret = opt.secret_file = NULL; /* the key is ours now; the caller's strings may go */
  w->o = opt;
  if (!status_is_ok(&st)) {
    free(w);
    return st;
  }
  if (getrandom(&w->rng, sizeof w->rng, 0) != sizeof w->rng) w->rng = (uint64_t)monotime_ns();
  pthread_mutex_init(&w->mu, NULL);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    pthread_mutex_destroy(&w->mu);
    free(w);
    return status_make(INFERD_INTERNAL, "webhooks: cannot start libcurl");
  }
  w->curl_inited = true;
  if (pipe2(w->wake_fds, O_CLOEXEC | O_NONBLOCK) != 0 || (w->base = event_base_new()) == NULL ||
      (w->wake_ev = event_new(w->base, w->wake_fds[0], EV_READ | EV_PERSIST, on_wake, w)) == NULL ||
      (w->curl_timer = evtimer_new(w->base, on_curl_timeout, w)) == NULL || event_add(w->wake_ev, NULL) != 0 ||
      (w->multi = curl_multi_init()) == NULL) {
    webhooks_destroy(w);
    return status_make(INFERD_INTERNAL, "webhooks: cannot set up the event loop");
  }
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
  if (pthread_create(&w->thread, NULL, loop_main, w) != 0) {
    webhooks_destroy(w);
    return status_make(INFERD_INTERNAL, "webhooks: cannot start the webhook thread");
  }
  w->started = true;
  pthread_setname_np(w->thread, "webhooks");
  *out = w;
  return status_ok();
}

static void wake(webhooks *w) {
  char c = 1;
  ssize_t r = write(w->wake_fds[1], &c, 1); /* a full pipe already says "wake up" */
  (void)r;
}

inferd_status webhooks_send(webhooks *w, const char *url, const char *msg_id, const char *json_payload,
                            webhook_result_fn fn, void *ctx) {
  TRY(webhook_url_check(url));
  TRY(msg_id_check(msg_id));
  if (json_payload == NULL || fn == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "a webhook needs a payload and a result callback");
  size_t len = strlen(json_payload);
  if (len > w->o.max_payload_bytes)
    return status_make(INFERD_TOO_LARGE, "webhook payload of %zu bytes is over the %zu-byte limit", len,
                       w->o.max_payload_bytes);
  delivery *d = calloc(1, sizeof *d);
  if (d == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  d->w = w;
  d->url = strdup(url);
  d->msg_id = strdup(msg_id);
  d->payload = malloc(len + 1);
  if (d->url == NULL || d->msg_id == NULL || d->payload == NULL) {
    delivery_free(d);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  memcpy(d->payload, json_payload, len + 1);
  d->payload_len = len;
  d->fn = fn;
  d->ctx = ctx;
  d->retry_after_ms = -1;
  pthread_mutex_lock(&w->mu);
  inferd_status st = status_ok();
  if (w->stopping) st = status_make(INFERD_UNAVAILABLE, "webhooks are shutting down");
  else if (w->held >= w->o.max_queued)
    st = status_make(INFERD_RESOURCE_EXHAUSTED, "the webhook queue is full (%d deliveries held)", w->held);
  if (status_is_ok(&st)) {
    w->held++;
    dl_push(&w->incoming, d);
  }
  pthread_mutex_unlock(&w->mu);
  if (!status_is_ok(&st)) {
    if (st.code == INFERD_RESOURCE_EXHAUSTED) atomic_fetch_add(&w->refused, 1);
    delivery_free(d);
    return st;
  }
  atomic_fetch_add(&w->held_gauge, 1);
  wake(w);
  return status_ok();
}

void webhooks_stop(webhooks *w) {
  if (w == NULL || !w->started) return;
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  pthread_mutex_unlock(&w->mu);
  wake(w);
  pthread_join(w->thread, NULL);
  w->started = false;
}

void webhooks_destroy(webhooks *w) {
  if (w == NULL) return;
  webhooks_stop(w);
  if (w->multi) curl_multi_cleanup(w->multi); /* only on a failed create: the thread cleans its own */
  if (w->curl_timer) event_free(w->curl_timer);
  if (w->wake_ev) event_free(w->wake_ev);
  if (w->base) event_base_free(w->base);
  if (w->wake_fds[0] >= 0) close(w->wake_fds[0]);
  if (w->wake_fds[1] >= 0) close(w->wake_fds[1]);
  if (w->curl_inited) curl_global_cleanup(); /* paired with the init in create */
  OPENSSL_cleanse(w->key, sizeof w->key);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

bool webhooks_signed(const webhooks *w) { return w->key_len > 0; }

void webhooks_counters(const webhooks *w, webhook_counters *out) {
  webhooks *m = (webhooks *)w; /* atomics are read, never written */
  int held = atomic_load(&m->held_gauge);
  *out = (webhook_counters){.delivered = atomic_load(&m->delivered), .failed = atomic_load(&m->failed),
                            .retries = atomic_load(&m->retries), .refused = atomic_load(&m->refused),
                            .held = held > 0 ? (uint64_t)held : 0};
}

void webhooks_metrics_write(void *ctx, FILE *f) {
  webhook_counters c;
  webhooks_counters(ctx, &c);
  fprintf(f,
          "# HELP inferd_webhook_deliveries_total Webhook deliveries ended, by result (failed: not delivered within "
          "the retry window, a 4xx, or shut down).\n"
          "# TYPE inferd_webhook_deliveries_total counter\n"
          "inferd_webhook_deliveries_total{result=\"delivered\"} %llu\n"
          "inferd_webhook_deliveries_total{result=\"failed\"} %llu\n"
          "# HELP inferd_webhook_retries_total Webhook attempts after a delivery's first.\n"
          "# TYPE inferd_webhook_retries_total counter\n"
          "inferd_webhook_retries_total %llu\n"
          "# HELP inferd_webhook_refused_total Webhook deliveries refused because the queue was full.\n"
          "# TYPE inferd_webhook_refused_total counter\n"
          "inferd_webhook_refused_total %llu\n"
          "# HELP inferd_webhook_queued Webhook deliveries held: waiting, in flight or between retries.\n"
          "# TYPE inferd_webhook_queued gauge\n"
          "inferd_webhook_queued %llu\n",
          (unsigned long long)c.delivered, (unsigned long long)c.failed, (unsigned long long)c.retries,
          (unsigned long long)c.refused, (unsigned long long)c.held);
}
