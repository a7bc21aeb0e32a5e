"""Traffic management end to end (docs/traffic.md): weighted canary splits, sticky keys, aliases
and explicit versions on every route, blue-green flips under load, progressive rollouts rolled
back by their guards (a candidate that fails on some inputs, and one 5x slower), durable state
across kill -9, the audit log, the report, the CLI.

The models are written here, from tests/e2e/make_test_models.py's helpers:

  ab        versions 1, 2, 3: x FP32 [N, 1] -> y = x * version (so the answer names the version).
  flaky     idx INT64 [N, 1] -> a Gather from a table: version 1's table has 100 entries,
            version 2's only 10, so version 2 fails (ONNX Runtime refuses the index) whenever
            an index is 10 or more, and answers like version 1 otherwise.
  slowcand  x FP32 [N, 1] -> y = x after dense 320 x 320 matrix products: version 1 does one,
            version 2 five, so version 2 is about 5x slower.
  churn     the example classifier (models/churn), its version 1 also as version 2, for the
            report's labels and scores and the shadow's label agreement.
"""

import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

import make_test_models as mtm
from conftest import INFERD_BIN, REPO_ROOT, SANITIZED, Server, free_port, timeout, wait_until

T = timeout(30)


# --------------------------------------------------------------------------------------------
# models


def gather_model(entries):
    table = np.arange(entries, dtype=np.float32) + 0.5
    graph = mtm.helper.make_graph(
        [mtm.helper.make_node("Gather", ["table", "idx"], ["out"], axis=0)], f"gather_{entries}",
        [mtm.tensor("idx", mtm.TensorProto.INT64, ["N", 1])], [mtm.tensor("out", mtm.TensorProto.FLOAT, ["N", 1])],
        initializer=[mtm.const("table", table)])
    return mtm.model_of(graph)


def slow_model(chain):
    size, old_chain = mtm.SLOW_SIZE, mtm.SLOW_CHAIN
    mtm.SLOW_SIZE, mtm.SLOW_CHAIN = 320, chain
    try:
        return mtm.model_of(mtm.slow_graph(f"slow_{chain}", ["N", 1]))
    finally:
        mtm.SLOW_SIZE, mtm.SLOW_CHAIN = size, old_chain


ALL_VERSIONS = {"max_batch_size": 8, "version_policy": {"all": True}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("traffic_models"))
    for v in (1, 2, 3):
        mtm.save(out, "ab", mtm.versioned(v), version=v, config=ALL_VERSIONS)
    mtm.save(out, "flaky", gather_model(100), version=1, config=ALL_VERSIONS)
    mtm.save(out, "flaky", gather_model(10), version=2, config=ALL_VERSIONS)
    slow_cfg = dict(ALL_VERSIONS, onnxruntime={"intra_op_threads": 1})
    mtm.save(out, "slowcand", slow_model(1), version=1, config=slow_cfg)
    mtm.save(out, "slowcand", slow_model(5), version=2, config=slow_cfg)
    churn = os.path.join(out, "churn")
    shutil.copytree(os.path.join(REPO_ROOT, "models", "churn"), churn)
    shutil.copytree(os.path.join(churn, "1"), os.path.join(churn, "2"))
    with open(os.path.join(churn, "config.json")) as f:
        cfg = json.load(f)
    cfg["version_policy"] = {"all": True}
    cfg["application"]["allow_extra_features"] = True  # a customer_id field for the record-field sticky key
    with open(os.path.join(churn, "config.json"), "w") as f:
        json.dump(cfg, f)
    return out


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "state")


@pytest.fixture
def srv(repo, state_dir, tmp_path):
    s = Server(repo, args=["--grpc-port", str(free_port()), "--state-dir", state_dir], workdir=str(tmp_path))
    s.grpc_port = int(s.args[1])
    s.start()
    yield s
    if s.alive():
        s.stop()
    s.check_clean_exit()


def put_policy(s, model, policy, status=200):
    r = s.request("PUT", f"/v1/models/{model}/traffic", json=policy)
    assert r.status_code == status, r.text
    return r.json()


def ab_body(x=1.0):
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x]}]}


def infer_ab(session, s, headers=None, version=None):
    path = "/v2/models/ab" + (f"/versions/{version}" if version else "") + "/infer"
    r = session.post(s.url(path), json=ab_body(), headers=headers, timeout=T)
    assert r.status_code == 200, r.text
    body = r.json()
    # the answer itself says which version ran: y = x * version
    assert body["outputs"][0]["data"][0] == float(body["model_version"])
    return body["model_version"], r.headers.get("X-Model-Arm")


def parallel(n_threads, work):
    """Runs work(i, session) on n_threads threads; returns their results; re-raises a failure."""
    results, errors = [None] * n_threads, []

    def run(i):
        with requests.Session() as session:
            try:
                results[i] = work(i, session)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def history(s, model):
    r = s.get(f"/v1/models/{model}/traffic/history")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def audit_lines(state_dir):
    with open(os.path.join(state_dir, "traffic-audit.jsonl")) as f:
        return [json.loads(line) for line in f]


CANARY_10 = {"arms": [{"name": "stable", "version": 1, "weight": 90}, {"name": "canary", "version": 2, "weight": 10}]}


# --------------------------------------------------------------------------------------------
# splits


