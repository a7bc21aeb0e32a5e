/* What server.c and conn.c share: the loop and server structs, and the hand-offs between the
 * wire (conn.c) and the request lifecycle (server.c). Not for handlers. */
#ifndef INFERD_HTTP_SERVER_INTERNAL_H
#define INFERD_HTTP_SERVER_INTERNAL_H

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>

#include "frontends/http/server.h"
#include "util/request_id.h"

struct http_loop {
  http_server *srv;
  struct event_base *base;
  struct evconnlistener *listener;
  struct evconnlistener *plain_listener; /* --http-plain-port beside a TLS port; NULL: none */
  struct event *wake;        /* activated by workers: replies are waiting */
  struct event *stop_accept; /* activated by the main thread on drain */
  struct event *resume_accept; /* re-enables the listener after an accept failure's pause */
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  http_call *done_head; /* replies posted from other threads */
  http_conn *conns;     /* every open connection, to free at the end */
  struct evbuffer *access_log; /* lines not yet written: flushed by log_flush or when large */
  struct event *log_flush;
  request_ids ids;
  /* the fixed per-connection timeouts as the loop's common timeouts (conn.c) */
  const struct timeval *head_tv, *idle_tv, *send_tv;
};

struct http_server {
  http_options opts;
  app *app;
  int port;
  int plain_port; /* bound for --http-plain-port, 0: none */
  bool test_subject_header; /* INFERD_TEST_CLIENT_SUBJECT_HEADER (docs/architecture.md) */
  http_loop *loops;
  int n_loops;
  atomic_long in_flight;
  atomic_long open_conns;       /* connections open, over every loop */
  atomic_long refused_at_limit; /* connections closed at once: --max-connections reached */
  atomic_long accept_failures;  /* accept() failed (EMFILE, ENFILE, ENOMEM...) */
  _Atomic int64_t last_refusal_log_ns; /* refusals are logged at most once a second */
};

/* conn.c: takes a new socket, already counted in srv->open_conns; tls: it speaks TLS with
 * srv->opts.tls's current context. */
void http_conn_accept(http_loop *l, evutil_socket_t fd, bool tls);
/* conn.c: writes c's reply on its connection (if it is still there) and frees c. */
void http_conn_send_reply(http_call *c);
/* conn.c: frees a call whose reply will never be sent, detaching it from its connection. */
void http_conn_drop_call(http_call *c);
/* conn.c: the connection's memo of its last verified credential (security/auth.h), for
 * authentication at dispatch (on the loop's thread, while the connection is there); NULL when
 * the call has no connection. */
struct auth_memo **http_conn_auth_memo(http_call *c);
/* conn.c: closes every connection of the loop. */
void http_conn_close_all(http_loop *l);

/* routes.c: the head of a request was read: when its route takes the body as it arrives
 * (a route with an open_sink, router.h), authenticates the caller and opens the sink (c->sink); not OK: answer
 * with the status without reading the body. */
inferd_status http_routes_open_sink(http_call *c);

/* server.c: a complete request was read; c->status != 200 means the wire layer already
 * found it wrong (the body is set) and it is only to be answered. */
void http_server_handle(http_call *c);
/* server.c: the access log line and reply metrics of c, answered with status and bytes_out body
 * bytes; loop thread (plain replies, and streams at their end). */
void http_call_log_reply(http_call *c, int status, size_t bytes_out);
/* server.c: frees a call. */
void http_call_free(http_call *c);

#endif
