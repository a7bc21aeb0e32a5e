#include "app/application.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonerr.h"
#include "util/log.h"
#include "util/sha256.h"

/* Reads dir/model_card.json: 1 found (into *card), 0 absent, -1 unusable (why in err). */
static int read_card(const char *dir, json_t **card, char *err, size_t len) {
  char path[4200];
  snprintf(path, sizeof path, "%s/model_card.json", dir);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    if (errno == ENOENT) return 0;
    snprintf(err, len, "%s: %s", path, strerror(errno));
    return -1;
  }
  fclose(f);
  json_error_t je;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (doc == NULL) {
    char where[JSON_ERROR_TEXT_LENGTH + 128];
    snprintf(err, len, "%s: %s", path, jsonerr_describe(&je, where, sizeof where));
    return -1;
  }
  if (!json_is_object(doc)) {
    json_decref(doc);
    snprintf(err, len, "%s must hold a JSON object", path);
    return -1;
  }
  *card = doc;
  return 1;
}

inferd_status application_load(model_version *mv) {
  application *a = calloc(1, sizeof *a);
  if (a == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  const model_config *cfg = mv->model->config;
  if (cfg->application) {
    inferd_status st = features_compile(cfg->application, cfg, mv->inputs, mv->n_inputs, mv->outputs, mv->n_outputs,
                                        &a->features);
    if (!status_is_ok(&st)) {
      free(a);
      return st;
    }
  }
  if (sha256_file_hex(mv->path, a->sha256) != 0) a->sha256[0] = '\0';

  char tmp[4096], vdir[4096], mdir[4096];
  snprintf(tmp, sizeof tmp, "%s", mv->path);
  snprintf(vdir, sizeof vdir, "%s", dirname(tmp)); /* <model>/<version> */
  snprintf(tmp, sizeof tmp, "%s", vdir);
  snprintf(mdir, sizeof mdir, "%s", dirname(tmp)); /* <model> */
  int got = read_card(vdir, &a->model_card, a->model_card_error, sizeof a->model_card_error);
  if (got == 0) got = read_card(mdir, &a->model_card, a->model_card_error, sizeof a->model_card_error);
  if (got < 0) log_msg(LOG_WARN, mv->model->name, "model card ignored: %s", a->model_card_error);
  mv->application = a;
  return status_ok();
}

void application_unload(model_version *mv) {
  application *a = mv->application;
  if (a == NULL) return;
  features_destroy(a->features);
  json_decref(a->model_card);
  free(a);
  mv->application = NULL;
}

const features *application_features(const model_version *mv) {
  return mv->application ? mv->application->features : NULL;
}
