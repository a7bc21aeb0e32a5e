/* generate/genconfig: config.json "generate" parsed strictly, and the chat template applied. */
#include "generate/genconfig.h"

#include <stdlib.h>
#include <string.h>

#include "util/jsonkeys.h"

static inferd_status bad(const char *field, const char *what) {
  return status_make(INFERD_INVALID_ARGUMENT, "config.json: generate.%s %s", field, what);
}

static inferd_status unknown_key(const json_t *obj, const char *const *allowed, const char *where) {
  const char *k = jsonkeys_unknown(obj, allowed);
  if (k == NULL) return status_ok();
  char list[256];
  jsonkeys_list(allowed, list, sizeof list);
  return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s has an unknown field '%s' (known: %s)", where, k, list);
}

static inferd_status dup_string(const json_t *v, const char *field, char **out) {
  if (!json_is_string(v)) return bad(field, "must be a string");
  *out = strdup(json_string_value(v));
  return *out ? status_ok() : status_make(INFERD_INTERNAL, "out of memory");
}

static inferd_status number(const json_t *v, const char *field, double lo, double hi, double *out) {
  if (!json_is_number(v)) return bad(field, "must be a number");
  double d = json_number_value(v);
  if (!(d >= lo && d <= hi)) {
    char what[96];
    snprintf(what, sizeof what, "must be between %g and %g", lo, hi);
    return bad(field, what);
  }
  *out = d;
  return status_ok();
}

static inferd_status integer(const json_t *v, const char *field, int64_t lo, int64_t hi, int64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    char what[96];
    snprintf(what, sizeof what, "must be an integer from %lld to %lld", (long long)lo, (long long)hi);
    return bad(field, what);
  }
  *out = json_integer_value(v);
  return status_ok();
}

static inferd_status parse_template(const json_t *t, genconfig *c) {
  static const char *const keys[] = {"bos", "roles", "generation_prompt", NULL};
  TRY(unknown_key(t, keys, "generate.chat_template"));
  const json_t *v;
  if ((v = json_object_get(t, "bos"))) TRY(dup_string(v, "chat_template.bos", &c->bos));
  if ((v = json_object_get(t, "generation_prompt")))
    TRY(dup_string(v, "chat_template.generation_prompt", &c->generation_prompt));
  const json_t *roles = json_object_get(t, "roles");
  if (!json_is_object(roles) || json_object_size(roles) == 0)
    return bad("chat_template.roles", "must be an object naming each role's prefix and suffix");
  if (json_object_size(roles) > GENCONFIG_MAX_ROLES) return bad("chat_template.roles", "has more than 8 roles");
  const char *name;
  json_t *r;
  json_object_foreach((json_t *)roles, name, r) {
    static const char *const rkeys[] = {"prefix", "suffix", NULL};
    char where[160];
    snprintf(where, sizeof where, "generate.chat_template.roles.%s", name);
    if (!json_is_object(r)) return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s must be an object", where);
    TRY(unknown_key(r, rkeys, where));
    size_t i = c->n_roles++;
    c->roles[i].role = strdup(name);
    const json_t *p = json_object_get(r, "prefix"), *s = json_object_get(r, "suffix");
    if ((p && !json_is_string(p)) || (s && !json_is_string(s)))
      return status_make(INFERD_INVALID_ARGUMENT, "config.json: %s.prefix and .suffix must be strings", where);
    c->roles[i].prefix = strdup(p ? json_string_value(p) : "");
    c->roles[i].suffix = strdup(s ? json_string_value(s) : "");
    if (!c->roles[i].role || !c->roles[i].prefix || !c->roles[i].suffix)
      return status_make(INFERD_INTERNAL, "out of memory");
  }
  c->has_template = true;
  return status_ok();
}

static inferd_status parse_defaults(const json_t *d, gen_params *p) {
  static const char *const keys[] = {"temperature", "top_p", "top_k", "max_tokens", "presence_penalty",
                                     "frequency_penalty", NULL};
  TRY(unknown_key(d, keys, "generate.defaults"));
  const json_t *v;
  if ((v = json_object_get(d, "temperature"))) TRY(number(v, "defaults.temperature", 0, 2, &p->temperature));
  if ((v = json_object_get(d, "top_p"))) {
    TRY(number(v, "defaults.top_p", 0, 1, &p->top_p));
    if (p->top_p == 0) return bad("defaults.top_p", "must be more than 0");
  }
  if ((v = json_object_get(d, "top_k"))) TRY(integer(v, "defaults.top_k", 0, INT32_MAX, &p->top_k));
  if ((v = json_object_get(d, "max_tokens"))) TRY(integer(v, "defaults.max_tokens", 1, INT32_MAX, &p->max_tokens));
  if ((v = json_object_get(d, "presence_penalty")))
    TRY(number(v, "defaults.presence_penalty", -2, 2, &p->presence_penalty));
  if ((v = json_object_get(d, "frequency_penalty")))
    TRY(number(v, "defaults.frequency_penalty", -2, 2, &p->frequency_penalty));
  return status_ok();
}