def test_canary_gets_its_share_of_unpinned_requests(srv):
    put_policy(srv, "ab", CANARY_10)
    n_threads, per_thread = 8, 2500  # 20,000 requests

    def work(i, session):
        counts = {}
        for _ in range(per_thread):
            version, arm = infer_ab(session, srv)
            assert (arm, version) in (("stable", "1"), ("canary", "2"))
            counts[arm] = counts.get(arm, 0) + 1
        return counts

    total = {}
    for c in parallel(n_threads, work):
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    n = sum(total.values())
    assert n == 20000
    share = total.get("canary", 0) / n
    assert 0.085 <= share <= 0.115, total
    # the report counts the same requests, per arm
    rep = srv.get("/v1/models/ab/traffic/report").json()
    arms = {a["arm"]: a for a in rep["arms"]}
    assert arms["canary"]["requests"] == total["canary"] and arms["stable"]["requests"] == total["stable"]
    assert arms["canary"]["version"] == "2" and arms["canary"]["errors"] == 0
    assert 0 < arms["stable"]["latency_ms"]["p50"] <= arms["stable"]["latency_ms"]["p99"]


def test_sticky_keys_never_change_arm(srv):
    put_policy(srv, "ab", dict(CANARY_10, sticky_key={"header": "X-User-Id"}))
    keys = [f"user-{i}" for i in range(1000)]

    def work(i, session):
        seen = {}
        for k in keys[i::8]:
            for _ in range(10):
                _, arm = infer_ab(session, srv, headers={"X-User-Id": k})
                seen.setdefault(k, set()).add(arm)
        return seen

    arms = {}
    for part in parallel(8, work):
        arms.update(part)
    assert len(arms) == 1000
    assert all(len(a) == 1 for a in arms.values()), [k for k, a in arms.items() if len(a) > 1][:5]
    first = {k: next(iter(a)) for k, a in arms.items()}
    canary_keys = sum(1 for a in first.values() if a == "canary")
    assert 70 <= canary_keys <= 130, canary_keys
    # raising the canary to 30 % moves only stable keys to the canary, never back
    put_policy(srv, "ab", {"arms": [{"name": "stable", "version": 1, "weight": 70},
                                    {"name": "canary", "version": 2, "weight": 30}],
                           "sticky_key": {"header": "X-User-Id"}})
    with requests.Session() as session:
        after = {k: infer_ab(session, srv, headers={"X-User-Id": k})[1] for k in keys}
    assert all(after[k] == "canary" for k in keys if first[k] == "canary")
    moved = sum(1 for k in keys if first[k] != after[k])
    assert 150 <= moved <= 250, moved


CHURN_RECORD = {"tenure_months": 3, "monthly_charges": 89.5, "total_charges": 268.5, "support_calls": 2, "age": 29,
                "contract": "month-to-month", "payment_method": "electronic_check"}
CHURN_CANARY_10 = {"arms": [{"name": "stable", "version": 1, "weight": 90}, {"name": "canary", "version": 2, "weight": 10}]}


def predict_churn(session, s, records, headers=None, version=None, status=200):
    path = "/v1/models/churn" + (f"/versions/{version}" if version else "") + "/predict"
    r = session.post(s.url(path), json={"inputs": records}, headers=headers, timeout=T)
    assert r.status_code == status, r.text
    return r


