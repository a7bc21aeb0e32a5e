"""Authentication and scopes (issue 12 items 1, 2, 6, 7): an attack suite over REST and gRPC.

Every credential a client can get wrong (missing, malformed, wrong, revoked, expired, a key for
another model, an infer key on admin and read routes) is sent to every protocol that takes it;
each must be refused with the right status (401 + WWW-Authenticate / UNAUTHENTICATED, 403 naming
the scope / PERMISSION_DENIED) and never echo the credential: 0 bypasses. Health probes stay
open. The key file is managed with the real `inferd keys` CLI; a revocation takes effect within
a second while the server runs, SIGHUP reloads without dropping a keep-alive connection, and a
broken file keeps the previous keys in force. CORS, the docs pages' security headers, the
access log's principal and the start-up warning are here too.
"""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import grpc
import numpy as np
import pytest
import requests

import test_serve_pipeline as sp
from conftest import INFERD_BIN, SANITIZED, free_port, raw_connect, read_http_response, timeout, wait_until
from grpc_stubs import grpc_server_factory, hpb, infer_request, mspb, pb  # noqa: F401

T = timeout(30)
KEY_RE = re.compile(r"^ifd_[0-9a-f]{16}_[0-9a-f]{64}$")


# --- the key file, through the CLI ---------------------------------------------------------------

def keys_cli(*args, check=True):
    env = dict(os.environ)
    if SANITIZED:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    res = subprocess.run([INFERD_BIN, "keys", *args], capture_output=True, text=True, timeout=T, env=env)
    if check:
        assert res.returncode == 0, f"inferd keys {args}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def create_key(path, name, scopes, *extra):
    res = keys_cli("create", "--file", path, "--name", name, "--scopes", scopes, *extra)
    key = res.stdout.strip()
    assert KEY_RE.match(key), f"create printed {res.stdout!r}"
    assert res.stdout.count("\n") == 1, "the key is the only thing on stdout"
    return key


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sec_repo"))
    for name in ("u8", "u8other"):
        os.makedirs(os.path.join(root, name, "1"))
        with open(os.path.join(root, name, "1", "model.onnx"), "wb") as f:
            f.write(sp._u8_model().SerializeToString())
        with open(os.path.join(root, name, "config.json"), "w") as f:
            json.dump({"max_batch_size": 8, "application": sp.U8_APP}, f)
    return root


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("sec_keys"))
    path = os.path.join(d, "keys.json")
    k = {
        "infer": create_key(path, "svc-u8", "infer:u8"),
        "reader": create_key(path, "dash", "read"),
        "admin": create_key(path, "ops", "admin"),
        "all": create_key(path, "root", "*"),
        "wild": create_key(path, "svc-all", "infer:*,read", "--rate", "50/s", "--concurrency", "4"),
        "other": create_key(path, "svc-other", "infer:u8other"),
        "revoked": create_key(path, "gone", "infer:*,read,admin"),
    }
    keys_cli("revoke", "--file", path, "--name", "gone")
    # an expired key: the CLI makes keys that expire in the future, so write one that already has
    k["expired"] = create_key(path, "old", "infer:*,read,admin", "--expires", "1h")
    with open(path) as f:
        doc = json.load(f)
    for e in doc["keys"]:
        if e["name"] == "old":
            e["expires"] = "2020-01-01T00:00:00Z"
    with open(path, "w") as f:
        json.dump(doc, f)
    k["path"] = path
    return k


@pytest.fixture(scope="module")
def g(repo, keys, logs_dir):
    from grpc_stubs import running_grpc_server
    with running_grpc_server(repo, logs_dir, args=["--api-keys", keys["path"], "--default-model", "u8"]) as gs:
        yield gs


def wrong_secret(key):
    """The same id, another secret: well-formed, and wrong."""
    last = "0" if key[-1] != "0" else "1"
    return key[:-1] + last


# --- credentials as each protocol carries them ------------------------------------------------------

def http_headers(cred):
    """cred: None, ("bearer", x), ("x-api-key", x), ("raw-authorization", value), or a list of them."""
    h = {}
    for kind, value in ([] if cred is None else cred if isinstance(cred, list) else [cred]):
        if kind == "bearer":
            h["Authorization"] = f"Bearer {value}"
        elif kind == "raw-authorization":
            h["Authorization"] = value
        else:
            h["X-API-Key"] = value
    return h


def grpc_md(cred):
    return [(k.lower(), v) for k, v in http_headers(cred).items()]


def v2_rest(g, model, cred):
    body = {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 1], "data": [7]}]}
    r = g.srv.post(f"/v2/models/{model}/infer", json=body, headers=http_headers(cred), timeout=T)
    return "http", r


