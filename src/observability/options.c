/* observability/options: parsing of the drift and capture options. */
#include "observability/options.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

const char OBS_OPTIONS_USAGE[] =
    "Each also from INFERD_ and its name in capitals (--capture-dir: INFERD_CAPTURE_DIR).\n"
    "Drift detection (docs/observability.md, \"Drift\"; versions with a reference_profile.json):\n"
    "  --drift-window-s S       sliding window of the online histograms (300)\n"
    "  --drift-buckets N        time buckets in the window; it slides by window / N (10)\n"
    "  --drift-psi-warn X       PSI from which a feature is flagged \"warn\" (0.1)\n"
    "  --drift-psi-alert X      and \"alert\" (0.25)\n"
    "  --drift-min-samples N    rows the window needs before it flags anything (500)\n"
    "Payload capture (docs/observability.md, \"Payload capture\"):\n"
    "  --capture-dir DIR        write sampled requests and responses to DIR/capture-NNNNNN.jsonl (off)\n"
    "  --capture-percent P      percentage of requests sampled (1)\n"
    "  --capture-max-file-bytes N  start the next file past this size (67108864)\n"
    "  --capture-max-files N    keep the newest N files, 0: all (10)\n"
    "  --capture-queue N        records waiting for the writer at most; more are dropped (4096)\n";

void obs_options_default(obs_options *o) {
  o->drift = DRIFT_DEFAULT_OPTIONS;
  o->capture = CAPTURE_DEFAULT_OPTIONS;
}

static inferd_status number(const char *name, const char *val, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(val, &end);
  if (errno || *val == '\0' || *end != '\0' || !isfinite(v) || v < lo || v > hi)
    return status_make(INFERD_INVALID_ARGUMENT, "%s must be a number from %g to %g, got '%s'", name, lo, hi, val);
  *out = v;
  return status_ok();
}

static inferd_status whole(const char *name, const char *val, double lo, double hi, double *out) {
  TRY(number(name, val, lo, hi, out));
  if (*out != floor(*out))
    return status_make(INFERD_INVALID_ARGUMENT, "%s must be a whole number from %g to %g, got '%s'", name, lo, hi, val);
  return status_ok();
}

inferd_status obs_option_apply(obs_options *o, int index, const char *name, const char *val) {
  double v;
  switch (index) {
    case OBS_DRIFT_WINDOW_S: TRY(number(name, val, 0.01, 86400 * 30, &v)); o->drift.window_ms = (int64_t)(v * 1000); break;
    case OBS_DRIFT_BUCKETS: TRY(whole(name, val, 1, 1000, &v)); o->drift.buckets = (int)v; break;
    case OBS_DRIFT_PSI_WARN: TRY(number(name, val, 0, 1e6, &v)); o->drift.psi_warn = v; break;
    case OBS_DRIFT_PSI_ALERT: TRY(number(name, val, 0, 1e6, &v)); o->drift.psi_alert = v; break;
    case OBS_DRIFT_MIN_SAMPLES: TRY(whole(name, val, 0, 1e12, &v)); o->drift.min_samples = (long)v; break;
    case OBS_CAPTURE_DIR:
      if (*val == '\0') return status_make(INFERD_INVALID_ARGUMENT, "%s needs a directory", name);
      o->capture.dir = val;
      break;
    case OBS_CAPTURE_PERCENT: TRY(number(name, val, 0, 100, &v)); o->capture.percent = v; break;
    case OBS_CAPTURE_MAX_FILE_BYTES: TRY(whole(name, val, 1024, 1e15, &v)); o->capture.max_file_bytes = (size_t)v; break;
    case OBS_CAPTURE_MAX_FILES: TRY(whole(name, val, 0, 1e6, &v)); o->capture.max_files = (int)v; break;
    case OBS_CAPTURE_QUEUE: TRY(whole(name, val, 1, 1e7, &v)); o->capture.queue_records = (size_t)v; break;
    default: return status_make(INFERD_INVALID_ARGUMENT, "%s: unknown option", name);
  }
  return status_ok();
}
