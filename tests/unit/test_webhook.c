/* Webhooks (jobs/webhook.h): the pure parts (signing against the Standard Webhooks vector,
 * backoff, Retry-After, the retry decision), then real deliveries to a tiny HTTP receiver this
 * test runs on loopback in a thread of its own, which checks each signature with its own HMAC. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "jobs/webhook.h"

/* The vector in Standard Webhooks' reference libraries' tests ("sign function works"). */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ pure parts */

static void test_sign_spec_vector(void **state) {
  (void)state;
  unsigned char key[64];
  size_t key_len = 0;
  inferd_status st = webhook_secret_decode(SPEC_SECRET, key, sizeof key, &key_len);
  assert_int_equal(st.code, INFERD_OK);
  assert_int_equal(key_len, 24);
  char sig[WEBHOOK_SIGNATURE_MAX];
  st = webhook_sign(key, key_len, SPEC_ID, 1614265330, SPEC_BODY, strlen(SPEC_BODY), sig);
  assert_int_equal(st.code, INFERD_OK);
  assert_string_equal(sig, SPEC_SIG);
  /* the prefix is optional */
  size_t key_len2 = 0;
  unsigned char key2[64];
  assert_int_equal(webhook_secret_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key2, sizeof key2, &key_len2).code, INFERD_OK);
  assert_memory_equal(key, key2, 24);
  /* a second vector, computed with Python's hmac: key bytes 0..31, a job-like id and body
   * python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(bytes(range(32)),
   *   b'job_01HXYZ.1700000000.{\"batch_id\":\"b1\",\"status\":\"completed\"}', hashlib.sha256).digest()))" */
  assert_int_equal(webhook_secret_decode("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", key, sizeof key, &key_len).code,
                   INFERD_OK);
  assert_int_equal(key_len, 32);
  const char *body = "{\"batch_id\":\"b1\",\"status\":\"completed\"}";
  assert_int_equal(webhook_sign(key, key_len, "job_01HXYZ", 1700000000, body, strlen(body), sig).code, INFERD_OK);
  assert_string_equal(sig, "v1,KDXSrX2qPMzZ2k8kkm7By16lwlO2RBHSXc4S+08aM44=");
}

static void test_secret_rejects(void **state) {
  (void)state;
  unsigned char key[64];
  size_t n;
  assert_int_equal(webhook_secret_decode("", key, sizeof key, &n).code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhook_secret_decode("whsec_c2hvcnQ=", key, sizeof key, &n).code, INFERD_INVALID_ARGUMENT); /* 5 bytes */
  inferd_status st = webhook_secret_decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw", key, sizeof key, &n);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_null(strstr(st.msg, "MfKQ")); /* never the secret in a message */
  char big[200] = "whsec_";
  memset(big + 6, 'A', 120); /* 90 bytes: over the 64 the spec allows */
  assert_int_equal(webhook_secret_decode(big, key, sizeof key, &n).code, INFERD_INVALID_ARGUMENT);
}

static void test_backoff_schedule(void **state) {
  (void)state;
  /* the bound doubles per retry from the initial one and stops at the maximum */
  assert_int_equal(webhook_backoff_ms(1000, 600000, 1, UINT64_MAX), UINT64_MAX % 1001);
  const int64_t bounds[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 512000, 600000, 600000};
  for (int r = 1; r <= 12; r++) {
    int64_t hi = bounds[r - 1];
    assert_int_equal(webhook_backoff_ms(1000, 600000, r, (uint64_t)hi), hi); /* rnd = bound: the top */
    assert_int_equal(webhook_backoff_ms(1000, 600000, r, (uint64_t)hi + 1), 0);
    assert_int_equal(webhook_backoff_ms(1000, 600000, r, 0), 0);
    for (uint64_t k = 0; k < 1000; k++) { /* every draw stays in [0, bound] */
      int64_t v = webhook_backoff_ms(1000, 600000, r, k * 0x9e3779b97f4a7c15ULL);
      assert_true(v >= 0 && v <= hi);
    }
  }
  assert_int_equal(webhook_backoff_ms(1000, 600000, 1000, 600000), 600000); /* no overflow on a huge retry count */
  /* the draws spread over the range (full jitter), not clustered at one end */
  int low = 0, high = 0;
  uint64_t x = 12345;
  for (int i = 0; i < 10000; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    int64_t v = webhook_backoff_ms(100, 1000, 4, x >> 11);
    if (v < 400) low++;
    if (v >= 400) high++;
  }
  assert_true(low > 4000 && high > 4000);
}

