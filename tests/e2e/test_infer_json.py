"""Inference with JSON tensors: every datatype round-trips, routing, outputs, request ids."""

import json
import math

import numpy as np
import pytest

from conftest import (ALL_DATATYPES, V2_NUMPY, add_sub_inputs, assert_error, build_request,
                      identity_body, infer_ok, parse_response)

# Values for each datatype that JSON can carry exactly, shape [2, 3], including the extremes.
JSON_SAMPLES = {
    "BOOL": [[True, False, True], [False, False, True]],
    "UINT8": [[0, 1, 255], [128, 7, 42]],
    "UINT16": [[0, 65535, 1], [300, 2, 40000]],
    "UINT32": [[0, 4294967295, 1], [2147483648, 5, 65536]],
    "UINT64": [[0, 9223372036854775807, 1], [4294967296, 9007199254740993, 77]],
    "INT8": [[-128, 127, 0], [-1, 1, 5]],
    "INT16": [[-32768, 32767, 0], [-300, 300, 1]],
    "INT32": [[-2147483648, 2147483647, 0], [-1, 65536, 7]],
    "INT64": [[-9223372036854775808, 9223372036854775807, 0], [-9007199254740993, 1, -1]],
    "FP16": [[0.5, -2.0, 65504.0], [6.103515625e-05, -0.0999755859375, 3.140625]],
    "FP32": [[1.5, -0.1, 3.4028234663852886e38], [1.1754943508222875e-38, 0.0, -7.25]],
    "FP64": [[0.1, -1e300, 2.2250738585072014e-308], [5e-324, 1.7976931348623157e308, -3.0]],
    "BYTES": [["", "hello", "h\u00e9llo w\u00f6rld \u2603 \u65e5\u672c"],
              ["a b", "\"quoted\"\n\ttab", "x" * 300]],
}


def expected_flat(datatype, nested):
    flat = [v for row in nested for v in row]
    if datatype == "BYTES":
        return flat
    return np.asarray(flat, dtype=V2_NUMPY[datatype])


def assert_json_values(datatype, data, nested):
    """Compares a flat JSON `data` list with the sample, exactly for the datatype."""
    want = expected_flat(datatype, nested)
    assert isinstance(data, list)
    assert len(data) == len(want)
    if datatype == "BYTES":
        assert data == want
    elif datatype == "BOOL":
        assert all(isinstance(v, bool) for v in data), data
        assert data == [bool(v) for v in want]
    elif datatype.startswith(("INT", "UINT")):
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in data), data
        assert data == [int(v) for v in want]
    else:
        got = np.asarray(data, dtype=np.float64).astype(V2_NUMPY[datatype])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("datatype", ALL_DATATYPES)
@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_identity_roundtrip_json(server, datatype, layout):
    nested = JSON_SAMPLES[datatype]
    data = nested if layout == "nested" else [v for row in nested for v in row]
    header, outs, _ = infer_ok(server, "identity_all", [
        {"name": f"in_{datatype}", "datatype": datatype, "shape": [2, 3], "data": data}],
        outputs=[{"name": f"out_{datatype}"}])
    assert header["model_name"] == "identity_all"
    assert header["model_version"] == "1"
    assert list(outs) == [f"out_{datatype}"]
    out = outs[f"out_{datatype}"]
    assert out["datatype"] == datatype
    assert out["shape"] == [2, 3]
    assert_json_values(datatype, out["value"], nested)


def test_identity_all_outputs_without_outputs_field(server):
    """All 13 inputs at once; without `outputs` every output is returned."""
    inputs = [{"name": f"in_{d}", "datatype": d, "shape": [2, 3], "data": JSON_SAMPLES[d]}
              for d in ALL_DATATYPES]
    header, outs, _ = infer_ok(server, "identity_all", inputs)
    assert sorted(outs) == sorted(f"out_{d}" for d in ALL_DATATYPES)
    for d in ALL_DATATYPES:
        assert outs[f"out_{d}"]["datatype"] == d
        assert outs[f"out_{d}"]["shape"] == [2, 3]
        assert_json_values(d, outs[f"out_{d}"]["value"], JSON_SAMPLES[d])


