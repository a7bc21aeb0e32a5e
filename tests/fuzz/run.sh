#!/usr/bin/env bash
# Runs libFuzzer harnesses from a fuzz build: each for SECONDS, starting from its committed
# seed corpus (tests/fuzz/corpus/NAME) and its regression inputs (tests/fuzz/regressions/NAME),
# which it runs in full first. New inputs and crash artifacts go under BUILD_DIR (ignored by
# git), never into the committed corpus; a later run goes on from what earlier ones found, unless
# FUZZ_FRESH=1 (the smoke test: the same inputs first every time). Exits non-zero when any
# harness fails.
#   tests/fuzz/run.sh BUILD_DIR SECONDS [NAME...]      (NAME: v2_json, not fuzz_v2_json)
set -uo pipefail
cd "$(dirname "$0")/../.."
build=$1 seconds=$2
shift 2
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for h in "$build"/fuzz_*; do [ -x "$h" ] && names+=("$(basename "$h" | sed 's/^fuzz_//')"); done
fi
failed=()
for name in "${names[@]}"; do
  work="$build/fuzz-corpus/$name" artifacts="$build/fuzz-artifacts/$name"
  [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$work"
  mkdir -p "$work" "$artifacts"
  dirs=("$work")
  for d in "tests/fuzz/corpus/$name" "tests/fuzz/regressions/$name"; do [ -d "$d" ] && dirs+=("$d"); done
  log="$build/fuzz-$name.log"
  echo "fuzz: $name for ${seconds}s (log: $log)"
  if "$build/fuzz_$name" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "${dirs[@]}" >"$log" 2>&1; then
    grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1
  else
    failed+=("$name")
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (artifacts under $build/fuzz-artifacts/)" >&2
  exit 1
fi
