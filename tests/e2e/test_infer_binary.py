"""The binary tensor data extension, in both directions, for every datatype."""

import json
import struct

import numpy as np
import pytest

from conftest import (ALL_DATATYPES, assert_error, V2_NUMPY, add_sub_inputs, build_request, decode_bytes_elements,
                      encode_bytes_elements, identity_body, identity_inputs, infer_ok, parse_response)
from test_infer_json import JSON_SAMPLES, ZIPMAP_X, assert_json_values, check_zipmap_outputs

# Binary can carry what JSON cannot: the full unsigned 64-bit range, raw bytes.
BINARY_SAMPLES = dict(JSON_SAMPLES)
BINARY_SAMPLES["UINT64"] = [[0, 18446744073709551615, 1], [9223372036854775808, 9007199254740993, 77]]
BINARY_SAMPLES["INT64"] = [[-9223372036854775808, 9223372036854775807, 0], [-1, 1, 1 << 53]]
BINARY_SAMPLES["BYTES"] = [[b"", b"hello", "h\u00e9llo \u2603 \u65e5\u672c".encode()],
                           [b"\x00\x01\x02", "\u00ff\u00fe binary".encode(), b"x" * 1000]]
# (BYTES elements of an ONNX model are UTF-8 text: docs/http-api.md; NUL and control bytes are
# valid UTF-8 and come back as sent)


def np_sample(datatype, samples):
    if datatype == "BYTES":
        return np.array([[e.encode() if isinstance(e, str) else e for e in row] for row in samples[datatype]],
                        dtype=object)
    return np.array(samples[datatype], dtype=V2_NUMPY[datatype])


def assert_binary_equal(datatype, got, want):
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape
    if datatype == "BYTES":
        assert got.reshape(-1).tolist() == want.reshape(-1).tolist()
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        # Bit-exact (distinguishes -0.0 and NaN payloads from look-alikes).
        assert got.tobytes() == want.tobytes()


def identity_request(datatype, data, binary_in, binary_out, how_out="per_output"):
    inputs = [{"name": f"in_{datatype}", "datatype": datatype, "shape": list(np.shape(data)),
               "data": data, "binary": binary_in}]
    outputs = None
    parameters = None
    if binary_out and how_out == "per_output":
        outputs = [{"name": f"out_{datatype}", "parameters": {"binary_data": True}}]
    elif binary_out:
        parameters = {"binary_data_output": True}
    return inputs, outputs, parameters


@pytest.mark.parametrize("datatype", ALL_DATATYPES)
def test_binary_in_json_out(server, datatype):
    # JSON out needs JSON-representable values; BYTES uses UTF-8 strings.
    want_nested = JSON_SAMPLES[datatype]
    if datatype == "BYTES":
        data = np.array([[e.encode() for e in row] for row in want_nested], dtype=object)
    else:
        data = np.array(want_nested, dtype=V2_NUMPY[datatype])
    inputs, outputs, parameters = identity_request(datatype, data, True, False)
    header, outs, r = infer_ok(server, "identity_all", inputs, outputs=[{"name": f"out_{datatype}"}])
    assert "Inference-Header-Content-Length" not in r.headers
    out = outs[f"out_{datatype}"]
    assert out["binary"] is False
    assert out["shape"] == [2, 3] and out["datatype"] == datatype
    assert_json_values(datatype, out["value"], want_nested)


@pytest.mark.parametrize("how_out", ["per_output", "binary_data_output"])
@pytest.mark.parametrize("datatype", ALL_DATATYPES)
def test_json_in_binary_out(server, datatype, how_out):
    nested = JSON_SAMPLES[datatype]
    inputs, outputs, parameters = identity_request(datatype, nested, False, True, how_out)
    if outputs is None:
        outputs = [{"name": f"out_{datatype}"}]
    header, outs, r = infer_ok(server, "identity_all", inputs, outputs=outputs, parameters=parameters)
    assert "Inference-Header-Content-Length" in r.headers
    out = outs[f"out_{datatype}"]
    assert out["binary"] is True
    assert out["datatype"] == datatype and out["shape"] == [2, 3]
    assert_binary_equal(datatype, out["value"], np_sample(datatype, JSON_SAMPLES))


