/* security/token: placeholder until the JWT verifier lands (helper branch sec-jwt replaces this
 * file): every token is refused. */
#include "security/token.h"

#include <stdlib.h>

inferd_status token_keyset_load(const char *jwks_path, const char *secret_path, token_keyset **out) {
  (void)jwks_path;
  (void)secret_path;
  *out = NULL;
  return status_make(INFERD_INVALID_ARGUMENT, "JWT verification is not built yet");
}

void token_keyset_free(token_keyset *ks) { (void)ks; }

inferd_status token_verify(const token_keyset *ks, const token_options *o, const char *token, int64_t now, principal **out) {
  (void)ks;
  (void)o;
  (void)token;
  (void)now;
  *out = NULL;
  return status_make(INFERD_UNAUTHENTICATED, "JWT verification is not built yet");
}
