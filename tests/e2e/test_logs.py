"""The access log: one JSON line per request on stderr, with the documented fields."""

import json
import re

import pytest

from conftest import running_server, timeout, wait_models_settled, wait_until

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ACCESS_FIELDS = {"time", "type", "request_id", "method", "path", "model", "version", "status",
                 "latency_us", "bytes_in", "bytes_out"}


@pytest.fixture(scope="module")
def log_server(broken_models_dir, logs_dir):
    """A server whose stderr these tests read; the repository holds the broken model too, so
    there is a model load failure to log."""
    with running_server(broken_models_dir, workdir=logs_dir, wait_ready=False) as srv:
        wait_models_settled(srv)
        yield srv


def access_line(srv, rid):
    """Waits (bounded) for the access line of request `rid` and returns it; asserts it is unique."""
    lines = wait_until(lambda: srv.access_lines(rid), timeout(10), what=f"access log line for {rid}")
    assert len(lines) == 1, f"{len(lines)} access lines for request {rid}: {lines}"
    return lines[0]


def check_access_fields(line):
    missing = ACCESS_FIELDS - set(line)
    assert not missing, f"access line lacks {sorted(missing)}: {line}"
    assert line["type"] == "access"
    assert isinstance(line["time"], str) and TIME_RE.match(line["time"]), line["time"]
    for k in ("status", "latency_us", "bytes_in", "bytes_out"):
        assert isinstance(line[k], int) and not isinstance(line[k], bool), f"{k}: {line[k]!r}"
        assert line[k] >= 0
    assert isinstance(line["method"], str) and isinstance(line["path"], str)


def test_infer_access_line(log_server):
    body = json.dumps({"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                                  {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}).encode()
    r = log_server.infer("add_sub", body, headers={"Content-Type": "application/json",
                                                   "X-Request-ID": "log-infer-1"})
    assert r.status_code == 200
    line = access_line(log_server, "log-infer-1")
    check_access_fields(line)
    assert line["method"] == "POST"
    assert line["path"] == "/v2/models/add_sub/infer"
    assert line["model"] == "add_sub"
    assert str(line["version"]) == "1"
    assert line["status"] == 200
    assert line["bytes_in"] >= len(body)
    assert line["bytes_out"] >= len(r.content)
    assert line["latency_us"] > 0


def test_versioned_access_line_names_resolved_version(log_server):
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}).encode()
    r = log_server.infer("versioned", body, headers={"Content-Type": "application/json",
                                                     "X-Request-ID": "log-versioned-1"})
    assert r.status_code == 200
    line = access_line(log_server, "log-versioned-1")
    check_access_fields(line)
    assert line["model"] == "versioned"
    assert str(line["version"]) == "3"


def test_generated_request_id_in_log(log_server):
    r = log_server.get("/v2/health/live")
    rid = r.headers["X-Request-ID"]
    line = access_line(log_server, rid)
    check_access_fields(line)
    assert line["method"] == "GET"
    assert line["path"] == "/v2/health/live"
    assert line["status"] == 200


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/v2/models/nope", 404),
    ("GET", "/no/such/path", 404),
    ("GET", "/v2/models/add_sub/infer", 405),
    ("POST", "/v2/models/add_sub/infer", 400),
])
def test_error_requests_are_logged(log_server, method, path, status):
    rid = f"log-err-{status}-{abs(hash(path)) % 100000}"
    r = log_server.request(method, path, data=b"{bad" if method == "POST" else None,
                           headers={"X-Request-ID": rid, "Content-Type": "application/json"})
    assert r.status_code == status
    line = access_line(log_server, rid)
    check_access_fields(line)
    assert line["status"] == status
    assert line["method"] == method
    assert line["path"] == path


def test_one_line_per_request(log_server):
    for i in range(5):
        log_server.get("/v2", headers={"X-Request-ID": f"log-count-{i}"})
    for i in range(5):
        access_line(log_server, f"log-count-{i}")


def test_every_stderr_line_is_json(log_server):
    log_server.get("/v2/health/ready", headers={"X-Request-ID": "log-json-check"})
    access_line(log_server, "log-json-check")
    for line in log_server.log_lines():
        assert "_raw" not in line, f"stderr line is not JSON: {line['_raw'][:300]!r}"
        assert line.get("type") in ("access", "log"), line
        assert isinstance(line.get("time"), str) and TIME_RE.match(line["time"]), line
        if line["type"] == "log":
            assert isinstance(line.get("level"), str) and line["level"], line
            assert isinstance(line.get("msg"), str) and line["msg"], line


def test_model_load_failure_is_logged_with_model(log_server):
    def failure_line():
        for line in log_server.log_lines():
            if line.get("type") != "log":
                continue
            names_model = line.get("model") == "broken" or "broken" in str(line.get("msg", ""))
            if names_model and str(line.get("level", "")).lower() in ("error", "warn", "warning"):
                return line
        return None

    wait_until(failure_line, timeout(20), what="an error/warn log line naming the broken model")


def test_413_is_logged(log_server):
    from conftest import raw_request
    req = (f"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nX-Request-ID: log-413\r\n"
           f"Content-Type: application/json\r\nContent-Length: {1 << 40}\r\n\r\n").encode()
    status, headers, _ = raw_request(log_server.port, req)
    assert status == 413
    assert headers.get("x-request-id") == "log-413"
    line = access_line(log_server, "log-413")
    check_access_fields(line)
    assert line["status"] == 413


