/* File-system helpers (util/fs.h). */
#include "util/fs.h"

#include <sys/stat.h>

bool fs_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
