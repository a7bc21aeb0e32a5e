# Helpers the bench scripts share (sourced, not run).

# A free TCP port on loopback.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_up URL: waits up to WAIT_UP_SECONDS (20) for URL to answer 2xx; else says so and fails
# (a server under valgrind on a loaded machine can take longer to start).
wait_up() {
  for _ in $(seq $((${WAIT_UP_SECONDS:-20} * 10))); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not come up in ${WAIT_UP_SECONDS:-20} s" >&2
  return 1
}

# wrk prints latency percentiles as e.g. "123.00us", "1.20ms" or "1.05s": normalise to µs.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000000} else print v}'; }
