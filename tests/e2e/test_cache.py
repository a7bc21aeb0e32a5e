"""The prediction cache (docs/cache.md): opt-in per model with config.json "response_cache".

- a repeated request is a hit (X-Cache: hit) and equals the miss's answer, on V2 JSON, V2
  binary, /v1 records and gRPC ModelInfer, and the model does not run again (the statistics
  extension's execution_count);
- 64 concurrent identical requests run the model once (coalesced on the first one's run);
- an entry expires after ttl_ms; a reloaded version never answers from the old one's entries;
- max_bytes bounds what is kept; a model without response_cache never caches.
"""
import concurrent.futures
import json
import re
import os
import shutil
import time

import numpy as np
import pytest
import requests

import make_test_models as tm
from conftest import SANITIZED, build_request, parse_response, timeout, wait_until
from grpc_stubs import grpc_server_factory, infer_request, output_arrays  # noqa: F401

T = timeout(30)
SLOW_APP = {"task": "regression", "features": [{"name": "a", "type": "numeric"}], "outputs": {"value": "y"}}


def _write(repo, name, model, config, version=1):
    d = os.path.join(repo, name, str(version))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    with open(os.path.join(repo, name, "config.json"), "w") as f:
        json.dump(config, f)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cache_repo"))
    slow, slow_cfg = tm.slow_batched()  # x FP32 [N, 1] -> y = x, ~300 ms a run
    slow_cfg = dict(slow_cfg, application=SLOW_APP)
    _write(root, "slowc", slow, dict(slow_cfg, response_cache={"enable": True}))
    _write(root, "slown", slow, slow_cfg)  # the same model, no response_cache
    _write(root, "slowoff", slow, dict(slow_cfg, response_cache={"enable": False}))
    add, add_cfg = tm.add_sub()
    _write(root, "addttl", add, dict(add_cfg, response_cache={"ttl_ms": 1500}))
    _write(root, "addsmall", add, dict(add_cfg, response_cache={"max_bytes": 4096}))
    return root


def stats(srv, model):
    r = srv.get(f"/v2/models/{model}/versions/1/stats")
    assert r.status_code == 200, r.text
    s = r.json()["model_stats"][0]
    return s["execution_count"], s["inference_stats"]["success"]["count"]


def v2(srv, model, x, binary=False):
    inp = {"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x], "binary": binary}
    body, hdrs = build_request([inp], outputs=[{"name": "y", "parameters": {"binary_data": binary}}])
    r = srv.infer(model, body, headers=hdrs, timeout=T)
    assert r.status_code == 200, r.text
    _, outs = parse_response(r)
    return r.headers.get("X-Cache"), np.asarray(outs["y"]["value"], dtype=np.float32).reshape(-1).tolist()


def add(srv, model, k):
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [k, k + 1, k + 2, k + 3]},
                       {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}
    r = srv.post(f"/v2/models/{model}/infer", json=body, timeout=T)
    assert r.status_code == 200, r.text
    return r.headers.get("X-Cache"), r.json()["outputs"]


def test_repeat_is_a_hit_with_the_same_answer_on_every_protocol(repo, grpc_server_factory):
    g = grpc_server_factory(repo)
    srv = g.srv
    ex0, _ = stats(srv, "slowc")
    # V2 JSON, then the same tensors in the binary extension: one canonical key, so a hit
    assert v2(srv, "slowc", 1.5) == ("miss", [1.5])
    assert v2(srv, "slowc", 1.5) == ("hit", [1.5])
    assert v2(srv, "slowc", 1.5, binary=True) == ("hit", [1.5])
    # the JSON input order does not matter (the key sorts inputs and outputs): the same body
    # without "outputs" asks for every output, here just y
    r = srv.post("/v2/models/slowc/infer", timeout=T,
                 json={"inputs": [{"shape": [1, 1], "datatype": "FP32", "name": "x", "data": [1.5]}]})
    assert r.status_code == 200 and r.headers.get("X-Cache") == "hit", (r.status_code, r.headers)
    assert r.json()["outputs"][0]["data"] == [1.5]
    ex1, _ = stats(srv, "slowc")
    assert ex1 - ex0 == 1, "the hits ran the model"
    # /v1 records
    r1 = srv.post("/v1/models/slowc/predict", json={"inputs": [{"a": 2.5}]}, timeout=T)
    r2 = srv.post("/v1/models/slowc/predict", json={"inputs": [{"a": 2.5}]}, timeout=T)
    assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
    assert (r1.headers.get("X-Cache"), r2.headers.get("X-Cache")) == ("miss", "hit")
    j1, j2 = r1.json(), r2.json()
    assert j1["results"] == j2["results"] and "2.5" in json.dumps(j1["results"]), (j1, j2)
    # gRPC ModelInfer: X-Cache in the initial metadata
    req = infer_request("slowc", [("x", "FP32", np.array([[3.5]], np.float32))])
    resp1, call1 = g.infer.ModelInfer.with_call(req, timeout=T)
    resp2, call2 = g.infer.ModelInfer.with_call(req, timeout=T)
    md1, md2 = dict(call1.initial_metadata()), dict(call2.initial_metadata())
    assert (md1.get("x-cache"), md2.get("x-cache")) == ("miss", "hit")
    a1, a2 = output_arrays(resp1)["y"][1], output_arrays(resp2)["y"][1]
    assert a1.tolist() == a2.tolist() == [[3.5]]
    # raw (binary) gRPC contents of the same tensor hit the same entry
    resp3, call3 = g.infer.ModelInfer.with_call(
        infer_request("slowc", [("x", "FP32", np.array([[3.5]], np.float32))], raw=True), timeout=T)
    assert dict(call3.initial_metadata()).get("x-cache") == "hit"
    assert output_arrays(resp3)["y"][1].tolist() == [[3.5]]
    ex2, _ = stats(srv, "slowc")
    assert ex2 - ex1 == 2, "one run for /v1, one for gRPC"
    # a different input is a different key
    assert v2(srv, "slowc", 1.25) == ("miss", [1.25])


