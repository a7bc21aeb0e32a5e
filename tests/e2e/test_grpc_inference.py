"""inference.GRPCInferenceService: metadata, readiness, and ModelInfer with typed and raw
contents for every datatype, against the real binary with Debian's python3-grpcio."""

import json

import grpc
import numpy as np
import pytest

from conftest import ALL_DATATYPES, IDENTITY_FILLER, V2_NUMPY, timeout
from grpc_stubs import (assert_rpc_error, grpc_examples, grpc_server, infer_request, output_arrays, pb,  # noqa: F401
                        add_input)
from test_infer_binary import BINARY_SAMPLES
from test_infer_json import JSON_SAMPLES

T = timeout(30)


def identity_request(datatype, values, raw, outputs=None, **kw):
    """identity_all needs every input fed: the datatype under test plus [1, 1] fillers."""
    inputs = [(f"in_{datatype}", datatype, values)]
    for d in ALL_DATATYPES:
        if d != datatype:
            inputs.append((f"in_{d}", d, [[IDENTITY_FILLER.get(d, 0)]]))
    return infer_request("identity_all", inputs, outputs=outputs if outputs is not None else [f"out_{datatype}"],
                         raw=raw, **kw)


def sample(datatype, samples):
    vals = samples[datatype]
    if datatype == "BYTES":
        return np.array([[v.encode() if isinstance(v, str) else v for v in row] for row in vals], dtype=object)
    return np.array(vals, dtype=V2_NUMPY[datatype])


def test_server_live_ready_metadata(grpc_server):
    g = grpc_server
    assert g.infer.ServerLive(pb.ServerLiveRequest(), timeout=T).live is True
    assert g.infer.ServerReady(pb.ServerReadyRequest(), timeout=T).ready is True
    md = g.infer.ServerMetadata(pb.ServerMetadataRequest(), timeout=T)
    assert md.name == "inferd"
    assert md.version == g.srv.get("/v2").json()["version"]
    assert "statistics" in md.extensions and "model_repository" in md.extensions


def test_model_ready(grpc_server):
    g = grpc_server
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="add_sub"), timeout=T).ready is True
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="versioned", version="3"), timeout=T).ready is True
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="versioned", version="2"), timeout=T).ready is True
    # an unknown model or version is not ready, not an error (tritonclient's is_model_ready relies on it)
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="versioned", version="1"), timeout=T).ready is False
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="nope"), timeout=T).ready is False
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="nope", version="7"), timeout=T).ready is False
    assert_rpc_error(g.infer.ModelReady, pb.ModelReadyRequest(name=""), grpc.StatusCode.INVALID_ARGUMENT, "name")


