/* security/auth: the authenticator, its reloading snapshot and the admit-stage check (auth.h). */
#include "security/auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "security/keystore.h"
#include "security/scope.h"
#include "security/token.h"
#include "util/log.h"
#include "util/ct.h"

#define AUTH_MAX_FILE_BYTES (16 << 20)

/* What one reload read: replaced whole, freed when its last reader lets go. */
typedef struct auth_snap {
  _Atomic int refs;
  long generation;    /* auth.generation when it was published: what a memo is valid for */
  keystore *keys;     /* NULL: no --api-keys */
  token_keyset *jwt;  /* NULL: no JWT keys */
} auth_snap;

/* A file's identity and version as stat sees it: a write in place changes the mtime, a
 * rename (what `inferd keys` does) the inode. */
typedef struct file_sig {
  bool ok;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} file_sig;

struct auth {
  auth_options o;
  bool enabled;
  token_options topts;
  pthread_mutex_t mu; /* guards snap (held only to count a reference) */
  auth_snap *snap;
  atomic_long generation;
  /* the watcher */
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t wmu;
  pthread_cond_t wcv;
  bool stop, reload_requested;
  file_sig sig[3];    /* keys, jwks, secret as last loaded (or last failed) */
};

static void snap_release(auth_snap *s) {
  if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) return;
  keystore_free(s->keys);
  token_keyset_free(s->jwt);
  free(s);
}

static auth_snap *snap_acquire(auth *a) {
  pthread_mutex_lock(&a->mu);
  auth_snap *s = a->snap;
  if (s) atomic_fetch_add(&s->refs, 1);
  pthread_mutex_unlock(&a->mu);
  return s;
}

static file_sig sig_of(const char *path) {
  file_sig s = {0};
  struct stat sb;
  if (path == NULL || stat(path, &sb) != 0) return s;
  s.ok = true;
  s.dev = sb.st_dev;
  s.ino = sb.st_ino;
  s.size = sb.st_size;
  s.mtime = sb.st_mtim;
  s.ctime = sb.st_ctim;
  return s;
}

