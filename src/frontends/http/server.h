/* The HTTP frontend's machinery: one libevent loop per I/O thread on a shared port
 * (SO_REUSEPORT), request ids, replies from worker threads posted back to the loop that owns
 * the connection, the access log, and draining on shutdown. The HTTP/1.1 wire format itself
 * is conn.c. */
#ifndef INFERD_HTTP_SERVER_H
#define INFERD_HTTP_SERVER_H

#include <event2/buffer.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/app.h"
#include "core/serve.h"
#include "frontends/http/router.h"

typedef struct http_server http_server;
typedef struct http_loop http_loop;

typedef struct http_options {
  const char *host;
  int port;
  int threads;
  size_t max_body_bytes;
  int drain_timeout_ms;
  /* limits on slow and idle clients (docs/http-api.md, "Limits and timeouts") */
  int head_timeout_ms;      /* the whole request head, from its first byte (or the accept) */
  int body_timeout_ms;      /* the body: this long, plus a second per min_body_rate bytes */
  int min_body_rate;        /* bytes/s; 0: the body timeout is a fixed total */
  int keepalive_timeout_ms; /* idle between requests */
  int send_timeout_ms;      /* a closing reply the client does not take */
  long max_connections;     /* open at once, over all loops */
  struct auth *auth;        /* security/auth.h: who may call; NULL or disabled: everyone */
  const struct cors_policy *cors; /* security/cors.h: --cors-origins; NULL: CORS off */
  /* TLS on `port` (security/tlsconf, owned by the caller and outliving the server); NULL:
   * plain HTTP. With it, plain_port >= 0 also serves plain HTTP there (0: any free port);
   * -1: none. Ignored without tls. */
  struct tlsconf *tls;
  int plain_port;
  /* Serve this one path alone (404 for any other), with the same authentication and TLS: the
   * --metrics-port listener is a second server with "/metrics" here. NULL: every route. */
  const char *only_path;
  struct jobs *jobs;          /* jobs/jobs.h: the batch job routes (jobs_api.c); NULL: they answer 503 */
  size_t max_job_body_bytes;  /* a job upload's limit (--max-job-body-bytes) */
} http_options;

/* One request being answered. Handlers run on the loop thread; a deferred reply may be
 * finished from any thread with http_call_reply_async. */
#define HTTP_MAX_HEADERS 64 /* = HTTP_PARSE_MAX_HEADERS */
#define HTTP_MAX_REPLY_HEADERS 16

typedef struct http_header {
  char *name; /* owned */
  char *value;
} http_header;

typedef struct http_conn http_conn;

/* A body sink (set in the call by the route's opener, routes.c's sink_routes): the request body handed over in
 * pieces as it arrives instead of collected in request_body, for uploads larger than memory
 * should hold (a batch job's records). write's status other than OK answers the request with
 * it at once (and closes the connection). release runs once, when the call is freed: after the
 * handler answered, or when the client left or the body failed midway. */
typedef struct http_body_sink {
  inferd_status (*write)(void *ctx, const char *data, size_t len);
  void (*release)(void *ctx);
  void *ctx;
  size_t max_bytes; /* the body's limit instead of --max-body-bytes */
  const char *limit_flag; /* the flag that sets it, for the 413's message */
} http_body_sink;

typedef struct http_call {
  http_conn *conn; /* NULL once the client has gone */
  http_loop *loop;
  http_server *srv;
  app *app;
  char request_id[130];
  char trace_id[SERVE_TRACE_ID_SIZE]; /* the trace stage's, for the access log; "" when none */
  int64_t start_ns;
  size_t bytes_in;
  char method[16];
  char *target;        /* owned: the request target as sent */
  char *path;          /* owned, without the query string */
  http_header headers[HTTP_MAX_HEADERS];
  int n_headers;
  struct evbuffer *request_body; /* owned; stays empty when a sink takes the body */
  http_body_sink sink;           /* write NULL: none (see http_body_sink) */
  char model[256];     /* for the access log; empty when none */
  char version[32];
  /* the reply */
  int status;
  struct evbuffer *body; /* owned until sent */
  const char *content_type;
  long long header_len; /* Inference-Header-Content-Length, -1 for none */
  http_header reply_headers[HTTP_MAX_REPLY_HEADERS];
  int n_reply_headers;
  /* the verified TLS client certificate's subject (conn.c's), NULL: none or no TLS */
  const char *client_subject;
  /* who is calling, once authenticated (security/); a counted reference, dropped with the call */
  const struct principal *principal;
  serve_headers stage_headers; /* the pipeline stages' (serve_request.reply_headers), sent too */
  serve_record record;         /* what the completion tells the access log and metrics (serve_request.record) */
  bool close_after; /* answer with Connection: close and close */
  /* Set on the loop thread when the client leaves before its answer; the scheduler reads it
   * to drop a request still queued. Lives as long as the call. */
  _Atomic bool client_gone;
  struct http_call *next_done;
} http_call;

inferd_status http_server_create(const http_options *opts, app *a, http_server **out);
/* The port bound (useful with port 0). */
int http_server_port(const http_server *s);
/* Connections open now, over every loop (for the connections gauge). */
long http_server_open_connections(const http_server *s);
/* The plain HTTP port beside the TLS one (opts.plain_port), 0 when there is none. */
int http_server_plain_port(const http_server *s);
/* Stops accepting, waits for the calls in flight up to the drain timeout. */
void http_server_drain(http_server *s);
/* Stops the loops and frees everything; calls not answered by then are dropped. */
void http_server_destroy(http_server *s);

/* Sends call's reply (status, body, content_type, header_len) now, on its loop thread. */
void http_call_reply(http_call *c);
/* The same from any thread: posts the call to its loop. */
void http_call_reply_async(http_call *c);
/* Sets the reply to a JSON document (consumed), or to {"error": msg} with the status the
 * code maps to; any thread. */
void http_call_set_json(http_call *c, int status, json_t *doc);
void http_call_set_error(http_call *c, const inferd_status *st);
/* set + reply, on the loop thread. */
void http_call_reply_error(http_call *c, const inferd_status *st);
/* Replies with a JSON document (consumed) on the loop thread. */
void http_call_reply_json(http_call *c, int status, json_t *doc);

/* The request body, made contiguous. */
const char *http_call_body(http_call *c, size_t *len);
/* A request header, case-insensitively; NULL when absent. */
const char *http_call_header(http_call *c, const char *name);
/* Adds a header to the reply (copied). */
void http_call_add_reply_header(http_call *c, const char *name, const char *value);
/* Fills what every HTTP serve_request shares: arrival, the client-gone flag, the headers as
 * its metadata, the reply headers' storage. */
void http_call_serve_init(http_call *c, serve_request *sr);

#endif
