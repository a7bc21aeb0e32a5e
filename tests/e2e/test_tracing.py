"""OpenTelemetry tracing, end to end: W3C trace context in (HTTP headers, gRPC metadata) and out
(traceparent, Server-Timing), the spans a request makes (request, queue, batch, compute, and the
batch's own, linked), exported as OTLP/HTTP to a receiver this test runs on loopback.

The receiver decodes the protobuf exports with an independent implementation: Python code that
protoc generates, at test time, from the OTLP .proto files the OpenTelemetry project ships in an
npm package (scripts/bootstrap.sh unpacks them into third_party/otlp-proto/). JSON exports are
read with the json module against the OTLP/JSON mapping. A collector that is down must cost
the requests nothing: they all succeed as fast as without tracing, and the drops are counted.
"""

import atexit
import concurrent.futures
import contextlib
import glob
import http.server
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import numpy as np
import pytest
import requests

from conftest import REPO_ROOT, SANITIZED, free_port, running_server, timeout, wait_until
from grpc_stubs import infer_request, running_grpc_server

OTLP_PROTO_DIR = os.path.join(REPO_ROOT, "third_party", "otlp-proto")
PROTOC = shutil.which("protoc") or "/usr/bin/protoc"
T = timeout(30)
TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
ONES = [[1.0, 2.0, 3.0, 4.0]]


def _otlp_modules():
    """protoc-generated Python for the OTLP trace service, from the npm package's .proto files."""
    service = os.path.join(OTLP_PROTO_DIR, "opentelemetry/proto/collector/trace/v1/trace_service.proto")
    assert os.path.exists(service), (
        f"{service} is missing: scripts/bootstrap.sh fetches the OTLP .proto files (install_otlp_protos)")
    out = tempfile.mkdtemp(prefix="inferd-otlp-pb-")
    atexit.register(shutil.rmtree, out, True)
    protos = sorted(glob.glob(os.path.join(OTLP_PROTO_DIR, "opentelemetry/proto/**/*.proto"), recursive=True))
    subprocess.run([PROTOC, f"-I{OTLP_PROTO_DIR}", f"--python_out={out}"] + protos, check=True)
    sys.path.insert(0, out)
    return importlib.import_module("opentelemetry.proto.collector.trace.v1.trace_service_pb2")


tsvc = _otlp_modules()


# --------------------------------------------------------------------------------------------
# the receiver


class Span:
    """One exported span, from either encoding, with ids as hex."""

    def __init__(self, trace_id, span_id, parent, name, kind, start, end, attrs, links, status_code,
                 status_msg, trace_state, resource):
        self.trace_id, self.span_id, self.parent = trace_id, span_id, parent
        self.name, self.kind, self.start, self.end = name, kind, start, end
        self.attrs, self.links = attrs, links
        self.status_code, self.status_msg = status_code, status_msg
        self.trace_state, self.resource = trace_state, resource

    def __repr__(self):
        return f"Span({self.name} {self.trace_id}/{self.span_id} parent={self.parent} {self.attrs})"


def _any_value(v):
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


def _from_proto(body):
    req = tsvc.ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in req.resource_spans:
        resource = {kv.key: _any_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            assert ss.scope.name == "inferd"
            for s in ss.spans:
                out.append(Span(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex() or None, s.name, s.kind,
                                s.start_time_unix_nano, s.end_time_unix_nano,
                                {kv.key: _any_value(kv.value) for kv in s.attributes},
                                [(l.trace_id.hex(), l.span_id.hex()) for l in s.links],
                                s.status.code, s.status.message, s.trace_state, resource))
    return out


def _json_value(v):
    (k, x), = v.items()
    return int(x) if k == "intValue" else x


def _from_json(body):
    doc = json.loads(body)
    out = []
    for rs in doc["resourceSpans"]:
        resource = {a["key"]: _json_value(a["value"]) for a in rs["resource"]["attributes"]}
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in s:
                        assert re.fullmatch(r"[0-9a-f]+", s[k]), f"{k} is not lower-case hex: {s[k]!r}"
                # OTLP/JSON: 64-bit integers as decimal strings
                assert isinstance(s["startTimeUnixNano"], str) and isinstance(s["endTimeUnixNano"], str)
                out.append(Span(s["traceId"], s["spanId"], s.get("parentSpanId"), s["name"], s["kind"],
                                int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]),
                                {a["key"]: _json_value(a["value"]) for a in s.get("attributes", [])},
                                [(l["traceId"], l["spanId"]) for l in s.get("links", [])],
                                s.get("status", {}).get("code", 0), s.get("status", {}).get("message", ""),
                                s.get("traceState", ""), resource))
    return out


