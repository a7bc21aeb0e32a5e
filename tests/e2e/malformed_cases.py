"""The malformed-input table that tests/e2e/test_malformed.py runs: each case is a request and the
status a correct server answers it with (docs/http-api.md, docs/application-api.md,
docs/grpc-api.md, RFC 9110/9112 for the wire, issue 9 for the defects found by hand).

Where the standards leave two answers open (bare LF line ends: parse leniently or 400;
obs-fold: replace or 400; duplicate identical JSON keys...), `expect` is a tuple of both; every
other case has one status. No case accepts a 5xx: the RFC's 501 (unknown transfer coding) and
505 (unknown HTTP major version) are answered 400 here, as the docs' error table says.

Groups: framing (raw bytes over a socket), json, tensor (V2 values, shapes, names), binary (the
binary tensor extension), app (/v1 predict, TF Serving :predict, MLflow /invocations), grpc
(raw protobuf bytes, so that invalid UTF-8 and broken messages can be sent).
"""

import base64
import json
import struct
from dataclasses import dataclass, field

import grpc
import numpy as np

from app_repo import CHURN_RECORD, CHURN_ROW
from conftest import identity_fillers

# gRPC methods
INFER = "/inference.GRPCInferenceService/ModelInfer"
META = "/inference.GRPCInferenceService/ModelMetadata"
READY = "/inference.GRPCInferenceService/ModelReady"
PREDICT = "/inferd.ModelService/Predict"
BATCH = "/inferd.ModelService/BatchPredict"
IA = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND
OK = grpc.StatusCode.OK
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

MAX_RECORDS = 50  # the suite's server runs with --max-records 50


@dataclass
class Case:
    name: str
    expect: object                      # HTTP status or gRPC StatusCode; a tuple: any of them
    # raw HTTP (group framing): these bytes on a fresh connection
    raw: bytes = None
    close: bool = False                 # after answering, the server must close the connection
    answer_within: float = 5.0          # seconds (scaled for sanitizer builds)
    # structured HTTP: one request on a fresh connection
    method: str = "POST"
    path: str = None
    headers: dict = None
    body: bytes = None
    # gRPC: a method path and the serialized request
    rpc: str = None
    message: bytes = None
    # checks on the answer
    needles: tuple = ()                 # words the error message must contain (issue 9, item 7)
    shape: str = "error"                # 4xx body: "error" ({"error": str}), "mlflow", None
    forbid: bytes = None                # bytes the response head must not carry
    why: str = ""                       # where the expectation comes from, when not obvious


# ============================================================================================
# framing: raw HTTP/1.1 over a socket

LIVE = "/v2/health/live"
ADD_SUB = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                      {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [10, 20, 30, 40]}]}
ADD_SUB_JSON = json.dumps(ADD_SUB).encode()
INFER_PATH = "/v2/models/add_sub/infer"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def get(path=LIVE, version=b"HTTP/1.1", headers=b"Host: x\r\n"):
    return b"GET " + path.encode("latin-1") + b" " + version + b"\r\n" + headers + b"\r\n"


def post(headers=b"", body=ADD_SUB_JSON, cl=True, path=INFER_PATH):
    h = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if cl:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + headers + b"\r\n" + body


def chunked(chunks, headers=b"Transfer-Encoding: chunked\r\n"):
    return post(headers=headers, body=chunks, cl=False)


def chunks_of(body, size=16):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out


GOOD_CHUNKS = chunks_of(ADD_SUB_JSON)


