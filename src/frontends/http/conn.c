/* HTTP/1.1 on a socket driven by libevent events: parses requests (Content-Length or chunked bodies,
 * keep-alive, pipelining one at a time), refuses an oversized body from its Content-Length
 * before reading it, answers malformed requests with JSON errors, and notices a client that
 * leaves while its request is being answered. With --tls-cert the same connection speaks TLS
 * (OpenSSL on the socket, non-blocking, on the same events): see "TLS" below. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/uio.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "frontends/http/http_parse.h"
#include "frontends/http/server_internal.h"
#include "security/auth.h"
#include "security/tlsconf.h"
#include "util/monotime.h"

_Static_assert(HTTP_MAX_HEADERS >= HTTP_PARSE_MAX_HEADERS, "a parsed head's headers fit in a call");

/* Past this much reply data not yet taken by the client, pipelined requests wait. */
#define OUTPUT_HIGH_WATER (1024 * 1024)

typedef enum { READ_HEAD, READ_BODY, READ_CHUNKED, ANSWERING } conn_state;

/* What the connection's one timer is counting down. */
typedef enum { TIMER_NONE, TIMER_IDLE, TIMER_HEAD, TIMER_BODY, TIMER_SEND } timer_phase;

struct http_conn {
  http_loop *loop;
  /* Our own reads and writes rather than a bufferevent's: it asks the kernel how much is
   * readable (an ioctl) before each read and re-arms write interest (two epoll_ctl) for each
   * reply, and on a virtual machine every system call counts. */
  evutil_socket_t fd;
  struct event *readable; /* persistent */
  struct event *writable; /* added only while a reply is still being written */
  /* a timer, made and running only while reading is paused because a client pipelined more
   * than a head's worth behind a reply still running (a stream): it polls the socket for the
   * client's close or reset, so a client that leaves then is seen within HANGUP_POLL_MS, not
   * when the stream ends. (libevent's EV_CLOSED sees a close but not a reset.) */
  struct event *hangup;
  /* One deadline per phase: idle between requests, the whole head, the body, a closing
   * reply. A deadline, not an idle timeout: bytes trickling in do not push it back. */
  struct event *timer;
  timer_phase phase;
  struct evbuffer *in, *out;
  conn_state state;
  http_call *call;   /* the request being read or answered */
  size_t to_read;    /* Content-Length body bytes still expected */
  size_t head_scan;  /* how far the head has been searched for its end */
  http_chunked chunked;
  int64_t body_start_ns;
  uint64_t body_got;
  bool keep_alive;
  bool http10;       /* the request being answered said HTTP/1.0: a stream cannot be chunked */
  bool closing;      /* close once the output is written */
  bool output_full;  /* pipelined requests wait until the client takes its replies */
  /* process_input is running: a reply given synchronously does not parse the next request
   * itself (thousands of pipelined requests would recurse that deep) but leaves it to the
   * running loop, and a close waits until that loop returns. */
  bool parsing;
  bool dead;
  /* TLS (NULL: plain HTTP). The handshake runs on the same events and under the head deadline
   * set at accept; afterwards SSL_read/SSL_write stand in for read/write. OpenSSL may need the
   * other direction to make progress (a read that must write, a write that must read): the
   * *_wants_* flags route the next readable/writable event back to the operation waiting. */
  SSL *ssl;
  bool handshaking;
  bool peeked;            /* the first bytes were checked for plain HTTP */
  bool tls_broken;        /* a fatal TLS error: no close_notify may follow */
  bool read_wants_write;
  bool write_wants_read;
  /* owned: the verified client certificate's subject (RFC 2253), every call's client_subject;
   * handed over to a call still being answered when the connection goes (conn_free), which
   * frees it then (free_detached) */
  char *subject;
  /* owned: the last credential verified on this connection (security/auth.h), so a keep-alive
   * client's next request skips the digest; wiped and freed with the connection */
  auth_memo *auth_memo;
  http_conn *prev, *next;
};

static void conn_free(http_conn *conn) {
  if (conn->parsing) { /* process_input frees it on its way out */
    conn->dead = true;
    return;
  }
  http_loop *l = conn->loop;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    l->conns = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  if (conn->call) {
    if (conn->state == ANSWERING) { /* the handler still has it; its reply will be dropped */
      atomic_store(&conn->call->client_gone, true);
      conn->call->conn = NULL;
      if (conn->call->client_subject) conn->subject = NULL; /* the call owns it now: free_detached */
    }
    else
      http_call_free(conn->call);
  }
  if (conn->ssl) {
    /* close_notify, one try: a client that reads no more must not hold the loop */
    if (!conn->handshaking && !conn->tls_broken) SSL_shutdown(conn->ssl);
    SSL_free(conn->ssl);
    ERR_clear_error();
  }
  free(conn->subject);
  auth_memo_free(conn->auth_memo);
  event_free(conn->readable);
  event_free(conn->writable);
  if (conn->hangup) event_free(conn->hangup);
  event_free(conn->timer);
  evbuffer_free(conn->in);
  evbuffer_free(conn->out);
  evutil_closesocket(conn->fd);
  atomic_fetch_sub(&l->srv->open_conns, 1);
  free(conn);
}

struct auth_memo **http_conn_auth_memo(http_call *c) { return c->conn ? &c->conn->auth_memo : NULL; }

