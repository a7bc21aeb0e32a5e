/* security/auth: the authenticator. Turns a request's credential (Authorization: Bearer <API
 * key or JWT>, X-API-Key, gRPC metadata of the same names, or a verified TLS client
 * certificate's subject) into a counted principal, or a 401; checks a principal's scopes
 * against what a route needs (403); and registers the admit stage's check of infer:<model>.
 * The key store and the JWT keys are a counted snapshot that a watcher thread replaces when a
 * file changes (checked every 250 ms) or on SIGHUP, so requests under way keep the one they
 * started with and no connection is dropped. Off (every request anonymous, NULL principal)
 * when no key file and no JWT keys are configured. */
#ifndef INFERD_AUTH_H
#define INFERD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/principal.h"
#include "core/serve.h"
#include "core/status.h"

typedef struct auth auth;

typedef struct auth_options {
  const char *api_keys_path;   /* --api-keys */
  const char *jwt_jwks_path;   /* --jwt-jwks */
  const char *jwt_secret_path; /* --jwt-secret-file */
  const char *jwt_issuer;      /* --jwt-issuer */
  const char *jwt_audience;    /* --jwt-audience */
  const char *jwt_scope_claim; /* --jwt-scope-claim; NULL: "scope", else "scp" */
  int poll_ms;                 /* how often the files' mtimes are checked; 0: 250 */
} auth_options;

/* Loads the configured files (INVALID_ARGUMENT naming the file and the problem) and starts
 * the watcher. With nothing configured, *out is a disabled authenticator. */
inferd_status auth_create(const auth_options *o, auth **out);
/* NULL-safe: false for NULL or nothing configured. */
bool auth_enabled(const auth *a);
/* SIGHUP: reload every file now (on the watcher thread; returns at once). */
void auth_reload(auth *a);
/* How many times a new snapshot has been published (tests and logs). */
long auth_generation(const auth *a);
void auth_destroy(auth *a);

/* A request's metadata by name, case-insensitively (HTTP headers, gRPC metadata). */
typedef const char *(*auth_meta_fn)(void *ctx, const char *name);

/* Authenticates at `now` (unix seconds). OK: *out is a counted principal (NULL when auth is
 * off). UNAUTHENTICATED: *invalid_token tells a bad credential (error="invalid_token" in
 * WWW-Authenticate) from a missing one. Messages never quote the credential. */
inferd_status auth_authenticate(auth *a, auth_meta_fn meta, void *meta_ctx, const char *client_subject, int64_t now,
                                const principal **out, bool *invalid_token);
/* A keep-alive connection's memo of the last credential it verified (an API key or a JWT) and
 * the principal it verified to, so that the next request presenting the same bytes skips the
 * digest or signature and the store lookup: the bytes are compared in constant time
 * (util/ct.h), the principal's expiry is still checked on every request, and the memo
 * counts only while the snapshot it was verified against is the one in force (a reload, a
 * revocation, drops it). Owned by the connection, used by its one thread; freed (the copy of
 * the credential wiped) when the connection closes. */
typedef struct auth_memo auth_memo;
/* auth_authenticate through *memo (NULL: no memo): a hit, or a miss that verifies and stores
 * the result in *memo (allocated on first use), or a refusal that frees it. */
inferd_status auth_authenticate_memo(auth *a, auth_memo **memo, auth_meta_fn meta, void *meta_ctx,
                                     const char *client_subject, int64_t now, const principal **out,
                                     bool *invalid_token);
/* How many requests the memo answered without verifying (tests, benchmarks); NULL-safe. */
unsigned long auth_memo_hits(const auth_memo *m);
/* Wipes the credential, drops the principal; NULL-safe. */
void auth_memo_free(auth_memo *m);

/* Whether p may do what `need` (a route's scope; SCOPE_INFER with model) allows: OK, or
 * PERMISSION_DENIED naming the missing scope. Auth off (a disabled): always OK. */
inferd_status auth_check(const auth *a, const principal *p, const char *need, const char *model);
/* The WWW-Authenticate value of a 401. */
const char *auth_challenge(bool invalid_token);
/* Registers the admit-stage handler that checks infer:<model> on every inference, whatever
 * the protocol (nothing when auth is off). */
inferd_status auth_install(auth *a, serve *s);

#endif
