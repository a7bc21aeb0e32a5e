/* core/serve: the one entry point of every inference, whatever the protocol. A frontend decodes
 * its protocol into a serve_request and calls serve_submit, which runs the pipeline's named
 * stages in a fixed order; later features plug handlers into those stages (docs/architecture.md). */
#ifndef INFERD_SERVE_H
#define INFERD_SERVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/infer.h"
#include "core/status.h"

struct app;
typedef struct serve serve;

/* The stages, in the order they run. Request stages (admit .. fork) run on the frontend's
 * thread inside serve_submit; completion stages (stats .. log) run on the worker that finished
 * the request, before the frontend's on_done (the reply). */
typedef enum {
  SERVE_STAGE_ADMIT,    /* who is calling and may they (security, rate limits): handlers only */
  SERVE_STAGE_ROUTE,    /* name + version (or the policy's default) -> a counted version reference */
  SERVE_STAGE_CHECK,    /* ready, inputs valid against the signature, limits, the deadline */
  SERVE_STAGE_LOOKUP,   /* the prediction cache: handlers only */
  SERVE_STAGE_SCHEDULE, /* hand-off to the scheduler (handlers run just before it) */
  SERVE_STAGE_FORK,     /* shadow copies: handlers only, run before the hand-off (the request is
                           the scheduler's after it); their status is ignored */
  SERVE_STAGE_STATS,    /* completion: the version's statistics */
  SERVE_STAGE_TRACE,
  SERVE_STAGE_DRIFT,
  SERVE_STAGE_CACHE_STORE,
  SERVE_STAGE_LOG,
  SERVE_STAGE_COUNT
} serve_stage;

const char *serve_stage_name(serve_stage s);

typedef struct serve_request serve_request;
struct principal; /* security/'s: who is calling */

/* Reply headers the stages add (X-Model-Version, X-Model-Arm, RateLimit, traceparent, Server-Timing, X-Cache):
 * the frontend owns the storage (in its call, alive until the reply) and sends them with the
 * reply: HTTP headers, gRPC initial metadata (names lower-cased). Request stages add on the
 * frontend's thread, completion stages on the worker before on_done posts the reply, so no lock
 * is needed. Bounded: an add past the bound, or too long, is dropped. */
#define SERVE_MAX_REPLY_HEADERS 12
typedef struct serve_headers {
  int n;
  struct {
    char name[32];
    char value[224];
  } h[SERVE_MAX_REPLY_HEADERS];
} serve_headers;
void serve_headers_add(serve_headers *h, const char *name, const char *value);
/* The same with the lengths known (name[0..nl), value[0..vl), no NUL needed): no strlen. */
void serve_headers_addn(serve_headers *h, const char *name, size_t nl, const char *value, size_t vl);

/* The protocol a request came in by: a bounded label for metrics and logs. */
typedef enum { SERVE_PROTOCOL_OTHER, SERVE_PROTOCOL_HTTP, SERVE_PROTOCOL_GRPC, SERVE_PROTOCOL_COUNT } serve_protocol;
const char *serve_protocol_name(serve_protocol p);

/* What a request's completion tells the frontend's access log and reply-time metrics: frontend
 * storage (in its call, alive until the reply), as reply_headers is. The core fills the timings
 * and the arm at completion, before the completion stages run; stages fill the rest (the trace
 * id by tracing, `metrics` by observability at route). Not used for stream messages (many
 * requests share one call). */
typedef struct serve_record {
  int64_t done_ns;    /* monotonic, when the completion began; 0: never handed off */
  int64_t queue_ns;   /* waiting in the scheduler (batching delay included) */
  int64_t compute_ns; /* the batch's input gathering + Run + output hand-out */
  int64_t batch_size;
  char arm[32];
  void *metrics;      /* observability's series for the routed version; NULL: none */
  bool observed;      /* the completion's metrics have counted the request */
} serve_record;

/* A registered handler. Request stages: sr is the request (req is NULL at admit, before the
 * version is known); a status other than OK ends the request with it (e.g. 401, 429 later).
 * Completion stages: sr is NULL, req holds the result; the status returned is ignored. */
typedef inferd_status (*serve_handler)(void *ctx, const serve_request *sr, infer_request *req);

