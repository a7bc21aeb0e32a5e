/* store/rstore: the Redis connection: its thread and libevent loop, hiredis's async context,
 * command queueing and timeouts, reconnects, and the link/fallback state (rstore.h). */
#include "store/rstore.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "store/rstore_policy.h"
#include "util/log.h"
#include "util/monotime.h"

#define MAX_FEATURES 16
#define PING_EVERY_MS 1000
#define TICK_MS 5

struct rstore_feature {
  rstore *rs;
  char name[32];
  atomic_bool failing;
};

/* One command from submission to its callback. The store thread owns it once queued. */
typedef struct cmd {
  struct cmd *next;             /* the submission queue */
  struct cmd *iprev, *inext;    /* the in-flight list (store thread only) */
  int argc;
  char **argv;
  size_t *lens;
  int64_t deadline_ns;
  bool answered; /* fn has run (a timeout answers before hiredis does) */
  bool internal; /* the handshake's and the keepalive's: fn is the store's own */
  rstore_reply_fn fn;
  void *arg;
} cmd;

struct rstore {
  rstore_url url;
  char url_text[400];
  int timeout_ms;
  struct event_base *base;
  struct event *wake_ev, *tick_ev, *reconnect_ev;
  int wake_fd;
  pthread_t thread;
  bool thread_started;
  redisAsyncContext *ac; /* store thread only; NULL: not connected */
  bool reconnect_pending;
  bool drop_requested; /* set inside a hiredis callback, done by the tick */
  int64_t connect_started_ns;
  int attempt;
  int64_t last_ping_ns;
  uint64_t jitter_state; /* xorshift64: the backoff's jitter (no libc rand state shared) */
  rstore_fsm fsm;        /* store thread only */
  atomic_int link;       /* fsm.link, for every thread */
  atomic_bool stopping;
  pthread_mutex_t mu;    /* the queue and `stopped` */
  pthread_cond_t ready_cv;
  bool stopped;
  cmd *qhead, *qtail;
  cmd *inflight;
  rstore_feature features[MAX_FEATURES];
  atomic_int n_features;
  atomic_bool link_logged_down; /* "unreachable" logged since the last time it was up */
  _Atomic uint64_t n_commands, n_errors, n_timeouts, n_unavailable, n_connects, n_losses;
};

static void schedule_reconnect(rstore *rs);
static void drop_connection(rstore *rs);

static void link_changed(rstore *rs) {
  atomic_store(&rs->link, rs->fsm.link);
  int n = atomic_load(&rs->n_features);
  char names[MAX_FEATURES * 34] = "";
  for (int i = 0; i < n; i++) {
    if (i) strcat(names, ", ");
    strcat(names, rs->features[i].name);
  }
  if (rs->fsm.link == RSTORE_UP) {
    for (int i = 0; i < n; i++) atomic_store(&rs->features[i].failing, false);
    atomic_store(&rs->link_logged_down, false);
    log_msg(LOG_INFO, NULL, "redis: connected to %s%s%s", rs->url_text, n ? "; shared state on for: " : "", names);
    pthread_mutex_lock(&rs->mu);
    pthread_cond_broadcast(&rs->ready_cv);
    pthread_mutex_unlock(&rs->mu);
  } else if (!atomic_load(&rs->stopping) && !atomic_exchange(&rs->link_logged_down, true)) {
    log_msg(LOG_WARN, NULL, "redis: %s unreachable; on local fallback: %s (predictions go on)", rs->url_text,
            n ? names : "nothing yet");
  }
}

static void fsm_event(rstore *rs, rstore_event ev) {
  if (!rstore_fsm_step(&rs->fsm, ev)) return;
  link_changed(rs);
  if (ev == RSTORE_EV_TIMEOUT && rs->fsm.link == RSTORE_DOWN) {
    log_msg(LOG_WARN, NULL, "redis: %d commands in a row got no answer within their timeout: dropping the connection",
            rs->fsm.max_timeouts);
    drop_connection(rs);
  }
}

static void cmd_free(cmd *c) {
  free(c); /* argv, lens and the bytes live in the same allocation */
}

static void inflight_remove(rstore *rs, cmd *c) {
  if (c->iprev) c->iprev->inext = c->inext;
  else if (rs->inflight == c) rs->inflight = c->inext;
  if (c->inext) c->inext->iprev = c->iprev;
  c->iprev = c->inext = NULL;
}

