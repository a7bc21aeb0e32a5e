#include "frontends/grpc/frontend.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/principal.h"
#include "observability/metrics.h"
#include "frontends/grpc/call.h"
#include "security/auth.h"
#include "security/tlsconf.h"
#include "util/log.h"
#include "util/monotime.h"

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))
/* Responses a stream may have reserved before it stops reading: a client that sends faster
 * than the server answers is held back by HTTP/2 flow control, not by memory. */
#define STREAM_MAX_PENDING 64
#define UNKNOWN_SLOTS 2

struct gstream_item {
  grpc_byte_buffer *bb;
  bool ready;
  struct gstream_item *next;
};

/* A call to a method no service registered: answered UNIMPLEMENTED. */
typedef struct unknown_call {
  gtag tag;
  grpcfe *fe;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
  grpc_slice status_details;
  int cancelled;
  bool replied;
} unknown_call;

struct grpcfe {
  app *app;
  atomic_long active_calls; /* arrived and not yet freed */
  /* TLS (NULL: plaintext): gRPC core keeps its own copy of the certificates and asks
   * fetch_certs for a new one at each handshake; tls_generation is the copy it has. */
  tlsconf *tls;
  _Atomic uint64_t tls_generation;
  bool test_subject_header; /* INFERD_TEST_CLIENT_SUBJECT_HEADER (docs/architecture.md) */
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t *threads;
  int n_threads;
  int port;
  int drain_timeout_ms;
  struct auth *auth; /* not owned */
  rpc_method *methods; /* owned: the services' tables, with gRPC core's handles */
  size_t n_methods;
  atomic_bool shutting_down;
  bool shutdown_started;
  gtag shutdown_tag;
  pthread_mutex_t mu; /* guards what follows */
  pthread_cond_t cv;
  bool shutdown_done;
  int live; /* gcalls and unknown_calls allocated, requested slots included */
  int64_t drain_started_ns;
  void *health;
  /* Sends started on other threads wait here for the reply thread (see post_to_reply_thread). */
  pthread_t reply_thread;
  bool reply_thread_started;
  pthread_mutex_t reply_mu; /* guards what follows */
  pthread_cond_t reply_cv;
  gcall *reply_head, *reply_tail;
  bool reply_stopping;
  request_ids ids; /* guarded by mu */
  /* the access log, gathered here and written by the reply thread (see access_log_call) */
  pthread_mutex_t log_mu; /* guards the buffer */
  char log_buf[LOG_ACCESS_FLUSH_BYTES + LOG_ACCESS_LINE_MAX];
  size_t log_len;
  atomic_llong log_due_ns; /* when the buffered lines must be written; 0: none buffered */
};

app *grpcfe_app(grpcfe *fe) { return fe->app; }
bool grpcfe_draining(grpcfe *fe) {
  return atomic_load(&fe->shutting_down) || atomic_load(&fe->app->draining);
}
void *grpcfe_health_state(grpcfe *fe) { return fe->health; }
void grpcfe_set_health_state(grpcfe *fe, void *state) { fe->health = state; }
long grpcfe_active_calls(const grpcfe *f) { return atomic_load(&((grpcfe *)f)->active_calls); }

void grpcfe_metrics_collect(void *ctx, metrics_text *out) {
  metrics_text_family(out, "inferd_grpc_active_calls", "gauge",
                      "gRPC calls under way now (gRPC core does not expose its connections).");
  metrics_text_printf(out, "inferd_grpc_active_calls %ld\n", grpcfe_active_calls(ctx));
}

int grpcfe_port(const grpcfe *f) { return f->port; }

static void live_add(grpcfe *fe, int d) {
  pthread_mutex_lock(&fe->mu);
  fe->live += d;
  if (fe->live == 0) pthread_cond_broadcast(&fe->cv);
  pthread_mutex_unlock(&fe->mu);
}

/* ---------------------------------------------------------------------------------------- */
/* protobuf <-> byte buffers */

static void free_packed(void *p) { free(p); }

grpc_byte_buffer *pb_pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) return NULL;
  protobuf_c_message_pack(msg, buf);
  /* the slice takes the buffer: no copy on the way out */
  grpc_slice s = grpc_slice_new(buf, n, free_packed);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
  if (bb == NULL) return protobuf_c_message_unpack(d, NULL, 0, (const uint8_t *)"");
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r); /* one slice: a ref, or a copy of several */
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return m;
}

void *pb_unpack_or_reply(gcall *c, const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
  ProtobufCMessage *m = pb_unpack(d, bb);
  if (m == NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "the request is not a valid %s message", d->name);
    gcall_reply_error(c, INFERD_INVALID_ARGUMENT, msg);
  }
  return m;
}

/* ---------------------------------------------------------------------------------------- */
/* the reply thread */

/* grpc_call_start_batch writes to the socket on the thread that calls it. A worker that has
 * just finished an inference would then spend its time in gRPC core and the kernel instead of
 * running the next batch (with one instance, that worker is every request's bottleneck). So, as
 * the HTTP frontend posts replies back to the connection's loop, sends started off the
 * frontend's own threads go to one reply thread, which under load sends many per wake-up. */
static bool on_frontend_thread(const grpcfe *fe) {
  pthread_t self = pthread_self();
  if (fe->reply_thread_started && pthread_equal(self, fe->reply_thread)) return true;
  for (int i = 0; i < fe->n_threads; i++)
    if (pthread_equal(self, fe->threads[i])) return true;
  return false;
}

/* Runs fn(c) on the reply thread. A call is in the queue at most once at a time: the caller
 * makes sure of that (a unary call replies once; a stream posts one flush at a time). */