def test_a_v1_record_field_as_the_sticky_key(srv):
    put_policy(srv, "churn", dict(CHURN_CANARY_10, sticky_key={"record_field": "customer_id"}))
    assert srv.get("/v1/models/churn/traffic").json()["sticky_key"] == {"record_field": "customer_id"}
    keys = [f"user-{i}" for i in range(1000)]

    def work(i, session):
        seen = {}
        for k in keys[i::8]:
            for n in range(10):
                # one record, or several that agree; the key's place among the fields does not matter
                records = [dict(CHURN_RECORD, customer_id=k)] * (1 + n % 3)
                r = predict_churn(session, srv, records)
                assert len(r.json()["results"]) == len(records)
                seen.setdefault(k, set()).add((r.headers["X-Model-Arm"], r.headers["X-Model-Version"]))
        return seen

    arms = {}
    for part in parallel(8, work):
        arms.update(part)
    assert len(arms) == 1000
    assert all(len(a) == 1 for a in arms.values()), [k for k, a in arms.items() if len(a) > 1][:5]
    first = {k: next(iter(a)) for k, a in arms.items()}
    assert set(first.values()) == {("stable", "1"), ("canary", "2")}
    canary_keys = sum(1 for a, _ in first.values() if a == "canary")
    assert 70 <= canary_keys <= 130, canary_keys
    s = requests.Session()
    # the key hashes as the same key in a header would: a user keeps its arm whichever carries it
    put_policy(srv, "churn", dict(CHURN_CANARY_10, sticky_key={"header": "X-User-Id"}))
    for k in keys[:200]:
        r = predict_churn(s, srv, [CHURN_RECORD], headers={"X-User-Id": k})
        assert r.headers["X-Model-Arm"] == first[k][0], k
    put_policy(srv, "churn", dict(CHURN_CANARY_10, sticky_key={"record_field": "customer_id"}))
    # an integer key is its digits; features given as [{name, value}] carry it the same way
    by_int = predict_churn(s, srv, [dict(CHURN_RECORD, customer_id=123456)]).headers["X-Model-Arm"]
    assert predict_churn(s, srv, [dict(CHURN_RECORD, customer_id="123456")]).headers["X-Model-Arm"] == by_int
    for k in keys[:50]:
        r = s.post(srv.url("/v1/models/churn/predict"),
                   json={"features": [{"name": n, "value": v} for n, v in dict(CHURN_RECORD, customer_id=k).items()]},
                   timeout=T)
        assert r.status_code == 200 and r.headers["X-Model-Arm"] == first[k][0], r.text
    # records that disagree cannot be routed whole: 400, naming them
    r = predict_churn(s, srv, [dict(CHURN_RECORD, customer_id="a"), dict(CHURN_RECORD, customer_id="b")], status=400)
    assert r.json()["error"].startswith("$.inputs[0].customer_id is 'a' but $.inputs[1].customer_id is 'b'")
    r = predict_churn(s, srv, [dict(CHURN_RECORD, customer_id="a"), CHURN_RECORD], status=400)
    assert r.json()["error"].startswith("$.inputs[1] has no 'customer_id' but $.inputs[0] has")
    r = predict_churn(s, srv, [dict(CHURN_RECORD, customer_id=1.5)], status=400)
    assert r.json() == {"error": "$.inputs[0].customer_id is the traffic policy's sticky key: it must be a string or "
                                 "an integer"}
    # an explicit version is not split, so its records need not agree
    r = predict_churn(s, srv, [dict(CHURN_RECORD, customer_id="a"), dict(CHURN_RECORD, customer_id="b")], version=2)
    assert r.headers["X-Model-Arm"] == "explicit" and r.headers["X-Model-Version"] == "2"
    # no record has it: a random draw, as without the sticky header (over 400 requests both arms turn up)
    seen = {predict_churn(s, srv, [CHURN_RECORD]).headers["X-Model-Arm"] for _ in range(400)}
    assert seen == {"stable", "canary"}
    # a body that does not parse is still answered by the route's own decoding
    r = s.post(srv.url("/v1/models/churn/predict"), data=b'{"inputs": [', headers={"Content-Type": "application/json"},
               timeout=T)
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON"), r.text


def test_explicit_versions_and_aliases_override_the_split(srv):
    # every unpinned request goes to version 2; anything that names a version goes there
    put_policy(srv, "ab", {"aliases": {"production": 1, "staging": 3},
                           "arms": [{"name": "stable", "version": "production", "weight": 0},
                                    {"name": "canary", "version": 2, "weight": 100}]})
    s = requests.Session()
    assert infer_ab(s, srv) == ("2", "canary")
    assert infer_ab(s, srv, version="1") == ("1", "explicit")
    assert infer_ab(s, srv, version="production") == ("1", "explicit")
    assert infer_ab(s, srv, version="staging") == ("3", "explicit")
    # TF Serving's labels route and the X-Model-Version header on the application routes
    r = s.post(srv.url("/v1/models/ab/labels/staging:predict"), json={"instances": [[2.0]]}, timeout=T)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [[6.0]]
    assert r.headers["X-Model-Version"] == "3" and r.headers["X-Model-Arm"] == "explicit"
    r = s.post(srv.url("/v1/models/ab:predict"), json={"instances": [[2.0]]}, headers={"X-Model-Version": "production"},
               timeout=T)
    assert r.status_code == 200 and r.json()["predictions"] == [[2.0]]
    assert r.headers["X-Model-Version"] == "1"
    r = s.post(srv.url("/v1/models/ab:predict"), json={"instances": [[2.0]]}, timeout=T)
    assert r.json()["predictions"] == [[4.0]] and r.headers["X-Model-Arm"] == "canary"
    # an alias the model lacks: 404 naming it
    r = s.post(srv.url("/v2/models/ab/versions/champion/infer"), json=ab_body(), timeout=T)
    assert r.status_code == 404
    assert r.json() == {"error": "model 'ab' has no version or alias 'champion'"}
    # gRPC: model_version takes an alias too, and the arm comes back as metadata
    from grpc_stubs import channel, infer_request, output_arrays, pbg
    stub = pbg.GRPCInferenceServiceStub(channel(srv))
    x = np.array([[2.0]], np.float32)
    resp, call = stub.ModelInfer.with_call(infer_request("ab", [("x", "FP32", x)], version="staging"), timeout=T)
    assert resp.model_version == "3"
    np.testing.assert_array_equal(output_arrays(resp)["y"][1], x * 3)
    assert ("x-model-arm", "explicit") in call.initial_metadata()
    resp, call = stub.ModelInfer.with_call(infer_request("ab", [("x", "FP32", x)]), timeout=T)
    assert resp.model_version == "2" and ("x-model-arm", "canary") in call.initial_metadata()