def framing_cases():
    c = []

    def add(name, raw, expect, close=None, **kw):
        # A 400 for the wire itself closes the connection (RFC 9112 9.6 / issue 9 item 3).
        if close is None:
            close = expect == 400
        c.append(Case("framing/" + name, expect, raw=raw, close=close, **kw))

    # controls: the templates the mutations start from are served
    add("control-get", get(), 200)
    add("control-post", post(), 200)
    add("control-chunked", chunked(GOOD_CHUNKS + b"0\r\n\r\n"), 200)
    add("control-http10", get(version=b"HTTP/1.0", headers=b""), 200, close=True)
    add("control-60k-header", get(headers=b"Host: x\r\nX-Big: " + b"a" * 60000 + b"\r\n"), 200)
    add("control-obs-text-value", get(headers=b"Host: x\r\nX-Name: caf\xe9\r\n"), 200)
    add("control-leading-crlf", b"\r\n" + get(), 200, why="RFC 9112 2.2: ignore at least one empty line before the request line")
    add("control-chunk-ext", chunked(b"%x;name=value\r\n" % len(ADD_SUB_JSON) + ADD_SUB_JSON + b"\r\n0\r\n\r\n"), 200)
    add("control-last-chunk-ext", chunked(GOOD_CHUNKS + b"0;x=1\r\n\r\n"), 200)
    add("control-trailer", chunked(GOOD_CHUNKS + b"0\r\nX-Trailer: 1\r\n\r\n"), 200)
    add("control-chunk-size-leading-zeros", chunked(b"000000000000%x\r\n" % len(ADD_SUB_JSON) + ADD_SUB_JSON + b"\r\n0\r\n\r\n"), 200)
    add("control-one-byte-chunks", chunked(chunks_of(ADD_SUB_JSON, 1) + b"0\r\n\r\n"), 200)
    add("control-te-case", chunked(GOOD_CHUNKS + b"0\r\n\r\n", headers=b"Transfer-Encoding: Chunked\r\n"), 200,
        why="transfer-coding names are case-insensitive (RFC 9112 7)")
    add("control-cl-ows", post(headers=b"", cl=False).replace(b"\r\n\r\n", b"\r\nContent-Length:   %d  \r\n\r\n" % len(ADD_SUB_JSON), 1), 200)
    add("control-expect-100", post(headers=b"Expect: 100-continue\r\n"), 200)
    add("control-request-id-quotes", get(headers=b"Host: x\r\nX-Request-ID: " + b'"\\' * 20 + b"\r\n"), 200)

    # request line
    for name, line in [
        ("garbage-line", b"GARBAGE"), ("method-only", b"GET"), ("no-version", b"GET " + LIVE.encode()),
        ("http09", b"GET /"), ("two-spaces-1", b"GET  " + LIVE.encode() + b" HTTP/1.1"),
        ("two-spaces-2", b"GET " + LIVE.encode() + b"  HTTP/1.1"),
        ("extra-token", b"GET " + LIVE.encode() + b" HTTP/1.1 extra"),
        ("leading-space", b" GET " + LIVE.encode() + b" HTTP/1.1"),
        ("tabs", b"GET\t" + LIVE.encode() + b"\tHTTP/1.1"),
        ("trailing-space", b"GET " + LIVE.encode() + b" HTTP/1.1 "),
        ("method-bad-char", b"G@T " + LIVE.encode() + b" HTTP/1.1"),
        ("method-nonascii", b"G\xc9T " + LIVE.encode() + b" HTTP/1.1"),
        ("target-relative", b"GET v2/health/live HTTP/1.1"),
        ("target-empty", b"GET  HTTP/1.1"),
        ("target-nul", b"GET /v2/health/li\x00ve HTTP/1.1"),
        ("target-ctl", b"GET /v2/health/li\x01ve HTTP/1.1"),
        ("target-del", b"GET /v2/health/li\x7fve HTTP/1.1"),
        ("target-bare-cr", b"GET /v2/health/li\rve HTTP/1.1"),
        ("version-bare-cr", b"GET " + LIVE.encode() + b" HTTP/1.1\rX: y"),
        ("version-2.0", b"GET " + LIVE.encode() + b" HTTP/2.0"),
        ("version-9.9", b"GET " + LIVE.encode() + b" HTTP/9.9"),
        ("version-0.9", b"GET " + LIVE.encode() + b" HTTP/0.9"),
        ("version-lower", b"GET " + LIVE.encode() + b" http/1.1"),
        ("version-no-minor", b"GET " + LIVE.encode() + b" HTTP/1"),
        ("version-1.10", b"GET " + LIVE.encode() + b" HTTP/1.10"),
        ("version-01.1", b"GET " + LIVE.encode() + b" HTTP/01.1"),
        ("version-garbage", b"GET " + LIVE.encode() + b" XTTP/1.1"),
        ("version-nul", b"GET " + LIVE.encode() + b" HTTP/1.1\x00"),
        ("pri-h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM"),
    ]:
        add("line-" + name, line + b"\r\nHost: x\r\n\r\n", 400)
    add("line-tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200) + b"\r\n\r\n", 400)
    add("line-binary-garbage", bytes(range(1, 256)) + b"\r\n\r\n", 400)
    add("line-100k-target", get(path="/" + "a" * 100000), 400, why="docs: head over 64 KiB is a 400")
    add("line-version-1.2", get(version=b"HTTP/1.2"), (200, 400),
        why="RFC 9112 2.3: a higher minor version SHOULD be served as 1.1")
    add("line-absolute-form", get(path="http://x" + LIVE), 200,
        why="RFC 9112 3.2.2: a server MUST accept the absolute-form")
    add("line-lowercase-method", b"get " + LIVE.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", 405,
        why="methods are case-sensitive: an unknown method on a known path")
    add("line-unknown-method", b"FOO " + LIVE.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", 405)
    add("line-long-method", b"A" * 40 + b" " + LIVE.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", (400, 405))
    add("line-unknown-path", get(path="/nope"), 404)
    add("line-model-8000", get(path="/v2/models/" + "a" * 8000 + "/ready"), 404,
        why="issue 9 item 1: a long path overflowed the access log line")
    add("line-model-1100-quotes", get(path="/v2/models/" + '"' * 1100 + "/ready"), (400, 404),
        why="issue 9 item 1: characters that escape to two bytes")
    add("line-model-1100-backslashes", get(path="/v2/models/" + "\\" * 1100 + "/ready"), (400, 404))
    add("line-model-ctl-escapes", get(path="/v2/models/" + "%01" * 700 + "/ready"), (400, 404))
    add("line-model-pct-ff", get(path="/v2/models/%ff%fe/ready"), (400, 404),
        why="issue 9 item 7: a model name that is not UTF-8 got a 404 with an empty body")
    add("line-model-raw-ff", get(path="/v2/models/\xff\xfe/ready"), (400, 404))
    add("line-model-pct-00", get(path="/v2/models/a%00b/ready"), (400, 404))
    add("line-long-query", get(path=LIVE + "?" + "q=" + "x" * 60000), 200)

    # headers
    for name, hdrs in [
        ("no-colon", b"Host: x\r\nX-Foo\r\n"),
        ("empty-name", b"Host: x\r\n: value\r\n"),
        ("space-before-colon", b"Host: x\r\nX-Foo : 1\r\n"),
        ("tab-before-colon", b"Host: x\r\nX-Foo\t: 1\r\n"),
        ("name-paren", b"Host: x\r\nX(Y): 1\r\n"),
        ("name-quote", b"Host: x\r\nX\"Y: 1\r\n"),
        ("name-slash", b"Host: x\r\nX/Y: 1\r\n"),
        ("name-nonascii", b"Host: x\r\nX\xe9: 1\r\n"),
        ("name-nul", b"Host: x\r\nX\x00Y: 1\r\n"),
        ("value-nul", b"Host: x\r\nX-Foo: a\x00b\r\n"),
        ("duplicate-host", b"Host: a\r\nHost: b\r\n"),
        ("duplicate-host-same", b"Host: a\r\nHost: a\r\n"),
        ("host-invalid", b"Host: exa mple\r\n"),
        ("host-comma", b"Host: a, b\r\n"),
        ("header-65k", b"Host: x\r\nX-Big: " + b"a" * 70000 + b"\r\n"),
        ("head-200k", b"Host: x\r\nX-Big: " + b"a" * 200000 + b"\r\n"),
        ("many-headers-70k", b"Host: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(1000))),
    ]:
        # A bad Host is not a framing error: the connection may stay open.
        why = "RFC 9112 3.2: a second Host, or an invalid one, is a 400" if "host" in name else ""
        add("header-" + name, get(headers=hdrs), 400, why=why, close=None if "host" not in name else False)
    add("header-missing-host", get(headers=b""), 400, close=False,
        why="RFC 9112 3.2: an HTTP/1.1 request without Host MUST get a 400")
    add("header-100-headers", get(headers=b"Host: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(100))), (200, 400))
    add("header-obs-fold", get(headers=b"Host: x\r\nX-Foo: a\r\n  b\r\n"), (200, 400), why="RFC 9112 5.2: reject or replace")
    add("header-first-line-folded", get(headers=b" X-Foo: a\r\nHost: x\r\n"), (200, 400), why="RFC 9112 2.2")
    add("header-value-ctl", get(headers=b"Host: x\r\nX-Foo: a\x01b\r\n"), (200, 400),
        why="RFC 9110 5.5: CTLs other than CR, LF, NUL are invalid but MAY be retained")
    add("header-value-bare-cr", get(headers=b"Host: x\r\nX-Foo: a\rb\r\n"), (200, 400),
        why="RFC 9112 2.2: a bare CR is invalid or replaced with SP")
    add("header-request-id-ctl", get(headers=b"Host: x\r\nX-Request-ID: a\x7fb\r\n"), (200, 400))
    add("header-request-id-50k", get(headers=b"Host: x\r\nX-Request-ID: " + b"r" * 50000 + b"\r\n"), (200, 400))
    add("header-request-id-1100-quotes", get(headers=b"Host: x\r\nX-Request-ID: " + b'"' * 1100 + b"\r\n"), (200, 400),
        why="issue 9 item 1: escapes that double in the access log")
    add("header-request-id-not-utf8", get(headers=b"Host: x\r\nX-Request-ID: \xff\xfe\r\n"), (200, 400),
        why="echoed or replaced; the access log line stays valid UTF-8 JSON")
    add("header-request-id-cr-injection", get(headers=b"Host: x\r\nX-Request-ID: a\rSet-Cookie: x=1\r\n"), (200, 400),
        forbid=b"Set-Cookie", why="a bare CR echoed into the response head splits it for lenient clients")
    add("header-expect-unknown", get(headers=b"Host: x\r\nExpect: teapot\r\n"), (200, 417))
    add("header-no-end", b"GET " + LIVE.encode() + b" HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 9000, 400,
        why="a head that passes 64 KiB without ending")
    add("header-no-newline-70k", b"GET " + LIVE.encode() + b" HTTP/1.1" + b"x" * 70000, 400)
    add("header-timeout-ms-garbage", post(headers=b"X-Request-Timeout-Ms: soon\r\n"), 400, close=False)
    add("header-timeout-ms-negative", post(headers=b"X-Request-Timeout-Ms: -5\r\n"), 400, close=False)
    add("header-timeout-ms-huge", post(headers=b"X-Request-Timeout-Ms: 99999999999999999999999\r\n"), 400, close=False)
    add("header-timeout-ms-2^62", post(headers=b"X-Request-Timeout-Ms: 4611686018427387904\r\n"), 400, close=False,
        why="issue 9 item 2: refuse absurd deadlines")
    add("header-timeout-ms-float", post(headers=b"X-Request-Timeout-Ms: 1e3\r\n"), 400, close=False)

    # bare LF line ends: answered at once, leniently or with a 400 (issue 9 item 3)
    lf = dict(answer_within=2.0, close=False, why="RFC 9112 2.2 allows LF alone; never left to the idle timeout")
    add("bare-lf-get", b"GET " + LIVE.encode() + b" HTTP/1.1\nHost: x\n\n", (200, 400), **lf)
    add("bare-lf-end-only", b"GET " + LIVE.encode() + b" HTTP/1.1\r\nHost: x\r\n\n", (200, 400), **lf)
    add("bare-lf-mixed", b"GET " + LIVE.encode() + b" HTTP/1.1\nHost: x\r\n\r\n", (200, 400), **lf)
    add("bare-lf-post", post().replace(b"\r\n", b"\n"), (200, 400), **lf)
    add("bare-lf-http10", b"GET " + LIVE.encode() + b" HTTP/1.0\n\n", (200, 400), **lf)

    # Content-Length
    for name, value in [("negative", b"-1"), ("alpha", b"abc"), ("plus", b"+%d" % len(ADD_SUB_JSON)),
                        ("two-numbers", b"5 5"), ("hex", b"0x10"), ("exponent", b"1e3"), ("empty", b""),
                        ("list-different", b"10, 20"), ("fraction", b"10.0"), ("nul", b"1\x000"),
                        ("unicode-digit", "\u0661".encode())]:
        add("cl-" + name, post(cl=False, headers=b"Content-Length: " + value + b"\r\n"), 400)
    add("cl-overflow-2^64", post(cl=False, headers=b"Content-Length: 18446744073709551616\r\n"), (400, 413))
    add("cl-huge-digits", post(cl=False, headers=b"Content-Length: " + b"9" * 40 + b"\r\n"), (400, 413))
    add("cl-64GiB", post(cl=False, headers=b"Content-Length: 68719476736\r\n"), 413, close=True,
        why="docs: refused from Content-Length before the body is read")
    add("cl-limit-plus-one", post(cl=False, headers=b"Content-Length: 67108865\r\n"), 413, close=True)
    add("cl-two-different", post(headers=b"Content-Length: 5\r\n"), 400)
    add("cl-two-same", post(headers=b"Content-Length: %d\r\n" % len(ADD_SUB_JSON)), (200, 400))
    add("cl-list-same", post(cl=False, headers=b"Content-Length: %d, %d\r\n" % (len(ADD_SUB_JSON), len(ADD_SUB_JSON))), (200, 400))
    add("cl-post-without-length", post(cl=False, body=b""), (400, 411), close=False)
    add("cl-shorter-than-json", post(cl=False, headers=b"Content-Length: 20\r\n"), 400, close=False,
        why="the first 20 bytes are truncated JSON; the rest is a malformed next request")

    # Transfer-Encoding
    for name, te in [("gzip", b"gzip"), ("identity", b"identity"), ("chunked-gzip", b"chunked, gzip"),
                     ("gzip-chunked", b"gzip, chunked"), ("chunked-chunked", b"chunked, chunked"),
                     ("xchunked", b"xchunked"), ("chunked-param", b"chunked;q=1"), ("vtab", b"\x0bchunked"),
                     ("empty", b""), ("comma", b","), ("nul", b"chun\x00ked")]:
        add("te-" + name, chunked(GOOD_CHUNKS + b"0\r\n\r\n", headers=b"Transfer-Encoding: " + te + b"\r\n"), 400,
            why="RFC 9112 6.1: chunked not final, or a coding not understood (501 there; 400 here)")
    add("te-two-headers-chunked-identity",
        chunked(b"0\r\n\r\n" + SMUGGLED, headers=b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"), 400,
        why="issue 9 item 3: answered 400, then the bytes after were served as a second request")
    add("te-two-headers-identity-chunked",
        chunked(b"0\r\n\r\n" + SMUGGLED, headers=b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n"), 400)
    add("te-two-headers-chunked-chunked",
        chunked(b"0\r\n\r\n" + SMUGGLED, headers=b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400)
    add("te-and-cl", post(headers=b"Transfer-Encoding: chunked\r\n", body=GOOD_CHUNKS + b"0\r\n\r\n" + SMUGGLED),
        (200, 400), close=True, why="RFC 9112 6.1: reject, or use chunked; either way close")
    add("te-and-cl-zero", post(cl=False, headers=b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                               body=GOOD_CHUNKS + b"0\r\n\r\n" + SMUGGLED), (200, 400), close=True)
    add("te-http10", b"POST " + INFER_PATH.encode() + b" HTTP/1.0\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + GOOD_CHUNKS + b"0\r\n\r\n", 400,
        why="RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing")
    add("te-on-get", get(headers=b"Host: x\r\nTransfer-Encoding: gzip\r\n"), 400)
    add("te-space-name", chunked(GOOD_CHUNKS + b"0\r\n\r\n", headers=b"Transfer-Encoding : chunked\r\n"), 400)

    # chunks
    for name, body in [
        ("size-not-hex", b"zz\r\nabc\r\n0\r\n\r\n"),
        ("size-0x", b"0x5\r\nabcde\r\n0\r\n\r\n"),
        ("size-negative", b"-5\r\nabc\r\n0\r\n\r\n"),
        ("size-leading-space", b" 5\r\nabcde\r\n0\r\n\r\n"),
        ("size-plus", b"+5\r\nabcde\r\n0\r\n\r\n"),
        ("size-empty", b"\r\nabc\r\n0\r\n\r\n"),
        ("size-overflow", b"ffffffffffffffffffff\r\nab\r\n0\r\n\r\n"),
        ("size-2^64-1", b"ffffffffffffffff\r\nab\r\n0\r\n\r\n"),
        ("size-nul", b"5\x00\r\nabcde\r\n0\r\n\r\n"),
        ("data-longer-than-size", b"5\r\nabcdefgh\r\n0\r\n\r\n"),
        ("data-no-crlf", b"5\r\nabcdeXY0\r\n\r\n"),
        ("data-cr-only", b"5\r\nabcde\r0\r\n\r\n"),
        ("ext-100k", b"5;" + b"e" * 100000 + b"\r\nabcde\r\n0\r\n\r\n"),
        ("trailer-no-colon", GOOD_CHUNKS + b"0\r\nbadtrailer\r\n\r\n"),
        ("trailer-nul", GOOD_CHUNKS + b"0\r\nX-T: a\x00b\r\n\r\n"),
        ("trailer-space-name", GOOD_CHUNKS + b"0\r\nX-T : 1\r\n\r\n"),
        ("trailer-70k", GOOD_CHUNKS + b"0\r\n" + b"X-T: 1\r\n" * 10000 + b"\r\n"),
    ]:
        add("chunk-" + name, chunked(body), (400, 413) if "overflow" in name or "2^64" in name else 400,
            why="issue 9 item 3 (trailer without a colon)" if "trailer-no-colon" in name else "")
    add("chunk-smuggle-after-bad-size", chunked(b"zz\r\n" + SMUGGLED), 400)
    add("chunk-ext-bws", chunked(b"%x ;a=b\r\n" % len(ADD_SUB_JSON) + ADD_SUB_JSON + b"\r\n0\r\n\r\n"), 200,
        why="RFC 9112 7.1.1: chunk-ext allows BWS before ';'")
    add("chunk-size-bare-lf", chunked(b"%x\n" % len(ADD_SUB_JSON) + ADD_SUB_JSON + b"\r\n0\r\n\r\n"), (200, 400),
        answer_within=2.0, close=False)
    add("chunk-trailer-content-length", chunked(GOOD_CHUNKS + b"0\r\nContent-Length: 5\r\n\r\n"), (200, 400), close=False,
        why="framing fields in a trailer are ignored (or refused)")
    add("chunk-json-split-badly", chunked(b"3\r\n{\"i\r\n0\r\n\r\n"), 400, close=False,
        why="good framing, truncated JSON: a 400 for the body, not the wire")
    return c


# ============================================================================================
# json: bodies of POST /v2/models/add_sub/infer that are not valid JSON, or not the right JSON

def jcase(name, body, expect=400, ctype="application/json", path=INFER_PATH, needles=(), why="", **kw):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Case("json/" + name, expect, path=path, headers={"Content-Type": ctype} if ctype else {},
                body=body, needles=needles, why=why, **kw)


def add_sub_text(**top):
    d = dict(ADD_SUB)
    d.update(top)
    return json.dumps(d)


def with_a(**changes):
    """add_sub's good request with input a's fields changed (... deletes one)."""
    a = dict(ADD_SUB["inputs"][0])
    for k, v in changes.items():
        if v is ...:
            a.pop(k, None)
        else:
            a[k] = v
    return {"inputs": [a, ADD_SUB["inputs"][1]]}


def json_cases():
    c = []
    good = ADD_SUB_JSON.decode()
    c.append(jcase("control", good, 200))
    c.append(jcase("control-trailing-whitespace", good + " \n\t ", 200))
    c.append(jcase("control-charset", good, 200, ctype="application/json; charset=utf-8"))
    for cut in (0, 1, 2, 5, 10, 20, 40, 60, len(good) // 2, len(good) - 2, len(good) - 1):
        c.append(jcase(f"truncated-{cut}", good[:cut]))
    c += [
        jcase("whitespace-only", "   \n  "),
        jcase("top-null", "null"), jcase("top-true", "true"), jcase("top-number", "42"),
        jcase("top-string", '"inputs"'), jcase("top-array", "[" + good + "]"),
        jcase("deep-arrays-100k", '{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": '
              + "[" * 100000 + "1" + "]" * 100000 + "}]}", why="issue 9: nesting depth"),
        jcase("deep-objects-50k", '{"a":' * 50000 + "1" + "}" * 50000),
        jcase("deep-unclosed-200k", "[" * 200000),
        jcase("deep-in-id", '{"id": ' + "[" * 20000 + "]" * 20000 + ', "inputs": []}'),
        jcase("deep-in-parameters", '{"parameters": ' + '{"p":' * 20000 + "1" + "}" * 20000 + ', "inputs": []}'),
        jcase("deep-mixed", '{"inputs": ' + '[{"x":' * 20000 + "1" + "}]" * 20000 + "}"),
        jcase("trailing-garbage", good + " x"),
        jcase("two-documents", good + good),
        jcase("trailing-comma", good[:-1] + ",}"),
        jcase("trailing-comma-array", add_sub_text().replace("[1, 2, 3, 4]", "[1, 2, 3, 4,]")),
        jcase("comment-line", "// hi\n" + good),
        jcase("comment-block", "/* hi */" + good),
        jcase("single-quotes", good.replace('"', "'")),
        jcase("unquoted-keys", good.replace('"inputs"', "inputs")),
        jcase("nan-literal", add_sub_text().replace("[1, 2, 3, 4]", "[NaN, 2, 3, 4]")),
        jcase("nan-lower", add_sub_text().replace("[1, 2, 3, 4]", "[nan, 2, 3, 4]")),
        jcase("infinity", add_sub_text().replace("[1, 2, 3, 4]", "[Infinity, 2, 3, 4]")),
        jcase("minus-infinity", add_sub_text().replace("[1, 2, 3, 4]", "[-Infinity, 2, 3, 4]")),
        jcase("leading-zero", add_sub_text().replace("[1, 2, 3, 4]", "[01, 2, 3, 4]")),
        jcase("plus-sign", add_sub_text().replace("[1, 2, 3, 4]", "[+1, 2, 3, 4]")),
        jcase("leading-dot", add_sub_text().replace("[1, 2, 3, 4]", "[.5, 2, 3, 4]")),
        jcase("trailing-dot", add_sub_text().replace("[1, 2, 3, 4]", "[1., 2, 3, 4]")),
        jcase("bare-exponent", add_sub_text().replace("[1, 2, 3, 4]", "[1e, 2, 3, 4]")),
        jcase("bare-minus", add_sub_text().replace("[1, 2, 3, 4]", "[-, 2, 3, 4]")),
        jcase("hex-number", add_sub_text().replace("[1, 2, 3, 4]", "[0x1, 2, 3, 4]")),
        jcase("huge-float", add_sub_text().replace("[1, 2, 3, 4]", "[1e400, 2, 3, 4]")),
        jcase("huge-negative-float", add_sub_text().replace("[1, 2, 3, 4]", "[-1e400, 2, 3, 4]")),
        jcase("fp32-overflow", add_sub_text().replace("[1, 2, 3, 4]", "[1e39, 2, 3, 4]")),
        jcase("huge-int-data", add_sub_text().replace("[1, 2, 3, 4]", "[" + "9" * 400 + ", 2, 3, 4]")),
        jcase("long-mantissa", add_sub_text().replace("[1, 2, 3, 4]", "[1." + "1" * 5000 + ", 2, 3, 4]"), 200),
        jcase("huge-exponent-digits", add_sub_text().replace("[1, 2, 3, 4]", "[1e" + "9" * 400 + ", 2, 3, 4]")),
        jcase("huge-int-shape", add_sub_text().replace("[1, 4]", "[" + "9" * 40 + ", 4]", 1)),
        jcase("float-shape", add_sub_text().replace("[1, 4]", "[1.5, 4]", 1)),
        jcase("exp-shape", add_sub_text().replace("[1, 4]", "[1e0, 4]", 1), (200, 400)),
        jcase("string-unterminated", '{"id": "abc, "inputs": []}'),
        jcase("string-raw-newline", add_sub_text(id="a\nb").replace("\\n", "\n")),
        jcase("string-raw-ctl", add_sub_text(id="a\x01b").replace("\\u0001", "\x01")),
        jcase("string-raw-tab", add_sub_text(id="a\tb").replace("\\t", "\t")),
        jcase("bad-escape", add_sub_text(id="X").replace('"X"', '"\\x41"')),
        jcase("short-unicode-escape", add_sub_text(id="X").replace('"X"', '"\\u12"')),
        jcase("nul-escape-in-id", add_sub_text(id="X").replace('"X"', '"a\\u0000b"'), (200, 400),
              why="issue 9 item 7: no library internals (JSON_ALLOW_NUL) in the message"),
        jcase("nul-escape-in-name", add_sub_text().replace('"name": "a"', '"name": "a\\u0000"', 1),
              why="issue 9 item 7"),
        jcase("nul-raw", b'{"inputs": [\x00]}'),
        jcase("lone-surrogate-escape", add_sub_text(id="X").replace('"X"', '"\\ud800"'), (200, 400)),
        jcase("invalid-utf8-id", add_sub_text(id="X").encode().replace(b'"X"', b'"\xff\xfe"')),
        jcase("invalid-utf8-name", add_sub_text().encode().replace(b'"name": "a"', b'"name": "a\xff"', 1)),
        jcase("invalid-utf8-key", b'{"inp\xc3uts": []}'),
        jcase("overlong-utf8", add_sub_text(id="X").encode().replace(b'"X"', b'"\xc0\xaf"')),
        jcase("utf8-surrogate", add_sub_text(id="X").encode().replace(b'"X"', b'"\xed\xa0\x80"')),
        jcase("utf8-truncated", add_sub_text(id="X").encode().replace(b'"X"', b'"\xe2\x82"')),
        jcase("utf8-above-10ffff", add_sub_text(id="X").encode().replace(b'"X"', b'"\xf4\x90\x80\x80"')),
        jcase("bom", b"\xef\xbb\xbf" + ADD_SUB_JSON, (200, 400), why="RFC 8259 8.1: MAY ignore a BOM"),
        jcase("utf16", good.encode("utf-16")),
        jcase("utf32", good.encode("utf-32")),
        jcase("latin1-in-string", add_sub_text(id="X").encode().replace(b'"X"', b'"caf\xe9"')),
        jcase("duplicate-key-same", good[:-1] + ', "inputs": ' + json.dumps(ADD_SUB["inputs"]) + "}", (200, 400),
              why="RFC 8259 4: duplicate names are not interoperable"),
        jcase("duplicate-key-conflict", good[:-1] + ', "inputs": []}', (200, 400)),
        jcase("duplicate-datatype", add_sub_text().replace('"datatype": "FP32"', '"datatype": "FP32", "datatype": "INT32"', 1), (200, 400)),
        jcase("id-1mb", add_sub_text(id="i" * (1 << 20)), (200, 400)),
        jcase("key-1mb", '{"' + "k" * (1 << 20) + '": 1, "inputs": ' + json.dumps(ADD_SUB["inputs"]) + "}", (200, 400),
              why="the V2 protocol does not say whether unknown top-level fields are errors"),
        jcase("10k-inputs", json.dumps({"inputs": [dict(ADD_SUB["inputs"][0], name=f"x{i}") for i in range(10000)]})),
        jcase("1m-values-wrong-shape", json.dumps(with_a(data=[1.0] * 1000000))),
        jcase("empty-object", "{}"),
        jcase("inputs-null", '{"inputs": null}'),
        jcase("inputs-object", '{"inputs": {}}'),
        jcase("inputs-string", '{"inputs": "a"}'),
        jcase("inputs-empty", '{"inputs": []}'),
        jcase("inputs-numbers", '{"inputs": [1, 2]}'),
        jcase("inputs-null-elem", '{"inputs": [null]}'),
        jcase("inputs-nested-array", '{"inputs": [[' + json.dumps(ADD_SUB["inputs"][0]) + "]]}"),
        jcase("outputs-string", add_sub_text(outputs="sum")),
        jcase("outputs-object", add_sub_text(outputs={"name": "sum"})),
        jcase("outputs-number", add_sub_text(outputs=[3])),
        jcase("outputs-name-null", add_sub_text(outputs=[{"name": None}])),
        jcase("parameters-list", add_sub_text(parameters=[1])),
        jcase("parameters-string", add_sub_text(parameters="x")),
        jcase("id-number", add_sub_text(id=5)),
        jcase("id-object", add_sub_text(id={})),
        jcase("id-null", add_sub_text(id=None), (200, 400)),
        jcase("ctype-text", good, 415, ctype="text/plain"),
        jcase("ctype-form", good, 415, ctype="application/x-www-form-urlencoded"),
        jcase("ctype-xml", good, 415, ctype="application/xml"),
        jcase("ctype-garbage", good, 400, ctype="\x01\x02"),  # a control character in a field value is a framing error
        jcase("ctype-json-utf16-charset", good.encode("utf-16"), (400, 415), ctype="application/json; charset=utf-16"),
        jcase("empty-body", b"", 400),
    ]
    return c


# ============================================================================================
# tensor: well-formed JSON, wrong tensors (add_sub: a, b FP32 [N, 4], max_batch_size 8;
# identity_all: one [-1, -1] input per datatype)

def tcase(name, body, expect=400, model="add_sub", needles=(), why="", path=None, headers=None):
    return Case("tensor/" + name, expect, path=path or f"/v2/models/{model}/infer",
                headers=dict({"Content-Type": "application/json"}, **(headers or {})),
                body=json.dumps(body).encode() if not isinstance(body, bytes) else body, needles=needles, why=why)


def ident(datatype, shape, data):
    return {"inputs": [{"name": f"in_{datatype}", "datatype": datatype, "shape": shape, "data": data}]
            + identity_fillers(skip=[datatype])}


def tensor_cases():
    c = [tcase("control-add_sub", ADD_SUB, 200), tcase("control-identity", ident("UINT8", [1, 1], [255]), 200, model="identity_all"),
         tcase("control-nested", with_a(data=[[1, 2, 3, 4]]), 200)]
    # shapes and element counts
    for name, shape, data in [
        ("fewer-values", [1, 4], [1, 2, 3]), ("more-values", [1, 4], [1, 2, 3, 4, 5]),
        ("no-values", [1, 4], []), ("two-rows-one-row-data", [2, 4], [1, 2, 3, 4]),
        ("nested-wrong-count", [1, 4], [[1, 2], [3, 4]]), ("nested-deeper-than-shape", [1, 4], [[[1], [2], [3], [4]]]),
        ("nested-deeper-2", [1, 4], [[[1, 2, 3, 4]]]), ("ragged", [2, 4], [[1, 2, 3, 4], [1, 2]]),
        ("ragged-2", [2, 4], [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]]), ("mixed-nesting", [1, 4], [1, [2], 3, 4]),
        ("empty-rows", [1, 4], [[], [], [], []]), ("rank-1", [4], [1, 2, 3, 4]), ("rank-3", [1, 1, 4], [1, 2, 3, 4]),
        ("scalar-shape", [], [1]), ("rank-100", [1] * 99 + [4], [1, 2, 3, 4]), ("rank-10000", [1] * 10000, [1]),
        ("width-5", [1, 5], [1, 2, 3, 4, 5]), ("batch-9", [9, 4], [1.0] * 36),
        ("negative-dim", [-1, 4], [1, 2, 3, 4]), ("negative-dims", [-1, -4], [1, 2, 3, 4]),
        ("negative-product-positive", [-2, -2], [1, 2, 3, 4]),
        ("dims-2^62", [2 ** 62, 2 ** 62], [1, 2, 3, 4]), ("dims-2^31", [2 ** 31, 2 ** 31], [1, 2, 3, 4]),
        ("dims-2^32", [2 ** 32, 2 ** 32], [1, 2, 3, 4]), ("dim-int64-max", [2 ** 63 - 1, 4], [1, 2, 3, 4]),
        ("dim-2^63", [2 ** 63, 4], [1, 2, 3, 4]), ("dim-2^64", [2 ** 64, 4], [1, 2, 3, 4]),
        ("dim-int64-min", [-(2 ** 63), 4], [1, 2, 3, 4]), ("dims-wrap-to-4", [2 ** 62, 2 ** 2, 2 ** 2], [1, 2, 3, 4]),
        ("zero-and-huge", [0, 2 ** 63 - 1], []), ("dims-1tb-claim", [1, 2 ** 40], [1, 2, 3, 4]),
        ("shape-string", "[1,4]", [1, 2, 3, 4]), ("shape-null", None, [1, 2, 3, 4]), ("shape-object", {"0": 1}, [1, 2, 3, 4]),
        ("shape-floats", [1.0, 4.5], [1, 2, 3, 4]), ("shape-bools", [True, 4], [1, 2, 3, 4]),
        ("shape-strings", ["1", "4"], [1, 2, 3, 4]), ("shape-nested", [[1], [4]], [1, 2, 3, 4]),
    ]:
        c.append(tcase("shape-" + name, with_a(shape=shape, data=data),
                       why="issue 9 item 6" if "deeper" in name else ""))
    c.append(tcase("shape-zero-rows", {"inputs": [dict(ADD_SUB["inputs"][0], shape=[0, 4], data=[]),
                                                 dict(ADD_SUB["inputs"][1], shape=[0, 4], data=[])]}, (200, 400),
                   why="issue 9 item 4: zero rows one way everywhere, never a 5xx"))
    c.append(tcase("zero-rows-churn", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [0, 12], "data": []}]},
                   (200, 400), model="churn", why="issue 9 item 4: zero rows one way everywhere"))
    c.append(tcase("zero-rows-sentiment", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [0], "data": []}]},
                   (200, 400), model="sentiment", why="issue 9 item 4: BYTES [0] gave 500 while churn [0, 12] gave 200"))
    for idx in (10, 1000, 2 ** 62, -11):
        c.append(tcase(f"ort-gather-index-{idx}", {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [idx]}]},
                       model="gather_fail", why="issue 9 item 4: an ONNX Runtime error caused by the request's values is a 400"))
    c.append(tcase("control-gather", {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [3]}]}, 200,
                   model="gather_fail"))
    c.append(tcase("batch-mismatch", {"inputs": [ADD_SUB["inputs"][0], dict(ADD_SUB["inputs"][1], shape=[2, 4], data=[1.0] * 8)]}))
    # datatypes
    for dt in ["FLOAT", "fp32", "", "FP8", "BF16", "INT128", "BYTES", "FP64", "INT32", "UINT8", "BOOL", "FP16",
               "FP32 ", " FP32", "FP\u00b3\u00b2", 5, None, ["FP32"], {"t": "FP32"}]:
        c.append(tcase(f"datatype-{dt!r}", with_a(datatype=dt)))
    # names and fields
    for name, body in [
        ("name-case", with_a(name="A")), ("name-trailing-space", with_a(name="a ")), ("name-empty", with_a(name="")),
        ("name-number", with_a(name=5)), ("name-null", with_a(name=None)), ("name-nul", with_a(name="a\u0000")),
        ("name-unicode", with_a(name="\u00e4")), ("name-10k", with_a(name="a" * 10000)),
        ("name-missing", with_a(name=...)), ("datatype-missing", with_a(datatype=...)), ("shape-missing", with_a(shape=...)),
        ("data-missing", with_a(data=...)), ("data-null", with_a(data=None)), ("data-string", with_a(data="1,2,3,4")),
        ("data-object", with_a(data={"0": 1})), ("data-number", with_a(data=1)),
        ("missing-input-b", {"inputs": [ADD_SUB["inputs"][0]]}),
        ("unknown-extra-input", {"inputs": ADD_SUB["inputs"] + [dict(ADD_SUB["inputs"][0], name="c")]}),
        ("duplicate-input", {"inputs": ADD_SUB["inputs"] + [ADD_SUB["inputs"][0]]}),
        ("only-unknown", {"inputs": [dict(ADD_SUB["inputs"][0], name="zz")]}),
        ("unknown-output", dict(ADD_SUB, outputs=[{"name": "prod"}])),
        ("duplicate-output", dict(ADD_SUB, outputs=[{"name": "sum"}, {"name": "sum"}])),
        ("output-no-name", dict(ADD_SUB, outputs=[{}])),
        ("output-binary-data-string", dict(ADD_SUB, outputs=[{"name": "sum", "parameters": {"binary_data": "yes"}}])),
        ("input-parameters-list", with_a(parameters=[1])),
        ("binary-output-string", dict(ADD_SUB, parameters={"binary_data_output": "yes"})),
    ]:
        c.append(tcase(name, body))
    # values
    for name, d, shape, data in [
        ("uint8-300", "UINT8", [1, 1], [300]), ("uint8-256", "UINT8", [1, 1], [256]), ("uint8-neg", "UINT8", [1, 1], [-1]),
        ("int8-128", "INT8", [1, 1], [128]), ("int8-neg-129", "INT8", [1, 1], [-129]),
        ("int16-40000", "INT16", [1, 1], [40000]), ("uint16-70000", "UINT16", [1, 1], [70000]),
        ("int32-2^31", "INT32", [1, 1], [2 ** 31]), ("uint32-2^32", "UINT32", [1, 1], [2 ** 32]),
        ("uint32-neg", "UINT32", [1, 1], [-1]), ("int64-2^63", "INT64", [1, 1], [2 ** 63]),
        ("int64-neg-2^63-1", "INT64", [1, 1], [-(2 ** 63) - 1]), ("uint64-neg", "UINT64", [1, 1], [-1]),
        ("uint64-2^64", "UINT64", [1, 1], [2 ** 64]),
        ("int32-fraction", "INT32", [1, 1], [1.5]), ("int32-string", "INT32", [1, 1], ["1"]),
        ("int32-bool", "INT32", [1, 1], [True]), ("int32-null", "INT32", [1, 1], [None]),
        ("int64-exp", "INT64", [1, 1], [1e300]), ("fp16-70000", "FP16", [1, 1], [70000]),
        ("fp16-neg-70000", "FP16", [1, 1], [-70000]), ("fp32-string", "FP32", [1, 1], ["1.0"]),
        ("fp32-null", "FP32", [1, 1], [None]), ("fp32-bool", "FP32", [1, 1], [True]), ("fp32-1e39", "FP32", [1, 1], [1e39]),
        ("fp64-1e309", "FP64", [1, 1], [float("inf")]),
        ("bool-2", "BOOL", [1, 1], [2]), ("bool-string", "BOOL", [1, 1], ["true"]), ("bool-null", "BOOL", [1, 1], [None]),
        ("bool-1", "BOOL", [1, 1], [1]),
        ("bytes-number", "BYTES", [1, 1], [5]), ("bytes-null", "BYTES", [1, 1], [None]),
        ("bytes-object", "BYTES", [1, 1], [{"b64": "YQ=="}]), ("bytes-list", "BYTES", [1, 2], ["a", ["b"]]),
        ("bytes-nested-deeper", "BYTES", [1, 1], [[["a"]]]), ("bytes-bool", "BYTES", [1, 1], [True]),
        ("uint8-nested-deeper", "UINT8", [1, 2], [[[0], [1]]]),
    ]:
        body = ident(d, shape, data)
        if d == "FP64":
            body = json.dumps(body).encode()  # carries the literal Infinity
        c.append(tcase("value-" + name, body, model="identity_all",
                       why="issue 9 item 6" if "deeper" in name else ""))
    # request parameters (issue 9 item 2: deadlines)
    for name, params in [
        ("timeout-2^63-1", {"timeout": 2 ** 63 - 1}), ("timeout-2^62", {"timeout": 2 ** 62}),
("timeout-negative", {"timeout": -1}),
        ("timeout-int64-min", {"timeout": -(2 ** 63)}), ("timeout-2^64", {"timeout": 2 ** 64}),
        ("timeout-string", {"timeout": "soon"}), ("timeout-fraction", {"timeout": 1.5}),
        ("timeout-null", {"timeout": None}), ("timeout-bool", {"timeout": True}),
        ("priority-negative", {"priority": -1}), ("priority-99", {"priority": 99}), ("priority-2^62", {"priority": 2 ** 62}),
        ("priority-string", {"priority": "high"}), ("priority-fraction", {"priority": 1.5}),
    ]:
        c.append(tcase("param-" + name, dict(ADD_SUB, parameters=params),
                       why="issue 9 item 2: saturate, and refuse absurd values with 400" if "timeout" in name else ""))
    c.append(tcase("param-timeout-2^53", dict(ADD_SUB, parameters={"timeout": 2 ** 53}), (200, 400),
                   why="285 years: saturated or refused, never a wrapped deadline"))
    # model and version in the path
    for name, path, expect in [
        ("unknown-model", "/v2/models/nope/infer", 404), ("unknown-version", "/v2/models/add_sub/versions/99/infer", 404),
        ("version-alpha", "/v2/models/add_sub/versions/abc/infer", 404),
        ("version-negative", "/v2/models/add_sub/versions/-1/infer", 404),
        ("version-2^64", "/v2/models/add_sub/versions/18446744073709551617/infer", 404),
        ("version-empty", "/v2/models/add_sub/versions//infer", 404),
        ("model-pct-ff", "/v2/models/%ff/infer", (400, 404)), ("model-8000", "/v2/models/" + "m" * 8000 + "/infer", 404),
        ("model-dotdot", "/v2/models/../infer", 404), ("infer-trailing-slash", "/v2/models/add_sub/infer/", (200, 404)),
    ]:
        c.append(tcase("path-" + name, ADD_SUB, expect, path=path))
    return c


