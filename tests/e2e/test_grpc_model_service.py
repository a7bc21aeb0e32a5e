"""inferd.ModelService: the application API over gRPC (named features in, labels and
probabilities out), answering as REST /v1 does for the same records."""

import json

import grpc
import numpy as np
import pytest

from conftest import timeout
from grpc_stubs import assert_rpc_error, grpc_examples, grpc_server, mspb  # noqa: F401

T = timeout(30)

pytestmark = pytest.mark.skipif(mspb is None, reason="proto/model_service.proto is missing")

RECORD = {"tenure_months": 3, "monthly_charges": 89.5, "total_charges": 268.5, "support_calls": 2, "age": 29,
          "contract": "month-to-month", "payment_method": "electronic_check"}
LOYAL = {"tenure_months": 60, "monthly_charges": 20, "total_charges": 1200, "support_calls": 0, "age": 50,
         "contract": "two-year", "payment_method": "card"}


def value(v):
    if isinstance(v, bool):
        return mspb.Value(bool_value=v)
    if isinstance(v, int):
        return mspb.Value(int_value=v)
    if isinstance(v, float):
        return mspb.Value(number_value=v)
    return mspb.Value(string_value=v)


def record(d):
    r = mspb.Record()
    for k, v in d.items():
        r.features[k].CopyFrom(value(v))
    return r


def rest_predict(g, records, parameters=None):
    body = {"inputs": records}
    if parameters:
        body["parameters"] = parameters
    r = g.srv.post("/v1/models/churn/predict", json=body)
    return r.status_code, r.json()


def assert_same(pred, rest_result):
    assert pred.label == rest_result["label"]
    assert pred.HasField("score")
    assert pred.score == pytest.approx(rest_result["score"], rel=1e-6)
    got = [(p.label, p.probability) for p in pred.probabilities]
    want = list(rest_result.get("probabilities", {}).items())
    assert [k for k, _ in got] == [k for k, _ in want]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in want], rtol=1e-6)


def test_predict_matches_rest(grpc_examples):
    g = grpc_examples
    resp = g.app.Predict(mspb.PredictRequest(model="churn", record=record(RECORD)), timeout=T)
    assert resp.id.startswith("pred_") and len(resp.id) > 10
    assert resp.model == "churn" and resp.model_version == "1" and resp.created > 0
    assert resp.inference_time_ms > 0
    status, rest = rest_predict(g, [RECORD])
    assert status == 200
    assert_same(resp.result, rest["results"][0])
    assert resp.result.label == "churn"


def test_predict_options(grpc_examples):
    g = grpc_examples
    opts = mspb.PredictOptions(return_probabilities=mspb.Flag(value=False))
    resp = g.app.Predict(mspb.PredictRequest(model="churn", record=record(RECORD), options=opts), timeout=T)
    assert len(resp.result.probabilities) == 0 and resp.result.label == "churn"
    opts = mspb.PredictOptions(top_k=1)
    resp = g.app.Predict(mspb.PredictRequest(model="churn", record=record(LOYAL), options=opts), timeout=T)
    _, rest = rest_predict(g, [LOYAL], {"top_k": 1})
    assert_same(resp.result, rest["results"][0])
    assert [p.label for p in resp.result.probabilities] == ["stay"]


def test_batch_predict_matches_rest(grpc_examples):
    g = grpc_examples
    recs = [RECORD, LOYAL, dict(RECORD, age=70, contract="one-year")]
    resp = g.app.BatchPredict(mspb.BatchPredictRequest(model="churn", version="1", records=[record(r) for r in recs]),
                              timeout=T)
    assert resp.records == 3 and len(resp.results) == 3 and resp.model_version == "1"
    _, rest = rest_predict(g, recs)
    for p, r in zip(resp.results, rest["results"]):
        assert_same(p, r)


def test_validation_errors_name_every_problem(grpc_examples):
    g = grpc_examples
    bad = {"tenure_months": -3, "contract": "weekly", "colour": "red"}
    msg = assert_rpc_error(g.app.Predict, mspb.PredictRequest(model="churn", record=record(bad)),
                           grpc.StatusCode.INVALID_ARGUMENT, "$.record.features.tenure_months", "out of its range",
                           "problems")
    assert msg
    recs = [RECORD, {"tenure_months": "long"}]
    assert_rpc_error(g.app.BatchPredict, mspb.BatchPredictRequest(model="churn", records=[record(r) for r in recs]),
                     grpc.StatusCode.INVALID_ARGUMENT, "$.records[1].features.tenure_months")
    assert_rpc_error(g.app.BatchPredict, mspb.BatchPredictRequest(model="churn"), grpc.StatusCode.INVALID_ARGUMENT)
    assert_rpc_error(g.app.Predict, mspb.PredictRequest(model="churn", record=record(RECORD),
                                                        options=mspb.PredictOptions(top_k=-1)),
                     grpc.StatusCode.INVALID_ARGUMENT, "top_k")


