"""gRPC calls in the access log: one JSON line per call, in the HTTP lines' shape, with method
"gRPC", the RPC's path and the gRPC status code; the client's x-request-id is kept."""

import grpc
import numpy as np

from conftest import timeout, wait_until
from grpc_stubs import grpc_server, infer_request, pb  # noqa: F401
from test_logs import check_access_fields

T = timeout(30)
ONES = np.ones((1, 4), np.float32)
PATH = "/inference.GRPCInferenceService/"


def add_sub():
    return infer_request("add_sub", [("a", "FP32", ONES), ("b", "FP32", ONES)])


def access_line(g, rid):
    """Waits (bounded: lines are written within 50 ms) for the one access line of `rid`."""
    lines = wait_until(lambda: g.srv.access_lines(rid), timeout(10), what=f"access log line for {rid}")
    assert len(lines) == 1, f"{len(lines)} access lines for request {rid}: {lines}"
    check_access_fields(lines[0])
    return lines[0]


def test_successful_call_is_logged_with_its_model_and_sizes(grpc_server):
    req = add_sub()
    resp = grpc_server.infer.ModelInfer(req, timeout=T, metadata=[("x-request-id", "grpc-log-ok-1")])
    line = access_line(grpc_server, "grpc-log-ok-1")
    assert line["method"] == "gRPC"
    assert line["path"] == PATH + "ModelInfer"
    assert line["status"] == 0
    assert line["model"] == "add_sub" and str(line["version"]) == "1"
    assert line["bytes_in"] == req.ByteSize()
    assert line["bytes_out"] == resp.ByteSize()
    assert line["latency_us"] > 0


def test_failed_call_is_logged_with_its_grpc_status(grpc_server):
    req = infer_request("no_such_model", [("a", "FP32", ONES)])
    try:
        grpc_server.infer.ModelInfer(req, timeout=T, metadata=[("x-request-id", "grpc-log-404")])
        raise AssertionError("expected NOT_FOUND")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
    line = access_line(grpc_server, "grpc-log-404")
    assert line["status"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert line["model"] == "no_such_model" and line["version"] is None
    assert line["bytes_out"] == 0


def test_call_without_an_id_gets_one_and_unusable_ids_are_replaced(grpc_server):
    before = {l["request_id"] for l in grpc_server.srv.access_lines()}
    grpc_server.infer.ServerLive(pb.ServerLiveRequest(), timeout=T)
    grpc_server.infer.ServerLive(pb.ServerLiveRequest(), timeout=T, metadata=[("x-request-id", "x" * 129)])

    def new_live_lines():
        return [l for l in grpc_server.srv.access_lines()
                if l["request_id"] not in before and l["path"] == PATH + "ServerLive"]
    lines = wait_until(lambda: len(new_live_lines()) >= 2 and new_live_lines(), timeout(10), what="two ServerLive lines")
    assert len(lines) == 2, lines
    for line in lines:
        check_access_fields(line)
        assert len(line["request_id"]) == 32 and int(line["request_id"], 16) >= 0, line
        assert line["model"] is None and line["status"] == 0
    assert lines[0]["request_id"] != lines[1]["request_id"]


def test_stream_is_one_line_with_its_totals(grpc_server):
    reqs = [add_sub() for _ in range(3)]
    got = list(grpc_server.infer.ModelStreamInfer(iter(reqs), timeout=T,
                                                  metadata=[("x-request-id", "grpc-log-stream")]))
    assert len(got) == 3 and all(r.error_message == "" for r in got)
    line = access_line(grpc_server, "grpc-log-stream")
    assert line["path"] == PATH + "ModelStreamInfer"
    assert line["status"] == 0
    assert line["bytes_in"] == sum(r.ByteSize() for r in reqs)
    assert line["bytes_out"] == sum(r.ByteSize() for r in got)


def test_lines_are_written_when_the_server_is_idle(grpc_server):
    """A lone call's line must not wait for more traffic to fill the buffer."""
    grpc_server.infer.ServerReady(pb.ServerReadyRequest(), timeout=T, metadata=[("x-request-id", "grpc-log-idle")])
    access_line(grpc_server, "grpc-log-idle")  # no other call follows
