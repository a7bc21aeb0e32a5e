#!/usr/bin/env bash
# gRPC vs REST on the same server, in one run: the mlp model (one row of 256 floats in, 10 out)
# over gRPC ModelInfer with raw_input_contents (load client: build/grpc_bench, a closed-loop
# client on gRPC core's C API), over REST with JSON tensors and over REST with the binary tensor
# extension (load client: wrk), each at 1, 16 and 64 concurrent calls.
#   bench/run_grpc.sh
# Environment: DURATION (seconds per run, default 10), BUILD (default build), MODEL (default mlp).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
MODEL=${MODEL:-mlp}
OUT=bench/out
mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py "$OUT"
# the same row as a binary-extension body: JSON header, then the 1 KiB of floats
HEADER_LEN=$(/usr/bin/python3 - "$OUT" "$MODEL" <<'PY'
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

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
"$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$HTTP_PORT" \
  --grpc-port "$GRPC_PORT" 2>"$OUT/server-grpc.log" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null || { echo "inferd did not become ready"; exit 1; }

to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000000} else print v}'; }
URL="http://127.0.0.1:$HTTP_PORT/v2/models/$MODEL/infer"
declare -A RPS P50
printf "%-12s %5s %12s %10s %10s\n" transport calls "req/s" "p50_us" "p99_us"
for c in 1 16 64; do
  t=$(( c < 2 ? 1 : 2 ))
  BODY="$OUT/$MODEL.json" wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s bench/post_body.lua "$URL" \
    >"$OUT/grpcbench-rest-json-$c.txt"
  BODY="$OUT/$MODEL.bin" HEADER_LEN="$HEADER_LEN" wrk -t"$t" -c"$c" -d"${DURATION}s" --latency \
    -s bench/run_grpc_binary.lua "$URL" >"$OUT/grpcbench-rest-binary-$c.txt"
  "$BUILD/grpc_bench" --target "127.0.0.1:$GRPC_PORT" --model "$MODEL" --concurrency "$c" --threads "$t" \
    --duration "$DURATION" >"$OUT/grpcbench-grpc-raw-$c.json"
  for kind in rest-json rest-binary; do
    f="$OUT/grpcbench-$kind-$c.txt"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$f")
    p50=$(awk '$1=="50%" {print $2}' "$f" | to_us)
    p99=$(awk '$1=="99%" {print $2}' "$f" | to_us)
    printf "%-12s %5d %12s %10s %10s   %s\n" "$kind" "$c" "$rps" "$p50" "$p99" "$(awk '/^BENCH/ {print $2" "$3}' "$f")"
    RPS[$kind-$c]=$rps
    P50[$kind-$c]=$p50
  done
  read -r rps p50 p99 errs < <(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rps"], d["p50_us"], d["p99_us"], d["errors"])' "$OUT/grpcbench-grpc-raw-$c.json")
  printf "%-12s %5d %12s %10s %10s   errors=%s\n" grpc-raw "$c" "$rps" "$p50" "$p99" "$errs"
  RPS[grpc-raw-$c]=$rps
  P50[grpc-raw-$c]=$p50
done
echo
awk -v g="${RPS[grpc-raw-64]}" -v j="${RPS[rest-json-64]}" -v gp="${P50[grpc-raw-64]}" -v jp="${P50[rest-json-64]}" \
  'BEGIN { printf "at 64 calls: gRPC raw / REST JSON throughput %.2fx, p50 %.0f us vs %.0f us\n", g / j, gp, jp }'
