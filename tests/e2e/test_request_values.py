"""Request values that used to overflow, reach ONNX Runtime or slip through (issue 9, defects 2,
4, 6 and 7), over HTTP and gRPC: each gets a 4xx with an {"error": ...} body (or a gRPC
status) that names what is wrong, in inferd's words; only a failure of the server is a 5xx."""

import base64
import json
import struct

import grpc
import numpy as np
import pytest
import requests

from conftest import EXAMPLE_REPO, assert_error, running_server, timeout
from grpc_stubs import (assert_rpc_error, grpc_server, grpc_server_factory, infer_request, mspb, pb,  # noqa: F401
                        pbg, running_grpc_server)

T = timeout(30)
IA = grpc.StatusCode.INVALID_ARGUMENT
CHURN_ROW = [3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 1, 0, 0]


@pytest.fixture(scope="module")
def examples(logs_dir):
    """HTTP on the example repository (churn, and sentiment with its StringNormalizer)."""
    with running_server(EXAMPLE_REPO, workdir=logs_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def grpc_examples(logs_dir):
    with running_grpc_server(EXAMPLE_REPO, logs_dir) as g:
        yield g


def churn(data, shape=(1, 12), **extra):
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(shape), "data": data}]}
    body.update(extra)
    return body


def sentiment_binary(elements, shape=None):
    payload = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": shape or [len(elements)],
                                     "parameters": {"binary_data_size": len(payload)}}]}).encode()
    return header + payload, {"Content-Type": "application/octet-stream",
                              "Inference-Header-Content-Length": str(len(header))}


# ---- defect 2: deadlines that overflowed ------------------------------------------------------

@pytest.mark.parametrize("timeout_us", [2**63 - 1, 2**62, 86400 * 10**6 + 1])
def test_absurd_v2_timeout_is_400(examples, timeout_us):
    r = examples.infer("churn", churn(CHURN_ROW, parameters={"timeout": timeout_us}))
    assert_error(r, 400, "parameters.timeout", str(timeout_us), "one day")


def test_largest_v2_timeout_runs(examples):
    """One day is allowed, and the request runs (before, 2^63-1 wrapped to an immediate 504)."""
    r = examples.infer("churn", churn(CHURN_ROW, parameters={"timeout": 86400 * 10**6}))
    assert r.status_code == 200, r.content[:300]


@pytest.mark.parametrize("value,needle", [("99999999999999999999", "more than the maximum"),
                                          ("86400001", "more than the maximum"), ("-5", "not a whole number"),
                                          ("1e3", "not a whole number")])
def test_bad_timeout_header_is_400(examples, value, needle):
    for path in ("/v2/models/churn/infer", "/v1/models/churn:predict"):
        body = churn(CHURN_ROW) if "v2" in path else {"instances": [CHURN_ROW]}
        r = examples.post(path, json=body, headers={"X-Request-Timeout-Ms": value})
        assert_error(r, 400, "X-Request-Timeout-Ms", value, needle)


@pytest.mark.parametrize("timeout_us", [2**62, 2**63 - 1])
def test_absurd_grpc_timeout_is_invalid_argument(grpc_examples, timeout_us):
    req = infer_request("churn", [("input", "FP32", np.array([CHURN_ROW], np.float32))],
                        parameters={"timeout": timeout_us})
    assert_rpc_error(grpc_examples.infer.ModelInfer, req, IA, "timeout", str(timeout_us), "one day")
    ok = infer_request("churn", [("input", "FP32", np.array([CHURN_ROW], np.float32))],
                       parameters={"timeout": 86400 * 10**6})
    assert grpc_examples.infer.ModelInfer(ok, timeout=T).outputs


# ---- defect 4: values that reached ONNX Runtime ----------------------------------------------

def test_non_utf8_bytes_is_400_on_every_http_route(examples):
    body, hdrs = sentiment_binary([b"good", b"bad \xff\xfe"])
    assert_error(examples.infer("sentiment", body, headers=hdrs), 400, "input 'text' element 1", "UTF-8")
    r = examples.post("/v1/models/sentiment:predict",
                      json={"instances": [{"b64": base64.b64encode(b"\xc3\x28").decode()}]})
    assert_error(r, 400, "input 'text' element 0", "UTF-8")
    r = examples.post("/v1/models/sentiment:predict",
                      json={"inputs": {"text": [{"b64": base64.b64encode(b"ok").decode()},
                                                {"b64": base64.b64encode(b"\xed\xa0\x80").decode()}]}})
    assert_error(r, 400, "input 'text' element 1", "UTF-8")
    # valid multi-byte text is served
    body, hdrs = sentiment_binary(["très bon \u2603".encode()])
    assert examples.infer("sentiment", body, headers=hdrs).status_code == 200


