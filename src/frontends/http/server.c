/* The HTTP frontend's loops, listeners and request lifecycle (server.h); the wire format is
 * conn.c. */
#include "frontends/http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frontends/http/http_compress.h"
#include "frontends/http/routes.h"
#include "frontends/http/server_internal.h"
#include "core/principal.h"
#include "security/auth.h"
#include "observability/metrics.h"
#include "util/log.h"
#include "util/monotime.h"

/* Whether a request header is the one named by the literal lit (any case), its length first. */
#define header_is(h, lit) ((h)->name_len == sizeof(lit) - 1 && strcasecmp((h)->name, (lit)) == 0)

const char *http_call_header(http_call *c, const char *name) {
  /* the lengths and first letters (case-folded) first: most headers differ there (X-API-Key
   * and X-Request-Id share a letter, not a length), and a lookup runs for each credential and
   * stage on every request */
  size_t len = strlen(name);
  unsigned char first = (unsigned char)(name[0] | 0x20);
  for (int i = 0; i < c->n_headers; i++)
    if (c->headers[i].name_len == len && (unsigned char)(c->headers[i].name[0] | 0x20) == first &&
        strcasecmp(c->headers[i].name, name) == 0)
      return c->headers[i].value;
  return NULL;
}

void http_call_add_reply_header(http_call *c, const char *name, const char *value) {
  if (c->n_reply_headers == HTTP_MAX_REPLY_HEADERS) return;
  c->reply_headers[c->n_reply_headers].name = strdup(name);
  c->reply_headers[c->n_reply_headers].value = strdup(value);
  c->n_reply_headers++;
}

static const char *call_meta(void *ctx, const char *name) { return http_call_header(ctx, name); }

void http_call_serve_init(http_call *c, serve_request *sr) {
  sr->start_ns = c->start_ns;
  sr->cancelled = &c->client_gone;
  sr->meta = call_meta;
  sr->meta_ctx = c;
  sr->reply_headers = &c->stage_headers;
  sr->principal = c->principal;
  sr->request_id = c->request_id;
  sr->trace_id = c->trace_id;
  sr->protocol = SERVE_PROTOCOL_HTTP;
  sr->record = &c->record;
}

const char *http_call_body(http_call *c, size_t *len) {
  *len = evbuffer_get_length(c->request_body);
  const char *p = (const char *)evbuffer_pullup(c->request_body, -1);
  return p ? p : "";
}

void http_call_free(http_call *c) {
  if (c->sink.release) c->sink.release(c->sink.ctx);
  if (c->body) evbuffer_free(c->body);
  if (c->request_body) evbuffer_free(c->request_body);
  free(c->header_block);
  for (int i = 0; i < c->n_reply_headers; i++) {
    free(c->reply_headers[i].name);
    free(c->reply_headers[i].value);
  }
  principal_unref(c->principal);
  free(c->target);
  free(c->path);
  free(c);
}

static void flush_access_log(http_loop *l) {
  size_t n = evbuffer_get_length(l->access_log);
  if (n == 0) return;
  log_write_lines((const char *)evbuffer_pullup(l->access_log, -1), n);
  evbuffer_drain(l->access_log, n);
}

static void on_log_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  flush_access_log(arg);
}

/* gzip for a reply the client accepts it for (Accept-Encoding, every such header) when it is
 * at least HTTP_COMPRESS_MIN_BYTES, and only when that makes it smaller. Runs on the thread
 * that finished the reply: for inference a worker, so the I/O loops only write bytes. Binary
 * tensor replies are compressed as a whole, as Triton does: Inference-Header-Content-Length
 * is the JSON part's length in the decoded body. */
