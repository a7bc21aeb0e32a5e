/* security/keystore: parsing the API key file and checking keys against it (keystore.h). */
#include "security/keystore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "security/scope.h"
#include "util/jsonkeys.h"

bool keystore_time_parse(const char *text, int64_t *out) {
  int y, mo, d, h, mi, s, n = 0;
  if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 || n != (int)strlen(text) || n != 20)
    return false;
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || h < 0 || mi < 0 || s < 0)
    return false;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
  time_t t = timegm(&tm);
  if (t == (time_t)-1 || tm.tm_mday != d) return false; /* 31 February normalises to March */
  *out = (int64_t)t;
  return true;
}

void keystore_time_format(int64_t t, char buf[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void keystore_free(keystore *ks) {
  if (ks == NULL) return;
  for (size_t i = 0; i < ks->n; i++) {
    free(ks->entries[i].certificate_subject);
    principal_unref(ks->entries[i].who);
  }
  free(ks->entries);
  free(ks);
}

/* A non-negative number field (rate, burst...), absent: 0. */
static inferd_status number_field(const json_t *e, const char *name, const char *at, double max, double *out) {
  const json_t *v = json_object_get(e, name);
  *out = 0;
  if (v == NULL || json_is_null(v)) return status_ok();
  if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > max || !isfinite(json_number_value(v)))
    return status_make(INFERD_INVALID_ARGUMENT, "%s.%s must be a number from 0 to %.0f", at, name, max);
  *out = json_number_value(v);
  return status_ok();
}

static inferd_status time_field(const json_t *e, const char *name, const char *at, int64_t *out) {
  const json_t *v = json_object_get(e, name);
  *out = 0;
  if (v == NULL || json_is_null(v)) return status_ok();
  if (!json_is_string(v) || !keystore_time_parse(json_string_value(v), out))
    return status_make(INFERD_INVALID_ARGUMENT, "%s.%s must be a UTC time like \"2026-12-31T23:59:59Z\"", at, name);
  return status_ok();
}

static inferd_status parse_entry(const json_t *e, const char *at, keystore_entry *out) {
  static const char *const fields[] = {"id",    "name",    "hash",        "scopes",          "created",
                                       "expires", "revoked", "rate",       "burst",           "concurrency",
                                       "records_per_min", "tokens_per_min", "certificate_subject", NULL};
  if (!json_is_object(e)) return status_make(INFERD_INVALID_ARGUMENT, "%s must be an object", at);
  const char *unknown = jsonkeys_unknown(e, fields);
  if (unknown) {
    char list[512];
    jsonkeys_list(fields, list, sizeof list);
    return status_make(INFERD_INVALID_ARGUMENT, "%s: unknown field '%.64s' (allowed: %s)", at, unknown, list);
  }
  const json_t *name = json_object_get(e, "name");
  if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) >= PRINCIPAL_NAME_MAX)
    return status_make(INFERD_INVALID_ARGUMENT, "%s.name must be a string of 1 to %d characters", at, PRINCIPAL_NAME_MAX - 1);
  const json_t *id = json_object_get(e, "id"), *hash = json_object_get(e, "hash"),
               *subject = json_object_get(e, "certificate_subject");
  if (subject) {
    if (id || hash)
      return status_make(INFERD_INVALID_ARGUMENT, "%s: an entry has either a key (id and hash) or a certificate_subject, not both", at);
    if (!json_is_string(subject) || json_string_length(subject) == 0)
      return status_make(INFERD_INVALID_ARGUMENT, "%s.certificate_subject must be a non-empty string", at);
    out->certificate_subject = strdup(json_string_value(subject));
  } else {
    const char *idv = json_is_string(id) ? json_string_value(id) : "";
    bool hex = json_is_string(id) && json_string_length(id) == APIKEY_ID_HEX;
    for (size_t i = 0; hex && i < APIKEY_ID_HEX; i++) hex = (idv[i] >= '0' && idv[i] <= '9') || (idv[i] >= 'a' && idv[i] <= 'f');
    if (!hex) return status_make(INFERD_INVALID_ARGUMENT, "%s.id must be the key's %d lower-case hex digits", at, APIKEY_ID_HEX);
    char tmp[APIKEY_ID_HEX + 1];
    memcpy(tmp, idv, sizeof tmp);
    memcpy(out->id, tmp, sizeof out->id);
    if (!json_is_string(hash) || !apikey_hash_parse(json_string_value(hash), out->hash))
      return status_make(INFERD_INVALID_ARGUMENT, "%s.hash must be \"sha256:<64 lower-case hex digits>\"", at);
  }
  TRY(time_field(e, "created", at, &out->created));
  TRY(time_field(e, "expires", at, &out->expires));
  const json_t *rev = json_object_get(e, "revoked");
  if (rev && !json_is_boolean(rev)) return status_make(INFERD_INVALID_ARGUMENT, "%s.revoked must be true or false", at);
  out->revoked = rev && json_is_true(rev);
  out->who = principal_create(subject ? PRINCIPAL_CERT : PRINCIPAL_API_KEY, json_string_value(name));
  if (out->who == NULL || (subject && out->certificate_subject == NULL)) return status_make(INFERD_INTERNAL, "out of memory");
  const json_t *scopes = json_object_get(e, "scopes");
  if (!json_is_array(scopes)) return status_make(INFERD_INVALID_ARGUMENT, "%s.scopes must be an array of scopes", at);
  for (size_t i = 0; i < json_array_size(scopes); i++) {
    const json_t *s = json_array_get(scopes, i);
    if (!json_is_string(s)) return status_make(INFERD_INVALID_ARGUMENT, "%s.scopes[%zu] must be a string", at, i);
    inferd_status st = scope_validate(json_string_value(s));
    if (!status_is_ok(&st)) return status_make(INFERD_INVALID_ARGUMENT, "%s.scopes[%zu]: %s", at, i, st.msg);
    if (principal_add_scope(out->who, json_string_value(s))) return status_make(INFERD_INTERNAL, "out of memory");
  }
  double rate, burst, conc, rpm, tpm;
  TRY(number_field(e, "rate", at, 1e9, &rate));
  TRY(number_field(e, "burst", at, 1e9, &burst));
  TRY(number_field(e, "concurrency", at, 1e6, &conc));
  TRY(number_field(e, "records_per_min", at, 1e15, &rpm));
  TRY(number_field(e, "tokens_per_min", at, 1e15, &tpm));
  if (conc != floor(conc) || rpm != floor(rpm) || tpm != floor(tpm))
    return status_make(INFERD_INVALID_ARGUMENT, "%s: concurrency, records_per_min and tokens_per_min must be whole numbers", at);
  out->who->rate_per_s = rate;
  out->who->burst = burst;
  out->who->max_concurrent = (int)conc;
  out->who->records_per_min = (int64_t)rpm;
  out->who->tokens_per_min = (int64_t)tpm;
  out->who->expires_at = out->expires;
  return status_ok();
}

