"""Every error in docs/http-api.md: its status, a JSON {"error": ...} body, a message saying where."""

import json
import re

import numpy as np
import pytest

from conftest import (assert_error, build_request, identity_body, identity_fillers, identity_inputs,
                      raw_request, tensor_bytes, timeout)

LINE_COL = r"(line|column|col\b|position|offset|char)\D{0,20}\d"


def post_json_text(server, model, text, headers=None, version=None):
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    data = text.encode("utf-8") if isinstance(text, str) else text
    return server.infer(model, data, headers=hdrs, version=version)


def add_sub_body(**overrides):
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                       {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    body.update(overrides)
    return body


# ---- 400: malformed JSON -----------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "{not json",
    '{"inputs": [',
    '{"inputs": [{"name": "a",}]}',
    "",
    "[1, 2",
    '{"inputs": []} trailing',
    # NaN, Infinity and -Infinity are read in data (test_protocol_gaps.py); other spellings are not
    '{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, nan]}]}',
])
def test_malformed_json_400_with_position(server, text):
    r = post_json_text(server, "add_sub", text)
    if text == "":
        # An empty body is a malformed request; a position is not required for it.
        assert_error(r, 400)
    else:
        assert_error(r, 400, regex=LINE_COL)


def test_malformed_json_position_points_at_the_error(server):
    text = '{\n  "inputs": [\n    {"name": "a" "datatype": "FP32"}\n  ]\n}'
    msg = assert_error(post_json_text(server, "add_sub", text), 400)
    assert re.search(r"line\D{0,5}3", msg, re.I), f"message {msg!r} does not name line 3"


def test_malformed_json_header_in_binary_request(server):
    header = b'{"inputs": [{"name": "a", '
    r = server.infer("add_sub", header + b"\x00" * 16,
                     headers={"Content-Type": "application/octet-stream",
                              "Inference-Header-Content-Length": str(len(header))})
    assert_error(r, 400, regex=LINE_COL)


def test_body_not_an_object(server):
    assert_error(post_json_text(server, "add_sub", "[1, 2, 3]"), 400)


# ---- 400: missing or wrong fields ----------------------------------------------------------------


def test_missing_inputs_field(server):
    # no "inputs" is valid for a model without inputs; this one has two
    assert_error(server.infer("add_sub", {"outputs": []}), 400, "missing input 'a'")


def test_empty_inputs(server):
    assert_error(server.infer("add_sub", {"inputs": []}), 400)


def test_missing_one_input_names_it(server):
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    msg = assert_error(server.infer("add_sub", body), 400)
    assert re.search(r"(?<![A-Za-z_])b(?![A-Za-z_])", msg), f"message {msg!r} does not name input 'b'"


def test_duplicate_input(server):
    body = add_sub_body()
    body["inputs"].append(dict(body["inputs"][0]))
    assert_error(server.infer("add_sub", body), 400)


@pytest.mark.parametrize("field", ["name", "datatype", "shape"])
def test_input_missing_field_names_field(server, field):
    inp = {"name": "in_FP32", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}
    del inp[field]
    assert_error(server.infer("identity_all", identity_body(inp)), 400, field)


def test_input_missing_data(server):
    inp = {"name": "in_FP32", "datatype": "FP32", "shape": [1, 2]}
    assert_error(server.infer("identity_all", identity_body(inp)), 400, "data")