def v1_predict(g, model, cred):
    r = g.srv.post(f"/v1/models/{model}/predict", json={"inputs": [{"a": 7}]}, headers=http_headers(cred), timeout=T)
    return "http", r


def tf_predict(g, model, cred):
    r = g.srv.post(f"/v1/models/{model}:predict", json={"instances": [[7]]}, headers=http_headers(cred), timeout=T)
    return "http", r


def mlflow(g, model, cred):
    # /invocations names no model: it serves --default-model (u8); for u8other there is no such route
    assert model == "u8"
    r = g.srv.post("/invocations", json={"inputs": {"x": [[7]]}}, headers=http_headers(cred), timeout=T)
    return "http", r


def grpc_infer(g, model, cred):
    req = infer_request(model, [("x", "UINT8", np.array([[7]], np.uint8))])
    try:
        g.infer.ModelInfer(req, metadata=grpc_md(cred), timeout=T)
        return "grpc", (grpc.StatusCode.OK, "")
    except grpc.RpcError as e:
        return "grpc", (e.code(), e.details() or "")


def grpc_stream(g, model, cred):
    req = infer_request(model, [("x", "UINT8", np.array([[7]], np.uint8))])
    try:
        replies = list(g.infer.ModelStreamInfer(iter([req]), metadata=grpc_md(cred), timeout=T))
    except grpc.RpcError as e:  # refused at the call's arrival: the stream's status
        return "grpc", (e.code(), e.details() or "")
    assert len(replies) == 1
    msg = replies[0].error_message
    if not msg:
        return "grpc", (grpc.StatusCode.OK, "")
    # refused per request by the admit stage: the stream goes on, the reply carries the error
    code = grpc.StatusCode.PERMISSION_DENIED if "lacks the scope" in msg else grpc.StatusCode.UNAUTHENTICATED
    return "grpc", (code, msg)


def model_service(g, model, cred):
    r = mspb.Record()
    r.features["a"].CopyFrom(mspb.Value(int_value=7))
    try:
        g.app.Predict(mspb.PredictRequest(model=model, record=r), metadata=grpc_md(cred), timeout=T)
        return "grpc", (grpc.StatusCode.OK, "")
    except grpc.RpcError as e:
        return "grpc", (e.code(), e.details() or "")


def batch_predict(g, model, cred):
    r = mspb.Record()
    r.features["a"].CopyFrom(mspb.Value(int_value=7))
    try:
        g.app.BatchPredict(mspb.BatchPredictRequest(model=model, records=[r, r]), metadata=grpc_md(cred), timeout=T)
        return "grpc", (grpc.StatusCode.OK, "")
    except grpc.RpcError as e:
        return "grpc", (e.code(), e.details() or "")


def stream_predict(g, model, cred):
    r = mspb.Record()
    r.features["a"].CopyFrom(mspb.Value(int_value=7))
    try:
        got = list(g.app.StreamPredict(iter([mspb.PredictRequest(model=model, record=r)]), metadata=grpc_md(cred),
                                       timeout=T))
    except grpc.RpcError as e:
        return "grpc", (e.code(), e.details() or "")
    assert len(got) == 1
    if not got[0].error:
        return "grpc", (grpc.StatusCode.OK, "")
    code = grpc.StatusCode.PERMISSION_DENIED if "lacks the scope" in got[0].error else grpc.StatusCode.UNAUTHENTICATED
    return "grpc", (code, got[0].error)


INFER_CALLERS = [v2_rest, v1_predict, tf_predict, mlflow, grpc_infer, grpc_stream, model_service, batch_predict,
                 stream_predict]


class Tally:
    """Counts every attack and every bypass (a refusal that did not happen, or the wrong one)."""

    def __init__(self):
        self.cases, self.bypasses = 0, []

    def check(self, label, kind, res, status, secrets=()):
        self.cases += 1
        if kind == "http":
            got = res.status_code
            text = res.text
            ok = got == status
            if ok and status == 401:
                www = res.headers.get("WWW-Authenticate", "")
                ok = www.startswith('Bearer realm="inferd"')
            if ok and status >= 400:
                try:
                    ok = isinstance(res.json().get("error"), str)
                except ValueError:
                    ok = False
        else:
            code, text = res
            want = {200: grpc.StatusCode.OK, 401: grpc.StatusCode.UNAUTHENTICATED,
                    403: grpc.StatusCode.PERMISSION_DENIED}[status]
            got = code
            ok = code == want
        leaked = [s for s in secrets if s and s in text]
        if not ok or leaked:
            self.bypasses.append(f"{label}: expected {status}, got {got} {text[:200]!r}" +
                                 (" (echoed the credential)" if leaked else ""))

    def assert_none(self):
        assert self.cases > 0
        assert not self.bypasses, f"{len(self.bypasses)} of {self.cases} cases wrong:\n" + "\n".join(self.bypasses)


