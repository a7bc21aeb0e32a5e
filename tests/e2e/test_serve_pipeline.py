"""core/serve, the one entry point, seen from all six callers: V2 REST, /v1 predict, TF Serving
:predict, MLflow /invocations, gRPC ModelInfer and ModelStreamInfer, ModelService Predict.

- a registered admit handler runs on every protocol (the test-only INFERD_TEST_ADMIT_REFUSE_MODEL
  hook registers one that refuses a model);
- the one deadline rule: a short client timeout, and the model's default timeout, each give
  504 / DEADLINE_EXCEEDED on every caller;
- the one JSON-number conversion: 300 into a UINT8 input is 400 on every JSON route.
"""
import json
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import assert_error, timeout
from grpc_stubs import grpc_server_factory, infer_request, mspb  # noqa: F401
from make_test_models import model_of

T = timeout(30)
SLOW_APP = {"task": "regression", "features": [{"name": "a", "type": "numeric"}], "outputs": {"value": "y"}}
U8_APP = {"task": "regression", "features": [{"name": "a", "type": "integer"}], "outputs": {"value": "y"}}


def _u8_model():
    """u8: x UINT8 [N, 1] -> y = float(x)."""
    g = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "u8",
                          [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])])
    return model_of(g)


def _copy_slow(test_models_dir, repo, name, extra):
    shutil.copytree(os.path.join(test_models_dir, "slow_batched"), os.path.join(repo, name))
    path = os.path.join(repo, name, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["application"] = SLOW_APP
    for k, v in extra.items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    with open(path, "w") as f:
        json.dump(cfg, f)


@pytest.fixture(scope="module")
def repo(test_models_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("serve_repo"))
    _copy_slow(test_models_dir, root, "slowapp", {})
    _copy_slow(test_models_dir, root, "slowdef", {"dynamic_batching": {"default_timeout_us": 100_000}})
    os.makedirs(os.path.join(root, "u8", "1"))
    with open(os.path.join(root, "u8", "1", "model.onnx"), "wb") as f:
        f.write(_u8_model().SerializeToString())
    with open(os.path.join(root, "u8", "config.json"), "w") as f:
        json.dump({"max_batch_size": 8, "application": U8_APP}, f)
    return root


# --- the six callers, each returning ("http", status, body) or ("grpc", code, details) --------

def v2_rest(g, model, value, timeout_ms=None):
    dt = "UINT8" if model == "u8" else "FP32"
    body = {"inputs": [{"name": "x", "datatype": dt, "shape": [1, 1], "data": [value]}]}
    if timeout_ms is not None:
        body["parameters"] = {"timeout": timeout_ms * 1000}
    r = g.srv.post(f"/v2/models/{model}/infer", json=body, timeout=T)
    return "http", r.status_code, r.text


def v1_predict(g, model, value, timeout_ms=None):
    h = {"X-Request-Timeout-Ms": str(timeout_ms)} if timeout_ms is not None else {}
    r = g.srv.post(f"/v1/models/{model}/predict", json={"inputs": [{"a": value}]}, headers=h, timeout=T)
    return "http", r.status_code, r.text


def tf_predict(g, model, value, timeout_ms=None):
    h = {"X-Request-Timeout-Ms": str(timeout_ms)} if timeout_ms is not None else {}
    r = g.srv.post(f"/v1/models/{model}:predict", json={"instances": [[value]]}, headers=h, timeout=T)
    return "http", r.status_code, r.text


def mlflow(g, model, value, timeout_ms=None):
    # /invocations serves the --default-model, which each server below names
    h = {"X-Request-Timeout-Ms": str(timeout_ms)} if timeout_ms is not None else {}
    r = g.srv.post("/invocations", json={"inputs": {"x": [[value]]}}, headers=h, timeout=T)
    return "http", r.status_code, r.text


def _grpc_infer_req(model, value, timeout_ms):
    dt, np_dt = ("UINT8", np.uint8) if model == "u8" else ("FP32", np.float32)
    params = {"timeout": timeout_ms * 1000} if timeout_ms is not None else None
    return infer_request(model, [("x", dt, np.array([[value]], np_dt))], parameters=params)


def grpc_infer(g, model, value, timeout_ms=None):
    try:
        g.infer.ModelInfer(_grpc_infer_req(model, value, timeout_ms), timeout=T)
        return "grpc", grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return "grpc", e.code(), e.details()


def grpc_stream(g, model, value, timeout_ms=None):
    replies = list(g.infer.ModelStreamInfer(iter([_grpc_infer_req(model, value, timeout_ms)]), timeout=T))
    assert len(replies) == 1
    return "stream", replies[0].error_message == "", replies[0].error_message


def model_service(g, model, value, timeout_ms=None):
    r = mspb.Record()
    r.features["a"].CopyFrom(mspb.Value(number_value=float(value)) if model != "u8" else mspb.Value(int_value=value))
    # ModelService has no timeout parameter: its client's source is the gRPC deadline
    t = timeout_ms / 1000 if timeout_ms is not None else T
    try:
        g.app.Predict(mspb.PredictRequest(model=model, record=r), timeout=t)
        return "grpc", grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return "grpc", e.code(), e.details()


CALLERS = [v2_rest, v1_predict, tf_predict, mlflow, grpc_infer, grpc_stream, model_service]


def assert_refused(kind, code, msg, http_status, grpc_code, needle):
    if kind == "http":
        assert code == http_status, f"expected {http_status}, got {code}: {msg}"
        assert needle.lower() in json.loads(msg)["error"].lower(), msg
    elif kind == "grpc":
        assert code == grpc_code, f"expected {grpc_code}, got {code}: {msg}"
        assert needle.lower() in msg.lower(), msg
    else:  # a stream answers each request's error in its message, the stream goes on
        assert not code, "the request succeeded"
        assert needle.lower() in msg.lower(), msg


# --- a registered stage handler runs for every protocol ---------------------------------------

def test_registered_admit_handler_runs_on_every_protocol(repo, grpc_server_factory):
    g = grpc_server_factory(repo, args=["--default-model", "u8"], env={"INFERD_TEST_ADMIT_REFUSE_MODEL": "u8"})
    for caller in CALLERS:
        kind, code, msg = caller(g, "u8", 7)
        assert_refused(kind, code, msg, 503, grpc.StatusCode.UNAVAILABLE, "refused by the test admit handler")


def test_without_the_hook_the_same_requests_succeed(repo, grpc_server_factory):
    g = grpc_server_factory(repo, args=["--default-model", "u8"])
    for caller in CALLERS:
        kind, code, msg = caller(g, "u8", 7)
        if kind == "http":
            assert code == 200, f"{caller.__name__}: {code} {msg}"
        elif kind == "grpc":
            assert code == grpc.StatusCode.OK, f"{caller.__name__}: {code} {msg}"
        else:
            assert code, f"{caller.__name__}: {msg}"


# --- the one deadline rule ----------------------------------------------------------------------

def _blocker(g, model):
    """A 4-row V2 request that runs at once and keeps the one instance busy ~300 ms."""
    out = {}

    def run():
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4, 1], "data": [1.0] * 4}]}
        out["r"] = g.srv.post(f"/v2/models/{model}/infer", json=body, timeout=T)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(0.08)  # it is running once the queue has handed it over
    return t, out


