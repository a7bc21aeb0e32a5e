"""Shared helpers for inferd's end-to-end tests.

The tests are black-box: they start the real binary (env INFERD_BIN, default build/inferd) on a
free loopback port, talk HTTP to it, and stop it with a signal, checking it exits 0. When
INFERD_SANITIZED=1 the binary carries ASan+UBSan: timeouts are scaled, stress counts shrink, and
stderr is checked for sanitizer reports when the server stops.
"""

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest
import requests

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INFERD_BIN = os.environ.get("INFERD_BIN", os.path.join(REPO_ROOT, "build", "inferd"))
SANITIZED = os.environ.get("INFERD_SANITIZED") == "1"
SCALE = 3.0 if SANITIZED else 1.0
MAKE_TEST_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_test_models.py")
EXAMPLE_REPO = os.path.join(REPO_ROOT, "models")
PYTHON = "/usr/bin/python3"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

# V2 datatypes and their little-endian numpy dtypes (BYTES handled separately).
V2_NUMPY = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
ALL_DATATYPES = list(V2_NUMPY) + ["BYTES"]


def timeout(seconds):
    """A timeout scaled for sanitizer builds."""
    return seconds * SCALE


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, seconds, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value; fails after `seconds` (already scaled)."""
    deadline = time.monotonic() + seconds
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polling tolerates transient errors
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.1f}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def pending_requests(srv, model):
    """How many requests the server holds for `model` (past routing, queued or running, not yet
    answered), from /metrics' nv_inference_pending_request_count: what a test waits on, with
    wait_until, to know its requests have reached the model instead of sleeping and hoping."""
    r = srv.get("/metrics")
    assert r.status_code == 200, r.text
    return sum(float(line.rsplit(" ", 1)[1]) for line in r.text.splitlines()
               if line.startswith("nv_inference_pending_request_count{") and f'model="{model}"' in line)


# --------------------------------------------------------------------------------------------
# Server process


class Server:
    """One inferd process. Stderr/stdout go to files so tests can read the logs."""

    def __init__(self, repo, args=(), env=None, workdir=None, use_env_config=False):
        self.repo = repo
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.workdir = workdir or os.path.join("/tmp", f"inferd-e2e-{os.getpid()}")
        os.makedirs(self.workdir, exist_ok=True)
        self.use_env_config = use_env_config
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.stderr_path = None
        self.stdout_path = None
        self.returncode = None
        self.session = requests.Session()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, wait_ready=True):
        assert os.path.exists(INFERD_BIN), f"inferd binary not found at {INFERD_BIN}"
        last_err = None
        for attempt in range(3):  # a free port may be taken between probe and bind
            self.port = free_port()
            tag = f"{self.port}-{int(time.time() * 1000)}"
            self.stderr_path = os.path.join(self.workdir, f"inferd-{tag}.stderr")
            self.stdout_path = os.path.join(self.workdir, f"inferd-{tag}.stdout")
            env = dict(os.environ)
            env.pop("INFERD_MODEL_REPOSITORY", None)
            env.pop("INFERD_HTTP_PORT", None)
            env.pop("INFERD_HOST", None)
            if SANITIZED:
                env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
                env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
            # no gRPC port asked for: any free one (the default, 8001, is one port for every
            # server of the suite, and a port another server holds is refused)
            grpc_given = any(a == "--grpc-port" or a.startswith("--grpc-port=") for a in self.args) or \
                "INFERD_GRPC_PORT" in self.extra_env
            if not grpc_given:
                env["INFERD_GRPC_PORT"] = "0"
            if self.use_env_config:
                cmd = [INFERD_BIN, "serve"] + self.args
                env["INFERD_MODEL_REPOSITORY"] = self.repo
                env["INFERD_HOST"] = self.host
                env["INFERD_HTTP_PORT"] = str(self.port)
            else:
                cmd = [INFERD_BIN, "serve", "--model-repository", self.repo,
                       "--host", self.host, "--http-port", str(self.port)] + self.args
            env.update(self.extra_env)
            self.cmd = cmd
            with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                                             stdin=subprocess.DEVNULL)
            try:
                self.wait_live()
                break
            except AssertionError as exc:
                last_err = exc
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait(timeout=timeout(10))
                if "in use" not in self.stderr().lower():
                    raise AssertionError(f"{exc}\ncommand: {cmd}\nstderr:\n{self.stderr()[-4000:]}")
        else:
            raise AssertionError(f"could not start inferd: {last_err}")
        if wait_ready:
            self.wait_ready()
        return self

    def wait_live(self, seconds=None):
        seconds = timeout(20) if seconds is None else seconds

        def live():
            if self.proc.poll() is not None:
                raise AssertionError(f"inferd exited early with code {self.proc.returncode}")
            r = requests.get(self.url("/v2/health/live"), timeout=1 * SCALE)
            return r.status_code == 200

        deadline = time.monotonic() + seconds
        while True:
            try:
                if live():
                    return
            except AssertionError:
                raise
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"inferd not live after {seconds:.0f}s")
            time.sleep(0.02)

    def wait_ready(self, seconds=None):
        seconds = timeout(30) if seconds is None else seconds
        wait_until(lambda: self.get("/v2/health/ready").status_code == 200, seconds,
                   what="/v2/health/ready == 200")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, seconds=None):
        seconds = timeout(30) if seconds is None else seconds
        try:
            self.returncode = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"inferd did not exit within {seconds:.0f}s; killed.\n"
                                 f"stderr tail:\n{self.stderr()[-3000:]}")
        return self.returncode

    def stop(self, sig=signal.SIGTERM, seconds=None):
        """Stops the server and returns its exit code (None if it had already been reaped)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
        rc = self.wait_exit(seconds)
        self.session.close()
        return rc

    def check_clean_exit(self):
        assert self.returncode == 0, (f"inferd exited with {self.returncode}\n"
                                      f"stderr tail:\n{self.stderr()[-4000:]}")
        self.check_sanitizers()

    def check_sanitizers(self):
        if not SANITIZED:
            return
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            assert marker not in err, f"sanitizer report in stderr:\n{err[err.find(marker) - 200:][:6000]}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- I/O ------------------------------------------------------------------------------------

    def url(self, path):
        return f"http://{self.host}:{self.port}{path}"

    def get(self, path, **kw):
        kw.setdefault("timeout", timeout(20))
        return self.session.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", timeout(30))
        return self.session.post(self.url(path), **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", timeout(20))
        return self.session.request(method, self.url(path), **kw)

    def infer(self, model, body, version=None, headers=None, **kw):
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "") + "/infer"
        if isinstance(body, (bytes, bytearray)):
            return self.post(path, data=body, headers=headers, **kw)
        return self.post(path, json=body, headers=headers, **kw)

    def stderr(self):
        if not self.stderr_path or not os.path.exists(self.stderr_path):
            return ""
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        """Parsed JSON lines of stderr (lines that are not JSON are returned as {'_raw': line})."""
        out = []
        for line in self.stderr().splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"_raw": line})
        return out

    def access_lines(self, request_id=None):
        lines = [l for l in self.log_lines() if l.get("type") == "access"]
        if request_id is not None:
            lines = [l for l in lines if l.get("request_id") == request_id]
        return lines