class Receiver:
    """An OTLP/HTTP trace receiver on loopback: keeps every span it is sent."""

    def __init__(self):
        self.spans = []
        self.posts = []  # (path, content type)
        self.lock = threading.Lock()
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ctype = self.headers.get("Content-Type", "")
                spans = _from_json(body) if ctype == "application/json" else _from_proto(body)
                with recv.lock:
                    recv.posts.append((self.path, ctype))
                    recv.spans.extend(spans)
                reply = tsvc.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def of_trace(self, trace_id):
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_trace(self, trace_id, n):
        return wait_until(lambda: len(self.of_trace(trace_id)) >= n and self.of_trace(trace_id), T,
                          what=f"{n} spans of trace {trace_id}")

    def span(self, trace_id, span_id):
        with self.lock:
            found = [s for s in self.spans if s.trace_id == trace_id and s.span_id == span_id]
        assert len(found) == 1, f"{len(found)} spans {trace_id}/{span_id}"
        return found[0]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def receiver():
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def traced(test_models_dir, logs_dir):
    """A server on HTTP and gRPC exporting protobuf to a receiver, sampling nothing on its own
    (ratio 0): only requests whose caller sampled are exported."""
    with receiver() as rec:
        args = ["--otlp-endpoint", rec.endpoint(), "--trace-sample-ratio", "0", "--otlp-export-interval-ms", "50"]
        with running_grpc_server(test_models_dir, logs_dir, args=args) as g:
            g.rec = rec
            yield g


def traceparent(trace_id, parent_id, sampled=True):
    return f"00-{trace_id}-{parent_id}-{'01' if sampled else '00'}"


def new_ids():
    return os.urandom(16).hex(), os.urandom(8).hex()


def v2_body(model="add_sub", rows=1):
    return {"inputs": [{"name": n, "datatype": "FP32", "shape": [rows, 4], "data": ONES * rows} for n in ("a", "b")]}


def server_timing(value):
    parts = dict(re.fullmatch(r"\s*(\w+);dur=([0-9.]+)\s*", p).groups() for p in value.split(","))
    return {k: float(v) for k, v in parts.items()}


def attrs_ok(span, model, protocol, request_id):
    assert span.attrs["inferd.model"] == model
    assert span.attrs["inferd.model.version"] == "1"
    assert span.attrs["inferd.protocol"] == protocol
    assert span.attrs["inferd.request_id"] == request_id


def check_tree(rec, trace_id, server_span_id):
    """The request's span and its children: queue and batch under it, compute under batch, each
    within its parent's time; and the link to the batch's own span. Returns (server, batch span)."""
    spans = rec.wait_trace(trace_id, 4)
    by_id = {s.span_id: s for s in spans}
    server = by_id[server_span_id]
    assert server.kind == 2 and server.name == "infer"  # SPAN_KIND_SERVER
    kids = {s.name: s for s in spans if s.parent == server_span_id}
    assert set(kids) == {"queue", "batch"}, spans
    compute = [s for s in spans if s.parent == kids["batch"].span_id]
    assert [s.name for s in compute] == ["compute"], spans
    for child, parent in ((kids["queue"], server), (kids["batch"], server), (compute[0], kids["batch"])):
        assert child.kind == 1, child  # INTERNAL
        assert parent.start <= child.start <= child.end <= parent.end, (child, parent)
    assert kids["queue"].end <= kids["batch"].start
    assert len(server.links) == 1, server.links
    link_trace, link_span = server.links[0]
    batch = wait_until(lambda: [s for s in rec.of_trace(link_trace) if s.span_id == link_span], T,
                       what="the linked batch span")[0]
    assert batch.name == "batch" and batch.parent is None
    assert batch.attrs["inferd.batch.size"] == kids["batch"].attrs["inferd.batch.size"] >= 1
    # the same run (each request converts the monotonic clock to Unix time on its own: ns apart)
    assert abs(batch.start - kids["batch"].start) < 1000 and abs(batch.end - kids["batch"].end) < 1000
    return server, batch


