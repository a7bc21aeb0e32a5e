/* observability/options: drift's and payload capture's command-line options, parsed for
 * `inferd serve` (main.c lists them as getopt entries OBS_OPTION_BASE + index). */
#ifndef INFERD_OBS_OPTIONS_H
#define INFERD_OBS_OPTIONS_H

#include "core/status.h"
#include "observability/capture.h"
#include "observability/drift.h"

typedef struct obs_options {
  drift_options drift;
  capture_options capture;
} obs_options;

#define OBS_OPTION_BASE 3000
enum {
  OBS_DRIFT_WINDOW_S,     /* --drift-window-s */
  OBS_DRIFT_BUCKETS,      /* --drift-buckets */
  OBS_DRIFT_PSI_WARN,     /* --drift-psi-warn */
  OBS_DRIFT_PSI_ALERT,    /* --drift-psi-alert */
  OBS_DRIFT_MIN_SAMPLES,  /* --drift-min-samples */
  OBS_CAPTURE_DIR,        /* --capture-dir */
  OBS_CAPTURE_PERCENT,    /* --capture-percent */
  OBS_CAPTURE_MAX_FILE_BYTES, /* --capture-max-file-bytes */
  OBS_CAPTURE_MAX_FILES,  /* --capture-max-files */
  OBS_CAPTURE_QUEUE,      /* --capture-queue */
  OBS_OPTION_COUNT
};

/* The usage lines of these options. */
extern const char OBS_OPTIONS_USAGE[];

void obs_options_default(obs_options *o);
/* Sets option `index` (OBS_*) from val; INVALID_ARGUMENT naming `name` (as the user gave it). */
inferd_status obs_option_apply(obs_options *o, int index, const char *name, const char *val);

#endif
