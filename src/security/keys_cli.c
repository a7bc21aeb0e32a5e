/* security/keys_cli: the `inferd keys` commands. The file is rewritten whole, to a temporary
 * file beside it and renamed over it, so a running server (which reloads on change) never
 * reads half a file; it is created with mode 0600. A new key is printed once, on stdout, and
 * only its SHA-256 is stored. */
#include "security/keys_cli.h"
#include "security/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "security/apikey.h"
#include "security/keystore.h"
#include "security/scope.h"

bool keys_parse_duration(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || !(v > 0) || !isfinite(v)) return false;
  double mult = 1;
  if (*end) {
    switch (*end) {
      case 's': mult = 1; break;
      case 'm': mult = 60; break;
      case 'h': mult = 3600; break;
      case 'd': mult = 86400; break;
      case 'w': mult = 7 * 86400; break;
      default: return false;
    }
    if (end[1] != '\0') return false;
  }
  double secs = v * mult;
  if (secs < 1 || secs > 100.0 * 365 * 86400) return false;
  *out = (int64_t)secs;
  return true;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: inferd keys create --file FILE --name NAME --scopes LIST [--rate R/s] [--burst N]\n"
          "                          [--concurrency N] [--records-per-min N] [--expires DURATION]\n"
          "                          [--certificate-subject SUBJECT]\n"
          "       inferd keys list   --file FILE [--json]\n"
          "       inferd keys revoke --file FILE (--name NAME | --id ID)\n"
          "       inferd keys rotate --file FILE --name NAME [--expires DURATION] [--grace DURATION]\n\n"
          "LIST is comma-separated scopes: infer:<model>, infer:*, read, metrics, jobs, admin, or *.\n"
          "DURATION: 90d, 12h, 30m, 45s, 2w. create and rotate print the new key once, on stdout;\n"
          "the file keeps only its SHA-256. With --certificate-subject, create maps a TLS client\n"
          "certificate's subject to the scopes instead (no key is made).\n"
          "rotate makes a new key with the same name, scopes and limits; the old one is revoked at\n"
          "once, or expires after --grace. Every command takes INFERD_API_KEYS for --file.\n");
}

static json_t *load_doc(const char *path, bool create) {
  struct stat sb;
  if (stat(path, &sb) != 0 && errno == ENOENT && create) return json_pack("{s[]}", "keys");
  json_error_t err;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  if (doc == NULL) {
    fprintf(stderr, "inferd keys: %s: %s (line %d)\n", path, err.text, err.line);
    return NULL;
  }
  keystore *ks;
  inferd_status st = keystore_from_json(doc, path, &ks);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd keys: %s\n", st.msg);
    json_decref(doc);
    return NULL;
  }
  keystore_free(ks);
  return doc;
}

static int save_doc(const char *path, json_t *doc) {
  keystore *ks;
  inferd_status st = keystore_from_json(doc, path, &ks); /* never write what the server would refuse */
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd keys: %s\n", st.msg);
    return 1;
  }
  keystore_free(ks);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "inferd keys: cannot write %s: %s\n", tmp, strerror(errno));
    return 1;
  }
  char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  size_t len = text ? strlen(text) : 0;
  bool ok = text != NULL;
  for (size_t off = 0; ok && off < len;) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) off += (size_t)w;
  }
  ok = ok && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
  free(text);
  if (close(fd) != 0) ok = false;
  if (!ok || rename(tmp, path) != 0) {
    fprintf(stderr, "inferd keys: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp);
    return 1;
  }
  return 0;
}

static json_t *scopes_array(const char *list) {
  json_t *a = json_array();
  char *copy = strdup(list);
  for (char *save = NULL, *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    inferd_status st = scope_validate(tok);
    if (!status_is_ok(&st)) {
      fprintf(stderr, "inferd keys: --scopes: %s\n", st.msg);
      json_decref(a);
      free(copy);
      return NULL;
    }
    json_array_append_new(a, json_string(tok));
  }
  free(copy);
  if (json_array_size(a) == 0) {
    fprintf(stderr, "inferd keys: --scopes names no scope\n");
    json_decref(a);
    return NULL;
  }
  return a;
}

static void set_time(json_t *e, const char *field, int64_t t) {
  char buf[32];
  keystore_time_format(t, buf);
  json_object_set_new(e, field, json_string(buf));
}

static bool entry_active(const json_t *e, int64_t now) {
  if (json_is_true(json_object_get(e, "revoked"))) return false;
  int64_t exp = 0;
  const json_t *x = json_object_get(e, "expires");
  return !(json_is_string(x) && keystore_time_parse(json_string_value(x), &exp) && exp <= now);
}

