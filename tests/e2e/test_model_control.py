"""The live model repository (docs/model-repository.md): control modes (none, poll, explicit),
SIGHUP rescans, the repository API over REST and gRPC, reloads side by side, failed loads that
leave the serving version serving, unloads that let requests in flight finish, warmup, and
requests during reloads."""

import json
import os
import shutil
import signal
import threading
import time

import grpc
import numpy as np
import pytest

import make_test_models as tm
from conftest import SANITIZED, assert_error, pending_requests, timeout, wait_until
from grpc_stubs import assert_rpc_error, grpc_server_factory, infer_request, pb  # noqa: F401

T = timeout(30)
CFG = dict(tm.VERSIONED_CONFIG)  # x FP32 [N, 1] -> y = x * version; {"latest": 2}


def put_version(repo, name, version, factor=None, config=None):
    """Writes <repo>/<name>/<version>/model.onnx (y = x * factor) in a temporary folder and
    renames it in, so a scan never sees half a version."""
    tmp = os.path.join(repo, f".tmp-{name}-{version}-{time.monotonic_ns()}")
    tm.save(tmp, name, tm.versioned(factor if factor is not None else version), version=version)
    os.makedirs(os.path.join(repo, name), exist_ok=True)
    os.rename(os.path.join(tmp, name, str(version)), os.path.join(repo, name, str(version)))
    shutil.rmtree(tmp)
    if config is not None:
        write_config(repo, name, config)