@pytest.mark.parametrize("datatype", ALL_DATATYPES)
def test_binary_both_directions(server, datatype):
    data = np_sample(datatype, BINARY_SAMPLES)
    inputs, outputs, parameters = identity_request(datatype, data, True, True)
    header, outs, r = infer_ok(server, "identity_all", inputs, outputs=outputs, request_id="bin-both")
    assert header["id"] == "bin-both"
    assert header["model_name"] == "identity_all"
    out = outs[f"out_{datatype}"]
    assert out["binary"] is True
    assert_binary_equal(datatype, out["value"], data)
    # The output header says how many bytes follow.
    raw_len = len(encode_bytes_elements(data.reshape(-1).tolist())) if datatype == "BYTES" else data.nbytes
    hdr_out = [o for o in header["outputs"] if o["name"] == f"out_{datatype}"][0]
    assert hdr_out["parameters"]["binary_data_size"] == raw_len
    assert "data" not in hdr_out


def test_all_datatypes_binary_in_one_request(server):
    """13 binary inputs in one body: their bytes follow the JSON in input order."""
    inputs = [{"name": f"in_{d}", "datatype": d, "shape": [2, 3], "data": np_sample(d, BINARY_SAMPLES),
               "binary": True} for d in ALL_DATATYPES]
    header, outs, r = infer_ok(server, "identity_all", inputs, parameters={"binary_data_output": True})
    assert [o["name"] for o in header["outputs"]]  # ordered list
    for d in ALL_DATATYPES:
        assert_binary_equal(d, outs[f"out_{d}"]["value"], np_sample(d, BINARY_SAMPLES))


def test_mixed_binary_and_json_inputs(server):
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32)
    b = np.array([[0.5, 0.5, 0.5, 0.5], [1, 1, 1, 1]], np.float32)
    inputs = [{"name": "a", "datatype": "FP32", "shape": [2, 4], "data": a, "binary": True},
              {"name": "b", "datatype": "FP32", "shape": [2, 4], "data": b.tolist()}]
    _, outs, _ = infer_ok(server, "add_sub", inputs)
    assert outs["sum"]["value"] == (a + b).reshape(-1).tolist()
    assert outs["diff"]["value"] == (a - b).reshape(-1).tolist()


