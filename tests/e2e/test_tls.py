"""TLS and mutual TLS on the HTTP port (conn.c) and on gRPC, end to end.

Certificates are made at test time by the openssl CLI into a temporary folder: a CA, a server
certificate for localhost/127.0.0.1, a client certificate from that CA, and a client certificate
from another CA. Clients are the ones users run: curl, `openssl s_client`, Python's ssl module
(for one connection held across requests), requests, and grpcio's ssl_channel_credentials.
INFERD_TEST_CLIENT_SUBJECT_HEADER makes the server echo the verified client subject it put in
the call (HTTP header / gRPC initial metadata x-test-client-subject) so the tests can see it.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import grpc
import pytest
import requests

from conftest import INFERD_BIN, Server, free_port, timeout, wait_until
from grpc_stubs import pb, pbg

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CURL = shutil.which("curl") or "/usr/bin/curl"
SUBJECT_ENV = {"INFERD_TEST_CLIENT_SUBJECT_HEADER": "1"}
ALICE = "CN=alice,O=Example"  # RFC 2253: most specific first


def _run(args, **kw):
    res = subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)
    assert res.returncode == 0, f"{args} failed:\n{res.stdout}\n{res.stderr}"
    return res


def _issue(d, name, subj, ca, ext):
    key, csr, pem = (os.path.join(d, f"{name}.{x}") for x in ("key", "csr", "pem"))
    _run([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", key, "-out", csr, "-subj", subj])
    extfile = os.path.join(d, f"{name}.ext")
    with open(extfile, "w") as f:
        f.write(ext)
    _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", os.path.join(d, f"{ca}.pem"),
          "-CAkey", os.path.join(d, f"{ca}.key"), "-CAcreateserial", "-out", pem, "-days", "2",
          "-extfile", extfile])
    return pem, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    for ca, cn in (("ca", "inferd test CA"), ("other_ca", "someone else's CA")):
        _run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", os.path.join(d, f"{ca}.key"), "-out", os.path.join(d, f"{ca}.pem"),
              "-days", "2", "-subj", f"/CN={cn}"])
    server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    client_ext = "extendedKeyUsage=clientAuth\n"
    c = {"dir": d, "ca": os.path.join(d, "ca.pem")}
    c["server"] = _issue(d, "server", "/O=First/CN=localhost", "ca", server_ext)
    c["server2"] = _issue(d, "server2", "/O=Reloaded/CN=localhost", "ca", server_ext)
    c["alice"] = _issue(d, "alice", "/O=Example/CN=alice", "ca", client_ext)
    c["mallory"] = _issue(d, "mallory", "/O=Example/CN=mallory", "other_ca", client_ext)
    return c


class TlsServer(Server):
    """A Server whose HTTP port speaks HTTPS; `client` is the (cert, key) it probes with."""

    def __init__(self, repo, certs, client=None, **kw):
        super().__init__(repo, **kw)
        self.certs = certs
        self.client = client
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would take the place of verify
        self.session.verify = certs["ca"]
        if client:
            self.session.cert = client

    def url(self, path):
        return f"https://{self.host}:{self.port}{path}"

    def wait_live(self, seconds=None):
        seconds = timeout(20) if seconds is None else seconds

        def live():
            if self.proc.poll() is not None:
                raise AssertionError(f"inferd exited early with code {self.proc.returncode}")
            try:
                return self.session.get(self.url("/v2/health/live"), timeout=1 * timeout(1)).status_code == 200
            except requests.RequestException:
                return False
        wait_until(live, seconds, what="inferd live over HTTPS")


@pytest.fixture
def tls_server(test_models_dir, logs_dir, certs):
    """Starts TLS servers: tls_server(client_auth=None|'required'|'optional', ...)."""
    started = []

    def start(client_auth=None, args=(), client=None, env=None, cert_files=None):
        grpc_port = free_port()
        cert, key = cert_files or certs["server"]
        a = ["--grpc-port", str(grpc_port), "--tls-cert", cert, "--tls-key", key]
        if client_auth:
            a += ["--tls-client-ca", certs["ca"], "--tls-client-auth", client_auth]
        srv = TlsServer(test_models_dir, certs, client=client, args=a + list(args),
                        env={**SUBJECT_ENV, **(env or {})}, workdir=logs_dir)
        srv.grpc_port = grpc_port
        started.append(srv)
        srv.start()
        return srv

    yield start
    errors = []
    for srv in started:
        if srv.alive():
            srv.stop()
        try:
            srv.check_clean_exit()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)


# -- a raw TLS connection: several requests on one connection -----------------------------------


class TlsConn:
    def __init__(self, certs, port, client=None, host="127.0.0.1"):
        ctx = ssl.create_default_context(cafile=certs["ca"])
        if client:
            ctx.load_cert_chain(*client)
        ctx.set_alpn_protocols(["http/1.1"])
        raw = socket.create_connection((host, port), timeout=timeout(10))
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""

    def peer_subject(self):
        return dict(x[0] for x in self.sock.getpeercert()["subject"])

    def send(self, method, path, body=b"", headers=()):
        head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self.sock.sendall(head.encode() + body)

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection mid-body"
            rest += chunk
        self.buf = rest[n:]
        return status, hdrs, rest[:n]

    def request(self, method, path, body=b"", headers=()):
        self.send(method, path, body, headers)
        return self.read_response()

    def close(self):
        self.sock.close()


def curl(srv, path="/v2/health/ready", client=None, extra=()):
    args = [CURL, "-sS", "--max-time", str(int(timeout(10))), "--cacert", srv.certs["ca"], "-D", "-", "-o", "/dev/null"]
    if client:
        args += ["--cert", client[0], "--key", client[1]]
    return subprocess.run(args + list(extra) + [f"https://localhost:{srv.port}{path}"],
                          capture_output=True, text=True, timeout=timeout(30))


def s_client(port, certs, extra=()):
    """openssl s_client's report of a handshake (it sends nothing and closes)."""
    res = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-CAfile", certs["ca"]] + list(extra),
                         input=b"", capture_output=True, timeout=timeout(30))
    return (res.stdout + res.stderr).decode("utf-8", "replace")