def test_non_utf8_bytes_is_invalid_argument_over_grpc(grpc_examples):
    for raw in (False, True):
        req = infer_request("sentiment", [("text", "BYTES", np.array([b"fine", b"\x80"], dtype=object))], raw=raw)
        assert_rpc_error(grpc_examples.infer.ModelInfer, req, IA, "input 'text' element 1", "UTF-8")


@pytest.mark.parametrize("model,inp", [
    ("sentiment", {"name": "text", "datatype": "BYTES", "shape": [0], "data": []}),
    ("churn", {"name": "input", "datatype": "FP32", "shape": [0, 12], "data": []}),
])
def test_zero_rows_are_400_everywhere(examples, grpc_examples, model, inp):
    """docs/http-api.md: a request with no elements is refused the same way on every route (before:
    sentiment gave 500 from ONNX Runtime, churn 200)."""
    r = examples.infer(model, {"inputs": [inp]})
    assert_error(r, 400, f"input '{inp['name']}'", "no elements")
    dt = inp["datatype"]
    arr = np.zeros(inp["shape"], dtype=object if dt == "BYTES" else np.float32)
    req = infer_request(model, [(inp["name"], dt, arr)])
    assert_rpc_error(grpc_examples.infer.ModelInfer, req, IA, f"input '{inp['name']}'", "no elements")
    r = examples.post(f"/v1/models/{model}:predict", json={"instances": []})
    assert r.status_code == 400


def test_runtime_value_error_is_400_naming_the_node(server):
    """gather_fail: an index outside the table fails in ONNX Runtime's Gather kernel; that is the
    request's values, so 400 naming the node and the index, not 500."""
    body = {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [42]}]}
    r = server.infer("gather_fail", body)
    assert_error(r, 400, "Gather", "42")
    assert "Non-zero status code" not in r.json()["error"]


# ---- defect 6: lenient acceptance -------------------------------------------------------------

@pytest.mark.parametrize("data,shape,needle", [
    ([[[v] for v in CHURN_ROW]], [1, 12], "nested deeper"),
    ([[CHURN_ROW]], [1, 12], "nested deeper"),
    ([CHURN_ROW[:6], CHURN_ROW[6:]], [1, 12], "dimension"),
    ([[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12]], [1, 12], "dimension"),
    ([CHURN_ROW[:11] + [[0]]], [1, 12], "nested deeper"),
    ([CHURN_ROW, 5], [2, 12], "needs an array"),
])
def test_data_nested_unlike_its_shape_is_400(examples, data, shape, needle):
    r = examples.infer("churn", churn(data, shape=shape))
    assert_error(r, 400, "input 'input'", needle)


def test_bytes_data_nested_deeper_is_400(examples):
    r = examples.infer("sentiment", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [["a"]]}]})
    assert_error(r, 400, "input 'text'", "nested deeper")


def test_flat_and_exactly_nested_data_are_served(examples):
    for data in (CHURN_ROW, [CHURN_ROW]):
        assert examples.infer("churn", churn(data)).status_code == 200
    two = churn([CHURN_ROW, CHURN_ROW], shape=(2, 12))
    assert examples.infer("churn", two).status_code == 200


def test_v1_inputs_as_one_record_is_accepted_on_purpose(examples):
    """docs/application-api.md: "inputs" may be one record given bare; it answers as a list of one."""
    rec = {"text": "what a great product"}
    one = examples.post("/v1/models/sentiment/predict", json={"inputs": rec})
    listed = examples.post("/v1/models/sentiment/predict", json={"inputs": [rec]})
    assert one.status_code == 200 and listed.status_code == 200
    assert one.json()["results"] == listed.json()["results"]
    assert_error(examples.post("/v1/models/sentiment/predict", json={"inputs": "text"}), 400, "$.inputs")


def _with_bad_id(req, stream=False):
    """The serialized request with its id's bytes replaced by bytes that are not UTF-8 (protobuf
    for Python refuses to build such a string)."""
    req.id = "@@@@"
    wire = req.SerializeToString()
    assert wire.count(b"@@@@") == 1
    return wire.replace(b"@@@@", b"\xff\xfe@\xc0")


