"""docs/model-repository.md: config fields, version policies, folders that are not versions, and
configs that make a model fail to load (with a reason naming the field) while the others serve."""

import json
import os
import re
import threading

import pytest
import requests

import make_test_models as tm
from conftest import (assert_error, infer_ok, read_http_response, raw_connect, running_server, timeout,
                      wait_models_settled)

ADD_SUB_CONFIG = {
    "max_batch_size": 8,
    "inputs": [{"name": "a", "datatype": "FP32", "dims": [4]}, {"name": "b", "datatype": "FP32", "dims": [4]}],
    "outputs": [{"name": "sum", "datatype": "FP32", "dims": [4]}, {"name": "diff", "datatype": "FP32", "dims": [4]}],
}


def with_cfg(**changes):
    cfg = json.loads(json.dumps(ADD_SUB_CONFIG))
    cfg.update(changes)
    return cfg


# name -> (config dict or raw config text, the field the failure reason must name)
BAD_CONFIGS = {
    "bad_unknown_field": (with_cfg(max_batch_sise=8), "max_batch_sise"),
    "bad_wrong_type": (with_cfg(max_batch_size="8"), "max_batch_size"),
    "bad_negative_batch": (with_cfg(max_batch_size=-1), "max_batch_size"),
    "bad_input_name": (with_cfg(inputs=ADD_SUB_CONFIG["inputs"] + [{"name": "nope_in", "datatype": "FP32", "dims": [4]}]),
                       "nope_in"),
    "bad_output_name": (with_cfg(outputs=ADD_SUB_CONFIG["outputs"] + [{"name": "nope_out", "datatype": "FP32", "dims": [4]}]),
                        "nope_out"),
    "bad_datatype": (with_cfg(inputs=[{"name": "a", "datatype": "FP64", "dims": [4]},
                                      {"name": "b", "datatype": "FP32", "dims": [4]}]), "a"),
    "bad_datatype_name": (with_cfg(inputs=[{"name": "a", "datatype": "FLOAT32", "dims": [4]},
                                           {"name": "b", "datatype": "FP32", "dims": [4]}]), "datatype"),
    "bad_dims": (with_cfg(inputs=[{"name": "a", "datatype": "FP32", "dims": [5]},
                                  {"name": "b", "datatype": "FP32", "dims": [4]}]), "a"),
    "bad_backend": (with_cfg(backend="tensorflow"), "backend"),
    "bad_policy": (with_cfg(version_policy={"latest": 0}), "version_policy"),
    "bad_policy_kind": (with_cfg(version_policy={"newest": 1}), "version_policy"),
    "bad_instance_count": (with_cfg(instance_count=0), "instance_count"),
    "bad_threads": (with_cfg(onnxruntime={"intra_op_threads": -2, "inter_op_threads": 1}), "intra_op_threads"),
    "bad_allow_nan": (with_cfg(allow_nan="yes"), "allow_nan"),
    "bad_json": ('{"max_batch_size": 8,, }', "config.json"),
    "bad_top_level": ("[1, 2, 3]", "config"),
}
DESCRIPTION = "Model for the e2e suite \u2713 \"quoted\""


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("repo_variants"))
    add_model, _ = tm.add_sub()
    # Policies over the three `versioned` versions.
    for name, policy in (("policy_all", {"all": True}), ("policy_specific", {"specific": [1, 3]}),
                         ("policy_latest", None)):
        cfg = dict(tm.VERSIONED_CONFIG)
        if policy is None:
            cfg.pop("version_policy")  # default {"latest": 1}
        else:
            cfg["version_policy"] = policy
        for v in (1, 2, 3):
            tm.save(d, name, tm.versioned(v), version=v, config=cfg)
    # A model folder with things that are not versions.
    tm.save(d, "with_extras", add_model, config=ADD_SUB_CONFIG)
    with open(os.path.join(d, "with_extras", "README.md"), "w") as f:
        f.write("# a model card\n")
    for junk in ("notes", "v2", "2a", "latest"):
        os.makedirs(os.path.join(d, "with_extras", junk), exist_ok=True)
    with open(os.path.join(d, "with_extras", "v2", "model.onnx"), "wb") as f:
        f.write(b"not a model, and not a version folder either")
    # Config fields that change behaviour.
    nan_model, _ = tm.nan_ok()
    tm.save(d, "described", nan_model, config={"description": DESCRIPTION, "allow_nan": False})
    tm.save(d, "every_field", add_model, config=with_cfg(
        backend="onnxruntime", class_labels=["x", "y"], version_policy={"latest": 1}, instance_count=2,
        onnxruntime={"intra_op_threads": 0, "inter_op_threads": 1}, allow_nan=True, description="all fields"))
    slow_model, _ = tm.slow()
    tm.save(d, "slow_one", slow_model, config={"instance_count": 1, "onnxruntime": {"intra_op_threads": 1}})
    tm.save(d, "unbatched", add_model, config={
        "max_batch_size": 0,
        "inputs": [{"name": "a", "datatype": "FP32", "dims": [-1, 4]}, {"name": "b", "datatype": "FP32", "dims": [-1, 4]}]})
    # Configs that must fail.
    for name, (cfg, _) in BAD_CONFIGS.items():
        tm.save(d, name, add_model)
        with open(os.path.join(d, name, "config.json"), "w") as f:
            f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
    # A version folder without a model file.
    os.makedirs(os.path.join(d, "no_model_file", "1"))
    return d


