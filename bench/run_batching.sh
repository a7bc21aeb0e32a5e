#!/usr/bin/env bash
# Dynamic batching benchmark (issue 4). The mlp model (models/mlp) served by inferd twice, from two
# temporary repositories that differ only in config.json: batching off (the committed config:
# max_batch_size 64, one request per run) and on (the same plus "dynamic_batching":
# {"max_queue_delay_us": $DELAY_US}). wrk drives each at 1, 8, 32 and 128 connections, with the
# V2 JSON body and with the binary tensor extension body. Then:
#   - the batch sizes the server formed (from /v2/models/mlp/versions/1/stats, per run) and the
#     in-process ONNX Runtime ceiling at those sizes: rows/s of build/ort_bench's Run alone,
#     weighted by how many executions of each size the server ran;
#   - p50/p99 at about half of the peak batched load (wrk has no -R here: a Lua delay() paces
#     every connection, see below);
#   - a peer in the same run: Node.js + onnxruntime-node (bench/peers/node) serving the same model
#     with Node's http module, one request per Run, V2-shaped JSON.
#   bench/run_batching.sh
# Environment: DURATION (wrk seconds per run, default 10), BUILD (default build), DELAY_US
# (default 200), CONNS (default "1 8 32 128"), BODIES (default "json binary"), NODE_PEER (1).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
DELAY_US=${DELAY_US:-200}
CONNS=${CONNS:-"1 8 32 128"}
BODIES=${BODIES:-"json binary"}
NODE_PEER=${NODE_PEER:-1}
PY=/usr/bin/python3
OUT=bench/out/batching
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.json
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# --- bodies: one mlp row, as JSON and as JSON header + binary tensor -----------------------------
$PY - "$OUT" <<'EOF'
import json, struct, sys
out = sys.argv[1]
row = [((i * 37) % 101) / 101.0 - 0.5 for i in range(256)]
with open(f"{out}/mlp.json", "w") as f:
    json.dump({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256], "data": row}]}, f)
header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256],
                                 "parameters": {"binary_data_size": 1024}}]}).encode()
with open(f"{out}/mlp.bin", "wb") as f:
    f.write(header + struct.pack("<256f", *row))
with open(f"{out}/mlp.bin.hlen", "w") as f:
    f.write(str(len(header)))
EOF
HLEN=$(cat "$OUT/mlp.bin.hlen")
# what bench/post_body.lua reads to send that body (PACE_MS, when set, paces each connection)
body_env() { # $1 json|binary
  if [ "$1" = binary ]; then echo "BODY=$OUT/mlp.bin HEADER_LEN=$HLEN"; else echo "BODY=$OUT/mlp.json"; fi
}

# --- two repositories from models/mlp ---------------------------------------------------------
for mode in off on; do
  mkdir -p "$TMP/$mode/mlp/1"
  cp models/mlp/1/model.onnx "$TMP/$mode/mlp/1/"
done
cp models/mlp/config.json "$TMP/off/mlp/config.json"
$PY - models/mlp/config.json "$TMP/on/mlp/config.json" "$DELAY_US" <<'EOF'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["dynamic_batching"] = {"max_queue_delay_us": int(sys.argv[3])}
json.dump(cfg, open(sys.argv[2], "w"), indent=2)
EOF

wait_ready() { wait_up "http://127.0.0.1:$1/v2/health/ready"; } # $1 port
# run_wrk NAME URL BODY CONNS (BODY json|binary): writes $OUT/wrk-NAME.txt, prints "rps p50 p99 bad"
run_wrk() {
  local t=$(( $4 < 2 ? 1 : 2 ))
  # body_env's words hold no spaces: unquoted on purpose
  env $(body_env "$3") wrk -t"$t" -c"$4" -d"${DURATION}s" --latency -s bench/post_body.lua "$2" >"$OUT/wrk-$1.txt"
  local rps p50 p99 bad
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$OUT/wrk-$1.txt" | to_us)
  p99=$(awk '$1=="99%" {print $2}' "$OUT/wrk-$1.txt" | to_us)
  bad=$(awk '/^BENCH/ {print $2" "$3}' "$OUT/wrk-$1.txt")
  echo "$rps $p50 $p99 $bad"
}
stats() { curl -sf "http://127.0.0.1:$1/v2/models/mlp/versions/1/stats"; }

