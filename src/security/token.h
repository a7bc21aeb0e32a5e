/* security/token: verifies a JSON Web Token (RS256, ES256, HS256; RFC 7519/7515) against a key
 * set loaded from a JWKS file (RFC 7517) and/or a shared HS256 secret, and turns its claims into
 * a principal. Pure apart from the clock, which the caller passes in. OpenSSL 3 does the
 * signatures. docs/security.md ("JWT") is the user's view of the rules below. */
#ifndef INFERD_TOKEN_H
#define INFERD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/principal.h"
#include "core/status.h"

#define TOKEN_DEFAULT_MAX_BYTES 8192
#define TOKEN_DEFAULT_LEEWAY_S 30

/* Immutable once loaded: any number of threads may verify against one key set at once. */
typedef struct token_keyset token_keyset;

/* Loads the keys: jwks_path (a JWKS document: RSA keys of 2048 to 8192 bits for RS256 and EC
 * P-256 keys for ES256; a key's "alg", when present, must be that one) and/or secret_path (the
 * HS256 secret, the file's bytes without a trailing newline, at least 32 bytes); either may be
 * NULL, not both. Keys marked "use": "enc" (or whose "key_ops" lack "verify") are left out;
 * every other key must be usable, else INVALID_ARGUMENT naming the file and the key's kid (an
 * "oct" key, another curve or algorithm, a malformed or weak key, private key material). With
 * several keys each needs a distinct "kid". */
inferd_status token_keyset_load(const char *jwks_path, const char *secret_path, token_keyset **out);
void token_keyset_free(token_keyset *ks);
/* The JWKS signature keys loaded, and whether a secret was (for start-up messages). */
size_t token_keyset_count(const token_keyset *ks);
bool token_keyset_has_secret(const token_keyset *ks);

typedef struct token_options {
  const char *issuer;      /* NULL: not checked; else "iss" must equal it */
  const char *audience;    /* NULL: not checked; else "aud" (string or array) must contain it */
  const char *scope_claim; /* NULL: "scope", else "scp" (each a space-separated string or an
                              array of strings); else that claim, in either form */
  int64_t leeway_s;        /* clock skew allowed for exp and nbf: 0 gives the default (30), a
                              negative value none */
  size_t max_token_bytes;  /* 0: 8192 */
} token_options;

/* Verifies token at `now` (unix seconds); o NULL means the defaults. OK: *out is a new principal
 * (kind PRINCIPAL_JWT, name = "sub", scopes from the scope claim, expires_at = "exp" plus
 * the leeway: the first second at which the token is refused as expired).
 * Otherwise UNAUTHENTICATED with a reason that names what failed (expired, not yet valid, wrong
 * issuer, wrong audience, unknown kid, bad signature, alg none, algorithm not allowed for the
 * key, too large, malformed) and never echoes the token.
 * The rules: the size is checked before any decoding; base64url strictly (no padding, no other
 * characters, canonical); "alg" RS256/ES256 (a JWKS key of that type, chosen by "kid"; a token
 * without a kid only when the JWKS holds one key) or HS256 (the secret only, never a JWKS key);
 * "none" in any case and a "crit" header are refused; the signature is checked before the
 * payload is read; "exp" is required, "nbf" optional; "sub" is required (1 to 127 bytes, no
 * control characters). */
inferd_status token_verify(const token_keyset *ks, const token_options *o, const char *token, int64_t now, principal **out);

#endif
