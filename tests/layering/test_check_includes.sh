#!/bin/bash
# Shows the include check can fail: on a copy of src/ it passes, then a core file that includes
# an app/ header and a util file that includes a core header must each be refused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/src" "$tmp/src"
cp "$root/CMakeLists.txt" "$tmp/CMakeLists.txt"
"$here/check_includes.sh" "$tmp/src" "$tmp/CMakeLists.txt" >/dev/null || { echo "the clean copy fails the check"; exit 1; }

for c in "core/model.c:app/application.h" "util/log.c:core/status.h" "backends/onnxruntime.c:frontends/http/router.h" \
         "app/features.c:backends/backends.h" "frontends/http/router.c:frontends/grpc/call.h"; do
  file=${c%%:*} inc=${c#*:}
  rm -rf "$tmp/src" && cp -r "$root/src" "$tmp/src"
  printf '#include "%s"\n' "$inc" >>"$tmp/src/$file"
  if out=$("$here/check_includes.sh" "$tmp/src" "$tmp/CMakeLists.txt"); then
    echo "src/$file including $inc passed the check"; exit 1
  fi
  grep -q "$file:.*\"$inc\"" <<<"$out" || { echo "the refusal does not name src/$file: $out"; exit 1; }
done
echo ok
