"""Drift detection (docs/observability.md, "Drift"): `inferd profile` against numpy, the
server's scores against numpy/scipy computed from the same data, and the example churn model
under traffic drawn from its training distribution (every PSI below 0.1), with one numeric
feature shifted (that feature, and only it, over 0.25), with a categorical feature shifted, by
position for a model without a schema, and the warning logged once per window."""
import concurrent.futures
import csv
import json
import os
import pickle
import shutil
import subprocess
import time

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from conftest import EXAMPLE_REPO, INFERD_BIN, REPO_ROOT, Server, timeout, wait_models_settled
from grpc_stubs import grpc_server_factory, mspb  # noqa: F401

TRAINING_CSV = os.path.join(REPO_ROOT, "examples", "artifacts", "churn_training.csv")
NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"]
CATEGORICAL = {
    "contract": ["month-to-month", "one-year", "two-year"],
    "payment_method": ["card", "bank_transfer", "electronic_check", "mailed_check"],
}
EPS = 1e-4  # DRIFT_EPSILON: the floor of a bin's proportion in PSI


def training_records():
    with open(TRAINING_CSV) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("tenure_months", "monthly_charges", "total_charges"):
            r[k] = float(r[k])
        for k in ("support_calls", "age"):
            r[k] = int(r[k])
    return rows


TRAIN = training_records()


def to_row(rec):
    """A record as the model's 12 input columns (numeric, then one-hot groups)."""
    row = [float(rec[k]) for k in NUMERIC]
    for feat, cats in CATEGORICAL.items():
        row += [1.0 if rec[feat] == c else 0.0 for c in cats]
    return row


def sample(n, seed):
    rng = np.random.default_rng(seed)
    return [dict(TRAIN[i]) for i in rng.integers(0, len(TRAIN), size=n)]


def psi(ref, cur):
    p = np.maximum(ref / ref.sum(), EPS)
    q = np.maximum(cur / cur.sum(), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def binned_ks(ref, cur):
    return float(np.max(np.abs(np.cumsum(ref) / ref.sum() - np.cumsum(cur) / cur.sum())))


def numeric_hist(edges, values):
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(float)


def categorical_hist(cats, values):
    idx = [cats.index(v) if v in cats else len(cats) for v in values]
    return np.bincount(idx, minlength=len(cats) + 1).astype(float)


def numpy_edges(values, bins=10):
    qs = np.quantile(np.asarray(values, float), [i / bins for i in range(1, bins)])
    out = []
    for q in qs:
        if not out or q > out[-1]:
            out.append(float(q))
    return np.array(out)


# ---- the repository ---------------------------------------------------------------------------


def copy_churn(root, name, with_profile=True, application=True):
    dst = os.path.join(root, name)
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), dst)
    if not with_profile:
        os.unlink(os.path.join(dst, "1", "reference_profile.json"))
    if not application:
        with open(os.path.join(dst, "config.json")) as f:
            cfg = json.load(f)
        del cfg["application"]
        with open(os.path.join(dst, "config.json"), "w") as f:
            json.dump(cfg, f)
    return dst


def set_config(model_dir, **keys):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(keys)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f)


@pytest.fixture(scope="module")
def drift_repo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("drift_repo"))
    for name in ("churn_steady", "churn_num", "churn_cat", "churn_scores", "churn_v2", "churn_conc", "churn_grpc"):
        copy_churn(root, name)
    copy_churn(root, "churn_noprofile", with_profile=False)
    own = copy_churn(root, "churn_own")  # its own window and thresholds in config.json
    set_config(own, drift={"window_s": 1200, "buckets": 4, "psi_warn": 0.2, "psi_alert": 100, "min_samples": 50})
    broken = copy_churn(root, "churn_badprofile")
    with open(os.path.join(broken, "1", "reference_profile.json"), "w") as f:
        json.dump({"format": "inferd-reference-profile/1",
                   "features": [{"name": "age", "type": "numeric", "edges": [30, 20], "counts": [1, 2, 3]}]}, f)
    # no schema: profiled by position from the model's input columns
    plain = copy_churn(root, "churn_plain", with_profile=False, application=False)
    data = os.path.join(root, "plain_training.csv")
    with open(data, "w") as f:
        for rec in TRAIN:
            f.write(",".join(repr(v) for v in to_row(rec)) + "\n")
    subprocess.run([INFERD_BIN, "profile", "--model", "churn_plain", "--repository", root, "--data", data],
                   check=True, timeout=timeout(120), capture_output=True)
    assert os.path.exists(os.path.join(plain, "1", "reference_profile.json"))
    return root


