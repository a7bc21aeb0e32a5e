"""MLflow's scoring protocol: POST /invocations with dataframe_split, dataframe_records, instances
or inputs, on the model named by --default-model (or the only model)."""
import os
import shutil

import pytest

from app_repo import CHURN_P, CHURN_RECORD, write_repo
from conftest import EXAMPLE_REPO, Server

COLUMNS = list(CHURN_RECORD)
ROW = [CHURN_RECORD[c] for c in COLUMNS]
ROW2 = [60, 20.0, 1200.0, 0, 70, "two-year", "card"]


@pytest.fixture(scope="module")
def ml_server(tmp_path_factory, logs_dir):
    repo = write_repo(str(tmp_path_factory.mktemp("ml_repo")), broken=False)
    srv = Server(repo, args=["--default-model", "churn"], workdir=logs_dir)
    srv.start(wait_ready=True)
    yield srv
    srv.stop()
    srv.check_clean_exit()


def invoke(srv, body):
    return srv.post("/invocations", json=body)


def ml_error(resp, status, code="BAD_REQUEST"):
    assert resp.status_code == status, f"{resp.status_code}: {resp.text[:300]}"
    body = resp.json()
    assert body["error_code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_dataframe_split(ml_server):
    r = invoke(ml_server, {"dataframe_split": {"columns": COLUMNS, "data": [ROW, ROW2]}})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": ["churn", "stay"]}
    # columns in any order, and an index is accepted
    cols = list(reversed(COLUMNS))
    r = invoke(ml_server, {"dataframe_split": {"index": [7], "columns": cols, "data": [list(reversed(ROW))]}})
    assert r.json() == {"predictions": ["churn"]}
    # without columns the values are in feature order
    assert invoke(ml_server, {"dataframe_split": {"data": [ROW]}}).json() == {"predictions": ["churn"]}


def test_dataframe_records(ml_server):
    r = invoke(ml_server, {"dataframe_records": [CHURN_RECORD, dict(zip(COLUMNS, ROW2))]})
    assert r.json() == {"predictions": ["churn", "stay"]}


def test_instances_and_inputs(ml_server):
    assert invoke(ml_server, {"instances": [CHURN_RECORD]}).json() == {"predictions": ["churn"]}
    assert invoke(ml_server, {"instances": [ROW]}).json() == {"predictions": ["churn"]}
    assert invoke(ml_server, {"inputs": {k: [v] for k, v in CHURN_RECORD.items()}}).json() == {"predictions": ["churn"]}
    assert invoke(ml_server, {"inputs": [ROW, ROW2]}).json() == {"predictions": ["churn", "stay"]}


def test_predict_proba(ml_server):
    r = invoke(ml_server, {"dataframe_records": [CHURN_RECORD], "params": {"predict_method": "predict_proba"}})
    (p,) = r.json()["predictions"]
    assert p == [pytest.approx(1 - CHURN_P, abs=1e-5), pytest.approx(CHURN_P, abs=1e-5)]
    ml_error(invoke(ml_server, {"dataframe_records": [CHURN_RECORD], "params": {"predict_method": "x"}}), 400)


def test_errors(ml_server):
    body = ml_error(invoke(ml_server, {"dataframe_split": {"columns": COLUMNS, "data": [ROW[:-1] + ["cheque"]]}}), 400)
    assert body["errors"] == [{"path": "$.dataframe_split.data[0][6]", "kind": "unknown_category",
                               "message": body["errors"][0]["message"]}]
    body = ml_error(invoke(ml_server, {"dataframe_split": {"columns": COLUMNS[:-1], "data": [ROW[:-1]]}}), 400)
    assert ("$.dataframe_split.columns", "missing_feature") in {(e["path"], e["kind"]) for e in body["errors"]}
    ml_error(invoke(ml_server, {"dataframe_split": {"columns": COLUMNS, "data": [ROW[:3]]}}), 400)
    body = ml_error(invoke(ml_server, {"dataframe_records": [dict(CHURN_RECORD, age="old")]}), 400)
    assert body["errors"][0]["path"] == "$.dataframe_records[0].age"
    ml_error(invoke(ml_server, {}), 400)
    ml_error(invoke(ml_server, {"instances": [ROW], "inputs": [ROW]}), 400)
    ml_error(invoke(ml_server, {"data": [ROW]}), 400)
    body = ml_error(invoke(ml_server, {"dataframe_records": [CHURN_RECORD] * 1001}), 413, "REQUEST_LIMIT_EXCEEDED")
    r = ml_server.post("/invocations", data=b"{", headers={"Content-Type": "application/json"})
    assert "malformed JSON" in ml_error(r, 400)["message"]
    r = ml_server.post("/invocations", data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    ml_error(r, 415)


def test_ping(ml_server):
    r = ml_server.get("/ping")
    assert r.status_code == 200


def test_only_model_is_the_default(tmp_path, server_factory):
    repo = tmp_path / "one"
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), repo / "churn")
    srv = server_factory(str(repo))
    assert invoke(srv, {"dataframe_records": [CHURN_RECORD]}).json() == {"predictions": ["churn"]}


def test_no_default_with_several_models(tmp_path, server_factory):
    repo = write_repo(str(tmp_path / "many"), broken=False)
    srv = server_factory(repo)
    body = ml_error(invoke(srv, {"dataframe_records": [CHURN_RECORD]}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert "--default-model" in body["message"]


def test_tensor_model_as_default(tmp_path, server_factory):
    repo = write_repo(str(tmp_path / "plain"), broken=False)
    srv = server_factory(repo, args=["--default-model", "plain"])
    assert invoke(srv, {"inputs": [[1, 2]]}).json() == {"predictions": [[2, 4]]}
    assert invoke(srv, {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}).json() == {"predictions": [[2, 4]]}
    ml_error(invoke(srv, {"dataframe_records": [{"a": 1}]}), 400)


def test_unknown_default_model_refused_at_start(tmp_path):
    import subprocess
    from conftest import INFERD_BIN
    repo = write_repo(str(tmp_path / "r"), broken=False)
    res = subprocess.run([INFERD_BIN, "serve", "--model-repository", repo, "--http-port", "0",
                          "--default-model", "nope"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "nope" in res.stderr


def test_fuzzed_bodies_never_500(ml_server):
    import random
    rnd = random.Random(9)
    leaves = [None, True, 0, -3, 2.5, "", "card", "month-to-month", [], {}, [ROW], ROW, COLUMNS, CHURN_RECORD]

    def value(depth=0):
        r = rnd.random()
        if depth < 3 and r < 0.3:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        if depth < 3 and r < 0.45:
            keys = rnd.sample(["columns", "data", "index"] + COLUMNS[:3], rnd.randint(0, 3))
            return {k: value(depth + 1) for k in keys}
        return rnd.choice(leaves)

    forms = ["dataframe_split", "dataframe_records", "instances", "inputs", "params"]
    for _ in range(200):
        body = {k: value() for k in rnd.sample(forms, rnd.randint(1, 2))}
        r = invoke(ml_server, body)
        assert r.status_code in (200, 400, 413), (body, r.status_code, r.text[:300])
        assert isinstance(r.json(), dict)
    assert ml_server.alive()