static inferd_status parse(const json_t *g, genconfig *c) {
  static const char *const keys[] = {"eos_token_ids", "context_length", "max_sequences", "chat_template",
                                     "defaults", NULL};
  if (!json_is_object(g)) return status_make(INFERD_INVALID_ARGUMENT, "config.json: generate must be an object");
  TRY(unknown_key(g, keys, "generate"));
  const json_t *v = json_object_get(g, "eos_token_ids");
  if (v) {
    if (!json_is_array(v) || json_array_size(v) > GENCONFIG_MAX_EOS)
      return bad("eos_token_ids", "must be an array of at most 8 token ids");
    for (size_t i = 0; i < json_array_size(v); i++) {
      int64_t id;
      TRY(integer(json_array_get(v, i), "eos_token_ids[]", 0, UINT32_MAX, &id));
      c->eos[c->n_eos++] = (uint32_t)id;
    }
  }
  if ((v = json_object_get(g, "context_length"))) TRY(integer(v, "context_length", 2, 1 << 20, &c->context_length));
  int64_t ms = 16;
  if ((v = json_object_get(g, "max_sequences"))) TRY(integer(v, "max_sequences", 1, 1024, &ms));
  c->max_sequences = (int)ms;
  if ((v = json_object_get(g, "chat_template"))) {
    if (!json_is_object(v)) return bad("chat_template", "must be an object");
    TRY(parse_template(v, c));
  }
  if ((v = json_object_get(g, "defaults"))) {
    if (!json_is_object(v)) return bad("defaults", "must be an object");
    TRY(parse_defaults(v, &c->defaults));
  }
  return status_ok();
}

inferd_status genconfig_parse(const json_t *section, genconfig *out) {
  memset(out, 0, sizeof *out);
  gen_params_init(&out->defaults);
  inferd_status st = parse(section, out);
  if (!status_is_ok(&st)) genconfig_free(out);
  return st;
}

void genconfig_free(genconfig *c) {
  free(c->bos);
  free(c->generation_prompt);
  for (size_t i = 0; i < c->n_roles; i++) {
    free(c->roles[i].role);
    free(c->roles[i].prefix);
    free(c->roles[i].suffix);
  }
  memset(c, 0, sizeof *c);
}

static bool append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t nc = (*cap ? *cap * 2 : 256);
    while (nc < *len + n + 1) nc *= 2;
    char *b = realloc(*buf, nc);
    if (b == NULL) return false;
    *buf = b;
    *cap = nc;
  }
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = '\0';
  return true;
}

inferd_status genconfig_chat(const genconfig *c, const gen_message *messages, size_t n, bool add_generation_prompt,
                             char **prompt, size_t *prompt_len) {
  *prompt = NULL;
  *prompt_len = 0;
  if (!c->has_template) return status_make(INFERD_INVALID_ARGUMENT, "the model has no chat template (config.json generate.chat_template): use a completion");
  if (n == 0) return status_make(INFERD_INVALID_ARGUMENT, "messages must not be empty");
  char *buf = NULL;
  size_t len = 0, cap = 0;
  bool ok = append(&buf, &len, &cap, "", 0);
  if (ok && c->bos) ok = append(&buf, &len, &cap, c->bos, strlen(c->bos));
  for (size_t i = 0; i < n && ok; i++) {
    size_t r = 0;
    while (r < c->n_roles && (messages[i].role == NULL || strcmp(c->roles[r].role, messages[i].role) != 0)) r++;
    if (r == c->n_roles) {
      free(buf);
      return status_make(INFERD_INVALID_ARGUMENT, "messages[%zu].role '%.64s' is not one this model's chat template knows",
                         i, messages[i].role ? messages[i].role : "");
    }
    const char *content = messages[i].content ? messages[i].content : "";
    ok = append(&buf, &len, &cap, c->roles[r].prefix, strlen(c->roles[r].prefix)) &&
         append(&buf, &len, &cap, content, strlen(content)) &&
         append(&buf, &len, &cap, c->roles[r].suffix, strlen(c->roles[r].suffix));
  }
  if (ok && add_generation_prompt && c->generation_prompt)
    ok = append(&buf, &len, &cap, c->generation_prompt, strlen(c->generation_prompt));
  if (!ok) {
    free(buf);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  *prompt = buf;
  *prompt_len = len;
  return status_ok();
}
