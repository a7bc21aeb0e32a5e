/* security/limits: the rate limits' pipeline handlers (admit: requests per second and in flight;
 * check: records per minute) and the RateLimit fields they answer with (limits.h). */
#include "security/limits.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"
#include "util/monotime.h"

#define FIELD_MAX sizeof(((serve_headers *)0)->h[0].value)

struct limits {
  limits_options o;
  limit_store *store; /* owned */
  _Atomic int64_t last_store_error_log_ns;
  /* RateLimit-Policy for every caller without limits of its own: the same on every answer, so
   * built once */
  char default_policy[FIELD_MAX];
  size_t default_policy_len;
};

/* A reply header whose name is a literal and whose value's length is known (added on every
 * limited request: no strlen of either). */
#define ADD_HEADER(h, lit, v, vl) serve_headers_addn((h), lit, sizeof lit - 1, (v), (vl))

static void policy_field(const limits_policy *pol, char *v, size_t cap);

/* A rule the limiter accepts, as close to what was asked as its bounds allow (a principal's
 * values come from a key file written by hand). */
static ratelimit_rule rule_make(double rate, double burst) {
  if (!(rate > 0) || !isfinite(rate)) rate = RATELIMIT_MAX_RATE;
  if (rate > RATELIMIT_MAX_RATE) rate = RATELIMIT_MAX_RATE;
  if (!(burst >= 1)) burst = 1;
  if (burst / rate > RATELIMIT_MAX_REFILL_S) burst = floor(rate * RATELIMIT_MAX_REFILL_S);
  if (burst < 1) { /* a rate so low that one unit takes longer than the bound to refill */
    burst = 1;
    rate = 1 / RATELIMIT_MAX_REFILL_S;
  }
  return (ratelimit_rule){.rate_per_s = rate, .burst = (int64_t)floor(burst)};
}

void limits_policy_of(const limits_options *d, const principal *p, limits_policy *out) {
  *out = (limits_policy){0};
  double rate = d->rate_per_s, burst = (double)d->burst;
  if (p && p->rate_per_s > 0) { /* the key's rate comes with its own burst, or a second's worth */
    rate = p->rate_per_s;
    burst = p->burst;
  } else if (p && p->burst > 0) {
    burst = p->burst;
  }
  if (rate > 0) {
    out->has_requests = true;
    out->requests = rule_make(rate, burst > 0 ? burst : fmax(1, floor(rate)));
  }
  out->max_concurrent = p && p->max_concurrent > 0 ? p->max_concurrent : d->max_concurrent;
  int64_t rpm = p && p->records_per_min > 0 ? p->records_per_min : d->records_per_min;
  if (rpm > 0) {
    out->has_records = true;
    out->records = rule_make((double)rpm / 60.0, (double)rpm);
  }
  int64_t tpm = p && p->tokens_per_min > 0 ? p->tokens_per_min : d->tokens_per_min;
  if (tpm > 0) {
    out->has_tokens = true;
    out->tokens = rule_make((double)tpm / 60.0, (double)tpm);
  }
}

inferd_status limits_parse_rate(const char *what, const char *text, double *per_s) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  double per = 1;
  if (end != text && *end == '/') {
    const char *u = end + 1;
    if (strcmp(u, "s") == 0 || strcmp(u, "sec") == 0) per = 1;
    else if (strcmp(u, "m") == 0 || strcmp(u, "min") == 0) per = 60;
    else if (strcmp(u, "h") == 0) per = 3600;
    else per = 0;
    end = (char *)u + strlen(u);
  }
  if (errno || end == text || *end != '\0' || per == 0 || !isfinite(v) || !(v > 0))
    return status_make(INFERD_INVALID_ARGUMENT, "%s must be a positive rate such as 10, 10/s, 600/m or 3600/h, got '%s'",
                       what, text);
  v /= per;
  if (v > RATELIMIT_MAX_RATE)
    return status_make(INFERD_INVALID_ARGUMENT, "%s must be at most 1000000 per second, got '%s'", what, text);
  if (v < 1 / RATELIMIT_MAX_REFILL_S)
    return status_make(INFERD_INVALID_ARGUMENT, "%s must be at least one per 1000000 seconds, got '%s'", what, text);
  *per_s = v;
  return status_ok();
}

