#!/usr/bin/env bash
# Installs what inferd's build, tests and benchmarks need. Idempotent: each step checks first.
#   - Debian packages (apt-get), only those missing.
#   - ONNX Runtime: a system install if found (pkg-config or $ONNXRUNTIME_ROOT), else the pinned
#     npm package, checked against its sha512 and unpacked into third_party/onnxruntime/.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_NPM_PACKAGE="com.github.asus4.onnxruntime@0.4.9"
# sha512 of that tarball as the npm registry publishes it (its "integrity" field).
ORT_NPM_SHA512="BkzxduSZ9IkeDP6Q8lz2TFU2ie7hSSvS7ZIfzMooExoq0CNzJnuuGaUJ7IsojBgqO4ouD1jXah8OYyJbCN29Fg=="
ORT_DIR="third_party/onnxruntime"

# The OTLP .proto definitions the tracing test decodes exports with (tests/e2e/test_tracing.py
# compiles them with protoc): the last release of this OpenTelemetry JS package that ships the
# opentelemetry-proto files it was built from. Unpacked, never committed.
OTLP_PROTO_NPM_PACKAGE="@opentelemetry/otlp-grpc-exporter-base@0.38.0"
OTLP_PROTO_NPM_SHA512="wwGxeJt80w+mIA0aE+K9OshkyEoYQrXuwXl1TNZBs9K7qE4AAiEuxU9cbd3VX3BTsp+xzNcDRWIb9WWkiU9+kA=="
OTLP_PROTO_DIR="third_party/otlp-proto"

DEB_PACKAGES=(
  build-essential cmake pkg-config
  libevent-dev libjansson-dev libcmocka-dev zlib1g-dev libssl-dev libsqlite3-dev
  python3 python3-pytest python3-requests python3-numpy python3-onnx python3-sklearn
  python3-jwt python3-cryptography  # tests/e2e JWT suites: tokens and JWKS made independently of inferd
  wrk nghttp2-client ca-certificates openssl curl
  nginx-light  # bench/tls.sh: TLS handshakes against nginx
  clang libclang-rt-14-dev  # make fuzz: clang and its libFuzzer runtime
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
  protobuf-compiler protobuf-compiler-grpc python3-grpcio
  chromium python3-jsonschema python3-fastapi python3-uvicorn python3-httptools python3-uvloop
  cppcheck
  libcurl4-openssl-dev python3-protobuf  # OTLP export; the tracing test's decoder
  python3-scipy  # tests/e2e/test_drift.py: the drift statistics computed independently
  prometheus  # tests/e2e/test_metrics.py: a real Prometheus and promtool
  libhiredis-dev redis-server  # src/store: shared state in Redis; tests/e2e/test_redis.py runs a real one
)

log() { echo "bootstrap: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_debian_packages() {
  local missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm may come with a nodejs package from elsewhere that conflicts with Debian's npm.
  command -v npm >/dev/null || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ort_present() {
  [ -f "$ORT_DIR/include/onnxruntime_c_api.h" ] && [ -e "$ORT_DIR/lib/libonnxruntime.so.1" ] && return 0
  [ -n "${ONNXRUNTIME_ROOT:-}" ] && [ -f "$ONNXRUNTIME_ROOT/include/onnxruntime_c_api.h" ] && return 0
  pkg-config --exists libonnxruntime 2>/dev/null && return 0
  return 1
}

install_onnxruntime() {
  ort_present && return 0
  log "fetching ONNX Runtime from the npm registry ($ORT_NPM_PACKAGE)"
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && npm pack --silent "$ORT_NPM_PACKAGE" >/dev/null)
  local tgz
  tgz=$(ls "$tmp"/*.tgz)
  local got
  got=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$got" != "$ORT_NPM_SHA512" ]; then
    log "sha512 mismatch for $ORT_NPM_PACKAGE: got $got"
    exit 1
  fi
  tar xzf "$tgz" -C "$tmp" \
    --wildcards 'package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64_x86_64-simulator/*/Headers/*' \
    'package/Plugins/Linux/x64/*'
  rm -rf "$ORT_DIR"
  mkdir -p "$ORT_DIR/include" "$ORT_DIR/lib"
  cp "$tmp"/package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64_x86_64-simulator/onnxruntime.framework/Headers/*.h "$ORT_DIR/include/"
  cp "$tmp"/package/Plugins/Linux/x64/libonnxruntime.so "$ORT_DIR/lib/"
  # The library's SONAME is libonnxruntime.so.1: the loader looks for that name.
  ln -sf libonnxruntime.so "$ORT_DIR/lib/libonnxruntime.so.1"
  log "ONNX Runtime unpacked into $ORT_DIR"
}

# The browser assets /docs and /redoc serve (swagger-ui-dist, redoc) and the browser test's
# driver (playwright-core), pinned by web/package-lock.json; install scripts are not run.
install_web_packages() {
  local stamp=web/node_modules/.inferd-installed
  [ -f "$stamp" ] && [ "$stamp" -nt web/package-lock.json ] && [ "$stamp" -nt web/package.json ] && return 0
  log "installing web/ npm packages (npm ci)"
  (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  touch "$stamp"
}

# The tokenizer test's reference (tests/e2e/test_tokenizer_reference.py): Hugging Face tokenizers
# as a Node.js native build (@anush008/tokenizers, its linux-x64 binary an optional dependency)
# and its JavaScript port (@huggingface/tokenizers), pinned by tests/tokenizer/package-lock.json
# into the ignored tests/tokenizer/node_modules; install scripts are not run.
install_tokenizer_reference() {
  local stamp=tests/tokenizer/node_modules/.inferd-installed
  [ -f "$stamp" ] && [ "$stamp" -nt tests/tokenizer/package-lock.json ] && [ "$stamp" -nt tests/tokenizer/package.json ] && return 0
  log "installing the tokenizer test's reference packages (npm ci in tests/tokenizer)"
  (cd tests/tokenizer && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  touch "$stamp"
}

install_otlp_protos() {
  [ -f "$OTLP_PROTO_DIR/opentelemetry/proto/collector/trace/v1/trace_service.proto" ] && return 0
  log "fetching the OTLP .proto files from the npm registry ($OTLP_PROTO_NPM_PACKAGE)"
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && npm pack --silent "$OTLP_PROTO_NPM_PACKAGE" >/dev/null)
  local tgz got
  tgz=$(ls "$tmp"/*.tgz)
  got=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$got" != "$OTLP_PROTO_NPM_SHA512" ]; then
    log "sha512 mismatch for $OTLP_PROTO_NPM_PACKAGE: got $got"
    exit 1
  fi
  tar xzf "$tgz" -C "$tmp" 'package/build/protos'
  rm -rf "$OTLP_PROTO_DIR"
  mkdir -p "$OTLP_PROTO_DIR"
  cp -r "$tmp"/package/build/protos/opentelemetry "$OTLP_PROTO_DIR/"
  log "OTLP .proto files unpacked into $OTLP_PROTO_DIR"
}

install_debian_packages
install_onnxruntime
install_web_packages
install_tokenizer_reference
install_otlp_protos