@pytest.mark.parametrize("caller", [v2_rest, v1_predict, tf_predict, mlflow, grpc_infer, grpc_stream],
                         ids=lambda c: c.__name__)
def test_client_timeout_gives_504_on_every_caller(repo, grpc_server_factory, caller):
    """A 50 ms timeout (V2 parameter over REST and gRPC, X-Request-Timeout-Ms on the
    application routes) behind a ~300 ms run: the request's deadline passes in the queue."""
    g = grpc_server_factory(repo, args=["--default-model", "slowapp"])
    t, out = _blocker(g, "slowapp")
    kind, code, msg = caller(g, "slowapp", 1.0, timeout_ms=50)
    t.join(T)
    assert out["r"].status_code == 200
    assert_refused(kind, code, msg, 504, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")
    # and without the timeout the same request is served
    kind, code, msg = caller(g, "slowapp", 1.0)
    assert (code == 200) if kind == "http" else (code == grpc.StatusCode.OK if kind == "grpc" else code), msg


def test_model_default_timeout_applies_on_every_caller(repo, grpc_server_factory):
    """slowdef's config sets default_timeout_us 100 ms: a request that names no timeout and waits
    behind a ~300 ms run gets 504 / DEADLINE_EXCEEDED on every caller."""
    g = grpc_server_factory(repo, args=["--default-model", "slowdef"])
    for caller in CALLERS:
        t, out = _blocker(g, "slowdef")
        kind, code, msg = caller(g, "slowdef", 1.0)
        t.join(T)
        assert out["r"].status_code == 200, out["r"].text
        assert_refused(kind, code, msg, 504, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")


def test_model_service_client_deadline_reaches_the_server(repo, grpc_server_factory):
    """ModelService has no timeout parameter: its client's gRPC deadline is the source. The
    server fails the queued request at that deadline (its stats count a failure), not after the
    run ahead of it."""
    g = grpc_server_factory(repo, args=["--default-model", "slowapp"])
    t, out = _blocker(g, "slowapp")
    kind, code, msg = model_service(g, "slowapp", 1.0, timeout_ms=60)
    t.join(T)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    stats = g.srv.get("/v2/models/slowapp/stats", timeout=T).json()["model_stats"][0]["inference_stats"]
    assert stats["fail"]["count"] >= 1, stats


# --- the one JSON-number conversion -------------------------------------------------------------

@pytest.mark.parametrize("caller", [v2_rest, v1_predict, tf_predict, mlflow], ids=lambda c: c.__name__)
def test_300_into_uint8_is_400_on_every_json_route(repo, grpc_server_factory, caller):
    g = grpc_server_factory(repo, args=["--default-model", "u8"])
    kind, code, msg = caller(g, "u8", 300)
    assert code == 400, f"{caller.__name__}: {code} {msg}"
    err = json.loads(msg)["error"]
    assert "UINT8" in err, err  # names the datatype the value does not fit
    kind, code, msg = caller(g, "u8", 255)
    assert code == 200, f"{caller.__name__}: {code} {msg}"
    assert "255" in msg, msg


# --- the version that answered, on every unary protocol ------------------------------------------

def test_every_unary_protocol_says_which_version_answered(repo, grpc_server_factory):
    """serve's route stage adds X-Model-Version: an HTTP header on all four REST callers, the
    gRPC initial metadata entry x-model-version on the unary RPCs."""
    g = grpc_server_factory(repo, args=["--default-model", "u8"])
    body = {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1, 1], "data": [7]}]}
    for path, doc in [("/v2/models/u8/infer", body), ("/v1/models/u8/predict", {"inputs": [{"a": 7}]}),
                      ("/v1/models/u8:predict", {"instances": [[7]]}), ("/invocations", {"inputs": {"x": [[7]]}})]:
        r = g.srv.post(path, json=doc, timeout=T)
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "1", (path, r.status_code, r.text)
    _, call = g.infer.ModelInfer.with_call(_grpc_infer_req("u8", 7, None), timeout=T)
    assert dict(call.initial_metadata())["x-model-version"] == "1"
    r = mspb.Record()
    r.features["a"].CopyFrom(mspb.Value(int_value=7))
    _, call = g.app.Predict.with_call(mspb.PredictRequest(model="u8", record=r), timeout=T)
    assert dict(call.initial_metadata())["x-model-version"] == "1"
