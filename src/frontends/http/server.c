#include "frontends/http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frontends/http/routes.h"
#include "util/log.h"

struct http_loop {
  http_server *srv;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound; /* our listening socket, owned by evhttp */
  struct event *wake;        /* activated by workers: replies are waiting */
  struct event *stop_accept; /* activated by the main thread on drain */
  pthread_t thread;
  pthread_mutex_t mu;
  http_call *done_head; /* replies posted from other threads */
  uint64_t rng;         /* request ids */
};

struct http_server {
  http_options opts;
  app *app;
  int port;
  http_loop *loops;
  int n_loops;
  atomic_long in_flight;
};

static uint64_t next_random(uint64_t *s) { /* xorshift64*: ids need uniqueness, not secrecy */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1DULL;
}

const char *http_call_header(http_call *c, const char *name) {
  return evhttp_find_header(evhttp_request_get_input_headers(c->req), name);
}

const char *http_call_body(http_call *c, size_t *len) {
  struct evbuffer *b = evhttp_request_get_input_buffer(c->req);
  *len = evbuffer_get_length(b);
  const char *p = (const char *)evbuffer_pullup(b, -1);
  return p ? p : "";
}

static void call_free(http_call *c) {
  if (c->body) evbuffer_free(c->body);
  free(c->path);
  free(c);
}

void http_call_reply(http_call *c) {
  struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
  evhttp_add_header(h, "Content-Type", c->content_type ? c->content_type : "application/json");
  evhttp_add_header(h, "X-Request-ID", c->request_id);
  if (c->header_len >= 0) {
    char n[32];
    snprintf(n, sizeof n, "%lld", c->header_len);
    evhttp_add_header(h, "Inference-Header-Content-Length", n);
  }
  if (atomic_load(&c->app->draining)) evhttp_add_header(h, "Connection", "close");
  size_t out = c->body ? evbuffer_get_length(c->body) : 0;
  access_record r = {
      .request_id = c->request_id,
      .method = c->method,
      .path = c->path,
      .model = c->model[0] ? c->model : NULL,
      .version = c->version[0] ? c->version : NULL,
      .status = c->status,
      .latency_us = (monotonic_ns() - c->start_ns) / 1000,
      .bytes_in = c->bytes_in,
      .bytes_out = out,
  };
  /* evhttp knows only a few reason phrases; it picks its own when given NULL */
  evhttp_send_reply(c->req, c->status, NULL, c->body);
  log_access(&r);
  atomic_fetch_sub(&c->srv->in_flight, 1);
  call_free(c);
}

void http_call_reply_async(http_call *c) {
  http_loop *l = c->loop;
  pthread_mutex_lock(&l->mu);
  c->next_done = l->done_head;
  l->done_head = c;
  pthread_mutex_unlock(&l->mu);
  event_active(l->wake, EV_READ, 0);
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
    http_call_reply(c);
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

void http_call_set_error(http_call *c, const inferd_status *st) {
  if (st->code == INFERD_RESOURCE_EXHAUSTED)
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", "1");
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

static const char *method_name(enum evhttp_cmd_type t) {
  switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
  }
}

/* A client's id is kept when it is short, printable and has no quote or backslash. */
static bool usable_request_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 128) return false;
  for (const char *p = id; *p; p++)
    if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\') return false;
  return true;
}