static void test_retry_decision(void **state) {
  (void)state;
  assert_true(webhook_status_retryable(0));
  assert_true(webhook_status_retryable(500));
  assert_true(webhook_status_retryable(503));
  assert_true(webhook_status_retryable(429));
  assert_true(webhook_status_retryable(408));
  assert_false(webhook_status_retryable(400));
  assert_false(webhook_status_retryable(404));
  assert_false(webhook_status_retryable(410));
  assert_false(webhook_status_retryable(301));
  /* within the window: the backoff; at its end: what is left; past it: none */
  assert_int_equal(webhook_next_delay_ms(0, 10000, 500, -1), 500);
  assert_int_equal(webhook_next_delay_ms(9800, 10000, 500, -1), 200);
  assert_int_equal(webhook_next_delay_ms(10000, 10000, 500, -1), -1);
  /* Retry-After replaces the backoff, and past the window ends the delivery */
  assert_int_equal(webhook_next_delay_ms(0, 10000, 500, 3000), 3000);
  assert_int_equal(webhook_next_delay_ms(8000, 10000, 500, 3000), -1);
  assert_int_equal(webhook_retry_after_ms("5", 0), 5000);
  assert_int_equal(webhook_retry_after_ms(" 0\r\n", 0), 0);
  assert_int_equal(webhook_retry_after_ms("soon", 0), -1);
  assert_int_equal(webhook_retry_after_ms("-3", 0), -1);
  /* 1994-11-06 08:49:37 UTC = 784111777 */
  assert_int_equal(webhook_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 7), 7000);
  assert_int_equal(webhook_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 60), 0);
}

static void test_url_check(void **state) {
  (void)state;
  assert_int_equal(webhook_url_check("http://127.0.0.1:9/hook").code, INFERD_OK);
  assert_int_equal(webhook_url_check("https://example.com/a?b=c").code, INFERD_OK);
  assert_int_equal(webhook_url_check("ftp://example.com/").code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhook_url_check("file:///etc/passwd").code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhook_url_check("http://").code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhook_url_check("http://a b/").code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhook_url_check("http://x/\r\nHost: y").code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhook_url_check("").code, INFERD_INVALID_ARGUMENT);
  char *longu = malloc(3000);
  strcpy(longu, "http://example.com/");
  memset(longu + 19, 'a', 2980);
  longu[2999] = '\0';
  inferd_status st = webhook_url_check(longu);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "2048"));
  free(longu);
}

/* ------------------------------------------------------------ a receiver on loopback */

#define MAX_REQ 64
typedef struct request {
  char id[300], ts[32], sig[128];
  char body[4096];
  int64_t at_ms;
} request;

typedef struct receiver {
  int fd, port;
  pthread_t thread;
  atomic_bool stop; /* set by the test, read by the receiver thread */
  /* the script: the answer to request i is statuses[min(i, n-1)] */
  int statuses[8];
  int n_statuses;
  const char *retry_after; /* sent with 429 and 503 when set */
  int delay_ms;            /* wait before answering */
  size_t big_body;         /* bytes of body to send with the answer */
  bool stall;              /* announce 4x big_body, send big_body, then hold the connection open */
  pthread_mutex_t mu;
  request reqs[MAX_REQ];
  int n;
} receiver;

static bool header_value(const char *head, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      size_t len = e ? (size_t)(e - v) : strlen(v);
      if (len >= cap) len = cap - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return true;
    }
  }
  return false;
}

