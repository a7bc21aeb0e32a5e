"""Malformed input, as an attacker sends it: the table in malformed_cases.py (HTTP framing, JSON,
V2 tensors, the binary extension, the application routes, gRPC), each case with the status a
correct server answers. Every case also checks that nothing answered 5xx (or INTERNAL/UNKNOWN
over gRPC), that a 4xx body has the documented error shape, and that the server is still alive
and its stderr free of sanitizer reports afterwards. A case that kills the server fails alone:
the server is restarted for the cases after it.
"""

import json
import shutil
import socket
import subprocess
import time

import grpc
import pytest
import requests

from app_repo import write_repo
from conftest import SANITIZER_MARKERS, timeout
from grpc_stubs import start_grpc_server
from malformed_cases import MAX_RECORDS, all_cases

CASES = all_cases()
ARGS = ["--default-model", "churn", "--max-records", str(MAX_RECORDS)]
# Words that are a library's, not the server's: no error message may carry them (issue 9, item 7).
INTERNALS = ("JSON_ALLOW_NUL", "jansson", "json_error", "protobuf_c", "end of file expected near end of file")
GRPC_SERVER_FAULTS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS)


class Harness:
    """The server the cases run against; restarted when a case kills or hangs it."""

    def __init__(self, repo, workdir):
        self.repo, self.workdir = repo, workdir
        self.stderr_paths = []  # of every server started, restarts included
        self._start()

    def _start(self):
        self.srv = start_grpc_server(self.repo, self.workdir, args=ARGS)
        self.stderr_paths.append(self.srv.stderr_path)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.srv.grpc_port}")
        grpc.channel_ready_future(self.channel).result(timeout=timeout(20))
        self.methods = {}
        self.err_offset = 0

    def call(self, rpc, message):
        m = self.methods.get(rpc)
        if m is None:  # no serializers: the cases are bytes, answers are bytes
            m = self.methods[rpc] = self.channel.unary_unary(rpc)
        return m(message, timeout=timeout(10))

    def new_stderr(self):
        """The stderr written since the last call (whole lines), as bytes."""
        path = self.srv.stderr_path
        with open(path, "rb") as f:
            f.seek(self.err_offset)
            data = f.read()
        if not self.srv.alive():
            return data
        data = data[:data.rfind(b"\n") + 1]
        self.err_offset += len(data)
        return data

    def after_case(self, case):
        """Problems the case left behind: a dead or deaf server, sanitizer reports."""
        problems = []
        err = self.new_stderr().decode("utf-8", "replace")
        for marker in SANITIZER_MARKERS:
            if marker in err:
                i = err.find(marker)
                problems.append(f"sanitizer report:\n{err[max(0, i - 300):i + 3000]}")
                break
        healthy = False
        try:  # a server that is going down may still hold its port for a moment
            self.srv.proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
        if not self.srv.alive():
            problems.append(f"the server died (exit {self.srv.proc.returncode}); stderr tail:\n{err[-3000:]}")
        else:
            try:
                healthy = requests.get(self.srv.url("/v2/health/live"), timeout=timeout(5)).status_code == 200
            except requests.RequestException as exc:
                problems.append(f"the server did not answer /v2/health/live afterwards: {exc!r}")
            if healthy and case.rpc:
                try:
                    self.channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=timeout(5))
                except grpc.RpcError as exc:
                    healthy = False
                    problems.append(f"gRPC ServerLive failed afterwards: {exc.code()} {exc.details()!r}")
        if not healthy:
            self.channel.close()
            if self.srv.alive():
                self.srv.proc.kill()
                self.srv.proc.wait(timeout=30)
            self._start()
        return problems

    def close(self):
        self.channel.close()
        if self.srv.alive():
            self.srv.stop()
        self.srv.check_clean_exit()


@pytest.fixture(scope="module")
def harness(test_models_dir, logs_dir, tmp_path_factory):
    """One repository with the test models and the application models (churn, reg, sentiment,
    plain), served over HTTP and gRPC."""
    repo = str(tmp_path_factory.mktemp("malformed_repo"))
    shutil.copytree(test_models_dir, repo, dirs_exist_ok=True)
    write_repo(repo, broken=False)
    h = Harness(repo, logs_dir)
    yield h
    h.close()  # exit 0, and no sanitizer report (leaks among them) from the last server


# --------------------------------------------------------------------------------------------
# HTTP


def serialize(case):
    if case.raw is not None:
        return case.raw
    head = f"{case.method} {case.path} HTTP/1.1\r\nHost: malformed\r\n"
    for k, v in (case.headers or {}).items():
        head += f"{k}: {v}\r\n"
    body = case.body or b""
    if case.body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("utf-8") + b"\r\n" + body


class Reader:
    """Reads HTTP/1.1 responses from a socket (1xx skipped); bytes past one stay in .buf."""

    def __init__(self, sock, within):
        self.sock, self.buf = sock, b""
        sock.settimeout(within)

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {self.buf[:100]!r}")
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self):
        while True:
            while b"\r\n\r\n" not in self.buf:
                self._more()
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.head = head
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if not 100 <= status < 200:
                break
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                body += self._take(size)
                self._take(2)
                if size == 0:
                    return status, headers, body
        body = self.buf  # delimited by the end of the connection
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        self.buf = b""
        return status, headers, body