enum { O_FILE = 1, O_NAME, O_SCOPES, O_RATE, O_BURST, O_CONC, O_RPM, O_EXPIRES, O_SUBJECT, O_JSON, O_ID, O_GRACE, O_HELP };

typedef struct keys_args {
  const char *file, *name, *scopes, *rate, *burst, *conc, *rpm, *expires, *subject, *id, *grace;
  bool json;
} keys_args;

static int parse_args(int argc, char **argv, keys_args *a) {
  static const struct option opts[] = {
      {"file", required_argument, 0, O_FILE},       {"name", required_argument, 0, O_NAME},
      {"scopes", required_argument, 0, O_SCOPES},   {"rate", required_argument, 0, O_RATE},
      {"burst", required_argument, 0, O_BURST},     {"concurrency", required_argument, 0, O_CONC},
      {"records-per-min", required_argument, 0, O_RPM}, {"expires", required_argument, 0, O_EXPIRES},
      {"certificate-subject", required_argument, 0, O_SUBJECT}, {"json", no_argument, 0, O_JSON},
      {"id", required_argument, 0, O_ID},           {"grace", required_argument, 0, O_GRACE},
      {"help", no_argument, 0, O_HELP},             {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  a->file = getenv("INFERD_API_KEYS");
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case O_FILE: a->file = optarg; break;
      case O_NAME: a->name = optarg; break;
      case O_SCOPES: a->scopes = optarg; break;
      case O_RATE: a->rate = optarg; break;
      case O_BURST: a->burst = optarg; break;
      case O_CONC: a->conc = optarg; break;
      case O_RPM: a->rpm = optarg; break;
      case O_EXPIRES: a->expires = optarg; break;
      case O_SUBJECT: a->subject = optarg; break;
      case O_JSON: a->json = true; break;
      case O_ID: a->id = optarg; break;
      case O_GRACE: a->grace = optarg; break;
      case O_HELP: usage(stdout); exit(0);
      default: usage(stderr); return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "inferd keys: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  if (a->file == NULL || *a->file == '\0') {
    fprintf(stderr, "inferd keys: --file FILE (or INFERD_API_KEYS) is required\n");
    return -1;
  }
  return 0;
}

static int set_number(json_t *e, const char *field, const char *flag, const char *val, bool whole) {
  if (val == NULL) return 0;
  char *end;
  errno = 0;
  double v = strtod(val, &end);
  if (errno || end == val || *end || !(v > 0) || !isfinite(v) || (whole && v != floor(v))) {
    fprintf(stderr, "inferd keys: %s must be a positive %s, got '%s'\n", flag, whole ? "whole number" : "number", val);
    return -1;
  }
  json_object_set_new(e, field, whole ? json_integer((json_int_t)v) : json_real(v));
  return 0;
}

static int cmd_create(const keys_args *a, int64_t now) {
  if (a->name == NULL || *a->name == '\0' || a->scopes == NULL) {
    fprintf(stderr, "inferd keys create: --name and --scopes are required\n");
    return 2;
  }
  int64_t ttl = 0;
  if (a->expires && !keys_parse_duration(a->expires, &ttl)) {
    fprintf(stderr, "inferd keys: --expires must be a duration like 90d, 12h or 30m, got '%s'\n", a->expires);
    return 2;
  }
  double rate = 0;
  if (a->rate) {
    inferd_status st = limits_parse_rate("--rate", a->rate, &rate); /* the one rate syntax, as --rate-limit */
    if (!status_is_ok(&st)) {
      fprintf(stderr, "inferd keys: %s\n", st.msg);
      return 2;
    }
  }
  json_t *scopes = scopes_array(a->scopes);
  if (scopes == NULL) return 2;
  json_t *doc = load_doc(a->file, true);
  if (doc == NULL) {
    json_decref(scopes);
    return 1;
  }
  json_t *keys = json_object_get(doc, "keys");
  size_t i;
  json_t *e;
  json_array_foreach(keys, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n && strcmp(n, a->name) == 0 && entry_active(e, now)) {
      fprintf(stderr, "inferd keys: '%s' already has an active entry in %s: rotate or revoke it\n", a->name, a->file);
      json_decref(scopes);
      json_decref(doc);
      return 1;
    }
  }
  json_t *limits = json_object();
  if (rate > 0) json_object_set_new(limits, "rate", json_real(rate));
  if (set_number(limits, "burst", "--burst", a->burst, false) || set_number(limits, "concurrency", "--concurrency", a->conc, true) ||
      set_number(limits, "records_per_min", "--records-per-min", a->rpm, true)) {
    json_decref(limits);
    json_decref(scopes);
    json_decref(doc);
    return 2;
  }
  int rc = 1;
  if (a->subject) {
    json_t *entry = json_pack("{ss ss sO}", "name", a->name, "certificate_subject", a->subject, "scopes", scopes);
    set_time(entry, "created", now);
    if (ttl) set_time(entry, "expires", now + ttl);
    json_object_set_new(entry, "revoked", json_false());
    json_object_update(entry, limits);
    json_array_append_new(keys, entry);
    rc = save_doc(a->file, doc);
    if (rc == 0) fprintf(stderr, "inferd keys: certificate subject '%s' mapped to '%s' in %s\n", a->subject, a->name, a->file);
  } else {
    char key[APIKEY_LEN + 1], id[APIKEY_ID_HEX + 1];
    uint8_t h[APIKEY_HASH_BYTES];
    inferd_status st = apikey_generate(key, id);
    if (status_is_ok(&st)) st = apikey_hash(key, h);
    if (!status_is_ok(&st)) {
      fprintf(stderr, "inferd keys: %s\n", st.msg);
    } else {
      char hex[80];
      apikey_hash_format(h, hex);
      json_t *entry = json_pack("{ss ss ss sO}", "id", id, "name", a->name, "hash", hex, "scopes", scopes);
      set_time(entry, "created", now);
      if (ttl) set_time(entry, "expires", now + ttl);
      json_object_set_new(entry, "revoked", json_false());
      json_object_update(entry, limits);
      json_array_append_new(keys, entry);
      /* stored first, printed after: a key that was never saved is never shown */
      rc = save_doc(a->file, doc);
      if (rc == 0) {
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "inferd keys: created '%s' (id %s) in %s; the key above is shown only now\n", a->name, id, a->file);
      }
    }
    memset(key, 0, sizeof key);
  }
  json_decref(limits);
  json_decref(scopes);
  json_decref(doc);
  return rc;
}

