/* core/principal: who is calling, as the admit step established it (an API key, a JWT subject,
 * a client certificate, or anonymous). A plain, reference-counted value: security/ makes them
 * (and decides what their scopes allow); the pipeline, the access log, traffic's sticky key and
 * the limiters only read them. A request holds a reference until it completes, so a key store
 * reload never frees a principal still in use. */
#ifndef INFERD_PRINCIPAL_H
#define INFERD_PRINCIPAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { PRINCIPAL_ANONYMOUS, PRINCIPAL_API_KEY, PRINCIPAL_JWT, PRINCIPAL_CERT } principal_kind;

#define PRINCIPAL_NAME_MAX 128

typedef struct principal {
  _Atomic int refs;
  principal_kind kind;
  char name[PRINCIPAL_NAME_MAX]; /* key name, JWT subject, certificate subject: never a secret */
  char **scopes;                 /* owned: "infer:<model>", "infer:*", "read", "metrics", "jobs", "admin" */
  size_t n_scopes;
  /* the caller's limits (security/ratelimit), 0: none */
  double rate_per_s;
  double burst;
  int max_concurrent;
  int64_t records_per_min;
  int64_t tokens_per_min; /* text generation: prompt + completion tokens per minute */
  int64_t expires_at; /* unix seconds, 0: never */
} principal;

/* A new principal with one reference; NULL when out of memory. */
principal *principal_create(principal_kind kind, const char *name);
/* Copies scope into p's list; -1 when out of memory. */
int principal_add_scope(principal *p, const char *scope);
/* NULL-safe. */
const principal *principal_ref(const principal *p);
void principal_unref(const principal *p);
const char *principal_kind_name(principal_kind k);

#endif
