#!/bin/bash
# Shows the link half of the layering rule can fail: re-runs the build's own link of
# layercheck_LAYER (its whole archive, only its allowed dependencies) once as built, which
# must succeed, and once with an object added to the layer's archive that calls SYMBOL from a
# layer above, which must fail naming SYMBOL.
# Usage: test_link_check.sh BUILD_DIR LAYER SYMBOL
set -euo pipefail
build=$(cd "${1:?usage: test_link_check.sh BUILD_DIR LAYER SYMBOL}" && pwd)
layer=${2:?layer} symbol=${3:?symbol}
link_txt=$build/CMakeFiles/layercheck_$layer.dir/link.txt
[ -f "$link_txt" ] || { echo "no $link_txt: build layercheck_$layer first"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$build"
line=$(cat "$link_txt")
cc=${line%% *}
case $line in *" libinferd_$layer.a "*) ;; *) echo "the link line does not name libinferd_$layer.a: $line"; exit 1 ;; esac

sh -c "${line/ -o layercheck_$layer / -o $tmp/as_built }" || { echo "layercheck_$layer does not link as built"; exit 1; }

printf 'void %s(void);\nvoid layering_probe(void) { %s(); }\n' "$symbol" "$symbol" >"$tmp/probe.c"
"$cc" -c -o "$tmp/probe.o" "$tmp/probe.c"
cp "libinferd_$layer.a" "$tmp/"
ar rs "$tmp/libinferd_$layer.a" "$tmp/probe.o" 2>/dev/null
bad=${line/ -o layercheck_$layer / -o $tmp/with_probe }
bad=${bad/ libinferd_$layer.a / $tmp/libinferd_$layer.a }
if out=$(sh -c "$bad" 2>&1); then
  echo "layer $layer linked with a call to $symbol"; exit 1
fi
grep -q "undefined reference to \`$symbol'" <<<"$out" || { echo "the link failed, but not on $symbol: $out"; exit 1; }
echo "ok: layer $layer may not call $symbol"