static void set_timer_ns(http_conn *conn, timer_phase phase, int64_t ns) {
  conn->phase = phase;
  if (ns < 0) ns = 0;
  struct timeval tv = {(time_t)(ns / 1000000000), (suseconds_t)(ns % 1000000000 / 1000)};
  event_add(conn->timer, &tv);
}

/* The fixed timeouts are libevent "common timeouts" of the loop (server.c): a queue each
 * instead of the heap, so setting and clearing them per request costs O(1). */
static void set_timer(http_conn *conn, timer_phase phase) {
  const struct timeval *tv = NULL;
  switch (phase) {
    case TIMER_HEAD: tv = conn->loop->head_tv; break;
    case TIMER_IDLE: tv = conn->loop->idle_tv; break;
    case TIMER_SEND: tv = conn->loop->send_tv; break;
    case TIMER_BODY: case TIMER_NONE: return; /* the body's deadline moves: set_timer_ns */
  }
  conn->phase = phase;
  event_add(conn->timer, tv);
}

static void clear_timer(http_conn *conn) {
  conn->phase = TIMER_NONE;
  event_del(conn->timer);
}

static void stop_reading(http_conn *conn) { event_del(conn->readable); }

static void on_hangup(evutil_socket_t fd, short what, void *arg);

#define HANGUP_POLL_MS 100

/* Reading stops while a reply runs and a flood of pipelined bytes waits; the peer's close is
 * still watched, as reading would have seen it. (Out of memory for the timer: reading only.) */
static void pause_reading(http_conn *conn) {
  stop_reading(conn);
  if (conn->hangup == NULL) conn->hangup = event_new(conn->loop->base, -1, EV_PERSIST, on_hangup, conn);
  if (conn->hangup) event_add(conn->hangup, &(struct timeval){0, HANGUP_POLL_MS * 1000});
}

static void start_reading(http_conn *conn) {
  if (conn->hangup) event_del(conn->hangup);
  event_add(conn->readable, NULL);
  /* records OpenSSL already took off the socket would not make it readable again */
  if (conn->ssl && !conn->handshaking && SSL_has_pending(conn->ssl)) event_active(conn->readable, EV_READ, 0);
}

/* A call that outlived its connection frees the subject it was handed. */
static void free_detached(http_call *c) {
  free((char *)c->client_subject);
  c->client_subject = NULL;
  http_call_free(c);
}

static bool tls_flush(http_conn *conn);

static void process_input(http_conn *conn);

/* Writes what it can of conn->out now; the rest when the socket is writable. Returns false
 * when the connection was (or may have been) freed. */
static bool flush_output(http_conn *conn) {
  if (conn->ssl) {
    if (!tls_flush(conn)) return false;
    if (evbuffer_get_length(conn->out) > 0) return true; /* waiting on the socket */
  }
  while (evbuffer_get_length(conn->out) > 0) {
    int n = evbuffer_write(conn->out, conn->fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        event_add(conn->writable, NULL);
        return true;
      }
      conn_free(conn);
      return false;
    }
  }
  if (!conn->read_wants_write) event_del(conn->writable);
  if (conn->closing) {
    conn_free(conn);
    return false;
  }
  if (conn->output_full) { /* the client took its replies: the pipelined requests' turn */
    conn->output_full = false;
    start_reading(conn);
    if (evbuffer_get_length(conn->in) == 0)
      set_timer(conn, TIMER_IDLE);
    process_input(conn);
    return false;
  }
  return true;
}

static http_call *call_new(http_conn *conn) {
  http_call *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->conn = conn;
  c->loop = conn->loop;
  c->srv = conn->loop->srv;
  c->app = c->srv->app;
  c->status = 200;
  c->header_len = -1;
  c->start_ns = monotime_ns();
  c->request_body = evbuffer_new();
  if (c->request_body == NULL) {
    free(c);
    return NULL;
  }
  c->client_subject = conn->subject;
  if (conn->subject && c->srv->test_subject_header) serve_headers_add(&c->stage_headers, "X-Test-Client-Subject", conn->subject);
  return c;
}

/* The wire found the request wrong, or the client too slow: answer (JSON) with http_status
 * and close afterwards, whatever follows on the connection: after a framing error nothing
 * says where the next request would start. */
static void fail_request(http_conn *conn, const inferd_status *st) {
  http_call *c = conn->call;
  if (c == NULL) c = conn->call = call_new(conn);
  if (c == NULL) {
    conn_free(conn);
    return;
  }
  if (c->method[0] == '\0') snprintf(c->method, sizeof c->method, "-");
  if (c->path == NULL) c->path = strdup("-");
  conn->state = ANSWERING;
  conn->keep_alive = false;
  c->close_after = true;
  c->bytes_in = evbuffer_get_length(c->request_body);
  http_call_set_json(c, status_http_code(st->code), json_pack("{ss}", "error", st->msg));
  stop_reading(conn);
  clear_timer(conn);
  http_server_handle(c);
}