@pytest.mark.parametrize("shape", [[1, 1], [1, 7], [5, 1], [3, 4]])
def test_identity_variable_dims(server, shape):
    n = shape[0] * shape[1]
    data = [i - n // 2 for i in range(n)]
    _, outs, _ = infer_ok(server, "identity_all", [
        {"name": "in_INT32", "datatype": "INT32", "shape": shape, "data": data}],
        outputs=[{"name": "out_INT32"}])
    assert outs["out_INT32"]["shape"] == shape
    assert outs["out_INT32"]["value"] == data


def test_add_sub_values(server):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) * 1.5 - 4
    b = np.linspace(-2, 9, 12, dtype=np.float32).reshape(3, 4)
    header, outs, r = infer_ok(server, "add_sub", add_sub_inputs(a, b))
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Inference-Header-Content-Length" not in r.headers
    assert header["model_name"] == "add_sub"
    assert header["model_version"] == "1"
    assert sorted(outs) == ["diff", "sum"]
    for name, want in (("sum", a + b), ("diff", a - b)):
        assert outs[name]["datatype"] == "FP32"
        assert outs[name]["shape"] == [3, 4]
        np.testing.assert_allclose(np.asarray(outs[name]["value"], dtype=np.float32), want.reshape(-1),
                                   rtol=0, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 2, 8])
def test_add_sub_batch_sizes(server, rows):
    a = np.random.RandomState(rows).randn(rows, 4).astype(np.float32)
    b = np.random.RandomState(rows + 100).randn(rows, 4).astype(np.float32)
    _, outs, _ = infer_ok(server, "add_sub", add_sub_inputs(a, b))
    assert outs["sum"]["shape"] == [rows, 4]
    np.testing.assert_allclose(np.asarray(outs["sum"]["value"], np.float32), (a + b).reshape(-1), atol=1e-6)
    np.testing.assert_allclose(np.asarray(outs["diff"]["value"], np.float32), (a - b).reshape(-1), atol=1e-6)


@pytest.mark.parametrize("wanted", [["diff"], ["sum"], ["diff", "sum"], ["sum", "diff"]])
def test_requested_outputs_subset(server, wanted):
    a = [[1, 2, 3, 4]]
    b = [[10, 20, 30, 40]]
    _, outs, _ = infer_ok(server, "add_sub", add_sub_inputs(a, b),
                          outputs=[{"name": n} for n in wanted])
    assert sorted(outs) == sorted(wanted)
    if "sum" in outs:
        assert outs["sum"]["value"] == [11, 22, 33, 44]
    if "diff" in outs:
        assert outs["diff"]["value"] == [-9, -18, -27, -36]


def test_requested_outputs_with_binary_false_parameter(server):
    """What Triton's client sends for a JSON output."""
    _, outs, r = infer_ok(server, "add_sub", add_sub_inputs([[1, 1, 1, 1]], [[2, 2, 2, 2]]),
                          outputs=[{"name": "sum", "parameters": {"binary_data": False}}],
                          parameters={"binary_data_output": False})
    assert "Inference-Header-Content-Length" not in r.headers
    assert list(outs) == ["sum"] and outs["sum"]["value"] == [3, 3, 3, 3]


def test_json_content_type_with_charset_accepted(server):
    body, _ = build_request(add_sub_inputs([[1, 2, 3, 4]], [[1, 1, 1, 1]]))
    r = server.infer("add_sub", body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.content
    assert r.json()["outputs"]


def test_unknown_request_parameters_tolerated(server):
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4],
                        "parameters": {"custom": "x"}},
                       {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}],
            "parameters": {"some_client_parameter": 1}}
    r = server.infer("add_sub", body)
    assert r.status_code == 200, r.content
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert outs["sum"]["data"] == [2, 4, 6, 8]


# ---- request ids ------------------------------------------------------------------------------


def test_request_id_body_echoed(server):
    header, _, r = infer_ok(server, "add_sub", add_sub_inputs([[1, 2, 3, 4]], [[0, 0, 0, 0]]),
                            request_id="my-request-\u00e9-1")
    assert header["id"] == "my-request-\u00e9-1"
    rid = r.headers.get("X-Request-ID")
    assert rid and rid.strip()


def test_request_id_with_spaces_quotes_backslash_echoed(server):
    """docs/http-api.md: the response carries the client's X-Request-ID if it sent one. Printable
    ASCII with spaces, quotes and backslashes is a valid header value."""
    rid = 'trace "7" \\ a b'
    r = server.get("/v2/health/live", headers={"X-Request-ID": rid})
    assert r.headers.get("X-Request-ID") == rid


def test_request_id_header_echoed(server):
    body, hdrs = build_request(add_sub_inputs([[1, 2, 3, 4]], [[0, 0, 0, 0]]))
    hdrs["X-Request-ID"] = "client-rid-12345"
    r = server.infer("add_sub", body, headers=hdrs)
    assert r.status_code == 200
    assert r.headers.get("X-Request-ID") == "client-rid-12345"


def test_request_id_generated_and_distinct(server):
    seen = set()
    for _ in range(10):
        _, _, r = infer_ok(server, "add_sub", add_sub_inputs([[1, 2, 3, 4]], [[0, 0, 0, 0]]))
        rid = r.headers.get("X-Request-ID")
        assert rid and rid.strip(), "no generated X-Request-ID"
        seen.add(rid)
    assert len(seen) == 10, seen


