/* jansson's parse errors in our words (see jsonerr.h). */
#include "util/jsonerr.h"

#include <stdio.h>
#include <string.h>

/* jansson's texts that name its own flags or read oddly, and what we say instead. */
static const struct {
  const char *theirs;
  const char *ours;
} rewrites[] = {
    {"\\u0000 is not allowed without JSON_ALLOW_NUL", "\\u0000 (a NUL character) is not allowed in a string"},
    {"NUL byte in object key not supported", "\\u0000 (a NUL character) is not allowed in an object key"},
    {"end of file expected", "unexpected text after the JSON value"},
    {"maximum parsing depth reached", "arrays and objects are nested too deeply"},
    {"premature end of input", "the body ends in the middle of a value"},
    {"unable to decode byte", "the text is not valid UTF-8 at byte"},
};

const char *jsonerr_describe(const json_error_t *e, char *buf, size_t len) {
  const char *text = e->text;
  char ours[JSON_ERROR_TEXT_LENGTH + 64];
  for (size_t i = 0; i < sizeof rewrites / sizeof rewrites[0]; i++) {
    size_t n = strlen(rewrites[i].theirs);
    if (strncmp(text, rewrites[i].theirs, n) == 0) {
      snprintf(ours, sizeof ours, "%s%s", rewrites[i].ours, text + n);
      text = ours;
      break;
    }
  }
  /* jansson's column is that of the last character it read: the offending one, except for a
   * byte it could not decode (not counted yet) and an error before any character */
  int line = e->line > 0 ? e->line : 1;
  int column = e->column;
  if (strncmp(e->text, "unable to decode byte", 21) == 0 || column < 1) column++;
  if (column < 1) column = 1;
  snprintf(buf, len, "line %d, column %d: %s", line, column, text);
  return buf;
}