/* Copies the parsed head into the call. False when out of memory. */
static bool take_head(http_call *c, const http_head *h) {
  snprintf(c->method, sizeof c->method, "%s", h->method);
  c->target = strndup(h->target.p, h->target.n);
  c->path = strndup(h->target.p, strcspn(c->target ? c->target : "", "?#"));
  if (c->target == NULL || c->path == NULL) return false;
  size_t total = 0;
  for (int i = 0; i < h->n_headers; i++) total += h->headers[i].name.n + h->headers[i].value.n + 2;
  if (total == 0) return true;
  char *p = c->header_block = malloc(total);
  if (p == NULL) return false;
  for (int i = 0; i < h->n_headers; i++) {
    const http_span *name = &h->headers[i].name, *value = &h->headers[i].value;
    c->headers[i] = (http_header){.name = p, .name_len = name->n};
    memcpy(p, name->p, name->n);
    p[name->n] = '\0';
    p += name->n + 1;
    c->headers[i].value = p;
    memcpy(p, value->p, value->n);
    p[value->n] = '\0';
    p += value->n + 1;
  }
  c->n_headers = h->n_headers;
  return true;
}

static void request_complete(http_conn *conn) {
  http_call *c = conn->call;
  conn->state = ANSWERING;
  clear_timer(conn);
  c->bytes_in = c->sink.write ? conn->body_got : evbuffer_get_length(c->request_body);
  c->close_after = !conn->keep_alive;
  http_server_handle(c);
}

/* The body deadline: --body-timeout-ms from the start of the body, one more second for every
 * --min-body-rate bytes received, and never more than --body-timeout-ms after the last bytes. */
static void arm_body_timer(http_conn *conn) {
  const http_options *o = &conn->loop->srv->opts;
  int64_t now = monotime_ns(), window = (int64_t)o->body_timeout_ms * 1000000;
  int64_t until = conn->body_start_ns + window;
  if (o->min_body_rate > 0) {
    uint64_t earned = conn->body_got / (uint64_t)o->min_body_rate; /* seconds; capped to stay in range */
    until += (int64_t)(earned < 86400 * 365 ? earned : 86400 * 365) * 1000000000;
  }
  if (until > now + window) until = now + window;
  set_timer_ns(conn, TIMER_BODY, until - now);
}

/* -- body sinks (http_body_sink): a route's body handed over as it arrives -- */

/* A 413 names the sink's flag rather than --max-body-bytes. */
static inferd_status sink_limit_message(const http_call *c, inferd_status st) {
  if (st.code == INFERD_TOO_LARGE && c->sink.write)
    st = status_make(INFERD_TOO_LARGE, "the body is larger than the limit of %zu bytes for this upload (%s)",
                     c->sink.max_bytes, c->sink.limit_flag ? c->sink.limit_flag : "the route's limit");
  return st;
}

/* Hands what request_body holds to the sink and empties it. False when the sink refused it
 * (the request is answered with its status, and the connection closes). */
static bool sink_feed(http_conn *conn) {
  http_call *c = conn->call;
  struct evbuffer *b = c->request_body;
  inferd_status st = status_ok();
  struct evbuffer_iovec v[8];
  while (status_is_ok(&st) && evbuffer_get_length(b) > 0) {
    int n = evbuffer_peek(b, -1, NULL, v, 8);
    size_t used = 0;
    for (int i = 0; i < n && i < 8 && status_is_ok(&st); i++) {
      st = c->sink.write(c->sink.ctx, v[i].iov_base, v[i].iov_len);
      used += v[i].iov_len;
    }
    evbuffer_drain(b, used);
  }
  if (status_is_ok(&st)) return true;
  evbuffer_drain(b, evbuffer_get_length(b));
  fail_request(conn, &st);
  return false;
}

/* The head is complete in head[0..len): parse it and decide the body. False when the
 * connection was failed or freed. */
static bool start_request(http_conn *conn, const char *head, size_t len) {
  http_head h;
  http_framing f;
  inferd_status st = http_parse_head(head, len, &h);
  conn->call = call_new(conn);
  if (conn->call == NULL) {
    conn_free(conn);
    return false;
  }
  if (status_is_ok(&st) && !take_head(conn->call, &h)) {
    conn_free(conn);
    return false;
  }
  /* a route that takes its body as it arrives (a job upload) says so now, with its own limit */
  if (status_is_ok(&st)) st = http_routes_open_sink(conn->call);
  size_t limit = conn->call->sink.write ? conn->call->sink.max_bytes : conn->loop->srv->opts.max_body_bytes;
  if (status_is_ok(&st)) st = sink_limit_message(conn->call, http_parse_framing(&h, limit, &f));
  if (!status_is_ok(&st)) {
    fail_request(conn, &st);
    return false;
  }
  conn->keep_alive = f.keep_alive;
  conn->http10 = h.minor == 0;
  conn->body_start_ns = monotime_ns();
  conn->body_got = 0;
  if (f.kind == HTTP_BODY_CHUNKED) {
    http_chunked_init(&conn->chunked, limit);
    conn->state = READ_CHUNKED;
  } else {
    conn->to_read = f.kind == HTTP_BODY_LENGTH ? (size_t)f.length : 0;
    conn->state = READ_BODY;
  }
  if (conn->state == READ_CHUNKED || conn->to_read > 0) {
    /* "Expect: 100-continue": the client waits for this before it sends the body */
    if (f.expect_continue) {
      evbuffer_add_printf(conn->out, "HTTP/1.1 100 %s\r\n\r\n", status_http_phrase(100));
      if (!flush_output(conn)) return false;
    }
  }
  return true;
}

/* The first contiguous piece of in, at most want bytes. */
static const char *first_piece(struct evbuffer *in, size_t want, size_t *n) {
  struct evbuffer_iovec v;
  if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) {
    *n = 0;
    return "";
  }
  *n = v.iov_len < want ? v.iov_len : want;
  return v.iov_base;
}