static void post_to_reply_thread(gcall *c, void (*fn)(gcall *c)) {
  grpcfe *fe = c->fe;
  c->post_fn = fn;
  c->post_next = NULL;
  pthread_mutex_lock(&fe->reply_mu);
  if (fe->reply_tail)
    fe->reply_tail->post_next = c;
  else
    fe->reply_head = c;
  fe->reply_tail = c;
  pthread_cond_signal(&fe->reply_cv);
  pthread_mutex_unlock(&fe->reply_mu);
}

static void access_log_flush(grpcfe *fe) {
  pthread_mutex_lock(&fe->log_mu);
  if (fe->log_len) log_write_lines(fe->log_buf, fe->log_len);
  fe->log_len = 0;
  atomic_store(&fe->log_due_ns, 0);
  pthread_mutex_unlock(&fe->log_mu);
}

/* The reply thread also writes the access log when its oldest line is LOG_ACCESS_FLUSH_MS old. */
static void *reply_main(void *arg) {
  grpcfe *fe = arg;
  pthread_mutex_lock(&fe->reply_mu);
  for (;;) {
    while (fe->reply_head == NULL && !fe->reply_stopping) {
      int64_t due = atomic_load(&fe->log_due_ns);
      if (due == 0) {
        pthread_cond_wait(&fe->reply_cv, &fe->reply_mu);
      } else if (monotime_ns() >= due) {
        pthread_mutex_unlock(&fe->reply_mu);
        access_log_flush(fe);
        pthread_mutex_lock(&fe->reply_mu);
      } else {
        struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
        pthread_cond_timedwait(&fe->reply_cv, &fe->reply_mu, &ts);
      }
    }
    if (fe->reply_head == NULL) break; /* stopping, and nothing left */
    gcall *c = fe->reply_head;
    fe->reply_head = fe->reply_tail = NULL;
    pthread_mutex_unlock(&fe->reply_mu);
    while (c) {
      gcall *next = c->post_next; /* read first: post_fn may free c */
      c->post_fn(c);
      c = next;
    }
    int64_t due = atomic_load(&fe->log_due_ns);
    if (due && monotime_ns() >= due) access_log_flush(fe);
    pthread_mutex_lock(&fe->reply_mu);
  }
  pthread_mutex_unlock(&fe->reply_mu);
  return NULL;
}