@pytest.fixture(scope="module")
def drift_server(drift_repo, logs_dir):
    srv = Server(drift_repo, args=["--drift-window-s", "600", "--drift-buckets", "10"], workdir=logs_dir)
    srv.start()
    yield srv
    srv.stop()
    srv.check_clean_exit()


def predict(srv, model, records, chunk=100):
    for i in range(0, len(records), chunk):
        r = srv.post(f"/v1/models/{model}/predict", json={"inputs": records[i:i + chunk]})
        assert r.status_code == 200, r.text


def infer_v2(srv, model, records, chunk=100):
    for i in range(0, len(records), chunk):
        rows = [to_row(x) for x in records[i:i + chunk]]
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [len(rows), 12], "data": rows}]}
        r = srv.infer(model, body)
        assert r.status_code == 200, r.text


def drift(srv, model):
    r = srv.get(f"/v1/models/{model}/drift")
    assert r.status_code == 200, r.text
    return r.json()


def by_name(report):
    return {f["name"]: f for f in report["features"]}


# ---- the profile ------------------------------------------------------------------------------


def test_profile_matches_numpy(drift_repo, tmp_path):
    out = str(tmp_path / "profile.json")
    subprocess.run([INFERD_BIN, "profile", "--model", "churn_steady", "--repository", drift_repo,
                    "--data", TRAINING_CSV, "--output", out], check=True, timeout=timeout(120), capture_output=True)
    with open(out) as f:
        prof = json.load(f)
    assert prof["format"] == "inferd-reference-profile/1" and prof["rows"] == len(TRAIN)
    feats = {f["name"]: f for f in prof["features"]}
    assert set(feats) == set(NUMERIC) | set(CATEGORICAL)
    for name in NUMERIC:
        vals = np.array([r[name] for r in TRAIN], float)
        want_edges = numpy_edges(vals)
        np.testing.assert_allclose(feats[name]["edges"], want_edges, rtol=1e-12, err_msg=name)
        assert feats[name]["counts"] == numeric_hist(np.array(feats[name]["edges"]), vals).tolist(), name
    for name, cats in CATEGORICAL.items():
        assert feats[name]["categories"] == cats
        assert feats[name]["counts"] == categorical_hist(cats, [r[name] for r in TRAIN]).tolist(), name
    # the predictions, against the scikit-learn pipeline the model was made from
    with open(os.path.join(REPO_ROOT, "examples", "artifacts", "churn_sklearn.pkl"), "rb") as f:
        pipe = pickle.load(f)
    X = np.array([to_row(r) for r in TRAIN], np.float32)
    pred = np.argmax(pipe.predict_proba(X), axis=1)
    want = np.bincount(pred, minlength=2)
    got = prof["prediction"]["counts"]
    assert prof["prediction"]["categories"] == ["stay", "churn"] and got[2] == 0
    # float32 in the graph against float64 in scikit-learn: a row on the 0.5 boundary may differ
    assert abs(got[0] - want[0]) <= 3 and abs(got[1] - want[1]) <= 3, (got, want)
    # and the committed example profile is this one (make_models.py runs the same command)
    with open(os.path.join(EXAMPLE_REPO, "churn", "1", "reference_profile.json")) as f:
        committed = json.load(f)
    assert committed["features"] == prof["features"] and committed["prediction"] == prof["prediction"]


def test_profile_from_jsonl_ignores_non_features(drift_repo, tmp_path):
    """Training data with its label column (a key that is not a feature) profiles the same."""
    data = tmp_path / "train.jsonl"
    with open(data, "w") as f:
        for i, r in enumerate(TRAIN):
            f.write(json.dumps(dict(r, churned=i % 2)) + "\n")
    out = str(tmp_path / "profile.json")
    subprocess.run([INFERD_BIN, "profile", "--model", "churn_steady", "--repository", drift_repo,
                    "--data", str(data), "--output", out], check=True, timeout=timeout(120), capture_output=True)
    with open(out) as f:
        prof = json.load(f)
    with open(os.path.join(EXAMPLE_REPO, "churn", "1", "reference_profile.json")) as f:
        committed = json.load(f)
    assert prof["source"] == "train.jsonl" and prof["rows"] == len(TRAIN)
    assert prof["features"] == committed["features"] and prof["prediction"] == committed["prediction"]