def test_blue_green_flip_under_load(srv):
    blue = {"aliases": {"production": 1}, "arms": [{"name": "live", "version": "production"}]}
    green = {"aliases": {"production": 2}, "arms": [{"name": "live", "version": "production"}]}
    put_policy(srv, "ab", blue)
    # a flip to a version that cannot take traffic is refused, and changes nothing
    r = srv.request("PUT", "/v1/models/ab/traffic", json={"aliases": {"production": 9}})
    assert r.status_code == 400 and "alias 'production': version 9 cannot take traffic" in r.json()["error"]
    assert srv.get("/v1/models/ab/traffic").json()["aliases"] == {"production": "1"}
    stop = threading.Event()
    conns = 16 if SANITIZED else 64
    answered = [0]  # successful answers so far, over every connection
    lock = threading.Lock()

    def work(i, session):
        ok, failed, versions = 0, 0, set()
        while not stop.is_set():
            try:
                r = session.post(srv.url("/v2/models/ab/infer"), json=ab_body(), timeout=T)
                if r.status_code == 200 and r.json()["outputs"][0]["data"][0] == float(r.json()["model_version"]):
                    ok += 1
                    versions.add(r.json()["model_version"])
                    with lock:
                        answered[0] += 1
                else:
                    failed += 1
            except requests.RequestException:
                failed += 1
        return ok, failed, versions

    def after_more(n):  # each flip lands while requests flow: wait for n more answers
        with lock:
            target = answered[0] + n
        wait_until(lambda: answered[0] >= target, timeout(60), what=f"{n} more answers")

    results = []
    loader = threading.Thread(target=lambda: results.extend(parallel(conns, work)))
    loader.start()
    try:
        after_more(100)
        for policy in (green, blue, green, blue, green):
            put_policy(srv, "ab", policy)
            after_more(100)
    finally:
        stop.set()
        loader.join()
    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    versions = set().union(*(r[2] for r in results))
    assert failed == 0
    assert ok > 500 and versions == {"1", "2"}
    # every flip is in the history, newest last
    events = history(srv, "ab")
    flips = [e["to"]["aliases"]["production"] for e in events if e["action"] == "put"]
    assert flips[-6:] == ["1", "2", "1", "2", "1", "2"]


# --------------------------------------------------------------------------------------------
# rollouts


def rollout_state(s, model):
    return s.get(f"/v1/models/{model}/traffic").json().get("rollout", {}).get("state")


def test_rollout_guard_rolls_back_a_candidate_that_fails_on_some_inputs(srv, state_dir):
    min_requests, max_error_rate = 40, 0.05
    put_policy(srv, "flaky", {"aliases": {"production": 1},
                              "rollout": {"candidate": 2, "steps": [20, 50, 100], "min_dwell_ms": 600000,
                                          "min_requests": min_requests, "max_error_rate": max_error_rate,
                                          "max_p99_ratio": 0}})
    rng = random.Random(7)
    candidate_failed = candidate_ok = stable_failed = 0
    s = requests.Session()
    for i in range(3000):
        idx = rng.randrange(0, 40)  # 3 in 4 indexes are past version 2's table
        r = s.post(srv.url("/v2/models/flaky/infer"),
                   json={"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [idx]}]}, timeout=T)
        arm = r.headers.get("X-Model-Arm")
        if r.status_code == 200:
            assert r.json()["outputs"][0]["data"] == [idx + 0.5]
            candidate_ok += arm == "canary"
        else:
            # ONNX Runtime refuses the index: the server answers 400 (the input values)
            assert r.status_code == 400 and "indices element out of data bounds" in r.text, r.text
            if arm == "canary":
                candidate_failed += 1
            else:
                stable_failed += 1
        if i % 20 == 19 and rollout_state(srv, "flaky") == "rolled_back":
            break
    wait_until(lambda: rollout_state(srv, "flaky") == "rolled_back", timeout(10), what="the guard's rollback")
    # failures: no more than the guard's limit over its minimum sample (2 of 40 at 5 %), plus
    # the one that showed the limit was passed
    assert 1 <= candidate_failed <= int(max_error_rate * min_requests) + 1, (candidate_failed, candidate_ok)
    assert stable_failed == 0
    policy = srv.get("/v1/models/flaky/traffic").json()
    assert policy["arms"] == [{"name": "stable", "version": "production", "weight": 100.0}]
    assert "error-rate guard" in policy["rollout"]["reason"]
    last = history(srv, "flaky")[-1]
    assert last["action"] == "guard_rollback" and last["who"] == "rollout" and "error-rate guard" in last["why"]
    assert last["from"]["rollout"]["state"] == "running" and last["to"]["rollout"]["state"] == "rolled_back"
    audit = audit_lines(state_dir)
    assert audit[-1]["action"] == "guard_rollback" and audit[-1]["why"] == last["why"]
    # /metrics says so too
    samples = traffic_metrics(srv)
    assert metric(samples, "inferd_traffic_rollout_state", model="flaky", state="rolled_back") == 1
    assert metric(samples, "inferd_traffic_rollout_state", model="flaky", state="running") == 0
    assert metric(samples, "inferd_traffic_rollout_candidate_percent", model="flaky") == 0
    assert metric(samples, "inferd_traffic_arm_errors_total", model="flaky", arm="canary") == candidate_failed
    # the candidate stays loaded for inspection; unpinned traffic no longer reaches it
    assert srv.get("/v2/models/flaky/versions/2/ready").status_code == 200
    for _ in range(50):
        r = s.post(srv.url("/v2/models/flaky/infer"),
                   json={"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [30]}]}, timeout=T)
        assert r.status_code == 200 and r.headers["X-Model-Arm"] == "stable"


def test_rollout_guard_rolls_back_a_5x_slower_candidate(srv, state_dir):
    s = requests.Session()
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.5]}]}
    for v in (1, 2):  # first runs are slow on any version: not the candidate's fault
        for _ in range(5):
            assert s.post(srv.url(f"/v2/models/slowcand/versions/{v}/infer"), json=body, timeout=T).status_code == 200
    put_policy(srv, "slowcand", {"aliases": {"production": 1},
                                 "rollout": {"candidate": 2, "steps": [50, 100], "min_dwell_ms": 600000,
                                             "min_requests": 40, "max_error_rate": 0.05, "max_p99_ratio": 2}})
    sent = 0
    while rollout_state(srv, "slowcand") == "running" and sent < 4000:
        for _ in range(10):
            r = s.post(srv.url("/v2/models/slowcand/infer"), json=body, timeout=T)
            assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1.5]
            sent += 1
    assert rollout_state(srv, "slowcand") == "rolled_back", sent
    last = history(srv, "slowcand")[-1]
    assert last["action"] == "guard_rollback" and "latency guard" in last["why"], last
    assert audit_lines(state_dir)[-1]["why"] == last["why"]
    report = {a["arm"]: a for a in srv.get("/v1/models/slowcand/traffic/report").json()["arms"]}
    assert report["canary"]["latency_ms"]["p50"] > 2 * report["stable"]["latency_ms"]["p50"]