/* hiredis's callback: a reply, or NULL when the context goes (its pending commands). */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata) {
  rstore *rs = ac->data;
  cmd *c = privdata;
  redisReply *reply = r;
  inflight_remove(rs, c);
  if (reply) fsm_event(rs, RSTORE_EV_REPLY);
  if (!c->answered) {
    c->answered = true;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) atomic_fetch_add(&rs->n_errors, 1);
    c->fn(c->arg, reply, reply ? NULL : "the connection to Redis was lost");
  }
  cmd_free(c);
}

static cmd *cmd_make(int argc, const char *const *argv, const size_t *lens, int timeout_ms, rstore_reply_fn fn,
                     void *arg) {
  size_t bytes = sizeof(cmd) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
  for (int i = 0; i < argc; i++) bytes += (lens ? lens[i] : strlen(argv[i])) + 1;
  cmd *c = calloc(1, bytes);
  if (c == NULL) return NULL;
  c->argc = argc;
  c->argv = (char **)(c + 1);
  c->lens = (size_t *)(c->argv + argc);
  char *p = (char *)(c->lens + argc);
  for (int i = 0; i < argc; i++) {
    size_t l = lens ? lens[i] : strlen(argv[i]);
    memcpy(p, argv[i], l);
    p[l] = '\0';
    c->argv[i] = p;
    c->lens[i] = l;
    p += l + 1;
  }
  c->fn = fn;
  c->arg = arg;
  c->deadline_ns = monotime_ns() + (int64_t)timeout_ms * 1000000;
  return c;
}

/* Sends c on the live connection, or answers it "unreachable" (store thread). */
static void send_cmd(rstore *rs, cmd *c) {
  if (rs->ac == NULL || (!c->internal && rs->fsm.link != RSTORE_UP) ||
      redisAsyncCommandArgv(rs->ac, on_reply, c, c->argc, (const char **)c->argv, c->lens) != REDIS_OK) {
    if (!c->internal) atomic_fetch_add(&rs->n_unavailable, 1);
    c->answered = true;
    c->fn(c->arg, NULL, "Redis is unreachable");
    cmd_free(c);
    return;
  }
  c->inext = rs->inflight;
  if (rs->inflight) rs->inflight->iprev = c;
  rs->inflight = c;
}

/* ---- the handshake: AUTH, SELECT, then a PING that makes the link UP ---------------------- */

static void handshake_reply(void *arg, const redisReply *reply, const char *why) {
  rstore *rs = arg;
  (void)why;
  if (reply && reply->type != REDIS_REPLY_ERROR) return; /* AUTH and SELECT: OK */
  if (reply)
    log_msg(LOG_ERROR, NULL, "redis: %s refused the connection's set-up: %.200s", rs->url_text, reply->str);
  /* a refused AUTH or SELECT never gets better by itself; the reconnect backoff keeps trying
   * slowly. Dropped from the tick: never free a context inside its own callback. */
  if (reply) rs->drop_requested = true;
}

static void ping_reply(void *arg, const redisReply *reply, const char *why) {
  rstore *rs = arg;
  (void)why;
  if (reply && reply->type != REDIS_REPLY_ERROR) {
    if (rs->fsm.link != RSTORE_UP) {
      rs->attempt = 0;
      atomic_fetch_add(&rs->n_connects, 1);
    }
    fsm_event(rs, RSTORE_EV_READY);
  }
  /* a PING's timeout is counted by the tick with the others */
}

static void send_internal(rstore *rs, int argc, const char *const *argv, rstore_reply_fn fn) {
  cmd *c = cmd_make(argc, argv, NULL, rs->timeout_ms > 1000 ? rs->timeout_ms : 1000, fn, rs);
  if (c == NULL) return;
  c->internal = true;
  send_cmd(rs, c);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  rstore *rs = ac->data;
  if (status != REDIS_OK) { /* hiredis frees the context after this */
    if (rs->ac == ac) rs->ac = NULL;
    if (!atomic_exchange(&rs->link_logged_down, true))
      log_msg(LOG_WARN, NULL, "redis: cannot connect to %s (%s); shared features use local state meanwhile",
              rs->url_text, ac->errstr[0] ? ac->errstr : "connection failed");
    schedule_reconnect(rs);
    return;
  }
  if (rs->url.password[0]) {
    if (rs->url.user[0]) {
      const char *argv[] = {"AUTH", rs->url.user, rs->url.password};
      send_internal(rs, 3, argv, handshake_reply);
    } else {
      const char *argv[] = {"AUTH", rs->url.password};
      send_internal(rs, 2, argv, handshake_reply);
    }
  }
  if (rs->url.db) {
    char db[16];
    snprintf(db, sizeof db, "%d", rs->url.db);
    const char *argv[] = {"SELECT", db};
    send_internal(rs, 2, argv, handshake_reply);
  }
  const char *argv[] = {"PING"};
  rs->last_ping_ns = monotime_ns();
  send_internal(rs, 1, argv, ping_reply);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  rstore *rs = ac->data;
  (void)status;
  if (rs->ac == ac) rs->ac = NULL;
  atomic_fetch_add(&rs->n_losses, 1);
  fsm_event(rs, RSTORE_EV_LOST);
  schedule_reconnect(rs);
}