/* The sources of a request's deadline: the frontend fills in those its protocol has. */
typedef struct serve_deadline_sources {
  int64_t client_deadline_ns;   /* gRPC: the client's deadline on the monotonic clock; 0: none */
  const char *timeout_header;   /* X-Request-Timeout-Ms as sent; NULL: none */
  int64_t param_timeout_us;     /* the V2 "timeout" parameter (REST and gRPC); 0: none */
  const char *param_timeout_what; /* how the protocol names it, for messages */
  int64_t model_default_us;     /* the model's default_timeout_us; 0: none (serve fills it in) */
} serve_deadline_sources;

/* THE deadline rule, for every protocol, counted from start_ns: the request's timeout is the
 * earlier of X-Request-Timeout-Ms and the timeout parameter, or the model's default when it
 * asked for none (so a request may ask for longer than the default); the deadline is the
 * earlier of that and the client's gRPC deadline. 0: none. INVALID_ARGUMENT naming the source when a timeout is
 * malformed, negative or over a day (checked even when another source is earlier). */
inferd_status serve_deadline(const serve_deadline_sources *src, int64_t start_ns, int64_t *deadline_ns);

#define SERVE_TRACE_ID_SIZE 33

struct serve_request {
  /* route */
  const char *model;   /* required */
  const char *version; /* NULL or "": the model's default version */
  /* check */
  int64_t start_ns; /* arrival, monotonic */
  serve_deadline_sources deadline;
  int priority;              /* 0: the model's default */
  const char *priority_what; /* how the protocol names it, for messages */
  /* Fills req's inputs (and output names) from the protocol's body, once the version is
   * known (req->mv, sr->routed_version); may set sr's deadline sources and priority when the
   * body carries them. Runs between route and check, on the frontend's thread. */
  inferd_status (*decode)(serve_request *sr, infer_request *req);
  const _Atomic bool *cancelled; /* the frontend's "client has gone" flag; may be NULL */
  infer_done_fn on_done;         /* the reply: runs once on a worker; must destroy req */
  void *user;
  /* The request's metadata by name, case-insensitively: HTTP headers or gRPC metadata (keys
   * lower-case), for stages that read a credential, a sticky key or a trace context. NULL: none. */
  const char *(*meta)(void *meta_ctx, const char *name);
  void *meta_ctx;
  /* Who is calling, as the frontend's authentication established it (security/); NULL when
   * security is off. Must outlive the request: serve copies the pointer to req->principal. */
  const struct principal *principal;
  /* The named field of the request's records, for a sticky key (the /v1 predict route; NULL
   * elsewhere): *value is the field's text (a string, or an integer's digits), NULL when no
   * record has it; alive until decode. Not OK (INVALID_ARGUMENT, naming the records) when the
   * records disagree on it or it is neither a string nor an integer. Called by route, before
   * decode (the frontend keeps what it parsed for decode). */
  inferd_status (*record_field)(void *record_ctx, const char *name, const char **value);
  void *record_ctx;
  serve_headers *reply_headers; /* the frontend's, see serve_headers; may be NULL */
  /* serve's: the end hooks of this request (serve_on_end); serve_submit points it at its own. */
  infer_end_hooks *ends;
  /* For traces and the access log: the frontend's request id, alive as long as the
   * serve_request; and where the trace stage writes the request's trace id (SERVE_TRACE_ID_SIZE
   * bytes: 32 hex digits and a NUL, "" when not traced), the frontend's storage, read by its
   * access log. Each may be NULL. */
  const char *request_id;
  char *trace_id;
  serve_protocol protocol;      /* set by http_call_serve_init / gcall_serve_init */
  serve_record *record;         /* the frontend's, see serve_record; may be NULL */
  /* Out, set by route even when a later stage fails: for the access log and replies. */
  char routed_version[32];
  /* A text generation (generate/engine.h's gen_request, the frontend's storage alive until
   * on_done); NULL for a tensor inference. Check skips the tensor validation, lookup and fork
   * do not run, and the hand-off goes to the generator (serve_set_generator) instead of the
   * scheduler. */
  void *generate;
};