def test_model_metadata_matches_rest(grpc_server):
    g = grpc_server
    for name in ["add_sub", "identity_all", "zipmap", "versioned"]:
        md = g.infer.ModelMetadata(pb.ModelMetadataRequest(name=name), timeout=T)
        rest = g.srv.get(f"/v2/models/{name}").json()
        assert md.name == rest["name"]
        assert list(md.versions) == rest["versions"]
        assert md.platform == rest["platform"] == "onnxruntime_onnx"
        for got, want in ((md.inputs, rest["inputs"]), (md.outputs, rest["outputs"])):
            assert [(t.name, t.datatype, list(t.shape)) for t in got] == [
                (t["name"], t["datatype"], t["shape"]) for t in want]
    md = g.infer.ModelMetadata(pb.ModelMetadataRequest(name="versioned", version="2"), timeout=T)
    assert list(md.versions) == ["2", "3"]
    assert_rpc_error(g.infer.ModelMetadata, pb.ModelMetadataRequest(name="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    assert_rpc_error(g.infer.ModelMetadata, pb.ModelMetadataRequest(name="add_sub", version="9"),
                     grpc.StatusCode.NOT_FOUND, "version 9")


@pytest.mark.parametrize("datatype", ALL_DATATYPES)
def test_identity_typed_contents(grpc_server, datatype):
    want = sample(datatype, JSON_SAMPLES)
    resp = grpc_server.infer.ModelInfer(identity_request(datatype, want, raw=False), timeout=T)
    assert resp.model_name == "identity_all" and resp.model_version == "1"
    outs = output_arrays(resp)
    dt, got = outs[f"out_{datatype}"]
    assert dt == datatype
    assert got.shape == want.shape
    if datatype == "FP16":
        # no typed field for FP16: the response goes raw, the request may use fp32_contents
        assert len(resp.raw_output_contents) == 1
    else:
        assert len(resp.raw_output_contents) == 0
        assert resp.outputs[0].contents.ListFields(), "typed request gets typed contents back"
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("datatype", ALL_DATATYPES)
def test_identity_raw_contents(grpc_server, datatype):
    want = sample(datatype, BINARY_SAMPLES)
    resp = grpc_server.infer.ModelInfer(identity_request(datatype, want, raw=True), timeout=T)
    assert len(resp.raw_output_contents) == 1
    assert not resp.outputs[0].HasField("contents")
    dt, got = output_arrays(resp)[f"out_{datatype}"]
    assert dt == datatype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # the bytes are exactly the input's
    assert resp.raw_output_contents[0] == identity_request(datatype, want, raw=True).raw_input_contents[0]


def test_typed_full_64bit_range(grpc_server):
    """Typed contents carry what JSON cannot: the whole UINT64 and INT64 ranges."""
    for dt, vals in (("UINT64", [[0, 2**64 - 1, 2**63]]), ("INT64", [[-2**63, 2**63 - 1, -1]])):
        want = np.array(vals, dtype=V2_NUMPY[dt])
        resp = grpc_server.infer.ModelInfer(identity_request(dt, want, raw=False), timeout=T)
        np.testing.assert_array_equal(output_arrays(resp)[f"out_{dt}"][1], want)


def test_bytes_typed_binary_safe(grpc_server):
    """NUL and control bytes come back as sent; an ONNX string tensor holds UTF-8 text, so an
    element that is not UTF-8 is INVALID_ARGUMENT naming it (docs/grpc-api.md)."""
    want = np.array([[b"\x00\x01\x7f", b"", "h\u00e9llo".encode()]], dtype=object)
    resp = grpc_server.infer.ModelInfer(identity_request("BYTES", want, raw=False), timeout=T)
    np.testing.assert_array_equal(output_arrays(resp)["out_BYTES"][1], want)
    bad = np.array([[b"ok", b"\x00\xff\xfe"]], dtype=object)
    with pytest.raises(grpc.RpcError) as exc:
        grpc_server.infer.ModelInfer(identity_request("BYTES", bad, raw=False), timeout=T)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'in_BYTES' element 1 is not valid UTF-8" in exc.value.details()


def test_all_outputs_by_default_in_model_order(grpc_server):
    req = identity_request("INT32", [[1, 2]], raw=True, outputs=[])
    resp = grpc_server.infer.ModelInfer(req, timeout=T)
    assert [o.name for o in resp.outputs] == [f"out_{d}" for d in ALL_DATATYPES]
    assert len(resp.raw_output_contents) == len(ALL_DATATYPES)
    outs = output_arrays(resp)
    np.testing.assert_array_equal(outs["out_INT32"][1], np.array([[1, 2]], np.int32))
    # typed request with an FP16 output among them: the whole response goes raw
    resp = grpc_server.infer.ModelInfer(identity_request("INT32", [[1, 2]], raw=False, outputs=[]), timeout=T)
    assert len(resp.raw_output_contents) == len(ALL_DATATYPES)


def test_requested_outputs_subset_and_order(grpc_server):
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 4), np.float32)
    for raw in (False, True):
        req = infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", b)], outputs=["diff"], raw=raw)
        outs = output_arrays(grpc_server.infer.ModelInfer(req, timeout=T))
        assert list(outs) == ["diff"]
        np.testing.assert_array_equal(outs["diff"][1], a - b)
        req = infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", b)], outputs=["diff", "sum"], raw=raw)
        resp = grpc_server.infer.ModelInfer(req, timeout=T)
        assert [o.name for o in resp.outputs] == ["diff", "sum"]
        np.testing.assert_array_equal(output_arrays(resp)["sum"][1], a + b)