static bool sig_equal(const file_sig *a, const file_sig *b) {
  return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
         a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static inferd_status read_file(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return status_make(INFERD_INVALID_ARGUMENT, "cannot read %s: %s", path, strerror(errno));
  char *buf = malloc(AUTH_MAX_FILE_BYTES + 1);
  if (buf == NULL) {
    fclose(f);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  size_t n = fread(buf, 1, AUTH_MAX_FILE_BYTES + 1, f);
  bool err = ferror(f);
  fclose(f);
  if (err || n > AUTH_MAX_FILE_BYTES) {
    free(buf);
    return status_make(INFERD_INVALID_ARGUMENT, "cannot read %s: %s", path, err ? "read error" : "larger than 16 MiB");
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return status_ok();
}

/* Reads every configured file into a new snapshot. */
static inferd_status load_snap(const auth *a, auth_snap **out) {
  auth_snap *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  atomic_init(&s->refs, 1);
  inferd_status st = status_ok();
  if (a->o.api_keys_path) {
    char *text = NULL;
    size_t len = 0;
    st = read_file(a->o.api_keys_path, &text, &len);
    if (status_is_ok(&st)) {
      st = keystore_parse(text, len, a->o.api_keys_path, &s->keys);
      free(text);
    }
  }
  if (status_is_ok(&st) && (a->o.jwt_jwks_path || a->o.jwt_secret_path))
    st = token_keyset_load(a->o.jwt_jwks_path, a->o.jwt_secret_path, &s->jwt);
  if (!status_is_ok(&st)) {
    snap_release(s);
    return st;
  }
  *out = s;
  return status_ok();
}

static void publish(auth *a, auth_snap *s) {
  pthread_mutex_lock(&a->mu);
  auth_snap *old = a->snap;
  /* under the lock with the swap: generation equals snap->generation exactly while snap is
   * the one in force, which is what lets a memo tell it is stale */
  s->generation = atomic_fetch_add(&a->generation, 1) + 1;
  a->snap = s;
  pthread_mutex_unlock(&a->mu);
  snap_release(old); /* freed now or by its last reader */
}

static void *watcher_main(void *arg) {
  auth *a = arg;
  const char *paths[3] = {a->o.api_keys_path, a->o.jwt_jwks_path, a->o.jwt_secret_path};
  pthread_mutex_lock(&a->wmu);
  while (!a->stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long ns = until.tv_nsec + (long)a->o.poll_ms * 1000000L;
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    while (!a->stop && !a->reload_requested && pthread_cond_timedwait(&a->wcv, &a->wmu, &until) != ETIMEDOUT) {
    }
    if (a->stop) break;
    bool forced = a->reload_requested;
    a->reload_requested = false;
    pthread_mutex_unlock(&a->wmu);

    file_sig now[3];
    bool changed = forced;
    for (int i = 0; i < 3; i++) {
      now[i] = sig_of(paths[i]);
      if (paths[i] && !sig_equal(&now[i], &a->sig[i])) changed = true;
    }
    if (changed) {
      auth_snap *s;
      inferd_status st = load_snap(a, &s);
      if (status_is_ok(&st)) {
        publish(a, s);
        log_msg(LOG_INFO, NULL, "%s: credentials reloaded (%zu API key entries)", forced ? "SIGHUP" : "file changed",
                s->keys ? s->keys->n : 0);
      } else {
        /* the snapshot in use stays; one line per change, not one per poll */
        log_msg(LOG_ERROR, NULL, "credentials not reloaded, the previous ones stay in force: %s", st.msg);
      }
      memcpy(a->sig, now, sizeof now);
    }
    pthread_mutex_lock(&a->wmu);
  }
  pthread_mutex_unlock(&a->wmu);
  return NULL;
}

inferd_status auth_create(const auth_options *o, auth **out) {
  auth *a = calloc(1, sizeof *a);
  if (a == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  a->o = *o;
  if (a->o.poll_ms <= 0) a->o.poll_ms = 250;
  a->enabled = o->api_keys_path || o->jwt_jwks_path || o->jwt_secret_path;
  a->topts = (token_options){
      .issuer = o->jwt_issuer, .audience = o->jwt_audience, .scope_claim = o->jwt_scope_claim, .leeway_s = 30};
  pthread_mutex_init(&a->mu, NULL);
  pthread_mutex_init(&a->wmu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&a->wcv, &ca);
  pthread_condattr_destroy(&ca);
  *out = a;
  if ((o->jwt_issuer || o->jwt_audience || o->jwt_scope_claim) && !o->jwt_jwks_path && !o->jwt_secret_path) {
    auth_destroy(a);
    *out = NULL;
    return status_make(INFERD_INVALID_ARGUMENT, "--jwt-issuer and --jwt-audience need --jwt-jwks or --jwt-secret-file");
  }
  if (!a->enabled) return status_ok();
  const char *paths[3] = {o->api_keys_path, o->jwt_jwks_path, o->jwt_secret_path};
  for (int i = 0; i < 3; i++) a->sig[i] = sig_of(paths[i]);
  auth_snap *s;
  inferd_status st = load_snap(a, &s);
  if (!status_is_ok(&st)) {
    auth_destroy(a);
    *out = NULL;
    return st;
  }
  publish(a, s);
  if (pthread_create(&a->thread, NULL, watcher_main, a) != 0) {
    auth_destroy(a);
    *out = NULL;
    return status_make(INFERD_INTERNAL, "cannot start the credentials watcher thread");
  }
  pthread_setname_np(a->thread, "auth-watch");
  a->thread_started = true;
  return status_ok();
}

bool auth_enabled(const auth *a) { return a != NULL && a->enabled; }

long auth_generation(const auth *a) { return a ? atomic_load(&a->generation) : 0; }

void auth_reload(auth *a) {
  if (!auth_enabled(a)) return;
  pthread_mutex_lock(&a->wmu);
  a->reload_requested = true;
  pthread_cond_signal(&a->wcv);
  pthread_mutex_unlock(&a->wmu);
}

void auth_destroy(auth *a) {
  if (a == NULL) return;
  if (a->thread_started) {
    pthread_mutex_lock(&a->wmu);
    a->stop = true;
    pthread_cond_signal(&a->wcv);
    pthread_mutex_unlock(&a->wmu);
    pthread_join(a->thread, NULL);
  }
  snap_release(a->snap);
  pthread_mutex_destroy(&a->mu);
  pthread_mutex_destroy(&a->wmu);
  pthread_cond_destroy(&a->wcv);
  free(a);
}

const char *auth_challenge(bool invalid_token) {
  return invalid_token ? "Bearer realm=\"inferd\", error=\"invalid_token\"" : "Bearer realm=\"inferd\"";
}

static int count_dots(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '.';
  return n;
}

static inferd_status check_key(const auth_snap *s, const char *key, int64_t now, const principal **out) {
  if (s->keys == NULL)
    return status_make(INFERD_UNAUTHENTICATED, "API keys are not accepted by this server (no --api-keys)");
  return keystore_check_key(s->keys, key, now, out);
}

static inferd_status check_token(const auth *a, const auth_snap *s, const char *token, int64_t now, const principal **out) {
  if (s->jwt == NULL)
    return status_make(INFERD_UNAUTHENTICATED, "JWTs are not accepted by this server (no --jwt-jwks or --jwt-secret-file)");
  principal *p = NULL;
  TRY(token_verify(s->jwt, &a->topts, token, now, &p));
  *out = p;
  return status_ok();
}

struct auth_memo {
  long generation;        /* the snapshot's the credential was verified against */
  const principal *who;   /* a counted reference */
  unsigned long hits;
  size_t len, cap;
  unsigned char *cred;    /* the credential's bytes, wiped before they are freed */
};

void auth_memo_free(auth_memo *m) {
  if (m == NULL) return;
  principal_unref(m->who);
  if (m->cred) OPENSSL_clear_free(m->cred, m->cap);
  free(m);
}

unsigned long auth_memo_hits(const auth_memo *m) { return m ? m->hits : 0; }

/* The memoized principal when cred is the credential verified last on this connection, under
 * the snapshot still in force and not expired at now; NULL otherwise. The length is compared in
 * the clear (the key format fixes it), the bytes in constant time. */
static const principal *memo_hit(const auth *a, auth_memo *m, const char *cred, size_t len, int64_t now) {
  if (m == NULL || m->who == NULL || m->len != len || m->generation != atomic_load(&a->generation)) return NULL;
  if (!ct_equal(m->cred, cred, len)) return NULL;
  if (m->who->expires_at && now >= m->who->expires_at) return NULL; /* the full check says why */
  m->hits++;
  return principal_ref(m->who);
}

/* Remembers a verified credential; false (no memo, nothing lost) when out of memory. */
static bool memo_store(auth_memo **mp, long generation, const char *cred, size_t len, const principal *who) {
  auth_memo *m = *mp;
  if (m == NULL && (m = *mp = calloc(1, sizeof *m)) == NULL) return false;
  if (m->cap < len) {
    unsigned char *c = malloc(len);
    if (c == NULL) return false;
    if (m->cred) OPENSSL_clear_free(m->cred, m->cap);
    m->cred = c;
    m->cap = len;
  }
  memcpy(m->cred, cred, len);
  m->len = len;
  m->generation = generation;
  principal_unref(m->who);
  m->who = principal_ref(who);
  return true;
}

static void memo_drop(auth_memo **mp) {
  if (mp == NULL) return;
  auth_memo_free(*mp);
  *mp = NULL;
}

inferd_status auth_authenticate(auth *a, auth_meta_fn meta, void *meta_ctx, const char *client_subject, int64_t now,
                                const principal **out, bool *invalid_token) {
  return auth_authenticate_memo(a, NULL, meta, meta_ctx, client_subject, now, out, invalid_token);
}

inferd_status auth_authenticate_memo(auth *a, auth_memo **memo, auth_meta_fn meta, void *meta_ctx,
                                     const char *client_subject, int64_t now, const principal **out,
                                     bool *invalid_token) {
  *out = NULL;
  *invalid_token = false;
  if (!auth_enabled(a)) return status_ok();
  const char *authz = meta ? meta(meta_ctx, "authorization") : NULL;
  const char *xkey = meta ? meta(meta_ctx, "x-api-key") : NULL;
  if (authz == NULL && xkey == NULL && client_subject == NULL)
    return status_make(INFERD_UNAUTHENTICATED,
                       "this needs a credential: send Authorization: Bearer <API key or JWT>, or X-API-Key: <API key>");
  *invalid_token = true;
  const char *cred = NULL;
  bool jwt = false;
  if (authz) {
    if (strncasecmp(authz, "Bearer ", 7) != 0)
      return status_make(INFERD_UNAUTHENTICATED, "the Authorization header must be 'Bearer <API key or JWT>'");
    cred = authz + 7;
    while (*cred == ' ') cred++;
    if (*cred == '\0') return status_make(INFERD_UNAUTHENTICATED, "the Authorization header carries no credential after 'Bearer'");
    if (xkey && strcmp(xkey, cred) != 0)
      return status_make(INFERD_UNAUTHENTICATED, "Authorization and X-API-Key carry different credentials: send one");
    jwt = count_dots(cred) == 2;
  } else if (xkey) {
    cred = xkey;
    if (*cred == '\0') return status_make(INFERD_UNAUTHENTICATED, "the X-API-Key header is empty");
  }
  size_t cred_len = cred ? strlen(cred) : 0;
  if (memo && cred && (*out = memo_hit(a, *memo, cred, cred_len, now)) != NULL) {
    *invalid_token = false;
    return status_ok();
  }
  auth_snap *s = snap_acquire(a);
  if (s == NULL) return status_make(INFERD_UNAVAILABLE, "credentials are not loaded");
  inferd_status st;
  if (cred) {
    st = jwt ? check_token(a, s, cred, now, out) : check_key(s, cred, now, out);
    if (memo && status_is_ok(&st) && !memo_store(memo, s->generation, cred, cred_len, *out)) memo_drop(memo);
  } else if (s->keys) {
    st = keystore_check_subject(s->keys, client_subject, now, out);
  } else {
    st = status_make(INFERD_UNAUTHENTICATED, "client certificates map to principals through the key store (--api-keys), which is not configured");
  }
  snap_release(s);
  if (status_is_ok(&st))
    *invalid_token = false;
  else
    memo_drop(memo); /* a refused credential leaves nothing behind */
  return st;
}

inferd_status auth_check(const auth *a, const principal *p, const char *need, const char *model) {
  if (!auth_enabled(a) || scope_is_open(need)) return status_ok();
  if (p == NULL)
    return status_make(INFERD_UNAUTHENTICATED,
                       "this needs a credential: send Authorization: Bearer <API key or JWT>, or X-API-Key: <API key>");
  bool infer_model = strcmp(need, SCOPE_INFER) == 0 && model && *model;
  if (infer_model ? scope_allows_infer(p, model) : scope_allows(p, need)) return status_ok();
  char buf[300];
  const char *scope = scope_needed(need, model, buf, sizeof buf);
  return status_make(INFERD_PERMISSION_DENIED, "'%s' lacks the scope '%s' this needs", p->name, scope);
}

/* The admit stage: every inference, on every protocol, once the model is named. */
static inferd_status admit(void *ctx, const serve_request *sr, infer_request *req) {
  (void)req;
  const auth *a = ctx;
  const principal *p = sr->principal;
  /* a stream authenticated at its start may outlive its credential */
  if (p && p->expires_at && (int64_t)time(NULL) >= p->expires_at)
    return status_make(INFERD_UNAUTHENTICATED, "the credential of '%s' has expired", p->name);
  return auth_check(a, p, SCOPE_INFER, sr->model);
}

inferd_status auth_install(auth *a, serve *s) {
  if (!auth_enabled(a)) return status_ok();
  return serve_register(s, SERVE_STAGE_ADMIT, admit, a);
}