def test_rollout_advances_and_promotes(srv, state_dir):
    put_policy(srv, "ab", {"aliases": {"production": 1},
                           "rollout": {"candidate": 2, "steps": [20, 60, 100], "min_dwell_ms": 200, "min_requests": 20,
                                       "max_p99_ratio": 0}})
    s = requests.Session()
    shares = []
    deadline = time.monotonic() + timeout(60)
    while rollout_state(srv, "ab") == "running" and time.monotonic() < deadline:
        for _ in range(20):
            infer_ab(s, srv)
        p = srv.get("/v1/models/ab/traffic").json()
        if p["rollout"]["state"] == "running":
            shares.append(p["rollout"]["steps"][p["rollout"]["step"]])
    assert rollout_state(srv, "ab") == "complete"
    assert sorted(set(shares)) == [20, 60] or sorted(set(shares)) == [20, 60, 100]
    actions = [e["action"] for e in history(srv, "ab")]
    assert actions[-3:] == ["advance", "advance", "promote"]
    policy = srv.get("/v1/models/ab/traffic").json()
    assert policy["aliases"] == {"production": "2"}
    assert infer_ab(s, srv) == ("2", "stable")
    assert [a["action"] for a in audit_lines(state_dir)][-3:] == ["advance", "advance", "promote"]


def test_manual_pause_resume_promote_and_rollback(srv):
    put_policy(srv, "ab", {"aliases": {"production": 1},
                           "rollout": {"candidate": 3, "steps": [10, 100], "min_dwell_ms": 600000}})
    r = srv.post("/v1/models/ab/traffic/pause", json={"reason": "looking at the dashboards"})
    assert r.status_code == 200 and r.json()["rollout"]["state"] == "paused"
    assert srv.post("/v1/models/ab/traffic/pause").status_code == 400
    assert srv.post("/v1/models/ab/traffic/resume").json()["rollout"]["state"] == "running"
    r = srv.post("/v1/models/ab/traffic/rollback", json={"reason": "bad feeling"})
    assert r.json()["rollout"]["state"] == "rolled_back" and "bad feeling" in r.json()["rollout"]["reason"]
    assert r.json()["arms"] == [{"name": "stable", "version": "production", "weight": 100.0}]
    assert srv.post("/v1/models/ab/traffic/resume").json()["arms"][1] == {"name": "canary", "version": "3", "weight": 10.0}
    r = srv.post("/v1/models/ab/traffic/promote", json={"reason": "ship it"})
    assert r.json()["rollout"]["state"] == "complete" and r.json()["aliases"] == {"production": "3"}
    events = history(srv, "ab")
    assert [e["action"] for e in events[-5:]] == ["pause", "resume", "rollback", "resume", "promote"]
    assert events[-5]["why"] == "paused by hand: looking at the dashboards" and events[-1]["who"] == "anonymous"
    # bad requests name what is wrong
    r = srv.post("/v1/models/ab/traffic/promote", json={"reason": 3})
    assert r.status_code == 400 and r.json() == {"error": "$.reason must be a string"}
    assert srv.post("/v1/models/nope/traffic/promote").status_code == 404
    assert srv.post("/v1/models/flaky/traffic/promote").json() == {
        "error": "model 'flaky' has no rollout to promote (PUT one in its traffic policy)"}
    r = srv.request("PUT", "/v1/models/ab/traffic", json={"arms": [{"name": "a", "version": 1, "weight": -2}]})
    assert r.status_code == 400 and r.json() == {"error": "$.arms[0].weight must be a number from 0 to 1e+09"}
    r = srv.request("PUT", "/v1/models/ab/traffic", data=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]