@pytest.mark.parametrize("inp,where", [
    ({"name": 5, "datatype": "FP32", "shape": [1, 1], "data": [1]}, "name"),
    ({"name": "in_FP32", "datatype": 5, "shape": [1, 1], "data": [1]}, "datatype"),
    ({"name": "in_FP32", "datatype": "FP32", "shape": "1,1", "data": [1]}, "shape"),
    ({"name": "in_FP32", "datatype": "FP32", "shape": [1, "1"], "data": [1]}, "shape"),
    ({"name": "in_FP32", "datatype": "FP32", "shape": [1, 1.5], "data": [1]}, "shape"),
    ({"name": "in_FP32", "datatype": "FP32", "shape": [1, 1], "data": "1"}, "in_FP32|data"),
    ({"name": "in_FP32", "datatype": "FP32", "shape": [1, 2], "data": [1, "2"]}, "in_FP32|data"),
    ({"name": "in_BOOL", "datatype": "BOOL", "shape": [1, 2], "data": [True, "yes"]}, "in_BOOL|data"),
    ({"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 2], "data": ["x", 3]}, "in_BYTES|data"),
    ({"name": "in_INT32", "datatype": "INT32", "shape": [1, 2], "data": [1, None]}, "in_INT32|data"),
])
def test_wrong_field_types_name_the_field(server, inp, where):
    """The message names the field (its path) or the tensor it belongs to."""
    assert_error(server.infer("identity_all", identity_body(inp)), 400, regex=where)


def test_unknown_datatype_name(server):
    inp = {"name": "in_FP32", "datatype": "FP99", "shape": [1, 1], "data": [1]}
    assert_error(server.infer("identity_all", identity_body(inp)), 400, "FP99")


# ---- 400: datatype, shape, count ---------------------------------------------------------------


@pytest.mark.parametrize("sent", ["INT32", "FP64", "BYTES", "FP16"])
def test_wrong_datatype_names_tensor(server, sent):
    data = ["1", "2"] if sent == "BYTES" else [1, 2]
    inp = {"name": "in_FP32", "datatype": sent, "shape": [1, 2], "data": data}
    assert_error(server.infer("identity_all", identity_body(inp)), 400, "in_FP32")


def test_wrong_datatype_add_sub(server):
    body = add_sub_body()
    body["inputs"][1]["datatype"] = "INT64"
    msg = assert_error(server.infer("add_sub", body), 400)
    assert re.search(r"(?<![A-Za-z_])b(?![A-Za-z_])", msg), msg


@pytest.mark.parametrize("shape", [[1, 2], [2], [1, 1, 1], [3, 3]])
def test_wrong_shape_names_tensor(server, shape):
    # versioned: x dims [1] with batching, so [N, 1]; anything else is a wrong shape.
    n = int(np.prod(shape))
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": shape, "data": [1.0] * n}]}
    msg = assert_error(server.infer("versioned", body, version="3"), 400)
    assert re.search(r"(?<![A-Za-z_])x(?![A-Za-z_])", msg), f"{msg!r} does not name input 'x'"


@pytest.mark.parametrize("shape", [[1, 5], [1, 3], [4], [1, 2, 2]])
def test_wrong_shape_add_sub(server, shape):
    n = int(np.prod(shape))
    body = add_sub_body()
    body["inputs"][0]["shape"] = shape
    body["inputs"][0]["data"] = [1.0] * n
    msg = assert_error(server.infer("add_sub", body), 400)
    assert re.search(r"(?<![A-Za-z_])a(?![A-Za-z_])", msg), f"{msg!r} does not name input 'a'"


def test_wrong_rank_identity(server):
    inp = {"name": "in_INT32", "datatype": "INT32", "shape": [4], "data": [1, 2, 3, 4]}
    assert_error(server.infer("identity_all", identity_body(inp)), 400, "in_INT32")


def test_batch_larger_than_max_batch_size(server):
    a = [[1.0, 2.0, 3.0, 4.0]] * 9
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [9, 4], "data": a},
                       {"name": "b", "datatype": "FP32", "shape": [9, 4], "data": a}]}
    assert_error(server.infer("add_sub", body), 400)


def test_batch_dimension_mismatch_between_inputs(server):
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [2, 4], "data": [1.0] * 8},
                       {"name": "b", "datatype": "FP32", "shape": [3, 4], "data": [1.0] * 12}]}
    assert 400 <= server.infer("add_sub", body).status_code < 500


@pytest.mark.parametrize("count", [5, 7, 0, 1])
def test_element_count_mismatch_names_tensor(server, count):
    inp = {"name": "in_FP64", "datatype": "FP64", "shape": [2, 3], "data": [1.5] * count}
    assert_error(server.infer("identity_all", identity_body(inp)), 400, "in_FP64")


def test_element_count_mismatch_nested(server):
    inp = {"name": "in_INT16", "datatype": "INT16", "shape": [2, 3], "data": [[1, 2, 3], [4, 5]]}
    assert_error(server.infer("identity_all", identity_body(inp)), 400, "in_INT16")


def test_unknown_input_name(server):
    body = add_sub_body()
    body["inputs"].append({"name": "c_extra", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]})
    assert_error(server.infer("add_sub", body), 400, "c_extra")


def test_unknown_input_name_only(server):
    body = identity_body({"name": "in_NOPE", "datatype": "FP32", "shape": [1, 1], "data": [1]})
    assert_error(server.infer("identity_all", body), 400, "in_NOPE")


def test_unknown_output(server):
    body = add_sub_body(outputs=[{"name": "sum"}, {"name": "product_xyz"}])
    assert_error(server.infer("add_sub", body), 400, "product_xyz")


def test_output_entry_without_name(server):
    body = add_sub_body(outputs=[{"parameters": {"binary_data": True}}])
    assert_error(server.infer("add_sub", body), 400, "name")


# ---- 400: NaN / Inf -----------------------------------------------------------------------------


