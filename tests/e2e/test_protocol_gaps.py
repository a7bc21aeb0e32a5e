"""The protocol gaps of issue 10, item 7, found with NVIDIA's tritonclient and ONNX's node tests:
gRPC integer parameters as uint64_param, BF16 tensors (JSON, binary, gRPC raw), models without
inputs, and NaN / Infinity / -Infinity literals in JSON inputs."""
import json
import math
import struct
from fractions import Fraction

import numpy as np
import pytest

import make_test_models
from conftest import assert_error, parse_response, timeout, wait_models_settled
from grpc_stubs import assert_rpc_error, grpc, output_arrays, pb, running_grpc_server

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def gaps(tmp_path_factory, logs_dir):
    repo = tmp_path_factory.mktemp("gap_models")
    for name, (model, config) in make_test_models.gap_models().items():
        make_test_models.save(str(repo), name, model, config=config)
    # constant_batched never loads, so the server as a whole never reports ready
    with running_grpc_server(str(repo), logs_dir, wait_ready=False) as g:
        wait_models_settled(g.srv, expect=("bf16", "bf16_nan_ok", "constant", "constant_batched"))
        yield g


def post(g, model, body, headers=JSON):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return g.srv.post(f"/v2/models/{model}/infer", data=data, headers=headers, timeout=timeout(30))


# --------------------------------------------------------------------------------------------
# bfloat16, computed here independently of the server: exact rational arithmetic


def bf16_bits(x):
    """The bfloat16 nearest x (ties to even), as its 16 bits."""
    if math.isnan(x):
        return 0x7FC0
    sign = 0x8000 if math.copysign(1.0, x) < 0 else 0
    a = abs(x)
    if a == 0:
        return sign
    if math.isinf(a):
        return sign | 0x7F80
    _, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1)
    quantum = Fraction(2) ** (max(e - 1, -126) - 7)
    value = round(Fraction(a) / quantum) * quantum  # Fraction rounds halves to even
    if value >= 2 ** 128:
        return sign | 0x7F80
    bits = struct.unpack("<I", struct.pack("<f", float(value)))[0]
    return sign | (bits >> 16)


def bf16_value(bits):
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def bf16_inputs(x, g):
    return {"inputs": [{"name": "x", "datatype": "BF16", "shape": [1, len(x)], "data": x},
                       {"name": "g", "datatype": "FP32", "shape": [1, len(g)], "data": g}]}


# halfway cases round to even, one hair above rounds up, the extremes of the range
BF16_SAMPLES = [1.0, 1.00390625, 1.0039063, 1.01171875, 1.00390625000001, -2.5, 0.1, 1e-3, 3e38,
                3.3895313892515355e38, 1e-39, 9.2e-41, -0.0, 65504.0, 123456.789]


def test_bf16_json_rounds_to_nearest_even(gaps):
    r = post(gaps, "bf16", bf16_inputs(BF16_SAMPLES, [1.0]))
    assert r.status_code == 200, r.text
    # Python's json reads "-0" as the integer 0: keep the sign the server wrote
    outs = {o["name"]: o for o in json.loads(r.text, parse_int=lambda t: -0.0 if t == "-0" else int(t))["outputs"]}
    assert outs["y"]["datatype"] == "BF16"
    assert outs["y"]["shape"] == [1, len(BF16_SAMPLES)]
    want = [bf16_bits(v) for v in BF16_SAMPLES]
    # x32 is the bfloat16 widened exactly to float32, printed with 9 digits: exact
    assert [bf16_bits(v) for v in outs["x32"]["data"]] == want
    # y is written with 4 significant digits, enough to read back the same bfloat16
    assert [bf16_bits(v) for v in outs["y"]["data"]] == want
    assert want[12] == 0x8000


def test_bf16_output_json_reads_back_unchanged(gaps):
    """The text the server writes for BF16 is accepted as input and means the same values."""
    first = post(gaps, "bf16", bf16_inputs(BF16_SAMPLES, [1.0]))
    assert first.status_code == 200, first.text
    y_text = first.json()["outputs"][0]["data"]
    second = post(gaps, "bf16", bf16_inputs(y_text, [1.0]))
    assert second.status_code == 200, second.text
    assert second.json()["outputs"][0]["data"] == y_text


def test_bf16_cast_from_fp32_output(gaps):
    g = [0.1, 1.01171875, -7.3, 1e30]
    r = post(gaps, "bf16", bf16_inputs([1.0], g))
    assert r.status_code == 200, r.text
    _, outs = parse_response(r)
    assert outs["g16"]["datatype"] == "BF16"
    f32 = [float(np.float32(v)) for v in g]
    assert [bf16_bits(v) for v in outs["g16"]["value"]] == [bf16_bits(v) for v in f32]


