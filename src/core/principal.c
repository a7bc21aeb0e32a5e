/* core/principal: the caller's identity value and its reference count. */
#include "core/principal.h"

#include <stdlib.h>
#include <string.h>

principal *principal_create(principal_kind kind, const char *name) {
  principal *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  atomic_init(&p->refs, 1);
  p->kind = kind;
  size_t n = strnlen(name ? name : "", sizeof p->name - 1);
  memcpy(p->name, name ? name : "", n);
  p->name[n] = '\0';
  return p;
}

int principal_add_scope(principal *p, const char *scope) {
  char **s = realloc(p->scopes, (p->n_scopes + 1) * sizeof *s);
  if (s == NULL) return -1;
  p->scopes = s;
  if ((s[p->n_scopes] = strdup(scope)) == NULL) return -1;
  p->n_scopes++;
  return 0;
}

const principal *principal_ref(const principal *p) {
  /* the count is the one mutable part of a shared, otherwise immutable value */
  if (p) atomic_fetch_add(&((principal *)p)->refs, 1);
  return p;
}

void principal_unref(const principal *p) {
  if (p == NULL || atomic_fetch_sub(&((principal *)p)->refs, 1) != 1) return;
  principal *q = (principal *)p;
  for (size_t i = 0; i < q->n_scopes; i++) free(q->scopes[i]);
  free(q->scopes);
  free(q);
}

const char *principal_kind_name(principal_kind k) {
  switch (k) {
    case PRINCIPAL_API_KEY: return "api_key";
    case PRINCIPAL_JWT: return "jwt";
    case PRINCIPAL_CERT: return "certificate";
    default: return "anonymous";
  }
}
