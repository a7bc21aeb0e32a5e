"""HTTP/1.1 as clients (curl, requests, load balancers) speak it: chunked bodies, Expect:
100-continue, split writes, header case, query strings, keep-alive after errors, smuggling-shaped
requests, many connections, an event loop that an inference does not block."""

import json
import socket
import threading
import time

import numpy as np
import pytest
import requests

from conftest import (SANITIZED, assert_error, build_request, infer_ok, raw_connect, raw_request,
                      read_http_response, running_server, timeout)

ADD_SUB = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                      {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [10, 20, 30, 40]}]}
ADD_SUB_BYTES = json.dumps(ADD_SUB).encode()


def sum_of(body):
    return {o["name"]: o for o in json.loads(body)["outputs"]}["sum"]["data"]


def post_head(path, extra="", length=None):
    h = f"POST {path} HTTP/1.1\r\nHost: inferd\r\nContent-Type: application/json\r\n"
    if length is not None:
        h += f"Content-Length: {length}\r\n"
    return (h + extra + "\r\n").encode()


# ---- bodies ------------------------------------------------------------------------------------


def test_chunked_request_body(server):
    def gen():
        for i in range(0, len(ADD_SUB_BYTES), 7):
            yield ADD_SUB_BYTES[i:i + 7]

    r = server.post("/v2/models/add_sub/infer", data=gen(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.content
    assert sum_of(r.content) == [11, 22, 33, 44]


def test_chunked_raw_with_extensions_and_trailer(server):
    body = ADD_SUB_BYTES
    half = len(body) // 2
    chunks = (f"{half:x};ext=1\r\n".encode() + body[:half] + b"\r\n"
              + f"{len(body) - half:X}\r\n".encode() + body[half:] + b"\r\n"
              + b"0\r\nX-Trailer: yes\r\n\r\n")
    req = post_head("/v2/models/add_sub/infer", "Transfer-Encoding: chunked\r\n") + chunks
    status, headers, resp = raw_request(server.port, req)
    assert status == 200, resp
    assert sum_of(resp) == [11, 22, 33, 44]


@pytest.mark.parametrize("chunks", [
    b"zz\r\nabc\r\n0\r\n\r\n",                      # size is not hex
    b"5\r\nabcdefgh\r\n0\r\n\r\n",                  # chunk longer than its size
    b"ffffffffffffffffffff\r\nab\r\n0\r\n\r\n",     # size overflows
    b"-5\r\nabc\r\n0\r\n\r\n",
])
def test_malformed_chunked_body_400(server, chunks):
    req = post_head("/v2/models/add_sub/infer", "Transfer-Encoding: chunked\r\n") + chunks
    with raw_connect(server.port) as s:
        s.sendall(req)
        try:
            status, headers, body = read_http_response(s, seconds=timeout(10))
        except ConnectionError:
            status = None  # closed without an answer is acceptable for a broken framing
        if status is not None:
            assert 400 <= status < 500, (status, body[:200])
            assert isinstance(json.loads(body).get("error"), str)
    assert server.get("/v2/health/live").status_code == 200


def test_expect_100_continue(server):
    with raw_connect(server.port) as s:
        s.sendall(post_head("/v2/models/add_sub/infer", "Expect: 100-continue\r\n", len(ADD_SUB_BYTES)))
        s.settimeout(timeout(5))
        interim = s.recv(25)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        # Consume the rest of the interim response up to its blank line.
        while not interim.endswith(b"\r\n\r\n"):
            interim += s.recv(1)
        s.sendall(ADD_SUB_BYTES)
        status, headers, body = read_http_response(s)
    assert status == 200, body
    assert sum_of(body) == [11, 22, 33, 44]


def test_byte_by_byte_request(server):
    """The request arrives one byte per write: the parser handles every split point."""
    req = post_head("/v2/models/add_sub/infer", length=len(ADD_SUB_BYTES)) + ADD_SUB_BYTES
    with raw_connect(server.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
        status, headers, body = read_http_response(s)
    assert status == 200, body
    assert sum_of(body) == [11, 22, 33, 44]


def test_header_names_case_insensitive(server):
    req = (b"POST /v2/models/add_sub/infer HTTP/1.1\r\nhost: inferd\r\ncontent-type: application/json\r\n"
           + f"CONTENT-LENGTH: {len(ADD_SUB_BYTES)}\r\nx-request-id: lower-case-rid\r\n\r\n".encode()
           + ADD_SUB_BYTES)
    status, headers, body = raw_request(server.port, req)
    assert status == 200, body
    assert headers.get("x-request-id") == "lower-case-rid"
    assert sum_of(body) == [11, 22, 33, 44]


def test_binary_header_case_insensitive(server):
    body, hdrs = build_request([
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": np.ones((1, 4), np.float32), "binary": True},
        {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [[1, 1, 1, 1]]}])
    r = server.infer("add_sub", body, headers={"content-type": "Application/Octet-Stream",
                                               "inference-header-content-length": hdrs["Inference-Header-Content-Length"]})
    assert r.status_code == 200, r.content
    assert sum_of(r.content) == [2, 2, 2, 2]


@pytest.mark.parametrize("path", ["/v2/health/live?probe=1", "/v2?x=y&z", "/v2/models/add_sub?verbose=true"])
def test_query_string_ignored_for_routing(server, path):
    r = server.get(path)
    assert r.status_code == 200, (path, r.content)


def test_infer_with_query_string(server):
    r = server.post("/v2/models/add_sub/infer?trace=1", data=ADD_SUB_BYTES,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.content
    assert sum_of(r.content) == [11, 22, 33, 44]


# ---- connection reuse and framing errors ---------------------------------------------------------


def test_keepalive_survives_errors(server):
    """Errors answered on a keep-alive connection leave it usable (same socket, in order)."""
    bad = b"{oops"
    with raw_connect(server.port) as s:
        s.sendall(post_head("/v2/models/add_sub/infer", length=len(bad)) + bad)
        status, headers, body = read_http_response(s)
        assert status == 400
        s.sendall(b"GET /v2/models/nope HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_http_response(s)
        assert status == 404
        s.sendall(post_head("/v2/models/add_sub/infer", length=len(ADD_SUB_BYTES)) + ADD_SUB_BYTES)
        status, headers, body = read_http_response(s)
        assert status == 200
        assert sum_of(body) == [11, 22, 33, 44]


def test_connection_close_honoured(server):
    with raw_connect(server.port) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_http_response(s)
        assert status == 200
        s.settimeout(timeout(5))
        assert s.recv(1) == b"", "server kept the connection open after Connection: close"


@pytest.mark.parametrize("extra", [
    "Content-Length: 10\r\nContent-Length: 20\r\n",
    "Content-Length: 10, 20\r\n",
    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip\r\n",
    "Content-Length: +5\r\n",
], ids=["two-lengths", "length-list", "length-and-chunked", "te-gzip", "plus-length"])
def test_ambiguous_framing_rejected(server, extra):
    """Request-smuggling shapes: refused with a 4xx (or the connection closed), never served."""
    req = post_head("/v2/models/add_sub/infer", extra) + b"0\r\n\r\n" + b"x" * 30
    with raw_connect(server.port) as s:
        s.sendall(req)
        try:
            status, headers, body = read_http_response(s, seconds=timeout(10))
        except ConnectionError:
            status = None
        if status is not None:
            assert 400 <= status < 500, (status, body[:200])
            assert isinstance(json.loads(body).get("error"), str)
    assert server.get("/v2/health/live").status_code == 200


def test_request_without_body_length_on_post(server):
    """POST with neither Content-Length nor chunked: an empty body, so a 400 (or 411), quickly."""
    req = b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n"
    status, headers, body = raw_request(server.port, req, seconds=timeout(10))
    assert status in (400, 411), (status, body)
    assert isinstance(json.loads(body).get("error"), str)


def test_many_idle_connections(server):
    n = 50 if SANITIZED else 300
    socks = []
    try:
        for _ in range(n):
            socks.append(raw_connect(server.port))
        r = requests.get(server.url("/v2/health/live"), timeout=timeout(10))
        assert r.status_code == 200
        # Every one of them is served too.
        for s in socks[:: max(1, n // 20)]:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_http_response(s)
            assert status == 200
    finally:
        for s in socks:
            s.close()


# ---- the event loop does not wait for inferences --------------------------------------------------


def test_event_loop_not_blocked_by_inference(server_factory, test_models_dir):
    """DESIGN.md: a frontend hands a request to the core and returns to its event loop. With one
    HTTP thread, liveness answers while slow inferences run."""
    srv = server_factory(test_models_dir, args=["--http-threads", "1"])
    t0 = time.monotonic()
    infer_ok(srv, "slow", [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}])
    one = time.monotonic() - t0
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}]}).encode()
    req = post_head("/v2/models/slow/infer", length=len(body)) + body
    socks = []
    for _ in range(3):
        s = raw_connect(srv.port)
        s.sendall(req)
        socks.append(s)
    try:
        lat = []
        for _ in range(5):
            t = time.monotonic()
            assert requests.get(srv.url("/v2/health/live"), timeout=timeout(30)).status_code == 200
            lat.append(time.monotonic() - t)
        # Three slow requests take >= 3 * one; a blocked loop would make a probe wait about that long.
        assert max(lat) < max(one * 0.5, 0.05 * (3 if SANITIZED else 1)), (lat, one)
        for s in socks:
            status, _, rbody = read_http_response(s, seconds=timeout(60))
            assert status == 200
            assert json.loads(rbody)["outputs"][0]["data"] == [2.0]
    finally:
        for s in socks:
            s.close()


def test_other_models_not_blocked_by_slow_model(server_factory, test_models_dir):
    """Each model has its own queue: add_sub answers while slow requests are queued."""
    srv = server_factory(test_models_dir)
    t0 = time.monotonic()
    infer_ok(srv, "slow", [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}])
    one = time.monotonic() - t0
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}]}).encode()
    req = post_head("/v2/models/slow/infer", length=len(body)) + body
    socks = []
    for _ in range(6):
        s = raw_connect(srv.port)
        s.sendall(req)
        socks.append(s)
    try:
        t = time.monotonic()
        _, outs, _ = infer_ok(srv, "add_sub", [
            {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
            {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}])
        fast = time.monotonic() - t
        assert outs["sum"]["value"] == [2, 3, 4, 5]
        assert fast < 2 * one, f"add_sub took {fast:.2f}s behind 6 slow requests of {one:.2f}s each"
        for s in socks:
            status, _, _ = read_http_response(s, seconds=timeout(60))
            assert status == 200
    finally:
        for s in socks:
            s.close()


def test_headers_up_to_64k_accepted(server):
    req = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 60000 + b"\r\n\r\n"
    status, headers, body = raw_request(server.port, req)
    assert status == 200, body[:200]


@pytest.mark.parametrize("where", ["header", "request-line"])
def test_headers_over_64k_refused_with_400(server, where):
    """docs/http-api.md: the request line and headers may take at most 64 KiB, else 400."""
    if where == "header":
        req = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 70000 + b"\r\n\r\n"
    else:
        req = b"GET /v2/health/live?" + b"q" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    with raw_connect(server.port) as s:
        try:
            s.sendall(req)
        except OSError:
            pass  # the server may answer and close before reading everything
        status, headers, body = read_http_response(s, seconds=timeout(10))
    assert status == 400, (status, body[:200])
    assert isinstance(json.loads(body).get("error"), str)


# ---- framing errors close the connection (issue 9, defect 3) ------------------------------------

NEXT_REQUEST = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"


def answer_then_eof(port, req, seconds=5):
    """Sends req, reads one answer, then checks that nothing more comes and the server closes.
    Returns (status, body, what came after: b'' when the connection closed)."""
    with raw_connect(port) as s:
        s.sendall(req)
        status, headers, body = read_http_response(s, seconds=timeout(seconds))
        s.settimeout(timeout(seconds))
        try:
            after = s.recv(65536)
        except socket.timeout:
            after = b"<still open>"
        except ConnectionResetError:
            after = b""
        return status, headers, body, after


@pytest.mark.parametrize("head, body", [
    ("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", b"0\r\n\r\n"),
    ("Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"),
    ("Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    ("Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
    ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    ("Content-Length: +5\r\n", b"{}   "),
    ("Content-Length: 5\r\nContent-Length: 5\r\n", b"{}   "),
    ("Content-Length: 5 \r\nX-Fold: a\r\n b\r\n", b"{}   "),
    ("Transfer-Encoding: chunked\r\n", b"0\r\nNoColonTrailer\r\n\r\n"),
    ("Transfer-Encoding: chunked\r\n", b"2\r\n{}XX\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked\r\n", b"2;bad ext\r\n{}\r\n0\r\n\r\n"),
], ids=["te-chunked-then-identity", "te-list", "te-identity-then-chunked", "te-gzip-chunked", "te-twice",
        "cl-and-te", "cl-plus", "cl-twice", "obs-fold", "trailer-without-colon", "chunk-overrun", "bad-chunk-ext"])
def test_framing_error_answers_400_and_closes(server, head, body):
    """After a framing error nothing says where the next request starts: 400, then close. The
    GET sent right behind must never be answered (request smuggling)."""
    req = post_head("/v2/models/add_sub/infer", head) + body + NEXT_REQUEST
    status, headers, rbody, after = answer_then_eof(server.port, req)
    assert status == 400, (status, rbody)
    assert isinstance(json.loads(rbody)["error"], str)
    assert headers.get("connection") == "close"
    assert after == b"", f"the connection stayed open or served the next bytes: {after[:200]!r}"


@pytest.mark.parametrize("req", [
    b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\nX-A: 1\r\n\r\n",
], ids=["two-hosts", "two-hosts-same-value", "no-host-on-1.1"])
def test_host_must_be_one(server, req):
    """RFC 9112 3.2: an HTTP/1.1 request has exactly one Host header, else 400."""
    status, headers, body, after = answer_then_eof(server.port, req + NEXT_REQUEST)
    assert status == 400, (status, body)
    assert "Host" in json.loads(body)["error"]
    assert after == b""


def test_bare_lf_request_answered_at_once(server):
    """Lines ending in a bare LF are read as RFC 9112 2.2 allows (as nginx does): answered at
    once, never left to a timeout."""
    t0 = time.monotonic()
    with raw_connect(server.port) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\nHost: x\n\n")
        status, headers, body = read_http_response(s, seconds=timeout(3))
        assert status == 200, body
        assert json.loads(body) == {"live": True}
        # a keep-alive connection: the next request (mixed line ends) is served too
        s.sendall(post_head("/v2/models/add_sub/infer", length=len(ADD_SUB_BYTES)).replace(b"\r\n", b"\n")
                  + ADD_SUB_BYTES)
        status, headers, body = read_http_response(s, seconds=timeout(3))
        assert status == 200, body
        assert sum_of(body) == [11, 22, 33, 44]
    assert time.monotonic() - t0 < timeout(3)


def test_bare_cr_refused(server):
    status, headers, body, after = answer_then_eof(
        server.port, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n")
    assert status == 400, body
    assert after == b""


def test_chunked_bare_lf_body(server):
    body = ADD_SUB_BYTES
    chunks = f"{len(body):x}\n".encode() + body + b"\n0\n\n"
    req = post_head("/v2/models/add_sub/infer", "Transfer-Encoding: chunked\r\n") + chunks
    status, headers, resp = raw_request(server.port, req, seconds=timeout(3))
    assert status == 200, resp
    assert sum_of(resp) == [11, 22, 33, 44]
