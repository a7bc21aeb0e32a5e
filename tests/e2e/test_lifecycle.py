"""Startup configuration, a model that fails to load, and shutdown (SIGTERM/SIGINT drain)."""

import json
import math
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import (INFERD_BIN, SANITIZED, Server, assert_error, free_port, infer_ok, raw_connect,
                      read_http_response, timeout, wait_models_settled, wait_until)


# ---- a repository with a broken model -------------------------------------------------------


@pytest.fixture(scope="module")
def broken_server(broken_models_dir, logs_dir):
    srv = Server(broken_models_dir, workdir=logs_dir)
    srv.start(wait_ready=False)
    try:
        wait_models_settled(srv)
        yield srv
    finally:
        if srv.alive():
            srv.stop()
    srv.check_clean_exit()


def test_broken_server_is_live(broken_server):
    r = broken_server.get("/v2/health/live")
    assert r.status_code == 200
    assert r.json() == {"live": True}


def test_broken_server_not_ready(broken_server):
    r = broken_server.get("/v2/health/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False
    assert isinstance(body.get("error"), str) and body["error"].strip()


def test_broken_health_document(broken_server):
    r = broken_server.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not_ready"
    assert body["live"] is True
    assert body["ready"] is False
    # A top-level reason says why the server is not ready.
    assert isinstance(body.get("reason"), str) and "broken" in body["reason"], body.get("reason")
    models = {(m["name"], str(m["version"])): m for m in body["models"]}
    broken = models.get(("broken", "1"))
    assert broken is not None, f"broken/1 not listed: {sorted(models)}"
    assert broken["state"] == "UNAVAILABLE"
    assert isinstance(broken["reason"], str) and broken["reason"].strip(), broken
    for key in [("add_sub", "1"), ("identity_all", "1"), ("zipmap", "1"), ("versioned", "3")]:
        assert models[key]["state"] == "READY", models[key]


@pytest.mark.parametrize("path", ["/v2/models/broken/ready", "/v2/models/broken/versions/1/ready"])
def test_broken_model_ready_503_with_reason(broken_server, path):
    r = broken_server.get(path)
    assert r.status_code == 503
    body = r.json()
    assert body["name"] == "broken"
    assert body["ready"] is False
    assert isinstance(body.get("error"), str) and body["error"].strip()


def test_broken_model_reason_matches_health(broken_server):
    health = broken_server.get("/health").json()
    reason = [m for m in health["models"] if m["name"] == "broken"][0]["reason"]
    err = broken_server.get("/v2/models/broken/versions/1/ready").json()["error"]
    assert reason in err or err in reason, (reason, err)


@pytest.mark.parametrize("version", [None, "1"])
def test_broken_model_infer_503(broken_server, version):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    assert_error(broken_server.infer("broken", body, version=version), 503)


def test_broken_model_metadata(broken_server):
    r = broken_server.get("/v2/models/broken")
    assert r.status_code in (200, 503), r.content
    body = r.json()
    if r.status_code == 200:
        assert body["name"] == "broken"
    else:
        assert isinstance(body.get("error"), str) and body["error"]


def test_other_models_still_serve(broken_server):
    _, outs, _ = infer_ok(broken_server, "add_sub", [
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
        {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}])
    assert outs["sum"]["value"] == [2, 3, 4, 5]
    assert broken_server.get("/v2/models/add_sub/ready").status_code == 200


# ---- configuration from the environment --------------------------------------------------------


def test_env_configuration(server_factory, test_models_dir):
    srv = server_factory(test_models_dir, use_env_config=True, env={"INFERD_MAX_BODY_BYTES": "1024"})
    assert srv.get("/v2/health/ready").status_code == 200
    small = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                        {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    r = srv.infer("add_sub", small)
    assert r.status_code == 200, r.content
    big = dict(small, id="x" * 2000)
    assert_error(srv.infer("add_sub", big), 413)


def test_max_body_bytes_flag(server_factory, test_models_dir):
    srv = server_factory(test_models_dir, args=["--max-body-bytes", "512"])
    body = json.dumps({"id": "y" * 600, "inputs": []}).encode()
    assert_error(srv.infer("add_sub", body, headers={"Content-Type": "application/json"}), 413)


# ---- shutdown ------------------------------------------------------------------------------------

SLOW_BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [7.5]}]}).encode()
SLOW_REQUEST = (b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: inferd\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(SLOW_BODY)}\r\n\r\n".encode() + SLOW_BODY)


