/* jansson's parse errors in inferd's words: one position format everywhere ("line L, column
 * C", both 1-based, columns counting characters) and no library internals in the text. */
#ifndef INFERD_JSONERR_H
#define INFERD_JSONERR_H

#include <jansson.h>
#include <stddef.h>

/* Writes "line L, column C: what is wrong" for a failed json_load*() into buf; returns buf. */
const char *jsonerr_describe(const json_error_t *e, char *buf, size_t len);

#endif