def test_profile_errors_are_clear(drift_repo, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("tenure_months,age\n1,2,3\n")
    r = subprocess.run([INFERD_BIN, "profile", "--model", "churn_steady", "--repository", drift_repo,
                        "--data", str(bad), "--output", str(tmp_path / "x.json")],
                       timeout=timeout(120), capture_output=True, text=True)
    assert r.returncode == 1 and "line 2: 3 fields, the header has 2" in r.stderr, r.stderr
    r = subprocess.run([INFERD_BIN, "profile", "--model", "nosuch", "--repository", drift_repo,
                        "--data", TRAINING_CSV], timeout=timeout(120), capture_output=True, text=True)
    assert r.returncode == 1 and "nosuch" in r.stderr, r.stderr
    r = subprocess.run([INFERD_BIN, "profile", "--model", "churn_steady"], capture_output=True, text=True)
    assert r.returncode == 2 and "required" in r.stderr


# ---- the scores -------------------------------------------------------------------------------


def test_scores_match_numpy_and_scipy(drift_server, drift_repo):
    sent = sample(1500, seed=7)
    rng = np.random.default_rng(8)
    for rec in sent[:700]:  # a partial shift, so that every statistic is away from 0 and 1
        rec["age"] = int(min(120, rec["age"] + 12))
        rec["monthly_charges"] = round(rec["monthly_charges"] * 1.15, 2)
        if rng.random() < 0.5:
            rec["contract"] = "two-year"
    predict(drift_server, "churn_scores", sent)
    report = drift(drift_server, "churn_scores")
    assert report["samples"] == len(sent)
    feats = by_name(report)
    with open(os.path.join(drift_repo, "churn_scores", "1", "reference_profile.json")) as f:
        prof = {p["name"]: p for p in json.load(f)["features"]}
    # the route's JSON numbers carry 9 significant digits, hence rel=1e-8
    for name in NUMERIC:
        edges = np.array(prof[name]["edges"])
        ref_vals = np.array([r[name] for r in TRAIN], float)
        # the server sees the values as the model's FP32 tensor holds them
        cur_vals = np.array([r[name] for r in sent], np.float32).astype(float)
        ref, cur = numeric_hist(edges, ref_vals), numeric_hist(edges, cur_vals)
        f = feats[name]
        assert f["samples"] == len(sent)
        assert f["psi"] == pytest.approx(psi(ref, cur), rel=1e-8, abs=1e-12), name
        assert f["js_distance"] == pytest.approx(jensenshannon(ref, cur, base=2), rel=1e-8, abs=1e-12), name
        assert f["ks"] == pytest.approx(binned_ks(ref, cur), rel=1e-8, abs=1e-12), name
        # at the edges the binned KS is the exact two-sample statistic's lower bound
        assert f["ks"] <= ks_2samp(ref_vals, cur_vals).statistic * (1 + 1e-8), name
    for name, cats in CATEGORICAL.items():
        ref = categorical_hist(cats, [r[name] for r in TRAIN])
        cur = categorical_hist(cats, [r[name] for r in sent])
        f = feats[name]
        assert f["psi"] == pytest.approx(psi(ref, cur), rel=1e-8, abs=1e-12), name
        assert f["js_distance"] == pytest.approx(jensenshannon(ref, cur, base=2), rel=1e-8, abs=1e-12), name
    assert feats["age"]["psi"] > 0.1 and feats["tenure_months"]["psi"] < 0.1


# ---- the example churn model under traffic ---------------------------------------------------


def test_training_distribution_stays_below_0_1(drift_server):
    predict(drift_server, "churn_steady", sample(3000, seed=1))
    report = drift(drift_server, "churn_steady")
    assert report["samples"] == 3000
    for f in report["features"]:
        assert f["samples"] == 3000 and f["level"] == "ok" and f["psi"] < 0.1, f
    assert report["prediction"]["psi"] < 0.1 and report["prediction"]["level"] == "ok"
    assert report["warn"] == [] and report["alert"] == []
    assert report["thresholds"] == {"psi_warn": 0.1, "psi_alert": 0.25, "min_samples": 500}


def test_numeric_shift_flags_that_feature_only(drift_server):
    recs = sample(3000, seed=2)
    for r in recs:
        r["age"] = int(min(120, r["age"] + 20))
    predict(drift_server, "churn_num", recs[:1500])
    infer_v2(drift_server, "churn_num", recs[1500:])  # V2 tensors go through the schema too
    report = drift(drift_server, "churn_num")
    feats = by_name(report)
    assert report["samples"] == 3000
    assert feats["age"]["psi"] > 0.25 and feats["age"]["level"] == "alert"
    assert report["alert"] == ["age"] and report["warn"] == []
    for name, f in feats.items():
        if name != "age":
            assert f["psi"] < 0.1, f


def test_categorical_shift_detected(drift_server):
    recs = sample(3000, seed=3)
    rng = np.random.default_rng(4)
    for r in recs:
        if rng.random() < 0.6:
            r["payment_method"] = "mailed_check"
    predict(drift_server, "churn_cat", recs)
    report = drift(drift_server, "churn_cat")
    feats = by_name(report)
    assert feats["payment_method"]["psi"] > 0.25 and report["alert"] == ["payment_method"]
    assert report["warn"] == []
    for name, f in feats.items():
        if name != "payment_method":
            assert f["psi"] < 0.1, f


def test_positional_features_without_a_schema(drift_server):
    recs = sample(2000, seed=5)
    for r in recs:
        r["tenure_months"] = float(r["tenure_months"] + 30)
    infer_v2(drift_server, "churn_plain", recs)
    report = drift(drift_server, "churn_plain")
    feats = by_name(report)
    assert set(feats) == {f"input[{i}]" for i in range(12)}
    assert report["prediction"] is None
    assert report["alert"] == ["input[0]"], report
    assert all(f["psi"] < 0.1 for n, f in feats.items() if n != "input[0]"), feats


def test_concurrent_requests_all_counted(drift_server):
    """The window's counters are atomic: rows from many connections at once are all counted
    (unless the run crossed a bucket boundary, where a racing request may lose its rows)."""
    period = 60.0  # --drift-window-s 600 over 10 buckets
    recs = sample(4000, seed=11)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: predict(drift_server, "churn_conc", recs[k::8], chunk=10), range(8)))
    t1 = time.monotonic()
    report = drift(drift_server, "churn_conc")
    if int(t0 // period) == int(t1 // period):  # the server's clock is CLOCK_MONOTONIC too
        assert report["samples"] == 4000
        assert all(f["samples"] == 4000 for f in report["features"])
        assert report["prediction"]["samples"] == 4000
    else:
        assert 3900 <= report["samples"] <= 4000
    assert all(f["psi"] < 0.1 for f in report["features"])


def test_grpc_model_service_feeds_drift(drift_repo, grpc_server_factory):  # noqa: F811
    g = grpc_server_factory(drift_repo)
    recs = sample(1000, seed=12)
    for r in recs:
        r["age"] = int(min(120, r["age"] + 20))

    def record(d):
        out = mspb.Record()
        for k, v in d.items():
            if isinstance(v, int):
                out.features[k].CopyFrom(mspb.Value(int_value=v))
            elif isinstance(v, float):
                out.features[k].CopyFrom(mspb.Value(number_value=v))
            else:
                out.features[k].CopyFrom(mspb.Value(string_value=v))
        return out

    for i in range(0, len(recs), 100):
        g.app.BatchPredict(mspb.BatchPredictRequest(model="churn_grpc", records=[record(r) for r in recs[i:i + 100]]),
                           timeout=timeout(30))
    r = g.srv.get("/v1/models/churn_grpc/drift")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["samples"] == 1000 and report["alert"] == ["age"], report


def test_model_config_drift_section(drift_server):
    recs = sample(300, seed=14)
    for r in recs:
        r["age"] = int(min(120, r["age"] + 20))
    predict(drift_server, "churn_own", recs)
    report = drift(drift_server, "churn_own")
    assert report["window_seconds"] == 1200 and report["buckets"] == 4 and report["bucket_seconds"] == 300
    assert report["thresholds"] == {"psi_warn": 0.2, "psi_alert": 100, "min_samples": 50}
    # 300 rows are enough for this model, and a shift the server's thresholds call an alert is
    # only a warning under its own
    assert by_name(report)["age"]["psi"] > 0.25
    assert report["warn"] == ["age"] and report["alert"] == []


def test_bad_model_drift_section_fails_the_version(tmp_path, logs_dir):
    bad = copy_churn(str(tmp_path), "churn_baddrift")
    set_config(bad, drift={"buckets": 2.5})
    srv = Server(str(tmp_path), workdir=logs_dir)
    srv.start(wait_ready=False)
    try:
        wait_models_settled(srv, expect=("churn_baddrift",))
        r = srv.get("/v1/models/churn_baddrift")
        assert r.status_code == 200
        reasons = json.dumps(r.json()["versions"])
        assert "config.json: drift.buckets must be a whole number from 1 to 1000" in reasons, reasons
    finally:
        srv.stop()
        srv.check_clean_exit()


def test_drift_route_errors(drift_server):
    r = drift_server.get("/v1/models/nosuch/drift")
    assert r.status_code == 404 and "nosuch" in r.json()["error"]
    r = drift_server.get("/v1/models/churn_steady/versions/9/drift")
    assert r.status_code == 404 and "9" in r.json()["error"]
    r = drift_server.get("/v1/models/churn_noprofile/drift")
    assert r.status_code == 404 and "reference_profile.json" in r.json()["error"]
    # an unusable profile: the version serves, the route says why drift is off
    predict(drift_server, "churn_badprofile", sample(5, seed=6))
    r = drift_server.get("/v1/models/churn_badprofile/drift")
    assert r.status_code == 404
    assert "features[0].edges must be ascending" in r.json()["error"], r.text
    assert any("drift detection is off" in l.get("msg", "") and l.get("model") == "churn_badprofile"
               for l in drift_server.log_lines())


def test_new_profile_read_when_the_model_loads_again(drift_server, drift_repo):
    assert drift_server.get("/v1/models/churn_noprofile/drift").status_code == 404
    shutil.copy(os.path.join(EXAMPLE_REPO, "churn", "1", "reference_profile.json"),
                os.path.join(drift_repo, "churn_noprofile", "1", "reference_profile.json"))
    assert drift_server.post("/v2/repository/models/churn_noprofile/unload").status_code == 200
    r = drift_server.post("/v2/repository/models/churn_noprofile/load")
    assert r.status_code == 200, r.text
    predict(drift_server, "churn_noprofile", sample(600, seed=13))
    report = drift(drift_server, "churn_noprofile")
    assert report["samples"] == 600 and report["alert"] == [] and report["warn"] == []


# ---- the warning, once per window ------------------------------------------------------------


def drift_warnings(srv, model):
    out = []
    for l in srv.log_lines():
        if l.get("level") == "warn" and l.get("model") == model and l.get("msg", "").startswith("drift:"):
            out.append(l)
    return out


def parse_time(t):
    # "2026-11-30T00:53:46.111292Z"
    whole, frac = t.rstrip("Z").split(".")
    return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + frac)


def test_warning_logged_once_per_window(drift_repo, logs_dir):
    window = 2.0
    srv = Server(drift_repo, args=["--drift-window-s", str(window), "--drift-buckets", "4"], workdir=logs_dir)
    srv.start()
    try:
        recs = sample(200, seed=9)
        for r in recs:
            r["age"] = int(min(120, r["age"] + 25))
        start = time.monotonic()
        duration = 5.0
        while time.monotonic() - start < duration:
            predict(srv, "churn_v2", recs, chunk=100)
            drift(srv, "churn_v2")  # the route evaluates too: it must not add warnings
        elapsed = time.monotonic() - start
        warns = drift_warnings(srv, "churn_v2")
    finally:
        srv.stop()
        srv.check_clean_exit()
    assert warns, "no drift warning logged"
    assert all("feature 'age'" in w["msg"] and "alert threshold 0.25" in w["msg"] for w in warns), warns
    times = [parse_time(w["time"]) for w in warns]
    assert all(b - a >= window for a, b in zip(times, times[1:])), times
    assert len(warns) <= int(elapsed // window) + 1, (len(warns), elapsed)
    assert len(warns) >= 2, "the warning did not repeat in the next window"