/* The first want bytes of in made contiguous (NULL when out of memory). */
static const char *joined(struct evbuffer *in, size_t want, size_t *n) {
  *n = want;
  return (const char *)evbuffer_pullup(in, (ssize_t)want);
}

/* Parses what has arrived; returns when it needs more bytes, a request is being answered, or
 * the connection is to close (conn->dead). */
static void parse_loop(http_conn *conn) {
  struct evbuffer *in = conn->in;
  for (;;) {
    if (conn->dead || conn->output_full) return;
    switch (conn->state) {
      case ANSWERING:
        return;
      case READ_HEAD: {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0) return;
        /* The head is usually all in the first piece of the buffer: look there, and copy
         * pieces together only when it is not. */
        size_t want = avail < HTTP_PARSE_MAX_HEAD_BYTES + 1 ? avail : HTTP_PARSE_MAX_HEAD_BYTES + 1, look;
        const char *buf = first_piece(in, want, &look);
        /* cppcheck-suppress knownConditionTrueFalse ; first_piece gives less than want when the buffer's first piece is shorter (cppcheck does not model evbuffer_peek) */
        if (look < 2 && look < want) buf = joined(in, want, &look);
        if (buf == NULL) {
          conn_free(conn);
          return;
        }
        if (conn->head_scan == 0) { /* tolerate empty lines between pipelined requests */
          size_t skip = http_skip_empty_lines(buf, look);
          if (skip) {
            evbuffer_drain(in, skip);
            continue;
          }
        }
        if (conn->phase != TIMER_HEAD) set_timer(conn, TIMER_HEAD);
        size_t head_len = http_head_end(buf, look, &conn->head_scan);
        /* cppcheck-suppress knownConditionTrueFalse ; first_piece gives less than want when the buffer's first piece is shorter */
        if (head_len == 0 && look < want) {
          if ((buf = joined(in, want, &look)) == NULL) {
            conn_free(conn);
            return;
          }
          head_len = http_head_end(buf, look, &conn->head_scan);
        }
        if (head_len == 0) {
          if (look > HTTP_PARSE_MAX_HEAD_BYTES) {
            inferd_status st = status_make(INFERD_INVALID_ARGUMENT, "the request head is larger than 64 KiB");
            fail_request(conn, &st);
          }
          return;
        }
        conn->head_scan = 0;
        if (!start_request(conn, buf, head_len)) return; /* failed and answered, or closing */
        evbuffer_drain(in, head_len);
        break;
      }
      case READ_BODY: {
        size_t got = evbuffer_get_length(in);
        size_t take = got < conn->to_read ? got : conn->to_read;
        evbuffer_remove_buffer(in, conn->call->request_body, take);
        conn->to_read -= take;
        conn->body_got += take;
        if (conn->call->sink.write && !sink_feed(conn)) return; /* refused: answered */
        if (conn->to_read > 0) { /* (armed only now: a body that came with its head needs none) */
          arm_body_timer(conn);
          return;
        }
        request_complete(conn);
        break; /* answered already (state READ_HEAD again), or still being answered */
      }
      case READ_CHUNKED: {
        size_t avail = evbuffer_get_length(in), used = 0, data = 0;
        inferd_status st = status_ok();
        if (avail > 0) {
          /* data is taken from the first piece without a copy; a line that runs past it is
           * copied together, up to its limit */
          size_t want = avail < HTTP_PARSE_MAX_TRAILER_BYTES + 2 ? avail : HTTP_PARSE_MAX_TRAILER_BYTES + 2, n;
          const char *buf = first_piece(in, want, &n);
          st = http_chunked_step(&conn->chunked, buf, n, &used, &data);
          /* cppcheck-suppress knownConditionTrueFalse ; first_piece gives less than want when the buffer's first piece is shorter */
          if (status_is_ok(&st) && used == 0 && n < want) {
            if ((buf = joined(in, want, &n)) == NULL) {
              conn_free(conn);
              return;
            }
            st = http_chunked_step(&conn->chunked, buf, n, &used, &data);
          }
        }
        if (!status_is_ok(&st)) {
          st = sink_limit_message(conn->call, st);
          fail_request(conn, &st);
          return;
        }
        if (data)
          evbuffer_remove_buffer(in, conn->call->request_body, data);
        else
          evbuffer_drain(in, used);
        conn->body_got += used;
        if (data && conn->call->sink.write && !sink_feed(conn)) return; /* refused: answered */
        if (conn->chunked.state == HTTP_CHUNK_DONE) {
          request_complete(conn);
          break;
        }
        if (used == 0) {
          arm_body_timer(conn);
          return;
        }
        break;
      }
    }
  }
}

/* The connection may be gone when it returns. */
static void process_input(http_conn *conn) {
  if (conn->parsing) return; /* re-entered from a synchronous reply: the running loop goes on */
  conn->parsing = true;
  parse_loop(conn);
  conn->parsing = false;
  if (conn->dead) conn_free(conn);
}

/* Bytes were added to conn->in. */
static void took_input(http_conn *conn) {
  if (conn->state == ANSWERING) {
    /* pipelined bytes wait their turn; stop reading if a client floods them */
    if (evbuffer_get_length(conn->in) > HTTP_PARSE_MAX_HEAD_BYTES) pause_reading(conn);
    return;
  }
  process_input(conn);
}

