#!/bin/bash
# The include half of the layering rule: every #include "X/..." in src/Y names a folder that Y
# may use. The layers and what each may use are read from CMakeLists.txt's inferd_layer(...)
# lines (the same table the link check uses), taken transitively.
# Usage: check_includes.sh SRC_DIR [CMAKELISTS]   (exit 1 and one line per violation)
set -euo pipefail
src=${1:?usage: check_includes.sh SRC_DIR [CMAKELISTS]}
cmake=${2:-$src/../CMakeLists.txt}

# "name folder dep dep ..." for each layer
table=$(sed -n 's/^inferd_layer(\(.*\))[[:space:]]*$/\1/p' "$cmake")
[ -n "$table" ] || { echo "no inferd_layer(...) lines in $cmake" >&2; exit 2; }

declare -A folder deps
while read -r name dir rest; do
  folder[$name]=$dir
  deps[$name]=""
  for d in $rest; do
    case $d in inferd_*) deps[$name]+=" ${d#inferd_}" ;; esac
  done
done <<<"$table"

# The folders a layer may include: its own and those of every layer it may use, transitively.
allowed_of() {
  local seen=" $1 " todo="$1" out="" n d
  while [ -n "$todo" ]; do
    set -- $todo; n=$1; shift; todo="$*"
    [ -n "${folder[$n]:-}" ] || continue
    out+=" ${folder[$n]}"
    for d in ${deps[$n]}; do
      case $seen in *" $d "*) ;; *) seen+="$d "; todo+=" $d" ;; esac
    done
  done
  echo "$out"
}

bad=0
for name in "${!folder[@]}"; do
  dir=${folder[$name]}
  allowed=$(allowed_of "$name")
  [ -d "$src/$dir" ] || { echo "layer $name: no folder src/$dir" >&2; bad=1; continue; }
  while IFS= read -r hit; do
    file=${hit%%:*}; rest=${hit#*:}; line=${rest%%:*}
    inc=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"${rest#*:}")
    case $inc in */*) ;; *) continue ;; esac # same folder or generated (inference.pb-c.h)
    # the layer the header belongs to: the longest layer folder that prefixes it
    owner=""
    for other in "${!folder[@]}"; do
      f=${folder[$other]}
      case $inc in "$f"/*) [ ${#f} -gt ${#owner} ] && owner=$f ;; esac
    done
    [ -n "$owner" ] || continue # not one of ours
    case " $allowed " in *" $owner "*) continue ;; esac
    echo "${file#$src/}:$line: layer $name (src/$dir) may not include \"$inc\" (it may use:$allowed)"
    bad=1
  done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$src/$dir"/*.[ch] 2>/dev/null || true)
done
exit $bad