# --------------------------------------------------------------------------------------------
# HTTP


def test_http_keeps_the_callers_trace_and_exports_linked_spans(traced):
    srv, rec = traced.srv, traced.rec
    trace_id, parent = new_ids()
    r = srv.post("/v2/models/add_sub/infer", json=v2_body(), timeout=T,
                 headers={"traceparent": traceparent(trace_id, parent), "tracestate": "congo=t61rcWkgMzE,rojo=1",
                          "X-Request-ID": "trace-http-1"})
    assert r.status_code == 200, r.text
    m = TP_RE.match(r.headers["traceparent"])
    assert m, r.headers["traceparent"]
    assert m.group(1) == trace_id and m.group(3) == "01"
    span_id = m.group(2)
    assert span_id != parent
    timing = server_timing(r.headers["Server-Timing"])
    assert set(timing) == {"queue", "compute"} and all(v >= 0 for v in timing.values())

    server, batch = check_tree(rec, trace_id, span_id)
    assert server.parent == parent  # the caller's span
    assert server.trace_state == "congo=t61rcWkgMzE,rojo=1"
    attrs_ok(server, "add_sub", "http", "trace-http-1")
    assert server.attrs["inferd.status"] == "OK"
    assert server.attrs["http.response.status_code"] == 200
    assert server.status_code == 0  # unset: no error
    assert server.resource["service.name"] == "inferd"
    assert batch.attrs["inferd.model"] == "add_sub"
    # the Server-Timing figures are the spans' (ms, rounded to µs)
    queue = [s for s in rec.of_trace(trace_id) if s.name == "queue"][0]
    compute = [s for s in rec.of_trace(trace_id) if s.name == "compute"][0]
    assert abs(timing["queue"] - (queue.end - queue.start) / 1e6) < 0.002
    assert timing["compute"] >= (compute.end - compute.start) / 1e6 - 0.002
    assert all(p == "/v1/traces" and c == "application/x-protobuf" for p, c in rec.posts)

    line = wait_until(lambda: srv.access_lines("trace-http-1"), timeout(10), what="access line")[0]
    assert line["trace_id"] == trace_id


def test_an_unsampled_caller_is_not_exported_but_keeps_its_trace_id(traced):
    srv, rec = traced.srv, traced.rec
    off_trace, parent = new_ids()
    r = srv.post("/v2/models/add_sub/infer", json=v2_body(), timeout=T,
                 headers={"traceparent": traceparent(off_trace, parent, sampled=False), "X-Request-ID": "trace-off-1"})
    assert r.status_code == 200
    m = TP_RE.match(r.headers["traceparent"])
    assert m.group(1) == off_trace and m.group(3) == "00"
    assert "Server-Timing" in r.headers
    # no context and ratio 0: not sampled either, but a new trace id in reply and log
    r2 = srv.post("/v2/models/add_sub/infer", json=v2_body(), timeout=T, headers={"X-Request-ID": "trace-off-2"})
    m2 = TP_RE.match(r2.headers["traceparent"])
    assert m2.group(3) == "00" and m2.group(1) not in (off_trace, "0" * 32)
    # a sampled request sent after both is exported; by then theirs would have been
    on_trace, parent = new_ids()
    r3 = srv.post("/v2/models/add_sub/infer", json=v2_body(), timeout=T,
                  headers={"traceparent": traceparent(on_trace, parent)})
    rec.wait_trace(on_trace, 4)
    time.sleep(0.2)
    assert rec.of_trace(off_trace) == [] and rec.of_trace(m2.group(1)) == []
    line = wait_until(lambda: srv.access_lines("trace-off-2"), timeout(10), what="access line")[0]
    assert line["trace_id"] == m2.group(1)