def bad_credentials(keys):
    """(label, credential, expected status) for every way a credential can be wrong."""
    k = keys["infer"]
    return [
        ("missing", None, 401),
        ("empty bearer", ("raw-authorization", "Bearer "), 401),
        ("basic scheme", ("raw-authorization", "Basic dXNlcjpwYXNz"), 401),
        ("garbage bearer", ("bearer", "not-a-key"), 401),
        ("garbage x-api-key", ("x-api-key", "not-a-key"), 401),
        ("truncated key", ("bearer", k[:-1]), 401),
        ("key plus junk", ("bearer", k + "0"), 401),
        ("upper-case key", ("bearer", k.upper()), 401),
        ("wrong secret", ("bearer", wrong_secret(k)), 401),
        ("wrong secret x-api-key", ("x-api-key", wrong_secret(k)), 401),
        ("unknown id", ("x-api-key", "ifd_0123456789abcdef_" + "ab" * 32), 401),
        ("revoked", ("bearer", keys["revoked"]), 401),
        ("revoked x-api-key", ("x-api-key", keys["revoked"]), 401),
        ("expired", ("bearer", keys["expired"]), 401),
        ("a JWT with JWT off", ("bearer", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), 401),
        ("two different credentials", [("bearer", keys["all"]), ("x-api-key", keys["revoked"])], 401),
        ("read key infers", ("x-api-key", keys["reader"]), 403),
        ("admin key infers", ("x-api-key", keys["admin"]), 403),
    ]


def secrets_of(cred):
    """The credential parts a reply must never quote (a raw header's scheme is no secret)."""
    out = []
    for kind, v in ([] if cred is None else cred if isinstance(cred, list) else [cred]):
        if kind == "raw-authorization":
            v = v.partition(" ")[2].strip()
        if len(v) >= 8:
            out.append(v)
    return out


# --- the attack suite -------------------------------------------------------------------------------

def test_every_bad_credential_is_refused_on_every_protocol(g, keys):
    t = Tally()
    for label, cred, status in bad_credentials(keys):
        for caller in INFER_CALLERS:
            kind, res = caller(g, "u8", cred)
            t.check(f"{caller.__name__} / {label}", kind, res, status, secrets_of(cred))
    t.assert_none()
    # and the right key is served on every one of them (the refusals were not for another reason)
    for cred in (("bearer", keys["infer"]), ("x-api-key", keys["infer"]), ("bearer", keys["wild"])):
        for caller in INFER_CALLERS:
            kind, res = caller(g, "u8", cred)
            t.check(f"{caller.__name__} / good", kind, res, 200)
    t.assert_none()


def test_a_key_for_one_model_cannot_infer_another(g, keys):
    t = Tally()
    for caller in [c for c in INFER_CALLERS if c is not mlflow]:
        kind, res = caller(g, "u8other", ("bearer", keys["infer"]))
        t.check(f"{caller.__name__} / u8other", kind, res, 403)
        text = res.text if kind == "http" else res[1]
        assert "infer:u8other" in text, text
        kind, res = caller(g, "u8other", ("bearer", keys["wild"]))
        t.check(f"{caller.__name__} / infer:* on u8other", kind, res, 200)
        kind, res = caller(g, "u8other", ("bearer", keys["other"]))
        t.check(f"{caller.__name__} / infer:u8other on u8other", kind, res, 200)
    # /invocations names its model nowhere in the path (--default-model u8): only the admit
    # stage, which sees the model, can refuse a key for another model
    kind, res = mlflow(g, "u8", ("x-api-key", keys["other"]))
    t.check("mlflow / infer:u8other on the default model u8", kind, res, 403)
    assert "infer:u8" in res.text, res.text
    t.assert_none()


def test_401_carries_the_challenge_and_403_names_the_scope(g, keys):
    r = g.srv.post("/v2/models/u8/infer", json={})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="inferd"'
    r = g.srv.post("/v2/models/u8/infer", json={}, headers={"Authorization": "Bearer " + wrong_secret(keys["infer"])})
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="inferd", error="invalid_token"'
    assert "unknown API key" in r.json()["error"]
    r = g.srv.post("/v2/models/u8/infer", json={}, headers={"X-API-Key": keys["revoked"]})
    assert "revoked" in r.json()["error"] and keys["revoked"] not in r.text
    r = g.srv.post("/v2/models/u8/infer", json={}, headers={"X-API-Key": keys["expired"]})
    assert "expired" in r.json()["error"]
    r = g.srv.post("/v2/repository/index", json={}, headers={"X-API-Key": keys["infer"]})
    assert r.status_code == 403 and "'admin'" in r.json()["error"] and "svc-u8" in r.json()["error"]


