/* What the application API knows about one loaded model version beyond its tensors: the
 * compiled feature schema (config.json "application"), the artifact's sha256 and the optional
 * model card (model_card.json in the version's folder, else in the model's folder).
 *
 * Loaded with the version through a version-load hook the core runs once the signature is
 * known (application_register, from main; an error makes the version UNAVAILABLE) and
 * read-only afterwards, so any frontend thread may read it while the version is READY. */
#ifndef INFERD_APP_APPLICATION_H
#define INFERD_APP_APPLICATION_H

#include <jansson.h>

#include "app/features.h"
#include "core/model.h"

typedef struct application {
  features *features; /* owned; NULL when config.json has no "application" section */
  char sha256[65];    /* lowercase hex of the model file; "" when it could not be read */
  json_t *model_card; /* owned; NULL when there is none */
  char model_card_error[256]; /* non-empty: model_card.json was unreadable (the version serves) */
} application;

/* Registers the version-load hook with the core. Call once at start, before the repository
 * opens. The hook fails a version (INVALID_ARGUMENT, naming the field) on a bad application
 * section; a bad model card is only logged and reported in the catalogue. */
inferd_status application_register(void);

/* Loads the application data of a version built outside the repository (unit tests, fuzz
 * harnesses: signature already set) into its slot, registering the hook first if needed. */
inferd_status application_attach(model_version *mv);

/* The version's application data; NULL when it is not loaded (or the hook is not registered). */
const application *application_of(const model_version *mv);

/* The version's compiled schema, NULL when it has none or is not loaded. */
const features *application_features(const model_version *mv);

#endif
