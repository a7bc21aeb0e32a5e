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

# nginx_tls_conf DIR PORT CONNECTIONS: writes DIR/nginx.conf for the TLS comparisons (bench/tls.sh,
# bench/tls_instructions.sh): one worker, no master, the certificate DIR/../server.pem, a fixed
# 200 JSON answer on 127.0.0.1:PORT, nothing logged per request. DIR is relative to the repository.
nginx_tls_conf() {
  local dir=$1 port=$2 conns=$3 out
  out=$(dirname "$dir")
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $PWD/$dir/logs/error.log warn;
pid $PWD/$dir/nginx.pid;
events { worker_connections $conns; }
http {
  access_log off;
  client_body_temp_path $PWD/$dir/body;
  proxy_temp_path $PWD/$dir/proxy;
  fastcgi_temp_path $PWD/$dir/fastcgi;
  uwsgi_temp_path $PWD/$dir/uwsgi;
  scgi_temp_path $PWD/$dir/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $PWD/$out/server.pem;
    ssl_certificate_key $PWD/$out/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { default_type application/json; return 200 '{"live":true}'; }
  }
}
CONF
}
