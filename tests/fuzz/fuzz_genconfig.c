/* libFuzzer harness for config.json's "generate" section (src/generate/genconfig.c): the input is
 * the section's JSON. Whatever parses is used as the engine uses it: the chat template applied to
 * one message of each role it names, with and without the generation prompt, and to a role it
 * does not name. Checks: a refusal has a message naming the config and leaves nothing owned; a
 * parsed section keeps its bounds (eos count, context, max_sequences, roles, sampling defaults in
 * range); the prompt is exactly bos + each role's prefix, content and suffix + the generation
 * prompt, and an unknown role is refused. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "generate/genconfig.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static void check_defaults(const gen_params *p) {
  CHECK(isnan(p->temperature) || (p->temperature >= 0 && p->temperature <= 2));
  CHECK(isnan(p->top_p) || (p->top_p > 0 && p->top_p <= 1));
  CHECK(p->top_k == GEN_UNSET || p->top_k >= 0);
  CHECK(p->max_tokens == GEN_UNSET || p->max_tokens >= 1);
  CHECK(isnan(p->presence_penalty) || fabs(p->presence_penalty) <= 2);
  CHECK(isnan(p->frequency_penalty) || fabs(p->frequency_penalty) <= 2);
}

/* The template applied to one message of each role: the prompt must be the plain concatenation. */
static void check_chat(const genconfig *c, bool add_generation_prompt) {
  gen_message msgs[GENCONFIG_MAX_ROLES];
  size_t expect = c->bos ? strlen(c->bos) : 0;
  for (size_t i = 0; i < c->n_roles; i++) {
    msgs[i].role = c->roles[i].role;
    msgs[i].content = "content";
    expect += strlen(c->roles[i].prefix) + strlen("content") + strlen(c->roles[i].suffix);
  }
  if (add_generation_prompt && c->generation_prompt) expect += strlen(c->generation_prompt);
  char *prompt;
  size_t len;
  inferd_status st = genconfig_chat(c, msgs, c->n_roles, add_generation_prompt, &prompt, &len);
  if (!c->has_template || c->n_roles == 0) {
    CHECK(st.code == INFERD_INVALID_ARGUMENT && prompt == NULL);
    return;
  }
  CHECK(st.code == INFERD_OK && len == expect && strlen(prompt) == len);
  size_t at = 0;
  if (c->bos) {
    CHECK(memcmp(prompt, c->bos, strlen(c->bos)) == 0);
    at += strlen(c->bos);
  }
  for (size_t i = 0; i < c->n_roles; i++) {
    size_t p = strlen(c->roles[i].prefix), s = strlen(c->roles[i].suffix);
    CHECK(memcmp(prompt + at, c->roles[i].prefix, p) == 0);
    CHECK(memcmp(prompt + at + p, "content", 7) == 0);
    CHECK(memcmp(prompt + at + p + 7, c->roles[i].suffix, s) == 0);
    at += p + 7 + s;
  }
  free(prompt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *section = json_loadb((const char *)data, size, 0, NULL);
  if (section == NULL) return 0;
  genconfig c;
  inferd_status st = genconfig_parse(section, &c);
  if (st.code != INFERD_OK) {
    CHECK(st.code == INFERD_INVALID_ARGUMENT || st.code == INFERD_INTERNAL);
    CHECK(strncmp(st.msg, "config.json: ", 13) == 0 || st.code == INFERD_INTERNAL);
    CHECK(c.bos == NULL && c.generation_prompt == NULL && c.n_roles == 0);
    json_decref(section);
    return 0;
  }
  CHECK(c.n_eos <= GENCONFIG_MAX_EOS && c.n_roles <= GENCONFIG_MAX_ROLES);
  CHECK(c.context_length == 0 || (c.context_length >= 2 && c.context_length <= (1 << 20)));
  CHECK(c.max_sequences >= 1 && c.max_sequences <= 1024);
  CHECK(c.has_template == (c.n_roles > 0));
  check_defaults(&c.defaults);
  check_chat(&c, false);
  check_chat(&c, true);
  gen_message stranger = {"a role no template names \x01", "x"};
  char *prompt;
  size_t len;
  CHECK(genconfig_chat(&c, &stranger, 1, true, &prompt, &len).code == INFERD_INVALID_ARGUMENT && prompt == NULL);
  genconfig_free(&c);
  json_decref(section);
  return 0;
}