def test_invalid_traceparent_starts_a_new_trace(traced):
    srv = traced.srv
    for bad in ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"):
        r = srv.post("/v2/models/add_sub/infer", json=v2_body(), timeout=T, headers={"traceparent": bad})
        assert r.status_code == 200
        m = TP_RE.match(r.headers["traceparent"])
        assert m and m.group(1) != "4bf92f3577b34da6a3ce929d0e0e4736" and m.group(3) == "00", (bad, r.headers)


def test_requests_of_one_batch_link_to_one_batch_span(traced):
    """`batched` waits 4 ms to join requests: those run together link to the same batch span,
    which counts them, and exactly one such span is exported per batch."""
    srv, rec = traced.srv, traced.rec
    for attempt in range(5):
        ids = [new_ids() for _ in range(6)]

        def send(i):
            tid, parent = ids[i]
            r = requests.post(srv.url("/v2/models/batched/infer"), json=v2_body(rows=1 + i % 2), timeout=T,
                              headers={"traceparent": traceparent(tid, parent)})
            assert r.status_code == 200, r.text
            return TP_RE.match(r.headers["traceparent"]).group(2)

        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            span_ids = list(ex.map(send, range(6)))
        groups = {}
        for (tid, _), sid in zip(ids, span_ids):
            server, batch = check_tree(rec, tid, sid)
            groups.setdefault((batch.trace_id, batch.span_id), []).append(server)
        for (btid, bsid), members in groups.items():
            batch = [s for s in rec.of_trace(btid) if s.span_id == bsid]
            assert len(batch) == 1, batch  # one span per batch
            assert batch[0].attrs["inferd.batch.requests"] == len(members)
            rows = [len(v2_body(rows=1 + i % 2)["inputs"][0]["data"]) for i in range(6)]
            assert batch[0].attrs["inferd.batch.size"] >= len(members)
        if any(len(m) > 1 for m in groups.values()):
            return
    raise AssertionError("no two of six concurrent requests ran in one batch in five tries")


def test_a_failed_request_has_an_error_span(traced):
    srv, rec = traced.srv, traced.rec
    trace_id, parent = new_ids()
    body = {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [99]}]}
    r = srv.post("/v2/models/gather_fail/infer", json=body, timeout=T,
                 headers={"traceparent": traceparent(trace_id, parent)})
    assert r.status_code >= 400
    span_id = TP_RE.match(r.headers["traceparent"]).group(2)
    server = wait_until(lambda: [s for s in rec.of_trace(trace_id) if s.span_id == span_id], T, what="span")[0]
    assert server.status_code == 2 and server.status_msg  # STATUS_CODE_ERROR, with the reason
    assert server.attrs["inferd.status"] != "OK"
    assert server.attrs["http.response.status_code"] == r.status_code


# --------------------------------------------------------------------------------------------
# gRPC


def test_grpc_metadata_carries_the_context_both_ways(traced):
    rec = traced.rec
    trace_id, parent = new_ids()
    req = infer_request("add_sub", [("a", "FP32", np.ones((1, 4), np.float32)), ("b", "FP32", np.ones((1, 4), np.float32))])
    resp, call = traced.infer.ModelInfer.with_call(
        req, timeout=T, metadata=[("traceparent", traceparent(trace_id, parent)), ("x-request-id", "trace-grpc-1")])
    md = dict(call.initial_metadata())
    m = TP_RE.match(md["traceparent"])
    assert m and m.group(1) == trace_id and m.group(3) == "01"
    assert set(server_timing(md["server-timing"])) == {"queue", "compute"}
    server, _ = check_tree(rec, trace_id, m.group(2))
    assert server.parent == parent
    attrs_ok(server, "add_sub", "grpc", "trace-grpc-1")
    assert server.attrs["rpc.grpc.status_code"] == 0
    line = wait_until(lambda: traced.srv.access_lines("trace-grpc-1"), timeout(10), what="access line")[0]
    assert line["trace_id"] == trace_id