@contextlib.contextmanager
def running_server(repo, args=(), env=None, workdir=None, wait_ready=True, use_env_config=False):
    """Starts a server, yields it, stops it with SIGTERM and asserts a clean exit 0."""
    srv = Server(repo, args=args, env=env, workdir=workdir, use_env_config=use_env_config)
    srv.start(wait_ready=wait_ready)
    try:
        yield srv
    finally:
        if srv.alive():
            srv.stop()
    srv.check_clean_exit()


def wait_models_settled(srv, expect=("broken",), seconds=None):
    """Waits until /health lists every model as READY or UNAVAILABLE (none still loading) and
    lists the models in `expect`. For servers that will never be ready (a broken model)."""
    def settled():
        body = srv.get("/health").json()
        models = body.get("models") or []
        names = {m.get("name") for m in models}
        if not all(e in names for e in expect):
            return None
        # the start-up scan ends a moment after its last model settles: until then the server
        # still says so, rather than naming the broken model
        if body.get("reason") == "models are loading":
            return None
        if all(m.get("state") in ("READY", "UNAVAILABLE") for m in models):
            return body
        return None
    return wait_until(settled, timeout(30) if seconds is None else seconds,
                      what="every model READY or UNAVAILABLE in /health")


# --------------------------------------------------------------------------------------------
# Fixtures


def _make_models(out_dir, broken=False):
    assert os.path.exists(MAKE_TEST_MODELS), f"{MAKE_TEST_MODELS} is missing"
    cmd = [PYTHON, MAKE_TEST_MODELS, str(out_dir)] + (["--broken"] if broken else [])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return str(out_dir)


@pytest.fixture(scope="session")
def test_models_dir(tmp_path_factory):
    """The test model repository (no broken model)."""
    return _make_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def broken_models_dir(tmp_path_factory):
    """The test model repository plus the `broken` model."""
    return _make_models(tmp_path_factory.mktemp("models_broken"), broken=True)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="session")
def server(test_models_dir, logs_dir):
    """One server on the test repository for the whole session."""
    with running_server(test_models_dir, workdir=logs_dir) as srv:
        yield srv