# ============================================================================================
# binary: the binary tensor data extension on add_sub (and sentiment, a string tensor)

A_RAW = np.array([[1, 2, 3, 4]], np.float32).tobytes()
B_RAW = np.array([[10, 20, 30, 40]], np.float32).tobytes()


def bin_header(a_size=16, b_size=16, a_extra=None, b_extra=None, **top):
    a = {"name": "a", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": a_size}}
    b = {"name": "b", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": b_size}}
    a.update(a_extra or {})
    b.update(b_extra or {})
    d = {"inputs": [a, b]}
    d.update(top)
    return json.dumps(d).encode()


def bcase(name, header, tail, expect=400, hlen=None, model="add_sub", needles=(), why="", headers=None):
    hdrs = {"Content-Type": "application/octet-stream"}
    if hlen is not ...:
        hdrs["Inference-Header-Content-Length"] = str(len(header)) if hlen is None else hlen
    hdrs.update(headers or {})
    return Case("binary/" + name, expect, path=f"/v2/models/{model}/infer", headers=hdrs, body=header + tail,
                needles=needles, why=why)


def bytes_elems(*elems):
    return b"".join(struct.pack("<I", len(e)) + e for e in elems)


def sentiment_header(size, shape=(1,)):
    return json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": list(shape),
                                   "parameters": {"binary_data_size": size}}]}).encode()