def test_request_id_on_error_responses(server):
    r = server.infer("add_sub", b"{not json", headers={"Content-Type": "application/json",
                                                        "X-Request-ID": "err-rid-7"})
    assert r.status_code == 400
    assert r.headers.get("X-Request-ID") == "err-rid-7"
    r = server.infer("nope", {"inputs": []})
    assert r.status_code == 404
    assert r.headers.get("X-Request-ID")


# ---- versions ---------------------------------------------------------------------------------


def versioned_infer(server, version, x=2.0):
    return infer_ok(server, "versioned", [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x]}],
                    version=version)


def test_unversioned_routes_to_newest_ready(server):
    header, outs, _ = versioned_infer(server, None, 2.0)
    assert header["model_name"] == "versioned"
    assert header["model_version"] == "3"
    assert outs["y"]["value"] == [6.0]


@pytest.mark.parametrize("version,factor", [("2", 2.0), ("3", 3.0)])
def test_explicit_version(server, version, factor):
    header, outs, _ = versioned_infer(server, version, 2.5)
    assert header["model_version"] == version
    assert outs["y"]["shape"] == [1, 1]
    assert outs["y"]["value"] == [2.5 * factor]


@pytest.mark.parametrize("version", ["1", "4", "99"])
def test_unserved_version_infer_404(server, version):
    body, hdrs = build_request([{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}])
    r = server.infer("versioned", body, version=version, headers=hdrs)
    assert_error(r, 404)


def test_versioned_batch(server):
    xs = [[1.0], [2.0], [-3.0], [0.5]]
    _, outs, _ = infer_ok(server, "versioned", [{"name": "x", "datatype": "FP32", "shape": [4, 1], "data": xs}],
                          version="2")
    assert outs["y"]["shape"] == [4, 1]
    assert outs["y"]["value"] == [2.0, 4.0, -6.0, 1.0]


# ---- sequence-of-maps outputs ------------------------------------------------------------------


ZIPMAP_X = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.5], [0.1, 0.2, 3.0]]


def check_zipmap_outputs(outs, rows):
    assert outs["label"]["datatype"] == "INT64"
    assert outs["label"]["shape"] == [rows]
    labels = outs["label"]["value"]
    for name, keys in (("probs_int", ["0", "1", "2"]), ("probs_str", ["a", "b", "c"])):
        o = outs[name]
        assert o["datatype"] == "BYTES"
        assert o["shape"] == [rows]
        assert len(o["value"]) == rows
        for i, elem in enumerate(o["value"]):
            if isinstance(elem, (bytes, bytearray)):
                elem = json.loads(elem.decode("utf-8"))
            assert isinstance(elem, dict), f"{name}[{i}] is not a JSON object: {elem!r}"
            assert sorted(elem) == keys, elem
            assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in elem.values())
            # The predicted label is the class with the highest probability.
            best = max(keys, key=lambda k: elem[k])
            assert keys.index(best) == int(labels[i]), (elem, labels[i])
    # Both maps carry the same probabilities.
    for i in range(rows):
        pi = outs["probs_int"]["value"][i]
        ps = outs["probs_str"]["value"][i]
        if isinstance(pi, (bytes, bytearray)):
            pi, ps = json.loads(pi), json.loads(ps)
        for ki, ks in zip(["0", "1", "2"], ["a", "b", "c"]):
            assert abs(pi[ki] - ps[ks]) < 1e-6
    return labels


def zipmap_expected(x):
    """What the zipmap test model computes: softmax(x @ W + B) and its argmax."""
    from make_test_models import ZIPMAP_B, ZIPMAP_W
    logits = np.asarray(x, np.float64) @ ZIPMAP_W.astype(np.float64) + ZIPMAP_B.astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return p, p.argmax(axis=1)


def test_zipmap_json(server):
    _, outs, _ = infer_ok(server, "zipmap", [{"name": "x", "datatype": "FP32", "shape": [3, 3], "data": ZIPMAP_X}])
    assert sorted(outs) == ["label", "probs_int", "probs_str"]
    labels = check_zipmap_outputs(outs, 3)
    assert all(isinstance(v, int) for v in labels)
    probs, want_labels = zipmap_expected(ZIPMAP_X)
    assert labels == want_labels.tolist()
    for i in range(3):
        got_int = outs["probs_int"]["value"][i]
        got_str = outs["probs_str"]["value"][i]
        for j, (ki, ks) in enumerate(zip(["0", "1", "2"], ["a", "b", "c"])):
            assert abs(got_int[ki] - probs[i, j]) < 1e-6, (got_int, probs[i])
            assert abs(got_str[ks] - probs[i, j]) < 1e-6, (got_str, probs[i])


