"""TensorFlow Serving's REST predict API: POST /v1/models/{m}[/versions/{v}]:predict with
"instances" (row form) or "inputs" (columnar form), and its model status and error format."""
import base64

import pytest

from app_repo import CHURN_P, CHURN_RECORD, CHURN_ROW, write_repo
from conftest import Server, wait_models_settled


@pytest.fixture(scope="module")
def tf_server(tmp_path_factory, logs_dir):
    repo = write_repo(str(tmp_path_factory.mktemp("tf_repo")), broken=False)
    srv = Server(repo, workdir=logs_dir)
    srv.start(wait_ready=True)
    yield srv
    srv.stop()
    srv.check_clean_exit()


def tf_predict(srv, model, body, version=None):
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    return srv.post(path, json=body)


def tf_error(resp, status):
    assert resp.status_code == status, f"{resp.status_code}: {resp.text[:300]}"
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"]
    return body["error"]


def test_row_form_tensor(tf_server):
    r = tf_predict(tf_server, "plain", {"instances": [[1, 2], [3.5, -1]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [[2, 4], [7, -2]]}


def test_columnar_form_tensor(tf_server):
    r = tf_predict(tf_server, "plain", {"inputs": {"x": [[1, 2]]}})
    assert r.json() == {"outputs": [[2, 4]]}
    r = tf_predict(tf_server, "plain", {"inputs": [[1, 2]]})  # a bare tensor for a one-input model
    assert r.json() == {"outputs": [[2, 4]]}


def test_row_form_named_inputs_and_several_outputs(tf_server):
    r = tf_predict(tf_server, "churn", {"instances": [{"input": CHURN_ROW}, {"input": CHURN_ROW}]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 2
    p = preds[0]
    assert set(p) == {"label", "probabilities", "probability_map"}
    assert p["label"] == 1
    assert p["probabilities"][1] == pytest.approx(CHURN_P, abs=1e-5)
    assert p["probability_map"]["churn"] == pytest.approx(CHURN_P, abs=1e-5)


def test_columnar_several_outputs(tf_server):
    r = tf_predict(tf_server, "churn", {"inputs": {"input": [CHURN_ROW]}}, version="1")
    out = r.json()["outputs"]
    assert out["label"] == [1]
    assert out["probabilities"][0][1] == pytest.approx(CHURN_P, abs=1e-5)


def test_records_of_named_features(tf_server):
    """A model with a feature schema also takes instances of named features."""
    r = tf_predict(tf_server, "churn", {"instances": [CHURN_RECORD]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["probabilities"][1] == pytest.approx(CHURN_P, abs=1e-5)
    cols = {k: [v] for k, v in CHURN_RECORD.items()}
    r = tf_predict(tf_server, "churn", {"inputs": cols})
    assert r.json()["outputs"]["label"] == [1]


def test_strings_and_b64(tf_server):
    r = tf_predict(tf_server, "sentiment", {"instances": ["what a great product", {"b64": base64.b64encode(b"awful").decode()}]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == ["positive", "negative"]


def test_signature_name(tf_server):
    assert tf_predict(tf_server, "plain", {"signature_name": "serving_default", "instances": [[1, 1]]}).status_code == 200
    assert "serving_default" in tf_error(tf_predict(tf_server, "plain", {"signature_name": "other", "instances": [[1, 1]]}), 400)


def test_errors_in_tf_format(tf_server):
    msg = tf_error(tf_predict(tf_server, "plain", {"instances": [[1, 2]], "inputs": {"x": [[1, 2]]}}), 400)
    assert "instances" in msg and "inputs" in msg
    tf_error(tf_predict(tf_server, "plain", {}), 400)
    assert "not rectangular" in tf_error(tf_predict(tf_server, "plain", {"instances": [[1, 2], [3]]}), 400)
    assert "$.instances[1]" in tf_error(tf_predict(tf_server, "plain", {"instances": [[1, 2], [3]]}), 400)
    assert "number" in tf_error(tf_predict(tf_server, "plain", {"instances": [["a", "b"]]}), 400)
    assert "shape" in tf_error(tf_predict(tf_server, "plain", {"instances": [[1, 2, 3]]}), 400)
    assert "nope" in tf_error(tf_predict(tf_server, "nope", {"instances": [[1]]}), 404)
    tf_error(tf_predict(tf_server, "plain", {"instances": [[1, 2]]}, version="9"), 404)
    msg = tf_error(tf_predict(tf_server, "churn", {"instances": [dict(CHURN_RECORD, contract="weekly")]}), 400)
    assert "$.instances[0].contract" in msg
    msg = tf_error(tf_predict(tf_server, "churn", {"inputs": dict({k: [v] for k, v in CHURN_RECORD.items()}, age=["x"])}), 400)
    assert "$.inputs.age[0]" in msg
    msg = tf_error(tf_predict(tf_server, "plain", {"instances": [{"y": [1, 2]}]}), 400)
    assert "'y'" in msg
    r = tf_server.post("/v1/models/plain:predict", data=b"{", headers={"Content-Type": "application/json"})
    assert "malformed JSON" in tf_error(r, 400)


def test_model_status(tf_server):
    d = tf_server.get("/v1/models/reg").json()
    assert sorted(s["version"] for s in d["model_version_status"]) == ["1", "2"]
    assert all(s["state"] == "AVAILABLE" and s["status"]["error_code"] == "OK" for s in d["model_version_status"])
    d = tf_server.get("/v1/models/reg/versions/2").json()
    assert d["model_version_status"] == [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]


def test_fuzzed_bodies_never_500(tf_server):
    import random
    rnd = random.Random(5)
    leaves = [None, True, 0, -1, 1.5, 1e300, "", "x", {"b64": "!!"}, {"b64": "YQ=="}, [], {}, [[]], [1, [2]]]

    def value(depth=0):
        r = rnd.random()
        if depth < 3 and r < 0.3:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        if depth < 3 and r < 0.45:
            keys = rnd.sample(["x", "input", "text", "tenure_months", "contract", "zz"], rnd.randint(0, 3))
            return {k: value(depth + 1) for k in keys}
        return rnd.choice(leaves)

    for _ in range(200):
        body = {rnd.choice(["instances", "inputs", "signature_name", "other"]): value()}
        model = rnd.choice(["plain", "churn", "sentiment", "reg"])
        r = tf_predict(tf_server, model, body)
        assert r.status_code in (200, 400, 413), (model, body, r.status_code, r.text[:300])
        assert isinstance(r.json(), dict)
    assert tf_server.alive()