def test_state_survives_kill_9(repo, tmp_path):
    state = str(tmp_path / "state")
    policy = {"aliases": {"production": 1, "staging": 3}, "sticky_key": {"header": "X-User-Id"},
              "rollout": {"candidate": 2, "steps": [10, 50, 100], "min_dwell_ms": 600000, "min_requests": 1000000}}
    s1 = Server(repo, args=["--grpc-port", "0", "--state-dir", state], workdir=str(tmp_path)).start()
    try:
        put_policy(s1, "ab", policy)
        assert s1.post("/v1/models/ab/traffic/pause").status_code == 200
        assert s1.post("/v1/models/ab/traffic/resume").status_code == 200
        before = s1.get("/v1/models/ab/traffic").json()
        assert before["rollout"]["state"] == "running" and before["arms"][1]["weight"] == 10.0
        with requests.Session() as s:
            arms_before = {k: infer_ab(s, s1, headers={"X-User-Id": k})[1] for k in (f"k{i}" for i in range(200))}
        s1.proc.send_signal(signal.SIGKILL)
        s1.proc.wait(timeout=T)
    finally:
        if s1.alive():
            s1.proc.kill()
    s2 = Server(repo, args=["--grpc-port", "0", "--state-dir", state], workdir=str(tmp_path)).start()
    try:
        after = s2.get("/v1/models/ab/traffic").json()
        assert after == before
        with requests.Session() as s:
            arms_after = {k: infer_ab(s, s2, headers={"X-User-Id": k})[1] for k in arms_before}
            assert infer_ab(s, s2, version="staging") == ("3", "explicit")
        assert arms_after == arms_before
        assert len(history(s2, "ab")) == 3
    finally:
        s2.stop()
    s2.check_clean_exit()


def test_report_of_a_classifier_has_labels_and_scores(srv):
    put_policy(srv, "churn", {"arms": [{"name": "a", "version": 1}]})
    rows = [[3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0], [60, 20.0, 1200.0, 0, 50, 0, 0, 1, 1, 0, 0, 0]]
    for _ in range(5):
        r = srv.post("/v2/models/churn/infer", json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 12],
                                                                 "data": sum(rows, [])}],
                                                     "outputs": [{"name": "label"}, {"name": "probabilities"}]})
        assert r.status_code == 200, r.text
        labels = [int(v) for v in r.json()["outputs"][0]["data"]]
    arm = srv.get("/v1/models/churn/traffic/report").json()["arms"][0]
    assert arm["requests"] == 5
    assert sum(arm["labels"].values()) == 10 and arm["labels"] == {str(l): 5 * labels.count(l) for l in set(labels)}
    assert 0.5 <= arm["mean_score"] <= 1.0
    samples = traffic_metrics(srv)
    for label, n in arm["labels"].items():
        assert metric(samples, "inferd_traffic_arm_labels_total", model="churn", arm="a", label=label) == n
    assert metric(samples, "inferd_traffic_arm_mean_score", model="churn", arm="a") == pytest.approx(arm["mean_score"])


def test_config_json_traffic_is_the_start_up_default(tmp_path):
    repo = str(tmp_path / "models")
    cfg = dict(ALL_VERSIONS, traffic={"aliases": {"production": 2}, "arms": [{"name": "main", "version": "production"}]})
    for v in (1, 2):
        mtm.save(repo, "ab", mtm.versioned(v), version=v, config=cfg)
    s = Server(repo, args=["--grpc-port", "0", "--state-dir", str(tmp_path / "state")], workdir=str(tmp_path)).start()
    try:
        with requests.Session() as session:
            assert infer_ab(session, s) == ("2", "main")
        # a change through the API wins over config.json from then on (kept in the store)
        put_policy(s, "ab", {"aliases": {"production": 1}, "arms": [{"name": "main", "version": "production"}]})
    finally:
        s.stop()
    s = Server(repo, args=["--grpc-port", "0", "--state-dir", str(tmp_path / "state")], workdir=str(tmp_path)).start()
    try:
        with requests.Session() as session:
            assert infer_ab(session, s) == ("1", "main")
    finally:
        s.stop()
    s.check_clean_exit()


def test_cli(srv, tmp_path):
    env = dict(os.environ, INFERD_SERVER=f"http://127.0.0.1:{srv.port}")
    f = tmp_path / "policy.json"
    f.write_text(json.dumps({"aliases": {"production": 1}, "rollout": {"candidate": 2, "min_dwell_ms": 600000}}))

    def cli(*args):
        return subprocess.run([INFERD_BIN, "traffic", *args], capture_output=True, text=True, env=env, timeout=T)

    r = cli("set", "ab", str(f), "--reason", 'canary "v2"')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rollout"]["state"] == "running"
    r = cli("pause", "ab", "--reason", "lunch")
    assert r.returncode == 0 and json.loads(r.stdout)["rollout"]["state"] == "paused"
    r = cli("history", "ab", "--limit", "2")
    events = json.loads(r.stdout)["events"]
    assert [e["why"] for e in events] == ['canary "v2"', "paused by hand: lunch"]
    r = cli("get", "ab")
    assert json.loads(r.stdout)["rollout"]["state"] == "paused"
    assert cli("report", "ab").returncode == 0
    r = cli("promote", "nope")
    assert r.returncode == 1 and json.loads(r.stderr) == {"error": "model 'nope' not found"}
    assert cli("frobnicate", "ab").returncode == 2
    empty = tmp_path / "empty.json"
    empty.write_text("{ }\n")
    r = cli("set", "ab", str(empty), "--reason", "clear it")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"aliases": {}, "arms": [], "model": "ab"}
    assert json.loads(cli("history", "ab", "--limit", "1").stdout)["events"][0]["why"] == "clear it"


