#!/usr/bin/env bash
# What TLS costs, in instructions the server executes (valgrind's callgrind; this machine has no
# hardware counters and its CPU time is shared with other work, so this is the repeatable
# figure beside bench/tls.sh's timings). One inferd with TLS on its HTTP port and plain HTTP on
# --http-plain-port; each window is counted on its own (instrumentation on, requests, off, dump):
#   churn-http / churn-https   N sequential churn infers over one keep-alive connection
#   live-http  / live-https    N GET /v2/health/live over one keep-alive connection
#   handshake-inferd           H new TLS connections, each one GET /v2/health/live and close
# then nginx (one process, the same certificate) under callgrind for the same H handshakes:
#   handshake-nginx            H new TLS connections, each one GET / (13 bytes of JSON) and close
# Client: Python (requests / ssl), not counted. Prints instructions per request and the ratios.
#   bench/tls_instructions.sh          Environment: BUILD (build), N (500), H (100), KEY (ec | rsa)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
N=${N:-500}
H=${H:-100}
KEY=${KEY:-ec}
PY=/usr/bin/python3
OUT=bench/out/tls_cg
rm -rf "$OUT" && mkdir -p "$OUT/nginx/logs"
$PY bench/make_bodies.py bench/out >/dev/null
if [ "$KEY" = rsa ]; then NEWKEY=(-newkey rsa:2048); else NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); fi
openssl req -x509 "${NEWKEY[@]}" -nodes -keyout "$OUT/ca.key" -out "$OUT/ca.pem" -days 1 -subj "/CN=bench CA" 2>/dev/null
openssl req "${NEWKEY[@]}" -nodes -keyout "$OUT/server.key" -out "$OUT/server.csr" -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >"$OUT/server.ext"
openssl x509 -req -in "$OUT/server.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial \
  -out "$OUT/server.pem" -days 1 -extfile "$OUT/server.ext" 2>/dev/null

# client KIND URL COUNT [GO]: keep-alive (one session) or new (a connection per request). With GO
# (a fifo), a keep-alive client first makes one request, so its connection and handshake are
# outside the window, writes "ready" to GO.ready, and waits for a line on GO before the COUNT.
client() {
  $PY - "$@" <<'PY'
import json, sys, requests
kind, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
go = sys.argv[4] if len(sys.argv) > 4 else None
body = json.load(open("bench/out/churn.json")) if "/infer" in url else None
def session():
    s = requests.Session()
    s.trust_env = False
    s.verify = "bench/out/tls_cg/ca.pem"
    return s
def one(s):
    r = s.post(url, json=body) if body else s.get(url, headers={"Connection": "close"} if kind == "new" else {})
    r.raise_for_status()
s = session()
if go:
    one(s)
    open(go + ".ready", "w").close()
    open(go).readline()
for _ in range(n):
    if kind == "new":
        s = session()
    one(s)
    if kind == "new":
        s.close()
PY
}

# window PID NAME KIND URL COUNT: counts one window into a dump named NAME
window() {
  local pid=$1 name=$2 kind=$3
  shift 2
  local go="$OUT/go.$name"
  if [ "$kind" = keep ]; then
    mkfifo "$go"
    client "$@" "$go" &
    local c=$!
    while [ ! -e "$go.ready" ]; do sleep 0.05; done
    callgrind_control -z "$pid" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    echo go >"$go"
    wait $c
  else
    callgrind_control -z "$pid" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    client "$@"
  fi
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$name" "$pid" >/dev/null
}

PORT=$(free_port)
PLAIN=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.inferd.%p" --instr-atstart=no --dump-instr=no \
  "$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$PORT" --http-plain-port "$PLAIN" \
  --http-threads 1 --worker-threads 1 --grpc-port "$(free_port)" --tls-cert "$OUT/server.pem" --tls-key "$OUT/server.key" \
  >"$OUT/inferd.log" 2>&1 &
INFERD=$!
trap 'kill -TERM $INFERD 2>/dev/null; wait $INFERD 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$PLAIN/v2/health/ready"
client keep "http://127.0.0.1:$PLAIN/v2/models/churn/infer" 50
client keep "https://127.0.0.1:$PORT/v2/models/churn/infer" 50
client new "https://127.0.0.1:$PORT/v2/health/live" 10
window $INFERD churn-http keep "http://127.0.0.1:$PLAIN/v2/models/churn/infer" "$N"
window $INFERD churn-https keep "https://127.0.0.1:$PORT/v2/models/churn/infer" "$N"
window $INFERD live-http keep "http://127.0.0.1:$PLAIN/v2/health/live" "$N"
window $INFERD live-https keep "https://127.0.0.1:$PORT/v2/health/live" "$N"
window $INFERD handshake-inferd new "https://127.0.0.1:$PORT/v2/health/live" "$H"
kill -TERM $INFERD
wait $INFERD || true

NGINX_PORT=$(free_port)
nginx_tls_conf "$OUT/nginx" "$NGINX_PORT" 1024
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.nginx.%p" --instr-atstart=no --dump-instr=no \
  nginx -p "$PWD/$OUT/nginx" -c "$PWD/$OUT/nginx/nginx.conf" >"$OUT/nginx/stderr.log" 2>&1 &
NGINX=$!
trap 'kill -TERM $NGINX 2>/dev/null; wait $NGINX 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf --cacert "$OUT/ca.pem" "https://127.0.0.1:$NGINX_PORT/" >/dev/null && break; sleep 0.1; done
client new "https://127.0.0.1:$NGINX_PORT/" 10
window $NGINX handshake-nginx new "https://127.0.0.1:$NGINX_PORT/" "$H"
kill -TERM $NGINX
for _ in $(seq 100); do kill -0 $NGINX 2>/dev/null || break; sleep 0.1; done
kill -KILL $NGINX 2>/dev/null || true  # (its counts are dumped already)
wait $NGINX 2>/dev/null || true
trap - EXIT

# the dump files name their window in their "desc: Trigger" line
declare -A PER
for f in "$OUT"/cg.*.[0-9]*; do
  name=$(awk '/^desc: Trigger: dump / {print $NF}' "$f")
  [ -n "$name" ] || continue
  total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  case $name in handshake-*) n=$H ;; *) n=$N ;; esac
  PER[$name]=$(( total / n ))
done
printf "%-18s %16s\n" window "instructions/req"
for w in churn-http churn-https live-http live-https handshake-inferd handshake-nginx; do
  printf "%-18s %16s\n" "$w" "${PER[$w]:-?}"
done
r() { awk -v a="${PER[$1]}" -v b="${PER[$2]}" 'BEGIN {printf "%.1f %%", 100 * a / b}'; }
echo
echo "HTTPS keep-alive throughput / HTTP's (instructions HTTP / HTTPS), churn infer: $(r churn-http churn-https)"
echo "HTTPS keep-alive throughput / HTTP's (instructions HTTP / HTTPS), health/live: $(r live-http live-https)"
echo "handshakes inferd / nginx (instructions nginx / inferd):                      $(r handshake-nginx handshake-inferd)"
