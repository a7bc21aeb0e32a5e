"""ModelStatistics and the model repository RPCs (index, load, unload) over gRPC."""

import os

import grpc
import numpy as np

from conftest import timeout, wait_models_settled
from grpc_stubs import (assert_rpc_error, grpc_server, grpc_server_factory, infer_request, pb)  # noqa: F401

T = timeout(30)


def test_statistics_match_rest_and_count_calls(grpc_server_factory, test_models_dir):
    g = grpc_server_factory(test_models_dir)
    a = np.ones((3, 4), np.float32)
    for _ in range(4):
        g.infer.ModelInfer(infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", a)]), timeout=T)
    assert_rpc_error(g.infer.ModelInfer, infer_request("add_sub", [("a", "FP32", a)]), grpc.StatusCode.INVALID_ARGUMENT)
    s = g.infer.ModelStatistics(pb.ModelStatisticsRequest(name="add_sub"), timeout=T).model_stats
    assert [(m.name, m.version) for m in s] == [("add_sub", "1")]
    m = s[0]
    assert m.inference_count == 12 and m.execution_count == 4
    assert m.inference_stats.success.count == 4 and m.inference_stats.success.ns > 0
    assert m.inference_stats.compute_infer.count == 4
    assert m.last_inference > 0
    assert [b.batch_size for b in m.batch_stats] == [3]
    rest = g.srv.get("/v2/models/add_sub/stats").json()["model_stats"][0]
    assert rest["inference_count"] == m.inference_count
    assert rest["inference_stats"]["success"]["count"] == m.inference_stats.success.count
    # every model; one version; every version of a model
    everything = g.infer.ModelStatistics(pb.ModelStatisticsRequest(), timeout=T).model_stats
    names = {(x.name, x.version) for x in everything}
    assert ("add_sub", "1") in names and ("versioned", "2") in names and ("versioned", "3") in names
    one = g.infer.ModelStatistics(pb.ModelStatisticsRequest(name="versioned", version="2"), timeout=T).model_stats
    assert [(x.name, x.version) for x in one] == [("versioned", "2")]
    both = g.infer.ModelStatistics(pb.ModelStatisticsRequest(name="versioned"), timeout=T).model_stats
    assert [x.version for x in both] == ["2", "3"]
    assert_rpc_error(g.infer.ModelStatistics, pb.ModelStatisticsRequest(name="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    assert_rpc_error(g.infer.ModelStatistics, pb.ModelStatisticsRequest(name="versioned", version="1"),
                     grpc.StatusCode.NOT_FOUND, "version 1")
    assert_rpc_error(g.infer.ModelStatistics, pb.ModelStatisticsRequest(version="1"),
                     grpc.StatusCode.INVALID_ARGUMENT, "model name")


def test_repository_index(grpc_server_factory, broken_models_dir):
    g = grpc_server_factory(broken_models_dir, wait_ready=False)
    wait_models_settled(g.srv)
    idx = g.infer.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=T).models
    by = {(m.name, m.version): m for m in idx}
    assert by[("add_sub", "1")].state == "READY" and by[("add_sub", "1")].reason == ""
    assert by[("broken", "1")].state == "UNAVAILABLE" and by[("broken", "1")].reason
    assert ("versioned", "1") not in by and by[("versioned", "3")].state == "READY"
    assert [m.name for m in idx] == sorted(m.name for m in idx)
    ready = g.infer.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=T).models
    assert {(m.name, m.version) for m in ready} == set(by) - {("broken", "1")}
    base = os.path.basename(broken_models_dir.rstrip("/"))
    assert len(g.infer.RepositoryIndex(pb.RepositoryIndexRequest(repository_name=base), timeout=T).models) == len(idx)
    assert_rpc_error(g.infer.RepositoryIndex, pb.RepositoryIndexRequest(repository_name="other"),
                     grpc.StatusCode.NOT_FOUND, "no repository 'other'")


def test_repository_load_and_unload(grpc_server_factory, broken_models_dir):
    g = grpc_server_factory(broken_models_dir, wait_ready=False)
    wait_models_settled(g.srv)
    load, unload = g.infer.RepositoryModelLoad, g.infer.RepositoryModelUnload
    # a loaded model whose files have not changed: load succeeds and changes nothing
    load(pb.RepositoryModelLoadRequest(model_name="add_sub"), timeout=T)
    # a model that cannot load: the reason comes back
    assert_rpc_error(load, pb.RepositoryModelLoadRequest(model_name="broken"), grpc.StatusCode.UNAVAILABLE,
                     "broken", "not ready")
    assert_rpc_error(load, pb.RepositoryModelLoadRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    assert_rpc_error(load, pb.RepositoryModelLoadRequest(), grpc.StatusCode.INVALID_ARGUMENT, "model_name")
    r = pb.RepositoryModelLoadRequest(model_name="add_sub")
    r.parameters["config"].string_param = "{\"max_batch_sise\": 8}"
    assert_rpc_error(load, r, grpc.StatusCode.INVALID_ARGUMENT, "max_batch_sise")
    r = pb.RepositoryModelLoadRequest(model_name="add_sub")
    r.parameters["other"].string_param = "x"
    assert_rpc_error(load, r, grpc.StatusCode.INVALID_ARGUMENT, "other")
    assert_rpc_error(unload, pb.RepositoryModelUnloadRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    a = np.ones((1, 4), np.float32)
    g.infer.ModelInfer(infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", a)]), timeout=T)
    # unload: no longer routed, not ready, listed with the reason
    u = pb.RepositoryModelUnloadRequest(model_name="add_sub")
    u.parameters["unload_dependents"].bool_param = True
    unload(u, timeout=T)
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="add_sub"), timeout=T).ready is False
    assert_rpc_error(g.infer.ModelInfer, infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", a)]),
                     grpc.StatusCode.UNAVAILABLE, "add_sub", "unloaded")
    idx = {m.name: m for m in g.infer.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=T).models if m.name == "add_sub"}
    assert idx["add_sub"].state == "UNAVAILABLE" and "unloaded" in idx["add_sub"].reason
    # and back
    load(pb.RepositoryModelLoadRequest(model_name="add_sub"), timeout=T)
    assert g.infer.ModelReady(pb.ModelReadyRequest(name="add_sub"), timeout=T).ready is True
    g.infer.ModelInfer(infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", a)]), timeout=T)
    meta = g.infer.ServerMetadata(pb.ServerMetadataRequest(), timeout=T)
    assert "model_repository" in meta.extensions