static void encode_reply(http_call *c) {
  size_t len = c->body ? evbuffer_get_length(c->body) : 0;
  /* both headers must fit, or a gzip body could go out without its Content-Encoding */
  if (len < HTTP_COMPRESS_MIN_BYTES || c->n_reply_headers > HTTP_MAX_REPLY_HEADERS - 2) return;
  for (int i = 0; i < c->n_reply_headers; i++) /* already encoded */
    if (strcasecmp(c->reply_headers[i].name, "Content-Encoding") == 0) return;
  http_call_add_reply_header(c, "Vary", "Accept-Encoding"); /* caches: this reply depends on it */
  http_accept_encoding acc;
  http_accept_encoding_init(&acc);
  for (int i = 0; i < c->n_headers; i++)
    if (header_is(&c->headers[i], "Accept-Encoding")) http_accept_encoding_scan(&acc, c->headers[i].value);
  if (!http_accept_encoding_gzip(&acc)) return;
  struct evbuffer *gz = evbuffer_new();
  if (gz == NULL) return; /* sent as it is */
  inferd_status st = http_gzip_encode(c->body, gz, HTTP_COMPRESS_LEVEL);
  if (!status_is_ok(&st) || evbuffer_get_length(gz) >= len) { /* random tensor data does not shrink */
    evbuffer_free(gz);
    return;
  }
  evbuffer_free(c->body);
  c->body = gz;
  http_call_add_reply_header(c, "Content-Encoding", "gzip");
}

/* Decodes a body sent with Content-Encoding before any route sees it; the decoded size counts
 * against --max-body-bytes. Runs on the loop thread, like the JSON parsing that follows. */
