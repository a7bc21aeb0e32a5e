#!/usr/bin/env bash
# Batch jobs (docs/jobs.md): a job's throughput in records/s against the in-process ceiling for
# churn (ONNX Runtime alone, bench/ort_bench.c, at the job's chunk size), and churn's online p99
# at 16 connections without a job and while a large job runs (the issue's target: at most 1.5x).
#   bench/jobs.sh
# Environment: RECORDS (the large job, default 1000000), SMALL (the throughput job alone,
# default 100000), DURATION (wrk seconds, default 15), BUILD (default build), ROUNDS (default 2).
# The server runs on core 1 (--http-threads 1 --worker-threads 1), wrk and curl on core 0.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
RECORDS=${RECORDS:-1000000}
SMALL=${SMALL:-100000}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
OUT=bench/out/jobs
rm -rf "$OUT"
mkdir -p "$OUT"

/usr/bin/python3 - "$OUT" "$RECORDS" "$SMALL" <<'PY'
import json, random, sys
out, n, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(1)
C = ["month-to-month", "one-year", "two-year"]
P = ["card", "bank_transfer", "electronic_check", "mailed_check"]
def rec():
    return {"tenure_months": rnd.randint(0, 72), "monthly_charges": round(rnd.uniform(18, 120), 2),
            "total_charges": round(rnd.uniform(0, 8000), 2), "support_calls": rnd.randint(0, 10),
            "age": rnd.randint(18, 90), "contract": rnd.choice(C), "payment_method": rnd.choice(P)}
with open(f"{out}/big.jsonl", "w") as f:
    for _ in range(n):
        f.write(json.dumps(rec()) + "\n")
with open(f"{out}/small.jsonl", "w") as f:
    for _ in range(small):
        f.write(json.dumps(rec()) + "\n")
json.dump({"inputs": [rec()]}, open(f"{out}/one.json", "w"))
PY

echo "== in-process ceiling: churn at batch 1000 (the job's chunk), one thread"
taskset -c 1 "$BUILD/ort_bench" models/churn/1/model.onnx --batch 1000 --iterations 300 --threads 1 | tee "$OUT/ort.txt"

PORT=$(free_port)
taskset -c 1 "$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$PORT" --grpc-port 0 \
  --http-threads 1 --worker-threads 1 --state-dir "$OUT/state" 2>"$OUT/server.log" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$PORT/v2/health/ready"
URL="http://127.0.0.1:$PORT"

submit() { # submit FILE -> batch id; prints the upload's seconds on stderr
  local t0 t1 id
  t0=$(date +%s.%N)
  id=$(taskset -c 0 curl -sf -X POST "$URL/v1/batch/predict?model=churn" -H 'Content-Type: application/x-ndjson' \
       --data-binary @"$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["batch_id"])')
  t1=$(date +%s.%N)
  echo "upload of $(wc -l <"$1") records: $(echo "$t1 - $t0" | bc) s" >&2
  echo "$id"
}
job() { curl -sf "$URL/v1/batch/$1/status"; }
field() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "== a $SMALL-record job alone"
ID=$(submit "$OUT/small.jsonl")
until [ "$(job "$ID" | field 'd["status"]')" = completed ]; do sleep 0.5; done
job "$ID" | field '"records/s %.0f over %.1f s" % (d["timing"]["records_per_second"], d["timing"]["elapsed_seconds"])'

wrk_p99() { # wrk_p99 TAG
  BODY="$OUT/one.json" taskset -c 0 wrk -t2 -c16 -d"${DURATION}s" --latency -s bench/post_body.lua \
    "$URL/v1/models/churn/predict" >"$OUT/wrk-$1.txt"
  printf "%-22s req/s %9s  p50 %7s us  p99 %7s us\n" "$1" "$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-$1.txt")" \
    "$(awk '$1=="50%" {print $2}' "$OUT/wrk-$1.txt" | to_us)" "$(awk '$1=="99%" {print $2}' "$OUT/wrk-$1.txt" | to_us)"
}

echo "== churn /v1 predict at 16 connections, without and with a $RECORDS-record job running"
for r in $(seq "$ROUNDS"); do
  wrk_p99 "round$r-no-job"
  ID=$(submit "$OUT/big.jsonl")
  until [ "$(job "$ID" | field 'd["status"]')" = processing ]; do sleep 0.2; done
  before=$(job "$ID" | field 'd["progress"]["completed"]')
  t0=$(date +%s.%N)
  wrk_p99 "round$r-with-job"
  t1=$(date +%s.%N)
  after=$(job "$ID" | field 'd["progress"]["completed"]')
  echo "   the job meanwhile: $(( after - before )) records in $(echo "$t1 - $t0" | bc | cut -c1-5) s" \
       "($(echo "($after - $before) / ($t1 - $t0)" | bc) records/s)"
  curl -sf -X DELETE "$URL/v1/batch/$ID" >/dev/null || true
done