/* Frees the context: its pending commands get their callback with no reply (store thread, never
 * from inside a hiredis callback of the same context: those defer through the tick). */
static void drop_connection(rstore *rs) {
  redisAsyncContext *ac = rs->ac;
  if (ac == NULL) return;
  rs->ac = NULL;
  redisAsyncFree(ac); /* calls on_disconnect when it was connected */
  if (rs->fsm.link != RSTORE_DOWN) fsm_event(rs, RSTORE_EV_LOST);
  schedule_reconnect(rs);
}

static void connect_now(rstore *rs) {
  if (rs->ac || atomic_load(&rs->stopping)) return;
  redisAsyncContext *ac = redisAsyncConnect(rs->url.host, rs->url.port);
  if (ac == NULL || ac->err) {
    if (!atomic_exchange(&rs->link_logged_down, true))
      log_msg(LOG_WARN, NULL, "redis: cannot connect to %s (%s); shared features use local state meanwhile",
              rs->url_text, ac && ac->errstr[0] ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    schedule_reconnect(rs);
    return;
  }
  ac->data = rs;
  if (redisLibeventAttach(ac, rs->base) != REDIS_OK) {
    redisAsyncFree(ac);
    schedule_reconnect(rs);
    return;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  rs->ac = ac;
  rs->connect_started_ns = monotime_ns();
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rstore *rs = arg;
  rs->reconnect_pending = false;
  connect_now(rs);
}

static void schedule_reconnect(rstore *rs) {
  if (rs->reconnect_pending || atomic_load(&rs->stopping)) return;
  uint64_t x = rs->jitter_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  rs->jitter_state = x;
  double jitter = (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
  int64_t ms = rstore_backoff_ms(rs->attempt++, jitter);
  struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
  rs->reconnect_pending = true;
  evtimer_add(rs->reconnect_ev, &tv);
}

/* ---- the loop's events -------------------------------------------------------------------- */

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  rstore *rs = arg;
  uint64_t v;
  if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN) return;
  pthread_mutex_lock(&rs->mu);
  cmd *c = rs->qhead;
  rs->qhead = rs->qtail = NULL;
  pthread_mutex_unlock(&rs->mu);
  while (c) {
    cmd *next = c->next;
    c->next = NULL;
    send_cmd(rs, c);
    c = next;
  }
  if (atomic_load(&rs->stopping)) event_base_loopbreak(rs->base);
}

/* Timeouts (answered here; hiredis's late reply is then dropped) and the keepalive PING. */
static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rstore *rs = arg;
  int64_t now = monotime_ns();
  int timed_out = 0;
  for (cmd *c = rs->inflight; c; c = c->inext) {
    if (c->answered || c->deadline_ns > now) continue;
    c->answered = true;
    if (!c->internal) atomic_fetch_add(&rs->n_timeouts, 1);
    c->fn(c->arg, NULL, "Redis did not answer in time (timed out)");
    timed_out++;
  }
  /* one event per tick: a burst of requests that timed out together is one sign, not many */
  if (timed_out) fsm_event(rs, RSTORE_EV_TIMEOUT);
  /* a Redis that accepts but never finishes the handshake (hung, or a wrong port that holds
   * connections open) is retried like a refused one */
  if (rs->ac && rs->fsm.link == RSTORE_DOWN && now - rs->connect_started_ns > INT64_C(2000000000))
    rs->drop_requested = true;
  if (rs->drop_requested) {
    rs->drop_requested = false;
    drop_connection(rs);
  }
  if (rs->ac && rs->fsm.link == RSTORE_UP && now - rs->last_ping_ns >= (int64_t)PING_EVERY_MS * 1000000) {
    rs->last_ping_ns = now;
    const char *argv[] = {"PING"};
    send_internal(rs, 1, argv, ping_reply);
  }
}