static inferd_status decode_request_body(http_call *c) {
  /* no content, nothing coded: a client that sets the header on every request (GETs too) is
   * not refused for it */
  if (evbuffer_get_length(c->request_body) == 0) return status_ok();
  const char *ce = NULL;
  for (int i = 0; i < c->n_headers; i++)
    if (header_is(&c->headers[i], "Content-Encoding")) {
      if (ce) return status_make(INFERD_UNSUPPORTED_MEDIA, "Content-Encoding is given twice: send one coding, gzip or deflate");
      ce = c->headers[i].value;
    }
  if (ce == NULL) return status_ok();
  http_coding coding;
  TRY(http_content_coding_parse(ce, &coding));
  if (coding == HTTP_CODING_IDENTITY) return status_ok();
  struct evbuffer *plain = evbuffer_new();
  if (plain == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = http_body_decode(coding, c->request_body, plain, c->srv->opts.max_body_bytes, "--max-body-bytes");
  if (!status_is_ok(&st)) {
    evbuffer_free(plain);
    return st;
  }
  evbuffer_free(c->request_body);
  c->request_body = plain;
  return status_ok();
}

/* The access log line and the reply metrics of a call being answered; loop thread. Plain
 * replies and streams (conn.c, at their end) both come here. */
void http_call_log_reply(http_call *c, int status, size_t bytes_out) {
  int64_t now = monotime_ns();
  access_record r = {
      .request_id = c->request_id,
      .trace_id = c->trace_id[0] ? c->trace_id : NULL,
      .method = c->method,
      .path = c->path ? c->path : "-",
      .model = c->model[0] ? c->model : NULL,
      .version = c->version[0] ? c->version : NULL,
      .principal = c->principal ? c->principal->name : NULL,
      .status = status,
      .latency_us = (now - c->start_ns) / 1000,
      .bytes_in = c->bytes_in,
      .bytes_out = bytes_out,
      .arm = c->record.arm,
      .timed = c->record.done_ns != 0,
      .queue_us = c->record.queue_ns / 1000,
      .compute_us = c->record.compute_ns / 1000,
      .has_usage = c->has_usage,
      .prompt_tokens = c->prompt_tokens,
      .completion_tokens = c->completion_tokens,
  };
  metrics_observe_reply(c->app->metrics, SERVE_PROTOCOL_HTTP, &c->record, status, c->start_ns, now, r.bytes_in,
                        r.bytes_out);
  char line[LOG_ACCESS_LINE_MAX];
  evbuffer_add(c->loop->access_log, line, log_access_format(&r, line, sizeof line));
  if (evbuffer_get_length(c->loop->access_log) > LOG_ACCESS_FLUSH_BYTES) flush_access_log(c->loop);
}

/* Sends a reply already encoded, on the loop thread. */
static void send_reply(http_call *c) {
  if (atomic_load(&c->app->draining)) c->close_after = true;
  http_call_log_reply(c, c->status, c->body ? evbuffer_get_length(c->body) : 0);
  http_server *srv = c->srv;
  http_conn_send_reply(c); /* frees c */
  atomic_fetch_sub(&srv->in_flight, 1);
}

void http_call_reply(http_call *c) {
  encode_reply(c);
  send_reply(c);
}

void http_call_reply_async(http_call *c) {
  encode_reply(c); /* here, on the worker, rather than on the loop */
  http_loop *l = c->loop;
  pthread_mutex_lock(&l->mu);
  bool first = l->done_head == NULL;
  c->next_done = l->done_head;
  l->done_head = c;
  pthread_mutex_unlock(&l->mu);
  /* One wake-up (a write to the loop's notify fd) serves every reply queued before the loop
   * takes the list: a batch's replies for one loop cost one, not one each. */
  if (first) event_active(l->wake, EV_READ, 0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_loop *l = arg;
  pthread_mutex_lock(&l->mu);
  http_call *c = l->done_head;
  l->done_head = NULL;
  pthread_mutex_unlock(&l->mu);
  while (c) {
    http_call *next = c->next_done;
    send_reply(c);
    c = next;
  }
}

static int dump_to_evbuffer(const char *buf, size_t size, void *data) {
  return evbuffer_add(data, buf, size);
}

void http_call_set_json(http_call *c, int status, json_t *doc) {
  if (c->body == NULL)
    c->body = evbuffer_new();
  else
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
  json_dump_callback(doc, dump_to_evbuffer, c->body, JSON_COMPACT | JSON_REAL_PRECISION(9));
  json_decref(doc);
  c->status = status;
  c->content_type = "application/json";
  c->header_len = -1;
}

static bool has_reply_header(const http_call *c, const char *name) {
  for (int i = 0; i < c->n_reply_headers; i++)
    if (strcasecmp(c->reply_headers[i].name, name) == 0) return true;
  return false;
}

void http_call_set_error(http_call *c, const inferd_status *st) {
  if (st->code == INFERD_RESOURCE_EXHAUSTED) http_call_add_reply_header(c, "Retry-After", "1");
  /* RFC 9110 11.6.1: every 401 says how to authenticate (the dispatch adds the precise one) */
  if (st->code == INFERD_UNAUTHENTICATED && !has_reply_header(c, "WWW-Authenticate"))
    http_call_add_reply_header(c, "WWW-Authenticate", auth_challenge(true));
  http_call_set_json(c, status_http_code(st->code), json_pack("{ss}", "error", st->msg));
}

void http_call_reply_json(http_call *c, int status, json_t *doc) {
  http_call_set_json(c, status, doc);
  http_call_reply(c);
}

void http_call_reply_error(http_call *c, const inferd_status *st) {
  http_call_set_error(c, st);
  http_call_reply(c);
}

void http_server_handle(http_call *c) {
  http_loop *l = c->loop;
  atomic_fetch_add(&l->srv->in_flight, 1);
  const char *rid = http_call_header(c, "X-Request-ID");
  if (rid && request_id_usable(rid))
    snprintf(c->request_id, sizeof c->request_id, "%s", rid);
  else
    request_id_new(&l->ids, c->request_id, sizeof c->request_id);
  if (c->status != 200) { /* the wire layer already set an error reply */
    http_call_reply(c);
    return;
  }
  inferd_status st = decode_request_body(c);
  if (!status_is_ok(&st)) {
    if (st.code == INFERD_UNSUPPORTED_MEDIA) http_call_add_reply_header(c, "Accept-Encoding", "gzip, deflate"); /* RFC 9110 15.5.16 */
    http_call_reply_error(c, &st);
    return;
  }
  http_routes_dispatch(c);
}

/* Refusals come in floods (a client at the limit retries at once): one log line a second at
 * most, with running totals, instead of one per refusal. */
static void log_refusals(http_server *s, const char *why) {
  int64_t now = monotime_ns(), last = atomic_load(&s->last_refusal_log_ns);
  if (now - last < 1000000000LL || !atomic_compare_exchange_strong(&s->last_refusal_log_ns, &last, now)) return;
  log_msg(LOG_WARN, NULL,
          "%s; so far %ld connections refused at --max-connections %ld and %ld accepts failed (%ld open)", why,
          atomic_load(&s->refused_at_limit), s->opts.max_connections, atomic_load(&s->accept_failures),
          atomic_load(&s->open_conns));
}

/* Past --max-connections: a short 503 and close, so a client learns why rather than hanging. */
static void refuse_connection(http_server *s, evutil_socket_t fd, bool tls) {
  static const char reply[] =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
      "Connection: close\r\nContent-Length: 69\r\n\r\n"
      "{\"error\":\"the server is at its connection limit (--max-connections)\"}";
  _Static_assert(sizeof "{\"error\":\"the server is at its connection limit (--max-connections)\"}" - 1 == 69,
                 "Content-Length of the refusal");
  if (!tls) { /* a TLS client could not read it: it only sees the close */
    ssize_t n = send(fd, reply, sizeof reply - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n; /* best effort: the socket is new, its buffer empty */
  }
  evutil_closesocket(fd);
  atomic_fetch_add(&s->refused_at_limit, 1);
  log_refusals(s, "refusing connections: at --max-connections");
}

static void accept_conn(http_loop *l, evutil_socket_t fd, bool tls) {
  http_server *s = l->srv;
  if (atomic_fetch_add(&s->open_conns, 1) >= s->opts.max_connections) {
    atomic_fetch_sub(&s->open_conns, 1);
    refuse_connection(s, fd, tls);
    return;
  }
  http_conn_accept(l, fd, tls);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *addr, int len, void *arg) {
  (void)lis;
  (void)addr;
  (void)len;
  http_loop *l = arg;
  accept_conn(l, fd, l->srv->opts.tls != NULL);
}

static void on_accept_plain(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *addr, int len, void *arg) {
  (void)lis;
  (void)addr;
  (void)len;
  accept_conn(arg, fd, false);
}

#define ACCEPT_PAUSE_MS 100

/* accept() failed for a reason other than "nothing to accept", typically EMFILE/ENFILE at
 * the descriptor limit. The pending connection stays in the backlog, so the listener would
 * be readable again at once and the loop would spin: pause accepting for a moment instead,
 * and keep serving the connections already open. */
static void on_accept_error(struct evconnlistener *lis, void *arg) {
  http_loop *l = arg;
  int err = EVUTIL_SOCKET_ERROR();
  atomic_fetch_add(&l->srv->accept_failures, 1);
  evconnlistener_disable(lis);
  struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
  event_add(l->resume_accept, &pause);
  char why[160];
  snprintf(why, sizeof why, "cannot accept connections: %s; pausing accepts for %d ms", strerror(err), ACCEPT_PAUSE_MS);
  log_refusals(l->srv, why);
}

static void on_resume_accept(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_loop *l = arg;
  if (l->listener) evconnlistener_enable(l->listener);
  if (l->plain_listener) evconnlistener_enable(l->plain_listener);
}

static void on_stop_accept(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_loop *l = arg;
  event_del(l->resume_accept);
  if (l->listener) evconnlistener_free(l->listener);
  l->listener = NULL;
  if (l->plain_listener) evconnlistener_free(l->plain_listener);
  l->plain_listener = NULL;
}

static void *loop_main(void *arg) {
  http_loop *l = arg;
  event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

/* Binds one loop's listener on *port (0: any; the port got is written back, and into addr, so
 * the other loops share it). */
static inferd_status bind_listener(http_server *s, http_loop *l, struct sockaddr_storage *addr, socklen_t alen, int *port,
                                   evconnlistener_cb cb, struct evconnlistener **out) {
  if (addr->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)addr)->sin6_port = htons((uint16_t)*port);
  else
    ((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)*port);
  struct evconnlistener *lis = evconnlistener_new_bind(
      l->base, cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC,
      1024, (struct sockaddr *)addr, (int)alen);
  if (lis == NULL)
    return status_make(INFERD_UNAVAILABLE, "cannot listen on %s:%d: %s", s->opts.host, *port, strerror(errno));
  *out = lis;
  evconnlistener_set_error_cb(lis, on_accept_error);
  if (*port == 0) { /* an ephemeral port: the other loops share the one the first got */
    struct sockaddr_storage got;
    socklen_t glen = sizeof got;
    getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&got, &glen);
    *port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                            : ((struct sockaddr_in *)&got)->sin_port);
  }
  return status_ok();
}

/* The loops share their port through SO_REUSEPORT, which would also let a second process (another
 * server started on the same port) bind it and silently take a share of the connections: a
 * socket bound without the option first fails with EADDRINUSE when anyone holds the port. */
static inferd_status refuse_taken_port(const http_server *s, struct sockaddr_storage *addr, socklen_t alen, int port) {
  if (port == 0) return status_ok();
  if (addr->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)addr)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)port);
  int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return status_ok(); /* the bind that follows says what is wrong */
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT leftovers are no owner */
  int rc = bind(fd, (struct sockaddr *)addr, alen), err = errno;
  close(fd);
  if (rc != 0 && err == EADDRINUSE)
    return status_make(INFERD_UNAVAILABLE, "cannot listen on %s:%d: the address is already in use", s->opts.host, port);
  return status_ok();
}