@pytest.fixture
def server_factory(logs_dir):
    """Starts extra servers with arbitrary args; each is stopped (SIGTERM, exit 0) at teardown."""
    started = []

    def start(repo, args=(), env=None, wait_ready=True, use_env_config=False):
        srv = Server(repo, args=args, env=env, workdir=logs_dir, use_env_config=use_env_config)
        started.append(srv)
        srv.start(wait_ready=wait_ready)
        return srv

    yield start
    errors = []
    for srv in started:
        if srv.proc is None:
            continue
        if srv.alive():
            srv.stop()
        try:
            srv.check_clean_exit()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)


# --------------------------------------------------------------------------------------------
# V2 protocol helpers


def assert_error(resp, status, *needles, regex=None):
    """Asserts an error response: the status, a JSON body with an `error` string that mentions
    every needle (case-insensitive substring) and matches regex when given."""
    assert resp.status_code == status, (
        f"expected {status}, got {resp.status_code}: {resp.content[:500]!r}")
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"error Content-Type is {ctype!r}"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {resp.content[:500]!r}")
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"].strip(), (
        f"error body has no non-empty 'error' string: {body!r}")
    msg = body["error"]
    for needle in needles:
        assert needle.lower() in msg.lower(), f"error message {msg!r} does not mention {needle!r}"
    if regex is not None:
        assert re.search(regex, msg, re.I), f"error message {msg!r} does not match /{regex}/"
    return msg


def assert_4xx(resp, what=""):
    assert 400 <= resp.status_code < 500, (
        f"{what}: expected a 4xx, got {resp.status_code}: {resp.content[:300]!r}")
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"{what}: error body is not JSON: {resp.content[:300]!r}")
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], (
        f"{what}: error body lacks an 'error' string: {body!r}")


def encode_bytes_elements(elements):
    """BYTES tensor wire form: each element is a 4-byte LE length followed by its bytes."""
    out = bytearray()
    for e in elements:
        if isinstance(e, str):
            e = e.encode("utf-8")
        out += struct.pack("<I", len(e)) + bytes(e)
    return bytes(out)


def decode_bytes_elements(raw):
    out, i = [], 0
    while i < len(raw):
        assert i + 4 <= len(raw), f"truncated BYTES length prefix at offset {i}"
        (n,) = struct.unpack_from("<I", raw, i)
        i += 4
        assert i + n <= len(raw), f"BYTES element of {n} bytes overruns the buffer at offset {i}"
        out.append(bytes(raw[i:i + n]))
        i += n
    return out


def tensor_bytes(datatype, values):
    """Raw little-endian bytes of a tensor given as a (nested) list or numpy array."""
    if datatype == "BYTES":
        flat = np.asarray(values, dtype=object).reshape(-1).tolist() if not isinstance(values, (bytes, str)) else [values]
        return encode_bytes_elements(flat)
    return np.ascontiguousarray(np.asarray(values, dtype=V2_NUMPY[datatype])).tobytes()


def tensor_from_bytes(datatype, raw, shape):
    if datatype == "BYTES":
        return np.array(decode_bytes_elements(raw), dtype=object).reshape(shape)
    return np.frombuffer(raw, dtype=V2_NUMPY[datatype]).reshape(shape)


def build_request(inputs, outputs=None, parameters=None, request_id=None, binary=None):
    """Builds an infer request body.

    inputs: list of dicts {"name", "datatype", "shape", "data"}; with binary=True for an input
    (key "binary": True) its data is sent as raw bytes after the JSON header.
    Returns (body_bytes, headers). Without binary inputs the body is plain JSON.
    """
    header = {}
    if request_id is not None:
        header["id"] = request_id
    if parameters is not None:
        header["parameters"] = parameters
    tail = bytearray()
    jinputs = []
    for inp in inputs:
        j = {"name": inp["name"], "datatype": inp["datatype"], "shape": list(inp["shape"])}
        if inp.get("binary"):
            raw = tensor_bytes(inp["datatype"], inp["data"])
            j["parameters"] = dict(inp.get("parameters", {}), binary_data_size=len(raw))
            tail += raw
        else:
            data = inp["data"]
            if isinstance(data, np.ndarray):
                data = data.tolist()
            j["data"] = data
            if "parameters" in inp:
                j["parameters"] = inp["parameters"]
        jinputs.append(j)
    header["inputs"] = jinputs
    if outputs is not None:
        header["outputs"] = outputs
    jbytes = json.dumps(header).encode("utf-8")
    if tail:
        return jbytes + bytes(tail), {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(jbytes)),
        }
    return jbytes, {"Content-Type": "application/json"}