def test_grpc_non_utf8_id_is_invalid_argument(grpc_examples):
    req = infer_request("churn", [("input", "FP32", np.array([CHURN_ROW], np.float32))])
    infer = grpc_examples.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                              response_deserializer=pb.ModelInferResponse.FromString)
    with pytest.raises(grpc.RpcError) as exc:
        infer(_with_bad_id(req), timeout=T)
    assert exc.value.code() == IA and "id" in exc.value.details() and "UTF-8" in exc.value.details()
    stream = grpc_examples.channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer",
                                                 response_deserializer=pb.ModelStreamInferResponse.FromString)
    good = infer_request("churn", [("input", "FP32", np.array([CHURN_ROW], np.float32))], request_id="fine")
    replies = list(stream(iter([_with_bad_id(req), good.SerializeToString()]), timeout=T))
    assert len(replies) == 2
    assert "UTF-8" in replies[0].error_message and replies[0].infer_response.id == ""
    assert replies[1].error_message == "" and replies[1].infer_response.id == "fine"


# ---- defect 7: error messages -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v2/models/%ff%fe/ready", "/v2/models/%ff", "/v1/models/%c3", "/v2/models/%ff/infer",
                                  "/v1/models/%ff:predict", "/v1/models/%ff/predict"])
def test_non_utf8_model_name_gets_a_json_404(examples, path):
    method = "POST" if path.endswith(("infer", "predict")) else "GET"
    r = examples.session.request(method, examples.url(path), json={}, timeout=T)
    assert_error(r, 404, "not found")


def test_long_multibyte_names_keep_error_bodies_json(examples):
    """Messages are cut to fit a buffer; a cut through a multi-byte character used to leave text
    the JSON encoder refused (an empty body). The status message's own cut is unit-tested
    (tests/unit/test_request_values.c); here a feature name cut by "%.60s"."""
    r = examples.get("/v2/models/" + "\u00e9" * 120 + "/ready")
    assert_error(r, 404, "not found", "\u00e9" * 120)
    r = examples.post("/v1/models/churn/predict", json={"inputs": [{"x" * 59 + "\u00e9": 1}]})
    assert_error(r, 400, "problems")
    assert any(e["kind"] == "unknown_feature" for e in r.json()["errors"])


def test_json_errors_are_in_our_words(examples):
    r = examples.post("/v2/models/churn/infer", data=b'{"id": "a\\u0000b", "inputs": []}',
                      headers={"Content-Type": "application/json"})
    assert_error(r, 400, "line 1, column", "NUL")
    assert "JSON_ALLOW_NUL" not in r.json()["error"]
    r = examples.post("/v2/models/churn/infer", data=b'{"inputs": []} x', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "after the JSON value")


@pytest.mark.parametrize("path", ["/v2/models/churn/infer", "/v1/models/churn/predict", "/v1/models/churn:predict"])
def test_json_positions_are_one_way_everywhere(examples, path):
    r = examples.post(path, data=b'{"inputs": [1,\n 2', headers={"Content-Type": "application/json"})
    assert_error(r, 400, regex=r"malformed JSON at line 2, column \d+: ")
    r = examples.post(path, data=b'\xff', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "line 1, column 1", "UTF-8")


def test_header_length_reported_as_sent(examples):
    r = examples.post("/v2/models/churn/infer", data=b"{}",
                      headers={"Inference-Header-Content-Length": "18446744073709551616",
                               "Content-Type": "application/octet-stream"})
    assert_error(r, 400, "18446744073709551616", "2 bytes")
    assert "9223372036854775807" not in r.json()["error"]


def test_octet_stream_without_header_length_says_so(examples):
    body, _ = sentiment_binary([b"good"])
    r = examples.post("/v2/models/sentiment/infer", data=body, headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "Inference-Header-Content-Length", "missing")


def test_tfserving_empty_request_names_both_forms(examples):
    assert_error(examples.post("/v1/models/churn:predict", json={}), 400, "neither", "instances", "inputs")
    r = examples.post("/v1/models/churn:predict", json={"instances": [CHURN_ROW], "inputs": [CHURN_ROW]})
    assert_error(r, 400, "both")


def test_mlflow_errors_carry_error_too(examples):
    r = examples.post("/invocations", json={})
    assert r.status_code == 404 and r.json()["error"] == r.json()["message"]


@pytest.mark.skipif(mspb is None, reason="proto/model_service.proto is missing")
@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")])
def test_grpc_predict_non_finite_feature_says_so(grpc_examples, bad, word):
    rec = mspb.Record()
    for k, v in {"tenure_months": 3, "monthly_charges": bad, "total_charges": 268.5, "support_calls": 2, "age": 29,
                 "contract": "month-to-month", "payment_method": "electronic_check"}.items():
        if isinstance(v, str):
            rec.features[k].string_value = v
        elif isinstance(v, int):
            rec.features[k].int_value = v
        else:
            rec.features[k].number_value = v
    msg = assert_rpc_error(grpc_examples.app.Predict, mspb.PredictRequest(model="churn", record=rec), IA,
                           "monthly_charges", f"{word} is not allowed")
    assert "missing" not in msg
