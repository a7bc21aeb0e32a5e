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
  /* a streaming reply that has sent nothing for this long sends a heartbeat (an SSE comment):
   * proxies and clients with read timeouts keep the connection; 0: 15000 */
  int stream_heartbeat_ms;
  /* a stream's bound (max_buffered 0 in http_stream_start); 0: HTTP_STREAM_MAX_BUFFERED_DEFAULT */
  size_t stream_max_buffered;
  struct jobs *jobs;          /* jobs/jobs.h: the batch job routes (jobs_api.c); NULL: they answer 503 */
  size_t max_job_body_bytes;  /* a job upload's limit (--max-job-body-bytes) */
} http_options;

/* One request being answered. Handlers run on the loop thread; a deferred reply may be
 * finished from any thread with http_call_reply_async. */
#define HTTP_MAX_HEADERS 64 /* = HTTP_PARSE_MAX_HEADERS */
#define HTTP_MAX_REPLY_HEADERS 16

typedef struct http_header {
  char *name; /* owned (a reply header's; a request header's lie in the call's header_block) */
  char *value;
  size_t name_len; /* of a request header (http_call_header compares lengths first) */
} http_header;

typedef struct http_conn http_conn;

/* A body sink (set in the call by the route's opener, route.open_sink): the request body handed over in
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
  http_header headers[HTTP_MAX_HEADERS]; /* names and values NUL-terminated in header_block */
  int n_headers;
  char *header_block; /* owned: one allocation for every request header, not two each */
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
  /* Generated tokens, for the access log (the generation routes set them; a stream's producer
   * may set them until http_stream_end); has_usage false: the line has no token fields. */
  bool has_usage;
  int64_t prompt_tokens, completion_tokens;
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
/* ---- Streaming replies (conn.c) ----------------------------------------------------------
 * A reply whose body is pushed piece by piece (SSE token streams): started with the status,
 * content type and reply headers the call has, then pushed from any thread, in order, then
 * ended. On HTTP/1.1 the body goes out with Transfer-Encoding: chunked and the connection stays
 * open for the next request; on HTTP/1.0 without a length, and the connection closes at the end.
 * Pipelined requests behind a stream wait for its end. The access log line (and the reply
 * metrics) are written at the end, with the stream's byte total and the call's usage.
 *
 * Backpressure: at most max_buffered bytes (the pushes not yet written plus what the socket
 * has not taken) are held per stream. A client that reads slower than the stream is produced
 * is cut off when it passes that bound: the connection is closed without the final chunk (so
 * the client sees the body as incomplete, not as a short success), the call's client_gone is
 * set (a generation stops at its next step) and later pushes are dropped. A stream never
 * blocks its producer: a decode loop serving many sequences must not wait for one socket.
 *
 * The client going away (the connection closing or breaking) sets client_gone at once, on the
 * loop thread; pushes after that are dropped and return false, and http_stream_end still has to
 * be called (it writes the access log and frees the call). */
typedef struct http_stream http_stream;
#define HTTP_STREAM_MAX_BUFFERED_DEFAULT (1024 * 1024)

/* Starts c's reply as a stream with c->status, c->content_type (NULL: application/json),
 * c's reply headers and the stages' headers as they are now (copied: completion stages may
 * still add to the call's; they are not sent). Any thread; from here the call is the stream's
 * (do not reply to it otherwise). max_buffered 0: --stream-max-buffered-bytes. heartbeat (NULL: none; e.g.
 * ": keep-alive\n\n" for SSE) is sent whenever the stream has sent nothing for
 * --stream-heartbeat-ms. NULL when out of memory: the call is still the caller's to answer. */
http_stream *http_stream_start(http_call *c, size_t max_buffered, const char *heartbeat);
/* Appends len bytes to the body; any thread; pushes from one thread go out in their order. False
 * (and the bytes dropped) once the client has gone or was cut off. */
bool http_stream_push(http_stream *s, const void *data, size_t len);
/* Whether the client has gone (or was cut off): a producer may stop early. */
bool http_stream_client_gone(const http_stream *s);
/* Ends the body (the final chunk), writes the access log line and frees the stream and its call;
 * any thread, once. log_status: the status the access log and metrics record (an error that
 * ended a stream already answered 200 is logged as such); 0: the status sent. */
void http_stream_end(http_stream *s, int log_status);

/* Fills what every HTTP serve_request shares: arrival, the client-gone flag, the headers as
 * its metadata, the reply headers' storage. */
void http_call_serve_init(http_call *c, serve_request *sr);

#endif