@pytest.fixture(scope="module")
def repo_server(repo_dir, logs_dir):
    with running_server(repo_dir, workdir=logs_dir, wait_ready=False) as srv:
        wait_models_settled(srv, expect=list(BAD_CONFIGS) + ["policy_all", "with_extras"])
        yield srv


def health_models(srv):
    return {(m["name"], str(m["version"])): m for m in srv.get("/health").json()["models"]}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_unavailable_with_reason_naming_field(repo_server, name):
    field = BAD_CONFIGS[name][1]
    models = health_models(repo_server)
    entries = [m for (n, _), m in models.items() if n == name]
    assert entries, f"{name} missing from /health"
    for m in entries:
        assert m["state"] == "UNAVAILABLE", m
        reason = m.get("reason")
        assert isinstance(reason, str) and reason.strip(), m
        if len(field) == 1:  # a one-letter tensor name: look for it as a word
            assert re.search(r"(?<![A-Za-z_])%s(?![A-Za-z_])" % field, reason), (
                f"reason {reason!r} does not name {field!r}")
        else:
            assert field.lower() in reason.lower(), f"reason {reason!r} does not name {field!r}"
    r = repo_server.get(f"/v2/models/{name}/ready")
    assert r.status_code == 503
    assert r.json()["ready"] is False
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                       {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    assert_error(repo_server.infer(name, body), 503)


def test_version_folder_without_model_file(repo_server):
    entries = [m for (n, _), m in health_models(repo_server).items() if n == "no_model_file"]
    assert entries and all(m["state"] == "UNAVAILABLE" and m.get("reason") for m in entries), entries


def test_server_not_ready_but_good_models_serve(repo_server):
    r = repo_server.get("/v2/health/ready")
    assert r.status_code == 503
    _, outs, _ = infer_ok(repo_server, "with_extras", [
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
        {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}])
    assert outs["sum"]["value"] == [2, 3, 4, 5]


@pytest.mark.parametrize("model,served,newest", [
    ("policy_all", ["1", "2", "3"], "3"),
    ("policy_specific", ["1", "3"], "3"),
    ("policy_latest", ["3"], "3"),
])
def test_version_policies(repo_server, model, served, newest):
    meta = repo_server.get(f"/v2/models/{model}").json()
    assert sorted(meta["versions"], key=int) == served
    for v in ("1", "2", "3"):
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}]}
        r = repo_server.infer(model, body, version=v)
        if v in served:
            assert r.status_code == 200, (v, r.content)
            assert r.json()["model_version"] == v
            assert r.json()["outputs"][0]["data"] == [2.0 * int(v)]
        else:
            assert_error(r, 404)
    header, outs, _ = infer_ok(repo_server, model, [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}])
    assert header["model_version"] == newest