def send_slow_requests(srv, n):
    """Opens n connections, each with a whole slow request sent; returns the sockets. Then makes
    sure the server has taken them in: with one HTTP thread, a probe on a new connection is only
    answered after the event loop has read the requests that arrived before it."""
    socks = []
    for _ in range(n):
        s = raw_connect(srv.port)
        s.sendall(SLOW_REQUEST)
        socks.append(s)
    for _ in range(3):
        assert srv.get("/v2/health/live", headers={"Connection": "close"}).status_code == 200
    srv.session.close()  # no idle keep-alive connections of ours left open
    return socks


def new_connection_refused(srv):
    """True when a new connection gets no service: refused, reset or closed unanswered, or a 503."""
    try:
        s = socket.create_connection((srv.host, srv.port), timeout=timeout(2))
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except socket.timeout:
        return False
    try:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, _ = read_http_response(s, seconds=timeout(2))
        return status == 503
    except (ConnectionError, OSError):
        return True
    finally:
        s.close()


def slow_latency(srv):
    t0 = time.monotonic()
    _, outs, _ = infer_ok(srv, "slow", [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}])
    assert outs["y"]["value"] == [1.0]
    return time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_and_exits_0(server_factory, test_models_dir, sig):
    srv = server_factory(test_models_dir, args=["--http-threads", "1", "--drain-timeout-ms", "60000"])
    slow_latency(srv)  # warm up
    socks = send_slow_requests(srv, 3)
    srv.send_signal(sig)
    # New connections are refused while the requests in flight are being answered.
    wait_until(lambda: new_connection_refused(srv), timeout(5), interval=0.01,
               what="new connections refused after the signal")
    alive_when_refused = srv.alive()
    statuses = []
    for s in socks:
        status, headers, body = read_http_response(s, seconds=timeout(60))
        s.close()
        statuses.append(status)
        assert status == 200, (status, body[:300])
        out = {o["name"]: o for o in json.loads(body)["outputs"]}
        assert out["y"]["data"] == [7.5]
    rc = srv.wait_exit(timeout(60))
    assert rc == 0, srv.stderr()[-3000:]
    srv.check_sanitizers()
    assert alive_when_refused, "the server had already exited before refusing connections (no drain seen)"


def test_idle_server_exits_promptly(server_factory, test_models_dir):
    srv = server_factory(test_models_dir, args=["--drain-timeout-ms", "60000"])
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(timeout(10)) == 0
    assert time.monotonic() - t0 < timeout(5)


def test_idle_keepalive_connection_does_not_hold_shutdown(server_factory, test_models_dir):
    srv = server_factory(test_models_dir, args=["--drain-timeout-ms", "60000"])
    keep = raw_connect(srv.port)
    keep.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = read_http_response(keep)
    assert status == 200
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    try:
        assert srv.wait_exit(timeout(10)) == 0
        assert time.monotonic() - t0 < timeout(5), "an idle keep-alive connection delayed shutdown"
    finally:
        keep.close()


def test_drain_timeout_bounds_shutdown(server_factory, test_models_dir):
    drain_ms = 300
    srv = server_factory(test_models_dir, args=["--http-threads", "1", "--drain-timeout-ms", str(drain_ms)])
    one = min(slow_latency(srv), slow_latency(srv))
    # the drain timeout, then the run under way at that moment (a Run is not interrupted; on a
    # loaded machine it can take twice what it took a moment before), then the exit itself
    bound = drain_ms / 1000 + 2 * one + (4.0 if SANITIZED else 1.5)
    n = min(60, max(4, math.ceil(2.5 * bound / one) + 1))  # queued work well beyond the bound
    socks = send_slow_requests(srv, n)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait_exit(timeout(60))
    elapsed = time.monotonic() - t0
    # Every request got an answer: 200 if it ran in time, else 503 (still queued at the deadline).
    # The one running at the deadline may be cut off with the connection.
    statuses = []
    for s in socks:
        try:
            status, _, body = read_http_response(s, seconds=timeout(10))
            if status == 503:
                assert isinstance(json.loads(body).get("error"), str), body
            statuses.append(status)
        except (ConnectionError, OSError):
            statuses.append(None)
        s.close()
    assert rc == 0, srv.stderr()[-3000:]
    assert elapsed < bound, (f"exit took {elapsed:.2f}s with --drain-timeout-ms {drain_ms} "
                             f"({n} queued requests of ~{one:.2f}s)")
    assert set(statuses) <= {200, 503, None}, statuses
    assert statuses.count(503) >= 1, statuses
    assert statuses.count(None) <= 2, f"requests dropped without an answer: {statuses}"
    srv.check_sanitizers()