static inferd_status bind_loop(http_server *s, http_loop *l, struct sockaddr_storage *addr, socklen_t alen) {
  TRY(bind_listener(s, l, addr, alen, &s->port, on_accept, &l->listener));
  if (s->opts.tls && s->opts.plain_port >= 0)
    TRY(bind_listener(s, l, addr, alen, &s->plain_port, on_accept_plain, &l->plain_listener));
  return status_ok();
}

static inferd_status init_loop(http_server *s, http_loop *l) {
  l->srv = s;
  pthread_mutex_init(&l->mu, NULL);
  request_ids_init(&l->ids);
  l->base = event_base_new();
  if (l->base == NULL) return status_make(INFERD_INTERNAL, "cannot create an event loop");
  struct timeval head = {s->opts.head_timeout_ms / 1000, s->opts.head_timeout_ms % 1000 * 1000},
                 idle = {s->opts.keepalive_timeout_ms / 1000, s->opts.keepalive_timeout_ms % 1000 * 1000},
                 send = {s->opts.send_timeout_ms / 1000, s->opts.send_timeout_ms % 1000 * 1000};
  l->head_tv = event_base_init_common_timeout(l->base, &head);
  l->idle_tv = event_base_init_common_timeout(l->base, &idle);
  l->send_tv = event_base_init_common_timeout(l->base, &send);
  l->wake = event_new(l->base, -1, 0, on_wake, l);
  l->stop_accept = event_new(l->base, -1, 0, on_stop_accept, l);
  l->resume_accept = evtimer_new(l->base, on_resume_accept, l);
  l->access_log = evbuffer_new();
  l->log_flush = event_new(l->base, -1, EV_PERSIST, on_log_flush, l);
  if (!l->head_tv || !l->idle_tv || !l->send_tv || !l->wake || !l->stop_accept || !l->resume_accept || !l->access_log || !l->log_flush)
    return status_make(INFERD_INTERNAL, "out of memory");
  struct timeval every = {0, LOG_ACCESS_FLUSH_MS * 1000};
  event_add(l->log_flush, &every);
  return status_ok();
}