ADMIN_ROUTES = [("POST", "/v2/repository/index", {}), ("POST", "/v2/repository/models/u8other/load", {}),
                ("POST", "/v2/repository/models/u8other/unload", {})]
READ_ROUTES = ["/v2", "/v2/models/u8", "/v2/models/u8/versions/1", "/v2/models/u8/ready", "/v2/models/stats",
               "/v2/models/u8/stats", "/v2/models/u8/config", "/v1/models", "/v1/models/u8", "/openapi.json",
               "/docs", "/redoc"]
OPEN_ROUTES = ["/v2/health/live", "/v2/health/ready", "/health", "/ping"]


def test_admin_routes_need_admin(g, keys):
    t = Tally()
    for method, path, body in ADMIN_ROUTES:
        for label, cred, status in [("none", None, 401), ("infer key", ("x-api-key", keys["infer"]), 403),
                                    ("infer:* key", ("bearer", keys["wild"]), 403),
                                    ("read key", ("bearer", keys["reader"]), 403),
                                    ("revoked admin", ("bearer", keys["revoked"]), 401)]:
            r = g.srv.request(method, path, json=body, headers=http_headers(cred))
            t.check(f"{method} {path} / {label}", "http", r, status, secrets_of(cred))
    for method, label in [("RepositoryIndex", "index"), ("RepositoryModelLoad", "load"),
                          ("RepositoryModelUnload", "unload")]:
        req = (pb.RepositoryIndexRequest() if method == "RepositoryIndex"
               else getattr(pb, f"{method}Request")(model_name="u8other"))
        for cred, status in [(None, 401), (("x-api-key", keys["infer"]), 403), (("bearer", keys["reader"]), 403)]:
            try:
                getattr(g.infer, method)(req, metadata=grpc_md(cred), timeout=T)
                res = (grpc.StatusCode.OK, "")
            except grpc.RpcError as e:
                res = (e.code(), e.details() or "")
            t.check(f"gRPC {method} / {cred and cred[0]}", "grpc", res, status)
    t.assert_none()
    # the admin key is let through (index changes nothing)
    r = g.srv.post("/v2/repository/index", json={}, headers={"X-API-Key": keys["admin"]})
    assert r.status_code == 200, r.text
    g.infer.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=grpc_md(("bearer", keys["admin"])), timeout=T)


def test_read_routes_need_read(g, keys):
    t = Tally()
    for path in READ_ROUTES:
        for label, cred, status in [("none", None, 401), ("infer key", ("x-api-key", keys["infer"]), 403),
                                    ("admin key", ("bearer", keys["admin"]), 403),
                                    ("wrong", ("bearer", wrong_secret(keys["reader"])), 401),
                                    ("read key", ("bearer", keys["reader"]), 200),
                                    ("infer:*,read key", ("x-api-key", keys["wild"]), 200)]:
            r = g.srv.get(path, headers=http_headers(cred))
            t.check(f"GET {path} / {label}", "http", r, status, secrets_of(cred))
    calls = [("ServerMetadata", pb.ServerMetadataRequest()), ("ModelMetadata", pb.ModelMetadataRequest(name="u8")),
             ("ModelReady", pb.ModelReadyRequest(name="u8")), ("ModelStatistics", pb.ModelStatisticsRequest(name="u8")),
             ("ModelConfig", pb.ModelConfigRequest(name="u8"))]
    for method, req in calls:
        for cred, status in [(None, 401), (("x-api-key", keys["infer"]), 403), (("bearer", keys["reader"]), 200)]:
            try:
                getattr(g.infer, method)(req, metadata=grpc_md(cred), timeout=T)
                res = (grpc.StatusCode.OK, "")
            except grpc.RpcError as e:
                res = (e.code(), e.details() or "")
            t.check(f"gRPC {method} / {cred and cred[0]}", "grpc", res, status)
    t.assert_none()


def test_unknown_paths_need_a_credential_first(g, keys):
    assert g.srv.get("/no/such/route").status_code == 401
    assert g.srv.get("/no/such/route", headers={"X-API-Key": keys["reader"]}).status_code == 404


def test_health_probes_stay_open(g):
    for path in OPEN_ROUTES:
        r = g.srv.get(path)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    assert g.infer.ServerLive(pb.ServerLiveRequest(), timeout=T).live
    assert g.infer.ServerReady(pb.ServerReadyRequest(), timeout=T).ready
    assert g.health.Check(hpb.HealthCheckRequest(service=""), timeout=T).status == hpb.HealthCheckResponse.SERVING