def binary_cases():
    h = bin_header()
    good_tail = A_RAW + B_RAW
    c = [bcase("control", h, good_tail, 200),
         bcase("control-binary-output", bin_header(parameters={"binary_data_output": True}), good_tail, 200),
         bcase("control-sentiment", sentiment_header(len(bytes_elems(b"great"))), bytes_elems(b"great"), 200, model="sentiment")]
    # Inference-Header-Content-Length
    c.append(bcase("hlen-missing", h, good_tail, hlen=..., needles=("Inference-Header-Content-Length",),
                   why="issue 9 item 7: say the header is missing"))
    for v in ["0", "-1", "abc", "1 2", "0x10", "", "+%d" % len(h), "%d.0" % len(h), "1", "17", str(len(h) - 1),
              str(len(h) + 1), str(len(h) + len(good_tail)), str(len(h) + len(good_tail) + 1), "1000000",
              "99999999999999999999999", "-9223372036854775808"]:
        c.append(bcase(f"hlen-{v[:24]!r}", h, good_tail, hlen=v))
    c.append(bcase("hlen-2^64", h, good_tail, hlen="18446744073709551616", needles=("18446744073709551616",),
                   why="issue 9 item 7: numbers reported as sent"))
    c.append(bcase("hlen-2^63", h, good_tail, hlen="9223372036854775808", needles=("9223372036854775808",)))
    c.append(bcase("hlen-two-different", h, good_tail, headers={"inference-header-content-length": "5"}))
    c.append(bcase("octet-random", bytes(range(256)) * 4, b"", hlen=...))
    c.append(bcase("octet-empty", b"", b"", hlen=...))
    c.append(bcase("header-not-json", b"not json at all!", good_tail))
    c.append(bcase("header-truncated-json", h[:-3], good_tail, hlen=str(len(h) - 3)))
    c.append(bcase("header-invalid-utf8", h.replace(b'"a"', b'"\xff"'), good_tail))
    # binary_data_size
    for name, a_size, tail in [
        ("size-larger-than-body", 32, good_tail), ("size-smaller", 12, good_tail), ("size-zero", 0, good_tail),
        ("size-negative", -16, good_tail), ("size-string", "16", good_tail), ("size-float", 16.5, good_tail),
        ("size-null", None, good_tail), ("size-2^62", 2 ** 62, good_tail), ("size-2^64", 2 ** 64, good_tail),
        ("size-2^63-1", 2 ** 63 - 1, good_tail), ("size-bool", True, good_tail), ("size-object", {"n": 16}, good_tail),
        ("truncated-tail", 16, good_tail[:-5]), ("no-tail", 16, b""), ("trailing-garbage", 16, good_tail + b"junk"),
        ("tail-one-byte-short", 16, good_tail[:-1]),
    ]:
        c.append(bcase(name, bin_header(a_size=a_size), tail))
    c.append(bcase("size-both-claim-all", bin_header(a_size=32, b_size=32), good_tail))
    c.append(bcase("size-vs-shape", bin_header(a_size=12, b_size=20), good_tail, why="sizes add up but do not match shapes"))
    c.append(bcase("data-and-size", bin_header(a_extra={"data": [1, 2, 3, 4]}), good_tail))
    c.append(bcase("size-on-one-input-only", json.dumps({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
        {"name": "b", "datatype": "FP32", "shape": [1, 4]}]}).encode(), A_RAW))
    c.append(bcase("shape-2^62", bin_header(a_extra={"shape": [2 ** 62, 2 ** 62]}), good_tail))
    c.append(bcase("shape-2^32", bin_header(a_extra={"shape": [2 ** 32, 2 ** 32]}), good_tail))
    c.append(bcase("shape-huge-claim", bin_header(a_extra={"shape": [1, 2 ** 40]}), good_tail))
    c.append(bcase("datatype-fp16-size", bin_header(a_extra={"datatype": "FP16"}), good_tail))
    c.append(bcase("datatype-int32", bin_header(a_extra={"datatype": "INT32"}), good_tail))
    c.append(bcase("nan", bin_header(), np.array([[np.nan, 2, 3, 4]], np.float32).tobytes() + B_RAW))
    c.append(bcase("inf", bin_header(), np.array([[np.inf, 2, 3, 4]], np.float32).tobytes() + B_RAW))
    c.append(bcase("neg-inf", bin_header(), B_RAW + np.array([[1, 2, 3, -np.inf]], np.float32).tobytes()))
    c.append(bcase("bool-byte-2", json.dumps({"inputs": [{"name": "in_BOOL", "datatype": "BOOL", "shape": [1, 1],
                                                           "parameters": {"binary_data_size": 1}}]
                                              + identity_fillers(skip=["BOOL"])}).encode(), b"\x02",
                   model="identity_all", why="a BOOL byte is 0 or 1"))
    c.append(bcase("unknown-output-binary", bin_header(outputs=[{"name": "prod", "parameters": {"binary_data": True}}]), good_tail))
    # BYTES elements: sentiment's text is an ONNX string tensor (issue 9 item 4)
    for name, elems, shape, expect in [
        ("invalid-utf8", bytes_elems(b"\xff\xfe great"), (1,), 400),
        ("invalid-utf8-second", bytes_elems(b"good", b"bad \xc3"), (2,), 400),
        ("overlong-utf8", bytes_elems(b"\xc0\xaf"), (1,), 400),
        ("utf8-surrogate", bytes_elems(b"\xed\xa0\x80"), (1,), 400),
        ("length-overruns", struct.pack("<I", 100) + b"abc", (1,), 400),
        ("length-2^32-1", struct.pack("<I", 0xFFFFFFFF) + b"abc", (1,), 400),
        ("truncated-prefix", b"\x05\x00\x00", (1,), 400),
        ("count-more-than-shape", bytes_elems(b"a", b"b"), (1,), 400),
        ("count-less-than-shape", bytes_elems(b"a"), (2,), 400),
        ("extra-bytes", bytes_elems(b"a") + b"\x00", (1,), 400),
        ("shape-zero", b"", (0,), (200, 400)),
        ("shape-2^62", bytes_elems(b"a"), (2 ** 62,), 400),
    ]:
        why = "issue 9 item 4: invalid UTF-8 into StringNormalizer gave 500; [0] gave 500" if "utf8" in name or "zero" in name else ""
        c.append(bcase("bytes-" + name, sentiment_header(len(elems), shape), elems, expect, model="sentiment", why=why,
                       needles=("text",) if "utf8" in name else ()))
    return c