def test_grpc_stream_requests_join_the_streams_trace(traced):
    """A stream's metadata is its requests' context: each is a child of the caller's span."""
    rec = traced.rec
    trace_id, parent = new_ids()
    ones = np.ones((1, 4), np.float32)
    reqs = [infer_request("add_sub", [("a", "FP32", ones), ("b", "FP32", ones)], request_id=f"s{i}") for i in range(3)]
    got = list(traced.infer.ModelStreamInfer(iter(reqs), timeout=T,
                                             metadata=[("traceparent", traceparent(trace_id, parent))]))
    assert len(got) == 3 and all(not r.error_message for r in got)
    spans = rec.wait_trace(trace_id, 12)
    servers = [s for s in spans if s.name == "infer"]
    assert len(servers) == 3 and all(s.parent == parent for s in servers), servers
    assert all(s.attrs["inferd.protocol"] == "grpc" for s in servers)
    for s in servers:
        check_tree(rec, trace_id, s.span_id)


# --------------------------------------------------------------------------------------------
# OTLP/JSON, head sampling at ratio 1


def test_json_export_and_sampling_without_a_caller(test_models_dir, logs_dir):
    with receiver() as rec:
        args = ["--otlp-endpoint", rec.endpoint() + "/", "--otlp-protocol", "http/json",
                "--otlp-export-interval-ms", "50", "--otlp-service-name", "churn-api"]
        with running_server(test_models_dir, args=args, workdir=logs_dir) as srv:
            r = srv.post("/v2/models/add_sub/infer", json=v2_body(), timeout=T, headers={"X-Request-ID": "json-1"})
            m = TP_RE.match(r.headers["traceparent"])
            assert m.group(3) == "01"  # ratio 1 (the default) samples a request without a context
            server, _ = check_tree(rec, m.group(1), m.group(2))
            assert server.parent is None  # a root
            attrs_ok(server, "add_sub", "http", "json-1")
            assert server.resource["service.name"] == "churn-api"
            assert rec.posts and all(p == "/v1/traces" and c == "application/json" for p, c in rec.posts)


# --------------------------------------------------------------------------------------------
# a collector that is down


def _latencies(srv, n):
    out = []
    s = requests.Session()
    body = v2_body()
    for _ in range(n):
        t0 = time.perf_counter()
        r = s.post(srv.url("/v2/models/add_sub/infer"), json=body, timeout=T)
        out.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
    return out