static void serve_one(receiver *r, int c) {
  char buf[16384];
  size_t len = 0;
  char *end = NULL;
  while (len < sizeof buf - 1 && (end = strstr(buf, "\r\n\r\n")) == NULL) {
    struct pollfd p = {.fd = c, .events = POLLIN};
    if (poll(&p, 1, 2000) <= 0) return;
    ssize_t k = recv(c, buf + len, sizeof buf - 1 - len, 0);
    if (k <= 0) return;
    len += (size_t)k;
    buf[len] = '\0';
  }
  if (end == NULL) return;
  *end = '\0';
  char cl[32] = "0";
  header_value(buf, "Content-Length", cl, sizeof cl);
  size_t want = (size_t)atol(cl), have = len - (size_t)(end + 4 - buf);
  while (have < want && len < sizeof buf - 1) {
    ssize_t k = recv(c, buf + len, sizeof buf - 1 - len, 0);
    if (k <= 0) return;
    len += (size_t)k;
    have += (size_t)k;
  }
  buf[len] = '\0';
  pthread_mutex_lock(&r->mu);
  int i = r->n < MAX_REQ ? r->n++ : MAX_REQ - 1;
  request *q = &r->reqs[i];
  memset(q, 0, sizeof *q);
  header_value(buf, "webhook-id", q->id, sizeof q->id);
  header_value(buf, "webhook-timestamp", q->ts, sizeof q->ts);
  header_value(buf, "webhook-signature", q->sig, sizeof q->sig);
  snprintf(q->body, sizeof q->body, "%.*s", (int)want, end + 4);
  q->at_ms = now_ms();
  int status = r->statuses[i < r->n_statuses ? i : r->n_statuses - 1];
  pthread_mutex_unlock(&r->mu);
  for (int waited = 0; waited < r->delay_ms && !r->stop; waited += 10) usleep(10000);
  char resp[512];
  int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n", status,
                   r->stall ? 4 * r->big_body : r->big_body, r->retry_after && (status == 429 || status == 503) ? "Retry-After: " : "",
                   r->retry_after && (status == 429 || status == 503) ? r->retry_after : "",
                   r->retry_after && (status == 429 || status == 503) ? "\r\n" : "");
  send(c, resp, (size_t)n, MSG_NOSIGNAL);
  static char junk[65536];
  for (size_t sent = 0; sent < r->big_body;) {
    size_t k = r->big_body - sent < sizeof junk ? r->big_body - sent : sizeof junk;
    ssize_t s = send(c, junk, k, MSG_NOSIGNAL);
    if (s <= 0) break;
    sent += (size_t)s;
  }
  while (r->stall && !r->stop) { /* until the client hangs up (or the test ends) */
    struct pollfd p = {.fd = c, .events = POLLIN};
    if (poll(&p, 1, 20) > 0) break;
  }
}

static void *receiver_main(void *arg) {
  receiver *r = arg;
  while (!r->stop) {
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0) continue;
    int c = accept(r->fd, NULL, NULL);
    if (c < 0) continue;
    serve_one(r, c);
    close(c);
  }
  return NULL;
}

static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  *port = ntohs(a.sin_port);
  return fd;
}

static void receiver_start(receiver *r) {
  r->fd = listen_any(&r->port);
  assert_int_equal(listen(r->fd, 64), 0);
  pthread_mutex_init(&r->mu, NULL);
  assert_int_equal(pthread_create(&r->thread, NULL, receiver_main, r), 0);
}

static void receiver_stop(receiver *r) {
  r->stop = true;
  pthread_join(r->thread, NULL);
  close(r->fd);
  pthread_mutex_destroy(&r->mu);
}

/* ------------------------------------------------------------ outcomes */

typedef struct outcome {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  bool delivered;
  int attempts;
  char msg_id[300], error[200];
  int64_t at_ms;
} outcome;

static void outcome_init(outcome *o) {
  memset(o, 0, sizeof *o);
  pthread_mutex_init(&o->mu, NULL);
  pthread_cond_init(&o->cv, NULL);
}

static void on_result(void *ctx, const char *msg_id, bool delivered, int attempts, const char *last_error) {
  outcome *o = ctx;
  pthread_mutex_lock(&o->mu);
  o->done++;
  o->delivered = delivered;
  o->attempts = attempts;
  snprintf(o->msg_id, sizeof o->msg_id, "%s", msg_id);
  snprintf(o->error, sizeof o->error, "%s", last_error ? last_error : "");
  o->at_ms = now_ms();
  pthread_cond_broadcast(&o->cv);
  pthread_mutex_unlock(&o->mu);
}

/* Waits (up to 30 s: a loaded machine, not a timing test) for the outcome. */
static void outcome_wait(outcome *o) {
  int64_t until = now_ms() + 30000;
  pthread_mutex_lock(&o->mu);
  while (o->done == 0 && now_ms() < until) {
    pthread_mutex_unlock(&o->mu);
    usleep(5000);
    pthread_mutex_lock(&o->mu);
  }
  pthread_mutex_unlock(&o->mu);
  assert_int_equal(o->done, 1);
}