def test_access_log_names_the_principal_never_the_key(g, keys):
    rid = "sec-log-1"
    r = g.srv.post("/v2/models/u8/infer", headers={"X-API-Key": keys["infer"], "X-Request-ID": rid},
                   json={"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 1], "data": [7]}]})
    assert r.status_code == 200
    lines = wait_until(lambda: g.srv.access_lines(rid), timeout(10), what="access line")
    assert lines[0]["principal"] == "svc-u8"
    grpc_infer(g, "u8", ("bearer", keys["infer"]))
    wait_until(lambda: any(l.get("method") == "gRPC" and l.get("principal") == "svc-u8"
                           for l in g.srv.access_lines()), timeout(10), what="a gRPC access line with the principal")
    err = g.srv.stderr()
    for name in ("infer", "reader", "admin", "all", "wild", "revoked", "expired"):
        assert keys[name] not in err, f"the {name} key is in the server's log"
        assert keys[name][21:] not in err


# --- the key file while the server runs -----------------------------------------------------------

def _status(srv, key):
    return srv.get("/v1/models", headers={"X-API-Key": key}).status_code


def test_revocation_takes_effect_within_a_second(repo, keys, tmp_path, server_factory):
    path = str(tmp_path / "keys.json")
    key = create_key(path, "temp", "read")
    srv = server_factory(repo, args=["--api-keys", path])
    assert _status(srv, key) == 200
    # a keep-alive session keeps working up to the revocation, and is refused right after it
    t0 = time.monotonic()
    keys_cli("revoke", "--file", path, "--name", "temp")
    t_revoked = time.monotonic()
    while _status(srv, key) == 200:
        assert time.monotonic() - t_revoked < timeout(1.0), "a revoked key still works after a second"
        time.sleep(0.02)
    elapsed = time.monotonic() - t_revoked
    assert elapsed < timeout(1.0), elapsed
    assert _status(srv, key) == 401
    # a key created while the server runs works within a second too
    key2 = create_key(path, "temp2", "read")
    wait_until(lambda: _status(srv, key2) == 200, timeout(1.0), what="the new key accepted")
    assert t0 < t_revoked


def _kept_connection_get(sock, key):
    sock.sendall((f"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\r\n").encode())
    status, headers, body = read_http_response(sock)[:3]
    assert headers.get("connection", "").lower() != "close", "the server closed the keep-alive connection"
    return status, body


def test_revocation_stops_a_key_on_its_open_keep_alive_connection(repo, tmp_path, server_factory):
    """The connection remembers the key it verified last (docs/security.md): a revocation (the
    file rewritten, no SIGHUP) must still stop the key within a second on that same connection,
    and the key expiring must stop it at its time."""
    path = str(tmp_path / "keys.json")
    key = create_key(path, "kept", "read")
    brief = create_key(path, "brief-kept", "read", "--expires", "3s")
    srv = server_factory(repo, args=["--api-keys", path])
    sock = raw_connect(srv.port)
    try:
        for _ in range(20):  # the same key over and over: answered from the memo after the first
            assert _kept_connection_get(sock, key)[0] == 200
        keys_cli("revoke", "--file", path, "--name", "kept")
        t_revoked = time.monotonic()
        while True:
            status, body = _kept_connection_get(sock, key)
            if status != 200:
                break
            assert time.monotonic() - t_revoked < timeout(1.0), "a revoked key still works on its connection after a second"
            time.sleep(0.01)
        assert status == 401 and "revoked" in json.loads(body)["error"]
        assert time.monotonic() - t_revoked < timeout(1.0)
        assert _kept_connection_get(sock, key)[0] == 401
        # expiry on the same connection, the key answered from the memo until then
        with open(path) as f:
            expires = next(e["expires"] for e in json.load(f)["keys"] if e["name"] == "brief-kept")
        exp = time.mktime(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        while True:
            status, body = _kept_connection_get(sock, brief)
            if status != 200:
                break
            assert time.time() < exp + timeout(1.0), "an expired key still works on its connection"
            time.sleep(0.01)
        assert status == 401 and "expired" in json.loads(body)["error"]
        assert time.time() >= exp - 0.05, "the key stopped before its expiry"
    finally:
        sock.close()


def test_revocation_ends_an_open_grpc_stream(repo, tmp_path, grpc_server_factory):
    """A stream authenticated at its start is checked again on each message: after a
    revocation its next message ends it with UNAUTHENTICATED."""
    import queue
    path = str(tmp_path / "keys.json")
    key = create_key(path, "streamer", "infer:u8")
    g = grpc_server_factory(repo, args=["--api-keys", path])
    q = queue.Queue()

    def gen():
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    req = infer_request("u8", [("x", "UINT8", np.array([[7]], np.uint8))])
    it = g.infer.ModelStreamInfer(gen(), metadata=[("x-api-key", key)], timeout=T)
    q.put(req)
    assert next(it).error_message == ""
    keys_cli("revoke", "--file", path, "--name", "streamer")
    # the reload is seen within a second; until then a message may still be served
    deadline = time.monotonic() + timeout(1.0) + 0.3
    try:
        while True:
            q.put(req)
            r = next(it)
            assert r.error_message == "", r.error_message
            assert time.monotonic() < deadline, "the stream still serves a revoked key after a second"
            time.sleep(0.05)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
        assert "revoked" in e.details() and key not in e.details()
    finally:
        q.put(None)


def test_a_key_expiring_while_the_server_runs_stops_at_its_time(repo, tmp_path, server_factory):
    path = str(tmp_path / "keys.json")
    key = create_key(path, "brief", "read", "--expires", "2s")
    srv = server_factory(repo, args=["--api-keys", path])
    with open(path) as f:
        expires = json.load(f)["keys"][0]["expires"]
    exp = time.mktime(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    if time.time() < exp - 0.2:
        assert _status(srv, key) == 200
    wait_until(lambda: _status(srv, key) == 401, timeout(4), what="the key refused once expired")
    assert time.time() < exp + timeout(1.0), "the expired key worked more than a second past its expiry"
    r = srv.get("/v1/models", headers={"X-API-Key": key})
    assert "expired" in r.json()["error"]


def test_sighup_reloads_keys_on_a_kept_keep_alive_connection(repo, tmp_path, server_factory):
    path = str(tmp_path / "keys.json")
    old = create_key(path, "before", "read")
    srv = server_factory(repo, args=["--api-keys", path])
    sock = raw_connect(srv.port)
    try:
        def get(key):
            sock.sendall((f"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\r\n").encode())
            return read_http_response(sock)

        status, headers, _ = get(old)[:3]
        assert status == 200
        new = create_key(path, "after", "read")
        srv.send_signal(signal.SIGHUP)
        wait_until(lambda: any("SIGHUP: credentials reloaded" in (l.get("msg") or "") for l in srv.log_lines()),
                   timeout(5), what="the SIGHUP reload logged")
        assert get(new)[0] == 200, "the new key works after SIGHUP"
        assert get(old)[0] == 200, "the old key still works"
        keys_cli("revoke", "--file", path, "--name", "before")
        srv.send_signal(signal.SIGHUP)
        wait_until(lambda: get(old)[0] == 401, timeout(2), what="the revoked key refused")
        assert get(new)[0] == 200, "the same connection still serves"
    finally:
        sock.close()
    assert any("SIGHUP" in (l.get("msg") or "") and "credentials" in (l.get("msg") or "") for l in srv.log_lines())


def test_a_broken_key_file_keeps_the_previous_keys(repo, tmp_path, server_factory):
    path = str(tmp_path / "keys.json")
    key = create_key(path, "steady", "read")
    srv = server_factory(repo, args=["--api-keys", path])
    with open(path, "a") as f:
        f.write("{ not json")
    wait_until(lambda: any("not reloaded" in (l.get("msg") or "") for l in srv.log_lines()), timeout(3),
               what="the failed reload logged")
    assert _status(srv, key) == 200
    assert key not in srv.stderr()


def test_flags_from_the_environment(repo, keys, server_factory, tmp_path):
    srv = server_factory(repo, env={"INFERD_API_KEYS": keys["path"], "INFERD_CORS_ORIGINS": "https://app.example"})
    assert srv.get("/v1/models").status_code == 401
    r = srv.get("/v1/models", headers={"X-API-Key": keys["reader"], "Origin": "https://app.example"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    # the CLI takes its file from the same variable
    path = str(tmp_path / "env-keys.json")
    env = dict(os.environ, INFERD_API_KEYS=path)
    res = subprocess.run([INFERD_BIN, "keys", "create", "--name", "e", "--scopes", "read"], capture_output=True,
                         text=True, timeout=T, env=env)
    assert res.returncode == 0 and KEY_RE.match(res.stdout.strip()), res.stderr
    assert json.load(open(path))["keys"][0]["name"] == "e"


def test_a_bad_key_file_stops_the_start(repo, tmp_path):
    res = subprocess.run([INFERD_BIN, "serve", "--model-repository", repo, "--http-port", "0", "--grpc-port", "0",
                          "--api-keys", str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=T)
    assert res.returncode == 2 and "missing.json" in res.stderr
    path = str(tmp_path / "keys.json")
    with open(path, "w") as f:
        json.dump({"keys": [{"name": "x", "id": "zz", "hash": "sha256:00", "scopes": ["read"]}]}, f)
    res = subprocess.run([INFERD_BIN, "serve", "--model-repository", repo, "--http-port", "0", "--grpc-port", "0",
                          "--api-keys", path], capture_output=True, text=True, timeout=T)
    assert res.returncode == 2
    assert "keys[0].id" in res.stderr


def test_the_metrics_port_needs_the_metrics_scope_too(repo, tmp_path, server_factory):
    """--metrics-port is a second server for GET /metrics alone with the HTTP port's
    authentication: no credential is 401, a key without the metrics scope 403, a scraper's 200;
    any other path is 404 there, even with a key that may call it on the HTTP port."""
    path = str(tmp_path / "keys.json")
    scraper = create_key(path, "scraper", "metrics")
    reader = create_key(path, "reader", "read,infer:*")
    mport = free_port()
    srv = server_factory(repo, args=["--api-keys", path, "--metrics-port", str(mport)])
    url = f"http://127.0.0.1:{mport}"
    r = requests.get(url + "/metrics", timeout=T)
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    assert requests.get(url + "/metrics", headers={"X-API-Key": reader}, timeout=T).status_code == 403
    r = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {scraper}"}, timeout=T)
    assert r.status_code == 200 and "nv_inference_request_success" in r.text
    r = requests.get(url + "/v1/models", headers={"X-API-Key": reader}, timeout=T)
    assert r.status_code == 404 and "/metrics only" in r.json()["error"]
    assert srv.get("/v1/models", headers={"X-API-Key": reader}).status_code == 200


# --- the CLI -------------------------------------------------------------------------------------

def test_cli_stores_only_hashes_and_lists_without_them(tmp_path):
    path = str(tmp_path / "keys.json")
    key = create_key(path, "svc", "infer:u8,read", "--rate", "10/s", "--burst", "20", "--concurrency", "2",
                     "--records-per-min", "600", "--expires", "30d")
    text = open(path).read()
    assert key not in text and key[21:] not in text
    e = json.loads(text)["keys"][0]
    assert e["id"] == key[4:20] and e["hash"].startswith("sha256:")
    assert e["scopes"] == ["infer:u8", "read"] and e["rate"] == 10 and e["burst"] == 20
    assert e["concurrency"] == 2 and e["records_per_min"] == 600 and e["expires"] and e["revoked"] is False
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    out = keys_cli("list", "--file", path).stdout
    assert "svc" in out and "active" in out and "sha256" not in out
    lj = json.loads(keys_cli("list", "--file", path, "--json").stdout)
    assert lj[0]["name"] == "svc" and "hash" not in lj[0] and lj[0]["state"] == "active"
    # refusals leave the file as it was and print no key
    for args in (["--name", "svc", "--scopes", "read"], ["--name", "x", "--scopes", "reed"],
                 ["--name", "y", "--scopes", "read", "--rate", "fast"], ["--name", "z", "--scopes", "read", "--expires", "soon"]):
        res = keys_cli("create", "--file", path, *args, check=False)
        assert res.returncode != 0 and res.stdout == "", (args, res.stdout, res.stderr)
    assert open(path).read() == text


def test_cli_rotate_revokes_or_keeps_the_old_key_for_a_grace(repo, tmp_path, server_factory):
    path = str(tmp_path / "keys.json")
    k1 = create_key(path, "svc", "read")
    srv = server_factory(repo, args=["--api-keys", path])
    k2 = keys_cli("rotate", "--file", path, "--name", "svc", "--grace", "1h").stdout.strip()
    assert KEY_RE.match(k2) and k2 != k1
    wait_until(lambda: _status(srv, k2) == 200, timeout(2), what="the rotated key accepted")
    assert _status(srv, k1) == 200, "the old key works during its grace period"
    k3 = keys_cli("rotate", "--file", path, "--name", "svc").stdout.strip()
    wait_until(lambda: _status(srv, k3) == 200 and _status(srv, k2) == 401, timeout(2), what="the rotation")
    doc = json.load(open(path))
    assert [e["revoked"] for e in doc["keys"]] == [False, True, False]


# --- CORS, docs headers, the start-up warning ------------------------------------------------------

def test_cors_off_by_default(g, keys):
    r = g.srv.get("/v1/models", headers={"Origin": "https://app.example", "X-API-Key": keys["reader"]})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = g.srv.request("OPTIONS", "/v1/models", headers={"Origin": "https://app.example",
                                                         "Access-Control-Request-Method": "GET"})
    assert r.status_code in (401, 405) and "Access-Control-Allow-Origin" not in r.headers


def test_cors_preflight_and_allowed_origins(repo, keys, server_factory):
    srv = server_factory(repo, args=["--api-keys", keys["path"], "--cors-origins", "https://app.example, http://localhost:3000"])
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    r = srv.request("OPTIONS", "/v2/models/u8/infer", headers=pre)  # no credential: preflights carry none
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
    assert "Origin" in r.headers.get("Vary", "")
    r = srv.request("OPTIONS", "/v2/models/u8/infer", headers=dict(pre, Origin="https://evil.example"))
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = srv.get("/v1/models", headers={"Origin": "http://localhost:3000", "X-API-Key": keys["reader"]})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]
    r = srv.get("/v1/models", headers={"Origin": "https://evil.example", "X-API-Key": keys["reader"]})
    assert "Access-Control-Allow-Origin" not in r.headers
    # CORS does not let a request past authentication
    r = srv.get("/v1/models", headers={"Origin": "https://app.example"})
    assert r.status_code == 401


# Reply headers that only the browser itself or a proxy reads (X-Accel-Buffering: SSE streams
# unbuffered through nginx): no script needs them exposed.
_BROWSER_ONLY = {"access-control-allow-headers", "access-control-allow-methods", "access-control-allow-origin",
                 "access-control-expose-headers", "access-control-max-age", "vary", "allow", "accept-encoding",
                 "cache-control", "content-security-policy", "referrer-policy", "x-content-type-options",
                 "x-frame-options", "x-test-client-subject", "x-accel-buffering"}


def test_cors_exposes_every_reply_header(repo, keys, server_factory):
    """Every header name the source adds to a reply (serve_headers_add, http_call_add_reply_header)
    is in the Expose list a cross-origin script gets, so a browser client can read X-Model-Arm,
    X-Cache, traceparent... A new header added without exposing it fails here."""
    src = pathlib.Path(__file__).resolve().parents[2] / "src"
    added = set()
    for f in src.rglob("*.c"):
        for m in re.finditer(r'(?:serve_headers_add|http_call_add_reply_header)\([^,]+,\s*"([A-Za-z-]+)"', f.read_text()):
            added.add(m.group(1).lower())
    assert {"x-model-arm", "x-cache", "traceparent"} <= added  # the scan itself works
    srv = server_factory(repo, args=["--api-keys", keys["path"], "--cors-origins", "https://app.example"])
    r = srv.get("/v1/models", headers={"Origin": "https://app.example", "X-API-Key": keys["reader"]})
    exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert sorted(added - _BROWSER_ONLY - exposed) == []


def test_docs_pages_carry_security_headers(g, keys):
    for path in ("/docs", "/redoc"):
        r = g.srv.get(path, headers={"X-API-Key": keys["reader"]})
        assert r.status_code == 200
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_openapi_shows_schemes_and_scopes(g, keys):
    spec = g.srv.get("/openapi.json", headers={"X-API-Key": keys["reader"]}).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                 "description": schemes["apiKey"]["description"]}
    assert schemes["bearer"]["scheme"] == "bearer"
    p = spec["paths"]
    assert p["/v2/health/live"]["get"]["security"] == []
    assert p["/v2/repository/index"]["post"]["x-required-scope"] == "admin"
    assert p["/v1/models"]["get"]["x-required-scope"] == "read"
    assert p["/v2/models/{model}/infer"]["post"]["x-required-scope"] == "infer:{model}"
    assert p["/v2/models/{model}/infer"]["post"]["security"] == [{"apiKey": ["infer:{model}"]}, {"bearer": ["infer:{model}"]}]
    assert "401" in p["/v1/models"]["get"]["responses"] and "403" in p["/v1/models"]["get"]["responses"]
    for path, item in p.items():
        for method, op in item.items():
            assert "security" in op, f"{method} {path} declares no security"


def test_startup_warning_when_public_and_open(repo, keys, server_factory):
    srv = server_factory(repo, args=["--host", "0.0.0.0"])
    wait_until(lambda: "serving gRPC" in srv.stderr(), timeout(10), what="the start-up lines")
    assert "NO AUTHENTICATION" in srv.stderr()
    srv2 = server_factory(repo, args=["--host", "0.0.0.0", "--api-keys", keys["path"]])
    wait_until(lambda: "authentication on" in srv2.stderr(), timeout(10), what="the start-up lines")
    assert "NO AUTHENTICATION" not in srv2.stderr()
    srv3 = server_factory(repo)  # loopback and open: no warning
    wait_until(lambda: "serving gRPC" in srv3.stderr(), timeout(10), what="the start-up lines")
    assert "NO AUTHENTICATION" not in srv3.stderr()


def test_security_off_leaves_every_route_open(repo, server_factory):
    srv = server_factory(repo)
    assert srv.get("/v1/models").status_code == 200
    assert srv.post("/v2/repository/index", json={}).status_code == 200
    r = srv.post("/v2/models/u8/infer", json={"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 1], "data": [7]}]})
    assert r.status_code == 200
    rid = r.headers["X-Request-ID"]
    # the access log is written in batches: wait for this request's line
    line = wait_until(lambda: srv.access_lines(rid), timeout(10))[0]
    assert line.get("principal", "") == ""  # anonymous: an empty field, never a name