def test_bf16_json_errors(gaps):
    r = post(gaps, "bf16", bf16_inputs([1.0, 3.3961775292305e38], [1.0]))
    assert_error(r, 400, "input 'x'", "element 1", "out of range for BF16")
    r = post(gaps, "bf16", bf16_inputs([1.0, True], [1.0]))
    assert_error(r, 400, "input 'x'", "element 1", "must be a number")
    r = post(gaps, "bf16", bf16_inputs([1.0, "1"], [1.0]))
    assert_error(r, 400, "input 'x'", "element 1", "must be a number")


def binary_body(header, tail):
    hb = json.dumps(header).encode()
    return hb + tail, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(hb))}


def test_bf16_binary_in_and_out(gaps):
    bits = np.array([0x3F80, 0xC020, 0x0001, 0x7F7F, 0x8000, 0x3DCD], dtype="<u2")
    g = np.array([0.1, -3.0], dtype="<f4")
    header = {"inputs": [{"name": "x", "datatype": "BF16", "shape": [2, 3], "parameters": {"binary_data_size": 12}},
                         {"name": "g", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}],
              "parameters": {"binary_data_output": True}}
    body, headers = binary_body(header, bits.tobytes() + g.tobytes())
    r = post(gaps, "bf16", body, headers)
    assert r.status_code == 200, r.text
    hlen = int(r.headers["Inference-Header-Content-Length"])
    head = json.loads(r.content[:hlen])
    tail = r.content[hlen:]
    sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in head["outputs"]}
    assert sizes == {"y": 12, "x32": 24, "g16": 4}
    assert [o["datatype"] for o in head["outputs"]] == ["BF16", "FP32", "BF16"]
    y = np.frombuffer(tail[:12], dtype="<u2")
    x32 = np.frombuffer(tail[12:36], dtype="<f4")
    g16 = np.frombuffer(tail[36:40], dtype="<u2")
    assert y.tolist() == bits.tolist()
    assert [float(v) for v in x32] == [bf16_value(int(b)) for b in bits]
    assert g16.tolist() == [bf16_bits(float(v)) for v in g]
    # a size that is not 2 bytes per element is refused naming the input
    header["inputs"][0]["parameters"]["binary_data_size"] = 11
    body, headers = binary_body(header, bits.tobytes()[:11] + g.tobytes())
    assert_error(post(gaps, "bf16", body, headers), 400, "input 'x'")


