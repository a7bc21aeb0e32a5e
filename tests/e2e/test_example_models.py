"""The real example repository (models/) serves, with outputs equal to an independent reference:
mlp against a numpy forward pass of its own weights, churn against the pickled scikit-learn
pipeline, sentiment on obviously positive and negative sentences."""

import json
import os
import pickle

import numpy as np
import pytest

from conftest import EXAMPLE_REPO, REPO_ROOT, build_request, infer_ok, running_server

ARTIFACTS = os.path.join(REPO_ROOT, "examples", "artifacts")


@pytest.fixture(scope="module")
def example_server(logs_dir):
    with running_server(EXAMPLE_REPO, workdir=logs_dir) as srv:
        yield srv


# ---- a numpy evaluator for the plain graphs the example models use ----------------------------


def numpy_forward(model_path, feeds):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(model_path)
    env = {init.name: numpy_helper.to_array(init).astype(np.float64)
           if numpy_helper.to_array(init).dtype.kind == "f" else numpy_helper.to_array(init)
           for init in model.graph.initializer}
    env.update({k: np.asarray(v, np.float64) for k, v in feeds.items()})
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Gemm":
            a, b = ins[0], ins[1]
            if attrs.get("transA"):
                a = a.T
            if attrs.get("transB"):
                b = b.T
            y = attrs.get("alpha", 1.0) * (a @ b)
            if len(ins) > 2 and ins[2] is not None:
                y = y + attrs.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = ins[0] @ ins[1]
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "Sub":
            y = ins[0] - ins[1]
        elif op == "Mul":
            y = ins[0] * ins[1]
        elif op == "Div":
            y = ins[0] / ins[1]
        elif op == "Relu":
            y = np.maximum(ins[0], 0)
        elif op == "Sigmoid":
            y = 1 / (1 + np.exp(-ins[0]))
        elif op == "Tanh":
            y = np.tanh(ins[0])
        elif op in ("Identity", "Cast"):
            y = ins[0]
        elif op == "Softmax":
            axis = attrs.get("axis", -1)
            e = np.exp(ins[0] - ins[0].max(axis=axis, keepdims=True))
            y = e / e.sum(axis=axis, keepdims=True)
        elif op == "ArgMax":
            y = np.argmax(ins[0], axis=attrs.get("axis", 0))
            if attrs.get("keepdims", 1):
                y = np.expand_dims(y, attrs.get("axis", 0))
        else:
            raise AssertionError(f"numpy_forward: op {op} not supported by the test's evaluator")
        for name in node.output:
            env[name] = y
    return env


def metadata(srv, model):
    r = srv.get(f"/v2/models/{model}")
    assert r.status_code == 200, r.content
    return r.json()


def test_example_repository_ready(example_server):
    body = example_server.get("/health").json()
    states = {(m["name"], str(m["version"])): m["state"] for m in body["models"]}
    for name in ("churn", "mlp", "sentiment"):
        assert states.get((name, "1")) == "READY", states