def test_request_id_echoed_and_versions(grpc_server):
    x = np.array([[2.0]], np.float32)
    resp = grpc_server.infer.ModelInfer(infer_request("versioned", [("x", "FP32", x)], request_id="req-42"), timeout=T)
    assert resp.id == "req-42"
    assert resp.model_version == "3"
    np.testing.assert_array_equal(output_arrays(resp)["y"][1], x * 3)
    resp = grpc_server.infer.ModelInfer(infer_request("versioned", [("x", "FP32", x)], version="2"), timeout=T)
    assert resp.model_version == "2" and resp.id == ""
    np.testing.assert_array_equal(output_arrays(resp)["y"][1], x * 2)


def test_map_outputs_are_json_text(grpc_server):
    x = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]], np.float32)
    resp = grpc_server.infer.ModelInfer(infer_request("zipmap", [("x", "FP32", x)]), timeout=T)
    outs = output_arrays(resp)
    assert outs["label"][0] == "INT64" and outs["label"][1].shape == (2,)
    probs = [json.loads(v) for v in outs["probs_str"][1]]
    assert all(set(p) == {"a", "b", "c"} and abs(sum(p.values()) - 1) < 1e-5 for p in probs)
    rest = grpc_server.srv.post("/v2/models/zipmap/infer",
                                json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3],
                                                  "data": x.tolist()}]}).json()
    rest_probs = {o["name"]: o["data"] for o in rest["outputs"]}["probs_str"]
    assert probs == rest_probs


def test_same_answer_as_rest(grpc_examples):
    """The churn example over gRPC and over REST give the same probabilities."""
    row = [3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0]
    x = np.array([row, [60, 20, 1200, 0, 50, 0, 0, 1, 1, 0, 0, 0]], np.float32)
    resp = grpc_examples.infer.ModelInfer(infer_request("churn", [("input", "FP32", x)], raw=True), timeout=T)
    outs = output_arrays(resp)
    rest = grpc_examples.srv.post("/v2/models/churn/infer", json={
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 12], "data": x.tolist()}]}).json()
    by_name = {o["name"]: o for o in rest["outputs"]}
    np.testing.assert_allclose(outs["probabilities"][1].reshape(-1), by_name["probabilities"]["data"], rtol=1e-6)
    assert outs["label"][1].tolist() == by_name["label"]["data"]
    req = infer_request("sentiment", [("text", "BYTES", np.array(["what a great product", "awful"], dtype=object))])
    outs = output_arrays(grpc_examples.infer.ModelInfer(req, timeout=T))
    assert outs  # the text model answers over gRPC too


def test_zero_element_tensor(grpc_server):
    """An input with no elements is refused on every route (docs/http-api.md, "Inference")."""
    want = np.zeros((0, 3), np.float32)
    for raw in (False, True):
        with pytest.raises(grpc.RpcError) as exc:
            grpc_server.infer.ModelInfer(identity_request("FP32", want, raw=raw), timeout=T)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "input 'in_FP32' has shape [0,3], which holds no elements" in exc.value.details()


def test_typed_fp16_via_fp32_contents_rounds(grpc_server):
    req = identity_request("FP16", np.array([[0.1, 65504.0, -3.0]], np.float32), raw=False)
    dt, got = output_arrays(grpc_server.infer.ModelInfer(req, timeout=T))["out_FP16"]
    np.testing.assert_array_equal(got, np.array([[0.1, 65504.0, -3.0]], np.float16))


def test_parameters_we_do_not_know_are_ignored(grpc_server):
    a = np.ones((1, 4), np.float32)
    req = infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", a)],
                        parameters={"binary_data_output": True, "something": "else", "timeout": 30_000_000})
    req.inputs[0].parameters["x"].string_param = "y"
    req.outputs.add(name="sum").parameters["binary_data"].bool_param = True
    outs = output_arrays(grpc_server.infer.ModelInfer(req, timeout=T))
    np.testing.assert_array_equal(outs["sum"][1], a + a)


def test_many_concurrent_calls_on_one_channel(grpc_server):
    """Calls multiplex on one HTTP/2 connection; each gets its own answer."""
    futs = []
    for i in range(64):
        a = np.full((1, 4), i, np.float32)
        req = infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", a)], request_id=str(i), raw=i % 2 == 0)
        futs.append((i, grpc_server.infer.ModelInfer.future(req, timeout=T)))
    for i, f in futs:
        resp = f.result()
        assert resp.id == str(i)
        np.testing.assert_array_equal(output_arrays(resp)["sum"][1], np.full((1, 4), 2 * i, np.float32))