static void outcome_fini(outcome *o) {
  pthread_mutex_destroy(&o->mu);
  pthread_cond_destroy(&o->cv);
}

static webhooks *make(int64_t window_ms, int timeout_ms, int backoff_ms) {
  webhook_options o;
  webhook_options_default(&o);
  o.secret = SPEC_SECRET;
  o.retry_window_ms = window_ms;
  o.timeout_ms = timeout_ms;
  o.initial_backoff_ms = backoff_ms;
  o.max_backoff_ms = backoff_ms * 4;
  webhooks *w = NULL;
  inferd_status st = webhooks_create(&o, &w);
  assert_int_equal(st.code, INFERD_OK);
  return w;
}

static void url_of(const receiver *r, char *buf, size_t cap) { snprintf(buf, cap, "http://127.0.0.1:%d/hook", r->port); }

/* The receiver's own check: HMAC-SHA256 through OpenSSL's one-shot HMAC(), with the key decoded
 * by OpenSSL's base64, not through the module's code. */
static bool verify(const request *q) {
  unsigned char key[64];
  int kl = EVP_DecodeBlock(key, (const unsigned char *)"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32);
  assert_int_equal(kl, 24);
  char content[8192];
  int n = snprintf(content, sizeof content, "%s.%s.%s", q->id, q->ts, q->body);
  unsigned char mac[32];
  unsigned int ml = 0;
  HMAC(EVP_sha256(), key, 24, (unsigned char *)content, (size_t)n, mac, &ml);
  char b64[64] = "v1,";
  EVP_EncodeBlock((unsigned char *)b64 + 3, mac, (int)ml);
  return strcmp(b64, q->sig) == 0;
}

/* One delivery, start to end: d->r (scripted by the test) is started, webhooks made with these
 * options send payload to it as msg_id, and once the outcome is in d->o the counters are read
 * into d->c, the webhooks destroyed and the receiver stopped (what it got stays in d->r.reqs). */
typedef struct delivery {
  receiver r;
  outcome o;
  webhook_counters c;
  int64_t sent_ms;  /* now_ms() just before the send */
  int64_t sent_s;   /* and time() */
} delivery;

static void deliver(delivery *d, int64_t window_ms, int timeout_ms, int backoff_ms, const char *msg_id,
                    const char *payload) {
  receiver_start(&d->r);
  webhooks *w = make(window_ms, timeout_ms, backoff_ms);
  char url[128];
  url_of(&d->r, url, sizeof url);
  outcome_init(&d->o);
  d->sent_ms = now_ms();
  d->sent_s = (int64_t)time(NULL);
  assert_int_equal(webhooks_send(w, url, msg_id, payload, on_result, &d->o).code, INFERD_OK);
  outcome_wait(&d->o);
  webhooks_counters(w, &d->c);
  webhooks_destroy(w);
  receiver_stop(&d->r);
  outcome_fini(&d->o); /* its fields stay readable: the one callback has run */
}

static void test_signed_delivery(void **state) {
  (void)state;
  delivery d = {.r = {.statuses = {200}, .n_statuses = 1}};
  const char *payload = "{\"type\":\"batch.completed\",\"data\":{\"batch_id\":\"b_1\"}}";
  deliver(&d, 60000, 5000, 10, "msg_one", payload);
  assert_true(d.o.delivered);
  assert_int_equal(d.o.attempts, 1);
  assert_string_equal(d.o.msg_id, "msg_one");
  assert_int_equal(d.r.n, 1);
  assert_string_equal(d.r.reqs[0].id, "msg_one");
  assert_string_equal(d.r.reqs[0].body, payload);
  int64_t ts = atoll(d.r.reqs[0].ts);
  assert_true(ts >= d.sent_s - 1 && ts <= (int64_t)time(NULL) + 1);
  assert_true(verify(&d.r.reqs[0]));
  /* and a tampered body would not verify */
  request bad = d.r.reqs[0];
  bad.body[5] ^= 1;
  assert_false(verify(&bad));
  assert_int_equal(d.c.delivered, 1);
  assert_int_equal(d.c.failed, 0);
  assert_int_equal(d.c.retries, 0);
}

static void test_500_twice_then_200(void **state) {
  (void)state;
  delivery d = {.r = {.statuses = {500, 500, 200}, .n_statuses = 3}};
  deliver(&d, 60000, 5000, 20, "msg_retry", "{\"a\":1}");
  assert_true(d.o.delivered);
  assert_int_equal(d.o.attempts, 3);
  assert_int_equal(d.r.n, 3);
  /* every attempt carries the same id, and its own valid signature */
  for (int i = 0; i < 3; i++) {
    assert_string_equal(d.r.reqs[i].id, "msg_retry");
    assert_true(verify(&d.r.reqs[i]));
  }
  assert_int_equal(d.c.delivered, 1);
  assert_int_equal(d.c.retries, 2);
}

static void test_always_500_window_ends(void **state) {
  (void)state;
  delivery d = {.r = {.statuses = {500}, .n_statuses = 1}};
  deliver(&d, 600, 2000, 20, "msg_fail", "{}");
  assert_false(d.o.delivered);
  assert_string_equal(d.o.error, "HTTP 500");
  assert_true(d.o.attempts >= 2);
  assert_int_equal(d.o.attempts, d.r.n); /* every attempt counted reached the receiver */
  assert_true(d.o.at_ms - d.sent_ms >= 600); /* it kept trying until the window was over */
  assert_int_equal(d.c.failed, 1);
  assert_int_equal(d.c.retries, (uint64_t)d.o.attempts - 1);
}

static void test_4xx_fails_at_once(void **state) {
  (void)state;
  delivery d = {.r = {.statuses = {404}, .n_statuses = 1}};
  deliver(&d, 60000, 2000, 20, "msg_404", "{}");
  assert_false(d.o.delivered);
  assert_int_equal(d.o.attempts, 1);
  assert_string_equal(d.o.error, "HTTP 404");
}

static void test_429_retry_after(void **state) {
  (void)state;
  delivery d = {.r = {.statuses = {429, 200}, .n_statuses = 2, .retry_after = "1"}};
  deliver(&d, 60000, 5000, 10, "msg_429", "{}"); /* a backoff of at most 10 ms: the wait is Retry-After's */
  assert_true(d.o.delivered);
  assert_int_equal(d.o.attempts, 2);
  assert_true(d.r.reqs[1].at_ms - d.r.reqs[0].at_ms >= 950);

  /* a Retry-After past the window ends the delivery at the first answer */
  delivery d2 = {.r = {.statuses = {503}, .n_statuses = 1, .retry_after = "3600"}};
  deliver(&d2, 60000, 5000, 10, "msg_503", "{}");
  assert_false(d2.o.delivered);
  assert_int_equal(d2.o.attempts, 1);
  assert_non_null(strstr(d2.o.error, "Retry-After"));
}

static void test_connection_refused_retried(void **state) {
  (void)state;
  int port;
  int fd = listen_any(&port); /* bound, never listening: connections to it are refused */
  webhooks *w = make(500, 2000, 20);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
  outcome o;
  outcome_init(&o);
  assert_int_equal(webhooks_send(w, url, "msg_refused", "{}", on_result, &o).code, INFERD_OK);
  outcome_wait(&o);
  close(fd);
  assert_false(o.delivered);
  assert_true(o.attempts >= 2);
  assert_string_equal(o.error, "connection refused or unreachable");
  webhooks_destroy(w);
  outcome_fini(&o);
}

static void test_slow_receiver_times_out(void **state) {
  (void)state;
  delivery d = {.r = {.statuses = {200}, .n_statuses = 1, .delay_ms = 3000}};
  deliver(&d, 100, 200, 1000, "msg_slow", "{}"); /* one attempt: the window is over when it times out */
  assert_false(d.o.delivered);
  assert_int_equal(d.o.attempts, 1);
  assert_string_equal(d.o.error, "timed out after 200 ms");
  assert_true(d.o.at_ms - d.sent_ms >= 190 && d.o.at_ms - d.sent_ms < 3000); /* not waiting for the receiver's answer */
}

static void test_big_response_is_cut(void **state) {
  (void)state;
  /* 1 MiB of an announced 4, then nothing: only a reader that stops at its bound gets past it
   * without waiting for the timeout */
  delivery d = {.r = {.statuses = {200}, .n_statuses = 1, .big_body = 1 << 20, .stall = true}};
  deliver(&d, 60000, 20000, 20, "msg_big", "{}");
  assert_true(d.o.delivered); /* the status said 200; the body was cut at 64 KiB */
  assert_int_equal(d.o.attempts, 1);
  assert_string_equal(d.o.error, "");
}

static void test_refusals_and_shutdown(void **state) {
  (void)state;
  webhook_options opt;
  webhook_options_default(&opt);
  opt.max_queued = 3;
  opt.retry_window_ms = 600000;
  opt.initial_backoff_ms = 60000; /* they wait between retries when destroy comes */
  opt.timeout_ms = 1000;
  webhooks *w = NULL;
  assert_int_equal(webhooks_create(&opt, &w).code, INFERD_OK);
  assert_false(webhooks_signed(w));
  int port;
  int fd = listen_any(&port);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
  outcome o[3];
  for (int i = 0; i < 3; i++) {
    outcome_init(&o[i]);
    assert_int_equal(webhooks_send(w, url, "msg_q", "{}", on_result, &o[i]).code, INFERD_OK);
  }
  outcome extra;
  outcome_init(&extra);
  inferd_status st = webhooks_send(w, url, "msg_q", "{}", on_result, &extra);
  assert_int_equal(st.code, INFERD_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(st.msg, "queue is full"));
  assert_int_equal(webhooks_send(w, "gopher://x/", "m", "{}", on_result, &extra).code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhooks_send(w, url, "has.dot", "{}", on_result, &extra).code, INFERD_INVALID_ARGUMENT);
  assert_int_equal(webhooks_send(w, url, "", "{}", on_result, &extra).code, INFERD_INVALID_ARGUMENT);
  webhook_counters c;
  webhooks_counters(w, &c);
  assert_int_equal(c.refused, 1);
  assert_int_equal(c.held, 3);
  char *m = NULL;
  size_t ml = 0;
  FILE *f = open_memstream(&m, &ml);
  webhooks_metrics_write(w, f);
  fclose(f);
  assert_non_null(strstr(m, "inferd_webhook_refused_total 1\n"));
  assert_non_null(strstr(m, "inferd_webhook_queued 3\n"));
  free(m);
  webhooks_stop(w); /* every held delivery ends now, once, as not delivered */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(o[i].done, 1);
    assert_false(o[i].delivered);
    assert_string_equal(o[i].error, "shutting down");
    outcome_fini(&o[i]);
  }
  /* stopped: refused, the counters still readable, until destroy */
  assert_int_equal(webhooks_send(w, url, "msg_late", "{}", on_result, &extra).code, INFERD_UNAVAILABLE);
  webhooks_counters(w, &c);
  assert_int_equal(c.failed, 3);
  assert_int_equal(c.held, 0);
  webhooks_stop(w);
  webhooks_destroy(w);
  assert_int_equal(extra.done, 0);
  outcome_fini(&extra);
  close(fd);
}

