#!/usr/bin/env bash
# Server CPU per request of two builds side by side, in one run, interleaved (A B A B ...) so a
# change in the machine's load hits both alike: bench/cpu_per_request.sh with the server pinned
# to core 0 and wrk (2 threads, 64 connections, 10 s, V2 JSON) pinned to core 1.
#   bench/cpu_before_after.sh BUILD_A BUILD_B [models...] (default: churn mlp); REPS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
shift 2
MODELS=${*:-churn mlp}
REPS=${REPS:-2}
for model in $MODELS; do
  for rep in $(seq "$REPS"); do
    for build in "$A" "$B"; do
      echo "== $model rep $rep build $build"
      BUILD=$build MODEL=$model taskset -c 0 bench/cpu_per_request.sh -- taskset -c 1 sh -c \
        "env BODY=bench/out/$model.json wrk -t2 -c64 -d10s -s bench/post_body.lua http://127.0.0.1:\$HTTP_PORT/v2/models/$model/infer"
    done
  done
done