static void on_request(struct evhttp_request *req, void *arg) {
  http_loop *l = arg;
  http_call *c = calloc(1, sizeof *c);
  if (c == NULL) {
    evhttp_send_error(req, 503, "Out of memory");
    return;
  }
  atomic_fetch_add(&l->srv->in_flight, 1);
  c->req = req;
  c->loop = l;
  c->srv = l->srv;
  c->app = l->srv->app;
  c->start_ns = monotonic_ns();
  c->header_len = -1;
  c->status = 200;
  snprintf(c->method, sizeof c->method, "%s", method_name(evhttp_request_get_command(req)));
  c->bytes_in = evbuffer_get_length(evhttp_request_get_input_buffer(req));
  const char *uri = evhttp_request_get_uri(req);
  size_t plen = strcspn(uri, "?#");
  c->path = strndup(uri, plen);
  const char *rid = http_call_header(c, "X-Request-ID");
  if (rid && usable_request_id(rid)) {
    snprintf(c->request_id, sizeof c->request_id, "%s", rid);
  } else {
    uint64_t a = next_random(&l->rng), b = next_random(&l->rng);
    snprintf(c->request_id, sizeof c->request_id, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
  }
  if (c->path == NULL) {
    inferd_status st = status_make(INFERD_INTERNAL, "out of memory");
    http_call_reply_error(c, &st);
    return;
  }

  http_routes_dispatch(c);
}

static void on_stop_accept(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_loop *l = arg;
  if (l->bound) evhttp_del_accept_socket(l->http, l->bound);
  l->bound = NULL;
}

static void *loop_main(void *arg) {
  http_loop *l = arg;
  event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

static inferd_status bind_loop(http_server *s, http_loop *l, struct sockaddr_storage *addr, socklen_t alen) {
  struct evconnlistener *lis = evconnlistener_new_bind(
      l->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC,
      1024, (struct sockaddr *)addr, (int)alen);
  if (lis == NULL)
    return status_make(INFERD_UNAVAILABLE, "cannot listen on %s:%d: %s", s->opts.host, s->port, strerror(errno));
  l->bound = evhttp_bind_listener(l->http, lis);
  if (l->bound == NULL) {
    evconnlistener_free(lis);
    return status_make(INFERD_INTERNAL, "cannot attach the HTTP listener");
  }
  if (s->port == 0) { /* an ephemeral port: the other loops share the one the first got */
    struct sockaddr_storage got;
    socklen_t glen = sizeof got;
    getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&got, &glen);
    s->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                              : ((struct sockaddr_in *)&got)->sin_port);
    if (addr->ss_family == AF_INET6)
      ((struct sockaddr_in6 *)addr)->sin6_port = htons((uint16_t)s->port);
    else
      ((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)s->port);
  }
  return status_ok();
}

static inferd_status init_loop(http_server *s, http_loop *l) {
  l->srv = s;
  pthread_mutex_init(&l->mu, NULL);
  if (getrandom(&l->rng, sizeof l->rng, 0) != sizeof l->rng || l->rng == 0)
    l->rng = (uint64_t)monotonic_ns() | 1;
  l->base = event_base_new();
  if (l->base == NULL) return status_make(INFERD_INTERNAL, "cannot create an event loop");
  l->http = evhttp_new(l->base);
  l->wake = event_new(l->base, -1, 0, on_wake, l);
  l->stop_accept = event_new(l->base, -1, 0, on_stop_accept, l);
  if (!l->http || !l->wake || !l->stop_accept) return status_make(INFERD_INTERNAL, "out of memory");
  /* our own handler answers every method, so a wrong one gets a JSON 405 */
  evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  /* evhttp refuses a Content-Length over the limit before reading the body (413) */
  evhttp_set_max_body_size(l->http, (ev_ssize_t)s->opts.max_body_bytes);
  evhttp_set_max_headers_size(l->http, 64 * 1024);
  evhttp_set_timeout(l->http, 120);
  evhttp_set_gencb(l->http, on_request, l);
  return status_ok();
}

inferd_status http_server_create(const http_options *opts, app *a, http_server **out) {
  static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
  pthread_once(&threads_once, (void (*)(void))evthread_use_pthreads);
  http_server *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  s->opts = *opts;
  s->app = a;
  s->port = opts->port;
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
  for (int i = 0; i < s->n_loops && status_is_ok(&st); i++) {
    st = init_loop(s, &s->loops[i]);
    if (status_is_ok(&st)) st = bind_loop(s, &s->loops[i], &addr, alen);
  }
  for (int i = 0; i < s->n_loops && status_is_ok(&st); i++) {
    if (pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]) != 0)
      st = status_make(INFERD_INTERNAL, "cannot start an HTTP thread");
  }
  if (!status_is_ok(&st)) {
    http_server_destroy(s);
    return st;
  }
  *out = s;
  return st;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_drain(http_server *s) {
  for (int i = 0; i < s->n_loops; i++) event_active(s->loops[i].stop_accept, EV_READ, 0);
  int64_t until = monotonic_ns() + (int64_t)s->opts.drain_timeout_ms * 1000000;
  while (atomic_load(&s->in_flight) > 0 && monotonic_ns() < until) usleep(5000);
  long left = atomic_load(&s->in_flight);
  if (left > 0) log_msg(LOG_WARN, NULL, "drain timeout: %ld requests still in flight", left);
}

void http_server_destroy(http_server *s) {
  if (s == NULL) return;
  for (int i = 0; i < s->n_loops; i++) {
    http_loop *l = &s->loops[i];
    if (l->thread) {
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
      call_free(c);
    }
    if (l->wake) event_free(l->wake);
    if (l->stop_accept) event_free(l->stop_accept);
    if (l->http) evhttp_free(l->http);
    if (l->base) event_base_free(l->base);
    pthread_mutex_destroy(&l->mu);
  }
  free(s->loops);
  free(s);
}
