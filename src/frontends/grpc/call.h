/* The gRPC frontend's call machinery, shared by the services: methods registered with gRPC
 * core, unary replies, and streams whose responses go out in the order they were reserved.
 * Every operation completes on the completion queue. A reply may be given on any thread: on
 * the frontend's own threads it starts at once, from elsewhere (a worker that has finished an
 * inference) the frontend's reply thread starts it, so workers never write to sockets. */
#ifndef INFERD_GRPC_CALL_H
#define INFERD_GRPC_CALL_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/app.h"
#include "core/serve.h"
#include "frontends/grpc/frontend.h"
#include "security/scope.h"
#include "util/request_id.h"

/* A completion-queue tag: what to run when the operation completes. */
typedef struct gtag {
  void (*fn)(struct gtag *t, bool ok);
} gtag;

typedef struct gcall gcall;

typedef enum { RPC_UNARY, RPC_STREAM } rpc_kind;

typedef struct rpc_method {
  const char *path; /* "/package.Service/Method" */
  rpc_kind kind;
  int slots; /* calls requested from gRPC core at once */
  /* RPC_UNARY: the request message; answer with exactly one gcall_reply* (any thread). */
  void (*on_unary)(gcall *c, grpc_byte_buffer *payload);
  /* RPC_STREAM: each request message in turn (the read of the next one starts after this
   * returns); answer through gstream_*. The stream finishes with OK once the client has
   * half-closed and every reserved response has gone out, unless keep_open is set. */
  void (*on_message)(gcall *c, grpc_byte_buffer *msg);
  /* RPC_STREAM, optional: the call is about to be freed; drop every reference to it. */
  void (*on_end)(gcall *c);
  void *handle; /* grpc_server_register_method's */
  /* The scope a caller needs (security/scope.h), checked when the call arrives; NULL:
   * scope_for_pattern of the path decides (admin for an undeclared method). SCOPE_INFER
   * methods are checked per request, with the model, by the admit stage. */
  const char *scope;
} rpc_method;

typedef struct gstream_item gstream_item;

struct gcall {
  grpcfe *fe;
  app *app;
  const rpc_method *method;
  grpc_call *call;
  gpr_timespec deadline;
  int64_t deadline_ns; /* the client's deadline on the monotonic clock; 0: none */
  int64_t start_ns;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  void *user; /* the service's state for this call */
  bool keep_open; /* streams: stay open after the client half-closes (health Watch) */

  gtag req_tag;  /* the call's arrival; then a unary call's reply */
  grpc_slice status_details;
  int reply_code; /* a unary call's status, kept until its send starts */
  /* a send handed to the reply thread: what to run there, and the queue's link */
  void (*post_fn)(gcall *c);
  gcall *post_next;
  /* for the access log line written when the call is freed */
  bool arrived; /* a call came into this slot */
  char request_id[REQUEST_ID_MAX + 1]; /* x-request-id metadata when usable, else generated */
  char trace_id[SERVE_TRACE_ID_SIZE];  /* the trace stage's (a stream's last request's); "" when none */
  char model[256], version[32];        /* what the call named, set by the service */
  size_t bytes_in, bytes_out;          /* messages' bytes */
  int cancelled; /* RECV_CLOSE_ON_SERVER's */
  _Atomic bool client_gone; /* the call ended without our status: cancel, deadline, disconnect */
  /* the client's metadata as C strings, made on the first serve_meta lookup (frontend thread) */
  char **md_text; /* owned: key, value, key, value ... */
  size_t md_n;
  char *client_subject; /* owned: the verified TLS client certificate's subject, NULL: none */
  const struct principal *principal; /* counted reference once authenticated (security/) */
  /* unary calls: the pipeline stages' reply headers, sent as initial metadata */
  serve_headers stage_headers;
  serve_record record; /* unary calls: what the completion tells the access log and metrics */
  grpc_metadata stage_md[SERVE_MAX_REPLY_HEADERS];
  size_t stage_md_n;

  /* streams; mu guards what follows */
  pthread_mutex_t mu;
  int refs; /* outstanding operations and reserved items; freed at 0 */
  bool freeing;
  gtag recv_tag, send_tag, close_tag, status_tag;
  grpc_byte_buffer *recv_buf;
  grpc_byte_buffer *send_buf;
  bool reading, read_done, sending, sent_initial_md, status_started, closed, end_requested;
  bool flush_posted; /* a stream flush waits in the reply thread's queue */
  int end_code;
  char end_msg[256];
  gstream_item *head, *tail;
  int n_items; /* reserved and not yet sent */
};

/* Unary replies: a message (packed here), packed bytes (consumed), or an error. */
void gcall_reply(gcall *c, const ProtobufCMessage *msg);
void gcall_reply_buffer(gcall *c, grpc_byte_buffer *bb);
void gcall_reply_status(gcall *c, const inferd_status *st);
/* An error with this message; the gRPC code is core/status.c's for `code`, as for every status. */
void gcall_reply_error(gcall *c, inferd_code code, const char *msg);

/* Streams: reserve the next response slot (in order), fill it from any thread. bb NULL skips
 * the slot. gstream_push = reserve + send. */
gstream_item *gstream_reserve(gcall *c);
void gstream_send(gcall *c, gstream_item *it, grpc_byte_buffer *bb);
void gstream_push(gcall *c, grpc_byte_buffer *bb);
/* Ends the stream with this status (its gRPC code from core/status.c; INFERD_OK: OK) once
 * what is reserved has gone out. */
void gstream_end(gcall *c, inferd_code code, const char *msg);

/* Submits sr (serve_submit) after filling what every gRPC serve_request shares: arrival, the
 * client's deadline, the client-gone flag, the call's metadata, and (unary calls) the reply
 * headers' storage. UNAVAILABLE, unsubmitted, while the server drains. OK: sr's user is the
 * completion's from now on. */
inferd_status gcall_submit(gcall *c, serve_request *sr);

/* Sends bb (NULL: out of memory) as a request's answer: in the stream's slot item, or as the
 * unary call's reply when item is NULL. */
void gcall_answer(gcall *c, gstream_item *item, grpc_byte_buffer *bb);

/* Answers a call whose per-request state could not be allocated: a unary call with INTERNAL,
 * a stream by skipping its reserved slot item (no memory to encode a response). */
void gcall_fail_alloc(gcall *c, gstream_item *item);

/* The model (and version, "" when none resolved) the call named, for the access log. */
void gcall_set_model(gcall *c, const char *model, const char *version);

/* Protobuf <-> byte buffers. pb_pack returns NULL when out of memory. */
grpc_byte_buffer *pb_pack(const ProtobufCMessage *msg);
/* NULL when bb is not a valid message of that type. */
ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb);
/* The request message, or NULL after answering INVALID_ARGUMENT naming the message type. */
void *pb_unpack_or_reply(gcall *c, const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb);

/* The services' method tables (NULL-terminated) and their lifecycle hooks. */
extern rpc_method inference_service_methods[];
extern rpc_method health_service_methods[];
extern rpc_method model_service_methods[];

/* Health: Watch streams see status changes; called by the frontend. */
void health_start(grpcfe *fe);
void health_begin_drain(grpcfe *fe);
void health_stop(grpcfe *fe);

/* What the services need of the frontend. */
app *grpcfe_app(grpcfe *fe);
bool grpcfe_draining(grpcfe *fe);
void *grpcfe_health_state(grpcfe *fe);
void grpcfe_set_health_state(grpcfe *fe, void *state);

#endif