def test_log_lines_stay_json_with_odd_characters(log_server):
    """Paths and request ids with quotes, backslashes and non-ASCII are escaped in the log."""
    rid = 'odd"id\\with\ttab-\u00e9'
    raw_path = "/v2/models/we%22ird%5C%C3%A9/ready"
    from conftest import raw_request
    req = (f"GET {raw_path} HTTP/1.1\r\nHost: x\r\n").encode() + b"X-Request-ID: " + rid.encode("utf-8") + b"\r\n\r\n"
    status, headers, body = raw_request(log_server.port, req)
    assert status == 404
    assert isinstance(json.loads(body).get("error"), str)

    def find():
        for line in log_server.log_lines():
            assert "_raw" not in line, f"stderr line is not JSON: {line['_raw'][:300]!r}"
            if line.get("type") == "access" and line.get("status") == 404 and "ird" in str(line.get("path")):
                return line
        return None

    line = wait_until(find, timeout(10), what="the access line of the odd request")
    check_access_fields(line)
    # The raw reader decodes header bytes as latin-1; the log holds the UTF-8 text.
    assert line["request_id"].encode("utf-8") == headers.get("x-request-id", "").encode("latin-1")
    assert line["request_id"] == rid


# Issue 9: a long path (or one of characters that escape to two bytes and more) overflowed the
# access line's buffer and crashed the server. The line is now cut to LOG_ACCESS_LINE_MAX bytes:
# the path ends in "..." and the line says "truncated": true, and it is still one JSON object.
# (Issue 9's 1,100 quotes fit the line since it grew to 3 KiB for the observability fields.)
LINE_MAX = 3072
LONG_PATHS = {
    "8000-a": "/v2/models/" + "a" * 8000 + "/ready",
    "1700-quotes": "/v2/models/" + '"' * 1700 + "/ready",
    "1100-quotes-encoded": "/v2/models/" + "%22" * 1100 + "/ready",
    "1700-backslashes": "/v2/models/" + "\\" * 1700 + "/ready",
}


def raw_stderr_line(srv, rid):
    """The raw stderr line (bytes) holding request `rid`'s access line."""
    with open(srv.stderr_path, "rb") as f:
        lines = [l for l in f.read().splitlines() if f'"request_id":"{rid}"'.encode() in l]
    assert len(lines) == 1, f"{len(lines)} raw lines for {rid}"
    return lines[0]


@pytest.mark.parametrize("name", sorted(LONG_PATHS))
def test_long_path_is_answered_and_logged_as_one_json_line(log_server, name):
    from conftest import raw_request
    path = LONG_PATHS[name]
    rid = f"log-long-{name}"
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {rid}\r\n\r\n".encode()
    status, headers, body = raw_request(log_server.port, req)
    assert status == 404, body[:300]
    assert isinstance(json.loads(body).get("error"), str)
    assert headers.get("x-request-id") == rid
    line = access_line(log_server, rid)
    check_access_fields(line)
    assert line["status"] == 404 and line["method"] == "GET"
    assert line["truncated"] is True
    assert line["path"].endswith("...")
    assert path.startswith(line["path"][:-3])
    assert len(line["path"]) > 300
    raw = raw_stderr_line(log_server, rid)
    assert len(raw) + 1 <= LINE_MAX, f"access line of {len(raw) + 1} bytes"
    # the server is still up and answers normally
    assert log_server.alive()
    assert log_server.get("/v2/health/live").status_code == 200


def test_long_paths_on_one_connection_keep_it_serving(log_server):
    """Several long paths in a row on one keep-alive connection, then a normal request."""
    from conftest import raw_connect, read_http_response
    with raw_connect(log_server.port) as s:
        for i, name in enumerate(sorted(LONG_PATHS) * 2):
            s.sendall(f"GET {LONG_PATHS[name]} HTTP/1.1\r\nHost: x\r\n"
                      f"X-Request-ID: log-keep-{i}\r\n\r\n".encode())
            status, _, body = read_http_response(s)
            assert status == 404, body[:300]
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Request-ID: log-keep-end\r\n\r\n")
        status, _, _ = read_http_response(s)
        assert status == 200
    for i in range(len(LONG_PATHS) * 2):
        check_access_fields(access_line(log_server, f"log-keep-{i}"))
    check_access_fields(access_line(log_server, "log-keep-end"))
    for line in log_server.log_lines():
        assert "_raw" not in line, f"stderr line is not JSON: {line['_raw'][:300]!r}"


@pytest.mark.parametrize("name,unit", [("a", "a"), ("quotes", '"'), ("controls", "\x01")])
def test_grpc_long_model_name_is_logged_as_one_json_line(logs_dir, test_models_dir, name, unit):
    """gRPC writes its access lines with the same formatter; the model name comes from the
    request. 8,000 characters (of those that escape longest too) give NOT_FOUND, a valid line,
    and a server that keeps serving."""
    import grpc
    import numpy as np
    from grpc_stubs import infer_request, pb, rpc_error, running_grpc_server
    with running_grpc_server(test_models_dir, logs_dir) as g:
        rid = f"grpc-log-long-{name}"
        model = unit * 8000
        req = infer_request(model, [("a", "FP32", np.ones((1, 4), np.float32))])
        err = rpc_error(g.infer.ModelInfer, req, timeout=timeout(30), metadata=[("x-request-id", rid)])
        assert err.code() == grpc.StatusCode.NOT_FOUND
        line = access_line(g.srv, rid)
        check_access_fields(line)
        assert line["method"] == "gRPC"
        assert line["path"].endswith("/ModelInfer")
        assert isinstance(line["model"], str) and set(line["model"].rstrip(".")) <= {unit}
        assert len(raw_stderr_line(g.srv, rid)) + 1 <= LINE_MAX
        g.infer.ServerLive(pb.ServerLiveRequest(), timeout=timeout(30))
        for line in g.srv.log_lines():
            assert "_raw" not in line, f"stderr line is not JSON: {line['_raw'][:300]!r}"
