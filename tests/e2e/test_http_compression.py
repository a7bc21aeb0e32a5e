"""Content codings over HTTP: request bodies sent with Content-Encoding gzip or deflate are
decoded before any route sees them (the decoded size counts against --max-body-bytes), unknown
codings are 415, corrupt streams 400; replies are gzip when Accept-Encoding allows it and they
are large enough (docs/http-api.md, "Compression")."""
import gzip
import json
import zlib

import numpy as np
import pytest

from app_repo import write_repo
from conftest import (Server, add_sub_inputs, assert_error, build_request, parse_response, raw_connect,
                      read_http_response)

MAX_BODY = 1 << 20  # 1 MiB, so a zip bomb is cheap to send


@pytest.fixture(scope="module")
def srv(test_models_dir, logs_dir):
    s = Server(test_models_dir, args=["--max-body-bytes", str(MAX_BODY)], workdir=logs_dir)
    s.start(wait_ready=True)
    yield s
    s.stop()
    s.check_clean_exit()


def add_sub_body():
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, dtype=np.float32)
    body, _ = build_request(add_sub_inputs(a, b))
    return a, b, body


def check_add_sub(resp, a, b):
    assert resp.status_code == 200, resp.content[:300]
    _, outs = parse_response(resp)
    np.testing.assert_allclose(np.array(outs["sum"]["value"]).reshape(2, 4), a + b)
    np.testing.assert_allclose(np.array(outs["diff"]["value"]).reshape(2, 4), a - b)


def post(srv, path, data, **headers):
    headers.setdefault("Content-Type", "application/json")
    return srv.post(path, data=data, headers=headers)


def raw_deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("coding,encode", [
    ("gzip", gzip.compress),
    ("GZIP", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),   # the zlib format, as RFC 9110 defines deflate
    ("deflate", raw_deflate),     # raw deflate, as some clients send it
    ("identity", lambda b: b),
])
def test_encoded_json_body_is_decoded(srv, coding, encode):
    a, b, body = add_sub_body()
    r = post(srv, "/v2/models/add_sub/infer", encode(body), **{"Content-Encoding": coding})
    check_add_sub(r, a, b)


def test_encoded_binary_body_header_length_is_of_the_decoded_body(srv):
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 4), dtype=np.float32)
    body, headers = build_request(add_sub_inputs(a, b, binary=True))
    headers["Content-Encoding"] = "gzip"
    r = srv.post("/v2/models/add_sub/infer", data=gzip.compress(body), headers=headers)
    check_add_sub(r, a, b)