static void *thread_main(void *arg) {
  rstore *rs = arg;
  pthread_setname_np(pthread_self(), "redis-store");
  connect_now(rs);
  event_base_dispatch(rs->base);
  /* stopping: answer everything still pending */
  drop_connection(rs);
  while (rs->inflight) { /* commands never sent (e.g. the context was gone) */
    cmd *c = rs->inflight;
    inflight_remove(rs, c);
    if (!c->answered) c->fn(c->arg, NULL, "the server is stopping");
    cmd_free(c);
  }
  pthread_mutex_lock(&rs->mu);
  rs->stopped = true;
  cmd *c = rs->qhead;
  rs->qhead = rs->qtail = NULL;
  pthread_mutex_unlock(&rs->mu);
  while (c) {
    cmd *next = c->next;
    c->fn(c->arg, NULL, "the server is stopping");
    cmd_free(c);
    c = next;
  }
  return NULL;
}

/* ---- the API ------------------------------------------------------------------------------ */

inferd_status rstore_create(const rstore_options *o, rstore **out) {
  rstore *rs = calloc(1, sizeof *rs);
  if (rs == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  inferd_status st = rstore_url_parse(o->url, &rs->url);
  if (!status_is_ok(&st)) {
    free(rs);
    return st;
  }
  rstore_url_redacted(&rs->url, rs->url_text, sizeof rs->url_text);
  rs->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 50;
  rs->fsm.max_timeouts = o->max_timeouts > 0 ? o->max_timeouts : 3;
  rs->jitter_state = ((uint64_t)monotime_ns() ^ ((uint64_t)getpid() << 32)) | 1;
  pthread_mutex_init(&rs->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&rs->ready_cv, &ca);
  pthread_condattr_destroy(&ca);
  rs->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  rs->base = event_base_new();
  if (rs->wake_fd < 0 || rs->base == NULL) {
    rstore_destroy(rs);
    return status_make(INFERD_INTERNAL, "cannot set up the Redis connection's event loop");
  }
  rs->wake_ev = event_new(rs->base, rs->wake_fd, EV_READ | EV_PERSIST, on_wake, rs);
  rs->tick_ev = event_new(rs->base, -1, EV_PERSIST, on_tick, rs);
  rs->reconnect_ev = evtimer_new(rs->base, on_reconnect, rs);
  struct timeval tick = {0, TICK_MS * 1000};
  if (rs->wake_ev == NULL || rs->tick_ev == NULL || rs->reconnect_ev == NULL || event_add(rs->wake_ev, NULL) != 0 ||
      event_add(rs->tick_ev, &tick) != 0) {
    rstore_destroy(rs);
    return status_make(INFERD_INTERNAL, "cannot set up the Redis connection's event loop");
  }
  if (pthread_create(&rs->thread, NULL, thread_main, rs) != 0) {
    rstore_destroy(rs);
    return status_make(INFERD_INTERNAL, "cannot start the Redis connection's thread");
  }
  rs->thread_started = true;
  /* a short wait so that the features start on shared state when Redis is there */
  int wait_ms = o->connect_wait_ms > 0 ? o->connect_wait_ms : 1000;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += wait_ms / 1000;
  until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&rs->mu);
  while (atomic_load(&rs->link) != RSTORE_UP)
    if (pthread_cond_timedwait(&rs->ready_cv, &rs->mu, &until) == ETIMEDOUT) break;
  pthread_mutex_unlock(&rs->mu);
  *out = rs;
  return status_ok();
}

void rstore_stop(rstore *rs) {
  if (rs == NULL || !rs->thread_started) return;
  atomic_store(&rs->stopping, true);
  uint64_t one = 1;
  if (write(rs->wake_fd, &one, sizeof one) < 0) { /* a full counter wakes the loop all the same */
  }
  pthread_join(rs->thread, NULL);
  rs->thread_started = false;
  atomic_store(&rs->link, RSTORE_DOWN);
}

void rstore_destroy(rstore *rs) {
  if (rs == NULL) return;
  rstore_stop(rs);
  if (rs->wake_ev) event_free(rs->wake_ev);
  if (rs->tick_ev) event_free(rs->tick_ev);
  if (rs->reconnect_ev) event_free(rs->reconnect_ev);
  if (rs->base) event_base_free(rs->base);
  if (rs->wake_fd >= 0) close(rs->wake_fd);
  pthread_mutex_destroy(&rs->mu);
  pthread_cond_destroy(&rs->ready_cv);
  free(rs);
}