@pytest.mark.parametrize("datatype,value", [
    ("FP32", np.nan), ("FP32", np.inf), ("FP32", -np.inf),
    ("FP64", np.nan), ("FP64", -np.inf),
    ("FP16", np.nan), ("FP16", np.inf),
])
def test_nan_inf_rejected_in_binary_input(server, datatype, value):
    name = f"in_{datatype}"
    data = np.array([[1.0, value, 2.0]], dtype={"FP16": np.float16, "FP32": np.float32,
                                                  "FP64": np.float64}[datatype])
    body, hdrs = build_request(identity_inputs({"name": name, "datatype": datatype, "shape": [1, 3],
                                                "data": data, "binary": True}))
    assert_error(server.infer("identity_all", body, headers=hdrs), 400, name,
                 regex=r"nan|inf|finite")


def test_nan_rejected_on_add_sub(server):
    a = np.array([[1, 2, np.nan, 4]], np.float32)
    b = np.array([[1, 2, 3, 4]], np.float32)
    body, hdrs = build_request([
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": a, "binary": True},
        {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": b, "binary": True}])
    assert_error(server.infer("add_sub", body, headers=hdrs), 400, regex=r"nan|inf|finite")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_rejected(server, literal):
    fillers = json.dumps(identity_fillers(skip=["FP64"]))[1:-1]
    text = '{"inputs": [{"name": "in_FP64", "datatype": "FP64", "shape": [1, 1], "data": [%s]}, %s]}' % (literal, fillers)
    assert_error(post_json_text(server, "identity_all", text), 400)


def test_nan_ok_accepts_nan(server):
    data = np.array([[np.nan, 1.0]], np.float32)
    body, hdrs = build_request([{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": data, "binary": True}],
                               outputs=[{"name": "y", "parameters": {"binary_data": True}}])
    r = server.infer("nan_ok", body, headers=hdrs)
    assert r.status_code == 200, r.content


# ---- 400: binary framing ------------------------------------------------------------------------


def binary_add_sub(a_size=None, header_len_delta=0, tail_delta=0):
    raw = np.array([[1, 2, 3, 4]], np.float32).tobytes()
    header = {"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": a_size or len(raw)}},
        {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}
    jb = json.dumps(header).encode()
    body = jb + raw + (b"\x00" * tail_delta if tail_delta > 0 else b"")
    if tail_delta < 0:
        body = body[:tail_delta]
    return body, {"Content-Type": "application/octet-stream",
                  "Inference-Header-Content-Length": str(len(jb) + header_len_delta)}


def test_binary_baseline_ok(server):
    body, hdrs = binary_add_sub()
    r = server.infer("add_sub", body, headers=hdrs)
    assert r.status_code == 200, r.content


def test_binary_data_size_larger_than_body(server):
    body, hdrs = binary_add_sub(a_size=4096)
    msg = assert_error(server.infer("add_sub", body, headers=hdrs), 400, regex=r"binary")
    assert re.search(r"(?<![A-Za-z_])a(?![A-Za-z_])", msg), f"{msg!r} does not name input 'a'"


def test_binary_data_truncated(server):
    body, hdrs = binary_add_sub(tail_delta=-3)
    assert_error(server.infer("add_sub", body, headers=hdrs), 400)


def test_binary_data_size_not_matching_shape(server):
    body, hdrs = binary_add_sub(a_size=8)  # 2 floats declared for a [1,4] tensor, rest left over
    msg = assert_error(server.infer("add_sub", body, headers=hdrs), 400)
    assert re.search(r"(?<![A-Za-z_])a(?![A-Za-z_])", msg), msg


def test_binary_trailing_garbage(server):
    body, hdrs = binary_add_sub(tail_delta=5)
    assert 400 <= server.infer("add_sub", body, headers=hdrs).status_code < 500


def test_inference_header_length_larger_than_body(server):
    body, hdrs = binary_add_sub()
    hdrs["Inference-Header-Content-Length"] = str(len(body) + 100)
    assert_error(server.infer("add_sub", body, headers=hdrs), 400, regex=r"Inference-Header-Content-Length|header")


@pytest.mark.parametrize("value", ["-1", "abc", "0", "12abc", "99999999999999999999999"])
def test_inference_header_length_invalid(server, value):
    body, hdrs = binary_add_sub()
    hdrs["Inference-Header-Content-Length"] = value
    assert_error(server.infer("add_sub", body, headers=hdrs), 400)


def test_bytes_binary_element_length_overruns(server):
    raw = (100).to_bytes(4, "little") + b"abc"
    header = json.dumps(identity_body({"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 1],
                                       "parameters": {"binary_data_size": len(raw)}})).encode()
    r = server.infer("identity_all", header + raw, headers={
        "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
    assert_error(r, 400, "in_BYTES")


def test_bytes_binary_element_count_mismatch(server):
    raw = tensor_bytes("BYTES", [b"one", b"two"])
    header = json.dumps(identity_body({"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 3],
                                       "parameters": {"binary_data_size": len(raw)}})).encode()
    r = server.infer("identity_all", header + raw, headers={
        "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
    assert_error(r, 400, "in_BYTES")


def test_binary_input_with_data_too(server):
    raw = np.array([[1, 2, 3, 4]], np.float32).tobytes()
    header = json.dumps({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4],
         "parameters": {"binary_data_size": len(raw)}},
        {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}).encode()
    r = server.infer("add_sub", header + raw, headers={
        "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
    assert 400 <= r.status_code < 500


# ---- 404 ---------------------------------------------------------------------------------------


def test_unknown_model_infer_404(server):
    assert_error(server.infer("no_such_model", add_sub_body()), 404, "no_such_model")


@pytest.mark.parametrize("model,version", [("add_sub", "2"), ("versioned", "1"), ("versioned", "7")])
def test_unknown_version_infer_404(server, model, version):
    assert_error(server.infer(model, add_sub_body(), version=version), 404)


@pytest.mark.parametrize("method,path", [
    ("GET", "/"),
    ("GET", "/nope"),
    ("GET", "/v2/foo"),
    ("GET", "/v2/health"),
    ("GET", "/v2/health/alive"),
    ("GET", "/v2/models"),
    ("GET", "/v2/models/add_sub/bogus"),
    ("GET", "/v2/models/add_sub/versions"),
    ("GET", "/v2/models/add_sub/versions/1/bogus"),
    ("POST", "/v2/models/add_sub/infer/extra"),
    ("POST", "/v3/models/add_sub/infer"),
    ("GET", "/healthz"),
])
def test_unknown_path_404(server, method, path):
    r = server.request(method, path, data=b"{}" if method == "POST" else None,
                       headers={"Content-Type": "application/json"})
    assert_error(r, 404)


# ---- 405 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/v2/models/add_sub/infer", "/v2/models/versioned/versions/2/infer"])
def test_infer_wrong_method_405(server, method, path):
    r = server.request(method, path)
    assert_error(r, 405)
    allow = r.headers.get("Allow", "")
    assert "POST" in re.split(r"[,\s]+", allow), f"Allow header {allow!r}"


def test_wrong_method_unknown_model_infer(server):
    # GET on an infer path of an unknown model: either 404 or 405 is defensible, not 200/500.
    r = server.request("GET", "/v2/models/nope/infer")
    assert r.status_code in (404, 405)
    assert isinstance(r.json().get("error"), str)


# ---- 415 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "multipart/form-data; boundary=x",
                                   "application/x-www-form-urlencoded"])
def test_unsupported_content_type_415(server, ctype):
    body = json.dumps(add_sub_body()).encode()
    assert_error(server.infer("add_sub", body, headers={"Content-Type": ctype}), 415)


# ---- 413 (own server with a small limit) -------------------------------------------------------


@pytest.fixture(scope="module")
def small_body_server(test_models_dir, logs_dir):
    from conftest import running_server
    with running_server(test_models_dir, args=["--max-body-bytes", "2048"], workdir=logs_dir) as srv:
        yield srv


def test_413_from_content_length_before_body(small_body_server):
    srv = small_body_server
    req = (f"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
           "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n").encode()
    # The body is never sent: the answer must come from the Content-Length alone.
    status, headers, body = raw_request(srv.port, req, seconds=timeout(10))
    assert status == 413, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json")
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"]
    assert srv.get("/v2/health/live").status_code == 200


def test_413_real_body(small_body_server):
    srv = small_body_server
    a = [[float(i)] * 4 for i in range(8)]
    body = json.dumps({"inputs": [{"name": "a", "datatype": "FP32", "shape": [8, 4], "data": a},
                                  {"name": "b", "datatype": "FP32", "shape": [8, 4], "data": a}],
                       "id": "x" * 3000}).encode()
    assert len(body) > 2048
    assert_error(srv.infer("add_sub", body, headers={"Content-Type": "application/json"}), 413)


def test_under_limit_still_served(small_body_server):
    srv = small_body_server
    r = srv.infer("add_sub", add_sub_body())
    assert r.status_code == 200, r.content
    assert {o["name"]: o for o in r.json()["outputs"]}["sum"]["data"] == [2, 4, 6, 8]


def test_413_exactly_at_limit_is_allowed(small_body_server):
    srv = small_body_server
    body = json.dumps(add_sub_body()).encode()
    pad = 2048 - len(body)
    body = body[:-1] + b" " * pad + b"}"
    assert len(body) == 2048
    r = srv.infer("add_sub", body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.content
    r = srv.infer("add_sub", body[:-1] + b" }", headers={"Content-Type": "application/json"})
    assert_error(r, 413)


def test_default_limit_is_64mib(server):
    req = (f"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           f"Content-Type: application/json\r\nContent-Length: {64 * 1024 * 1024 + 1}\r\n\r\n").encode()
    status, headers, body = raw_request(server.port, req, seconds=timeout(10))
    assert status == 413, (status, body[:300])
    assert isinstance(json.loads(body).get("error"), str)