inferd_status http_server_create(const http_options *opts, app *a, http_server **out) {
  static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
  pthread_once(&threads_once, (void (*)(void))evthread_use_pthreads);
  http_server *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  s->opts = *opts;
  /* zero means the default (main.c documents them) */
  if (s->opts.head_timeout_ms <= 0) s->opts.head_timeout_ms = 20000;
  if (s->opts.body_timeout_ms <= 0) s->opts.body_timeout_ms = 30000;
  if (s->opts.keepalive_timeout_ms <= 0) s->opts.keepalive_timeout_ms = 120000;
  if (s->opts.send_timeout_ms <= 0) s->opts.send_timeout_ms = 30000;
  if (s->opts.max_connections <= 0) s->opts.max_connections = 16384;
  s->app = a;
  s->port = opts->port;
  s->plain_port = opts->tls && opts->plain_port > 0 ? opts->plain_port : 0;
  s->test_subject_header = getenv("INFERD_TEST_CLIENT_SUBJECT_HEADER") != NULL;
  s->n_loops = opts->threads > 0 ? opts->threads : 1;
  s->loops = calloc((size_t)s->n_loops, sizeof *s->loops);
  inferd_status st = s->loops ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");

  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  socklen_t alen = 0;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
  if (inet_pton(AF_INET, opts->host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)opts->port);
    alen = sizeof *a4;
  } else if (inet_pton(AF_INET6, opts->host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)opts->port);
    alen = sizeof *a6;
  } else if (strcmp(opts->host, "localhost") == 0) {
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a4->sin_port = htons((uint16_t)opts->port);
    alen = sizeof *a4;
  } else {
    st = status_make(INFERD_INVALID_ARGUMENT, "--host '%s' is not an IPv4 or IPv6 address", opts->host);
  }
  if (status_is_ok(&st)) st = refuse_taken_port(s, &addr, alen, s->port);
  if (status_is_ok(&st) && opts->tls && opts->plain_port > 0) st = refuse_taken_port(s, &addr, alen, opts->plain_port);
  for (int i = 0; i < s->n_loops && status_is_ok(&st); i++) {
    st = init_loop(s, &s->loops[i]);
    if (status_is_ok(&st)) st = bind_loop(s, &s->loops[i], &addr, alen);
  }
  for (int i = 0; i < s->n_loops && status_is_ok(&st); i++) {
    if (pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]) != 0)
      st = status_make(INFERD_INTERNAL, "cannot start an HTTP thread");
    else {
      pthread_setname_np(s->loops[i].thread, "http-loop"); /* names show in top -H and perf */
      s->loops[i].thread_started = true;
    }
  }
  if (!status_is_ok(&st)) {
    http_server_destroy(s);
    return st;
  }
  *out = s;
  return st;
}