def exchange(port, data, case):
    """Sends data on a fresh connection; returns (status, headers, body, after) where after is
    what the connection did next when the case needs it closed: b"" closed, other bytes another
    answer, "open" still open. Raises AssertionError when no answer came."""
    within = timeout(case.answer_within)
    with socket.create_connection(("127.0.0.1", port), timeout=within) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # the server stopped reading early: its answer must still be there to read
        reader = Reader(s, within)
        try:
            status, headers, body = reader.response()
            if case.forbid and case.forbid in reader.head:
                raise AssertionError(f"the response head carries {case.forbid!r}: {reader.head[:300]!r}")
        except socket.timeout:
            raise AssertionError(f"no answer within {within:.0f} s")
        except ConnectionResetError:
            raise AssertionError("the connection was reset without an answer")
        except ConnectionError as exc:
            raise AssertionError(f"the connection closed without a complete answer ({exc})")
        after = None
        if case.close:
            after = reader.buf
            if not after:
                s.settimeout(timeout(1))  # a correct server closes right after its answer
                try:
                    after = s.recv(65536)
                except socket.timeout:
                    after = "open"
                except ConnectionResetError:
                    after = b""
    return status, headers, body, after


def check_error_body(case, status, headers, body):
    """The documented shape of a 4xx body; returns (problems, message)."""
    problems, msg = [], ""
    try:
        doc = json.loads(body)
    except ValueError:
        return [f"the {status} body is not JSON: {body[:200]!r}"], ""
    if not isinstance(doc, dict):
        return [f"the {status} body is not an object: {body[:200]!r}"], ""
    if case.shape == "mlflow":
        msg = doc.get("message")
        if not (isinstance(msg, str) and msg and isinstance(doc.get("error_code"), str)):
            problems.append(f"the {status} body is not MLflow's {{error_code, message}}: {body[:200]!r}")
    else:
        msg = doc.get("error")
        if not (isinstance(msg, str) and msg.strip()):
            problems.append(f"the {status} body has no non-empty 'error' string: {body[:200]!r}")
    ctype = headers.get("content-type", "")
    if not ctype.startswith("application/json"):
        problems.append(f"the {status} body's Content-Type is {ctype!r}")
    return problems, msg if isinstance(msg, str) else ""


def run_http(harness, case):
    data = serialize(case)
    expected = case.expect if isinstance(case.expect, tuple) else (case.expect,)
    problems = []
    try:
        status, headers, body, after = exchange(harness.srv.port, data, case)
    except AssertionError as exc:
        problems.append(str(exc))
        status = None
    if status is not None:
        if status >= 500:
            problems.append(f"a 5xx: {status} {body[:300]!r}")
        if status not in expected:
            problems.append(f"expected {' or '.join(map(str, expected))}, got {status}: {body[:300]!r}")
        if 400 <= status < 500 and case.shape:
            shape_problems, msg = check_error_body(case, status, headers, body)
            problems += shape_problems
            for n in case.needles:
                if n.lower() not in msg.lower():
                    problems.append(f"the message {msg[:300]!r} does not mention {n!r}")
            for word in INTERNALS:
                if word.lower() in msg.lower():
                    problems.append(f"the message {msg[:300]!r} carries a library's words ({word!r})")
        if case.close and status in expected:
            if after == "open":
                problems.append("the connection stayed open after a framing error (must close)")
            elif after:
                problems.append(f"bytes after the framing error were answered as another request: {after[:120]!r}")
    return problems, data


# --------------------------------------------------------------------------------------------
# gRPC


def run_grpc(harness, case):
    expected = case.expect if isinstance(case.expect, tuple) else (case.expect,)
    problems = []
    try:
        harness.call(case.rpc, case.message)
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    if code in GRPC_SERVER_FAULTS:
        problems.append(f"a server fault: {code} {details[:300]!r}")
    if code not in expected:
        problems.append(f"expected {' or '.join(e.name for e in expected)}, got {code.name}: {details[:300]!r}")
    if code != grpc.StatusCode.OK:
        for n in case.needles:
            if n.lower() not in details.lower():
                problems.append(f"the message {details[:300]!r} does not mention {n!r}")
        for word in INTERNALS:
            if word.lower() in details.lower():
                problems.append(f"the message {details[:300]!r} carries a library's words ({word!r})")
    return problems, case.message


# --------------------------------------------------------------------------------------------


def test_the_table():
    """At least 500 cases over the six groups, with unique names."""
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    groups = {n.split("/")[0] for n in names}
    assert groups == {"framing", "json", "tensor", "binary", "app", "grpc"}, groups
    assert len(CASES) >= 500, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed(harness, case):
    run = run_grpc if case.rpc else run_http
    problems, sent = run(harness, case)
    problems += harness.after_case(case)
    if problems:
        note = f" ({case.why})" if case.why else ""
        shown = sent[:300] + (b"..." if len(sent) > 300 else b"")
        pytest.fail(f"{case.name}{note}\nsent: {shown!r}\n" + "\n".join(problems), pytrace=False)


def test_log_lines_stay_json(harness):
    """Runs after the table: every log line the servers wrote while answering it is one JSON
    object in valid UTF-8, whatever bytes the requests carried (paths, ids, names). The access
    log is written in batches, so this is checked once here rather than per case."""
    time.sleep(0.2)  # the last batch (written every 50 ms)
    bad = []
    for path in harness.stderr_paths:
        with open(path, "rb") as f:
            for line in f:
                if not line.startswith(b'{"time"'):
                    continue
                try:
                    json.loads(line.decode("utf-8"))
                except ValueError as exc:
                    bad.append(f"{exc}: {line[:300]!r}")
    assert not bad, f"{len(bad)} log lines are not UTF-8 JSON:\n" + "\n".join(bad[:20])