def test_other_routes_decode_too(srv):
    r = post(srv, "/v2/repository/index", gzip.compress(b'{"ready": true}'), **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert any(m["name"] == "add_sub" for m in r.json())


def test_tfserving_route_decodes(tmp_path, logs_dir):
    s = Server(write_repo(str(tmp_path), broken=False), workdir=logs_dir)
    s.start(wait_ready=True)
    try:
        r = post(s, "/v1/models/plain:predict", zlib.compress(b'{"instances": [[1, 2], [3.5, -1]]}'),
                 **{"Content-Encoding": "deflate"})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": [[2, 4], [7, -2]]}
    finally:
        s.stop()
    s.check_clean_exit()


def test_zip_bomb_is_413(srv):
    bomb = gzip.compress(b"\0" * (10 * MAX_BODY), compresslevel=9)
    assert len(bomb) < MAX_BODY // 10
    r = post(srv, "/v2/models/add_sub/infer", bomb, **{"Content-Encoding": "gzip"})
    assert_error(r, 413, "--max-body-bytes", "decompressed")
    # the body was read in full: the connection stays usable
    a, b, body = add_sub_body()
    check_add_sub(post(srv, "/v2/models/add_sub/infer", body), a, b)


def test_decoded_size_exactly_at_the_limit(srv):
    """MAX_BODY decoded bytes are allowed (the JSON parser then refuses them), one more is 413."""
    at = b" " * (MAX_BODY - 2) + b"{}"
    r = post(srv, "/v2/repository/index", gzip.compress(at), **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    r = post(srv, "/v2/repository/index", gzip.compress(at + b" "), **{"Content-Encoding": "gzip"})
    assert_error(r, 413, "--max-body-bytes")


def test_corrupt_bodies_are_400(srv):
    _, _, body = add_sub_body()
    good = gzip.compress(body)
    cases = [
        (body, "gzip", "does not begin with a valid gzip header"),       # JSON sent as gzip
        (good[:-10], "gzip", "truncated"),
        (good[:-8] + bytes([good[-8] ^ 1]) + good[-7:], "gzip", "checksum"),
        (b"\x78\x9c garbage", "deflate", "the deflate body is corrupt"),
        (zlib.compress(body) + b"tail", "deflate", "data follows the end"),
    ]
    for data, coding, needle in cases:
        r = post(srv, "/v2/models/add_sub/infer", data, **{"Content-Encoding": coding})
        assert_error(r, 400, f"the {coding} body is corrupt", needle)


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, br", "compress"])
def test_unknown_coding_is_415(srv, coding):
    _, _, body = add_sub_body()
    r = post(srv, "/v2/models/add_sub/infer", body, **{"Content-Encoding": coding})
    assert_error(r, 415, f"'{coding}'")
    assert "gzip" in r.headers.get("Accept-Encoding", "")


def test_coding_of_an_empty_body_is_ignored(srv):
    r = srv.get("/v2/health/live", headers={"Content-Encoding": "br"})
    assert r.status_code == 200, r.text
    r = post(srv, "/v2/repository/index", b"", **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text


def test_content_encoding_twice_is_415(srv):
    _, _, body = add_sub_body()
    with raw_connect(srv.port) as s:
        s.sendall(b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status, _, reply = read_http_response(s)
    assert status == 415
    assert "twice" in json.loads(reply)["error"]


def big_request():
    """nan_ok is an identity: its reply is as large as the request, well over 1 KiB."""
    x = (np.arange(2000, dtype=np.float32) / 7).reshape(4, 500)
    body, _ = build_request([{"name": "x", "datatype": "FP32", "shape": [4, 500], "data": x.tolist()}])
    return x, body


def test_reply_is_gzip_when_accepted(srv):
    x, body = big_request()
    r = post(srv, "/v2/models/nan_ok/infer", body, **{"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["Vary"]
    _, outs = parse_response(r)  # requests decoded it
    np.testing.assert_allclose(np.array(outs["y"]["value"], dtype=np.float32), x.reshape(-1))
    # on the wire: a gzip stream, much smaller than the JSON
    with raw_connect(srv.port) as s:
        s.sendall(b"POST /v2/models/nan_ok/infer HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br;q=1, gzip;q=0.5\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status, headers, wire = read_http_response(s)
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert wire[:2] == b"\x1f\x8b"
    plain = gzip.decompress(wire)
    assert len(wire) < len(plain) / 2
    assert json.loads(plain)["outputs"][0]["name"] == "y"


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "deflate, br", "*;q=0", None])
def test_reply_is_plain_otherwise(srv, accept):
    x, body = big_request()
    headers = {"Content-Type": "application/json"}
    data = b"POST /v2/models/nan_ok/infer HTTP/1.1\r\nHost: x\r\n"
    if accept is not None:
        data += f"Accept-Encoding: {accept}\r\n".encode()
    with raw_connect(srv.port) as s:
        s.sendall(data + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status, headers, wire = read_http_response(s)
    assert status == 200
    assert "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"  # caches must still tell the two apart
    assert json.loads(wire)["outputs"][0]["name"] == "y"


def test_small_reply_is_not_compressed(srv):
    a, b, body = add_sub_body()
    r = post(srv, "/v2/models/add_sub/infer", body, **{"Accept-Encoding": "gzip"})
    check_add_sub(r, a, b)
    assert len(r.content) < 1024
    assert "Content-Encoding" not in r.headers


def test_binary_reply_is_compressed_whole(srv):
    """As in Triton: the whole reply is gzip and Inference-Header-Content-Length counts in the
    decoded body."""
    x = np.zeros((4, 500), dtype=np.float32)  # zeros compress well
    body, headers = build_request([{"name": "x", "datatype": "FP32", "shape": [4, 500], "data": x, "binary": True}],
                                  outputs=[{"name": "y", "parameters": {"binary_data": True}}])
    headers["Accept-Encoding"] = "gzip"
    r = srv.post("/v2/models/nan_ok/infer", data=body, headers=headers)
    assert r.status_code == 200, r.content[:300]
    assert r.headers["Content-Encoding"] == "gzip"
    _, outs = parse_response(r)
    assert outs["y"]["binary"]
    np.testing.assert_array_equal(outs["y"]["value"], x)


def test_reply_that_does_not_shrink_is_sent_plain(srv):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**32, size=(4, 500), dtype=np.uint32).view(np.float32)
    x[~np.isfinite(x)] = 1.0
    body, headers = build_request([{"name": "x", "datatype": "FP32", "shape": [4, 500], "data": x, "binary": True}],
                                  outputs=[{"name": "y", "parameters": {"binary_data": True}}])
    headers["Accept-Encoding"] = "gzip"
    r = srv.post("/v2/models/nan_ok/infer", data=body, headers=headers)
    assert r.status_code == 200, r.content[:300]
    assert "Content-Encoding" not in r.headers
    _, outs = parse_response(r)
    np.testing.assert_array_equal(outs["y"]["value"], x)


def test_docs_page_is_compressed(srv):
    r = srv.get("/openapi.json", headers={"Accept-Encoding": "gzip, deflate"})
    assert r.status_code == 200
    assert r.headers.get("Content-Encoding") == "gzip"
    assert "paths" in r.json()