static void tls_on_readable(http_conn *conn);
static void tls_on_writable(http_conn *conn);

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  http_conn *conn = arg;
  if (conn->ssl) {
    tls_on_readable(conn);
    return;
  }
  struct evbuffer_iovec vec;
  if (evbuffer_reserve_space(conn->in, 65536, &vec, 1) < 1) {
    conn_free(conn);
    return;
  }
  ssize_t n = read(fd, vec.iov_base, vec.iov_len);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) { /* the client closed, or the connection broke */
    conn_free(conn);
    return;
  }
  vec.iov_len = (size_t)n;
  evbuffer_commit_space(conn->in, &vec, 1);
  took_input(conn);
}

/* While reading is paused: the client closed (FIN: POLLRDHUP) or reset the connection (POLLHUP,
 * POLLERR) behind its unread bytes: as reading's EOF. */
static void on_hangup(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_conn *conn = arg;
  struct pollfd p = {.fd = conn->fd, .events = POLLRDHUP};
  if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) conn_free(conn);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_conn *conn = arg;
  if (conn->ssl) {
    tls_on_writable(conn);
    return;
  }
  flush_output(conn);
}

/* -- TLS -- */

/* After a failed SSL call: true when it only has to wait (the event it needs is armed);
 * false when the connection is finished (the caller frees it). */
