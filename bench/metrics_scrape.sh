#!/usr/bin/env bash
# How long a scrape of GET /metrics takes with 100 loaded models, under load: copies the churn
# example into 100 models in a temporary repository, sends every model one good and one bad
# request on HTTP (so each has its histograms and failure counters: the largest page), then
# times SCRAPES scrapes with curl, on the HTTP port and on --metrics-port, while wrk keeps
# 16 connections busy on four of the models.
#   bench/metrics_scrape.sh            Environment: BUILD (default build), SCRAPES (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
SCRAPES=${SCRAPES:-50}
PY=/usr/bin/python3
OUT=bench/out
mkdir -p "$OUT"
$PY bench/make_bodies.py "$OUT"
REPO=$(mktemp -d /tmp/inferd-100-models.XXXXXX)
for i in $(seq -w 0 99); do cp -r models/churn "$REPO/churn_$i"; done
HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
METRICS_PORT=$(free_port)
"$BUILD/inferd" serve --model-repository "$REPO" --host 127.0.0.1 --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" \
  --metrics-port "$METRICS_PORT" >"$OUT/scrape-server.log" 2>&1 &
SERVER=$!
LOAD=
trap 'kill -TERM $SERVER 2>/dev/null; [ -n "$LOAD" ] && kill $LOAD 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -rf "$REPO"' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null && break; sleep 0.1; done
wait_up "http://127.0.0.1:$HTTP_PORT/v2/health/ready"
for i in $(seq -w 0 99); do
  curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary @"$OUT/churn.json" \
    "http://127.0.0.1:$HTTP_PORT/v2/models/churn_$i/infer"
  curl -s -o /dev/null -H 'Content-Type: application/json' --data '{"inputs": []}' \
    "http://127.0.0.1:$HTTP_PORT/v2/models/churn_$i/infer"
done
for m in 00 01 02 03; do
  env BODY="$OUT/churn.json" wrk -t1 -c4 -d600s -s bench/post_body.lua "http://127.0.0.1:$HTTP_PORT/v2/models/churn_$m/infer" \
    >/dev/null 2>&1 &
  LOAD="$LOAD $!"
done
sleep 2
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >"$OUT/scrape-page.txt"
echo "page: $(wc -c <"$OUT/scrape-page.txt") bytes, $(grep -vc '^#' "$OUT/scrape-page.txt") samples, $(curl -sf "http://127.0.0.1:$HTTP_PORT/v2/models/stats" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["model_stats"]))') model versions"
# total time and time to the first byte (the page is rendered before its first byte goes out)
for port in "$HTTP_PORT" "$METRICS_PORT"; do
  for _ in $(seq "$SCRAPES"); do
    curl -sf -o /dev/null -w '%{time_total} %{time_starttransfer}\n' "http://127.0.0.1:$port/metrics"
  done | $PY -c '
import statistics, sys
what = sys.argv[1]
rows = [tuple(float(x) * 1000 for x in l.split()) for l in sys.stdin]
tot = sorted(r[0] for r in rows); first = sorted(r[1] for r in rows)
print(f"{what:13} scrapes {len(rows)}  total: median {statistics.median(tot):.2f} ms  p90 {tot[int(len(tot) * 0.9) - 1]:.2f} ms"
      f"  max {tot[-1]:.2f} ms;  first byte: median {statistics.median(first):.2f} ms")
' "$([ "$port" = "$HTTP_PORT" ] && echo 'HTTP port' || echo 'metrics port')"
done
# the server's own render time (inferd_metrics_render_seconds: the previous page's), SCRAPES times
for _ in $(seq "$SCRAPES"); do
  curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk '$1 == "inferd_metrics_render_seconds" { print $2 * 1000 }'
done | $PY -c '
import statistics, sys
v = sorted(float(l) for l in sys.stdin)
print(f"render in the server: median {statistics.median(v):.2f} ms  p90 {v[int(len(v) * 0.9) - 1]:.2f} ms  max {v[-1]:.2f} ms")'