/* Stops the reply thread once what is queued has run. */
static void reply_thread_stop(grpcfe *fe) {
  pthread_mutex_lock(&fe->reply_mu);
  fe->reply_stopping = true;
  pthread_cond_signal(&fe->reply_cv);
  pthread_mutex_unlock(&fe->reply_mu);
  pthread_join(fe->reply_thread, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* calls */

/* The status the call ended with, as the client saw it. */
static int final_status(const gcall *c) {
  if (c->cancelled) return GRPC_STATUS_CANCELLED; /* the wire's own state: no inferd status */
  if (c->method->kind == RPC_UNARY) return c->reply_code;
  return c->end_requested ? c->end_code : GRPC_STATUS_OK;
}

/* One access-log line per call, in the HTTP lines' shape: method "gRPC", the RPC's path, and
 * the gRPC status code (0 is OK). Gathered here; the reply thread writes them. */
static void access_log_call(gcall *c) {
  grpcfe *fe = c->fe;
  int64_t now = monotime_ns();
  access_record r = {
      .request_id = c->request_id,
      .trace_id = c->trace_id[0] ? c->trace_id : NULL,
      .method = "gRPC",
      .path = c->method->path,
      .model = c->model[0] ? c->model : NULL,
      .version = c->version[0] ? c->version : NULL,
      .principal = c->principal ? c->principal->name : NULL,
      .status = final_status(c),
      .latency_us = (now - c->start_ns) / 1000,
      .bytes_in = c->bytes_in,
      .bytes_out = c->bytes_out,
      .arm = c->record.arm,
      .timed = c->record.done_ns != 0,
      .queue_us = c->record.queue_ns / 1000,
      .compute_us = c->record.compute_ns / 1000,
  };
  metrics_observe_reply(fe->app->metrics, SERVE_PROTOCOL_GRPC, &c->record, metrics_grpc_http_status(r.status),
                        c->start_ns, now, r.bytes_in, r.bytes_out);
  char line[LOG_ACCESS_LINE_MAX];
  size_t n = log_access_format(&r, line, sizeof line);
  pthread_mutex_lock(&fe->log_mu);
  bool first = fe->log_len == 0;
  memcpy(fe->log_buf + fe->log_len, line, n);
  fe->log_len += n;
  if (fe->log_len > LOG_ACCESS_FLUSH_BYTES) {
    log_write_lines(fe->log_buf, fe->log_len);
    fe->log_len = 0;
    atomic_store(&fe->log_due_ns, 0);
    first = false;
  } else if (first) {
    atomic_store(&fe->log_due_ns, monotime_ns() + (int64_t)LOG_ACCESS_FLUSH_MS * 1000000);
  }
  pthread_mutex_unlock(&fe->log_mu);
  if (first) { /* the reply thread may be asleep with nothing to time */
    pthread_mutex_lock(&fe->reply_mu);
    pthread_cond_signal(&fe->reply_cv);
    pthread_mutex_unlock(&fe->reply_mu);
  }
}

void gcall_set_model(gcall *c, const char *model, const char *version) {
  snprintf(c->model, sizeof c->model, "%s", model ? model : "");
  snprintf(c->version, sizeof c->version, "%s", version ? version : "");
}

static size_t buffer_bytes(grpc_byte_buffer *bb) { return bb ? grpc_byte_buffer_length(bb) : 0; }

static void free_call(gcall *c) {
  grpcfe *fe = c->fe;
  if (c->arrived) {
    access_log_call(c);
    atomic_fetch_sub(&fe->active_calls, 1);
  }
  if (c->call) grpc_call_unref(c->call);
  grpc_metadata_array_destroy(&c->md);
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  if (c->recv_buf) grpc_byte_buffer_destroy(c->recv_buf);
  if (c->send_buf) grpc_byte_buffer_destroy(c->send_buf);
  grpc_slice_unref(c->status_details);
  principal_unref(c->principal);
  free(c->client_subject);
  for (size_t i = 0; i < c->md_n * 2; i++) free(c->md_text[i]);
  free(c->md_text);
  for (size_t i = 0; i < c->stage_md_n; i++) {
    grpc_slice_unref(c->stage_md[i].key);
    grpc_slice_unref(c->stage_md[i].value);
  }
  while (c->head) {
    gstream_item *it = c->head;
    c->head = it->next;
    if (it->bb) grpc_byte_buffer_destroy(it->bb);
    free(it);
  }
  pthread_mutex_destroy(&c->mu);
  free(c);
  live_add(fe, -1);
}

static void on_arrival(gtag *t, bool ok);

static void request_slot(grpcfe *fe, rpc_method *m) {
  gcall *c = calloc(1, sizeof *c);
  if (c == NULL) {
    log_msg(LOG_ERROR, NULL, "gRPC: out of memory for a call slot of %s", m->path);
    return;
  }
  c->fe = fe;
  c->app = fe->app;
  c->method = m;
  c->status_details = grpc_empty_slice();
  grpc_metadata_array_init(&c->md);
  pthread_mutex_init(&c->mu, NULL);
  c->req_tag.fn = on_arrival;
  live_add(fe, 1);
  grpc_call_error e = grpc_server_request_registered_call(fe->server, m->handle, &c->call, &c->deadline, &c->md,
                                                          m->kind == RPC_UNARY ? &c->payload : NULL, fe->cq, fe->cq,
                                                          &c->req_tag);
  if (e != GRPC_CALL_OK) {
    if (!atomic_load(&fe->shutting_down))
      log_msg(LOG_ERROR, NULL, "gRPC: cannot request calls of %s: %s", m->path, grpc_call_error_to_string(e));
    c->call = NULL;
    free_call(c);
  }
}

/* The client's deadline, moved onto our monotonic clock (gRPC's clocks have their own epochs). */
static int64_t deadline_to_monotonic(gpr_timespec d) {
  if (d.tv_sec >= INT64_MAX / 4 || d.clock_type == GPR_TIMESPAN) return 0;
  gpr_timespec left = gpr_time_sub(d, gpr_now(d.clock_type));
  if (left.tv_sec > 100000000) return 0; /* years away: as good as none */
  int64_t ns = left.tv_sec * 1000000000 + left.tv_nsec;
  int64_t at = monotime_ns() + ns;
  return at ? at : 1;
}

static void start_batch(gcall *c, const grpc_op *ops, size_t n, gtag *tag) {
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
  if (e != GRPC_CALL_OK) {
    /* a bug in the order of operations: never expected; the call would leak, so say so */
    log_msg(LOG_ERROR, NULL, "gRPC: %s: grpc_call_start_batch failed: %s", c->method->path, grpc_call_error_to_string(e));
    abort();
  }
}

/* -- unary -- */

static void unlock_release(gcall *c);

/* Drops the reference an operation held; frees c when it was the last. */
static void release_ref(gcall *c) {
  pthread_mutex_lock(&c->mu);
  c->refs--;
  unlock_release(c);
}

static void on_unary_done(gtag *t, bool ok) {
  (void)ok;
  release_ref(container_of(t, gcall, req_tag));
}

static char *slice_text(grpc_slice s) {
  size_t n = GRPC_SLICE_LENGTH(s);
  char *t = malloc(n + 1);
  if (t) {
    memcpy(t, GRPC_SLICE_START_PTR(s), n);
    t[n] = '\0';
  }
  return t;
}

/* gRPC keys arrive lower-case; a lookup by an HTTP-style name ("X-User-Id") still matches. */
static const char *call_meta(void *ctx, const char *name) {
  gcall *c = ctx;
  if (c->md_text == NULL && c->md.count) {
    c->md_text = calloc(c->md.count * 2, sizeof(char *));
    if (c->md_text == NULL) return NULL;
    for (size_t i = 0; i < c->md.count; i++) {
      c->md_text[2 * i] = slice_text(c->md.metadata[i].key);
      c->md_text[2 * i + 1] = slice_text(c->md.metadata[i].value);
      c->md_n = i + 1;
      if (!c->md_text[2 * i] || !c->md_text[2 * i + 1]) break;
    }
  }
  for (size_t i = 0; i < c->md_n; i++)
    if (c->md_text[2 * i] && c->md_text[2 * i + 1] && strcasecmp(c->md_text[2 * i], name) == 0)
      return c->md_text[2 * i + 1];
  return NULL;
}

inferd_status gcall_submit(gcall *c, serve_request *sr) {
  sr->start_ns = c->start_ns;
  sr->deadline.client_deadline_ns = c->deadline_ns;
  sr->cancelled = &c->client_gone;
  sr->meta = call_meta;
  sr->meta_ctx = c;
  sr->principal = c->principal;
  sr->request_id = c->request_id;
  sr->trace_id = c->trace_id;
  sr->protocol = SERVE_PROTOCOL_GRPC;
  /* a stream answers many requests on one call: its responses carry no per-request headers,
   * and its log line no per-request timings */
  if (c->method->kind == RPC_UNARY) {
    sr->reply_headers = &c->stage_headers;
    sr->record = &c->record;
  }
  if (grpcfe_draining(c->fe)) return status_make(INFERD_UNAVAILABLE, "the server is shutting down");
  return serve_submit(c->app->serve, sr);
}

/* Starts the reply that unary_send stored in c. */
static void unary_start(gcall *c) {
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  for (int i = 0; i < c->stage_headers.n && c->stage_md_n < SERVE_MAX_REPLY_HEADERS; i++) {
    char key[sizeof c->stage_headers.h[0].name];
    size_t k = 0;
    for (; c->stage_headers.h[i].name[k]; k++) key[k] = (char)tolower((unsigned char)c->stage_headers.h[i].name[k]);
    key[k] = '\0';
    c->stage_md[c->stage_md_n].key = grpc_slice_from_copied_string(key);
    c->stage_md[c->stage_md_n++].value = grpc_slice_from_copied_string(c->stage_headers.h[i].value);
  }
  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].data.send_initial_metadata.count = c->stage_md_n;
  ops[n++].data.send_initial_metadata.metadata = c->stage_md_n ? c->stage_md : NULL;
  if (c->send_buf) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->send_buf;
    c->bytes_out = buffer_bytes(c->send_buf);
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = (grpc_status_code)c->reply_code;
  ops[n++].data.send_status_from_server.status_details =
      GRPC_SLICE_LENGTH(c->status_details) ? &c->status_details : NULL;
  /* the handler's reference passes to this batch */
  c->req_tag.fn = on_unary_done;
  start_batch(c, ops, n, &c->req_tag);
}

static void unary_send(gcall *c, grpc_byte_buffer *bb, int code, const char *msg) {
  c->send_buf = bb;
  c->reply_code = code;
  if (msg && *msg) c->status_details = grpc_slice_from_copied_string(msg);
  if (on_frontend_thread(c->fe))
    unary_start(c);
  else
    post_to_reply_thread(c, unary_start);
}

void gcall_reply_buffer(gcall *c, grpc_byte_buffer *bb) {
  if (bb == NULL)
    unary_send(c, NULL, status_grpc_code(INFERD_INTERNAL), "out of memory for the response");
  else
    unary_send(c, bb, status_grpc_code(INFERD_OK), NULL);
}

void gcall_reply(gcall *c, const ProtobufCMessage *msg) { gcall_reply_buffer(c, pb_pack(msg)); }

void gcall_reply_status(gcall *c, const inferd_status *st) {
  unary_send(c, NULL, status_grpc_code(st->code), st->msg);
}

void gcall_reply_error(gcall *c, inferd_code code, const char *msg) { unary_send(c, NULL, status_grpc_code(code), msg); }

/* -- streams -- */

static void maybe_read(gcall *c);
static void maybe_write(gcall *c);
static void maybe_finish(gcall *c);

/* Unlocks c; frees it when nothing refers to it any more. */
static void unlock_release(gcall *c) {
  bool last = c->refs == 0 && !c->freeing;
  if (last) c->freeing = true;
  pthread_mutex_unlock(&c->mu);
  if (!last) return;
  if (c->method->on_end) c->method->on_end(c);
  free_call(c);
}

/* A stream lives on after its credential may have been revoked or expired: each of its
 * messages checks the call's credential again against the current key store (one more digest
 * per message, as a unary call pays once), and a refusal ends the stream. The call keeps the
 * principal it started with, which requests still in flight point to. */
static inferd_status stream_still_admitted(gcall *c) {
  if (c->principal == NULL) return status_ok(); /* authentication off, or an open method */
  bool invalid = false;
  const principal *p = NULL;
  inferd_status st = auth_authenticate(c->fe->auth, call_meta, c, c->client_subject, (int64_t)time(NULL), &p, &invalid);
  principal_unref(p);
  return st;
}

static void on_recv(gtag *t, bool ok) {
  gcall *c = container_of(t, gcall, recv_tag);
  pthread_mutex_lock(&c->mu);
  c->refs--;
  grpc_byte_buffer *bb = c->recv_buf;
  c->recv_buf = NULL;
  c->bytes_in += buffer_bytes(bb);
  if (!ok || bb == NULL) c->read_done = true; /* half-close, or the call is gone */
  bool deliver = bb != NULL && !c->end_requested && !c->closed;
  /* `reading` stays set while the handler runs: a worker finishing an earlier request must
   * not start the next read, or the next message could be handled (and its response slot
   * reserved) before this one */
  if (deliver)
    c->refs++; /* the handler's use of c */
  else
    c->reading = false;
  pthread_mutex_unlock(&c->mu);
  if (deliver) {
    inferd_status still = stream_still_admitted(c);
    if (status_is_ok(&still))
      c->method->on_message(c, bb);
    else
      gstream_end(c, still.code, still.msg);
  }
  if (bb) grpc_byte_buffer_destroy(bb);
  pthread_mutex_lock(&c->mu);
  if (deliver) {
    c->refs--;
    c->reading = false;
  }
  maybe_read(c);
  maybe_write(c);
  maybe_finish(c);
  unlock_release(c);
}

static void maybe_read(gcall *c) {
  if (c->reading || c->read_done || c->closed || c->end_requested || c->n_items >= STREAM_MAX_PENDING) return;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_buf;
  c->reading = true;
  c->refs++;
  start_batch(c, &op, 1, &c->recv_tag);
}

static void on_sent(gtag *t, bool ok) {
  gcall *c = container_of(t, gcall, send_tag);
  pthread_mutex_lock(&c->mu);
  c->sending = false;
  c->refs--;
  c->n_items--;
  if (c->send_buf) grpc_byte_buffer_destroy(c->send_buf);
  c->send_buf = NULL;
  if (!ok) c->closed = true; /* the client is gone: nothing more will go out */
  maybe_read(c);
  maybe_write(c);
  maybe_finish(c);
  unlock_release(c);
}

/* The first send of a call carries the initial metadata: puts that op in ops[0] when it is
 * still due; returns how many ops it put. */
static size_t initial_metadata_op(gcall *c, grpc_op *ops) {
  if (c->sent_initial_md) return 0;
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  c->sent_initial_md = true;
  return 1;
}

static void maybe_write(gcall *c) {
  while (c->head && c->head->ready && !c->sending) {
    gstream_item *it = c->head;
    c->head = it->next;
    if (c->head == NULL) c->tail = NULL;
    grpc_byte_buffer *bb = it->bb;
    free(it);
    if (bb == NULL || c->closed) { /* a skipped slot, or no one to send to */
      if (bb) grpc_byte_buffer_destroy(bb);
      c->n_items--;
      continue;
    }
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = initial_metadata_op(c, ops);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = bb;
    c->bytes_out += buffer_bytes(bb);
    c->send_buf = bb;
    c->sending = true;
    c->refs++;
    start_batch(c, ops, n, &c->send_tag);
  }
}

static void on_status_sent(gtag *t, bool ok) {
  (void)ok;
  release_ref(container_of(t, gcall, status_tag));
}

static void maybe_finish(gcall *c) {
  if (c->status_started || c->sending || c->head) return;
  if (c->reading && !c->end_requested) return; /* a status may go out with a read pending */
  bool input_over = c->read_done || c->closed || c->end_requested;
  if (!input_over) return;
  if (c->keep_open && !c->end_requested && !c->closed) return;
  c->status_started = true;
  if (c->closed) return; /* cancelled: no status to send */
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = initial_metadata_op(c, ops);
  int code = c->end_requested ? c->end_code : GRPC_STATUS_OK;
  const char *msg = c->end_requested ? c->end_msg : "";
  if (*msg) c->status_details = grpc_slice_from_copied_string(msg);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = (grpc_status_code)code;
  ops[n++].data.send_status_from_server.status_details = *msg ? &c->status_details : NULL;
  c->refs++;
  start_batch(c, ops, n, &c->status_tag);
}

static void on_close(gtag *t, bool ok) {
  (void)ok;
  gcall *c = container_of(t, gcall, close_tag);
  pthread_mutex_lock(&c->mu);
  c->refs--;
  if (c->cancelled) atomic_store(&c->client_gone, true);
  if (c->method->kind == RPC_UNARY) { /* the reply's own completion frees it */
    unlock_release(c);
    return;
  }
  if (c->cancelled || !c->status_started) c->closed = true;
  maybe_write(c); /* drops what can no longer be sent */
  maybe_finish(c);
  unlock_release(c);
}

/* Watches for the end of the call: RECV_CLOSE_ON_SERVER completes when the call ends, by our
 * status or by the client going away (cancel, deadline, disconnect). */
static void watch_close(gcall *c) {
  c->recv_tag.fn = on_recv;
  c->send_tag.fn = on_sent;
  c->close_tag.fn = on_close;
  c->status_tag.fn = on_status_sent;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->cancelled;
  c->refs++;
  start_batch(c, &op, 1, &c->close_tag);
}

gstream_item *gstream_reserve(gcall *c) {
  gstream_item *it = calloc(1, sizeof *it);
  pthread_mutex_lock(&c->mu);
  if (it == NULL || c->freeing) {
    pthread_mutex_unlock(&c->mu);
    free(it);
    return NULL;
  }
  if (c->tail)
    c->tail->next = it;
  else
    c->head = it;
  c->tail = it;
  c->n_items++;
  c->refs++; /* until it is filled */
  pthread_mutex_unlock(&c->mu);
  return it;
}

/* Starts whatever a stream can start now: the next send, read or final status. */
static void stream_flush_locked(gcall *c) {
  maybe_write(c);
  maybe_read(c);
  maybe_finish(c);
}

static void stream_flush_posted(gcall *c) {
  pthread_mutex_lock(&c->mu);
  c->flush_posted = false;
  c->refs--;
  stream_flush_locked(c);
  unlock_release(c);
}

/* With c->mu held: flushes now on a frontend thread, else has the reply thread do it (once,
 * however many workers ask before it runs). Unlocks c. */
static void stream_flush_unlock(gcall *c) {
  if (on_frontend_thread(c->fe)) {
    stream_flush_locked(c);
  } else if (!c->flush_posted) {
    c->flush_posted = true;
    c->refs++; /* the posted flush's */
    post_to_reply_thread(c, stream_flush_posted);
  }
  unlock_release(c);
}

void gstream_send(gcall *c, gstream_item *it, grpc_byte_buffer *bb) {
  if (it == NULL) { /* the reservation failed: nothing holds c for it */
    if (bb) grpc_byte_buffer_destroy(bb);
    return;
  }
  pthread_mutex_lock(&c->mu);
  it->bb = bb;
  it->ready = true;
  c->refs--;
  stream_flush_unlock(c);
}

void gstream_push(gcall *c, grpc_byte_buffer *bb) { gstream_send(c, gstream_reserve(c), bb); }

void gcall_answer(gcall *c, gstream_item *item, grpc_byte_buffer *bb) {
  if (item)
    gstream_send(c, item, bb);
  else
    gcall_reply_buffer(c, bb);
}

void gcall_fail_alloc(gcall *c, gstream_item *item) {
  if (item)
    gstream_send(c, item, NULL);
  else
    gcall_reply_error(c, INFERD_INTERNAL, "out of memory");
}

void gstream_end(gcall *c, inferd_code code, const char *msg) {
  pthread_mutex_lock(&c->mu);
  if (c->freeing) {
    pthread_mutex_unlock(&c->mu);
    return;
  }
  if (!c->end_requested) {
    c->end_requested = true;
    c->end_code = status_grpc_code(code);
    snprintf(c->end_msg, sizeof c->end_msg, "%s", msg ? msg : "");
  }
  stream_flush_unlock(c);
}

/* The client's x-request-id metadata when usable, else a new id. */
static void set_request_id(gcall *c) {
  for (size_t i = 0; i < c->md.count; i++) {
    const grpc_metadata *m = &c->md.metadata[i];
    if (!grpc_slice_str_cmp(m->key, "x-request-id")) {
      size_t n = GRPC_SLICE_LENGTH(m->value);
      if (n > REQUEST_ID_MAX) break;
      memcpy(c->request_id, GRPC_SLICE_START_PTR(m->value), n);
      c->request_id[n] = '\0';
      if (strlen(c->request_id) == n && request_id_usable(c->request_id)) return;
      break;
    }
  }
  pthread_mutex_lock(&c->fe->mu);
  request_id_new(&c->fe->ids, c->request_id, sizeof c->request_id);
  pthread_mutex_unlock(&c->fe->mu);
}

/* Who is calling, and may they call this method: once per call, from its metadata
 * (authorization, x-api-key) or its verified client certificate. Open methods (the health
 * probes) skip it; an inference method needs infer:<model>, which the admit stage checks per
 * request once the model is known. */
static inferd_status admit_call(gcall *c) {
  auth *au = c->fe->auth;
  if (!auth_enabled(au)) return status_ok();
  const char *need = c->method->scope ? c->method->scope : scope_for_pattern(c->method->path);
  if (scope_is_open(need)) return status_ok();
  bool invalid = false;
  const principal *p = NULL;
  TRY(auth_authenticate(au, call_meta, c, c->client_subject, (int64_t)time(NULL), &p, &invalid));
  c->principal = p;
  return auth_check(au, p, need, NULL);
}

/* The client certificate's subject from the call's auth context: gRPC core's x509_subject,
 * RFC 2253 like the HTTP port's. Present only when the certificate verified against the client
 * CA (the credentials ask for it "and verify"). */
static void set_client_subject(gcall *c) {
  grpc_auth_context *ac = grpc_call_auth_context(c->call);
  if (ac == NULL) return;
  grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ac, GRPC_X509_SUBJECT_PROPERTY_NAME);
  const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
  if (p && p->value_length > 0) c->client_subject = strndup(p->value, p->value_length);
  grpc_auth_context_release(ac);
  if (c->client_subject && c->fe->test_subject_header)
    serve_headers_add(&c->stage_headers, "X-Test-Client-Subject", c->client_subject);
}