static bool tls_wait(http_conn *conn, int ret, bool reading) {
  switch (SSL_get_error(conn->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      if (!reading) {
        conn->write_wants_read = true;
        event_add(conn->readable, NULL);
      }
      return true;
    case SSL_ERROR_WANT_WRITE:
      if (reading) conn->read_wants_write = true;
      event_add(conn->writable, NULL);
      return true;
    case SSL_ERROR_ZERO_RETURN: /* close_notify: the client is done */
      ERR_clear_error();
      return false;
    default: /* a broken handshake, a bad record, or the socket failed */
      conn->tls_broken = true;
      ERR_clear_error();
      return false;
  }
}

/* Writes conn->out through TLS as far as the socket takes it. False when the connection was
 * freed. Pieces of up to one record, made contiguous: one SSL_write, one record, one write(). */
static bool tls_flush(http_conn *conn) {
  conn->write_wants_read = false;
  size_t len;
  while ((len = evbuffer_get_length(conn->out)) > 0) {
    size_t want = len < 16384 ? len : 16384;
    const unsigned char *p = evbuffer_pullup(conn->out, (ssize_t)want);
    if (p == NULL) {
      conn_free(conn);
      return false;
    }
    int n = SSL_write(conn->ssl, p, (int)want);
    if (n > 0) {
      evbuffer_drain(conn->out, (size_t)n);
      continue;
    }
    if (!tls_wait(conn, n, false)) {
      conn_free(conn);
      return false;
    }
    return true;
  }
  if (!conn->read_wants_write && !conn->handshaking) event_del(conn->writable);
  return true;
}

/* Plain HTTP sent to the TLS port: a client that meant https:// (or a probe) gets told so in
 * HTTP, which it can read, instead of a TLS alert it cannot. True when it was. */
static bool plain_http_on_tls_port(http_conn *conn) {
  unsigned char first;
  ssize_t n = recv(conn->fd, &first, 1, MSG_PEEK);
  if (n <= 0 || first < 'A' || first > 'Z') return false; /* a TLS record starts with 0x16 */
  static const char body[] = "{\"error\":\"this port speaks HTTPS (TLS): use https://\"}";
  char reply[256], sink[4096];
  int len = snprintf(reply, sizeof reply,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", sizeof body - 1, body);
  /* take what the client sent so the close is orderly (unread data would reset it) */
  while (recv(conn->fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  ssize_t w = send(conn->fd, reply, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)w; /* best effort, as the connection-limit refusal */
  shutdown(conn->fd, SHUT_WR);
  return true;
}

static void tls_read(http_conn *conn);

static void tls_handshake(http_conn *conn) {
  if (!conn->peeked) {
    conn->peeked = true;
    if (plain_http_on_tls_port(conn)) {
      conn->tls_broken = true; /* nothing TLS to close */
      conn_free(conn);
      return;
    }
  }
  ERR_clear_error();
  int r = SSL_do_handshake(conn->ssl);
  if (r != 1) {
    if (!tls_wait(conn, r, true)) {
      conn_free(conn);
      return;
    }
    if (!conn->read_wants_write) event_del(conn->writable);
    conn->read_wants_write = false; /* the handshake retries on either event */
    return;
  }
  conn->handshaking = false;
  event_del(conn->writable);
  if (tlsconf_client_mode(conn->loop->srv->opts.tls) != TLSCONF_CLIENT_NONE) conn->subject = tlsconf_peer_subject(conn->ssl);
  /* the request may have come in the same packet as the handshake's end */
  if (SSL_has_pending(conn->ssl)) tls_read(conn);
}

/* Reads what TLS has: every record already in OpenSSL's buffer, so none waits for a socket
 * event that will not come. */
static void tls_read(http_conn *conn) {
  do {
    struct evbuffer_iovec vec;
    if (evbuffer_reserve_space(conn->in, 16384, &vec, 1) < 1) {
      conn_free(conn);
      return;
    }
    ERR_clear_error();
    int n = SSL_read(conn->ssl, vec.iov_base, (int)vec.iov_len);
    if (n <= 0) {
      if (!tls_wait(conn, n, true)) {
        conn_free(conn);
        return;
      }
      break;
    }
    vec.iov_len = (size_t)n;
    evbuffer_commit_space(conn->in, &vec, 1);
    /* (a flood of pipelined requests stops here as on the plain path; start_reading resumes) */
  } while (SSL_has_pending(conn->ssl) && !(conn->state == ANSWERING && evbuffer_get_length(conn->in) > HTTP_PARSE_MAX_HEAD_BYTES));
  if (evbuffer_get_length(conn->in) > 0) took_input(conn);
}

static void tls_on_readable(http_conn *conn) {
  if (conn->handshaking) {
    tls_handshake(conn);
    return;
  }
  if (conn->write_wants_read) {
    if (!flush_output(conn)) return;
    if (!event_pending(conn->readable, EV_READ, NULL)) return; /* reading had stopped: only the write wanted it */
  }
  tls_read(conn);
}

static void tls_on_writable(http_conn *conn) {
  if (conn->handshaking) {
    tls_handshake(conn);
    return;
  }
  if (conn->read_wants_write) {
    conn->read_wants_write = false;
    if (evbuffer_get_length(conn->out) == 0) event_del(conn->writable);
    tls_read(conn); /* may free conn */
    return;
  }
  flush_output(conn);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_conn *conn = arg;
  const http_options *o = &conn->loop->srv->opts;
  inferd_status st;
  switch (conn->phase) {
    case TIMER_HEAD:
      if (evbuffer_get_length(conn->in) == 0 && conn->call == NULL) { /* a connection that never spoke */
        conn_free(conn);
        return;
      }
      st = status_make(INFERD_REQUEST_TIMEOUT, "the request head did not arrive within %d ms (--request-head-timeout-ms)",
                       o->head_timeout_ms);
      fail_request(conn, &st);
      return;
    case TIMER_BODY:
      st = status_make(INFERD_REQUEST_TIMEOUT, "the request body arrived too slowly (--body-timeout-ms %d, --min-body-rate %d bytes/s)",
                       o->body_timeout_ms, o->min_body_rate);
      fail_request(conn, &st);
      return;
    case TIMER_IDLE: case TIMER_SEND: case TIMER_NONE:
      conn_free(conn);
      return;
  }
}

void http_conn_accept(http_loop *l, evutil_socket_t fd, bool tls) {
  http_conn *conn = calloc(1, sizeof *conn);
  if (conn == NULL) {
    evutil_closesocket(fd);
    atomic_fetch_sub(&l->srv->open_conns, 1);
    return;
  }
  conn->loop = l;
  conn->fd = fd;
  evutil_make_socket_nonblocking(fd);
  conn->readable = event_new(l->base, fd, EV_READ | EV_PERSIST, on_readable, conn);
  conn->writable = event_new(l->base, fd, EV_WRITE | EV_PERSIST, on_writable, conn);
  conn->timer = evtimer_new(l->base, on_timer, conn);
  conn->in = evbuffer_new();
  conn->out = evbuffer_new();
  if (tls) {
    conn->ssl = tlsconf_new_ssl(l->srv->opts.tls, fd);
    conn->handshaking = true;
  }
  if (!conn->readable || !conn->writable || !conn->timer || !conn->in || !conn->out || (tls && !conn->ssl)) {
    if (conn->ssl) SSL_free(conn->ssl);
    if (conn->readable) event_free(conn->readable);
    if (conn->writable) event_free(conn->writable);
    if (conn->timer) event_free(conn->timer);
    if (conn->in) evbuffer_free(conn->in);
    if (conn->out) evbuffer_free(conn->out);
    evutil_closesocket(fd);
    free(conn);
    atomic_fetch_sub(&l->srv->open_conns, 1);
    return;
  }
  conn->next = l->conns;
  if (l->conns) l->conns->prev = conn;
  l->conns = conn;
  /* a new connection has the head deadline from the start: connecting and saying nothing
   * is the cheapest way to hold a slot (with TLS, the handshake and the first head together) */
  set_timer(conn, TIMER_HEAD);
  start_reading(conn);
}

/* The status line and headers of c's reply: Content-Length when content_length >= 0, else
 * chunked or (chunked false: HTTP/1.0, a body up to the close) no framing. */
static void write_head(struct evbuffer *out, http_call *c, const serve_headers *stage_headers, int status,
                       const char *content_type, long long content_length, bool chunked, bool close) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n", status, status_http_phrase(status), date,
                      content_type ? content_type : "application/json");
  if (content_length >= 0)
    evbuffer_add_printf(out, "Content-Length: %lld\r\n", content_length);
  else if (chunked)
    evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
  evbuffer_add_printf(out, "X-Request-ID: %s\r\n", c->request_id);
  if (c->header_len >= 0) evbuffer_add_printf(out, "Inference-Header-Content-Length: %lld\r\n", c->header_len);
  for (int i = 0; i < c->n_reply_headers; i++)
    evbuffer_add_printf(out, "%s: %s\r\n", c->reply_headers[i].name, c->reply_headers[i].value);
  /* the stages' headers (RateLimit on every limited answer) copied, not formatted: a printf per
   * header cost ~1,000 instructions, more than the limiter that made it */
  for (int i = 0; i < stage_headers->n; i++) {
    char line[sizeof stage_headers->h[0].name + sizeof stage_headers->h[0].value + 4];
    size_t nl = strlen(stage_headers->h[i].name), vl = strlen(stage_headers->h[i].value);
    memcpy(line, stage_headers->h[i].name, nl);
    memcpy(line + nl, ": ", 2);
    memcpy(line + nl + 2, stage_headers->h[i].value, vl);
    memcpy(line + nl + 2 + vl, "\r\n", 2);
    evbuffer_add(out, line, nl + vl + 4);
  }
  if (close) evbuffer_add_printf(out, "Connection: close\r\n");
  evbuffer_add(out, "\r\n", 2);
}

/* c's reply is in conn->out: free c, then close, or go on to the next request. */
static void reply_done(http_conn *conn, http_call *c, bool close) {
  conn->call = NULL;
  http_call_free(c);
  if (close) {
    conn->closing = true;
    stop_reading(conn);
    set_timer(conn, TIMER_SEND);
    flush_output(conn); /* frees it once the reply is out */
    return;
  }
  if (!flush_output(conn)) return;
  conn->state = READ_HEAD;
  if (evbuffer_get_length(conn->out) > OUTPUT_HIGH_WATER) { /* the client is not reading: wait */
    conn->output_full = true;
    stop_reading(conn);
    set_timer(conn, TIMER_SEND);
    return;
  }
  start_reading(conn);
  if (evbuffer_get_length(conn->in) == 0)
    set_timer(conn, TIMER_IDLE);
  process_input(conn); /* a pipelined request may be waiting already */
}

void http_conn_send_reply(http_call *c) {
  http_conn *conn = c->conn;
  if (conn == NULL) { /* the client left while its request was answered */
    free_detached(c);
    return;
  }
  size_t body_len = c->body ? evbuffer_get_length(c->body) : 0;
  bool close = c->close_after || !conn->keep_alive;
  write_head(conn->out, c, &c->stage_headers, c->status, c->content_type, (long long)body_len, false, close);
  if (body_len && strcmp(c->method, "HEAD") != 0) evbuffer_add_buffer(conn->out, c->body);
  reply_done(conn, c, close);
}

/* ---- Streaming replies (server.h) ------------------------------------------------------------
 * The producer (any thread) appends to `pending` under the stream's lock and activates the
 * stream's event on the call's loop, once per batch of pushes; the loop moves what is pending
 * into the connection as one chunk, so the wire never sees a producer thread. The end is the
 * same hand-off with `ended` set: the loop writes the last chunk and the access log, and frees
 * the stream and the call. The connection itself knows nothing of the stream: its call stays
 * ANSWERING until the end, which is what keeps pipelined requests waiting, and a client that
 * leaves meanwhile is seen through the call (client_gone set, call->conn NULL) as for any
 * deferred reply. */
struct http_stream {
  http_call *call;
  struct event *wake; /* on the call's loop */
  pthread_mutex_t mu;
  /* under mu: */
  struct evbuffer *pending; /* body bytes pushed, not yet handed to the connection */
  bool queued;              /* the wake event is active: further pushes need no other */
  bool overflow;            /* pending passed max_buffered: the loop cuts the client off */
  bool ended;
  int log_status;
  uint64_t bytes_out;
  uint64_t written; /* loop thread: body bytes handed to the connection */
  /* fixed at the start: */
  size_t max_buffered;
  int status;
  const char *content_type;
  serve_headers stage_headers; /* a copy: the completion stages may write the call's meanwhile */
  const char *heartbeat;
  /* loop thread only: */
  struct evbuffer *take;
  struct event *beat; /* the heartbeat's timer, re-armed whenever the stream writes */
  bool head_sent, chunked, close, head_only;
};

/* Loop thread: one chunk of body bytes onto the connection: data's, or else text[0..text_len). */
static void stream_write(http_stream *s, http_conn *conn, struct evbuffer *data, const char *text, size_t text_len) {
  size_t n = data ? evbuffer_get_length(data) : text_len;
  if (n == 0 || s->head_only) return;
  if (s->chunked) evbuffer_add_printf(conn->out, "%zx\r\n", n);
  if (data)
    evbuffer_add_buffer(conn->out, data);
  else
    evbuffer_add(conn->out, text, n);
  if (s->chunked) evbuffer_add(conn->out, "\r\n", 2);
}

/* What the client has not taken: the connection's buffer, and once the stream has written more
 * than the bound (so short streams never pay the system call) what the kernel still holds
 * unacknowledged (SIOCOUTQ): a client that stops reading fills the socket's buffers first, and
 * those can hold megabytes on loopback. */
static bool stream_over_bound(http_stream *s, http_conn *conn) {
  size_t n = evbuffer_get_length(conn->out);
  if (n > s->max_buffered) return true;
  if (s->written <= s->max_buffered) return false;
  int q = 0;
  if (ioctl(conn->fd, SIOCOUTQ, &q) == 0 && q > 0) n += (size_t)q;
  return n > s->max_buffered;
}

static void arm_beat(http_stream *s) {
  if (s->beat == NULL) return;
  int ms = s->call->srv->opts.stream_heartbeat_ms > 0 ? s->call->srv->opts.stream_heartbeat_ms : 15000;
  struct timeval tv = {ms / 1000, ms % 1000 * 1000};
  event_add(s->beat, &tv);
}

static void on_stream_beat(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_stream *s = arg;
  http_conn *conn = s->call->conn;
  if (conn == NULL || !s->head_sent) return;
  stream_write(s, conn, NULL, s->heartbeat, strlen(s->heartbeat));
  if (flush_output(conn)) arm_beat(s);
}

/* Loop thread: the client reads too slowly (or the loop fell behind the producer) for the
 * bound; close the connection without the final chunk. conn_free sets client_gone. */
static void stream_cut(http_conn *conn) {
  conn->tls_broken = true; /* no close_notify: it would look like an orderly end of the body */
  conn_free(conn);
}

static void stream_finish(http_stream *s) {
  http_call *c = s->call;
  http_conn *conn = c->conn;
  http_call_log_reply(c, s->log_status ? s->log_status : s->status, (size_t)s->bytes_out);
  http_server *srv = c->srv;
  bool close = s->close, last_chunk = s->chunked && !s->head_only;
  event_free(s->wake);
  if (s->beat) event_free(s->beat);
  evbuffer_free(s->pending);
  evbuffer_free(s->take);
  pthread_mutex_destroy(&s->mu);
  free(s);
  if (conn == NULL)
    free_detached(c);
  else {
    if (last_chunk) evbuffer_add(conn->out, "0\r\n\r\n", 5);
    reply_done(conn, c, close);
  }
  atomic_fetch_sub(&srv->in_flight, 1);
}

static void on_stream_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_stream *s = arg;
  pthread_mutex_lock(&s->mu);
  evbuffer_add_buffer(s->take, s->pending);
  bool ended = s->ended, overflow = s->overflow;
  s->queued = false;
  pthread_mutex_unlock(&s->mu);
  http_call *c = s->call;
  http_conn *conn = c->conn;
  size_t n = evbuffer_get_length(s->take);
  if (conn && overflow) {
    stream_cut(conn);
    conn = NULL;
  }
  if (conn) {
    if (!s->head_sent) {
      s->head_sent = true;
      s->close = c->close_after || !conn->keep_alive || conn->http10 || atomic_load(&c->app->draining);
      s->chunked = !conn->http10;
      s->head_only = strcmp(c->method, "HEAD") == 0;
      write_head(conn->out, c, &s->stage_headers, s->status, s->content_type, -1, s->chunked, s->close);
    }
    if (n > 0) stream_write(s, conn, s->take, NULL, 0);
    s->written += n;
    if (!ended) {
      arm_beat(s); /* counted from the last write */
      if (stream_over_bound(s, conn)) {
        stream_cut(conn);
      } else {
        flush_output(conn); /* (frees conn if the socket broke: the call is detached then) */
      }
    }
  }
  evbuffer_drain(s->take, evbuffer_get_length(s->take));
  if (ended) stream_finish(s);
}

http_stream *http_stream_start(http_call *c, size_t max_buffered, const char *heartbeat) {
  http_stream *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->call = c;
  s->max_buffered = max_buffered                          ? max_buffered
                     : c->srv->opts.stream_max_buffered ? c->srv->opts.stream_max_buffered
                                                        : HTTP_STREAM_MAX_BUFFERED_DEFAULT;
  s->status = c->status;
  s->content_type = c->content_type ? c->content_type : "application/json";
  s->stage_headers = c->stage_headers;
  s->heartbeat = heartbeat && *heartbeat ? heartbeat : NULL;
  s->pending = evbuffer_new();
  s->take = evbuffer_new();
  s->wake = event_new(c->loop->base, -1, 0, on_stream_wake, s);
  if (s->heartbeat) s->beat = evtimer_new(c->loop->base, on_stream_beat, s);
  if (!s->pending || !s->take || !s->wake || (s->heartbeat && !s->beat)) {
    if (s->pending) evbuffer_free(s->pending);
    if (s->take) evbuffer_free(s->take);
    if (s->wake) event_free(s->wake);
    if (s->beat) event_free(s->beat);
    free(s);
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  /* the head goes out at once: a client learns the request was taken before the first token */
  pthread_mutex_lock(&s->mu);
  s->queued = true;
  event_active(s->wake, EV_READ, 0);
  pthread_mutex_unlock(&s->mu);
  return s;
}

bool http_stream_client_gone(const http_stream *s) { return atomic_load(&s->call->client_gone); }

bool http_stream_push(http_stream *s, const void *data, size_t len) {
  if (atomic_load(&s->call->client_gone)) return false;
  pthread_mutex_lock(&s->mu);
  bool ok = !s->overflow;
  if (ok && evbuffer_get_length(s->pending) + len > s->max_buffered) s->overflow = ok = false;
  if (ok) {
    evbuffer_add(s->pending, data, len);
    s->bytes_out += len;
  }
  /* activated under the lock: the loop frees the event only after taking it (stream_finish) */
  if (!s->queued) {
    s->queued = true;
    event_active(s->wake, EV_READ, 0);
  }
  pthread_mutex_unlock(&s->mu);
  return ok;
}

void http_stream_end(http_stream *s, int log_status) {
  pthread_mutex_lock(&s->mu);
  s->ended = true;
  s->log_status = log_status;
  if (!s->queued) {
    s->queued = true;
    event_active(s->wake, EV_READ, 0);
  }
  pthread_mutex_unlock(&s->mu); /* s may be freed from here on */
}

void http_conn_drop_call(http_call *c) {
  if (c->conn == NULL) {
    free_detached(c);
    return;
  }
  c->conn->call = NULL;
  http_call_free(c);
}

void http_conn_close_all(http_loop *l) {
  while (l->conns) conn_free(l->conns);
}