static int cmd_list(const keys_args *a, int64_t now) {
  json_t *doc = load_doc(a->file, false);
  if (doc == NULL) return 1;
  json_t *keys = json_object_get(doc, "keys");
  size_t i;
  json_t *e;
  if (a->json) { /* the entries without their hashes */
    json_t *out = json_array();
    json_array_foreach(keys, i, e) {
      json_t *c = json_deep_copy(e);
      json_object_del(c, "hash");
      json_object_set_new(c, "state", json_string(json_is_true(json_object_get(e, "revoked")) ? "revoked"
                                                  : entry_active(e, now)                     ? "active"
                                                                                             : "expired"));
      json_array_append_new(out, c);
    }
    char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "[]");
    free(text);
    json_decref(out);
    json_decref(doc);
    return 0;
  }
  printf("%-16s  %-20s  %-8s  %-20s  %-20s  %s\n", "ID", "NAME", "STATE", "CREATED", "EXPIRES", "SCOPES");
  json_array_foreach(keys, i, e) {
    const char *id = json_string_value(json_object_get(e, "id"));
    const char *created = json_string_value(json_object_get(e, "created"));
    const char *expires = json_string_value(json_object_get(e, "expires"));
    const char *state = json_is_true(json_object_get(e, "revoked")) ? "revoked" : entry_active(e, now) ? "active" : "expired";
    char scopes[512] = "";
    size_t k;
    json_t *s;
    json_array_foreach(json_object_get(e, "scopes"), k, s) {
      size_t used = strlen(scopes);
      snprintf(scopes + used, sizeof scopes - used, "%s%s", k ? "," : "", json_string_value(s));
    }
    printf("%-16s  %-20s  %-8s  %-20s  %-20s  %s\n", id ? id : "(certificate)", json_string_value(json_object_get(e, "name")),
           state, created ? created : "-", expires ? expires : "never", scopes);
  }
  json_decref(doc);
  return 0;
}

static int cmd_revoke(const keys_args *a, int64_t now) {
  (void)now;
  if ((a->name == NULL) == (a->id == NULL)) {
    fprintf(stderr, "inferd keys revoke: give --name or --id\n");
    return 2;
  }
  json_t *doc = load_doc(a->file, false);
  if (doc == NULL) return 1;
  size_t i, n = 0;
  json_t *e;
  json_array_foreach(json_object_get(doc, "keys"), i, e) {
    const char *field = a->name ? "name" : "id";
    const char *v = json_string_value(json_object_get(e, field));
    if (v && strcmp(v, a->name ? a->name : a->id) == 0 && !json_is_true(json_object_get(e, "revoked"))) {
      json_object_set_new(e, "revoked", json_true());
      n++;
    }
  }
  int rc = 1;
  if (n == 0)
    fprintf(stderr, "inferd keys: no unrevoked entry with %s '%s' in %s\n", a->name ? "name" : "id", a->name ? a->name : a->id, a->file);
  else if ((rc = save_doc(a->file, doc)) == 0)
    fprintf(stderr, "inferd keys: revoked %zu entr%s; a running server stops accepting %s within a second\n", n,
            n == 1 ? "y" : "ies", n == 1 ? "it" : "them");
  json_decref(doc);
  return rc;
}