def test_openapi_lists_the_traffic_routes(srv):
    paths = srv.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/models/{model}/traffic"]) >= {"get", "put"}
    for action in ("promote", "rollback", "pause", "resume"):
        assert "post" in paths[f"/v1/models/{{model}}/traffic/{action}"]
    assert "get" in paths["/v1/models/{model}/traffic/history"]
    assert "get" in paths["/v1/models/{model}/traffic/report"]
    assert "post" in paths["/v1/models/{model}/labels/{version}:predict"]


# --------------------------------------------------------------------------------------------
# shadow traffic


def shadow_report(s, model, n):
    def settled():
        sh = s.get(f"/v1/models/{model}/traffic/report").json().get("shadow")
        return sh if sh and sh["sent"] == n and sh["errors"] + sh["compared"] + sh["dropped"] == n else None
    return wait_until(settled, timeout(30), what="every shadow copy accounted for")


def test_a_failing_shadow_changes_nothing_live(srv):
    put_policy(srv, "flaky", {"aliases": {"production": 1}, "arms": [{"name": "stable", "version": "production"}],
                              "shadow": {"version": 2, "percent": 100, "max_in_flight": 1000}})
    rng = random.Random(3)
    s = requests.Session()
    for _ in range(200):
        idx = rng.randrange(0, 40)
        r = s.post(srv.url("/v2/models/flaky/infer"),
                   json={"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1, 1], "data": [idx]}]}, timeout=T)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == "1" and r.json()["outputs"][0]["data"] == [idx + 0.5]
        assert r.headers["X-Model-Arm"] == "stable"
    sh = shadow_report(srv, "flaky", 200)
    assert sh["version"] == "2"
    assert sh["errors"] > 100 and sh["compared"] > 10  # 3 in 4 indexes fail on version 2
    # where version 2 answered, it answered what version 1 did
    assert sh["outputs"]["out"]["max_abs_diff"] == 0.0
    report = srv.get("/v1/models/flaky/traffic/report").json()
    assert [(a["arm"], a["requests"], a["errors"]) for a in report["arms"]] == [("stable", 200, 0)]


def test_a_slow_shadow_changes_nothing_live(srv):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.5]}]}
    put_policy(srv, "slowcand", {"aliases": {"production": 1}, "arms": [{"name": "stable", "version": "production"}],
                                 "shadow": {"version": 2, "percent": 100, "max_in_flight": 2}})
    s = requests.Session()
    for _ in range(100):
        r = s.post(srv.url("/v2/models/slowcand/infer"), json=body, timeout=T)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1.5] and r.json()["model_version"] == "1"
    sh = shadow_report(srv, "slowcand", 100)
    assert sh["errors"] == 0 and sh["compared"] > 0
    assert sh["outputs"]["y"]["max_abs_diff"] == 0.0
    stable = srv.get("/v1/models/slowcand/traffic/report").json()["arms"][0]
    assert sh["latency_ms"]["p50"] > 2 * stable["latency_ms"]["p50"]


def test_shadow_label_agreement_of_a_classifier(srv):
    put_policy(srv, "churn", {"arms": [{"name": "live", "version": 1}],
                              "shadow": {"version": 2, "percent": 50, "max_in_flight": 1000}})
    row = [3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0]
    for _ in range(100):
        r = srv.post("/v2/models/churn/infer", json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12],
                                                                 "data": row}]})
        assert r.status_code == 200 and r.json()["model_version"] == "1"
    sh = srv.get("/v1/models/churn/traffic/report").json()["shadow"]
    assert 35 <= sh["sent"] <= 65  # half of the requests
    sh = shadow_report(srv, "churn", sh["sent"])
    assert sh["label_agreement"] == 1.0 and sh["disagreement"] == 0.0
    samples = traffic_metrics(srv)
    assert metric(samples, "inferd_traffic_shadow_label_agreement_ratio", model="churn") == 1.0
    assert metric(samples, "inferd_traffic_shadow_disagreements_total", model="churn") == 0
    assert metric(samples, "inferd_traffic_shadow_comparisons_total", model="churn") == sh["compared"]


# --------------------------------------------------------------------------------------------
# the report as Prometheus metrics (GET /metrics)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def traffic_exposition(s):
    r = s.get("/metrics")
    assert r.status_code == 200, r.text
    # the traffic families: from their HELP line to the next family's
    lines, mine = [], False
    for line in r.text.splitlines():
        if line.startswith("# HELP "):
            mine = line.split(" ")[2].startswith("inferd_traffic_")
        if mine:
            lines.append(line)
    return "\n".join(lines) + "\n"


def traffic_metrics(s):
    """{(name, frozenset(labels)): value} of the inferd_traffic_ families."""
    out = {}
    for line in traffic_exposition(s).splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"malformed sample line: {line!r}"
        key = (m.group(1), frozenset(LABEL_RE.findall(m.group(3) or "")))
        assert key not in out, f"duplicate series: {line!r}"
        out[key] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no series {name}{labels}"
    return samples[key]


def buckets(samples, name, **labels):
    """[(le, cumulative count)] of a histogram's series, +Inf last."""
    out = []
    for (n, ls), v in samples.items():
        d = dict(ls)
        if n == name + "_bucket" and all(d.get(k) == w for k, w in labels.items()) and len(d) == len(labels) + 1:
            out.append((float(d["le"]), v))
    return sorted(out)