# ============================================================================================
# app: /v1/models/{m}/predict, /v1/models/{m}:predict (TF Serving), /invocations (MLflow)

def rec(**changes):
    r = dict(CHURN_RECORD)
    for k, v in changes.items():
        if v is ...:
            r.pop(k, None)
        else:
            r[k] = v
    return r


def acase(name, path, body, expect=400, shape="error", needles=(), why="", ctype="application/json", headers=None):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    hdrs = {"Content-Type": ctype} if ctype else {}
    hdrs.update(headers or {})
    return Case("app/" + name, expect, path=path, headers=hdrs, body=body, shape=shape, needles=needles, why=why)


V1 = "/v1/models/churn/predict"
TF = "/v1/models/churn:predict"
ML = "/invocations"
COLUMNS = list(CHURN_RECORD)
ML_ROW = [CHURN_RECORD[k] for k in COLUMNS]


def app_cases():
    c = [acase("v1-control", V1, {"inputs": [CHURN_RECORD]}, 200),
         acase("tf-control", TF, {"instances": [CHURN_ROW]}, 200),
         acase("ml-control", ML, {"dataframe_records": [CHURN_RECORD]}, 200, shape="mlflow")]
    # /v1 predict
    for name, body in [
        ("inputs-empty", {"inputs": []}), ("inputs-null", {"inputs": None}), ("inputs-string", {"inputs": "x"}),
        ("inputs-numbers", {"inputs": [1, 2]}), ("inputs-rows", {"inputs": [CHURN_ROW]}),
        ("inputs-null-record", {"inputs": [None]}), ("inputs-nested", {"inputs": [[CHURN_RECORD]]}),
        ("no-inputs", {}), ("unknown-top-field", {"inputs": [CHURN_RECORD], "foo": 1}),
        ("missing-feature", {"inputs": [rec(age=...)]}), ("null-feature", {"inputs": [rec(age=None)]}),
        ("unknown-feature", {"inputs": [rec(colour="red")]}), ("tenure-string", {"inputs": [rec(tenure_months="3")]}),
        ("age-fraction", {"inputs": [rec(age=29.5)]}), ("age-bool", {"inputs": [rec(age=True)]}),
        ("age-2^63", {"inputs": [rec(age=2 ** 63)]}), ("age-200", {"inputs": [rec(age=200)]}),
        ("tenure-negative", {"inputs": [rec(tenure_months=-1)]}), ("tenure-1e400", b'{"inputs": [' +
                                                                    json.dumps(rec(tenure_months=1)).replace('"tenure_months": 1', '"tenure_months": 1e400').encode() + b"]}"),
        ("tenure-nan", b'{"inputs": [' + json.dumps(rec(tenure_months=1)).replace('"tenure_months": 1', '"tenure_months": NaN').encode() + b"]}"),
        ("tenure-object", {"inputs": [rec(tenure_months={"v": 3})]}), ("tenure-list", {"inputs": [rec(tenure_months=[3])]}),
        ("contract-number", {"inputs": [rec(contract=5)]}), ("contract-unknown", {"inputs": [rec(contract="weekly")]}),
        ("contract-case", {"inputs": [rec(contract="Month-To-Month")]}), ("contract-10k", {"inputs": [rec(contract="c" * 10000)]}),
        ("contract-nul", {"inputs": [rec(contract="month-to-month\u0000")]}),
        ("record-empty", {"inputs": [{}]}), ("all-wrong-100", {"inputs": [rec(age="x", contract=1)] * 50}),
        ("too-many-records", {"inputs": [CHURN_RECORD] * (MAX_RECORDS + 1)}),
        ("features-not-list", {"features": "x"}), ("features-name-number", {"features": [{"name": 5, "value": 1}]}),
        ("features-no-value", {"features": [{"name": "age"}]}), ("features-unknown", {"features": [{"name": "zz", "value": 1}]}),
        ("top-k-string", {"inputs": [CHURN_RECORD], "parameters": {"top_k": "x"}}),
        ("top-k-negative", {"inputs": [CHURN_RECORD], "parameters": {"top_k": -1}}),
        ("top-k-huge", {"inputs": [CHURN_RECORD], "parameters": {"top_k": 2 ** 63 - 1}}),
        ("return-probabilities-string", {"inputs": [CHURN_RECORD], "parameters": {"return_probabilities": "yes"}}),
        ("parameters-list", {"inputs": [CHURN_RECORD], "parameters": [1]}),
        ("top-not-object", [CHURN_RECORD]),
    ]:
        expect = 413 if name == "too-many-records" else 400
        c.append(acase("v1-" + name, V1, body, expect))
    c.append(acase("v1-inputs-object", V1, {"inputs": CHURN_RECORD}, (200, 400),
                   why="issue 9 item 6: 400, or a single record accepted on purpose and documented"))
    c.append(acase("v1-unknown-model", "/v1/models/nope/predict", {"inputs": [CHURN_RECORD]}, 404))
    c.append(acase("v1-unknown-version", "/v1/models/churn/versions/99/predict", {"inputs": [CHURN_RECORD]}, 404))
    c.append(acase("v1-version-header-unknown", V1, {"inputs": [CHURN_RECORD]}, 404, headers={"X-Model-Version": "99"}))
    c.append(acase("v1-version-header-garbage", V1, {"inputs": [CHURN_RECORD]}, (400, 404), headers={"X-Model-Version": "\x01x"}))
    c.append(acase("v1-no-schema", "/v1/models/plain/predict", {"inputs": [{"x": 1}]}, 400))
    c.append(acase("v1-reg-b-101", "/v1/models/reg/predict", {"inputs": [{"a": 1, "b": 101, "colour": "red"}]}))
    c.append(acase("v1-reg-b-fraction", "/v1/models/reg/predict", {"inputs": [{"a": 1, "b": 1.5, "colour": "red"}]}))
    c.append(acase("v1-reg-colour", "/v1/models/reg/predict", {"inputs": [{"a": 1, "colour": "purple"}]}))
    c.append(acase("v1-sentiment-number", "/v1/models/sentiment/predict", {"inputs": [{"text": 5}]}))
    c.append(acase("v1-sentiment-too-long", "/v1/models/sentiment/predict", {"inputs": [{"text": "w " * 6000}]}))
    c.append(acase("v1-sentiment-bad-utf8", "/v1/models/sentiment/predict", b'{"inputs": [{"text": "\xff\xfe"}]}'))
    c.append(acase("v1-truncated", V1, json.dumps({"inputs": [CHURN_RECORD]}).encode()[:-7]))
    c.append(acase("v1-ctype-text", V1, {"inputs": [CHURN_RECORD]}, 415, ctype="text/plain"))
    # TF Serving
    for name, path, body, needles in [
        ("empty-object", TF, {}, ("instances", "inputs")),
        ("both-forms", TF, {"instances": [CHURN_ROW], "inputs": {"input": [CHURN_ROW]}}, ()),
        ("instances-not-list", TF, {"instances": "x"}, ()), ("instances-empty", TF, {"instances": []}, ()),
        ("instances-null", TF, {"instances": None}, ()), ("row-short", TF, {"instances": [CHURN_ROW[:11]]}, ()),
        ("row-long", TF, {"instances": [CHURN_ROW + [1]]}, ()), ("row-strings", TF, {"instances": [["a"] * 12]}, ()),
        ("row-nested-deeper", TF, {"instances": [[[v] for v in CHURN_ROW]]}, ()),
        ("rows-ragged", TF, {"instances": [CHURN_ROW, CHURN_ROW[:5]]}, ()),
        ("row-null", TF, {"instances": [None]}, ()), ("row-bools", TF, {"instances": [[True] * 12]}, ()),
        ("records-unknown-feature", TF, {"instances": [rec(colour="red")]}, ()),
        ("records-wrong-type", TF, {"instances": [rec(age="old")]}, ()),
        ("columns-unknown-input", TF, {"inputs": {"nope": [CHURN_ROW]}}, ()),
        ("columns-short", TF, {"inputs": {"input": [CHURN_ROW[:3]]}}, ()),
        ("columns-string", TF, {"inputs": "x"}, ()), ("columns-null", TF, {"inputs": None}, ()),
        ("signature-other", TF, {"signature_name": "other", "instances": [CHURN_ROW]}, ()),
        ("signature-number", TF, {"signature_name": 5, "instances": [CHURN_ROW]}, ()),
        ("sentiment-b64-invalid", "/v1/models/sentiment:predict", {"instances": [{"b64": "!!!"}]}, ()),
        ("sentiment-b64-number", "/v1/models/sentiment:predict", {"instances": [{"b64": 5}]}, ()),
        ("sentiment-b64-not-utf8", "/v1/models/sentiment:predict", {"instances": [{"b64": base64.b64encode(b"\xff\xfe").decode()}]}, ()),
        ("sentiment-number", "/v1/models/sentiment:predict", {"instances": [5]}, ()),
        ("plain-width", "/v1/models/plain:predict", {"instances": [[1, 2, 3]]}, ()),
        ("plain-nan", "/v1/models/plain:predict", b'{"instances": [[NaN, 1]]}', ()),
        ("plain-1e39", "/v1/models/plain:predict", b'{"instances": [[1e39, 1]]}', ()),
    ]:
        why = "issue 9 item 7: say neither instances nor inputs was given" if name == "empty-object" else (
            "issue 9 item 4: not-UTF-8 into a string tensor gave 500" if "not-utf8" in name else "")
        c.append(acase("tf-" + name, path, body, needles=needles, why=why))
    c.append(acase("tf-too-many-rows", TF, {"instances": [CHURN_ROW] * 1001}, (400, 413)))
    c.append(acase("tf-unknown-model", "/v1/models/nope:predict", {"instances": [CHURN_ROW]}, 404))
    c.append(acase("tf-unknown-version", "/v1/models/churn/versions/99:predict", {"instances": [CHURN_ROW]}, 404))
    c.append(acase("tf-unknown-verb", "/v1/models/churn:regress", {"instances": [CHURN_ROW]}, (404, 405)))
    c.append(acase("tf-truncated", TF, b'{"instances": [[1, 2', 400))
    # MLflow
    for name, body in [
        ("empty-object", {}), ("unknown-key", {"dataframe": []}),
        ("split-columns-not-list", {"dataframe_split": {"columns": "x", "data": [ML_ROW]}}),
        ("split-no-data", {"dataframe_split": {"columns": COLUMNS}}),
        ("split-row-short", {"dataframe_split": {"columns": COLUMNS, "data": [ML_ROW[:-1]]}}),
        ("split-row-long", {"dataframe_split": {"columns": COLUMNS, "data": [ML_ROW + [1]]}}),
        ("split-unknown-column", {"dataframe_split": {"columns": COLUMNS[:-1] + ["zz"], "data": [ML_ROW]}}),
        ("split-duplicate-column", {"dataframe_split": {"columns": COLUMNS[:-1] + [COLUMNS[0]], "data": [ML_ROW]}}),
        ("split-data-not-list", {"dataframe_split": {"columns": COLUMNS, "data": "x"}}),
        ("split-not-object", {"dataframe_split": [ML_ROW]}),
        ("records-numbers", {"dataframe_records": [1]}), ("records-empty", {"dataframe_records": []}),
        ("records-wrong-type", {"dataframe_records": [rec(age="old")]}),
        ("records-unknown-feature", {"dataframe_records": [rec(colour="red")]}),
        ("records-object", {"dataframe_records": CHURN_RECORD}),
        ("instances-strings", {"instances": [["a"] * 7]}), ("instances-short", {"instances": [ML_ROW[:3]]}),
        ("inputs-ragged", {"inputs": {k: ([v, v] if k == "age" else [v]) for k, v in CHURN_RECORD.items()}}),
        ("two-forms", {"dataframe_records": [CHURN_RECORD], "instances": [ML_ROW]}),
        ("predict-method-unknown", {"dataframe_records": [CHURN_RECORD], "params": {"predict_method": "foo"}}),
        ("params-not-object", {"dataframe_records": [CHURN_RECORD], "params": 5}),
        ("too-many", {"dataframe_records": [CHURN_RECORD] * 1001}),
    ]:
        expect = (400, 413) if name == "too-many" else 400
        c.append(acase("ml-" + name, ML, body, expect, shape="mlflow"))
    c.append(acase("ml-nan", ML, b'{"instances": [[NaN, 1, 1, 1, 30, "one-year", "card"]]}', 400, shape="mlflow"))
    c.append(acase("ml-truncated", ML, b'{"dataframe_records": [{"age"', 400, shape="mlflow"))
    c.append(acase("ml-csv", ML, b"a,b\n1,2\n", 415, shape="mlflow", ctype="text/csv"))
    c.append(acase("ml-no-ctype", ML, json.dumps({"dataframe_records": [CHURN_RECORD]}).encode(), (200, 415), shape="mlflow", ctype=None))
    c.append(acase("ml-inputs-list", ML, {"inputs": [ML_ROW]}, 200, shape="mlflow", why="MLflow reads a list of inputs as instances"))
    return c