inferd_status limits_create(const limits_options *o, limit_store *store, limits **out) {
  limits *l = calloc(1, sizeof *l);
  if (l == NULL) {
    limit_store_destroy(store);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  l->o = *o;
  limits_policy pol;
  limits_policy_of(o, NULL, &pol);
  policy_field(&pol, l->default_policy, sizeof l->default_policy);
  l->default_policy_len = strlen(l->default_policy);
  if (store == NULL) {
    inferd_status st = limit_store_local_create(o->max_keys, &store);
    if (!status_is_ok(&st)) {
      free(l);
      return st;
    }
  }
  l->store = store;
  *out = l;
  return status_ok();
}

void limits_destroy(limits *l) {
  if (l == NULL) return;
  limit_store_destroy(l->store);
  free(l);
}

/* The state's key: the principal's kind and name (an API key and a JWT subject may share a
 * name, not a budget), and the model's when budgets are per model. false when it does not fit.
 * Built byte by byte: on every limited request, and its pieces are a few bytes each. */
static bool key_put(char *key, size_t *n, size_t cap, const char *s) {
  size_t i = *n;
  for (; *s; s++) {
    if (i + 2 >= cap) return false; /* room for the model's separator and the terminator */
    key[i++] = *s;
  }
  *n = i;
  return true;
}

static bool key_for(const limits *l, const principal *p, const char *model, char *key, size_t cap) {
  size_t n = 0;
  if (!key_put(key, &n, cap, principal_kind_name(p ? p->kind : PRINCIPAL_ANONYMOUS)) || !key_put(key, &n, cap, ":") ||
      !key_put(key, &n, cap, p ? p->name : ""))
    return false;
  if (l->o.per_model) {
    key[n++] = '\x1f'; /* key_put left room for it */
    if (!key_put(key, &n, cap, model ? model : "")) return false;
  }
  key[n] = '\0';
  return true;
}

static bool key_of(const limits *l, const serve_request *sr, char *key, size_t cap) {
  return key_for(l, sr->principal, sr->model, key, cap);
}

static const char *caller(const serve_request *sr) {
  return sr->principal && sr->principal->name[0] ? sr->principal->name : "anonymous";
}

/* RateLimit-Policy: every policy that applies to the caller, whichever this request tested. */
static void policy_field(const limits_policy *pol, char *v, size_t cap) {
  v[0] = '\0';
  if (pol->has_requests) {
    int64_t q, w;
    ratelimit_rate_window(pol->requests.rate_per_s, &q, &w);
    ratelimit_policy_item(v, cap, "requests", q, w, NULL, pol->requests.burst);
  }
  if (pol->max_concurrent > 0) ratelimit_policy_item(v, cap, "concurrency", pol->max_concurrent, 0, "concurrent-requests", 0);
  if (pol->has_records) ratelimit_policy_item(v, cap, "records", pol->records.burst, 60, "records", 0);
}

static bool has_own_limits(const principal *p) {
  return p && (p->rate_per_s > 0 || p->burst > 0 || p->max_concurrent > 0 || p->records_per_min > 0 ||
               p->tokens_per_min > 0);
}

/* A store that fails (a shared one unreachable) admits the request: limits degrade, predictions
 * do not stop. Logged at most once a second. */
static void store_failed(limits *l, const inferd_status *st) {
  int64_t now = monotime_ns(), last = atomic_load(&l->last_store_error_log_ns);
  if (now - last < 1000000000LL || !atomic_compare_exchange_strong(&l->last_store_error_log_ns, &last, now)) return;
  log_msg(LOG_WARN, NULL, "rate limits not enforced: %s", st->msg);
}

static void add_retry_after(const serve_request *sr, int64_t ns) {
  char v[24];
  int64_t s = ratelimit_seconds(ns);
  snprintf(v, sizeof v, "%lld", (long long)(s < 1 ? 1 : s));
  serve_headers_add(sr->reply_headers, "Retry-After", v);
}

/* The request's RateLimit field, for the check stage to add its item to; NULL when none. */
static char *ratelimit_field(serve_headers *h) {
  for (int i = 0; h && i < h->n; i++)
    if (strcasecmp(h->h[i].name, "RateLimit") == 0) return h->h[i].value;
  return NULL;
}

static bool policy_same(const limits_policy *a, const limits_policy *b) {
  return a->has_requests == b->has_requests && a->has_records == b->has_records &&
         a->max_concurrent == b->max_concurrent &&
         (!a->has_requests || (a->requests.rate_per_s == b->requests.rate_per_s && a->requests.burst == b->requests.burst)) &&
         (!a->has_records || (a->records.rate_per_s == b->records.rate_per_s && a->records.burst == b->records.burst));
}

/* The last field a principal's own limits made on this thread, keyed by the policy itself (the
 * field depends on nothing else): a key's requests arrive one after another on a connection's
 * loop thread, and formatting the rates cost ~750 instructions a request. */
static _Thread_local struct {
  bool valid;          /* cppcheck-suppress unusedStructMember ; read below (cppcheck misses a thread-local's use) */
  limits_policy pol;   /* cppcheck-suppress unusedStructMember */
  char field[FIELD_MAX]; /* cppcheck-suppress unusedStructMember */
  size_t len;            /* cppcheck-suppress unusedStructMember */
} last_policy;

static void add_policy_field(const limits *l, const serve_request *sr, const limits_policy *pol) {
  if (!has_own_limits(sr->principal)) {
    ADD_HEADER(sr->reply_headers, "RateLimit-Policy", l->default_policy, l->default_policy_len);
    return;
  }
  if (!last_policy.valid || !policy_same(&last_policy.pol, pol)) {
    policy_field(pol, last_policy.field, sizeof last_policy.field);
    last_policy.len = strlen(last_policy.field);
    last_policy.pol = *pol;
    last_policy.valid = true;
  }
  ADD_HEADER(sr->reply_headers, "RateLimit-Policy", last_policy.field, last_policy.len);
}

/* "t" of a rate item: when refused, the wait until the next unit (so that Retry-After, the same
 * wait, never points before the window's end); when allowed, until the bucket is full. */
static int64_t item_t(const ratelimit_decision *d) {
  return ratelimit_seconds(d->allowed ? d->reset_ns : d->retry_after_ns);
}

static void end_release(void *ctx, void *lease, const inferd_status *st) {
  (void)st;
  limits *l = ctx;
  l->store->ops->concurrency_return(l->store, lease);
}

/* admit: requests per second, then requests in flight (a request refused for concurrency gives
 * its rate unit back: it did not run). */
static inferd_status admit(void *ctx, const serve_request *sr, infer_request *req) {
  (void)req;
  limits *l = ctx;
  limits_policy pol;
  limits_policy_of(&l->o, sr->principal, &pol);
  if (!pol.has_requests && pol.max_concurrent <= 0 && !pol.has_records) return status_ok();
  char key[512];
  if (!key_of(l, sr, key, sizeof key)) return status_make(INFERD_INVALID_ARGUMENT, "the model name is too long");
  int64_t now = monotime_ns();
  char field[FIELD_MAX];
  field[0] = '\0';
  if (sr->reply_headers) add_policy_field(l, sr, &pol);
  ratelimit_decision d;
  bool took_rate = false;
  if (pol.has_requests) {
    inferd_status st = l->store->ops->rate_take(l->store, key, LIMIT_REQUESTS, &pol.requests, 1, now, &d);
    if (!status_is_ok(&st)) {
      store_failed(l, &st);
    } else {
      ratelimit_limit_item(field, sizeof field, "requests", d.allowed ? d.remaining : 0, item_t(&d));
      if (!d.allowed) {
        add_retry_after(sr, d.retry_after_ns);
        serve_headers_add(sr->reply_headers, "RateLimit", field);
        /* the rate in the unit a person would write it: 2 per minute, not 0.0333333 per second */
        double r = pol.requests.rate_per_s;
        const char *per = r >= 1 ? "second" : r * 60 >= 1 ? "minute" : "hour";
        return status_make(INFERD_RATE_LIMITED, "rate limit: '%s' may send %.6g requests per %s (bursts of %lld); retry in %lld s",
                           caller(sr), r >= 1 ? r : r * 60 >= 1 ? r * 60 : r * 3600, per,
                           (long long)pol.requests.burst, (long long)ratelimit_seconds(d.retry_after_ns));
      }
      took_rate = true;
    }
  }
  if (pol.max_concurrent > 0) {
    void *lease = NULL;
    inferd_status st = l->store->ops->concurrency_take(l->store, key, pol.max_concurrent, now, &d, &lease);
    if (!status_is_ok(&st)) {
      store_failed(l, &st);
    } else {
      ratelimit_limit_item(field, sizeof field, "concurrency", d.remaining, -1);
      if (!d.allowed) {
        if (took_rate) l->store->ops->rate_return(l->store, key, LIMIT_REQUESTS, &pol.requests, 1, now);
        add_retry_after(sr, d.retry_after_ns);
        serve_headers_add(sr->reply_headers, "RateLimit", field);
        return status_make(INFERD_RATE_LIMITED, "concurrency limit: '%s' already has %lld requests in flight, its most",
                           caller(sr), (long long)pol.max_concurrent);
      }
      st = serve_on_end(sr, end_release, l, lease);
      if (!status_is_ok(&st)) {
        l->store->ops->concurrency_return(l->store, lease);
        return st;
      }
    }
  }
  if (field[0]) ADD_HEADER(sr->reply_headers, "RateLimit", field, strlen(field));
  return status_ok();
}

/* check: records (the request's rows) per minute, now that decode has counted them. */
static inferd_status check_records(void *ctx, const serve_request *sr, infer_request *req) {
  limits *l = ctx;
  limits_policy pol;
  limits_policy_of(&l->o, sr->principal, &pol);
  /* a generation has no records: its tokens are counted by limits_tokens_take */
  if (!pol.has_records || req->generate) return status_ok();
  char key[512];
  if (!key_of(l, sr, key, sizeof key)) return status_make(INFERD_INVALID_ARGUMENT, "the model name is too long");
  ratelimit_decision d;
  inferd_status st = l->store->ops->rate_take(l->store, key, LIMIT_RECORDS, &pol.records, req->rows, monotime_ns(), &d);
  if (!status_is_ok(&st)) {
    store_failed(l, &st);
    return status_ok();
  }
  /* the item joins the admit stage's RateLimit field, or starts one */
  char *field = ratelimit_field(sr->reply_headers);
  if (field) {
    ratelimit_limit_item(field, FIELD_MAX, "records", d.allowed ? d.remaining : 0,
                         d.never ? -1 : item_t(&d));
  } else if (sr->reply_headers) {
    char v[FIELD_MAX];
    v[0] = '\0';
    ratelimit_limit_item(v, sizeof v, "records", d.allowed ? d.remaining : 0, d.never ? -1 : item_t(&d));
    serve_headers_add(sr->reply_headers, "RateLimit", v);
  }
  if (d.never)
    return status_make(INFERD_TOO_LARGE,
                       "a batch of %lld records is more than the %lld records per minute '%s' may send: split it",
                       (long long)req->rows, (long long)pol.records.burst, caller(sr));
  if (!d.allowed) {
    add_retry_after(sr, d.retry_after_ns);
    return status_make(INFERD_RATE_LIMITED,
                       "records limit: '%s' may send %lld records per minute; these %lld fit in %lld s",
                       caller(sr), (long long)pol.records.burst, (long long)req->rows,
                       (long long)ratelimit_seconds(d.retry_after_ns));
  }
  return status_ok();
}

static const char *principal_label(const principal *p) { return p ? p->name : "anonymous"; }

inferd_status limits_tokens_take(limits *l, const principal *p, const char *model, int64_t tokens) {
  limits_policy pol;
  limits_policy_of(&l->o, p, &pol);
  if (!pol.has_tokens) return status_ok();
  char key[512];
  if (!key_for(l, p, model, key, sizeof key)) return status_make(INFERD_INVALID_ARGUMENT, "the model name is too long");
  ratelimit_decision d;
  inferd_status st = l->store->ops->rate_take(l->store, key, LIMIT_TOKENS, &pol.tokens, tokens, monotime_ns(), &d);
  if (!status_is_ok(&st)) {
    store_failed(l, &st);
    return status_ok();
  }
  if (d.never)
    return status_make(INFERD_TOO_LARGE,
                       "this generation reserves %lld tokens (the prompt + max_tokens), more than the %lld tokens per "
                       "minute '%s' may use: lower max_tokens",
                       (long long)tokens, (long long)pol.tokens.burst, principal_label(p));
  if (!d.allowed)
    return status_make(INFERD_RATE_LIMITED,
                       "token limit: '%s' may use %lld tokens per minute; this generation's %lld (the prompt + "
                       "max_tokens) fit in %lld s",
                       principal_label(p), (long long)pol.tokens.burst, (long long)tokens,
                       (long long)ratelimit_seconds(d.retry_after_ns));
  return status_ok();
}

void limits_tokens_give_back(limits *l, const principal *p, const char *model, int64_t tokens) {
  limits_policy pol;
  limits_policy_of(&l->o, p, &pol);
  char key[512];
  if (!pol.has_tokens || tokens <= 0 || !key_for(l, p, model, key, sizeof key)) return;
  l->store->ops->rate_return(l->store, key, LIMIT_TOKENS, &pol.tokens, tokens, monotime_ns());
}

inferd_status limits_register(limits *l, serve *s) {
  TRY(serve_register(s, SERVE_STAGE_ADMIT, admit, l));
  return serve_register(s, SERVE_STAGE_CHECK, check_records, l);
}
