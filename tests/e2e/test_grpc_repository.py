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
    # a loaded model: load is a no-op that succeeds
    load(pb.RepositoryModelLoadRequest(model_name="add_sub"), timeout=T)
    assert_rpc_error(load, pb.RepositoryModelLoadRequest(model_name="broken"), grpc.StatusCode.UNAVAILABLE,
                     "broken", "restart")
    assert_rpc_error(load, pb.RepositoryModelLoadRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    assert_rpc_error(load, pb.RepositoryModelLoadRequest(), grpc.StatusCode.INVALID_ARGUMENT, "model_name")
    r = pb.RepositoryModelLoadRequest(model_name="add_sub")
    r.parameters["config"].string_param = "{}"
    assert_rpc_error(load, r, grpc.StatusCode.UNIMPLEMENTED, "parameters")
    assert_rpc_error(unload, pb.RepositoryModelUnloadRequest(model_name="add_sub"), grpc.StatusCode.UNIMPLEMENTED,
                     "unloading")
    assert_rpc_error(unload, pb.RepositoryModelUnloadRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope")
    # still serving
    a = np.ones((1, 4), np.float32)
    g.infer.ModelInfer(infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", a)]), timeout=T)
