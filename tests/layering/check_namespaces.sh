#!/usr/bin/env bash
# No symbol our libraries export sits in a library's namespace (jansson's json_, gRPC core's
# grpc_, OpenSSL's ssl_/SSL_, libevent's ev*), where it could collide with or be mistaken for
# the library's own. protoc-c's names for the grpc.health.v1 package (grpc__health__...) are
# the proto's, not ours, and are allowed.
#   tests/layering/check_namespaces.sh BUILD_DIR
set -euo pipefail
bad=$(nm -g --defined-only "$1"/libinferd_*.a | awk '$2 ~ /^[TDBR]$/ {print $3}' |
  grep -E '^(json_|grpc_|ssl_|SSL_|evbuffer_|event_|evhttp_|ORT_|Ort)' | grep -v '^grpc__' || true)
if [ -n "$bad" ]; then
  echo "symbols in a library's namespace (rename them with their module's prefix):" >&2
  echo "$bad" >&2
  exit 1
fi
echo "namespaces: ok"