# ============================================================================================
# grpc: requests as bytes (field numbers from proto/inference.proto, proto/model_service.proto)

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num, n):
    return varint(num << 3) + varint(n)


def gcase(name, rpc, message, expect=IA, needles=(), why=""):
    return Case("grpc/" + name, expect, rpc=rpc, message=message, needles=needles, why=why)


def grpc_cases():
    from grpc_stubs import mspb, pb  # generated at import time; only the gRPC cases need them

    ones = np.ones((1, 4), np.float32)

    def add_sub_req(raw=False, **kw):
        req = pb.ModelInferRequest(**dict({"model_name": "add_sub"}, **kw))
        for name in ("a", "b"):
            t = req.inputs.add(name=name, datatype="FP32", shape=[1, 4])
            if raw:
                req.raw_input_contents.append(ones.tobytes())
            else:
                t.contents.fp32_contents.extend([1.0] * 4)
        return req

    def ser(req):
        return req.SerializeToString()

    def mutated(raw=False, fn=None, **kw):
        req = add_sub_req(raw=raw, **kw)
        fn(req)
        return ser(req)

    def timeout_param(v, kind="int64_param"):
        def f(req):
            setattr(req.parameters["timeout"], kind, v)
        return f

    c = [gcase("control-typed", INFER, ser(add_sub_req()), OK), gcase("control-raw", INFER, ser(add_sub_req(raw=True)), OK)]

    def set_shape(i, shape):
        def f(req):
            del req.inputs[i].shape[:]
            req.inputs[i].shape.extend(shape)
        return f

    for name, shape in [("neg", [1, -4]), ("2^62x2^62", [2 ** 62, 2 ** 62]), ("2^31x2^31", [2 ** 31, 2 ** 31]),
                        ("int64-max", [2 ** 63 - 1, 4]), ("int64-min", [-(2 ** 63), 4]), ("rank0", []),
                        ("rank1", [4]), ("rank3", [1, 1, 4]), ("width5", [1, 5]), ("batch9", [9, 4]),
                        ("zero-huge", [0, 2 ** 63 - 1]), ("wrap", [2 ** 62, 4, 4])]:
        c.append(gcase(f"shape-typed-{name}", INFER, mutated(fn=set_shape(0, shape))))
        c.append(gcase(f"shape-raw-{name}", INFER, mutated(raw=True, fn=set_shape(0, shape))))

    def raw_size(n):
        def f(req):
            req.raw_input_contents[0] = b"\x00" * n
        return f

    for n in (0, 1, 15, 17, 32, 1 << 20):
        c.append(gcase(f"raw-size-{n}", INFER, mutated(raw=True, fn=raw_size(n))))
    c.append(gcase("raw-count-short", INFER, mutated(raw=True, fn=lambda r: r.raw_input_contents.pop())))
    c.append(gcase("raw-count-long", INFER, mutated(raw=True, fn=lambda r: r.raw_input_contents.append(b"x" * 16))))
    c.append(gcase("raw-and-typed", INFER, mutated(raw=True, fn=lambda r: r.inputs[0].contents.fp32_contents.extend([1.0] * 4))))
    c.append(gcase("typed-wrong-field", INFER, mutated(fn=lambda r: (r.inputs[0].ClearField("contents"),
                                                                       r.inputs[0].contents.int_contents.extend([1] * 4)))))
    c.append(gcase("typed-two-fields", INFER, mutated(fn=lambda r: r.inputs[0].contents.int64_contents.append(1))))
    c.append(gcase("typed-short", INFER, mutated(fn=lambda r: r.inputs[0].contents.fp32_contents.pop())))
    c.append(gcase("typed-nan", INFER, mutated(fn=lambda r: r.inputs[0].contents.fp32_contents.__setitem__(0, float("nan")))))
    c.append(gcase("typed-inf", INFER, mutated(fn=lambda r: r.inputs[0].contents.fp32_contents.__setitem__(0, float("inf")))))
    c.append(gcase("no-contents", INFER, mutated(fn=lambda r: r.inputs[0].ClearField("contents"))))
    for dt in ["FLOAT", "", "fp32", "BF16", "FP8", "INT32", "BYTES", "FP16"]:
        c.append(gcase(f"datatype-{dt or 'empty'}", INFER, mutated(fn=lambda r, dt=dt: setattr(r.inputs[0], "datatype", dt))))
        c.append(gcase(f"datatype-raw-{dt or 'empty'}", INFER, mutated(raw=True, fn=lambda r, dt=dt: setattr(r.inputs[0], "datatype", dt))))
    c.append(gcase("input-name-empty", INFER, mutated(fn=lambda r: setattr(r.inputs[0], "name", ""))))
    c.append(gcase("input-unknown", INFER, mutated(fn=lambda r: setattr(r.inputs[0], "name", "c"))))
    c.append(gcase("input-duplicate", INFER, mutated(fn=lambda r: setattr(r.inputs[1], "name", "a"))))
    c.append(gcase("input-missing", INFER, mutated(fn=lambda r: r.inputs.pop())))
    c.append(gcase("no-inputs", INFER, ser(pb.ModelInferRequest(model_name="add_sub"))))
    c.append(gcase("output-unknown", INFER, mutated(fn=lambda r: setattr(r.outputs.add(), "name", "prod"))))
    c.append(gcase("output-duplicate", INFER, mutated(fn=lambda r: [setattr(r.outputs.add(), "name", "sum") for _ in range(2)])))
    c.append(gcase("output-no-name", INFER, mutated(fn=lambda r: r.outputs.add())))
    c.append(gcase("unknown-model", INFER, ser(add_sub_req()).replace(b"add_sub", b"nope_ab", 1), NF))
    c.append(gcase("unknown-version", INFER, ser(add_sub_req(model_version="99")), NF))
    c.append(gcase("version-garbage", INFER, ser(add_sub_req(model_version="x\x01")), NF))
    c.append(gcase("empty-model", INFER, ser(add_sub_req(model_name="")), IA))
    # not UTF-8 where proto3 wants a string (issue 9 item 6)
    c.append(gcase("id-not-utf8", INFER, ser(add_sub_req()) + field_bytes(3, b"\xff\xfe id"), IA,
                   why="issue 9 item 6: a non-UTF-8 id was echoed into a proto3 string"))
    c.append(gcase("id-overlong-utf8", INFER, ser(add_sub_req()) + field_bytes(3, b"\xc0\xaf"), IA))
    c.append(gcase("model-name-not-utf8", INFER, ser(add_sub_req()) + field_bytes(1, b"add_sub\xff"), (IA, NF)))
    c.append(gcase("version-not-utf8", INFER, ser(add_sub_req()) + field_bytes(2, b"\xff"), (IA, NF)))
    first = pb.ModelInferRequest.InferInputTensor(name="a", datatype="FP32", shape=[1, 4])
    first.contents.fp32_contents.extend([1.0] * 4)
    second = pb.ModelInferRequest.InferInputTensor(name="b", datatype="FP32", shape=[1, 4])
    second.contents.fp32_contents.extend([1.0] * 4)
    head = field_bytes(1, b"add_sub")
    c.append(gcase("input-name-not-utf8", INFER, head + field_bytes(5, first.SerializeToString() + field_bytes(1, b"a\xff"))
                   + field_bytes(5, second.SerializeToString())))
    c.append(gcase("datatype-not-utf8", INFER, head + field_bytes(5, first.SerializeToString() + field_bytes(2, b"FP\xff"))
                   + field_bytes(5, second.SerializeToString())))
    c.append(gcase("output-name-not-utf8", INFER, ser(add_sub_req()) + field_bytes(6, field_bytes(1, b"sum\xff"))))
    c.append(gcase("param-key-not-utf8", INFER, ser(add_sub_req()) + field_bytes(4, field_bytes(1, b"\xff") + field_bytes(2, field_varint(2, 5)))))
    # deadlines (issue 9 item 2)
    for name, v in [("2^62", 2 ** 62), ("2^63-1", 2 ** 63 - 1), ("negative", -1), ("int64-min", -(2 ** 63))]:
        c.append(gcase(f"timeout-{name}", INFER, mutated(fn=timeout_param(v)), IA,
                       why="issue 9 item 2: overflowed the deadline; refuse absurd values"))
    c.append(gcase("timeout-string", INFER, mutated(fn=timeout_param("soon", "string_param")), IA))
    c.append(gcase("timeout-bool", INFER, mutated(fn=timeout_param(True, "bool_param")), IA))
    for name, v in [("2^62", 2 ** 62), ("negative", -1), ("99", 99)]:
        c.append(gcase(f"priority-{name}", INFER, mutated(fn=lambda r, v=v: setattr(r.parameters["priority"], "int64_param", v)), IA))
    # values on identity_all
    def ident_req(dt, field_name, values, shape=(1, 1), raw=None):
        req = pb.ModelInferRequest(model_name="identity_all")
        for f in identity_fillers():
            t = req.inputs.add(name=f["name"], datatype=f["datatype"], shape=[1, 1])
            if f["datatype"] == dt:
                t.ClearField("shape")
                t.shape.extend(shape)
                getattr(t.contents, field_name).extend(values)
                continue
            d = f["datatype"]
            if d == "BYTES":
                t.contents.bytes_contents.append(b"")
            elif d == "BOOL":
                t.contents.bool_contents.append(False)
            elif d in ("FP16", "FP32"):
                t.contents.fp32_contents.append(0.0)
            elif d == "FP64":
                t.contents.fp64_contents.append(0.0)
            elif d in ("UINT64",):
                t.contents.uint64_contents.append(0)
            elif d in ("INT64",):
                t.contents.int64_contents.append(0)
            elif d.startswith("UINT"):
                t.contents.uint_contents.append(0)
            else:
                t.contents.int_contents.append(0)
        return ser(req)

    for name, dt, fld, vals in [("uint8-300", "UINT8", "uint_contents", [300]), ("int8-200", "INT8", "int_contents", [200]),
                                ("int8-neg-200", "INT8", "int_contents", [-200]), ("uint16-70000", "UINT16", "uint_contents", [70000]),
                                ("int16-40000", "INT16", "int_contents", [40000]), ("fp16-70000", "FP16", "fp32_contents", [70000.0]),
                                ("fp16-nan", "FP16", "fp32_contents", [float("nan")]), ("fp64-inf", "FP64", "fp64_contents", [float("inf")])]:
        c.append(gcase("value-" + name, INFER, ident_req(dt, fld, vals)))
    c.append(gcase("value-uint8-control", INFER, ident_req("UINT8", "uint_contents", [255]), OK))
    # sentiment: BYTES into an ONNX string tensor (issue 9 item 4)
    def sent_req(elems, shape, raw=True):
        req = pb.ModelInferRequest(model_name="sentiment")
        t = req.inputs.add(name="text", datatype="BYTES", shape=list(shape))
        if raw:
            req.raw_input_contents.append(elems)
        else:
            t.contents.bytes_contents.extend(elems)
        return ser(req)
    c.append(gcase("sentiment-control", INFER, sent_req(bytes_elems(b"great"), [1]), OK))
    c.append(gcase("sentiment-raw-not-utf8", INFER, sent_req(bytes_elems(b"\xff\xfe great"), [1]), IA, needles=("text",),
                   why="issue 9 item 4: gave INTERNAL from StringNormalizer"))
    c.append(gcase("sentiment-typed-not-utf8", INFER, sent_req([b"\xc3 x"], [1], raw=False), IA, needles=("text",)))
    c.append(gcase("sentiment-raw-shape-0", INFER, sent_req(b"", [0]), (OK, IA), why="issue 9 item 4: [0] gave 500"))
    c.append(gcase("sentiment-typed-shape-0", INFER, sent_req([], [0], raw=False), (OK, IA)))
    gather = pb.ModelInferRequest(model_name="gather_fail")
    gather.inputs.add(name="idx", datatype="INT64", shape=[1, 1]).contents.int64_contents.append(10)
    c.append(gcase("gather-index-out-of-range", INFER, ser(gather), IA,
                   why="issue 9 item 4: an ONNX Runtime error caused by the request's values is INVALID_ARGUMENT"))
    c.append(gcase("sentiment-raw-overrun", INFER, sent_req(struct.pack("<I", 1000) + b"x", [1])))
    c.append(gcase("sentiment-raw-truncated-prefix", INFER, sent_req(b"\x01\x00", [1])))
    c.append(gcase("sentiment-raw-count", INFER, sent_req(bytes_elems(b"a", b"b"), [1])))
    # messages that are not valid protobuf
    good = ser(add_sub_req())
    for name, msg in [("truncated", good[:-3]), ("garbage", bytes(range(256))), ("bad-wire-type", b"\x0f\x01\x02"),
                      ("length-overrun", b"\x0a\xff\xff\xff\x0f" + b"x"), ("varint-too-long", b"\x08" + b"\xff" * 11),
                      ("field-zero", b"\x02\x01x"), ("group-unterminated", b"\x0b\x0a\x01x")]:
        c.append(gcase("protobuf-" + name, INFER, msg))
    c.append(gcase("protobuf-empty", INFER, b"", IA, needles=("model",)))
    # metadata / readiness
    c.append(gcase("metadata-unknown", META, ser(pb.ModelMetadataRequest(name="nope")), NF))
    c.append(gcase("metadata-not-utf8", META, field_bytes(1, b"\xff\xfe"), (IA, NF)))
    c.append(gcase("metadata-unknown-version", META, ser(pb.ModelMetadataRequest(name="add_sub", version="99")), NF))
    c.append(gcase("ready-unknown", READY, ser(pb.ModelReadyRequest(name="nope")), OK, why="issue 10: ModelReady for an unknown model answers ready: false"))
    c.append(gcase("ready-8000", READY, ser(pb.ModelReadyRequest(name="m" * 8000)), OK, why="issue 9 item 1's shape, over gRPC; ready: false"))
    # ModelService (the application API)
    if mspb is not None:
        def predict(model="churn", **features):
            req = mspb.PredictRequest(model=model)
            for k, v in dict(CHURN_RECORD, **features).items():
                if v is ...:
                    continue
                val = req.record.features[k]
                if isinstance(v, bool):
                    val.bool_value = v
                elif isinstance(v, int):
                    val.int_value = v
                elif isinstance(v, float):
                    val.number_value = v
                else:
                    val.string_value = v
            return req

        c.append(gcase("predict-control", PREDICT, ser(predict()), OK))
        for name, req, expect, needles in [
            ("predict-nan", predict(monthly_charges=float("nan")), IA, ("NaN",)),
            ("predict-inf", predict(monthly_charges=float("inf")), IA, ()),
            ("predict-unknown-feature", predict(colour="red"), IA, ()),
            ("predict-string-for-number", predict(age="old"), IA, ()),
            ("predict-unknown-category", predict(contract="weekly"), IA, ()),
            ("predict-missing", predict(age=...), IA, ()),
            ("predict-age-2^62", predict(age=2 ** 62), IA, ()),
            ("predict-bool-for-number", predict(age=True), IA, ()),
            ("predict-no-schema", mspb.PredictRequest(model="plain"), IA, ()),
            ("predict-unknown-model", predict(model="nope"), NF, ()),
            ("predict-unknown-version", mspb.PredictRequest(model="churn", version="99"), NF, ()),
            ("predict-top-k-negative", mspb.PredictRequest(model="churn", record=predict().record,
                                                           options=mspb.PredictOptions(top_k=-1)), IA, ()),
        ]:
            why = "issue 9 item 7: say NaN is not allowed" if name == "predict-nan" else ""
            c.append(gcase(name, PREDICT, ser(req), expect, needles=needles, why=why))
        c.append(gcase("predict-feature-name-not-utf8", PREDICT,
                       ser(predict()) + field_bytes(3, field_bytes(1, field_bytes(1, b"ag\xff") + field_bytes(2, field_varint(2, 3)))),
                       IA))
        c.append(gcase("batch-empty", BATCH, ser(mspb.BatchPredictRequest(model="churn")), IA))
        many = mspb.BatchPredictRequest(model="churn")
        for _ in range(MAX_RECORDS + 1):
            many.records.add().CopyFrom(predict().record)
        c.append(gcase("batch-too-many", BATCH, ser(many), EXHAUSTED))
    return c


def all_cases():
    return framing_cases() + json_cases() + tensor_cases() + binary_cases() + app_cases() + grpc_cases()