def test_a_down_collector_costs_nothing_but_counted_drops(test_models_dir, logs_dir):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    n = 60 if SANITIZED else 300
    with running_server(test_models_dir, workdir=logs_dir) as plain, \
            running_server(test_models_dir, workdir=logs_dir,
                           args=["--otlp-endpoint", dead, "--otlp-export-interval-ms", "20",
                                 "--otlp-queue-size", "16"]) as down:
        _latencies(plain, 20), _latencies(down, 20)  # warm both
        a, b = [], []
        for _ in range(3):  # interleaved, so both see the same machine
            a += _latencies(plain, n // 3)
            b += _latencies(down, n // 3)
        med_plain, med_down = statistics.median(a), statistics.median(b)
        # within noise: a 2-core shared machine; an export on the request path would cost a connect
        assert med_down < med_plain * 1.5 + 0.0005, (med_plain, med_down)
        warn = wait_until(lambda: [l for l in down.log_lines() if "spans dropped so far" in l.get("msg", "")], T,
                          what="the export failure warning")
        assert "failed" in warn[0]["msg"] and warn[0]["level"] == "warn"
    # the drop counters, as the server reports them when it stops
    last = [l for l in down.log_lines() if l.get("msg", "").startswith("tracing: ") and "sampled" in l["msg"]]
    assert len(last) == 1, down.log_lines()[-5:]
    nums = dict((k, int(v)) for v, k in re.findall(r"(\d+) (requests sampled|spans exported|dropped \(queue full\)|"
                                                   r"dropped \(export failed\))", last[0]["msg"]))
    assert nums["requests sampled"] == 20 + n // 3 * 3
    assert nums["spans exported"] == 0
    assert nums["dropped (export failed)"] > 0
    # every sampled request's spans were dropped one way or the other (4 or 5 spans each)
    dropped = nums["dropped (export failed)"] + nums["dropped (queue full)"]
    assert 4 * nums["requests sampled"] <= dropped <= 5 * nums["requests sampled"], nums


def test_a_full_queue_drops_and_counts(test_models_dir, logs_dir):
    """A collector that never answers in time: the queue (4 requests) fills while the exporter
    waits, the rest are dropped and counted, and requests still succeed."""
    hung = []
    lst = __import__("socket").socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)  # accepts (by the kernel) and never answers

    port = lst.getsockname()[1]
    try:
        with running_server(test_models_dir, workdir=logs_dir,
                            args=["--otlp-endpoint", f"http://127.0.0.1:{port}", "--otlp-export-interval-ms", "10",
                                  "--otlp-queue-size", "4", "--otlp-timeout-ms", "1500"]) as srv:
            _latencies(srv, 40)
        msg = [l["msg"] for l in srv.log_lines() if l.get("msg", "").startswith("tracing: ") and "sampled" in l["msg"]]
        assert msg, srv.log_lines()[-5:]
        full = int(re.search(r"(\d+) dropped \(queue full\)", msg[0]).group(1))
        assert full > 0, msg[0]
    finally:
        lst.close()


# --------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize("args, needle", [
    (["--otlp-endpoint", "collector:4318"], "--otlp-endpoint must be an http:// or https:// URL"),
    (["--otlp-endpoint", "http://"], "has no host"),
    (["--otlp-endpoint", "http://127.0.0.1:4318", "--otlp-protocol", "grpc"], "--otlp-protocol must be http/protobuf or http/json"),
    (["--otlp-endpoint", "http://127.0.0.1:4318", "--trace-sample-ratio", "1.5"], "--trace-sample-ratio must be a number from 0 to 1"),
    (["--otlp-endpoint", "http://127.0.0.1:4318", "--trace-sample-ratio", "nan"], "--trace-sample-ratio must be a number from 0 to 1"),
    (["--otlp-endpoint", "http://127.0.0.1:4318", "--otlp-queue-size", "0"], "--otlp-queue-size must be an integer"),
])
def test_bad_tracing_options_stop_the_server_with_a_message(test_models_dir, args, needle):
    from conftest import INFERD_BIN
    p = subprocess.run([INFERD_BIN, "serve", "--model-repository", test_models_dir, "--http-port", "0",
                        "--grpc-port", "0"] + args, capture_output=True, text=True, timeout=T)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert needle in p.stderr, p.stderr[-2000:]


def test_tracing_options_from_the_environment(test_models_dir, logs_dir):
    with receiver() as rec:
        env = {"INFERD_OTLP_ENDPOINT": rec.endpoint(), "INFERD_OTLP_PROTOCOL": "http/json",
               "INFERD_TRACE_SAMPLE_RATIO": "1", "INFERD_OTLP_EXPORT_INTERVAL_MS": "50",
               "INFERD_OTLP_SERVICE_NAME": "from-env"}
        with running_server(test_models_dir, env=env, workdir=logs_dir) as srv:
            r = srv.post("/v2/models/add_sub/infer", json=v2_body(), timeout=T)
            m = TP_RE.match(r.headers["traceparent"])
            spans = rec.wait_trace(m.group(1), 4)
            assert spans[0].resource["service.name"] == "from-env"
            assert all(c == "application/json" for _, c in rec.posts)