def parse_response(resp):
    """Parses an infer response (JSON or JSON + binary tensors).

    Returns (header, outputs) where outputs maps name -> {"datatype", "shape", "value", "binary"};
    value is a numpy array (binary outputs, reshaped) or the JSON `data` list (flat).
    """
    body = resp.content
    hlen = resp.headers.get("Inference-Header-Content-Length")
    if hlen is not None:
        hlen = int(hlen)
        assert 0 < hlen <= len(body), f"Inference-Header-Content-Length {hlen} vs body {len(body)}"
        header = json.loads(body[:hlen].decode("utf-8"))
        tail = body[hlen:]
    else:
        header = json.loads(body.decode("utf-8"))
        tail = b""
    outputs = {}
    offset = 0
    for out in header.get("outputs", []):
        params = out.get("parameters") or {}
        entry = {"datatype": out["datatype"], "shape": out["shape"], "binary": False}
        if "binary_data_size" in params:
            n = params["binary_data_size"]
            assert offset + n <= len(tail), f"output {out['name']} binary_data_size {n} overruns body"
            entry["value"] = tensor_from_bytes(out["datatype"], tail[offset:offset + n], out["shape"])
            entry["binary"] = True
            offset += n
        else:
            assert "data" in out, f"output {out['name']} has neither data nor binary_data_size: {out}"
            entry["value"] = out["data"]
        outputs[out["name"]] = entry
    assert offset == len(tail), f"{len(tail) - offset} unclaimed bytes after binary outputs"
    return header, outputs


def infer_ok(srv, model, inputs, outputs=None, parameters=None, request_id=None, version=None,
             headers=None):
    """Sends an infer request, asserts 200, returns (header, outputs, response). For identity_all
    the inputs not given are filled with [1, 1] tensors (every graph input must be fed)."""
    if model == "identity_all":
        inputs = identity_inputs(*inputs)
    body, hdrs = build_request(inputs, outputs=outputs, parameters=parameters, request_id=request_id)
    hdrs.update(headers or {})
    r = srv.infer(model, body, version=version, headers=hdrs)
    assert r.status_code == 200, f"{model} infer: {r.status_code} {r.content[:500]!r}"
    header, outs = parse_response(r)
    return header, outs, r


# --------------------------------------------------------------------------------------------
# Raw HTTP over a socket (for things requests cannot do: lying Content-Length, partial sends).


def raw_connect(port, host="127.0.0.1", seconds=None):
    s = socket.create_connection((host, port), timeout=timeout(10) if seconds is None else seconds)
    return s


_LEFTOVER = weakref.WeakKeyDictionary()  # bytes read past the end of a response, per socket


def read_http_response(sock, seconds=None):
    """Reads one HTTP/1.1 response; returns (status, headers{lower: value}, body). Bytes that
    belong to a next (pipelined) response are kept for the next call on the same socket."""
    sock.settimeout(timeout(20) if seconds is None else seconds)
    buf = _LEFTOVER.pop(sock, b"")

    def more():
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed mid-response: {buf[:200]!r}")
        return chunk

    while b"\r\n\r\n" not in buf:
        buf += more()
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            rest += more()
        body, extra = rest[:n], rest[n:]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        data = rest
        while True:
            while b"\r\n" not in data:
                data += more()
            size_line, data = data.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                data += more()
            body += data[:size]
            data = data[size + 2:]
            if size == 0:
                break
        extra = data
    else:  # delimited by the end of the connection
        body = rest
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        extra = b""
    if extra:
        _LEFTOVER[sock] = extra
    return status, headers, body


def raw_request(port, data, seconds=None):
    with raw_connect(port) as s:
        s.sendall(data)
        return read_http_response(s, seconds)


def add_sub_inputs(a, b, binary=False):
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return [
        {"name": "a", "datatype": "FP32", "shape": list(a.shape), "data": a if binary else a.tolist(), "binary": binary},
        {"name": "b", "datatype": "FP32", "shape": list(b.shape), "data": b if binary else b.tolist(), "binary": binary},
    ]


# identity_all has one input per datatype and ONNX Runtime needs every graph input fed, so a
# request that exercises one datatype also carries a tiny [1, 1] tensor for each of the others.
IDENTITY_FILLER = {"BOOL": False, "BYTES": ""}


def identity_fillers(skip=()):
    out = []
    for d in ALL_DATATYPES:
        if d in skip or f"in_{d}" in skip:
            continue
        out.append({"name": f"in_{d}", "datatype": d, "shape": [1, 1], "data": [IDENTITY_FILLER.get(d, 0)]})
    return out


def identity_inputs(*given):
    """The given identity_all inputs (dicts) followed by fillers for every other input."""
    names = {g["name"] for g in given if isinstance(g, dict) and isinstance(g.get("name"), str)}
    return list(given) + identity_fillers(skip=names)


def identity_body(*given, **extra):
    """A JSON request body for identity_all: the given inputs plus fillers."""
    body = {"inputs": identity_inputs(*given)}
    body.update(extra)
    return body