def test_example_metadata(example_server):
    mlp = metadata(example_server, "mlp")
    assert mlp["platform"] == "onnxruntime_onnx"
    assert mlp["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 256]}]
    assert mlp["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    churn = metadata(example_server, "churn")
    assert churn["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 12]}]
    outs = {o["name"]: o for o in churn["outputs"]}
    assert outs["label"]["datatype"] == "INT64" and outs["label"]["shape"] == [-1]
    assert outs["probabilities"]["datatype"] == "FP32" and outs["probabilities"]["shape"] == [-1, 2]
    assert outs["probability_map"]["datatype"] == "BYTES" and outs["probability_map"]["shape"] == [-1]
    sent = metadata(example_server, "sentiment")
    assert sent["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    souts = {o["name"]: o for o in sent["outputs"]}
    assert souts["label"]["datatype"] == "BYTES"
    assert souts["probabilities"]["datatype"] == "FP32" and souts["probabilities"]["shape"] == [-1, 2]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_mlp_matches_numpy_forward_pass(example_server, binary):
    rng = np.random.RandomState(2024)
    x = rng.randn(5, 256).astype(np.float32)
    want = numpy_forward(os.path.join(EXAMPLE_REPO, "mlp", "1", "model.onnx"), {"input": x})["probabilities"]
    inputs = [{"name": "input", "datatype": "FP32", "shape": [5, 256], "data": x if binary else x.tolist(),
               "binary": binary}]
    header, outs, _ = infer_ok(example_server, "mlp", inputs,
                               parameters={"binary_data_output": True} if binary else None)
    assert header["model_name"] == "mlp" and header["model_version"] == "1"
    out = outs["probabilities"]
    assert out["datatype"] == "FP32" and out["shape"] == [5, 10]
    got = np.asarray(out["value"], np.float64).reshape(5, 10)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # The reference itself is not trivial (guards against comparing two constant outputs).
    assert np.ptp(want) > 1e-3


def test_mlp_single_row(example_server):
    x = np.linspace(-1, 1, 256, dtype=np.float32).reshape(1, 256)
    want = numpy_forward(os.path.join(EXAMPLE_REPO, "mlp", "1", "model.onnx"), {"input": x})["probabilities"]
    _, outs, _ = infer_ok(example_server, "mlp", [{"name": "input", "datatype": "FP32", "shape": [1, 256],
                                                   "data": x.tolist()}])
    np.testing.assert_allclose(np.asarray(outs["probabilities"]["value"]).reshape(1, 10), want, atol=1e-4)


def churn_reference():
    with open(os.path.join(ARTIFACTS, "churn_features.json")) as f:
        features = json.load(f)
    with open(os.path.join(ARTIFACTS, "churn_sklearn.pkl"), "rb") as f:
        pipeline = pickle.load(f)
    return features, pipeline


def churn_rows(features, n=16, seed=5):
    rng = np.random.RandomState(seed)
    columns = features["columns"]
    rows = np.zeros((n, len(columns)), np.float32)
    numeric_ranges = {"tenure_months": (0, 72), "monthly_charges": (18, 120), "total_charges": (0, 8000),
                      "support_calls": (0, 10), "age": (18, 90)}
    for name in features["numeric"]:
        lo, hi = numeric_ranges.get(name, (0, 100))
        rows[:, columns.index(name)] = np.round(rng.uniform(lo, hi, n), 2)
    for feat, cats in features["categorical"].items():
        pick = rng.randint(0, len(cats), n)
        for i in range(n):
            rows[i, columns.index(f"{feat}={cats[pick[i]]}")] = 1.0
    rows[0] = np.asarray(features["example"]["row"], np.float32)
    return rows


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_churn_matches_sklearn(example_server, binary):
    features, pipeline = churn_reference()
    assert features["input"] == "input"
    x = churn_rows(features)
    want = pipeline.predict_proba(x)
    classes = features["classes"]
    inputs = [{"name": features["input"], "datatype": "FP32", "shape": list(x.shape),
               "data": x if binary else x.tolist(), "binary": binary}]
    header, outs, _ = infer_ok(example_server, "churn", inputs,
                               parameters={"binary_data_output": True} if binary else None)
    probs = np.asarray(outs["probabilities"]["value"], np.float64).reshape(len(x), 2)
    assert outs["probabilities"]["shape"] == [len(x), 2]
    np.testing.assert_allclose(probs, want, rtol=0, atol=1e-5)
    # The documented example row.
    np.testing.assert_allclose(probs[0], features["example"]["probabilities"], atol=1e-5)
    labels = np.asarray(outs["label"]["value"]).reshape(-1)
    assert outs["label"]["datatype"] == "INT64" and outs["label"]["shape"] == [len(x)]
    assert labels.tolist() == want.argmax(axis=1).tolist()
    # probability_map: one {"stay": p, "churn": p} object per row, equal to probabilities.
    pm = outs["probability_map"]
    assert pm["datatype"] == "BYTES" and pm["shape"] == [len(x)]
    for i, elem in enumerate(list(np.asarray(pm["value"], dtype=object).reshape(-1))):
        if binary:
            elem = json.loads(elem.decode("utf-8"))
        assert isinstance(elem, dict), elem
        assert sorted(elem) == sorted(classes), elem
        for j, cls in enumerate(classes):
            assert abs(elem[cls] - want[i, j]) < 1e-5, (i, cls, elem, want[i])


def test_churn_both_classes_seen(example_server):
    """The sample covers both predictions, so the label check above is meaningful."""
    features, pipeline = churn_reference()
    want = pipeline.predict_proba(churn_rows(features))
    assert set(want.argmax(axis=1)) == {0, 1}


POSITIVE = ["I loved it, absolutely wonderful and great, highly recommended!",
            "The staff were friendly and the food was delicious"]
NEGATIVE = ["Terrible, awful and rude, the worst experience, never again",
            "I hated this product, it broke and the service was bad"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_sentiment(example_server, binary):
    texts = POSITIVE + NEGATIVE
    data = np.array([t.encode() for t in texts], dtype=object) if binary else texts
    inputs = [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": data, "binary": binary}]
    _, outs, _ = infer_ok(example_server, "sentiment", inputs,
                          parameters={"binary_data_output": True} if binary else None)
    labels = list(np.asarray(outs["label"]["value"], dtype=object).reshape(-1))
    if binary:
        labels = [l.decode("utf-8") for l in labels]
    assert labels == ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    probs = np.asarray(outs["probabilities"]["value"], np.float64).reshape(len(texts), 2)
    assert outs["probabilities"]["shape"] == [len(texts), 2]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs[:len(POSITIVE), 1] > 0.5).all(), probs
    assert (probs[len(POSITIVE):, 0] > 0.5).all(), probs


def test_sentiment_non_ascii_text(example_server):
    _, outs, _ = infer_ok(example_server, "sentiment", [
        {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["wonderful caf\u00e9 \u2603", ""]}])
    assert len(outs["label"]["value"]) == 2
    assert all(l in ("positive", "negative") for l in outs["label"]["value"])