def test_model_without_response_cache_never_caches(repo, server_factory):
    srv = server_factory(repo)
    for model in ("slown", "slowoff"):
        ex0, _ = stats(srv, model)
        for _ in range(3):
            assert v2(srv, model, 4.0) == (None, [4.0])
        ex1, _ = stats(srv, model)
        assert ex1 - ex0 == 3, f"{model}: {ex1 - ex0} runs for 3 requests"


def _concurrent(srv, model, n, x):
    sess_body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [x]}]})

    def one(_):
        with requests.Session() as s:
            r = s.post(srv.url(f"/v2/models/{model}/infer"), data=sess_body,
                       headers={"Content-Type": "application/json"}, timeout=T)
            return r.status_code, r.headers.get("X-Cache"), r.json()["outputs"][0]["data"]

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_identical_requests_run_the_model_once(repo, server_factory):
    srv = server_factory(repo, args=["--http-threads", "2"])
    ex0, ok0 = stats(srv, "slowc")
    results = _concurrent(srv, "slowc", 64, 7.0)
    assert all(code == 200 and data == [7.0] for code, _, data in results), results[:3]
    headers = [h for _, h, _ in results]
    assert headers.count("miss") == 1, headers
    assert headers.count("hit") == 63, headers
    ex1, ok1 = stats(srv, "slowc")
    assert ex1 - ex0 == 1, f"64 identical requests ran the model {ex1 - ex0} times"
    assert ok1 - ok0 == 64, "every request counts as a success"
    # /metrics counts them the same way: one miss, 63 answered from the leader's run or an entry
    m = srv.get("/metrics").text
    def counter(result):
        return float(re.search(r'^inferd_cache_requests_total\{result="%s"\} (\S+)$' % result, m, re.M).group(1))
    assert counter("miss") >= 1 and counter("hit") + counter("coalesced") >= 63, m
    # the same on a model without the cache runs once per batch (max_batch_size 4): more than one
    # run. Eight requests, not more: they are served one run (~300 ms, 4 s at load 20 on two
    # cores) at a time, and 16 took 5 runs, past the 30 s a request may take, under that load.
    ex0, _ = stats(srv, "slown")
    results = _concurrent(srv, "slown", 8, 7.0)
    assert all(code == 200 and h is None for code, h, _ in results)
    ex1, _ = stats(srv, "slown")
    assert ex1 - ex0 >= 2, f"8 identical requests without the cache ran the model {ex1 - ex0} times"


def test_entries_expire_after_ttl(repo, server_factory):
    srv = server_factory(repo)
    h1, o1 = add(srv, "addttl", 1)
    h2, o2 = add(srv, "addttl", 1)
    assert (h1, h2) == ("miss", "hit") and o1 == o2
    time.sleep(1.5 + 0.3)
    h3, o3 = add(srv, "addttl", 1)
    assert h3 == "miss" and o3 == o1
    assert add(srv, "addttl", 1)[0] == "hit"


def test_byte_bound_holds(repo, server_factory):
    """max_bytes 4096: each entry holds at least its 2 x 16 bytes of outputs and 96 bytes of
    overhead, so at most 32 of 60 distinct results can be kept; the newest are."""
    srv = server_factory(repo)
    n = 60
    for k in range(n):
        assert add(srv, "addsmall", k)[0] == "miss"
    kept = 0
    for k in reversed(range(n)):  # newest first; a hit does not evict, so stop at the first miss
        if add(srv, "addsmall", k)[0] != "hit":
            break
        kept += 1
    assert 1 <= kept <= 4096 // (32 + 96), f"{kept} entries kept within 4096 bytes"
    assert add(srv, "addsmall", 0)[0] == "miss", "the oldest entry was not evicted"


def test_reload_invalidates(tmp_path, server_factory):
    repo = str(tmp_path / "repo")
    cfg = dict(tm.VERSIONED_CONFIG, response_cache={"enable": True})
    tmpd = str(tmp_path / "staging")
    tm.save(tmpd, "vm", tm.versioned(2), version=1)
    shutil.copytree(os.path.join(tmpd, "vm"), os.path.join(repo, "vm"))
    with open(os.path.join(repo, "vm", "config.json"), "w") as f:
        json.dump(cfg, f)
    srv = server_factory(repo, args=["--model-control-mode", "poll", "--repository-poll-secs", "1"])

    def y():
        r = srv.infer("vm", {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]})
        assert r.status_code == 200, r.text
        return r.headers.get("X-Cache"), r.json()["outputs"][0]["data"][0]

    assert y() == ("miss", 2.0)
    assert y() == ("hit", 2.0)
    # a new file for the same version: once reloaded, the answer is the new model's, never the
    # old version's cached one
    path = os.path.join(repo, "vm", "1", "model.onnx")
    with open(path + ".tmp", "wb") as f:
        f.write(tm.versioned(3).SerializeToString())
    os.replace(path + ".tmp", path)
    wait_until(lambda: y()[1] == 3.0, timeout(20), interval=0.1, what="the reloaded version's answer")
    assert y() == ("hit", 3.0)