def test_zipmap_single_output(server):
    _, outs, _ = infer_ok(server, "zipmap", [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [ZIPMAP_X[0]]}],
                          outputs=[{"name": "probs_str"}])
    assert list(outs) == ["probs_str"]
    assert outs["probs_str"]["shape"] == [1]
    assert isinstance(outs["probs_str"]["value"][0], dict)


def test_nan_ok_model_json(server):
    _, outs, _ = infer_ok(server, "nan_ok", [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1.0, -2.0, 0.25]}])
    assert outs["y"]["value"] == [1.0, -2.0, 0.25]


def test_keepalive_many_requests_one_connection(server):
    for i in range(20):
        _, outs, _ = infer_ok(server, "add_sub", add_sub_inputs([[i, i, i, i]], [[1, 2, 3, 4]]))
        assert outs["sum"]["value"] == [i + 1, i + 2, i + 3, i + 4]


# ---- edges of the JSON representation ------------------------------------------------------------


def test_uint64_above_int64_in_json_refused(server):
    """docs/http-api.md (limits of JSON): integers are read as signed 64-bit, so a UINT64 above
    2^63 - 1 in JSON is a 400 that says where; binary carries it (test_infer_binary)."""
    text = json.dumps(identity_body({"name": "in_UINT64", "datatype": "UINT64", "shape": [1, 3],
                                     "data": [0, 9223372036854775808, 1]}))
    r = server.infer("identity_all", text.encode(), headers={"Content-Type": "application/json"})
    assert_error(r, 400, regex=r"line|column|in_UINT64|position")


def test_uint64_int64_max_in_json(server):
    values = [0, 9223372036854775807, 1]
    _, outs, _ = infer_ok(server, "identity_all", [
        {"name": "in_UINT64", "datatype": "UINT64", "shape": [1, 3], "data": values}],
        outputs=[{"name": "out_UINT64"}])
    assert outs["out_UINT64"]["value"] == values


def test_nan_output_in_json_written_as_nan_literals(server):
    """docs/http-api.md: a NaN or infinite float output is written as NaN, Infinity, -Infinity."""
    data = np.array([[np.nan, np.inf, -np.inf, 2.5]], np.float32)
    body, hdrs = build_request([{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": data, "binary": True}])
    r = server.infer("nan_ok", body, headers=hdrs)
    assert r.status_code == 200, r.content
    text = r.content.decode()
    assert "NaN" in text and "Infinity" in text and "-Infinity" in text, text
    y = {o["name"]: o for o in json.loads(text)["outputs"]}["y"]["data"]
    assert math.isnan(y[0]) and y[1] == math.inf and y[2] == -math.inf and y[3] == 2.5


def test_fp16_json_rounds_to_nearest(server):
    """FP16 takes numbers: each is rounded to the nearest half (ties to even), as numpy does."""
    rng = np.random.RandomState(3)
    vals = np.concatenate([
        rng.uniform(-70000, 70000, 40), rng.uniform(-1, 1, 40), rng.uniform(-1e-4, 1e-4, 40),
        [0.1, 1 / 3, 2049.0, 2051.0, 1e-8, -1e-8, 5.960464477539063e-08, 65504.0, -65504.0]]).astype(np.float32)
    vals = vals[np.abs(vals) <= 65504]  # the largest half; what lies beyond may be refused
    data = [float(v) for v in vals]
    _, outs, _ = infer_ok(server, "identity_all", [
        {"name": "in_FP16", "datatype": "FP16", "shape": [1, len(data)], "data": data}],
        outputs=[{"name": "out_FP16", "parameters": {"binary_data": True}}])
    got = outs["out_FP16"]["value"].reshape(-1)
    want = vals.astype(np.float16)
    bad = [(float(v), float(g), float(w)) for v, g, w in zip(vals, got, want) if g.tobytes() != w.tobytes()]
    assert not bad, f"{len(bad)} values rounded differently (value, got, numpy): {bad[:5]}"


def test_bytes_json_with_nul_character(server):
    """A JSON string may contain \\u0000: either it round-trips exactly or it is refused (400)."""
    text = '{"inputs": [{"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 1], "data": ["a\\u0000b"]}, %s]}' % (
        json.dumps(__import__("conftest").identity_fillers(skip=["BYTES"]))[1:-1])
    r = server.infer("identity_all", text.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400), r.content
    if r.status_code == 200:
        out = {o["name"]: o for o in r.json()["outputs"]}["out_BYTES"]
        assert out["data"] == ["a\x00b"]
    else:
        assert isinstance(r.json().get("error"), str)