static void test_create_rejects(void **state) {
  (void)state;
  webhook_options o;
  webhook_options_default(&o);
  webhooks *w = NULL;
  o.secret = "whsec_tooshort";
  inferd_status st = webhooks_create(&o, &w);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_null(strstr(st.msg, "tooshort"));
  o.secret = NULL;
  o.secret_file = "/nonexistent/secret";
  st = webhooks_create(&o, &w);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  assert_non_null(strstr(st.msg, "--webhook-secret-file"));
  /* a file with the secret and a newline after it */
  char path[] = "/tmp/webhook_secret_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, SPEC_SECRET "\n", sizeof SPEC_SECRET), (ssize_t)sizeof SPEC_SECRET);
  close(fd);
  o.secret_file = path;
  st = webhooks_create(&o, &w);
  assert_int_equal(st.code, INFERD_OK);
  assert_true(webhooks_signed(w));
  webhooks_destroy(w);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sign_spec_vector),     cmocka_unit_test(test_secret_rejects),
      cmocka_unit_test(test_backoff_schedule),     cmocka_unit_test(test_retry_decision),
      cmocka_unit_test(test_url_check),            cmocka_unit_test(test_signed_delivery),
      cmocka_unit_test(test_500_twice_then_200),   cmocka_unit_test(test_always_500_window_ends),
      cmocka_unit_test(test_4xx_fails_at_once),    cmocka_unit_test(test_429_retry_after),
      cmocka_unit_test(test_connection_refused_retried), cmocka_unit_test(test_slow_receiver_times_out),
      cmocka_unit_test(test_big_response_is_cut),  cmocka_unit_test(test_refusals_and_shutdown),
      cmocka_unit_test(test_create_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