int http_server_port(const http_server *s) { return s->port; }
long http_server_open_connections(const http_server *s) { return atomic_load(&((http_server *)s)->open_conns); }

int http_server_plain_port(const http_server *s) { return s->plain_port; }

/* usleep is obsolescent (POSIX.1-2008 removed it) */
static void sleep_us(long us) {
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

void http_server_drain(http_server *s) {
  for (int i = 0; i < s->n_loops; i++) event_active(s->loops[i].stop_accept, EV_READ, 0);
  int64_t until = monotime_ns() + (int64_t)s->opts.drain_timeout_ms * 1000000;
  while (atomic_load(&s->in_flight) > 0 && monotime_ns() < until) sleep_us(5000);
  long left = atomic_load(&s->in_flight);
  if (left > 0) log_msg(LOG_WARN, NULL, "drain timeout: %ld requests still in flight", left);
}

void http_server_destroy(http_server *s) {
  if (s == NULL) return;
  /* Replies posted by the scheduler's shutdown (503 for what was still queued) are sent by the
   * loops, still running: give them a bounded moment to get onto the sockets. */
  int64_t until = monotime_ns() + 2000000000LL;
  while (atomic_load(&s->in_flight) > 0 && monotime_ns() < until) sleep_us(2000);
  sleep_us(20000); /* the last writes leave on the loops' next turn */
  for (int i = 0; i < s->n_loops; i++) {
    http_loop *l = &s->loops[i];
    if (l->thread_started) {
      event_base_loopbreak(l->base);
      pthread_join(l->thread, NULL);
    }
  }
  for (int i = 0; i < s->n_loops; i++) {
    http_loop *l = &s->loops[i];
    /* replies that arrived after the loops stopped: their connections are closing anyway */
    while (l->done_head) {
      http_call *c = l->done_head;
      l->done_head = c->next_done;
      http_conn_drop_call(c);
    }
    http_conn_close_all(l);
    if (l->access_log) {
      flush_access_log(l);
      evbuffer_free(l->access_log);
    }
    if (l->log_flush) event_free(l->log_flush);
    if (l->listener) evconnlistener_free(l->listener);
    if (l->plain_listener) evconnlistener_free(l->plain_listener);
    if (l->wake) event_free(l->wake);
    if (l->stop_accept) event_free(l->stop_accept);
    if (l->resume_accept) event_free(l->resume_accept);
    if (l->base) event_base_free(l->base);
    pthread_mutex_destroy(&l->mu);
  }
  free(s->loops);
  free(s);
}