def test_binary_inputs_in_order(server):
    a = np.array([[1, 2, 3, 4]], np.float32)
    b = np.array([[100, 200, 300, 400]], np.float32)
    # Send b first in the JSON: its bytes must come first too.
    inputs = [{"name": "b", "datatype": "FP32", "shape": [1, 4], "data": b, "binary": True},
              {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": a, "binary": True}]
    _, outs, _ = infer_ok(server, "add_sub", inputs)
    assert outs["diff"]["value"] == (a - b).reshape(-1).tolist()


def test_mixed_binary_and_json_outputs(server):
    a = np.array([[1, 2, 3, 4]], np.float32)
    b = np.array([[4, 3, 2, 1]], np.float32)
    header, outs, r = infer_ok(server, "add_sub", add_sub_inputs(a, b, binary=True),
                               outputs=[{"name": "sum", "parameters": {"binary_data": True}},
                                        {"name": "diff", "parameters": {"binary_data": False}}])
    assert outs["sum"]["binary"] is True
    np.testing.assert_array_equal(outs["sum"]["value"], a + b)
    assert outs["diff"]["binary"] is False
    assert outs["diff"]["value"] == (a - b).reshape(-1).tolist()
    hlen = int(r.headers["Inference-Header-Content-Length"])
    assert len(r.content) == hlen + 16  # one FP32 [1,4] tensor follows the JSON


def test_binary_outputs_in_output_order(server):
    a = np.array([[1, 2, 3, 4], [1, 1, 1, 1]], np.float32)
    b = np.array([[4, 3, 2, 1], [2, 2, 2, 2]], np.float32)
    header, outs, r = infer_ok(server, "add_sub", add_sub_inputs(a, b),
                               parameters={"binary_data_output": True})
    hlen = int(r.headers["Inference-Header-Content-Length"])
    tail = r.content[hlen:]
    offset = 0
    for o in header["outputs"]:
        n = o["parameters"]["binary_data_size"]
        assert n == 32
        arr = np.frombuffer(tail[offset:offset + n], np.float32).reshape(2, 4)
        want = a + b if o["name"] == "sum" else a - b
        np.testing.assert_array_equal(arr, want)
        offset += n
    assert offset == len(tail)


def test_per_output_binary_data_false_overrides_binary_data_output(server):
    """binary_data_output true, but an output entry that says binary_data false stays JSON
    (the per-output parameter wins, as in Triton)."""
    header, outs, _ = infer_ok(server, "add_sub", add_sub_inputs([[1, 2, 3, 4]], [[1, 1, 1, 1]]),
                               parameters={"binary_data_output": True},
                               outputs=[{"name": "sum", "parameters": {"binary_data": False}}])
    assert outs["sum"]["binary"] is False
    assert outs["sum"]["value"] == [2, 3, 4, 5]


def test_fp16_binary_numpy(server):
    data = np.array([[0.1, -65504, 1e-4], [np.float16(3.3), 0.0, -0.0]], dtype=np.float16)
    _, outs, _ = infer_ok(server, "identity_all",
                          [{"name": "in_FP16", "datatype": "FP16", "shape": [2, 3], "data": data, "binary": True}],
                          outputs=[{"name": "out_FP16", "parameters": {"binary_data": True}}])
    assert_binary_equal("FP16", outs["out_FP16"]["value"], data)


def test_bool_binary_is_one_byte_per_element(server):
    data = np.array([[True, False, True, True]], dtype=bool)
    body_inputs = identity_inputs({"name": "in_BOOL", "datatype": "BOOL", "shape": [1, 4], "data": data, "binary": True})
    body, hdrs = build_request(body_inputs, outputs=[{"name": "out_BOOL", "parameters": {"binary_data": True}}])
    assert len(body) - int(hdrs["Inference-Header-Content-Length"]) == 4
    r = server.infer("identity_all", body, headers=hdrs)
    assert r.status_code == 200, r.content
    header, outs = parse_response(r)
    assert [o for o in header["outputs"] if o["name"] == "out_BOOL"][0]["parameters"]["binary_data_size"] == 4
    assert outs["out_BOOL"]["value"].tolist() == [[True, False, True, True]]


def test_bytes_binary_wire_format(server):
    """BYTES elements are 4-byte LE length + bytes, checked by hand on the wire."""
    elements = [b"", "na\u00efve \u2603".encode(), b"abc"]
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    header = json.dumps(identity_body({"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 3],
                                       "parameters": {"binary_data_size": len(raw)}},
                                      outputs=[{"name": "out_BYTES", "parameters": {"binary_data": True}}])).encode()
    r = server.infer("identity_all", header + raw,
                     headers={"Content-Type": "application/octet-stream",
                              "Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.content
    hlen = int(r.headers["Inference-Header-Content-Length"])
    resp_header = json.loads(r.content[:hlen])
    assert resp_header["outputs"][0]["parameters"]["binary_data_size"] == len(raw)
    assert r.content[hlen:] == raw
    assert decode_bytes_elements(r.content[hlen:]) == elements


def test_bytes_binary_in_json_out_non_ascii(server):
    elements = [["", "\u00e9t\u00e9", "\U0001F600 emoji"]]
    data = np.array([[e.encode() for e in elements[0]]], dtype=object)
    _, outs, _ = infer_ok(server, "identity_all",
                          [{"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 3], "data": data, "binary": True}],
                          outputs=[{"name": "out_BYTES"}])
    assert outs["out_BYTES"]["value"] == elements[0]


def test_header_only_body_with_inference_header(server):
    """Inference-Header-Content-Length equal to the whole body: all JSON, no binary part."""
    body, _ = build_request(add_sub_inputs([[1, 2, 3, 4]], [[1, 1, 1, 1]]))
    r = server.infer("add_sub", body, headers={"Content-Type": "application/octet-stream",
                                               "Inference-Header-Content-Length": str(len(body))})
    assert r.status_code == 200, r.content
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert outs["sum"]["data"] == [2, 3, 4, 5]


def test_zipmap_binary_outputs_are_json_text(server):
    x = np.array(ZIPMAP_X, np.float32)
    _, json_outs, _ = infer_ok(server, "zipmap", [{"name": "x", "datatype": "FP32", "shape": [3, 3], "data": x.tolist()}])
    _, bin_outs, _ = infer_ok(server, "zipmap", [{"name": "x", "datatype": "FP32", "shape": [3, 3], "data": x, "binary": True}],
                              parameters={"binary_data_output": True})
    for name in ("label", "probs_int", "probs_str"):
        assert bin_outs[name]["binary"] is True
    check_zipmap_outputs({k: {**v, "value": v["value"].tolist()} for k, v in bin_outs.items()}, 3)
    assert bin_outs["label"]["value"].tolist() == json_outs["label"]["value"]
    for name in ("probs_int", "probs_str"):
        decoded = [json.loads(e.decode("utf-8")) for e in bin_outs[name]["value"].tolist()]
        assert decoded == json_outs[name]["value"]


def test_nan_ok_binary_accepts_nan_and_inf(server):
    data = np.array([[np.nan, np.inf, -np.inf, 1.0]], dtype=np.float32)
    _, outs, _ = infer_ok(server, "nan_ok",
                          [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": data, "binary": True}],
                          parameters={"binary_data_output": True})
    y = outs["y"]["value"]
    assert np.isnan(y[0, 0]) and y[0, 1] == np.inf and y[0, 2] == -np.inf and y[0, 3] == 1.0


def test_large_binary_tensor(server):
    rng = np.random.RandomState(7)
    data = rng.randn(512, 512).astype(np.float32)  # 1 MiB
    _, outs, _ = infer_ok(server, "identity_all",
                          [{"name": "in_FP32", "datatype": "FP32", "shape": [512, 512], "data": data, "binary": True}],
                          outputs=[{"name": "out_FP32", "parameters": {"binary_data": True}}])
    assert_binary_equal("FP32", outs["out_FP32"]["value"], data)


def test_non_utf8_bytes_input_is_refused(server):
    """docs/http-api.md: an ONNX string tensor holds UTF-8 text, so a BYTES element that is not
    valid UTF-8 is a 400 naming the input and the element, whether the output is asked for as
    JSON or binary (before, the bytes reached ONNX Runtime: a 500 from a StringNormalizer)."""
    data = np.array([[b"ok", b"\xff\xfe\x80"]], dtype=object)
    for outputs in ([{"name": "out_BYTES"}], [{"name": "out_BYTES", "parameters": {"binary_data": True}}]):
        body, hdrs = build_request(identity_inputs(
            {"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 2], "data": data, "binary": True}),
            outputs=outputs)
        r = server.infer("identity_all", body, headers=hdrs)
        assert_error(r, 400, "input 'in_BYTES' element 1", "UTF-8")
    assert server.get("/v2/health/live").status_code == 200


def test_binary_bytes_input_is_exactly_sized(server):
    """A BYTES tensor's binary_data_size covers its elements exactly; the next input's bytes
    follow immediately (two BYTES inputs back to back)."""
    first = [b"alpha", b"", b"\x00\x00"]
    second = [b"z" * 17]
    inputs = identity_inputs(
        {"name": "in_BYTES", "datatype": "BYTES", "shape": [1, 3], "data": np.array([first], dtype=object), "binary": True},
        {"name": "in_UINT8", "datatype": "UINT8", "shape": [1, 4], "data": np.array([[1, 2, 3, 250]], np.uint8), "binary": True})
    _, outs, _ = infer_ok(server, "identity_all", inputs, parameters={"binary_data_output": True})
    assert outs["out_BYTES"]["value"].reshape(-1).tolist() == first
    assert outs["out_UINT8"]["value"].tolist() == [[1, 2, 3, 250]]
    del second


def test_uint64_above_int64_binary_in_json_out(server):
    """JSON output of UINT64 values above 2^63 - 1 must be the unsigned value, not wrapped."""
    data = np.array([[18446744073709551615, 9223372036854775808, 1]], dtype=np.uint64)
    _, outs, r = infer_ok(server, "identity_all", [
        {"name": "in_UINT64", "datatype": "UINT64", "shape": [1, 3], "data": data, "binary": True}],
        outputs=[{"name": "out_UINT64"}])
    assert outs["out_UINT64"]["value"] == [18446744073709551615, 9223372036854775808, 1], r.content[:400]
