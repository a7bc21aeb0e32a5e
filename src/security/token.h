/* security/token: verifies a JSON Web Token (RS256, ES256, HS256; RFC 7519/7515) against a key
 * set loaded from a JWKS file (RFC 7517) and/or a shared HS256 secret, and turns its claims into
 * a principal. Pure apart from the clock, which the caller passes in. OpenSSL 3 does the
 * signatures. */
#ifndef INFERD_TOKEN_H
#define INFERD_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/principal.h"
#include "core/status.h"

typedef struct token_keyset token_keyset;

/* Loads the keys: jwks_path (a JWKS document: RSA and EC P-256 keys, each with a "kid") and/or
 * secret_path (the HS256 secret, the file's bytes without a trailing newline); either may be
 * NULL, not both. INVALID_ARGUMENT naming the file and the key when one is unusable. */
inferd_status token_keyset_load(const char *jwks_path, const char *secret_path, token_keyset **out);
void token_keyset_free(token_keyset *ks);

typedef struct token_options {
  const char *issuer;      /* NULL: not checked; else "iss" must equal it */
  const char *audience;    /* NULL: not checked; else "aud" (string or array) must contain it */
  const char *scope_claim; /* NULL: "scope" (space-separated) or "scp" (array), whichever is present */
  int64_t leeway_s;        /* for exp and nbf; the default is 30 */
  size_t max_token_bytes;  /* 0: 8192 */
} token_options;

/* Verifies token at `now` (unix seconds). OK: *out is a new principal (kind PRINCIPAL_JWT,
 * name = "sub", scopes from the scope claim, expires_at = "exp"). Otherwise UNAUTHENTICATED with
 * a reason that names what failed (expired, not yet valid, wrong issuer, wrong audience, unknown
 * kid, bad signature, alg none, algorithm not allowed for the key, too large, malformed) and
 * never echoes the token. */
inferd_status token_verify(const token_keyset *ks, const token_options *o, const char *token, int64_t now, principal **out);

#endif
