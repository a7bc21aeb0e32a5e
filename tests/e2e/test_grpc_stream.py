"""ModelStreamInfer: a bidirectional stream answers each request once, in the order of the
requests, errors included (the stream goes on); many streams at once; clients that leave."""

import queue
import threading
import time

import grpc
import numpy as np

from conftest import timeout
from grpc_stubs import grpc_server, grpc_server_factory, infer_request, output_arrays, pb  # noqa: F401

T = timeout(60)


def add_sub_req(i, rows=1, raw=True):
    a = np.full((rows, 4), i, np.float32)
    return infer_request("add_sub", [("a", "FP32", a), ("b", "FP32", np.ones((rows, 4), np.float32))],
                         request_id=str(i), raw=raw)


def check_add_sub(resp, i, rows=1):
    assert resp.error_message == "", resp.error_message
    r = resp.infer_response
    assert r.id == str(i) and r.model_name == "add_sub" and r.model_version == "1"
    outs = output_arrays(r)
    np.testing.assert_array_equal(outs["sum"][1], np.full((rows, 4), i + 1, np.float32))
    np.testing.assert_array_equal(outs["diff"][1], np.full((rows, 4), i - 1, np.float32))


def test_stream_in_order(grpc_server):
    n = 200
    reqs = [add_sub_req(i, rows=1 + i % 8, raw=i % 3 != 0) for i in range(n)]
    got = list(grpc_server.infer.ModelStreamInfer(iter(reqs), timeout=T))
    assert len(got) == n
    for i, resp in enumerate(got):
        check_add_sub(resp, i, rows=1 + i % 8)


def test_stream_errors_in_place_and_stream_goes_on(grpc_server):
    reqs = []
    for i in range(30):
        if i % 5 == 2:
            reqs.append(infer_request("nope", [("a", "FP32", np.ones((1, 4), np.float32))], request_id=str(i)))
        elif i % 5 == 4:
            r = add_sub_req(i)
            r.raw_input_contents[0] = b"short"
            reqs.append(r)
        else:
            reqs.append(add_sub_req(i))
    got = list(grpc_server.infer.ModelStreamInfer(iter(reqs), timeout=T))
    assert len(got) == len(reqs)
    for i, resp in enumerate(got):
        if i % 5 == 2:
            assert "model 'nope' not found" in resp.error_message
            assert resp.infer_response.id == str(i)
        elif i % 5 == 4:
            assert "raw_input_contents of input 'a'" in resp.error_message
            assert resp.infer_response.id == str(i)
            assert resp.infer_response.model_name == "add_sub"
        else:
            check_add_sub(resp, i)


def test_stream_order_with_slow_and_fast_requests(grpc_server):
    """A slow request ahead of fast ones: the fast ones finish first but are answered after."""
    slow = infer_request("slow", [("x", "FP32", np.full((1, 2), 7, np.float32))], request_id="slow")
    reqs = [add_sub_req(0), slow] + [add_sub_req(i) for i in range(1, 20)]
    got = list(grpc_server.infer.ModelStreamInfer(iter(reqs), timeout=T))
    assert [r.infer_response.id for r in got] == [r.id for r in reqs]
    assert got[1].error_message == ""
    np.testing.assert_array_equal(output_arrays(got[1].infer_response)["y"][1], np.full((1, 2), 7, np.float32))


def test_stream_interactive_one_at_a_time(grpc_server):
    """Request, wait for its response, next request: a stream works as a conversation."""
    q = queue.Queue()

    def gen():
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    it = grpc_server.infer.ModelStreamInfer(gen(), timeout=T)
    for i in range(10):
        q.put(add_sub_req(i))
        check_add_sub(next(it), i)
    q.put(None)
    assert list(it) == []


def test_empty_stream(grpc_server):
    assert list(grpc_server.infer.ModelStreamInfer(iter([]), timeout=T)) == []


def test_many_streams_at_once(grpc_server):
    errors = []

    def run(k):
        try:
            reqs = [add_sub_req(k * 1000 + i) for i in range(40)]
            got = list(grpc_server.infer.ModelStreamInfer(iter(reqs), timeout=T))
            assert [r.infer_response.id for r in got] == [str(k * 1000 + i) for i in range(40)]
            for i, r in enumerate(got):
                check_add_sub(r, k * 1000 + i)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    assert not errors, errors[:3]


def test_client_cancels_mid_stream(grpc_server):
    """A client that leaves with requests in flight: the server drops them and goes on."""
    slow = infer_request("slow", [("x", "FP32", np.ones((1, 2), np.float32))])

    def gen():
        yield add_sub_req(1)
        for _ in range(3):
            yield slow
        time.sleep(10)  # never half-closes on its own

    it = grpc_server.infer.ModelStreamInfer(gen(), timeout=T)
    check_add_sub(next(it), 1)
    it.cancel()
    assert grpc_server.infer.ServerLive(pb.ServerLiveRequest(), timeout=T).live
    got = list(grpc_server.infer.ModelStreamInfer(iter([add_sub_req(5)]), timeout=T))
    check_add_sub(got[0], 5)


def test_stream_deadline(grpc_server):
    """The stream's deadline covers every request on it."""
    slow = infer_request("slow", [("x", "FP32", np.ones((1, 2), np.float32))])

    def gen():
        yield add_sub_req(1)
        yield slow
        yield slow
        time.sleep(5)

    it = grpc_server.infer.ModelStreamInfer(gen(), timeout=0.5 * timeout(1))
    got = []
    try:
        for r in it:
            got.append(r)
        raise AssertionError("the stream should have ended with DEADLINE_EXCEEDED")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert got and got[0].infer_response.id == "1"
    assert grpc_server.infer.ServerLive(pb.ServerLiveRequest(), timeout=T).live