def check_histogram_against_report(samples, name, n, latency_ms, **labels):
    bs = buckets(samples, name, **labels)
    assert bs and bs[-1][0] == float("inf") and bs[-1][1] == n
    assert metric(samples, name + "_count", **labels) == n
    assert all(a[1] <= b[1] for a, b in zip(bs, bs[1:])), "cumulative buckets must not decrease"
    assert metric(samples, name + "_sum", **labels) > 0
    # the report's quantiles are bucket edges of the same counts: every exposed edge below its
    # p50/p99 holds fewer than the quantile's rank, every edge at or above it at least that many
    for q in (0.5, 0.99):
        edge, rank = latency_ms["p50" if q == 0.5 else "p99"] / 1000, math.ceil(q * n)
        for le, cum in bs:
            if le < edge * (1 - 1e-6):
                assert cum < rank, (q, le, cum, rank, edge)
            elif le >= edge * (1 + 1e-6):
                assert cum >= rank, (q, le, cum, rank, edge)


def test_metrics_agree_with_the_report_after_a_canary_and_shadow_run(srv):
    put_policy(srv, "ab", dict(CANARY_10, shadow={"version": 3, "percent": 100, "max_in_flight": 1000}))
    rng = random.Random(11)
    s = requests.Session()
    n = 400
    diffs = []
    for _ in range(n):
        x = rng.choice([0.5, 1.0, 1.5, 2.0, 4.0])
        r = s.post(srv.url("/v2/models/ab/infer"), json=ab_body(x), timeout=T)
        assert r.status_code == 200, r.text
        v = int(r.json()["model_version"])
        diffs.append(abs(3 * x - v * x))  # the shadow, version 3, answers 3x
    sh = shadow_report(srv, "ab", n)
    report = srv.get("/v1/models/ab/traffic/report").json()
    samples = traffic_metrics(srv)
    arms = {a["arm"]: a for a in report["arms"]}
    assert set(arms) == {"stable", "canary"} and sum(a["requests"] for a in arms.values()) == n
    for name, a in arms.items():
        assert metric(samples, "inferd_traffic_arm_requests_total", model="ab", arm=name) == a["requests"]
        assert metric(samples, "inferd_traffic_arm_errors_total", model="ab", arm=name) == a["errors"] == 0
        assert metric(samples, "inferd_traffic_arm_info", model="ab", arm=name, version=a["version"]) == 1
        check_histogram_against_report(samples, "inferd_traffic_arm_latency_seconds", a["requests"], a["latency_ms"],
                                       model="ab", arm=name)
    assert metric(samples, "inferd_traffic_arm_weight", model="ab", arm="stable") == pytest.approx(0.9)
    assert metric(samples, "inferd_traffic_arm_weight", model="ab", arm="canary") == pytest.approx(0.1)
    # the shadow: counts, the comparison (against the differences the answers themselves show)
    assert metric(samples, "inferd_traffic_shadow_info", model="ab", version="3") == 1
    assert metric(samples, "inferd_traffic_shadow_sent_total", model="ab") == sh["sent"] == n
    assert metric(samples, "inferd_traffic_shadow_dropped_total", model="ab") == sh["dropped"]
    assert metric(samples, "inferd_traffic_shadow_errors_total", model="ab") == sh["errors"]
    assert metric(samples, "inferd_traffic_shadow_comparisons_total", model="ab") == sh["compared"] == n
    mean = metric(samples, "inferd_traffic_shadow_abs_diff", model="ab", output="y", stat="mean")
    mx = metric(samples, "inferd_traffic_shadow_abs_diff", model="ab", output="y", stat="max")
    assert mean == pytest.approx(sh["outputs"]["y"]["mean_abs_diff"], rel=1e-12)
    assert mx == pytest.approx(sh["outputs"]["y"]["max_abs_diff"], rel=1e-12)
    assert mean == pytest.approx(sum(diffs) / n, rel=1e-6) and mx == pytest.approx(max(diffs), rel=1e-6)
    check_histogram_against_report(samples, "inferd_traffic_shadow_latency_seconds", sh["compared"], sh["latency_ms"],
                                   model="ab")
    # the exposition of these families is valid, lint-clean Prometheus text
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=traffic_exposition(srv), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr
    # with a rollout too, every inferd_traffic_ name deploy/'s dashboard and alerts use is on /metrics
    put_policy(srv, "ab", {"aliases": {"production": 1}, "rollout": {"candidate": 2, "min_dwell_ms": 600000},
                           "shadow": {"version": 3, "percent": 100}})
    text = traffic_exposition(srv)
    present = {n for n, _ in traffic_metrics(srv)} | set(re.findall(r"^# TYPE (\S+)", text, re.M))
    deploy = ""
    for f in ("grafana/inferd-dashboard.json", "prometheus/inferd-alerts.yml"):
        with open(os.path.join(REPO_ROOT, "deploy", f)) as fh:
            deploy += fh.read()
    used = set(re.findall(r"\binferd_traffic_[a-zA-Z0-9_]+", deploy))
    assert "inferd_traffic_rollout_state" in used
    assert not used - present, sorted(used - present)
    samples = traffic_metrics(srv)
    assert metric(samples, "inferd_traffic_rollout_state", model="ab", state="running") == 1
    assert metric(samples, "inferd_traffic_rollout_step", model="ab") == 0
    assert metric(samples, "inferd_traffic_rollout_candidate_percent", model="ab") == 5
