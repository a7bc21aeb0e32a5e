/* grpc.health.v1.Health: Check and Watch, for the server as a whole (service "" or one of the
 * service names inferd serves) and for each model (service = the model's name, optionally
 * "name/version"). Watch streams are checked by one thread a few times a second and told when
 * their status changes; draining tells them NOT_SERVING and ends them. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontends/grpc/call.h"
#include "health.pb-c.h"

#define WATCH_POLL_MS 100

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_status;
#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define SERVICE_UNKNOWN GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

typedef struct watcher {
  gcall *call;
  char *service; /* owned */
  serving_status last;
  struct watcher *next;
} watcher;

typedef struct health {
  grpcfe *fe;
  pthread_mutex_t mu; /* guards what follows; taken before any call's lock */
  pthread_cond_t cv;
  watcher *watchers;
  bool draining, stop;
  pthread_t thread;
  bool thread_started;
} health;

static const char *const server_services[] = {"", "inference.GRPCInferenceService", "inferd.ModelService",
                                              "grpc.health.v1.Health"};

static serving_status status_of(grpcfe *fe, const char *service) {
  app *a = grpcfe_app(fe);
  for (size_t i = 0; i < sizeof server_services / sizeof server_services[0]; i++)
    if (strcmp(service, server_services[i]) == 0) {
      char why[512];
      return app_ready(a, why, sizeof why) && !grpcfe_draining(fe) ? SERVING : NOT_SERVING;
    }
  char name[256];
  snprintf(name, sizeof name, "%s", service);
  char *slash = strchr(name, '/');
  if (slash) *slash = '\0';
  VERSION_REF model_version *mv = NULL;
  inferd_status st = repo_acquire(a->repo, name, slash ? slash + 1 : NULL, REPO_ANY_STATE, &mv);
  if (!status_is_ok(&st)) return SERVICE_UNKNOWN;
  return model_version_state(mv) == MODEL_READY && !grpcfe_draining(fe) ? SERVING : NOT_SERVING;
}

static grpc_byte_buffer *status_message(serving_status s) {
  Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  r.status = s;
  return pb_pack(&r.base);
}

static Grpc__Health__V1__HealthCheckRequest *unpack_request(grpc_byte_buffer *bb) {
  return (Grpc__Health__V1__HealthCheckRequest *)pb_unpack(&grpc__health__v1__health_check_request__descriptor, bb);
}

static void check(gcall *c, grpc_byte_buffer *bb) {
  Grpc__Health__V1__HealthCheckRequest *q = unpack_request(bb);
  if (q == NULL) {
    gcall_reply_error(c, INFERD_INVALID_ARGUMENT, "the request is not a valid grpc.health.v1.HealthCheckRequest message");
    return;
  }
  serving_status s = status_of(c->fe, q->service ? q->service : "");
  if (s == SERVICE_UNKNOWN) {
    char msg[400];
    snprintf(msg, sizeof msg, "unknown service '%.256s': ask for \"\" (the server) or a model's name", q->service);
    grpc__health__v1__health_check_request__free_unpacked(q, NULL);
    gcall_reply_error(c, INFERD_NOT_FOUND, msg);
    return;
  }
  grpc__health__v1__health_check_request__free_unpacked(q, NULL);
  gcall_reply_buffer(c, status_message(s));
}

static void watch(gcall *c, grpc_byte_buffer *bb) {
  health *h = grpcfe_health_state(c->fe);
  if (h == NULL) {
    gstream_end(c, INFERD_UNAVAILABLE, "health watching is not available (out of memory at start)");
    return;
  }
  if (c->user) { /* Watch takes one request; a client stream of several is not the protocol */
    gstream_end(c, INFERD_INVALID_ARGUMENT, "Watch takes a single request");
    return;
  }
  Grpc__Health__V1__HealthCheckRequest *q = unpack_request(bb);
  watcher *w = calloc(1, sizeof *w);
  if (q == NULL || w == NULL || (w->service = strdup(q->service ? q->service : "")) == NULL) {
    if (q) grpc__health__v1__health_check_request__free_unpacked(q, NULL);
    free(w);
    gstream_end(c, q ? INFERD_INTERNAL : INFERD_INVALID_ARGUMENT,
                q ? "out of memory" : "the request is not a valid grpc.health.v1.HealthCheckRequest message");
    return;
  }
  grpc__health__v1__health_check_request__free_unpacked(q, NULL);
  w->call = c;
  c->user = w;
  c->keep_open = true;
  pthread_mutex_lock(&h->mu);
  w->last = status_of(c->fe, w->service);
  gstream_push(c, status_message(w->last));
  if (h->draining) {
    gstream_end(c, INFERD_UNAVAILABLE, "the server is shutting down");
  } else {
    w->next = h->watchers;
    h->watchers = w;
  }
  pthread_mutex_unlock(&h->mu);
}

static void watch_end(gcall *c) {
  watcher *w = c->user;
  if (w == NULL) return;
  health *h = grpcfe_health_state(c->fe);
  pthread_mutex_lock(&h->mu);
  for (watcher **p = &h->watchers; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  pthread_mutex_unlock(&h->mu);
  free(w->service);
  free(w);
  c->user = NULL;
}

/* Tells each watcher whose status changed; with h->mu held. */
static void notify_changes(health *h) {
  for (watcher *w = h->watchers; w; w = w->next) {
    serving_status s = status_of(h->fe, w->service);
    if (s == w->last) continue;
    w->last = s;
    gstream_push(w->call, status_message(s));
  }
}

static void *watch_main(void *arg) {
  health *h = arg;
  pthread_mutex_lock(&h->mu);
  while (!h->stop) {
    notify_changes(h);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WATCH_POLL_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&h->cv, &h->mu, &ts);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

void health_start(grpcfe *fe) {
  health *h = calloc(1, sizeof *h);
  if (h == NULL) return; /* Watch then answers from the request alone; Check needs no state */
  h->fe = fe;
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  h->thread_started = pthread_create(&h->thread, NULL, watch_main, h) == 0;
  grpcfe_set_health_state(fe, h);
}

void health_begin_drain(grpcfe *fe) {
  health *h = grpcfe_health_state(fe);
  if (h == NULL) return;
  pthread_mutex_lock(&h->mu);
  h->draining = true;
  notify_changes(h);
  for (watcher *w = h->watchers; w; w = w->next) gstream_end(w->call, INFERD_UNAVAILABLE, "the server is shutting down");
  pthread_mutex_unlock(&h->mu);
}

void health_stop(grpcfe *fe) {
  health *h = grpcfe_health_state(fe);
  if (h == NULL) return;
  pthread_mutex_lock(&h->mu);
  h->stop = true;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  if (h->thread_started) pthread_join(h->thread, NULL);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
  grpcfe_set_health_state(fe, NULL);
}

rpc_method health_service_methods[] = {
    {.path = "/grpc.health.v1.Health/Check", .kind = RPC_UNARY, .slots = 2, .on_unary = check, .scope = SCOPE_OPEN},
    {.path = "/grpc.health.v1.Health/Watch", .kind = RPC_STREAM, .slots = 1, .on_message = watch, .on_end = watch_end, .scope = SCOPE_OPEN},
    {0}};