echo "inferd $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, wrk ${DURATION}s per run, max_queue_delay_us=$DELAY_US"
echo
printf "%-8s %-8s %-6s %5s %10s %9s %9s %10s  %s\n" server batching body conns "req/s" "p50_us" "p99_us" "mean_batch" "errors"
declare -A RPS P50
for mode in off on; do
  PORT=$(free_port)
  "$BUILD/inferd" serve --model-repository "$TMP/$mode" --host 127.0.0.1 --http-port "$PORT" 2>"$OUT/server-$mode.log" &
  PIDS+=($!)
  wait_ready "$PORT"
  URL="http://127.0.0.1:$PORT/v2/models/mlp/infer"
  for body in $BODIES; do
    for c in $CONNS; do
      stats "$PORT" >"$OUT/stats-$mode-$body-$c.before.json"
      read -r rps p50 p99 bad < <(run_wrk "$mode-$body-$c" "$URL" "$body" "$c")
      stats "$PORT" >"$OUT/stats-$mode-$body-$c.after.json"
      mb=$($PY -c 'import json,sys; a=json.load(open(sys.argv[1]))["model_stats"][0]; b=json.load(open(sys.argv[2]))["model_stats"][0]; e=b["execution_count"]-a["execution_count"]; print("%.1f" % ((b["inference_count"]-a["inference_count"])/e) if e else "-")' \
        "$OUT/stats-$mode-$body-$c.before.json" "$OUT/stats-$mode-$body-$c.after.json")
      printf "%-8s %-8s %-6s %5d %10s %9s %9s %10s  %s\n" inferd "$mode" "$body" "$c" "$rps" "$p50" "$p99" "$mb" "$bad"
      RPS[$mode-$body-$c]=$rps
      P50[$mode-$body-$c]=$p50
    done
  done
  if [ "$mode" = on ]; then
    # about half of the peak batched load (JSON body): 64 connections, each pausing PACE_MS
    # between its requests (wrk's delay()), so the offered rate is ~64 / (PACE_MS + latency).
    PEAK=0
    for c in $CONNS; do PEAK=$(awk -v a="$PEAK" -v b="${RPS[on-json-$c]}" 'BEGIN{print (b > a ? b : a)}'); done
    PACE=$(awk -v p="$PEAK" 'BEGIN{ms = int(64 / (p / 2) * 1000 + 0.5); print (ms < 1 ? 1 : ms)}')
    read -r hrps hp50 hp99 hbad < <(PACE_MS=$PACE run_wrk "on-json-half" "$URL" json 64)
    HALF="$PEAK $PACE $hrps $hp50 $hp99 $hbad"
  fi
  kill -TERM "${PIDS[-1]}"
  wait "${PIDS[-1]}" || true
  unset 'PIDS[-1]'
done

if [ "$NODE_PEER" = 1 ]; then
  if [ ! -d bench/peers/node/node_modules/onnxruntime-node ]; then
    (cd bench/peers/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >/dev/null)
  fi
  PORT=$(free_port)
  node bench/peers/node/server.js models/mlp/1/model.onnx "$PORT" mlp 2>"$OUT/node.log" &
  PIDS+=($!)
  wait_ready "$PORT"
  for c in $CONNS; do
    read -r rps p50 p99 bad < <(run_wrk "node-json-$c" "http://127.0.0.1:$PORT/v2/models/mlp/infer" json "$c")
    printf "%-8s %-8s %-6s %5d %10s %9s %9s %10s  %s\n" node off json "$c" "$rps" "$p50" "$p99" "1.0" "$bad"
    RPS[node-json-$c]=$rps
  done
  kill -TERM "${PIDS[-1]}"
  wait "${PIDS[-1]}" 2>/dev/null || true
  unset 'PIDS[-1]'
fi

echo
read -r PEAK PACE hrps hp50 hp99 hbad <<<"$HALF"
echo "half of peak load: peak (batching on, json) $PEAK req/s; 64 connections paced ${PACE} ms -> $hrps req/s, p50 ${hp50} us, p99 ${hp99} us ($hbad); p99/p50 = $(awk -v a="$hp99" -v b="$hp50" 'BEGIN{printf "%.2f", a/b}')"

