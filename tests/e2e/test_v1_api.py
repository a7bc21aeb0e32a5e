"""The application API: the /v1 model catalogue and predict with named features, and validation
that reports every problem with its JSON path."""
import math
import time

import pytest

from app_repo import CHURN_P, CHURN_RECORD, write_repo
from conftest import Server, assert_error, timeout, wait_models_settled


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, logs_dir):
    repo = write_repo(str(tmp_path_factory.mktemp("app_repo")))
    srv = Server(repo, args=["--default-model", "churn", "--max-records", "50"], workdir=logs_dir)
    srv.start(wait_ready=False)
    wait_models_settled(srv, expect=("churn", "reg", "sentiment", "plain", "badapp"))
    yield srv
    srv.stop()
    srv.check_clean_exit()


def predict(srv, model, body, version=None, headers=None):
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + "/predict"
    return srv.post(path, json=body, headers=headers)


def errors_of(resp, status=400):
    assert resp.status_code == status, f"{resp.status_code}: {resp.text[:500]}"
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"]
    return {(e["path"], e["kind"]) for e in body["errors"]}, body


# ---- catalogue --------------------------------------------------------------------------------


def test_models_list(app_server):
    r = app_server.get("/v1/models")
    assert r.status_code == 200
    models = {m["id"]: m for m in r.json()["models"]}
    assert set(models) == {"badapp", "churn", "plain", "reg", "sentiment"}
    assert models["churn"]["default_version"] == "1"
    assert models["churn"]["versions"] == [{"version": "1", "state": "READY"}]
    assert models["churn"]["task"] == "classification" and models["churn"]["predict"] is True
    assert models["reg"]["task"] == "regression"
    assert [v["version"] for v in models["reg"]["versions"]] == ["1", "2"]
    assert models["plain"]["predict"] is False
    assert models["badapp"]["default_version"] is None
    assert models["badapp"]["versions"][0]["state"] == "UNAVAILABLE"