static void on_arrival(gtag *t, bool ok) {
  gcall *c = container_of(t, gcall, req_tag);
  grpcfe *fe = c->fe;
  if (!ok) { /* the server is shutting down: the slot goes away unused */
    free_call(c);
    return;
  }
  if (!atomic_load(&fe->shutting_down)) request_slot(fe, (rpc_method *)c->method);
  c->start_ns = monotime_ns();
  c->deadline_ns = deadline_to_monotonic(c->deadline);
  c->arrived = true;
  atomic_fetch_add(&fe->active_calls, 1);
  c->bytes_in = buffer_bytes(c->payload);
  set_request_id(c);
  if (fe->tls && tlsconf_client_mode(fe->tls) != TLSCONF_CLIENT_NONE) set_client_subject(c);
  inferd_status admitted = admit_call(c);
  pthread_mutex_lock(&c->mu);
  watch_close(c);
  if (c->method->kind == RPC_UNARY) {
    c->refs++; /* the handler's, until it replies */
    pthread_mutex_unlock(&c->mu);
    grpc_byte_buffer *bb = c->payload;
    c->payload = NULL; /* the handler may reply (and c be freed) before it returns */
    if (status_is_ok(&admitted))
      c->method->on_unary(c, bb);
    else
      gcall_reply_status(c, &admitted); /* the handler's reference passes to the reply */
    if (bb) grpc_byte_buffer_destroy(bb);
  } else {
    if (status_is_ok(&admitted)) {
      maybe_read(c);
    } else { /* no message is read: the status goes out at once */
      c->end_requested = true;
      c->end_code = status_grpc_code(admitted.code);
      snprintf(c->end_msg, sizeof c->end_msg, "%s", admitted.msg);
      maybe_finish(c);
    }
    unlock_release(c);
  }
}