def write_config(repo, name, config):
    path = os.path.join(repo, name, "config.json")
    with open(path + ".tmp", "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config))
    os.replace(path + ".tmp", path)


def replace_file(repo, name, version, data):
    """Replaces a version's model file in one rename (as a deploy tool would)."""
    path = os.path.join(repo, name, str(version), "model.onnx")
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def factor(srv, name="vm", version=None):
    """Which factor answers: the output for x = 1, or the HTTP status when not 200."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    r = srv.infer(name, body, version=version)
    if r.status_code != 200:
        return r.status_code
    return r.json()["outputs"][0]["data"][0]


def index(srv, **body):
    r = srv.post("/v2/repository/index", json=body) if body else srv.post("/v2/repository/index")
    assert r.status_code == 200, r.text
    return {(e["name"], e.get("version", "")): e for e in r.json()}


@pytest.fixture
def repo(tmp_path):
    d = str(tmp_path / "repo")
    os.makedirs(d)
    put_version(d, "vm", 1, config=CFG)
    return d


def test_poll_adds_removes_and_reloads_versions(grpc_server_factory, repo):
    g = grpc_server_factory(repo, args=["--model-control-mode", "poll", "--repository-poll-secs", "1"])
    srv = g.srv
    assert factor(srv) == 1.0
    # a new version folder loads beside the serving one and becomes the default when READY
    put_version(repo, "vm", 2)
    wait_until(lambda: factor(srv) == 2.0, timeout(15), what="version 2 serving")
    assert factor(srv, version=1) == 1.0
    assert {k: v["state"] for k, v in index(srv).items()} == {("vm", "1"): "READY", ("vm", "2"): "READY"}
    # the policy ({"latest": 2}) drops version 1 when version 3 arrives
    put_version(repo, "vm", 3)
    wait_until(lambda: factor(srv) == 3.0 and factor(srv, version=1) == 404, timeout(15), what="version 1 unloaded")
    # a removed folder drains and unloads; the default falls back to what is left
    shutil.rmtree(os.path.join(repo, "vm", "3"))
    wait_until(lambda: factor(srv) == 2.0, timeout(15), what="version 3 removed")
    assert_error(srv.infer("vm", {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]},
                           version=3), 404, "version 3")
    # a replaced model file reloads that version side by side
    replace_file(repo, "vm", 2, tm.versioned(7).SerializeToString())
    wait_until(lambda: factor(srv) == 7.0, timeout(15), what="version 2 reloaded")
    assert srv.get("/v2/health/ready").status_code == 200
    # a changed config.json reloads every version with it
    write_config(repo, "vm", dict(CFG, version_policy={"all": True}))
    wait_until(lambda: factor(srv, version=1) == 1.0, timeout(15), what="version 1 back under policy all")


def test_none_mode_rescans_only_on_sighup(grpc_server_factory, repo):
    g = grpc_server_factory(repo)
    srv = g.srv
    put_version(repo, "vm", 2)
    time.sleep(1.5)
    assert factor(srv) == 1.0, "none mode must not pick up changes by itself"
    srv.send_signal(signal.SIGHUP)
    wait_until(lambda: factor(srv) == 2.0, timeout(15), what="version 2 after SIGHUP")
    assert srv.alive()
    # a new model folder joins too
    put_version(repo, "other", 1, config=CFG)
    srv.send_signal(signal.SIGHUP)
    wait_until(lambda: factor(srv, "other") == 1.0, timeout(15), what="model 'other' after SIGHUP")


def test_explicit_mode(grpc_server_factory, repo):
    put_version(repo, "other", 1, config=CFG)
    g = grpc_server_factory(repo, args=["--model-control-mode", "explicit", "--load-model", "vm"])
    srv = g.srv
    assert factor(srv) == 1.0
    idx = index(srv)
    assert idx[("other", "")]["state"] == "UNAVAILABLE" and "not loaded" in idx[("other", "")]["reason"]
    assert factor(srv, "other") == 503
    assert srv.get("/v2/health/ready").status_code == 200  # only requested models count
    assert srv.post("/v2/repository/models/other/load").status_code == 200
    assert factor(srv, "other") == 1.0
    # explicit mode does not load what appears by itself, even on SIGHUP
    put_version(repo, "third", 1, config=CFG)
    srv.send_signal(signal.SIGHUP)
    wait_until(lambda: ("third", "") in index(srv), timeout(15), what="'third' listed")
    assert factor(srv, "third") == 503
    # "*" loads everything at start
    g2 = grpc_server_factory(repo, args=["--model-control-mode", "explicit", "--load-model", "*"])
    assert factor(g2.srv, "third") == 1.0 and factor(g2.srv, "other") == 1.0


def test_bad_flags(tmp_path):
    import subprocess
    from conftest import INFERD_BIN
    for args, needle in ((["--model-control-mode", "sometimes"], "none, poll or explicit"),
                         (["--load-model", "vm"], "explicit"),
                         (["--model-control-mode", "poll", "--repository-poll-secs", "0"], "repository-poll-secs")):
        r = subprocess.run([INFERD_BIN, "serve", "--model-repository", str(tmp_path)] + args, capture_output=True,
                           text=True, timeout=T)
        assert r.returncode == 2 and needle in r.stderr, (args, r.stderr)


def test_rest_repository_api(grpc_server_factory, repo):
    put_version(repo, "vm", 2)
    put_version(repo, "bad", 1, config=CFG)
    replace_file(repo, "bad", 1, b"not an onnx model")
    g = grpc_server_factory(repo, wait_ready=False)
    srv = g.srv
    wait_until(lambda: all(e["state"] != "LOADING" for e in index(srv).values()) and len(index(srv)) == 3,
               timeout(15), what="models settled")
    idx = index(srv)
    assert idx[("vm", "2")] == {"name": "vm", "version": "2", "state": "READY", "reason": ""}
    assert idx[("bad", "1")]["state"] == "UNAVAILABLE" and "ONNX" in idx[("bad", "1")]["reason"]
    assert set(index(srv, ready=True)) == {("vm", "1"), ("vm", "2")}
    assert "model_repository" in srv.get("/v2").json()["extensions"]
    # bad bodies name what is wrong
    assert_error(srv.post("/v2/repository/index", json={"ready": "yes"}), 400, "ready")
    assert_error(srv.post("/v2/repository/index", json={"readdy": True}), 400, "readdy")
    assert_error(srv.post("/v2/repository/index", data=b"{"), 400, "JSON")
    assert_error(srv.post("/v2/repository/models/vm/load", json={"parameters": {"config": 5}}), 400, "config")
    assert_error(srv.post("/v2/repository/models/vm/load", json={"parameters": {"config": '{"max_batch_sise": 1}'}}),
                 400, "max_batch_sise")
    assert_error(srv.post("/v2/repository/models/vm/unload", json={"parameters": {"unload_dependents": 1}}), 400,
                 "unload_dependents")
    assert_error(srv.post("/v2/repository/models/nope/load"), 404, "nope")
    assert_error(srv.post("/v2/repository/models/nope/unload"), 404, "nope")
    assert_error(srv.post("/v2/repository/models/bad/load"), 503, "bad")
    # a config given to load replaces config.json: only version 1
    cfg = json.dumps(dict(CFG, version_policy={"specific": {"versions": [1]}}))
    assert srv.post("/v2/repository/models/vm/load", json={"parameters": {"config": cfg}}).status_code == 200
    assert factor(srv) == 1.0 and factor(srv, version=2) == 404
    c = srv.get("/v2/models/vm/config").json()
    assert c["name"] == "vm" and c["max_batch_size"] == 8 and c["version_policy"] == {"specific": {"versions": [1]}}
    assert c["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [1]}]
    assert c["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": [1]}]
    # a load without a config goes back to config.json
    assert srv.post("/v2/repository/models/vm/load", json={}).status_code == 200
    assert factor(srv) == 2.0
    assert srv.get("/v2/models/vm/config").json()["version_policy"] == {"latest": {"num_versions": 2}}
    assert_error(srv.get("/v2/models/nope/config"), 404, "nope")
    # unload: not routed, not ready, listed with the reason; the server stays ready without it
    r = srv.post("/v2/repository/models/vm/unload", json={"parameters": {"unload_dependents": False}})
    assert r.status_code == 200, r.text
    assert factor(srv) == 503 and srv.get("/v2/models/vm/ready").status_code != 200
    assert "unloaded" in index(srv)[("vm", "")]["reason"]
    assert_error(srv.get("/v2/models/vm/config"), 503, "vm")
    assert srv.post("/v2/repository/models/vm/load").status_code == 200
    assert factor(srv) == 2.0


def test_grpc_model_ready_and_index_follow_loads(grpc_server_factory, repo):
    g = grpc_server_factory(repo, args=["--model-control-mode", "explicit"])
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="vm"), timeout=T).ready is False
    g.infer.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="vm"), timeout=T)
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="vm"), timeout=T).ready is True
    idx = g.infer.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=T).models
    assert [(m.name, m.version, m.state) for m in idx] == [("vm", "1", "READY")]
    r = pb.RepositoryModelLoadRequest(model_name="vm")
    r.parameters["config"].string_param = json.dumps(dict(CFG, description="from the API"))
    g.infer.RepositoryModelLoad(r, timeout=T)
    assert g.srv.get("/v2/models/vm").json()["description"] == "from the API"
    c = g.infer.ModelConfig(pb.ModelConfigRequest(name="vm"), timeout=T).config
    assert (c.name, c.platform, c.backend, c.max_batch_size) == ("vm", "onnxruntime_onnx", "onnxruntime", 8)
    assert [(i.name, i.data_type, list(i.dims)) for i in c.input] == [("x", pb.TYPE_FP32, [1])]
    assert [(o.name, o.data_type, list(o.dims)) for o in c.output] == [("y", pb.TYPE_FP32, [1])]
    assert c.version_policy.latest.num_versions == 2
    assert c.instance_group[0].count == 1 and c.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    assert_rpc_error(g.infer.ModelConfig, pb.ModelConfigRequest(name="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    assert_rpc_error(g.infer.ModelConfig, pb.ModelConfigRequest(name="vm", version="9"), grpc.StatusCode.NOT_FOUND,
                     "version 9")
    assert_rpc_error(g.infer.ModelConfig, pb.ModelConfigRequest(), grpc.StatusCode.INVALID_ARGUMENT, "name")
    g.infer.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="vm"), timeout=T)
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="vm"), timeout=T).ready is False
    assert_rpc_error(g.infer.ModelConfig, pb.ModelConfigRequest(name="vm"), grpc.StatusCode.UNAVAILABLE, "unloaded")


def test_corrupt_files_leave_the_serving_version_serving(grpc_server_factory, repo):
    g = grpc_server_factory(repo, args=["--model-control-mode", "poll", "--repository-poll-secs", "1"])
    srv = g.srv
    # a corrupt replacement of the serving version's file
    replace_file(repo, "vm", 1, b"\x08\x07garbage, not a model")
    wait_until(lambda: index(srv)[("vm", "1")]["reason"], timeout(15), what="the failed reload in the index")
    e = index(srv)[("vm", "1")]
    assert e["state"] == "READY" and "reload failed" in e["reason"], e
    assert factor(srv) == 1.0 and srv.get("/v2/health/ready").status_code == 200
    # a corrupt new version: UNAVAILABLE with the reason, the default still routes to version 1
    put_version(repo, "vm", 2)
    replace_file(repo, "vm", 2, b"also garbage")
    wait_until(lambda: index(srv).get(("vm", "2"), {}).get("state") == "UNAVAILABLE", timeout(15),
               what="version 2 failed")
    assert index(srv)[("vm", "2")]["reason"]
    assert factor(srv) == 1.0 and factor(srv, version=2) == 503
    assert srv.get("/v2/health/ready").status_code == 200
    # fixing the file heals both
    replace_file(repo, "vm", 2, tm.versioned(2).SerializeToString())
    replace_file(repo, "vm", 1, tm.versioned(1).SerializeToString())
    wait_until(lambda: factor(srv) == 2.0 and not index(srv)[("vm", "1")]["reason"], timeout(15), what="healed")
    # a broken config.json keeps what serves serving, and says why
    write_config(repo, "vm", "{not json")
    wait_until(lambda: "config.json" in index(srv)[("vm", "2")]["reason"], timeout(15), what="config error listed")
    e = index(srv)[("vm", "2")]
    assert e["state"] == "READY" and "previous config" in e["reason"], e
    assert factor(srv) == 2.0 and srv.get("/v2/health/ready").status_code == 200


def test_failed_replacements_do_not_take_anything_out_of_service(grpc_server_factory, repo):
    """With {"latest": 1}, a new version that fails to load does not unload the one it was to
    replace; a new model folder that fails does not turn the server not ready."""
    write_config(repo, "vm", dict(CFG, version_policy={"latest": 1}))
    g = grpc_server_factory(repo, args=["--model-control-mode", "poll", "--repository-poll-secs", "1"])
    srv = g.srv
    put_version(repo, "vm", 2)
    replace_file(repo, "vm", 2, b"garbage")
    wait_until(lambda: index(srv).get(("vm", "2"), {}).get("state") == "UNAVAILABLE", timeout(15), what="v2 failed")
    e = index(srv)[("vm", "1")]
    assert e["state"] == "READY" and "kept serving" in e["reason"], e
    assert factor(srv) == 1.0 and srv.get("/v2/health/ready").status_code == 200
    replace_file(repo, "vm", 2, tm.versioned(2).SerializeToString())
    wait_until(lambda: ("vm", "1") not in index(srv), timeout(15), what="v1 unloaded once v2 serves")
    assert factor(srv) == 2.0
    # a brand-new model that cannot load is listed with its reason; the server stays ready
    put_version(repo, "newbad", 1)
    replace_file(repo, "newbad", 1, b"garbage")
    wait_until(lambda: index(srv).get(("newbad", "1"), {}).get("state") == "UNAVAILABLE", timeout(15), what="newbad")
    assert srv.get("/v2/health/ready").status_code == 200
    assert factor(srv, "newbad") == 503


def test_unload_lets_requests_in_flight_finish(grpc_server_factory, tmp_path):
    repo = str(tmp_path / "repo")
    slow_model, cfg = tm.slow()
    tm.save(repo, "slow", slow_model, config=dict(cfg, instance_count=1))
    # The drain timeout bounds how long the queued requests may wait, and four slow runs one
    # after another take seconds each on a loaded machine (over the default 10 s): give the
    # drain room, so what is tested is that the unload waits for them, not how fast they run.
    g = grpc_server_factory(repo, args=["--drain-timeout-ms", str(int(timeout(300) * 1000))])
    srv = g.srv
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
    results = []

    def one():
        r = srv.post("/v2/models/slow/infer", json=body, timeout=timeout(120))
        results.append((r.status_code, r.text))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    # all four have reached the version (one running, three queued) before it is unloaded
    wait_until(lambda: pending_requests(srv, "slow") == 4, T, what="four requests pending")
    r = srv.post("/v2/repository/models/slow/unload")
    assert r.status_code == 200
    assert srv.infer("slow", body).status_code == 503  # no new request reaches it
    for t in threads:
        t.join(timeout(120))
    # every request that reached the version before the unload finishes
    assert len(results) == 4
    assert all(c == 200 for c, _ in results), results


def test_unload_drain_timeout_fails_what_is_queued(grpc_server_factory, tmp_path):
    repo = str(tmp_path / "repo")
    slow_model, cfg = tm.slow()
    tm.save(repo, "slow", slow_model, config=dict(cfg, instance_count=1))
    g = grpc_server_factory(repo, args=["--drain-timeout-ms", "1"])
    srv = g.srv
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
    results = []

    def one():
        r = srv.post("/v2/models/slow/infer", json=body, timeout=timeout(60))
        results.append((r.status_code, r.text))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    # all six have reached the version (the first one running) before it is unloaded
    wait_until(lambda: pending_requests(srv, "slow") == 6, T, what="six requests pending")
    assert srv.post("/v2/repository/models/slow/unload").status_code == 200
    for t in threads:
        t.join(timeout(60))
    codes = sorted(c for c, _ in results)
    assert 200 in codes and 503 in codes, results  # the one running finished; the queued ones were told
    assert all("unloaded" in text for c, text in results if c == 503), results


def test_warmup(grpc_server_factory, tmp_path):
    repo = str(tmp_path / "repo")
    for name, warm in (("zeros", {"runs": 3}), ("random", {"runs": 2, "data": "random"}),
                       ("from_file", {"runs": 1, "data": "file", "file": "warmup.json"}),
                       ("bad_file", {"data": "file", "file": "warmup.json"}),
                       ("missing_file", {"file": "nope.json"}),
                       ("bad_field", {"runs": -1})):
        put_version(repo, name, 1, config=dict(CFG, warmup=warm))
    sample = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [[1], [2]]}]}
    with open(os.path.join(repo, "from_file", "warmup.json"), "w") as f:
        json.dump(sample, f)
    with open(os.path.join(repo, "bad_file", "warmup.json"), "w") as f:
        json.dump({"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}, f)
    g = grpc_server_factory(repo, wait_ready=False)
    srv = g.srv
    names = ("zeros", "random", "from_file", "bad_file", "missing_file", "bad_field")

    def settled():
        # Each model's version 1 listed, and none LOADING. Counting six entries is not enough:
        # at start the repository publishes the folders it found before it looks into each
        # one, and a model not looked into yet is listed without a version (UNAVAILABLE, "waiting
        # for its folder to be scanned") until its turn; a loaded machine catches the index then.
        idx = index(srv)
        return all(idx.get((n, "1"), {}).get("state", "LOADING") != "LOADING" for n in names) and idx

    idx = wait_until(settled, timeout(30), what="settled")
    for name in ("zeros", "random", "from_file"):
        assert idx[(name, "1")]["state"] == "READY", idx[(name, "1")]
        assert factor(srv, name) == 1.0
        # warmup runs are not requests: the statistics do not count them
        assert srv.get(f"/v2/models/{name}/stats").json()["model_stats"][0]["inference_count"] == 1
    assert "warmup" in idx[("bad_file", "1")]["reason"] and "'z'" in idx[("bad_file", "1")]["reason"]
    assert "nope.json" in idx[("missing_file", "1")]["reason"]
    assert "warmup.runs" in idx[("bad_field", "1")]["reason"]
    assert srv.get("/v2/models/zeros/config").json()["warmup"] == {"runs": 3, "data": "zeros"}


def test_index_at_start_says_a_model_waits_for_its_scan(grpc_server_factory, tmp_path):
    """At start the repository lists every model folder before it scans each one (so the index
    shows them all while the first ones load). A model not scanned yet is UNAVAILABLE "waiting
    for its folder to be scanned", never "no version folders", which would send an operator
    looking for a missing folder."""
    repo = str(tmp_path / "repo")
    names = [f"m{i}" for i in range(8)]
    for name in names:  # warm-up runs make each load take a while, so the window is wide
        put_version(repo, name, 1, config=dict(CFG, warmup={"runs": 300, "data": "random"}))
    g = grpc_server_factory(repo, wait_ready=False)
    reasons = set()

    def all_ready():
        idx = index(g.srv)
        reasons.update(e.get("reason", "") for (n, v), e in idx.items() if v == "")
        return all(idx.get((n, "1"), {}).get("state") == "READY" for n in names)

    wait_until(all_ready, timeout(60), what="every model READY")
    assert not any(r.startswith("no version folders") for r in reasons), reasons
    assert reasons <= {"waiting for its folder to be scanned"}, reasons


def test_requests_during_reloads_all_succeed(grpc_server_factory, repo):
    """8 clients (REST and gRPC, default version) for the whole run, while version folders are
    added, replaced and removed 20 times by poll and the API: every answer is a 200, from a
    version that was READY."""
    put_version(repo, "vm", 2)
    g = grpc_server_factory(repo, args=["--model-control-mode", "poll", "--repository-poll-secs", "1"])
    srv = g.srv
    stop = threading.Event()
    bad, counts = [], [0] * 8
    allowed = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}

    def rest(i):
        import requests
        s = requests.Session()
        while not stop.is_set():
            r = s.post(srv.url("/v2/models/vm/infer"), json=body, timeout=timeout(30))
            if r.status_code != 200 or r.json()["outputs"][0]["data"][0] not in allowed:
                bad.append(("rest", r.status_code, r.text[:200]))
            counts[i] += 1

    def rpc(i):
        req = infer_request("vm", [("x", "FP32", np.ones((1, 1), np.float32))])
        while not stop.is_set():
            try:
                out = g.infer.ModelInfer(req, timeout=timeout(30))
                y = np.frombuffer(out.raw_output_contents[0], np.float32)[0] if out.raw_output_contents else \
                    out.outputs[0].contents.fp32_contents[0]
                if float(y) not in allowed:
                    bad.append(("grpc", "value", float(y)))
            except grpc.RpcError as e:
                bad.append(("grpc", e.code(), e.details()))
            counts[i] += 1

    threads = [threading.Thread(target=rest if i % 2 == 0 else rpc, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        cycles = 10 if SANITIZED else 20
        for k in range(cycles):
            step = k % 4
            if step == 0:  # a new version through the poll
                put_version(repo, "vm", 3, factor=3 + (k // 4) % 3)
                wait_until(lambda: index(srv).get(("vm", "3"), {}).get("state") == "READY", timeout(15), what="v3")
            elif step == 1:  # replace the newest version's file
                replace_file(repo, "vm", 3, tm.versioned(6).SerializeToString())
                srv.send_signal(signal.SIGHUP)
                time.sleep(0.3)
            elif step == 2:  # reload through the API
                assert srv.post("/v2/repository/models/vm/load").status_code == 200
            else:  # remove it again
                shutil.rmtree(os.path.join(repo, "vm", "3"))
                wait_until(lambda: ("vm", "3") not in index(srv), timeout(15), what="v3 gone")
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout(30))
    assert not bad, bad[:10]
    assert all(c > 0 for c in counts), counts


def test_load_unload_cycles_do_not_leak(grpc_server_factory, tmp_path):
    """200 load/unload cycles of the mlp example model: open file descriptors do not grow (and
    under ASan, LeakSanitizer finds nothing at exit)."""
    repo = str(tmp_path / "repo")
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "..", "models", "mlp"), os.path.join(repo, "mlp"))
    g = grpc_server_factory(repo, args=["--model-control-mode", "explicit", "--load-model", "mlp"])
    srv = g.srv
    fd_dir = f"/proc/{srv.proc.pid}/fd"
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256], "data": [0.5] * 256}]}

    def cycle():
        assert srv.post("/v2/repository/models/mlp/unload").status_code == 200
        r = srv.post("/v2/repository/models/mlp/load")
        assert r.status_code == 200, r.text
        assert srv.infer("mlp", body).status_code == 200

    for _ in range(5):  # past the first-use allocations (thread pools, sockets)
        cycle()
    time.sleep(0.3)
    fds = len(os.listdir(fd_dir))
    rss0 = rss_kb(srv.proc.pid)
    for _ in range(200):
        cycle()
    # every unloaded version was freed while the server runs (not merely at exit)
    wait_until(lambda: sum(1 for l in srv.log_lines() if l.get("model") == "mlp" and l.get("msg") == "version 1 unloaded")
               == 205, timeout(10), what="205 versions freed")
    assert len(os.listdir(fd_dir)) <= fds + 2, (fds, sorted(os.listdir(fd_dir)))
    if not SANITIZED:
        print(f"RSS growth over 200 cycles: {rss_kb(srv.proc.pid) - rss0} KiB")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