def test_ready_stays_up_until_signal(server_factory, test_models_dir):
    """Readiness is 200 before the signal; afterwards the port stops serving and the process
    exits 0."""
    srv = server_factory(test_models_dir)
    assert srv.get("/v2/health/ready").status_code == 200
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(timeout(15)) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url("/v2/health/live"), timeout=timeout(2))


def test_readiness_503_while_draining(server_factory, test_models_dir):
    """While draining, readiness is 503. New connections are refused then, so the probe goes over
    a keep-alive connection opened before the signal (if the server closes that idle connection
    instead of answering, there is nothing to check on it)."""
    srv = server_factory(test_models_dir, args=["--http-threads", "1", "--drain-timeout-ms", "60000"])
    slow_latency(srv)
    keep = raw_connect(srv.port)
    keep.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = read_http_response(keep)
    assert status == 200
    socks = send_slow_requests(srv, 4)
    srv.send_signal(signal.SIGTERM)
    wait_until(lambda: new_connection_refused(srv), timeout(5), interval=0.01, what="draining")
    answered = None
    try:
        keep.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = read_http_response(keep, seconds=timeout(10))
    except (ConnectionError, OSError):
        pass
    finally:
        keep.close()
    print(f"readiness while draining: {answered[0] if answered else 'connection closed'}")
    if answered is not None:
        status, _, body = answered
        assert status == 503, (status, body)
        assert json.loads(body)["ready"] is False
    for s in socks:
        status, _, _ = read_http_response(s, seconds=timeout(60))
        assert status == 200
        s.close()
    assert srv.wait_exit(timeout(60)) == 0


def run_cli(args, seconds=10):
    import subprocess
    from conftest import INFERD_BIN
    try:
        return subprocess.run([INFERD_BIN] + args, capture_output=True, text=True, timeout=timeout(seconds))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"inferd {' '.join(args)} did not exit within {timeout(seconds):.0f}s")


def test_nonexistent_repository_exits_nonzero(tmp_path):
    from conftest import free_port
    res = run_cli(["serve", "--model-repository", str(tmp_path / "does-not-exist"),
                   "--host", "127.0.0.1", "--http-port", str(free_port())])
    assert res.returncode != 0
    assert "does-not-exist" in res.stderr, res.stderr[-2000:]


def test_port_in_use_exits_nonzero(test_models_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = run_cli(["serve", "--model-repository", test_models_dir, "--host", "127.0.0.1",
                       "--http-port", str(port)])
    assert res.returncode != 0
    assert res.stderr.strip(), "no message on stderr"


@pytest.mark.parametrize("args", [["serve", "--no-such-flag"], ["serve", "--http-port", "notaport"],
                                  ["serve", "--http-port", "70000"], ["no-such-command"]])
def test_bad_command_line_exits_nonzero(test_models_dir, args):
    res = run_cli(args + (["--model-repository", test_models_dir] if args[0] == "serve" else []))
    assert res.returncode != 0
    assert res.stderr.strip(), "no message on stderr"


@pytest.mark.parametrize("which", ["http", "grpc"])
def test_a_port_another_server_holds_is_refused(server_factory, test_models_dir, which):
    """The HTTP loops share their port (SO_REUSEPORT) and gRPC core sets the option too: a second
    server on a port the first holds must fail to start naming it, not bind beside the first and
    silently take a share of its connections."""
    gport = free_port()
    first = server_factory(test_models_dir, args=["--grpc-port", str(gport)])
    http_port = first.port if which == "http" else free_port()
    grpc_port = gport if which == "grpc" else free_port()
    res = subprocess.run([INFERD_BIN, "serve", "--model-repository", test_models_dir, "--host", "127.0.0.1",
                          "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
                         capture_output=True, text=True, timeout=timeout(60))
    assert res.returncode == 1, res.stderr[-2000:]
    taken = http_port if which == "http" else grpc_port
    assert f":{taken}" in res.stderr and ("in use" in res.stderr or "cannot listen" in res.stderr), res.stderr[-2000:]
    assert first.get("/v2/health/ready").status_code == 200