def test_model_detail(app_server):
    r = app_server.get("/v1/models/churn")
    assert r.status_code == 200
    d = r.json()
    assert d["id"] == "churn" and d["backend"] == "onnxruntime" and d["default_version"] == "1"
    v = d["versions"][0]
    assert v["state"] == "READY" and v["reason"] is None
    assert len(v["sha256"]) == 64 and all(ch in "0123456789abcdef" for ch in v["sha256"])
    assert v["loaded_at"].endswith("Z")
    feats = {f["name"]: f for f in d["input_schema"]["features"]}
    assert list(feats) == list(CHURN_RECORD)
    assert feats["tenure_months"] == {"name": "tenure_months", "type": "numeric", "required": True, "minimum": 0,
                                      "maximum": 600, "description": "months as a customer", "tensor": "input"}
    assert feats["contract"]["type"] == "categorical"
    assert feats["contract"]["categories"] == ["month-to-month", "one-year", "two-year"]
    assert feats["age"]["type"] == "integer"
    assert d["input_schema"]["allow_extra_features"] is False
    assert d["output_schema"]["labels"] == ["stay", "churn"]
    assert d["class_labels"] == ["stay", "churn"]
    assert d["task"] == "classification"
    # the model card: description and metrics
    assert d["description"] == "Predicts which customers will leave (test card)"
    assert d["metrics"] == {"accuracy": 0.791, "roc_auc": 0.84}
    assert d["model_card"]["owner"] == "tests"
    # TF Serving's model status
    assert d["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]


def test_sha256_matches_file(app_server):
    import hashlib
    import os
    d = app_server.get("/v1/models/churn").json()
    with open(os.path.join(app_server.repo, "churn", "1", "model.onnx"), "rb") as f:
        assert d["versions"][0]["sha256"] == hashlib.sha256(f.read()).hexdigest()


def test_model_detail_versions_and_card_in_version_folder(app_server):
    d = app_server.get("/v1/models/reg").json()
    assert d["default_version"] == "2"
    assert [v["version"] for v in d["versions"]] == ["1", "2"]
    assert d["description"] == "version two" and d["metrics"] == {"rmse": 0.0}
    assert {s["version"] for s in d["model_version_status"]} == {"1", "2"}
    one = app_server.get("/v1/models/reg/versions/1").json()
    assert [v["version"] for v in one["versions"]] == ["1"]
    assert [s["version"] for s in one["model_version_status"]] == ["1"]
    assert one["description"] == "test regressor" and one["metrics"] is None
    assert one["output_schema"]["task"] == "regression"
    b = {f["name"]: f for f in one["input_schema"]["features"]}["b"]
    assert b["required"] is False and b["default"] == 1


def test_model_detail_errors(app_server):
    assert_error(app_server.get("/v1/models/nope"), 404, "nope")
    assert_error(app_server.get("/v1/models/reg/versions/9"), 404)


def test_config_error_makes_version_unavailable(app_server):
    d = app_server.get("/v1/models/badapp").json()
    v = d["versions"][0]
    assert v["state"] == "UNAVAILABLE"
    assert "application.features[1].type" in v["reason"]
    st = d["model_version_status"][0]
    assert st["state"] == "END" and "application.features[1].type" in st["status"]["error_message"]
    health = {m["name"]: m for m in app_server.get("/health").json()["models"]}
    assert "application.features[1].type" in health["badapp"]["reason"]
    assert_error(predict(app_server, "badapp", {"inputs": [CHURN_RECORD]}), 503, "not ready", "application.features[1]")


# ---- predict ----------------------------------------------------------------------------------


def test_predict_one_record(app_server):
    r = predict(app_server, "churn", {"inputs": [CHURN_RECORD]})
    assert r.status_code == 200, r.text
    assert r.headers["X-Model-Version"] == "1"
    d = r.json()
    assert d["id"].startswith("pred_") and len(d["id"]) > 5
    assert d["model"] == "churn" and d["model_version"] == "1"
    assert abs(d["created"] - time.time()) < 120
    assert d["usage"] == {"records": 1}
    assert d["inference_time_ms"] >= 0
    (res,) = d["results"]
    assert res["label"] == "churn"
    assert res["score"] == pytest.approx(CHURN_P, abs=1e-5)
    assert res["probabilities"]["churn"] == pytest.approx(CHURN_P, abs=1e-5)
    assert res["probabilities"]["stay"] == pytest.approx(1 - CHURN_P, abs=1e-5)


def test_predict_matches_tensor_api(app_server):
    recs = [CHURN_RECORD,
            {"tenure_months": 60, "monthly_charges": 20.0, "total_charges": 1200.0, "support_calls": 0, "age": 70,
             "contract": "two-year", "payment_method": "card"},
            {"tenure_months": 12, "monthly_charges": 55.25, "total_charges": 663.0, "support_calls": 5, "age": 35,
             "contract": "one-year", "payment_method": "mailed_check"}]
    rows = [[3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0],
            [60, 20.0, 1200.0, 0, 70, 0, 0, 1, 1, 0, 0, 0],
            [12, 55.25, 663.0, 5, 35, 0, 1, 0, 0, 0, 0, 1]]
    v2 = app_server.post("/v2/models/churn/infer", json={"inputs": [
        {"name": "input", "datatype": "FP32", "shape": [3, 12], "data": rows}],
        "outputs": [{"name": "probabilities"}]}).json()
    probs = v2["outputs"][0]["data"]
    d = predict(app_server, "churn", {"inputs": recs}).json()
    assert d["usage"] == {"records": 3}
    for i, res in enumerate(d["results"]):
        assert res["probabilities"]["stay"] == pytest.approx(probs[2 * i], abs=1e-6)
        assert res["probabilities"]["churn"] == pytest.approx(probs[2 * i + 1], abs=1e-6)
        assert res["label"] == ("churn" if probs[2 * i + 1] > probs[2 * i] else "stay")


def test_single_record_form(app_server):
    body = {"features": [{"name": k, "value": v} for k, v in CHURN_RECORD.items()]}
    d = predict(app_server, "churn", body).json()
    assert d["results"][0]["label"] == "churn"
    assert d["usage"] == {"records": 1}


def test_parameters(app_server):
    d = predict(app_server, "churn", {"inputs": [CHURN_RECORD], "parameters": {"top_k": 1}}).json()
    assert list(d["results"][0]["probabilities"]) == ["churn"]
    d = predict(app_server, "churn", {"inputs": [CHURN_RECORD], "parameters": {"return_probabilities": False}}).json()
    assert "probabilities" not in d["results"][0]
    assert d["results"][0]["score"] == pytest.approx(CHURN_P, abs=1e-5)


def test_text_model(app_server):
    d = predict(app_server, "sentiment", {"inputs": [{"text": "what a great product"},
                                                     {"text": "awful service, never again"}]}).json()
    assert [r["label"] for r in d["results"]] == ["positive", "negative"]
    assert set(d["results"][0]["probabilities"]) == {"negative", "positive"}


def test_regressor_defaults_and_index_encoding(app_server):
    d = predict(app_server, "reg", {"inputs": [{"a": 1.5, "b": 2, "colour": "blue"}, {"a": 0, "colour": "red"}]},
                version="1").json()
    assert d["model_version"] == "1"
    assert d["results"] == [{"value": pytest.approx(1.5 + 4 + 20 + 0.5)}, {"value": pytest.approx(0 + 2 + 0 + 0.5)}]


def test_version_selection(app_server):
    rec = {"a": 0, "colour": "red"}
    assert predict(app_server, "reg", {"inputs": [rec]}).json()["results"][0]["value"] == pytest.approx(102.5)
    assert predict(app_server, "reg", {"inputs": [rec]}, version="1").json()["results"][0]["value"] == pytest.approx(2.5)
    r = predict(app_server, "reg", {"inputs": [rec]}, headers={"X-Model-Version": "1"})
    assert r.json()["model_version"] == "1" and r.headers["X-Model-Version"] == "1"
    assert_error(predict(app_server, "reg", {"inputs": [rec]}, headers={"X-Model-Version": "7"}), 404)
    assert_error(predict(app_server, "reg", {"inputs": [rec]}, version="7"), 404)


# ---- validation -------------------------------------------------------------------------------


def test_every_problem_reported_with_its_path(app_server):
    bad = dict(CHURN_RECORD)
    bad.pop("age")                      # missing required feature
    bad["colour"] = "red"               # unknown feature
    bad["monthly_charges"] = "a lot"    # wrong type
    bad["tenure_months"] = -4           # out of range
    bad["contract"] = "weekly"          # unknown category
    bad["support_calls"] = 1.5          # not a whole number
    body = {"inputs": [CHURN_RECORD, bad, "not a record"], "parameters": {"top_k": 0}}
    errs, doc = errors_of(predict(app_server, "churn", body))
    assert errs == {
        ("$.inputs[1].age", "missing_feature"),
        ("$.inputs[1].colour", "unknown_feature"),
        ("$.inputs[1].monthly_charges", "wrong_type"),
        ("$.inputs[1].tenure_months", "out_of_range"),
        ("$.inputs[1].contract", "unknown_category"),
        ("$.inputs[1].support_calls", "wrong_type"),
        ("$.inputs[2]", "wrong_type"),
        ("$.parameters.top_k", "wrong_type"),
    }
    assert "8 problems" in doc["error"]
    msgs = {e["path"]: e["message"] for e in doc["errors"]}
    assert "month-to-month" in msgs["$.inputs[1].contract"]
    assert "0 to 600" in msgs["$.inputs[1].tenure_months"]


def test_single_form_paths(app_server):
    body = {"features": [{"name": "tenure_months", "value": "x"}, {"name": "tenure_months", "value": 1}, {"value": 2}]}
    errs, _ = errors_of(predict(app_server, "churn", body))
    assert ("$.features[0].value", "wrong_type") in errs
    assert ("$.features[1].name", "invalid") in errs
    assert ("$.features[2].name", "missing_feature") in errs
    assert ("$.features", "missing_feature") in errs  # e.g. age
    errs, _ = errors_of(predict(app_server, "churn", {"features": [{"name": "colour", "value": "red"}]}))
    assert ("$.features[0].name", "unknown_feature") in errs


def test_body_shape_errors(app_server):
    errs, _ = errors_of(predict(app_server, "churn", {"inputs": []}))
    assert errs == {("$.inputs", "empty")}
    errs, _ = errors_of(predict(app_server, "churn", {}))
    assert errs == {("$.inputs", "missing_field")}
    errs, _ = errors_of(predict(app_server, "churn", {"inputs": [CHURN_RECORD], "extra": 1, "parameters": {"x": 1}}))
    assert errs == {("$.extra", "unknown_field"), ("$.parameters.x", "unknown_field")}
    errs, _ = errors_of(predict(app_server, "churn", {"inputs": [CHURN_RECORD], "features": []}))
    assert ("$", "invalid") in errs
    errs, _ = errors_of(predict(app_server, "churn", {"inputs": 5}))
    assert errs == {("$.inputs", "wrong_type")}
    # one record given bare is accepted
    assert predict(app_server, "churn", {"inputs": CHURN_RECORD}).status_code == 200


def test_too_many_records(app_server):
    errs, doc = errors_of(predict(app_server, "churn", {"inputs": [CHURN_RECORD] * 51}), status=413)
    assert errs == {("$.inputs", "too_many")}
    assert "50" in doc["error"]
    assert predict(app_server, "churn", {"inputs": [CHURN_RECORD] * 50}).status_code == 200
    # the model's own max_batch_size is a limit too (reg: 16)
    errs, _ = errors_of(predict(app_server, "reg", {"inputs": [{"a": 1, "colour": "red"}] * 17}), status=413)


def test_malformed_and_wrong_media(app_server):
    r = app_server.post("/v1/models/churn/predict", data=b'{"inputs": [', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "malformed JSON", "line 1")
    r = app_server.post("/v1/models/churn/predict", data=b'[1, 2]', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "JSON object")
    r = app_server.post("/v1/models/churn/predict", data=b'a=1', headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "application/json")
    r = app_server.post("/v1/models/churn/predict", data=b'{"inputs": [{"a": 1, "a": 2}]}',
                        headers={"Content-Type": "application/json"})
    assert_error(r, 400, "duplicate")


def test_model_without_schema_and_unknown_model(app_server):
    assert_error(predict(app_server, "plain", {"inputs": [{"x": 1}]}), 400, "no feature schema", "/v2/models/plain/infer")
    assert_error(predict(app_server, "nope", {"inputs": [{"x": 1}]}), 404, "nope")
    assert_error(app_server.get("/v1/models/churn/predict"), 405)


def test_fuzzed_bodies_never_500(app_server):
    import random
    rnd = random.Random(3)
    values = [None, True, 0, -1, 1e308, -1e308, 1.5, "", "x" * 300, [], {}, [1], {"a": 1}, "month-to-month"]
    for _ in range(150):
        rec = {k: rnd.choice(values) for k in rnd.sample(list(CHURN_RECORD) + ["zz", ""], rnd.randint(0, 9))}
        shape = rnd.choice(["inputs", "features", "bare"])
        if shape == "inputs":
            body = {"inputs": [rec] * rnd.randint(0, 3)}
        elif shape == "features":
            body = {"features": [{"name": k, "value": v} for k, v in rec.items()] + [rnd.choice(values)]}
        else:
            body = rnd.choice(values)
        r = predict(app_server, "churn", body)
        assert r.status_code in (200, 400), (body, r.status_code, r.text[:300])
        assert isinstance(r.json(), dict)
    assert app_server.alive()