bool rstore_up(const rstore *rs) { return rs && atomic_load(&rs->link) == RSTORE_UP; }
const char *rstore_url_text(const rstore *rs) { return rs->url_text; }
int rstore_default_timeout_ms(const rstore *rs) { return rs->timeout_ms; }

inferd_status rstore_async(rstore *rs, int argc, const char *const *argv, const size_t *lens, int timeout_ms,
                           rstore_reply_fn fn, void *arg) {
  if (!rstore_up(rs)) {
    atomic_fetch_add(&rs->n_unavailable, 1);
    return status_make(INFERD_UNAVAILABLE, "Redis is unreachable");
  }
  cmd *c = cmd_make(argc, argv, lens, timeout_ms > 0 ? timeout_ms : rs->timeout_ms, fn, arg);
  if (c == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  pthread_mutex_lock(&rs->mu);
  if (rs->stopped || atomic_load(&rs->stopping)) {
    pthread_mutex_unlock(&rs->mu);
    cmd_free(c);
    return status_make(INFERD_UNAVAILABLE, "the Redis connection is stopping");
  }
  bool was_empty = rs->qhead == NULL;
  if (rs->qtail) rs->qtail->next = c;
  else rs->qhead = c;
  rs->qtail = c;
  pthread_mutex_unlock(&rs->mu);
  atomic_fetch_add(&rs->n_commands, 1);
  uint64_t one = 1;
  if (was_empty && write(rs->wake_fd, &one, sizeof one) < 0) { /* EAGAIN: the counter is set, it will wake */
  }
  return status_ok();
}

/* ---- synchronous calls: a waiter the store thread's callback fills ------------------------ */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs; /* the caller and the callback; the last one frees */
  bool done;
  redisReply *reply;
  char why[128];
} waiter;

static redisReply *reply_copy(const redisReply *r) {
  redisReply *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->type = r->type;
  c->integer = r->integer;
  if (r->str) {
    c->str = malloc(r->len + 1);
    if (c->str == NULL) {
      free(c);
      return NULL;
    }
    memcpy(c->str, r->str, r->len);
    c->str[r->len] = '\0';
    c->len = r->len;
  }
  if (r->type == REDIS_REPLY_ARRAY && r->elements) {
    c->element = calloc(r->elements, sizeof *c->element);
    if (c->element == NULL) {
      rstore_reply_free(c);
      return NULL;
    }
    c->elements = r->elements;
    for (size_t i = 0; i < r->elements; i++) {
      c->element[i] = r->element[i] ? reply_copy(r->element[i]) : NULL;
      if (r->element[i] && c->element[i] == NULL) {
        rstore_reply_free(c);
        return NULL;
      }
    }
  }
  return c;
}

void rstore_reply_free(redisReply *r) {
  if (r == NULL) return;
  for (size_t i = 0; r->element && i < r->elements; i++) rstore_reply_free(r->element[i]);
  free(r->element);
  free(r->str);
  free(r);
}

static void waiter_unref(waiter *w) {
  bool last = --w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  if (!last) return;
  rstore_reply_free(w->reply);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}

static void sync_reply(void *arg, const redisReply *reply, const char *why) {
  waiter *w = arg;
  pthread_mutex_lock(&w->mu);
  w->done = true;
  if (reply) w->reply = reply_copy(reply);
  else snprintf(w->why, sizeof w->why, "%s", why ? why : "no reply");
  pthread_cond_signal(&w->cv);
  waiter_unref(w);
}

inferd_status rstore_sync(rstore *rs, int argc, const char *const *argv, const size_t *lens, int timeout_ms,
                          redisReply **out) {
  *out = NULL;
  /* the store's thread answers the waits: waiting on it from it would only ever time out */
  if (rs->thread_started && pthread_equal(pthread_self(), rs->thread))
    return status_make(INFERD_INTERNAL, "a synchronous Redis call from the Redis thread itself");
  if (timeout_ms <= 0) timeout_ms = rs->timeout_ms;
  waiter *w = calloc(1, sizeof *w);
  if (w == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  w->refs = 2;
  inferd_status st = rstore_async(rs, argc, argv, lens, timeout_ms, sync_reply, w);
  if (!status_is_ok(&st)) {
    pthread_mutex_lock(&w->mu);
    w->refs = 1;
    waiter_unref(w);
    return st;
  }
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  /* the store thread's own timeout answers first; this bound only guards against a stuck loop */
  int64_t ns = until.tv_nsec + ((int64_t)timeout_ms + TICK_MS * 4) * 1000000;
  until.tv_sec += (time_t)(ns / 1000000000);
  until.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&w->mu);
  while (!w->done)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT) break;
  if (w->done && w->reply) {
    *out = w->reply;
    w->reply = NULL;
    st = status_ok();
  } else if (w->done && strstr(w->why, "timed out") == NULL) {
    st = status_make(INFERD_UNAVAILABLE, "Redis: %s", w->why);
  } else {
    st = status_make(INFERD_DEADLINE_EXCEEDED, "Redis did not answer within %d ms", timeout_ms);
  }
  waiter_unref(w);
  return st;
}