# --- the in-process ceiling at the batch sizes the server formed ------------------------------
echo
echo "in-process ONNX Runtime ceiling (build/ort_bench, 1 intra-op thread, one Run at a time as instance_count 1),"
echo "weighted by the executions of each batch size the server ran in that wrk run:"
$PY - "$OUT" "$BUILD/ort_bench" "$CONNS" "$BODIES" <<'EOF'
import json, subprocess, sys
out, ort_bench, conns, bodies = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
runs = {}
sizes = set()
for body in bodies:
    for c in conns:
        a = json.load(open(f"{out}/stats-on-{body}-{c}.before.json"))["model_stats"][0]
        b = json.load(open(f"{out}/stats-on-{body}-{c}.after.json"))["model_stats"][0]
        before = {x["batch_size"]: x["compute_infer"]["count"] for x in a["batch_stats"]}
        hist = {x["batch_size"]: x["compute_infer"]["count"] - before.get(x["batch_size"], 0) for x in b["batch_stats"]}
        hist = {k: v for k, v in hist.items() if v > 0}
        runs[(body, c)] = hist
        sizes |= set(hist)
mean_us = {}
for s in sorted(sizes):
    iters = max(200, min(3000, 30000 // s))
    r = subprocess.run([ort_bench, "models/mlp/1/model.onnx", "--batch", str(s), "--iterations", str(iters), "--threads", "1"],
                       capture_output=True, text=True, check=True)
    mean_us[s] = json.loads(r.stdout)["mean_us"]
print("%-6s %5s %12s %14s %18s" % ("body", "conns", "executions", "common sizes", "ceiling rows/s"))
for (body, c), hist in runs.items():
    rows = sum(k * v for k, v in hist.items())
    busy = sum(v * mean_us[k] for k, v in hist.items())
    common = sorted(hist, key=lambda k: -hist[k])[:3]
    print("%-6s %5s %12d %14s %18.0f" % (body, c, sum(hist.values()), ",".join(map(str, common)), rows / busy * 1e6 if busy else 0))
    with open(f"{out}/ceiling-{body}-{c}.txt", "w") as f:
        f.write("%.0f\n" % (rows / busy * 1e6 if busy else 0))
print("ort_bench mean Run us by batch size:", ", ".join("%d: %.1f" % (k, v) for k, v in sorted(mean_us.items()) if k in (1, 2, 4, 8, 16, 32, 48, 64) or k == max(mean_us)))
EOF

# --- targets -------------------------------------------------------------------------------------
echo
echo "targets (json body unless said):"
for c in $CONNS; do
  [ "$c" -ge 32 ] || continue
  for body in $BODIES; do
    on=${RPS[on-$body-$c]}; off=${RPS[off-$body-$c]}; ceil=$(cat "$OUT/ceiling-$body-$c.txt")
    awk -v c="$c" -v b="$body" -v on="$on" -v off="$off" -v ceil="$ceil" 'BEGIN{
      r = on / off; f = on / ceil;
      printf "  %3d conns %-6s batching/unbatched = %.2fx (target >= 3: %s); of ceiling %.0f rows/s = %.0f%% (target >= 80%%: %s)\n",
        c, b, r, (r >= 3 ? "met" : "MISSED"), ceil, 100 * f, (f >= 0.8 ? "met" : "MISSED") }'
  done
done
for body in $BODIES; do
  awk -v b="$body" -v on="${P50[on-$body-1]}" -v off="${P50[off-$body-1]}" -v d="$DELAY_US" 'BEGIN{
    printf "  1 conn %-6s p50 on - off = %.0f us (target <= %d + 50: %s)\n", b, on - off, d, (on - off <= d + 50 ? "met" : "MISSED") }'
done
awk -v a="$hp99" -v b="$hp50" 'BEGIN{ printf "  half of peak load p99/p50 = %.2f (target <= 3: %s)\n", a / b, (a / b <= 3 ? "met" : "MISSED") }'
if [ "$NODE_PEER" = 1 ]; then
  awk -v on="${RPS[on-json-32]}" -v off="${RPS[off-json-32]}" -v n="${RPS[node-json-32]}" 'BEGIN{
    printf "  32 conns inferd (batching on) / node = %.2fx, (batching off) / node = %.2fx (target >= 2: %s)\n", on / n, off / n, (on / n >= 2 ? "met" : "MISSED") }'
fi
