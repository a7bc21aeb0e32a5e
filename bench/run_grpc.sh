#!/usr/bin/env bash
# gRPC vs REST on the same server, in one run: the mlp model (one row of 256 floats in, 10 out)
# over gRPC ModelInfer with raw_input_contents, over REST with JSON tensors and over REST with
# the binary tensor extension, each at 1, 16 and 64 concurrent calls.
#   bench/run_grpc.sh
# Load clients: wrk for REST; build/grpc_bench for gRPC (a closed-loop client on gRPC core's C
# API, one thread); and, at 64 calls, h2load (nghttp2's HTTP/2 load client, the same gRPC
# request framed by `grpc_bench --write-request`) as a second gRPC client: on 2 shared cores the
# client's own CPU decides part of the result, and h2load checks only HTTP status, so its rows
# count the server's failures from the statistics endpoint instead.
# The server runs twice, from two temporary repositories that differ only in mlp's config.json:
#   batched   the committed config plus "dynamic_batching": {"max_queue_delay_us": 200}
#   unbatched the committed config: one request per Run on one instance
# Unbatched, every transport queues for the same single ONNX Runtime instance (about 60 µs a
# row), so what differs is how much CPU each load client takes from it; batched, the model
# costs a few µs a row and the transport is what is measured.
# Every row also gives the server's CPU per request (user + system, from /proc, over the
# requests the server's statistics counted), which no client's cost enters.
# And each configuration runs with two CPU placements:
#   split   the server on cores 1..N-1 and the load client on core 0 (taskset), so that a
#           heavier client (a gRPC stack against wrk) cannot take CPU from the server: what
#           differs between the rows is the server's cost per call
#   shared  server and client on all cores, as the other benchmarks run
# Environment: DURATION (seconds per run, default 10), BUILD (default build), CONFIGS (default
# "batched unbatched"), CALLS (default "1 16 64"), PLACEMENTS (default "split shared").
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
CONFIGS=${CONFIGS:-"batched unbatched"}
CALLS=${CALLS:-"1 16 64"}
PLACEMENTS=${PLACEMENTS:-"split shared"}
NCPU=$(nproc)
if [ "$NCPU" -lt 2 ]; then PLACEMENTS=shared; fi
MODEL=mlp
PY=/usr/bin/python3
OUT=bench/out/grpc
mkdir -p "$OUT"
rm -f "$OUT"/*
TMP=$(mktemp -d)
SERVER=
stop_server() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  SERVER=
}
trap 'stop_server; rm -rf "$TMP"' EXIT

# --- bodies: the same row as V2 JSON, as V2 binary (JSON header, then 1 KiB of floats), as gRPC --
$PY bench/make_bodies.py "$OUT"
HEADER_LEN=$($PY - "$OUT" "$MODEL" <<'PY'
import json, struct, sys
out, model = sys.argv[1], sys.argv[2]
body = json.load(open(f"{out}/{model}.json"))
inp = body["inputs"][0]
raw = struct.pack(f"<{len(inp['data'])}f", *inp["data"])
header = {"inputs": [{"name": inp["name"], "datatype": inp["datatype"], "shape": inp["shape"],
                      "parameters": {"binary_data_size": len(raw)}}],
          "parameters": {"binary_data_output": True}}
h = json.dumps(header).encode()
open(f"{out}/{model}.bin", "wb").write(h + raw)
print(len(h))
PY
)
"$BUILD/grpc_bench" --model "$MODEL" --write-request "$OUT/$MODEL.grpc"

# --- the two repositories -------------------------------------------------------------------
for cfg in $CONFIGS; do
  mkdir -p "$TMP/$cfg"
  cp -r "models/$MODEL" "$TMP/$cfg/"
  $PY - "$TMP/$cfg/$MODEL/config.json" "$cfg" <<'PY'
import json, sys
path, cfg = sys.argv[1], sys.argv[2]
c = json.load(open(path))
if cfg == "batched":
    c["dynamic_batching"] = {"max_queue_delay_us": 200}
json.dump(c, open(path, "w"), indent=2)
PY
done

server_cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
# "success failures" from the model's statistics
server_counts() {
  curl -sf "http://127.0.0.1:$HTTP_PORT/v2/models/$MODEL/stats" |
    $PY -c 'import json,sys; s=json.load(sys.stdin)["model_stats"][0]["inference_stats"]; print(s["success"]["count"], s["fail"]["count"])'
}
TICK=$(getconf CLK_TCK)

# measure NAME CMD...: runs CMD, prints "rps p50 p99 server_us_per_request server_failures"
# from its output file $OUT/NAME.txt
measure() {
  local name=$1
  shift
  local t0 ok0 fail0 t1 ok1 fail1 rps p50 p99
  t0=$(server_cpu_ticks)
  read -r ok0 fail0 < <(server_counts)
  "$@" >"$OUT/$name.txt" 2>&1 || { echo "$name failed:" >&2; cat "$OUT/$name.txt" >&2; exit 1; }
  t1=$(server_cpu_ticks)
  read -r ok1 fail1 < <(server_counts)
  local f="$OUT/$name.txt"
  case $name in
    *rest*)
      rps=$(awk '/^Requests\/sec/ {print $2}' "$f")
      p50=$(awk '$1=="50%" {print $2}' "$f" | to_us)
      p99=$(awk '$1=="99%" {print $2}' "$f" | to_us)
      grep -q "BENCH non200=0 errors=0" "$f" || { echo "$name: errors:" >&2; grep BENCH "$f" >&2; exit 1; } ;;
    *h2load*)
      rps=$(awk '/^finished in/ {print $4}' "$f")
      read -r p50 p99 < <(sort -n -k3 "$OUT/$name.log" | awk '{v[NR]=$3} END {print v[int((NR-1)*0.5)+1], v[int((NR-1)*0.99)+1]}')
      grep -q " 0 failed, 0 errored" "$f" || { echo "$name: errors:" >&2; grep "requests:" "$f" >&2; exit 1; } ;;
    *grpc-raw*)
      read -r rps p50 p99 < <($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rps"], d["p50_us"], d["p99_us"])' "$f") ;;
  esac
  local n=$((ok1 - ok0))
  local cpu_us=$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$TICK" 'BEGIN {printf "%.0f", n ? d / hz * 1e6 / n : 0}')
  echo "$rps $p50 $p99 $cpu_us $((fail1 - fail0))"
}

URL_PATH="/v2/models/$MODEL/infer"
row() { printf "%-8s %-10s %-16s %5d %10s %9s %9s %14s %8s\n" "$@"; }
printf "%-8s %-10s %-16s %5s %10s %9s %9s %14s %8s\n" cores config transport calls "req/s" "p50_us" "p99_us" "server_us/req" failures
for place in $PLACEMENTS; do
for cfg in $CONFIGS; do
  if [ "$place" = split ]; then
    SERVER_PIN=(taskset -c "1-$((NCPU - 1))")
    CLIENT_PIN=(taskset -c 0)
  else
    SERVER_PIN=()
    CLIENT_PIN=()
  fi
  HTTP_PORT=$(free_port)
  GRPC_PORT=$(free_port)
  "${SERVER_PIN[@]}" "$BUILD/inferd" serve --model-repository "$TMP/$cfg" --host 127.0.0.1 --http-port "$HTTP_PORT" \
    --grpc-port "$GRPC_PORT" >"$OUT/server-$place-$cfg.log" 2>&1 &
  SERVER=$!
  wait_up "http://127.0.0.1:$HTTP_PORT/v2/health/ready"
  URL="http://127.0.0.1:$HTTP_PORT$URL_PATH"
  for c in $CALLS; do
    # wrk: one thread on one core (split), else as the other benchmarks: 2 from 2 connections
    t=$((c < 2 || ${#CLIENT_PIN[@]} > 0 ? 1 : 2))
    id="$place-$cfg"
    r=$(measure "$id-rest-json-$c" "${CLIENT_PIN[@]}" env BODY="$OUT/$MODEL.json" \
      wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s bench/post_body.lua "$URL")
    row "$place" "$cfg" rest-json "$c" $r
    r=$(measure "$id-rest-binary-$c" "${CLIENT_PIN[@]}" env BODY="$OUT/$MODEL.bin" HEADER_LEN="$HEADER_LEN" \
      wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s bench/post_body.lua "$URL")
    row "$place" "$cfg" rest-binary "$c" $r
    r=$(measure "$id-grpc-raw-$c" "${CLIENT_PIN[@]}" "$BUILD/grpc_bench" --target "127.0.0.1:$GRPC_PORT" \
      --model "$MODEL" --concurrency "$c" --threads 1 --duration "$DURATION")
    row "$place" "$cfg" grpc-raw "$c" $r
    if [ "$c" -ge 64 ] && command -v h2load >/dev/null; then
      r=$(measure "$id-grpc-raw-h2load-$c" "${CLIENT_PIN[@]}" h2load -c1 -t1 -m"$c" -D "$DURATION" \
        -d "$OUT/$MODEL.grpc" --log-file "$OUT/$id-grpc-raw-h2load-$c.log" \
        -H "content-type: application/grpc" -H "te: trailers" \
        "http://127.0.0.1:$GRPC_PORT/inference.GRPCInferenceService/ModelInfer")
      row "$place" "$cfg" grpc-raw-h2load "$c" $r
    fi
  done
  stop_server
done
done