/* -- methods nobody serves -- */

static void request_unknown(grpcfe *fe);

static void on_unknown(gtag *t, bool ok) {
  unknown_call *u = container_of(t, unknown_call, tag);
  grpcfe *fe = u->fe;
  if (ok && !u->replied) {
    if (!atomic_load(&fe->shutting_down)) request_unknown(fe);
    char msg[512];
    size_t len = GRPC_SLICE_LENGTH(u->details.method);
    snprintf(msg, sizeof msg, "inferd serves no method '%.*s' (services: inference.GRPCInferenceService, inferd.ModelService, grpc.health.v1.Health)",
             (int)(len > 300 ? 300 : len), (const char *)GRPC_SLICE_START_PTR(u->details.method));
    u->status_details = grpc_slice_from_copied_string(msg);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &u->status_details;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &u->cancelled;
    u->replied = true;
    if (grpc_call_start_batch(u->call, ops, 3, &u->tag, NULL) == GRPC_CALL_OK) return;
  }
  if (u->call) grpc_call_unref(u->call);
  grpc_call_details_destroy(&u->details);
  grpc_metadata_array_destroy(&u->md);
  grpc_slice_unref(u->status_details);
  free(u);
  live_add(fe, -1);
}

static void request_unknown(grpcfe *fe) {
  unknown_call *u = calloc(1, sizeof *u);
  if (u == NULL) return;
  u->fe = fe;
  u->tag.fn = on_unknown;
  u->status_details = grpc_empty_slice();
  grpc_call_details_init(&u->details);
  grpc_metadata_array_init(&u->md);
  live_add(fe, 1);
  if (grpc_server_request_call(fe->server, &u->call, &u->details, &u->md, fe->cq, fe->cq, &u->tag) != GRPC_CALL_OK) {
    u->replied = true;
    on_unknown(&u->tag, false);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* the server */

static void *cq_main(void *arg) {
  grpcfe *fe = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(fe->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) {
      gtag *t = ev.tag;
      t->fn(t, ev.success != 0);
    }
  }
  return NULL;
}

static void on_shutdown(gtag *t, bool ok) {
  (void)ok;
  grpcfe *fe = container_of(t, grpcfe, shutdown_tag);
  pthread_mutex_lock(&fe->mu);
  fe->shutdown_done = true;
  pthread_cond_broadcast(&fe->cv);
  pthread_mutex_unlock(&fe->mu);
}

static inferd_status add_methods(grpcfe *fe) {
  rpc_method *tables[] = {inference_service_methods, health_service_methods, model_service_methods};
  size_t n = 0;
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (rpc_method *m = tables[t]; m->path; m++) n++;
  fe->methods = calloc(n, sizeof *fe->methods);
  if (fe->methods == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (rpc_method *m = tables[t]; m->path; m++) {
      rpc_method *c = &fe->methods[fe->n_methods++];
      *c = *m;
      c->handle = grpc_server_register_method(fe->server, c->path, NULL,
                                              c->kind == RPC_UNARY ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                                                   : GRPC_SRM_PAYLOAD_NONE,
                                              0);
      if (c->handle == NULL) return status_make(INFERD_INTERNAL, "gRPC: cannot register method %s", c->path);
    }
  return status_ok();
}

/* The last of a teardown, once gRPC core's server, queue and threads are gone. */
static void free_frontend(grpcfe *fe) {
  free(fe->threads);
  free(fe->methods);
  pthread_mutex_destroy(&fe->mu);
  pthread_cond_destroy(&fe->cv);
  pthread_mutex_destroy(&fe->reply_mu);
  pthread_cond_destroy(&fe->reply_cv);
  pthread_mutex_destroy(&fe->log_mu);
  free(fe);
  grpc_shutdown_blocking();
}

/* Tears down a server that never started serving (an error at creation). */
static void destroy_unstarted(grpcfe *fe) {
  if (fe->reply_thread_started) reply_thread_stop(fe);
  if (fe->server) {
    grpc_server_shutdown_and_notify(fe->server, fe->cq, &fe->shutdown_tag);
    for (;;) {
      grpc_event ev = grpc_completion_queue_next(fe->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
      if (ev.type == GRPC_OP_COMPLETE && ev.tag == &fe->shutdown_tag) break;
    }
    grpc_server_destroy(fe->server);
  }
  if (fe->cq) {
    grpc_completion_queue_shutdown(fe->cq);
    while (grpc_completion_queue_next(fe->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(fe->cq);
  }
  free_frontend(fe);
}

/* gRPC core's certificate fetcher: called at start and before each handshake; hands over the
 * certificates only when a reload has changed them, so an unchanged handshake costs a lock. */
static grpc_ssl_certificate_config_reload_status fetch_certs(void *user, grpc_ssl_server_certificate_config **config) {
  grpcfe *fe = user;
  if (tlsconf_generation(fe->tls) == atomic_load(&fe->tls_generation)) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  uint64_t gen;
  char *cert, *key, *ca;
  if (!tlsconf_pem(fe->tls, &gen, &cert, &key, &ca)) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
  grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
  /* gRPC core 1.51 asserts a fetched config has client roots even when it asks for no client
   * certificate; without --tls-client-ca it asks for none and never consults them, so the
   * server's own chain stands in */
  *config = grpc_ssl_server_certificate_config_create(ca ? ca : cert, &pair, 1); /* copies them */
  tlsconf_pem_free(cert, key, ca);
  atomic_store(&fe->tls_generation, gen);
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

/* TLS with --tls-client-auth's client certificate rule: optional asks for one and verifies
 * it when given (an invalid one fails the handshake, as on the HTTP port). */
static grpc_server_credentials *tls_credentials(grpcfe *fe) {
  grpc_ssl_client_certificate_request_type req = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  switch (tlsconf_client_mode(fe->tls)) {
    case TLSCONF_CLIENT_NONE: break;
    case TLSCONF_CLIENT_OPTIONAL: req = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY; break;
    case TLSCONF_CLIENT_REQUIRED: req = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY; break;
  }
  grpc_ssl_server_credentials_options *o = grpc_ssl_server_credentials_create_options_using_config_fetcher(req, fetch_certs, fe);
  return grpc_ssl_server_credentials_create_with_options(o);
}

inferd_status grpcfe_create(const grpcfe_options *opts, app *a, grpcfe **out) {
  grpc_init();
  grpcfe *fe = calloc(1, sizeof *fe);
  if (fe == NULL) {
    grpc_shutdown_blocking();
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  fe->app = a;
  fe->tls = opts->tls;
  fe->test_subject_header = getenv("INFERD_TEST_CLIENT_SUBJECT_HEADER") != NULL;
  fe->drain_timeout_ms = opts->drain_timeout_ms;
  fe->auth = opts->auth;
  fe->shutdown_tag.fn = on_shutdown;
  pthread_mutex_init(&fe->mu, NULL);
  pthread_cond_init(&fe->cv, NULL);
  pthread_mutex_init(&fe->reply_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the log's due time is monotime_ns() */
  pthread_cond_init(&fe->reply_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&fe->log_mu, NULL);
  request_ids_init(&fe->ids);

  grpc_arg args[4];
  memset(args, 0, sizeof args);
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = opts->max_message_bytes;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = opts->max_message_bytes;
  /* request metadata up to 64 KiB, as HTTP's request head: gRPC's 8 KiB default would refuse
   * a bearer token over the JWT verifier's own limit (8 KiB) with RESOURCE_EXHAUSTED before
   * authentication could answer UNAUTHENTICATED */
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = (char *)GRPC_ARG_MAX_METADATA_SIZE;
  args[2].value.integer = 64 * 1024;
  /* no SO_REUSEPORT: gRPC core sets it by default, and then a second server started on the same
   * port (another replica, a stale process) binds too and silently takes half the connections;
   * the port must be refused as taken, as the HTTP port is */
  args[3].type = GRPC_ARG_INTEGER;
  args[3].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
  args[3].value.integer = 0;
  grpc_channel_args cargs = {.num_args = 4, .args = args};
  fe->server = grpc_server_create(&cargs, NULL);
  fe->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(fe->server, fe->cq, NULL);
  inferd_status st = add_methods(fe);
  if (!status_is_ok(&st)) {
    destroy_unstarted(fe);
    return st;
  }
  char addr[300];
  snprintf(addr, sizeof addr, strchr(opts->host, ':') ? "[%s]:%d" : "%s:%d", opts->host, opts->port);
  grpc_server_credentials *creds = fe->tls ? tls_credentials(fe) : grpc_insecure_server_credentials_create();
  fe->port = grpc_server_add_http2_port(fe->server, addr, creds);
  grpc_server_credentials_release(creds);
  if (fe->port == 0) {
    destroy_unstarted(fe);
    return status_make(INFERD_UNAVAILABLE, "cannot listen for gRPC on %s (address in use, or not an address of this host)", addr);
  }
  grpc_server_start(fe->server);

  if (pthread_create(&fe->reply_thread, NULL, reply_main, fe) != 0) {
    destroy_unstarted(fe);
    return status_make(INFERD_INTERNAL, "cannot start the gRPC reply thread");
  }
  pthread_setname_np(fe->reply_thread, "grpc-reply");
  fe->reply_thread_started = true;
  fe->threads = calloc((size_t)opts->threads, sizeof(pthread_t));
  for (int i = 0; fe->threads && i < opts->threads; i++) {
    if (pthread_create(&fe->threads[i], NULL, cq_main, fe) != 0) break;
    pthread_setname_np(fe->threads[i], "grpc-cq");
    fe->n_threads++;
  }
  if (fe->n_threads == 0) {
    destroy_unstarted(fe);
    return status_make(INFERD_INTERNAL, "cannot start the gRPC threads");
  }
  for (size_t i = 0; i < fe->n_methods; i++)
    for (int s = 0; s < fe->methods[i].slots; s++) request_slot(fe, &fe->methods[i]);
  for (int s = 0; s < UNKNOWN_SLOTS; s++) request_unknown(fe);
  health_start(fe);
  *out = fe;
  return status_ok();
}

void grpcfe_begin_drain(grpcfe *fe) {
  if (fe->shutdown_started) return;
  fe->shutdown_started = true;
  atomic_store(&fe->shutting_down, true);
  pthread_mutex_lock(&fe->mu);
  fe->drain_started_ns = monotime_ns();
  pthread_mutex_unlock(&fe->mu);
  grpc_server_shutdown_and_notify(fe->server, fe->cq, &fe->shutdown_tag);
  health_begin_drain(fe);
}

/* Waits for the shutdown notification until deadline_ns (0: for ever); true when it came. */
static bool wait_shutdown(grpcfe *fe, int64_t deadline_ns) {
  pthread_mutex_lock(&fe->mu);
  while (!fe->shutdown_done) {
    if (deadline_ns == 0) {
      pthread_cond_wait(&fe->cv, &fe->mu);
      continue;
    }
    int64_t left = deadline_ns - monotime_ns();
    if (left <= 0) break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (left < 50000000 ? left : 50000000);
    ts.tv_sec = at / 1000000000;
    ts.tv_nsec = at % 1000000000;
    pthread_cond_timedwait(&fe->cv, &fe->mu, &ts);
  }
  bool done = fe->shutdown_done;
  pthread_mutex_unlock(&fe->mu);
  return done;
}

void grpcfe_drain(grpcfe *fe) {
  grpcfe_begin_drain(fe);
  int64_t deadline = fe->drain_started_ns + (int64_t)fe->drain_timeout_ms * 1000000;
  /* answers handed over at the deadline (the generations the shutdown ended, main's stop) get a
   * moment to go out before what is left is cancelled */
  int64_t grace = monotime_ns() + 500000000;
  if (!wait_shutdown(fe, deadline > grace ? deadline : grace)) {
    log_msg(LOG_WARN, NULL, "gRPC: calls still open after the drain timeout: cancelling them");
    grpc_server_cancel_all_calls(fe->server);
  }
}

void grpcfe_destroy(grpcfe *fe) {
  if (fe == NULL) return;
  grpcfe_begin_drain(fe);
  if (!wait_shutdown(fe, monotime_ns() + (int64_t)fe->drain_timeout_ms * 1000000 + 1)) {
    grpc_server_cancel_all_calls(fe->server);
    wait_shutdown(fe, 0);
  }
  /* the calls the workers answered after the drain may still be completing */
  pthread_mutex_lock(&fe->mu);
  while (fe->live > 0) pthread_cond_wait(&fe->cv, &fe->mu);
  pthread_mutex_unlock(&fe->mu);
  reply_thread_stop(fe); /* no call is left to post a reply */
  access_log_flush(fe);
  health_stop(fe);
  grpc_server_destroy(fe->server);
  grpc_completion_queue_shutdown(fe->cq);
  for (int i = 0; i < fe->n_threads; i++) pthread_join(fe->threads[i], NULL);
  grpc_completion_queue_destroy(fe->cq);
  free_frontend(fe);
}