def fp32_identity(n):
    """A V2 request for identity_all (every input; in_FP32 with n elements) and its FP32 data."""
    import json
    data = [float(i % 1000) / 8 for i in range(n)]
    inputs = [{"name": f"in_{dt}", "datatype": dt, "shape": [1, 1], "data": [v]}
              for dt, v in (("BOOL", True), ("UINT8", 1), ("UINT16", 1), ("UINT32", 1), ("UINT64", 1),
                            ("INT8", 1), ("INT16", 1), ("INT32", 1), ("INT64", 1), ("FP16", 1.0),
                            ("FP64", 1.0), ("BYTES", "a"))]
    inputs.append({"name": "in_FP32", "datatype": "FP32", "shape": [1, n], "data": data})
    body = {"inputs": inputs, "outputs": [{"name": "out_FP32"}]}
    return json.dumps(body).encode(), data


# -- HTTPS ------------------------------------------------------------------------------------------


def test_curl_over_https_and_openssl_sees_tls13(tls_server):
    srv = tls_server()
    res = curl(srv)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("HTTP/1.1 200"), res.stdout
    out = s_client(srv.port, srv.certs, ["-alpn", "http/1.1"])
    assert "TLSv1.3" in out, out
    assert "ALPN protocol: http/1.1" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    # TLS 1.2 is still accepted (with a forward-secret AEAD suite); 1.1 is not
    out12 = s_client(srv.port, srv.certs, ["-tls1_2"])
    assert "Protocol  : TLSv1.2" in out12 or "TLSv1.2" in out12, out12
    assert "ECDHE" in out12 and ("GCM" in out12 or "CHACHA20" in out12), out12
    # (the client is let down to security level 0 so that it offers 1.1: the server refuses it)
    out11 = s_client(srv.port, srv.certs, ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
    assert "alert protocol version" in out11 and "Cipher is (NONE)" in out11, out11
    # a TLS 1.2 suite without forward secrecy is not offered
    outrsa = s_client(srv.port, srv.certs, ["-tls1_2", "-cipher", "AES128-SHA:AES256-GCM-SHA384"])
    assert "handshake failure" in outrsa and "Cipher is (NONE)" in outrsa, outrsa
    # a client that can speak only HTTP/2 is told so in the handshake
    outh2 = s_client(srv.port, srv.certs, ["-alpn", "h2"])
    assert "no application protocol" in outh2 or "Cipher is (NONE)" in outh2, outh2


def test_metrics_port_speaks_tls_too(tls_server, certs):
    """--metrics-port is served with the HTTP port's TLS: a plain request there gets no metrics."""
    mport = free_port()
    tls_server(args=["--metrics-port", str(mport)])
    c = TlsConn(certs, mport)
    status, hdrs, body = c.request("GET", "/metrics")
    assert status == 200 and b"nv_inference_request_success" in body, body[:200]
    c.close()
    with socket.create_connection(("127.0.0.1", mport), timeout=timeout(10)) as raw:
        raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        got = raw.recv(65536)
    assert b"nv_inference" not in got


def test_keepalive_and_pipelining_over_tls(tls_server):
    srv = tls_server()
    conn = TlsConn(srv.certs, srv.port)
    try:
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
        ids = set()
        for _ in range(5):
            status, hdrs, body = conn.request("GET", "/v2/health/ready")
            assert status == 200 and "connection" not in hdrs, (status, hdrs)
            ids.add(hdrs["x-request-id"])
        assert len(ids) == 5
        # a large request and a large reply: many TLS records each way, on the same connection
        body, data = fp32_identity(40000)
        assert len(body) > 200000
        status, hdrs, reply = conn.request("POST", "/v2/models/identity_all/infer", body,
                                           [("Content-Type", "application/json")])
        assert status == 200, reply[:300]
        import json
        out = json.loads(reply)["outputs"][0]
        assert out["name"] == "out_FP32" and out["data"][:5] == data[:5] and len(out["data"]) == len(data)
        # three requests in one write: answered in order
        conn.sock.sendall(b"".join(f"GET /v2/health/{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                                   for p in ("live", "ready", "live")))
        got = [conn.read_response() for _ in range(3)]
        assert [g[0] for g in got] == [200, 200, 200]
        assert [g[2] for g in got][0] == b'{"live":true}'
    finally:
        conn.close()


def test_records_that_arrive_together_are_all_read(tls_server, certs):
    """Several TLS records in one TCP segment: OpenSSL takes them all off the socket at once
    (read-ahead), so the server must read every record it holds, not wait for the socket."""
    srv = tls_server()
    ctx = ssl.create_default_context(cafile=certs["ca"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout(5)) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(out.read())
                chunk = sock.recv(65536)
                assert chunk, "closed during the handshake"
                inc.write(chunk)
        sock.sendall(out.read())
        paths = ("live", "ready", "live", "ready")
        for p in paths:  # one record each, sent in one segment
            tls.write(f"GET /v2/health/{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.sendall(out.read())
        got = b""
        while got.count(b"HTTP/1.1 200") < len(paths) or not got.endswith(b"}"):
            try:
                got += tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            chunk = sock.recv(65536)  # times out if the server left a record unread
            assert chunk, "the server closed the connection"
            inc.write(chunk)
        assert got.count(b"HTTP/1.1 200") == len(paths)


def test_plain_http_on_the_tls_port_is_told_and_plain_port(tls_server):
    plain = free_port()
    srv = tls_server(args=["--http-plain-port", str(plain)])
    r = requests.get(f"http://127.0.0.1:{srv.port}/v2/health/live", timeout=timeout(10))
    assert r.status_code == 400 and "https" in r.json()["error"].lower(), r.content
    # --http-plain-port: the same server in plain HTTP, for probes on a private network
    r = requests.get(f"http://127.0.0.1:{plain}/v2/health/ready", timeout=timeout(10))
    assert r.status_code == 200
    assert srv.get("/v2/health/ready").status_code == 200


def test_without_plain_port_there_is_none(tls_server, certs):
    srv = tls_server()
    # the log names HTTPS and no plain port
    msgs = [l.get("msg", "") for l in srv.log_lines()]
    assert any("over HTTPS on" in m for m in msgs), msgs
    assert not any("plain HTTP" in m for m in msgs), msgs


# -- mutual TLS ---------------------------------------------------------------------------------------


def _refused_by_curl(res):
    return res.returncode != 0 and "HTTP/1.1 200" not in res.stdout


def test_mtls_required(tls_server, certs):
    srv = tls_server("required", client=certs["alice"])
    res = curl(srv, client=certs["alice"])
    assert res.returncode == 0 and res.stdout.startswith("HTTP/1.1 200"), res.stderr
    assert f"X-Test-Client-Subject: {ALICE}" in res.stdout, res.stdout
    # no certificate, or one from another CA: no connection
    assert _refused_by_curl(curl(srv))
    assert _refused_by_curl(curl(srv, client=certs["mallory"]))
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(srv.url("/v2/health/live"), verify=certs["ca"], timeout=timeout(10))
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(srv.url("/v2/health/live"), verify=certs["ca"], cert=certs["mallory"], timeout=timeout(10))
    # every call on a connection carries the subject
    conn = TlsConn(certs, srv.port, client=certs["alice"])
    try:
        for _ in range(3):
            status, hdrs, _ = conn.request("GET", "/v2/health/live")
            assert status == 200 and hdrs.get("x-test-client-subject") == ALICE, hdrs
    finally:
        conn.close()


def test_mtls_optional(tls_server, certs):
    srv = tls_server("optional")
    res = curl(srv)  # no certificate: accepted, no subject
    assert res.returncode == 0 and res.stdout.startswith("HTTP/1.1 200"), res.stderr
    assert "X-Test-Client-Subject" not in res.stdout
    res = curl(srv, client=certs["alice"])
    assert res.returncode == 0 and f"X-Test-Client-Subject: {ALICE}" in res.stdout, res.stdout
    # a certificate that does not verify is refused, not taken as anonymous (docs/security.md)
    assert _refused_by_curl(curl(srv, client=certs["mallory"]))


def test_tls_without_client_ca_asks_for_no_certificate(tls_server, certs):
    srv = tls_server()
    res = curl(srv, client=certs["alice"])  # offered but never asked for: no subject
    assert res.returncode == 0 and "X-Test-Client-Subject" not in res.stdout, res.stdout


# -- gRPC ----------------------------------------------------------------------------------------------


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def grpc_live(srv, client=None):
    """(live, x-test-client-subject or None), or the RpcError's code."""
    creds = grpc.ssl_channel_credentials(_read(srv.certs["ca"]), *((_read(client[1]), _read(client[0])) if client else (None, None)))
    with grpc.secure_channel(f"localhost:{srv.grpc_port}", creds) as ch:
        stub = pbg.GRPCInferenceServiceStub(ch)
        try:
            resp, call = stub.ServerLive.with_call(pb.ServerLiveRequest(), timeout=timeout(10))
        except grpc.RpcError as exc:
            return exc.code()
        return resp.live, dict(call.initial_metadata()).get("x-test-client-subject")


def test_grpc_tls_and_mtls(tls_server, certs):
    plain = tls_server()
    assert grpc_live(plain) == (True, None)
    with grpc.insecure_channel(f"127.0.0.1:{plain.grpc_port}") as ch:  # no plaintext on a TLS port
        with pytest.raises(grpc.RpcError) as exc:
            pbg.GRPCInferenceServiceStub(ch).ServerLive(pb.ServerLiveRequest(), timeout=timeout(5))
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE

    req = tls_server("required", client=certs["alice"])
    assert grpc_live(req, certs["alice"]) == (True, ALICE)  # the same subject text as HTTPS's
    assert grpc_live(req) == grpc.StatusCode.UNAVAILABLE
    assert grpc_live(req, certs["mallory"]) == grpc.StatusCode.UNAVAILABLE

    opt = tls_server("optional")
    assert grpc_live(opt) == (True, None)
    assert grpc_live(opt, certs["alice"]) == (True, ALICE)
    assert grpc_live(opt, certs["mallory"]) == grpc.StatusCode.UNAVAILABLE


# -- reload on SIGHUP ---------------------------------------------------------------------------------


def test_sighup_reloads_certificates_and_open_connections_stay(tls_server, certs, tmp_path):
    cert, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    shutil.copy(certs["server"][0], cert)
    shutil.copy(certs["server"][1], key)
    srv = tls_server(cert_files=(cert, key))  # copies, replaced under the running server

    old = TlsConn(certs, srv.port)
    assert old.peer_subject()["organizationName"] == "First"
    assert old.request("GET", "/v2/health/live")[0] == 200

    shutil.copy(certs["server2"][0], cert)
    shutil.copy(certs["server2"][1], key)
    srv.send_signal(signal.SIGHUP)
    wait_until(lambda: "TLS certificates reloaded" in srv.stderr(), timeout(10), what="the reload's log line")

    new = TlsConn(certs, srv.port)
    try:
        assert new.peer_subject()["organizationName"] == "Reloaded"
        assert new.request("GET", "/v2/health/ready")[0] == 200
        # the connection opened before the reload still works, with its certificate
        for _ in range(3):
            assert old.request("GET", "/v2/health/live")[0] == 200
        assert old.peer_subject()["organizationName"] == "First"
    finally:
        new.close()
        old.close()
    # gRPC's new handshakes present the new certificate too
    out = s_client(srv.grpc_port, certs, ["-alpn", "h2"])
    assert "O = Reloaded" in out or "O=Reloaded" in out, out
    assert grpc_live(srv) == (True, None)

    # a broken file: the reload fails, says why, and the previous certificates stay
    with open(key, "w") as f:
        f.write("not a key\n")
    srv.send_signal(signal.SIGHUP)
    wait_until(lambda: "TLS certificates not reloaded" in srv.stderr(), timeout(10), what="the failed reload's log line")
    conn = TlsConn(certs, srv.port)
    try:
        assert conn.peer_subject()["organizationName"] == "Reloaded"
        assert conn.request("GET", "/v2/health/live")[0] == 200
    finally:
        conn.close()


# -- malformed TLS: nothing blocks the loop -----------------------------------------------------------


def test_garbage_and_stalled_handshakes_do_not_block_other_clients(tls_server, certs):
    # one loop, so a blocked loop would show; a short head deadline bounds the handshake
    srv = tls_server(args=["--http-threads", "1", "--request-head-timeout-ms", str(int(timeout(1500)))])
    hello = _client_hello(srv.port)
    assert hello[0] == 0x16 and len(hello) > 100
    bad = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout(10))
        if i % 4 == 0:
            s.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(512))  # a record header, then noise
        elif i % 4 == 1:
            s.sendall(os.urandom(4096).replace(b"\x16", b"\x17"))  # noise
        elif i % 4 == 2:
            s.sendall(hello[:len(hello) // 2])  # half a ClientHello, then silence
        # else: connect and say nothing
        bad.append(s)
    t0 = time.monotonic()
    for _ in range(5):
        assert srv.get("/v2/health/ready", timeout=timeout(5)).status_code == 200
        res = curl(srv)
        assert res.returncode == 0 and res.stdout.startswith("HTTP/1.1 200"), res.stderr
    assert time.monotonic() - t0 < timeout(5)
    # every bad connection is closed by the server: garbage at once, stalls at the head deadline
    for s in bad:
        s.settimeout(timeout(10))
        try:
            while s.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()
    assert time.monotonic() - t0 < timeout(10)
    assert srv.get("/v2/health/live").status_code == 200


def _client_hello(port):
    """The first flight of a real TLS client (what Python's ssl sends), for a truncated replay."""
    captured = []
    lis = socket.socket()
    lis.bind(("127.0.0.1", 0))
    lis.listen(1)

    def grab():
        c, _ = lis.accept()
        c.settimeout(timeout(5))
        captured.append(c.recv(65536))
        c.close()
    t = threading.Thread(target=grab)
    t.start()
    ctx = ssl.create_default_context()
    try:
        with socket.create_connection(lis.getsockname(), timeout=timeout(5)) as raw:
            try:
                ctx.wrap_socket(raw, server_hostname="localhost")
            except (ssl.SSLError, OSError):
                pass
    finally:
        t.join()
        lis.close()
    return captured[0]


# -- configuration ------------------------------------------------------------------------------------


def _serve(test_models_dir, args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("INFERD_")}
    e.update(env or {})
    return subprocess.run([INFERD_BIN, "serve", "--model-repository", test_models_dir,
                           "--host", "127.0.0.1", "--http-port", str(free_port()), "--grpc-port", str(free_port())] + args,
                          capture_output=True, text=True, timeout=timeout(60), env=e)


def test_bad_tls_configuration_is_refused_at_start(test_models_dir, certs):
    cert, key = certs["server"]
    res = _serve(test_models_dir, ["--tls-cert", cert])
    assert res.returncode == 2 and "--tls-key" in res.stderr, res.stderr
    res = _serve(test_models_dir, ["--tls-client-ca", certs["ca"]])
    assert res.returncode == 2 and "need --tls-cert" in res.stderr, res.stderr
    res = _serve(test_models_dir, ["--tls-cert", cert, "--tls-key", key, "--tls-client-auth", "required"])
    assert res.returncode == 2 and "--tls-client-ca" in res.stderr, res.stderr
    res = _serve(test_models_dir, ["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", certs["ca"],
                                   "--tls-client-auth", "sometimes"])
    assert res.returncode == 2 and "required or optional" in res.stderr, res.stderr
    # a key that is not the certificate's, and a file that is not there: named in the message
    res = _serve(test_models_dir, ["--tls-cert", cert, "--tls-key", certs["mallory"][1]])
    assert res.returncode == 2 and "does not match" in res.stderr and certs["mallory"][1] in res.stderr, res.stderr
    res = _serve(test_models_dir, ["--tls-cert", cert + ".missing", "--tls-key", key])
    assert res.returncode == 2 and "cannot open" in res.stderr and ".missing" in res.stderr, res.stderr
    res = _serve(test_models_dir, ["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", key])
    assert res.returncode == 2 and "--tls-client-ca" in res.stderr and "no certificate" in res.stderr, res.stderr


def test_tls_from_environment_variables(test_models_dir, logs_dir, certs):
    env = {**SUBJECT_ENV, "INFERD_TLS_CERT": certs["server"][0], "INFERD_TLS_KEY": certs["server"][1],
           "INFERD_TLS_CLIENT_CA": certs["ca"], "INFERD_TLS_CLIENT_AUTH": "optional"}
    srv = TlsServer(test_models_dir, certs, args=["--grpc-port", str(free_port())], env=env, workdir=logs_dir)
    srv.start()
    try:
        res = curl(srv, client=certs["alice"])
        assert res.returncode == 0 and f"X-Test-Client-Subject: {ALICE}" in res.stdout, res.stdout
    finally:
        srv.stop()
    srv.check_clean_exit()