def test_folders_that_are_not_versions_are_ignored(repo_server):
    meta = repo_server.get("/v2/models/with_extras").json()
    assert meta["versions"] == ["1"]
    versions = sorted(v for (n, v) in health_models(repo_server) if n == "with_extras")
    assert versions == ["1"]
    assert health_models(repo_server)[("with_extras", "1")]["state"] == "READY"


def test_description_in_metadata(repo_server):
    r = repo_server.get("/v2/models/described")
    assert r.status_code == 200
    assert r.json()["description"] == DESCRIPTION, r.text


def test_allow_nan_false_in_config(repo_server):
    import numpy as np
    from conftest import build_request
    body, hdrs = build_request([{"name": "x", "datatype": "FP32", "shape": [1, 2],
                                 "data": np.array([[np.nan, 1]], np.float32), "binary": True}])
    assert_error(repo_server.infer("described", body, headers=hdrs), 400)


def test_every_field_config_serves(repo_server):
    assert health_models(repo_server)[("every_field", "1")]["state"] == "READY"
    meta = repo_server.get("/v2/models/every_field").json()
    assert {i["name"]: i["shape"] for i in meta["inputs"]} == {"a": [-1, 4], "b": [-1, 4]}
    _, outs, _ = infer_ok(repo_server, "every_field", [
        {"name": "a", "datatype": "FP32", "shape": [2, 4], "data": [[1, 2, 3, 4], [5, 6, 7, 8]]},
        {"name": "b", "datatype": "FP32", "shape": [2, 4], "data": [[1, 1, 1, 1], [2, 2, 2, 2]]}])
    assert outs["diff"]["value"] == [0, 1, 2, 3, 3, 4, 5, 6]


def test_unbatched_config_shapes(repo_server):
    meta = repo_server.get("/v2/models/unbatched").json()
    assert {i["name"]: i["shape"] for i in meta["inputs"]} == {"a": [-1, 4], "b": [-1, 4]}
    _, outs, _ = infer_ok(repo_server, "unbatched", [
        {"name": "a", "datatype": "FP32", "shape": [9, 4], "data": [1.0] * 36},
        {"name": "b", "datatype": "FP32", "shape": [9, 4], "data": [2.0] * 36}])
    assert outs["sum"]["shape"] == [9, 4]  # no max_batch_size, so 9 rows are fine


def test_instance_count_one_runs_one_at_a_time(repo_server):
    """instance_count 1: "how many copies of the model run at once". Of four concurrent requests
    to a model whose run takes about a second, each waits in the queue for the runs before it.

    The version's statistics say so whatever the machine's load: with one instance the queue
    times add up to about c + 2c + 3c for runs of c (1.5 times the total compute time); with two
    runs at once (the default two workers, were instance_count ignored) to about 2c (0.5 times),
    with four to none. Comparing wall time against a run timed alone instead (this test once
    did) fails whenever the load changes between the two measurements."""
    x = [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]
    infer_ok(repo_server, "slow_one", x)  # the first run pays for allocations

    def totals():
        st = repo_server.get("/v2/models/slow_one/stats").json()["model_stats"][0]
        i = st["inference_stats"]
        return st["execution_count"], i["queue"]["ns"], i["compute_infer"]["ns"]

    before = totals()
    body = json.dumps({"inputs": x}).encode()
    req = (b"POST /v2/models/slow_one/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    socks = []
    for _ in range(4):
        s = raw_connect(repo_server.port)
        s.sendall(req)
        socks.append(s)
    try:
        for s in socks:
            status, _, _ = read_http_response(s, seconds=timeout(120))
            assert status == 200
    finally:
        for s in socks:
            s.close()
    after = totals()
    runs, queued, compute = (a - b for a, b in zip(after, before))
    assert runs == 4, (before, after)
    assert queued > compute, (f"4 requests queued {queued / 1e9:.2f}s in all for {compute / 1e9:.2f}s of runs: "
                              "they ran side by side")