/* ---- features, health, metrics -------------------------------------------------------------- */

rstore_feature *rstore_feature_add(rstore *rs, const char *name) {
  int n = atomic_load(&rs->n_features);
  if (n >= MAX_FEATURES) return NULL;
  rstore_feature *f = &rs->features[n];
  f->rs = rs;
  snprintf(f->name, sizeof f->name, "%s", name);
  atomic_store(&f->failing, !rstore_up(rs));
  atomic_store(&rs->n_features, n + 1);
  return f;
}

void rstore_feature_result(rstore_feature *f, bool ok, const char *why) {
  if (f == NULL) return;
  bool was = atomic_exchange(&f->failing, !ok);
  if (was == !ok) return;
  /* the link's own transitions are logged once for every feature (link_changed); here only a
   * feature's own failure while Redis answers, and its recovery */
  if (!ok && rstore_up(f->rs))
    log_msg(LOG_WARN, NULL, "redis: %s on local fallback: %s", f->name, why ? why : "a command failed");
  else if (ok)
    log_msg(LOG_INFO, NULL, "redis: %s back on shared state", f->name);
}

bool rstore_feature_fallback(const rstore_feature *f) {
  return f && (!rstore_up(f->rs) || atomic_load(&f->failing));
}

json_t *rstore_health_json(const rstore *rs) {
  json_t *features = json_object();
  int n = atomic_load(&((rstore *)rs)->n_features);
  for (int i = 0; i < n; i++)
    json_object_set_new(features, rs->features[i].name,
                        json_string(rstore_feature_fallback(&rs->features[i]) ? "local_fallback" : "redis"));
  return json_pack("{ss sb so}", "url", rs->url_text, "connected", rstore_up(rs), "features", features);
}

void rstore_metrics_write(void *ctx, FILE *out) {
  rstore *rs = ctx;
  fprintf(out,
          "# HELP inferd_redis_connected 1 while the shared-state Redis is connected and answering.\n"
          "# TYPE inferd_redis_connected gauge\ninferd_redis_connected %d\n"
          "# HELP inferd_redis_commands_total Commands sent to Redis.\n"
          "# TYPE inferd_redis_commands_total counter\ninferd_redis_commands_total %llu\n"
          "# HELP inferd_redis_command_errors_total Commands answered with an error or lost with the connection.\n"
          "# TYPE inferd_redis_command_errors_total counter\ninferd_redis_command_errors_total %llu\n"
          "# HELP inferd_redis_command_timeouts_total Commands with no answer within their timeout.\n"
          "# TYPE inferd_redis_command_timeouts_total counter\ninferd_redis_command_timeouts_total %llu\n"
          "# HELP inferd_redis_unavailable_total Uses refused at once because Redis was down (the feature used local state).\n"
          "# TYPE inferd_redis_unavailable_total counter\ninferd_redis_unavailable_total %llu\n"
          "# HELP inferd_redis_connects_total Connections that came up (the first one included).\n"
          "# TYPE inferd_redis_connects_total counter\ninferd_redis_connects_total %llu\n"
          "# HELP inferd_redis_fallback 1 while a shared-state feature uses its local state instead of Redis.\n"
          "# TYPE inferd_redis_fallback gauge\n",
          rstore_up(rs) ? 1 : 0, (unsigned long long)atomic_load(&rs->n_commands),
          (unsigned long long)atomic_load(&rs->n_errors), (unsigned long long)atomic_load(&rs->n_timeouts),
          (unsigned long long)atomic_load(&rs->n_unavailable), (unsigned long long)atomic_load(&rs->n_connects));
  int n = atomic_load(&rs->n_features);
  for (int i = 0; i < n; i++)
    fprintf(out, "inferd_redis_fallback{feature=\"%s\"} %d\n", rs->features[i].name,
            rstore_feature_fallback(&rs->features[i]) ? 1 : 0);
}