/* A lookup handler may take the request instead of letting it go on to the scheduler (the
 * prediction cache does, for a hit and for a request identical to one already running). It
 * calls one of these on req and returns OK; serve_submit then returns OK and on_done runs
 * exactly once, as for a scheduled request:
 * - serve_answer: the handler has filled req->outputs (n_outputs of them) and req->status;
 *   serve runs the completion stages and on_done at once, on the calling (frontend) thread,
 *   before serve_submit returns. The frontends already expect on_done to run at any time
 *   after the hand-off, so an early reply is no new case for them.
 * - serve_park: the handler keeps req; later, on any thread, it either answers it
 *   (req->outputs/status filled, then serve_complete) or sends it on (serve_resume: to the
 *   scheduler, as if the lookup had let it through). Fork handlers never see a taken request.
 * A request a lookup handler let through may still be ended by a schedule-stage handler; the
 * handler that made others wait on it (the cache's coalescing) learns of it only through the
 * completion stages, which then do not run: no schedule-stage handler may end a request while
 * the cache is installed (none does today). */
void serve_answer(infer_request *req);
void serve_park(infer_request *req);
/* A parked request: run its completion stages and on_done on this thread. */
void serve_complete(infer_request *req);
/* A parked request: hand it to the scheduler. */
void serve_resume(infer_request *req);

/* Runs the pipeline. OK: the request was handed to the scheduler and on_done will run exactly
 * once. Otherwise the request ended at a stage (nothing was handed over; on_done will not run)
 * and the status says why: the frontend answers it. */
inferd_status serve_submit(serve *s, serve_request *sr);

/* From a request stage's handler: fn(ctx, arg, status) runs exactly once when this request ends,
 * whichever way: refused by a later handler or stage (status: why), or completed on a worker
 * (status: the result; it runs there before the completion stages and the reply). Why: a
 * handler that takes something for the request's lifetime (a concurrency slot) must give it
 * back on every path, and only serve sees them all; a completion stage alone would miss the
 * requests that a later stage refuses. Hooks run in reverse order of registration.
 * INTERNAL when the request has no room for one more (INFER_MAX_END_HOOKS) or sr is not being
 * submitted; fn has then not been recorded. */
inferd_status serve_on_end(const serve_request *sr, infer_end_fn fn, void *ctx, void *arg);

/* sr's metadata entry `name`, or NULL (also when the frontend gave no lookup). */
const char *serve_meta(const serve_request *sr, const char *name);

/* Adds a handler to a stage; handlers of a stage run in registration order, after the stage's
 * own work. Register before serving starts (not thread-safe against serve_submit). */
inferd_status serve_register(serve *s, serve_stage stage, serve_handler fn, void *ctx);

/* The route stage's resolver (traffic/ sets it; the core cannot include traffic/): turns the
 * request's model, version-or-alias (sr->version) and sticky key (read from sr: serve_meta,
 * sr->principal) into a concrete version number and the arm of the model's split. version
 * "" leaves the choice to the repository (the model's default); arm "" names no arm. A status
 * other than OK ends the request with it (an unknown alias: 404). Runs on the frontend's
 * thread before repo_acquire; the arm goes to infer_request.arm and the X-Model-Arm header.
 * Set it before serving starts. */
typedef inferd_status (*serve_router_fn)(void *ctx, const serve_request *sr, char version[32], char arm[32]);
void serve_set_router(serve *s, serve_router_fn fn, void *ctx);

/* The hand-off of a generation request (sr->generate set; req->generate carries it): generate/
 * sets it (the core cannot include generate/). OK: the generator owns req and runs
 * req->on_done exactly once when the generation ends (per-token events go to the gen_request's
 * own callback before that). Not OK: the request ends there with that status (serve_submit
 * returns it, on_done does not run, req is serve's to free). Without a generator, a generation
 * request is refused (INVALID_ARGUMENT). Set before serving starts. */
typedef inferd_status (*serve_generate_fn)(void *ctx, infer_request *req);
void serve_set_generator(serve *s, serve_generate_fn fn, void *ctx);

/* The pipeline of one server. Test-only: when INFERD_TEST_ADMIT_REFUSE_MODEL names a model,
 * serve_create registers an admit handler that refuses that model's requests (UNAVAILABLE,
 * "refused by the test admit handler"), so the e2e suite can see that a registered handler
 * runs on every protocol. Off unless that variable is set. */
inferd_status serve_create(struct app *a, serve **out);
void serve_destroy(serve *s);

#endif