inferd_status keystore_from_json(const json_t *doc, const char *source, keystore **out) {
  static const char *const top[] = {"keys", NULL};
  if (!json_is_object(doc)) return status_make(INFERD_INVALID_ARGUMENT, "%s: the document must be an object {\"keys\": [...]}", source);
  const char *unknown = jsonkeys_unknown(doc, top);
  if (unknown) return status_make(INFERD_INVALID_ARGUMENT, "%s: unknown field '%.64s' (allowed: keys)", source, unknown);
  const json_t *keys = json_object_get(doc, "keys");
  if (!json_is_array(keys)) return status_make(INFERD_INVALID_ARGUMENT, "%s: \"keys\" must be an array", source);
  keystore *ks = calloc(1, sizeof *ks);
  if (ks == NULL || (json_array_size(keys) && (ks->entries = calloc(json_array_size(keys), sizeof *ks->entries)) == NULL)) {
    free(ks);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  inferd_status st = status_ok();
  for (size_t i = 0; i < json_array_size(keys) && status_is_ok(&st); i++) {
    char at[64];
    snprintf(at, sizeof at, "keys[%zu]", i);
    st = parse_entry(json_array_get(keys, i), at, &ks->entries[i]);
    ks->n = i + 1;
    for (size_t j = 0; j < i && status_is_ok(&st); j++) {
      const keystore_entry *a = &ks->entries[j], *b = &ks->entries[i];
      if (a->id[0] && strcmp(a->id, b->id) == 0)
        st = status_make(INFERD_INVALID_ARGUMENT, "%s.id: keys[%zu] has the same id", at, j);
      else if (a->certificate_subject && b->certificate_subject && strcmp(a->certificate_subject, b->certificate_subject) == 0)
        st = status_make(INFERD_INVALID_ARGUMENT, "%s.certificate_subject: keys[%zu] names the same subject", at, j);
    }
  }
  if (!status_is_ok(&st)) {
    keystore_free(ks);
    return status_make(st.code, "%s: %s", source, st.msg);
  }
  *out = ks;
  return status_ok();
}

inferd_status keystore_parse(const char *text, size_t len, const char *source, keystore **out) {
  json_error_t err;
  json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  if (doc == NULL)
    return status_make(INFERD_INVALID_ARGUMENT, "%s: not JSON at line %d, column %d: %s", source, err.line, err.column, err.text);
  inferd_status st = keystore_from_json(doc, source, out);
  json_decref(doc);
  return st;
}

static inferd_status admit_entry(const keystore_entry *e, int64_t now, const char *what, const principal **out) {
  if (e->revoked) return status_make(INFERD_UNAUTHENTICATED, "the %s '%s' has been revoked", what, e->who->name);
  if (e->expires && now >= e->expires) return status_make(INFERD_UNAUTHENTICATED, "the %s '%s' has expired", what, e->who->name);
  *out = principal_ref(e->who);
  return status_ok();
}

inferd_status keystore_check_key(const keystore *ks, const char *key, int64_t now, const principal **out) {
  char id[APIKEY_ID_HEX + 1];
  TRY(apikey_parse(key, id));
  uint8_t h[APIKEY_HASH_BYTES];
  TRY(apikey_hash(key, h));
  for (size_t i = 0; ks && i < ks->n; i++) {
    const keystore_entry *e = &ks->entries[i];
    if (e->id[0] == '\0' || strcmp(e->id, id) != 0) continue;
    if (!apikey_hash_equal(e->hash, h)) break;
    return admit_entry(e, now, "API key", out);
  }
  return status_make(INFERD_UNAUTHENTICATED, "unknown API key");
}

inferd_status keystore_check_subject(const keystore *ks, const char *subject, int64_t now, const principal **out) {
  for (size_t i = 0; ks && i < ks->n; i++) {
    const keystore_entry *e = &ks->entries[i];
    if (e->certificate_subject && strcmp(e->certificate_subject, subject) == 0)
      return admit_entry(e, now, "client certificate of", out);
  }
  return status_make(INFERD_UNAUTHENTICATED, "the client certificate's subject is not in the key store (--api-keys)");
}
