"""--log-format json|text: every line on stderr is one JSON object (or one logfmt line), under
concurrent load from HTTP and gRPC clients while the server also writes its own log lines
(SIGHUP rescans): no line is interleaved with another, none is lost, and the access lines carry
the documented fields (request id, trace id, principal, model, version, arm, status, sizes and
the queue, compute and total times)."""

import json
import re
import signal
import subprocess
import threading

import numpy as np
import pytest
import requests

from conftest import EXAMPLE_REPO, INFERD_BIN, SANITIZED, timeout, wait_until
from grpc_stubs import channel, infer_request, pbg, start_grpc_server

PER_CLIENT = 40 if SANITIZED else 150
CLIENTS = 4  # of each protocol
HUPS = 20
ROW = [0.5, 12, 1, 0, 2, 1, 70.5, 845.0, 0, 1, 1, 0]
BODY = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12], "data": ROW}]}).encode()
ACCESS_KEYS = {"time", "type", "request_id", "trace_id", "principal", "method", "path", "model", "version", "arm",
               "status", "latency_us", "queue_us", "compute_us", "bytes_in", "bytes_out"}


def load(srv):
    """CLIENTS HTTP and CLIENTS gRPC clients, PER_CLIENT requests each, all at once, while the
    main thread sends SIGHUP (a log line from another thread) HUPS times. Returns the ids."""
    errors, ids = [], []

    def http_client(k):
        s = requests.Session()
        for i in range(PER_CLIENT):
            rid = f"h{k}-{i}"
            r = s.post(srv.url("/v2/models/churn/infer"), data=BODY, timeout=timeout(30),
                       headers={"Content-Type": "application/json", "X-Request-ID": rid})
            if r.status_code != 200:
                errors.append((rid, r.status_code, r.text))

    def grpc_client(k):
        with channel(srv) as ch:
            stub = pbg.GRPCInferenceServiceStub(ch)
            req = infer_request("churn", [("input", "FP32", np.array([ROW], np.float32))])
            for i in range(PER_CLIENT):
                try:
                    stub.ModelInfer(req, timeout=timeout(30), metadata=[("x-request-id", f"g{k}-{i}")])
                except Exception as exc:  # noqa: BLE001 - collected and reported below
                    errors.append((f"g{k}-{i}", repr(exc)))

    threads = [threading.Thread(target=http_client, args=(k,)) for k in range(CLIENTS)]
    threads += [threading.Thread(target=grpc_client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    # one signal at a time: two SIGHUPs that arrive before the server takes the first are one
    for i in range(HUPS):
        srv.send_signal(signal.SIGHUP)
        wait_until(lambda: srv.stderr().count("SIGHUP: rescanning") > i, timeout(10), interval=0.005,
                   what=f"the log line of SIGHUP {i + 1}")
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    for k in range(CLIENTS):
        ids += [f"h{k}-{i}" for i in range(PER_CLIENT)] + [f"g{k}-{i}" for i in range(PER_CLIENT)]
    return ids


def stderr_after_stop(srv):
    """The server's lines, up to its last ("stopped"): a sanitizer build's runtime may print its
    own report (LeakSanitizer's suppressions) after the process is done with its lines."""
    assert srv.stop() == 0
    srv.check_sanitizers()
    with open(srv.stderr_path, "rb") as f:
        text = f.read().decode("utf-8")
    if SANITIZED:
        lines = text.split("\n")
        last = max(i for i, l in enumerate(lines) if '"stopped"' in l)
        text = "\n".join(lines[:last + 1]) + "\n"
    return text


def test_json_lines_under_concurrent_load(tmp_path):
    srv = start_grpc_server(EXAMPLE_REPO, str(tmp_path), args=["--log-format", "json", "--http-threads", "2"])
    try:
        ids = load(srv)
    finally:
        text = stderr_after_stop(srv)
    assert text.endswith("\n")
    access, logs = {}, []
    for n, line in enumerate(text.split("\n")[:-1]):
        try:
            obj = json.loads(line)
        except ValueError as exc:
            pytest.fail(f"line {n + 1} is not one JSON object ({exc}): {line[:300]!r}")
        assert isinstance(obj, dict), line
        assert obj["type"] in ("log", "access"), obj
        if obj["type"] == "access":
            access.setdefault(obj["request_id"], []).append(obj)
        else:
            logs.append(obj)
    for rid in ids:
        lines = access.get(rid, [])
        assert len(lines) == 1, f"{len(lines)} access lines for {rid}"
        a = lines[0]
        missing = ACCESS_KEYS - set(a)
        assert not missing, (missing, a)
        assert a["model"] == "churn" and str(a["version"]) == "1" and a["status"] in (200, 0), a
        for k in ("queue_us", "compute_us", "latency_us", "bytes_in", "bytes_out"):
            assert isinstance(a[k], int) and a[k] >= 0, (k, a)
        assert a["latency_us"] >= a["queue_us"] + a["compute_us"], a  # stages are parts of the total
        for k in ("trace_id", "principal", "arm"):  # filled by tracing, security, traffic
            assert isinstance(a[k], str), (k, a)
    assert sum(1 for l in logs if "SIGHUP" in l.get("msg", "")) == HUPS
    for l in logs:
        assert l["level"] in ("debug", "info", "warn", "error") and isinstance(l["msg"], str), l
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", l["time"]), l


# logfmt: key=value, values a JSON string literal, a number, null, true or false
LOGFMT_VALUE = r'(?:"(?:[^"\\]|\\.)*"|-?\d+|null|true|false)'
LOGFMT_LINE = re.compile(r'^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z(?: [a-z_]+=' + LOGFMT_VALUE + r')+$')
LOGFMT_PAIR = re.compile(r'([a-z_]+)=(' + LOGFMT_VALUE + r')')


def test_text_lines_under_concurrent_load(tmp_path):
    srv = start_grpc_server(EXAMPLE_REPO, str(tmp_path), args=["--http-threads", "2"],
                            env={"INFERD_LOG_FORMAT": "text"})
    try:
        ids = load(srv)
    finally:
        text = stderr_after_stop(srv)
    seen = {}
    for n, line in enumerate(text.split("\n")[:-1]):
        assert LOGFMT_LINE.match(line), f"line {n + 1} is not one logfmt line: {line[:300]!r}"
        fields = {k: json.loads(v) for k, v in LOGFMT_PAIR.findall(line.split(" ", 1)[1])}
        if fields.get("type") == "access":
            seen[fields["request_id"]] = seen.get(fields["request_id"], 0) + 1
            assert set(fields) >= ACCESS_KEYS - {"time"}, fields
    assert all(seen.get(rid) == 1 for rid in ids), [rid for rid in ids if seen.get(rid) != 1][:5]


def test_bad_log_format_is_refused(tmp_path):
    res = subprocess.run([INFERD_BIN, "serve", "--model-repository", EXAMPLE_REPO, "--log-format", "yaml"],
                         capture_output=True, text=True, timeout=timeout(30))
    assert res.returncode == 2
    assert "--log-format must be json or text, got 'yaml'" in res.stderr
