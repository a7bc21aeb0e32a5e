/* File-system questions asked in more than one place. */
#ifndef INFERD_UTIL_FS_H
#define INFERD_UTIL_FS_H

#include <stdbool.h>

/* Whether path names a directory (following symlinks). */
bool fs_is_dir(const char *path);

#endif