static int cmd_rotate(const keys_args *a, int64_t now) {
  if (a->name == NULL) {
    fprintf(stderr, "inferd keys rotate: --name is required\n");
    return 2;
  }
  int64_t ttl = 0, grace = 0;
  if (a->expires && !keys_parse_duration(a->expires, &ttl)) {
    fprintf(stderr, "inferd keys: --expires must be a duration like 90d, got '%s'\n", a->expires);
    return 2;
  }
  if (a->grace && !keys_parse_duration(a->grace, &grace)) {
    fprintf(stderr, "inferd keys: --grace must be a duration like 1h, got '%s'\n", a->grace);
    return 2;
  }
  json_t *doc = load_doc(a->file, false);
  if (doc == NULL) return 1;
  json_t *keys = json_object_get(doc, "keys");
  json_t *old = NULL, *e;
  size_t i;
  json_array_foreach(keys, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n && strcmp(n, a->name) == 0 && json_object_get(e, "id") && entry_active(e, now)) old = e;
  }
  if (old == NULL) {
    fprintf(stderr, "inferd keys: no active key named '%s' in %s\n", a->name, a->file);
    json_decref(doc);
    return 1;
  }
  /* the new key keeps the old one's lifetime unless told otherwise */
  int64_t created = 0, expires = 0;
  const json_t *ce = json_object_get(old, "created"), *xe = json_object_get(old, "expires");
  if (!ttl && json_is_string(ce) && json_is_string(xe) && keystore_time_parse(json_string_value(ce), &created) &&
      keystore_time_parse(json_string_value(xe), &expires) && expires > created)
    ttl = expires - created;
  char key[APIKEY_LEN + 1], id[APIKEY_ID_HEX + 1], hex[80];
  uint8_t h[APIKEY_HASH_BYTES];
  inferd_status st = apikey_generate(key, id);
  if (status_is_ok(&st)) st = apikey_hash(key, h);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd keys: %s\n", st.msg);
    json_decref(doc);
    return 1;
  }
  apikey_hash_format(h, hex);
  json_t *ne = json_deep_copy(old);
  json_object_set_new(ne, "id", json_string(id));
  json_object_set_new(ne, "hash", json_string(hex));
  set_time(ne, "created", now);
  if (ttl) set_time(ne, "expires", now + ttl);
  else json_object_del(ne, "expires");
  if (grace) {
    int64_t old_exp = 0;
    if (!(json_is_string(xe) && keystore_time_parse(json_string_value(xe), &old_exp) && old_exp < now + grace))
      set_time(old, "expires", now + grace);
  } else {
    json_object_set_new(old, "revoked", json_true());
  }
  const char *old_id = json_string_value(json_object_get(old, "id"));
  char old_id_copy[APIKEY_ID_HEX + 1];
  snprintf(old_id_copy, sizeof old_id_copy, "%s", old_id ? old_id : "");
  json_array_append_new(keys, ne);
  int rc = save_doc(a->file, doc);
  if (rc == 0) {
    printf("%s\n", key);
    fflush(stdout);
    fprintf(stderr, "inferd keys: rotated '%s': new id %s; old id %s %s\n", a->name, id, old_id_copy,
            grace ? "expires after the grace period" : "revoked");
  }
  memset(key, 0, sizeof key);
  json_decref(doc);
  return rc;
}

int keys_cli_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *cmd = argv[1];
  keys_args a;
  if (parse_args(argc - 1, argv + 1, &a)) return 2;
  int64_t now = (int64_t)time(NULL);
  if (strcmp(cmd, "create") == 0) return cmd_create(&a, now);
  if (strcmp(cmd, "list") == 0) return cmd_list(&a, now);
  if (strcmp(cmd, "revoke") == 0) return cmd_revoke(&a, now);
  if (strcmp(cmd, "rotate") == 0) return cmd_rotate(&a, now);
  fprintf(stderr, "inferd keys: unknown command '%s' (create, list, revoke, rotate)\n", cmd);
  usage(stderr);
  return 2;
}
