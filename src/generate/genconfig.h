/* generate/genconfig: config.json's "generate" section (eos ids, context length, the chat
 * template, sampling defaults, the engine's bounds), parsed strictly; and the chat template's
 * application. The form is documented in docs/generate.md. */
#ifndef INFERD_GENERATE_GENCONFIG_H
#define INFERD_GENERATE_GENCONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "generate/engine.h"

#define GENCONFIG_MAX_EOS 8
#define GENCONFIG_MAX_ROLES 8

typedef struct genconfig {
  uint32_t eos[GENCONFIG_MAX_EOS];
  size_t n_eos;
  int64_t context_length; /* 0: not given (the engine takes it from the model, or refuses) */
  int max_sequences;      /* sequences decoding at once; more wait for a free place */
  /* chat template: each message becomes prefix(role) + content + suffix(role) */
  bool has_template;
  char *bos; /* put once before the messages ("" none); owned */
  struct {
    char *role, *prefix, *suffix; /* owned */
  } roles[GENCONFIG_MAX_ROLES];
  size_t n_roles;
  char *generation_prompt; /* after the messages when the assistant is to answer; owned */
  gen_params defaults;     /* "not given" where the section gives none */
} genconfig;

/* Parses the section (an object); errors name the field ("generate.chat_template.roles"). */
inferd_status genconfig_parse(const json_t *section, genconfig *out);
void genconfig_free(genconfig *c);

/* The template applied to messages (see engine.h's gen_chat_prompt). */
inferd_status genconfig_chat(const genconfig *c, const gen_message *messages, size_t n, bool add_generation_prompt,
                             char **prompt, size_t *prompt_len);

#endif