def test_bf16_nan_follows_allow_nan(gaps):
    nan_bits = np.array([0x3F80, 0x7FC0], dtype="<u2")
    header = {"inputs": [{"name": "x", "datatype": "BF16", "shape": [1, 2], "parameters": {"binary_data_size": 4}},
                         {"name": "g", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    body, headers = binary_body(header, nan_bits.tobytes())
    assert_error(post(gaps, "bf16", body, headers), 400, "input 'x' has NaN or Inf at element 1", "allow_nan")
    r = post(gaps, "bf16_nan_ok", body, headers)
    assert r.status_code == 200, r.text
    assert json.loads(r.text, parse_constant=lambda c: c)["outputs"][0]["data"] == [1, "NaN"]
    for bits in (0x7F80, 0xFF80):  # +-Infinity are refused the same way
        body, headers = binary_body(header, np.array([0x3F80, bits], dtype="<u2").tobytes())
        assert_error(post(gaps, "bf16", body, headers), 400, "input 'x' has NaN or Inf at element 1")


def test_bf16_metadata(gaps):
    meta = gaps.srv.get("/v2/models/bf16").json()
    assert meta["inputs"][0] == {"name": "x", "datatype": "BF16", "shape": [-1, -1]}
    assert [o["datatype"] for o in meta["outputs"]] == ["BF16", "FP32", "BF16"]
    m = gaps.infer.ModelMetadata(pb.ModelMetadataRequest(name="bf16"), timeout=timeout(30))
    assert m.inputs[0].datatype == "BF16"


def test_bf16_through_tf_serving_predict(gaps):
    """The application routes convert to and from BF16 too (not zeros, not an error)."""
    r = gaps.srv.post("/v1/models/bf16:predict", json={"inputs": {"x": [[1.00390625, 2.5]], "g": [[0.1]]}},
                      timeout=timeout(30))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"]
    assert [bf16_bits(v) for v in out["y"][0]] == [bf16_bits(1.00390625), bf16_bits(2.5)]
    assert [bf16_bits(v) for v in out["g16"][0]] == [bf16_bits(float(np.float32(0.1)))]


def grpc_bf16_request(model, bits, g):
    req = pb.ModelInferRequest(model_name=model)
    x = req.inputs.add(name="x", datatype="BF16", shape=[1, len(bits)])
    gi = req.inputs.add(name="g", datatype="FP32", shape=[1, len(g)])
    req.raw_input_contents.append(np.array(bits, dtype="<u2").tobytes())
    req.raw_input_contents.append(np.array(g, dtype="<f4").tobytes())
    return req, x, gi


def test_bf16_grpc_raw(gaps):
    bits = [0x3F80, 0xC020, 0x4049]
    req, _, _ = grpc_bf16_request("bf16", bits, [0.1])
    resp = gaps.infer.ModelInfer(req, timeout=timeout(30))
    assert [o.datatype for o in resp.outputs] == ["BF16", "FP32", "BF16"]
    assert len(resp.raw_output_contents) == 3
    assert np.frombuffer(resp.raw_output_contents[0], dtype="<u2").tolist() == bits
    assert np.frombuffer(resp.raw_output_contents[1], dtype="<f4").tolist() == [bf16_value(b) for b in bits]
    assert np.frombuffer(resp.raw_output_contents[2], dtype="<u2").tolist() == [bf16_bits(float(np.float32(0.1)))]


def test_bf16_grpc_typed_contents_refused(gaps):
    req = pb.ModelInferRequest(model_name="bf16")
    x = req.inputs.add(name="x", datatype="BF16", shape=[1, 2])
    x.contents.fp32_contents.extend([1.0, 2.0])
    g = req.inputs.add(name="g", datatype="FP32", shape=[1, 1])
    g.contents.fp32_contents.append(1.0)
    assert_rpc_error(gaps.infer.ModelInfer, req, grpc.StatusCode.INVALID_ARGUMENT,
                     "input 'x' is BF16", "raw_input_contents")


# --------------------------------------------------------------------------------------------
# a model without inputs


def test_no_inputs_json(gaps):
    want_c = np.array(make_test_models.CONSTANT_C, dtype=np.float32).reshape(-1).tolist()
    for body in ({}, {"inputs": []}, {"id": "k", "parameters": {"timeout": 5000000}}):
        r = post(gaps, "constant", body)
        assert r.status_code == 200, (body, r.text)
        _, outs = parse_response(r)
        assert outs["c"]["shape"] == [2, 3]
        assert outs["c"]["value"] == want_c
        assert outs["n"]["value"] == [7, -1]
    r = post(gaps, "constant", {"outputs": [{"name": "n"}]})
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == ["n"]


def test_no_inputs_binary(gaps):
    body, headers = binary_body({"outputs": [{"name": "c", "parameters": {"binary_data": True}}]}, b"")
    r = post(gaps, "constant", body, headers)
    assert r.status_code == 200, r.text
    hlen = int(r.headers["Inference-Header-Content-Length"])
    assert np.frombuffer(r.content[hlen:], dtype="<f4").tolist() == \
        np.array(make_test_models.CONSTANT_C, dtype=np.float32).reshape(-1).tolist()


def test_no_inputs_grpc(gaps):
    resp = gaps.infer.ModelInfer(pb.ModelInferRequest(model_name="constant"), timeout=timeout(30))
    outs = output_arrays(resp)
    assert outs["c"][1].tolist() == np.array(make_test_models.CONSTANT_C, dtype=np.float32).tolist()
    assert outs["n"][1].tolist() == [7, -1]
    m = gaps.infer.ModelMetadata(pb.ModelMetadataRequest(name="constant"), timeout=timeout(30))
    assert len(m.inputs) == 0


def test_no_inputs_errors(gaps):
    r = post(gaps, "constant", {"inputs": [{"name": "q", "datatype": "FP32", "shape": [1], "data": [1]}]})
    assert_error(r, 400, "unknown input 'q'", "takes no inputs")
    assert_error(post(gaps, "constant", {"inputs": None}), 400, "inputs must be an array")
    # a model that has inputs still needs them
    assert_error(post(gaps, "bf16", {}), 400, "missing input 'x'")
    assert_error(post(gaps, "bf16", {"inputs": []}), 400, "missing input 'x'")
    assert_rpc_error(gaps.infer.ModelInfer, pb.ModelInferRequest(model_name="bf16"), grpc.StatusCode.INVALID_ARGUMENT,
                     "missing input 'x'")
    # nothing carries a batch dimension: max_batch_size is refused at load, with the reason
    r = gaps.srv.get("/v2/models/constant_batched/ready")
    assert r.status_code != 200
    r = post(gaps, "constant_batched", {})
    assert_error(r, 503, "not ready", "no inputs")


# --------------------------------------------------------------------------------------------
# NaN, Infinity and -Infinity in JSON inputs


def test_non_finite_literals_where_allow_nan(gaps):
    body = '{"inputs":[{"name":"x","datatype":"BF16","shape":[1,3],"data":[NaN,Infinity,-Infinity]},' \
           '{"name":"g","datatype":"FP32","shape":[2,2],"data":[[NaN, 1.5],[ -Infinity ,Infinity]]}]}'
    r = post(gaps, "bf16_nan_ok", body)
    assert r.status_code == 200, r.text
    out = {o["name"]: o["data"] for o in json.loads(r.text, parse_constant=lambda c: c)["outputs"]}
    assert out["y"] == ["NaN", "Infinity", "-Infinity"]
    assert out["x32"] == ["NaN", "Infinity", "-Infinity"]
    assert out["g16"] == ["NaN", 1.5, "-Infinity", "Infinity"]
    # what the server wrote goes back in as it is
    again = post(gaps, "bf16_nan_ok", '{"inputs":[{"name":"x","datatype":"BF16","shape":[1,3],"data":'
                 + json.dumps(json.loads(r.text)["outputs"][0]["data"]) + '},'
                 '{"name":"g","datatype":"FP32","shape":[1,1],"data":[0]}]}')
    assert again.status_code == 200, again.text
    assert json.loads(again.text, parse_constant=lambda c: c)["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity"]


def test_non_finite_literals_refused_like_binary_elsewhere(gaps):
    for lit, bits in (("NaN", 0x7FC00000), ("Infinity", 0x7F800000), ("-Infinity", 0xFF800000)):
        js = post(gaps, "bf16", '{"inputs":[{"name":"x","datatype":"BF16","shape":[1,1],"data":[1]},'
                  '{"name":"g","datatype":"FP32","shape":[1,2],"data":[2,' + lit + ']}]}')
        header = {"inputs": [{"name": "x", "datatype": "BF16", "shape": [1, 1], "data": [1]},
                  {"name": "g", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}]}
        body, headers = binary_body(header, struct.pack("<fI", 2.0, bits))
        binary = post(gaps, "bf16", body, headers)
        assert_error(js, 400, "input 'g' has NaN or Inf at element 1", "allow_nan")
        assert js.json() == binary.json()


def test_non_finite_literals_only_as_json_numbers_go(gaps):
    """Only the three spellings, only as data elements: the rest is malformed JSON."""
    for lit in ("nan", "-NaN", "+Infinity", "Inf", "infinity", "NaN1"):
        body = '{"inputs":[{"name":"x","datatype":"BF16","shape":[1,1],"data":[1]},' \
               '{"name":"g","datatype":"FP32","shape":[1,1],"data":[' + lit + ']}]}'
        assert_error(post(gaps, "bf16_nan_ok", body), 400, "malformed JSON")
    body = '{"parameters":{"timeout":NaN},"inputs":[]}'
    assert_error(post(gaps, "constant", body), 400, "malformed JSON")


# --------------------------------------------------------------------------------------------
# gRPC integer parameters as uint64_param (what tritonclient sends for priority)


def with_param(req, key, kind, value):
    setattr(req.parameters[key], kind, value)
    return req


def test_grpc_priority_and_timeout_as_uint64(gaps):
    req = with_param(pb.ModelInferRequest(model_name="constant"), "priority", "uint64_param", 1)
    with_param(req, "timeout", "uint64_param", 5_000_000)
    resp = gaps.infer.ModelInfer(req, timeout=timeout(30))
    assert output_arrays(resp)["n"][1].tolist() == [7, -1]
    req = with_param(pb.ModelInferRequest(model_name="constant"), "priority", "uint64_param", 0)
    gaps.infer.ModelInfer(req, timeout=timeout(30))


def test_grpc_uint64_parameters_out_of_range(gaps):
    def req(key, kind, value):
        return with_param(pb.ModelInferRequest(model_name="constant"), key, kind, value)

    bad = grpc.StatusCode.INVALID_ARGUMENT
    assert_rpc_error(gaps.infer.ModelInfer, req("priority", "uint64_param", 2**64 - 1), bad,
                     "parameter 'priority' is 18446744073709551615, out of range")
    assert_rpc_error(gaps.infer.ModelInfer, req("priority", "uint64_param", 1000001), bad, "parameter 'priority'")
    # in range for the codec, above the model's one priority level
    assert_rpc_error(gaps.infer.ModelInfer, req("priority", "uint64_param", 2), bad, "parameter 'priority' is 2")
    assert_rpc_error(gaps.infer.ModelInfer, req("priority", "int64_param", -1), bad, "parameter 'priority' is -1")
    assert_rpc_error(gaps.infer.ModelInfer, req("timeout", "uint64_param", 2**63), bad,
                     "parameter 'timeout' is 9223372036854775808, out of range")
    assert_rpc_error(gaps.infer.ModelInfer, req("timeout", "uint64_param", 10**12), bad,
                     "parameter 'timeout'", "maximum")
    assert_rpc_error(gaps.infer.ModelInfer, req("timeout", "double_param", 1.5), bad,
                     "parameter 'timeout' must be an int64_param or uint64_param")