def test_model_errors(grpc_examples):
    g = grpc_examples
    assert_rpc_error(g.app.Predict, mspb.PredictRequest(model="nope", record=record(RECORD)),
                     grpc.StatusCode.NOT_FOUND, "nope")
    assert_rpc_error(g.app.Predict, mspb.PredictRequest(model="churn", version="9", record=record(RECORD)),
                     grpc.StatusCode.NOT_FOUND, "version 9")
    assert_rpc_error(g.app.Predict, mspb.PredictRequest(record=record(RECORD)), grpc.StatusCode.INVALID_ARGUMENT,
                     "model name")
    assert_rpc_error(g.app.Predict, mspb.PredictRequest(model="mlp", record=record(RECORD)),
                     grpc.StatusCode.INVALID_ARGUMENT, "no feature schema", "ModelInfer")


def test_too_many_records_is_resource_exhausted(grpc_examples):
    g = grpc_examples
    recs = [record(RECORD)] * 1001
    assert_rpc_error(g.app.BatchPredict, mspb.BatchPredictRequest(model="churn", records=recs),
                     grpc.StatusCode.RESOURCE_EXHAUSTED, "1001 records")


def test_stream_predict_in_order_with_errors(grpc_examples):
    g = grpc_examples
    reqs = []
    for i in range(20):
        if i % 4 == 3:
            reqs.append(mspb.PredictRequest(model="churn", record=record({"age": "old"})))
        else:
            reqs.append(mspb.PredictRequest(model="churn", record=record(dict(RECORD, tenure_months=i * 5))))
    got = list(g.app.StreamPredict(iter(reqs), timeout=T))
    assert len(got) == 20
    for i, r in enumerate(got):
        if i % 4 == 3:
            assert r.error and r.errors and any(e.path == "$.record.features.age" for e in r.errors)
            assert r.model == "churn"
        else:
            assert r.error == "" and r.result.label in ("stay", "churn")
            _, rest = rest_predict(g, [dict(RECORD, tenure_months=i * 5)])
            assert_same(r.result, rest["results"][0])


def test_get_model_info_matches_rest(grpc_examples):
    g = grpc_examples
    info = g.app.GetModelInfo(mspb.GetModelInfoRequest(model="churn"), timeout=T)
    rest = g.srv.get("/v1/models/churn").json()
    assert info.id == "churn" and info.default_version == "1" and info.backend == "onnxruntime"
    assert [(v.version, v.state) for v in info.versions] == [(v["version"], v["state"]) for v in rest["versions"]]
    assert info.versions[0].loaded_at > 0 and len(info.versions[0].sha256) == 64
    assert info.task == rest["task"] == "classification"
    assert list(info.class_labels) == rest["class_labels"]
    want = rest["input_schema"]["features"]
    assert [f.name for f in info.features] == [f["name"] for f in want]
    assert [f.type for f in info.features] == [f["type"] for f in want]
    contract = [f for f in info.features if f.name == "contract"][0]
    assert list(contract.categories) == ["month-to-month", "one-year", "two-year"]
    tenure = [f for f in info.features if f.name == "tenure_months"][0]
    assert tenure.HasField("minimum") and tenure.minimum == 0
    assert [t.name for t in info.inputs] == ["input"]
    if rest.get("model_card"):
        assert json.loads(info.model_card_json) == rest["model_card"]
    mlp = g.app.GetModelInfo(mspb.GetModelInfoRequest(model="mlp"), timeout=T)
    assert len(mlp.features) == 0 and mlp.task == "" and [t.name for t in mlp.inputs] == ["input"]
    assert_rpc_error(g.app.GetModelInfo, mspb.GetModelInfoRequest(model="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    assert_rpc_error(g.app.GetModelInfo, mspb.GetModelInfoRequest(model="churn", version="4"),
                     grpc.StatusCode.NOT_FOUND)
