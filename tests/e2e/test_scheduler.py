"""The scheduler, end to end: dynamic batching (every request gets exactly its own rows back),
statistics, queue limits (503 + Retry-After), deadlines (504, never run), priorities, requests
dropped when their client leaves, a failing batch failing only its own requests, a stress run,
and config errors for the scheduling keys.

Timing-based checks use the test models' slow_batched (one run ~300 ms whatever its rows,
max_batch_size 4, instance_count 1): a request of 4 rows is a batch of its own, so while one
runs, the others wait in the queue, and the order they finish in is the order they ran in.
Counts that prove a request never ran come from the statistics endpoint of a fresh server.
"""

import asyncio
import json
import os
import random
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import requests

from conftest import (SANITIZED, assert_error, pending_requests, build_request, parse_response, raw_connect, read_http_response,
                      timeout, wait_models_settled, wait_until)

# --------------------------------------------------------------------------------------------
# helpers


def stats_of(srv, model, version="1"):
    r = srv.get(f"/v2/models/{model}/versions/{version}/stats")
    assert r.status_code == 200, f"stats of {model}: {r.status_code} {r.content[:300]!r}"
    entries = r.json()["model_stats"]
    assert len(entries) == 1, entries
    return entries[0]


def check_counts_add_up(st):
    """Invariants of one version's statistics."""
    inf = st["inference_stats"]
    batches = st["batch_stats"]
    assert st["execution_count"] == sum(b["compute_infer"]["count"] for b in batches), st
    assert st["inference_count"] == sum(b["batch_size"] * b["compute_infer"]["count"] for b in batches), st
    for key in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert inf[key]["count"] == inf["success"]["count"], (key, st)
    for b in batches:
        assert b["compute_infer"]["count"] == b["compute_input"]["count"] == b["compute_output"]["count"], b


def post_raw(srv, model, body_bytes, headers):
    """Sends one infer request on a fresh socket; returns the socket (response unread)."""
    head = f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: inferd\r\nContent-Length: {len(body_bytes)}\r\n"
    for k, v in headers.items():
        head += f"{k}: {v}\r\n"
    s = raw_connect(srv.port)
    s.sendall(head.encode() + b"\r\n" + body_bytes)
    return s


def slow_body(x, rows=4, parameters=None):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 1], "data": [float(x)] * rows}]}
    if parameters:
        body["parameters"] = parameters
    return body


class Timed(threading.Thread):
    """Sends one request on its own connection in a thread; records status, body and when it was
    answered (time.monotonic())."""

    def __init__(self, srv, model, body, headers=None):
        super().__init__(daemon=True)
        self.srv, self.model, self.body, self.headers = srv, model, body, headers
        self.status = None
        self.resp = None
        self.done_at = None
        self.sent_at = None
        self.error = None

    def run(self):
        try:
            self.sent_at = time.monotonic()
            self.resp = requests.post(self.srv.url(f"/v2/models/{self.model}/infer"), json=self.body,
                                      headers=self.headers, timeout=timeout(60))
            self.status = self.resp.status_code
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        self.done_at = time.monotonic()

    def result(self):
        self.join(timeout(90))
        assert not self.is_alive(), "request thread did not finish"
        assert self.error is None, f"request failed: {self.error!r}"
        return self


def start_blocker(srv, x=1.0):
    """A slow_batched request that runs at once and keeps the one instance busy ~300 ms.
    Returns once the server holds it: a request sent after it queues behind it, however slow
    the machine (a fixed sleep was not always enough for the thread to send it under load)."""
    before = pending_requests(srv, "slow_batched")
    t = Timed(srv, "slow_batched", slow_body(x))
    t.start()
    wait_until(lambda: pending_requests(srv, "slow_batched") > before or t.done_at is not None, timeout(30),
               what="the blocker to reach the model")
    return t


def copy_model(src_repo, name, dst_repo, new_name=None, config_update=None, config=None):
    """Copies model `name` from src_repo into dst_repo (as new_name), with its config changed."""
    new_name = new_name or name
    shutil.copytree(os.path.join(src_repo, name), os.path.join(dst_repo, new_name))
    path = os.path.join(dst_repo, new_name, "config.json")
    cfg = {}
    if os.path.exists(path):
        with open(path) as f:
            cfg = json.load(f)
    if config is not None:
        cfg = config
    if config_update:
        cfg.update(config_update)
    with open(path, "w") as f:
        json.dump(cfg, f)


# --------------------------------------------------------------------------------------------
# batching: every response equals the request run alone


def batched_request(rng, i, binary):
    rows = int(rng.integers(1, 9))
    # integers and halves: sums and differences are exact in FP32, and every row differs
    a = (np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) + i * 100).astype(np.float32)
    b = (rng.integers(-50, 50, size=(rows, 4)) / 2).astype(np.float32)
    inputs = [{"name": "a", "datatype": "FP32", "shape": [rows, 4], "data": a, "binary": binary},
              {"name": "b", "datatype": "FP32", "shape": [rows, 4], "data": b, "binary": binary}]
    params = {"binary_data_output": True} if binary and i % 2 else None
    outputs = [{"name": "diff"}] if i % 5 == 0 else None  # some ask for one output only
    return build_request(inputs, outputs=outputs, parameters=params), a, b


def batched_bytes_request(rng, i):
    rows = int(rng.integers(1, 9))
    words = ["", "a", "héllo", "x" * 40, "ünïcode ✓", "tab\tand space", "0"]
    s = [[f"{i}:{r}:{words[(i + r) % len(words)]}", words[(i * 3 + r) % len(words)]] for r in range(rows)]
    x = (np.arange(rows * 3, dtype=np.int32).reshape(rows, 3) + i * 10).astype(np.int32)
    inputs = [{"name": "s", "datatype": "BYTES", "shape": [rows, 2], "data": s, "binary": i % 3 == 0},
              {"name": "x", "datatype": "INT32", "shape": [rows, 3], "data": x}]
    params = {"binary_data_output": True} if i % 4 == 0 else None
    return build_request(inputs, parameters=params), s, x


def normalise(outs):
    """{name: (shape, flat list)} of parsed outputs, binary or JSON alike."""
    res = {}
    for name, o in outs.items():
        v = o["value"]
        if isinstance(v, np.ndarray):
            flat = v.reshape(-1).tolist()
            flat = [e.decode("utf-8") if isinstance(e, bytes) else e for e in flat]
        else:
            flat = list(v)
        res[name] = (list(o["shape"]), o["datatype"], flat)
    return res


def run_concurrently(srv, model, bodies, threads):
    """Sends every (body, headers) from `threads` threads with keep-alive sessions; returns the
    responses in order."""
    results = [None] * len(bodies)
    next_i = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        sess = requests.Session()
        try:
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= len(bodies):
                    return
                body, headers = bodies[i]
                results[i] = sess.post(srv.url(f"/v2/models/{model}/infer"), data=body, headers=headers,
                                       timeout=timeout(60))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            sess.close()

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout(180))
    assert not any(t.is_alive() for t in ts), "client threads did not finish"
    assert not errors, errors[:3]
    return results


@pytest.mark.parametrize("model", ["batched", "batched_bytes"])
def test_concurrent_mixed_sizes_equal_alone(server_factory, test_models_dir, model):
    srv = server_factory(test_models_dir)
    rng = np.random.default_rng(4)
    n = 120 if SANITIZED else 240
    reqs = []
    for i in range(n):
        if model == "batched":
            (body, headers), a, b = batched_request(rng, i, binary=i % 3 == 0)
            expect = {"sum": (a + b).reshape(-1).tolist(), "diff": (a - b).reshape(-1).tolist()}
            if i % 5 == 0:
                del expect["sum"]
        else:
            (body, headers), s, x = batched_bytes_request(rng, i)
            expect = {"s_out": [e for row in s for e in row], "x2": (x * 2).reshape(-1).tolist()}
        reqs.append((body, headers, expect))
    rows_total = 0

    # alone: one at a time
    alone = []
    for body, headers, expect in reqs:
        r = srv.infer(model, body, headers=headers)
        assert r.status_code == 200, r.content[:300]
        got = normalise(parse_response(r)[1])
        assert {k: v[2] for k, v in got.items()} == expect
        alone.append(got)
        rows_total += got[next(iter(got))][0][0]
    before = stats_of(srv, model)
    assert before["execution_count"] == n, "run alone, each request is one execution"

    # together: 16 threads, requests of 1..8 rows
    results = run_concurrently(srv, model, [(b, h) for b, h, _ in reqs], threads=16)
    for i, r in enumerate(results):
        assert r.status_code == 200, f"request {i}: {r.status_code} {r.content[:300]!r}"
        got = normalise(parse_response(r)[1])
        assert got == alone[i], f"request {i}: batched response differs from the request run alone"

    after = stats_of(srv, model)
    check_counts_add_up(after)
    inf = after["inference_stats"]
    assert inf["success"]["count"] == 2 * n
    assert inf["fail"]["count"] == 0
    assert after["inference_count"] == 2 * rows_total
    executions = after["execution_count"] - before["execution_count"]
    assert executions < n, f"{n} concurrent requests ran in {executions} executions: no batching"
    sizes = [b["batch_size"] for b in after["batch_stats"]]
    assert max(sizes) <= 8, sizes


def test_single_row_requests_form_batches(server_factory, test_models_dir):
    """Only batching can make an execution of more than one row out of one-row requests."""
    srv = server_factory(test_models_dir)
    bodies = []
    for i in range(64):
        body, headers = build_request([{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [[i, i, i, i]]},
                                       {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [[1, 2, 3, 4]]}])
        bodies.append((body, headers))
    results = run_concurrently(srv, "batched", bodies, threads=16)
    for i, r in enumerate(results):
        assert r.status_code == 200
        out = normalise(parse_response(r)[1])
        assert out["sum"][2] == [i + 1, i + 2, i + 3, i + 4]
    st = stats_of(srv, "batched")
    check_counts_add_up(st)
    assert st["inference_count"] == 64
    assert st["inference_stats"]["success"]["count"] == 64
    assert any(b["batch_size"] > 1 for b in st["batch_stats"]), st["batch_stats"]
    assert st["execution_count"] < 64


def test_max_queue_delay_and_preferred_batch_size(server_factory, test_models_dir, tmp_path):
    """A lone request waits max_queue_delay_us for company; a queue that fills a preferred batch
    size runs at once without waiting the delay."""
    repo = str(tmp_path)
    cfg = {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 400000, "preferred_batch_sizes": [4]}}
    copy_model(test_models_dir, "batched", repo, config_update=cfg)
    srv = server_factory(repo)
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                       {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}
    t0 = time.monotonic()
    r = srv.infer("batched", body)
    alone = time.monotonic() - t0
    assert r.status_code == 200
    assert alone >= 0.39, f"a lone request was answered after {alone * 1000:.0f} ms, before the 400 ms delay"
    assert alone < timeout(3)

    # four one-row requests reach the preferred size 4: they run together, long before 400 ms
    barrier = threading.Barrier(4)
    lat = [None] * 4

    def one(i):
        sess = requests.Session()
        sess.get(srv.url("/v2/health/live"))  # connect first
        barrier.wait()
        t = time.monotonic()
        rr = sess.post(srv.url("/v2/models/batched/infer"), json=body, timeout=timeout(30))
        lat[i] = (rr.status_code, time.monotonic() - t)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout(30))
    assert all(l is not None and l[0] == 200 for l in lat), lat
    assert max(l[1] for l in lat) < 0.3, f"a full preferred batch still waited: {lat}"
    st = stats_of(srv, "batched")
    assert [b["batch_size"] for b in st["batch_stats"]] == [1, 4], st["batch_stats"]


# --------------------------------------------------------------------------------------------
# statistics


def test_stats_endpoints_and_extensions(server):
    meta = server.get("/v2").json()
    assert "statistics" in meta["extensions"], meta
    every = server.get("/v2/models/stats")
    assert every.status_code == 200
    names = {(m["name"], m["version"]) for m in every.json()["model_stats"]}
    for key in [("batched", "1"), ("slow_batched", "1"), ("versioned", "2"), ("versioned", "3"), ("add_sub", "1")]:
        assert key in names, names
    one = server.get("/v2/models/versioned/stats").json()["model_stats"]
    assert {m["version"] for m in one} >= {"2", "3"}
    v = server.get("/v2/models/versioned/versions/3/stats").json()["model_stats"]
    assert [(m["name"], m["version"]) for m in v] == [("versioned", "3")]
    m = v[0]
    for key in ("last_inference", "inference_count", "execution_count", "inference_stats", "batch_stats"):
        assert key in m, m
    for key in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output"):
        assert set(m["inference_stats"][key]) == {"count", "ns"}, m["inference_stats"]
    assert_error(server.get("/v2/models/nope/stats"), 404, "nope")
    assert_error(server.get("/v2/models/versioned/versions/9/stats"), 404)


def test_stats_count_a_request_and_its_times(server_factory, test_models_dir):
    srv = server_factory(test_models_dir)
    st0 = stats_of(srv, "add_sub")
    assert st0["execution_count"] == 0 and st0["last_inference"] == 0 and st0["batch_stats"] == []
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [3, 4], "data": [1.0] * 12},
                       {"name": "b", "datatype": "FP32", "shape": [3, 4], "data": [2.0] * 12}]}
    assert srv.infer("add_sub", body).status_code == 200
    st = stats_of(srv, "add_sub")
    check_counts_add_up(st)
    assert st["inference_count"] == 3 and st["execution_count"] == 1
    assert st["inference_stats"]["success"]["count"] == 1
    assert st["inference_stats"]["success"]["ns"] >= st["inference_stats"]["compute_infer"]["ns"] > 0
    assert [b["batch_size"] for b in st["batch_stats"]] == [3]
    assert abs(st["last_inference"] / 1000 - time.time()) < 60


# --------------------------------------------------------------------------------------------
# overload: queue full


def test_queue_full_503_with_retry_after(server_factory, test_models_dir):
    """slow_queue: max_queue_size 2, one instance. Of 6 requests sent at once, at most one runs
    and two wait; the rest are refused at once with 503 + Retry-After."""
    srv = server_factory(test_models_dir)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]}]}
    ts = [Timed(srv, "slow_queue", body) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.result()
    ok = [t for t in ts if t.status == 200]
    full = [t for t in ts if t.status == 503]
    assert len(ok) + len(full) == 6, [(t.status, t.resp.content[:200]) for t in ts]
    # all six arrive within a run (~300 ms): the queue takes 2, a free instance maybe one more
    assert len(full) >= 3 and len(ok) >= 2, [(t.status, t.resp.content[:200]) for t in ts]
    first_ok = min(t.done_at for t in ok)
    for t in full:
        assert t.resp.headers.get("Retry-After", "").strip().isdigit(), t.resp.headers
        msg = assert_error(t.resp, 503, "full", "slow_queue")
        assert t.done_at < first_ok, f"a 503 for a full queue waited for a run: {msg}"
    for t in ok:
        assert t.resp.json()["outputs"][0]["data"] == [1.5, 2.5]
    st = stats_of(srv, "slow")  # another model: untouched
    assert st["execution_count"] == 0
    st = stats_of(srv, "slow_queue")
    assert st["inference_stats"]["fail"]["count"] == len(full)
    assert st["execution_count"] == len(ok)


def test_default_queue_size_is_1024(server_factory, test_models_dir):
    """Without max_queue_size a version queues 1024 requests; the next ones get 503."""
    srv = server_factory(test_models_dir)
    blocker = start_blocker(srv)
    n = 1030
    body = json.dumps(slow_body(2.0, parameters={"timeout": 1_500_000})).encode()
    socks = []
    try:
        for _ in range(n):
            socks.append(post_raw(srv, "slow_batched", body, {"Content-Type": "application/json"}))
        statuses = []
        for s in socks:
            status, headers, resp = read_http_response(s, timeout(60))
            statuses.append(status)
            if status == 503:
                assert "retry-after" in headers
    finally:
        for s in socks:
            s.close()
    assert blocker.result().status == 200
    full = statuses.count(503)
    # the blocker runs; at most 1024 wait; whatever else was sent before a run freed a place is refused
    assert 1 <= full <= n - 1024, f"{full} of {n} refused"
    assert statuses.count(503) + statuses.count(504) + statuses.count(200) == n, set(statuses)


# --------------------------------------------------------------------------------------------
# deadlines


@pytest.mark.parametrize("how", ["parameter", "header"])
def test_deadline_passed_in_queue_504_never_runs(server_factory, test_models_dir, how):
    srv = server_factory(test_models_dir)
    blocker = start_blocker(srv)
    if how == "parameter":
        late = Timed(srv, "slow_batched", slow_body(2.0, parameters={"timeout": 50_000}))
    else:
        late = Timed(srv, "slow_batched", slow_body(2.0), headers={"X-Request-Timeout-Ms": "50"})
    late.start()
    assert blocker.result().status == 200
    late.result()
    assert_error(late.resp, 504, "deadline")
    # the timed-out request never ran: one execution (the blocker), four rows
    time.sleep(0.5)  # had it run, it would be counted by now (a run is ~300 ms)
    st = stats_of(srv, "slow_batched")
    check_counts_add_up(st)
    assert st["execution_count"] == 1 and st["inference_count"] == 4, st
    assert st["inference_stats"]["success"]["count"] == 1
    assert st["inference_stats"]["fail"]["count"] == 1
    # a request with a generous deadline runs normally
    ok = Timed(srv, "slow_batched", slow_body(3.0, parameters={"timeout": 30_000_000}))
    ok.start()
    assert ok.result().status == 200
    assert ok.resp.json()["outputs"][0]["data"] == [3.0] * 4


def test_deadline_answered_when_it_passes(server_factory, test_models_dir):
    """A request whose deadline passes in the queue gets its 504 when the deadline passes, not
    when an instance next becomes free: a 50 ms timeout is not answered after the ~300 ms run
    ahead of it."""
    srv = server_factory(test_models_dir)
    blocker = start_blocker(srv)
    late = Timed(srv, "slow_batched", slow_body(2.0), headers={"X-Request-Timeout-Ms": "50"})
    late.start()
    late.result()
    blocker.result()
    assert late.status == 504
    waited = late.done_at - late.sent_at
    # relative to the run ahead, not an absolute time: on a loaded machine wake-ups lag
    assert late.done_at < blocker.done_at - 0.05, (
        f"the 504 for a 50 ms deadline came after {waited * 1000:.0f} ms, "
        f"{(late.done_at - blocker.done_at) * 1000:+.0f} ms from the end of the run ahead of it")


def test_model_default_timeout(server_factory, test_models_dir, tmp_path):
    repo = str(tmp_path)
    copy_model(test_models_dir, "slow_batched", repo,
               config_update={"dynamic_batching": {"max_queue_delay_us": 0, "default_timeout_us": 100_000}})
    srv = server_factory(repo)
    blocker = start_blocker(srv)  # runs at once: its deadline is not checked once it runs
    late = Timed(srv, "slow_batched", slow_body(2.0))
    late.start()
    assert blocker.result().status == 200
    assert_error(late.result().resp, 504, "deadline")
    # a request's own timeout overrides the model's default
    blocker = start_blocker(srv)
    patient = Timed(srv, "slow_batched", slow_body(4.0, parameters={"timeout": 20_000_000}))
    patient.start()
    assert blocker.result().status == 200
    assert patient.result().status == 200
    st = stats_of(srv, "slow_batched")
    assert st["execution_count"] == 3 and st["inference_stats"]["fail"]["count"] == 1


def test_bad_timeout_values_are_400(server):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    assert_error(server.infer("slow_batched", dict(body, parameters={"timeout": -5})), 400, "timeout")
    assert_error(server.infer("slow_batched", dict(body, parameters={"timeout": "soon"})), 400, "timeout")
    assert_error(server.infer("slow_batched", body, headers={"X-Request-Timeout-Ms": "ten"}), 400,
                 "X-Request-Timeout-Ms")


# --------------------------------------------------------------------------------------------
# priorities


def test_high_priority_runs_before_queued_low_priority(server_factory, test_models_dir):
    srv = server_factory(test_models_dir)
    blocker = start_blocker(srv, x=1.0)
    sent = [1]

    def send(t):
        # each request is held by the server before the next is sent: their arrival order is
        # the order they were sent in, however slow the machine (no sleeps to hope by)
        t.start()
        sent[0] += 1
        wait_until(lambda: pending_requests(srv, "slow_batched") >= sent[0], timeout(30), what="request queued")
        return t

    lows = [send(Timed(srv, "slow_batched", slow_body(10.0 + k, parameters={"priority": 3}))) for k in range(3)]
    mid = send(Timed(srv, "slow_batched", slow_body(20.0)))  # default level 2
    high = send(Timed(srv, "slow_batched", slow_body(30.0, parameters={"priority": 1})))
    sent_all = time.monotonic()
    everyone = [blocker, high, mid] + lows
    for t in everyone:
        t.result()
        assert t.status == 200, t.resp.content[:300]
        assert t.resp.json()["outputs"][0]["data"] == [t.body["inputs"][0]["data"][0]] * 4
    assert sent_all < blocker.done_at, "precondition: all requests were queued while the blocker ran"
    order = sorted(everyone, key=lambda t: t.done_at)
    got = [t.body["inputs"][0]["data"][0] for t in order]
    assert got == [1.0, 30.0, 20.0, 10.0, 11.0, 12.0], f"run order {got}"


def test_priority_out_of_range_is_400(server):
    body = slow_body(1.0, rows=1, parameters={"priority": 4})
    assert_error(server.infer("slow_batched", body), 400, "priority")
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                       {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}],
            "parameters": {"priority": 2}}
    assert_error(server.infer("batched", body), 400, "priority")
    body["parameters"] = {"priority": 1}
    assert server.infer("batched", body).status_code == 200


# --------------------------------------------------------------------------------------------
# cancellation


def test_client_gone_while_queued_never_runs(server_factory, test_models_dir):
    srv = server_factory(test_models_dir)
    blocker = start_blocker(srv)
    gone = []
    for k in range(3):
        s = post_raw(srv, "slow_batched", json.dumps(slow_body(5.0 + k)).encode(), {"Content-Type": "application/json"})
        gone.append(s)
    # every one queued behind the blocker before its client leaves (a client that leaves before
    # the server has read its request is not what this checks)
    wait_until(lambda: pending_requests(srv, "slow_batched") >= 4 or blocker.done_at is not None, timeout(30),
               what="the three requests queued")
    assert blocker.done_at is None, "precondition: the three requests were queued while the blocker ran"
    for s in gone:
        s.shutdown(socket.SHUT_RDWR)
        s.close()
    assert blocker.result().status == 200
    wait_until(lambda: stats_of(srv, "slow_batched")["inference_stats"]["fail"]["count"] == 3, timeout(10),
               what="the three abandoned requests counted as failed")
    time.sleep(0.7)  # had one of them run, it would have been counted by now
    st = stats_of(srv, "slow_batched")
    check_counts_add_up(st)
    assert st["execution_count"] == 1 and st["inference_count"] == 4, st
    # the server keeps serving that model
    after = Timed(srv, "slow_batched", slow_body(8.0))
    after.start()
    assert after.result().status == 200
    assert stats_of(srv, "slow_batched")["execution_count"] == 2


# --------------------------------------------------------------------------------------------
# a failing batch fails only its own requests


def gather_body(idx):
    return {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [len(idx), 1], "data": list(idx)}]}


def test_failing_batch_fails_only_its_requests(server_factory, test_models_dir):
    srv = server_factory(test_models_dir)
    table = [0.5 + i for i in range(10)]
    r = srv.infer("gather_fail", gather_body([3, 42]))
    assert_error(r, 400, "42")  # the request's values: a 400 naming the node
    r = srv.infer("gather_fail", gather_body([3, 9]))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [3.5, 9.5]

    # 40 requests of 2 rows (at least 10 batches of at most 8 rows), one with a bad index
    bodies, expect = [], []
    for i in range(40):
        idx = [i % 10, (i * 7) % 10]
        if i == 17:
            idx = [1, 99]
        bodies.append((json.dumps(gather_body(idx)).encode(), {"Content-Type": "application/json"}))
        expect.append([table[k] for k in idx] if i != 17 else None)
    results = run_concurrently(srv, "gather_fail", bodies, threads=40)
    failed = []
    for i, r in enumerate(results):
        if r.status_code == 200:
            assert expect[i] is not None, "the bad request succeeded"
            assert r.json()["outputs"][0]["data"] == expect[i], i
        else:
            assert_error(r, 400, "99")  # ONNX Runtime names the bad index
            failed.append(i)
    # the batch the model refused runs again one request at a time: only the culprit fails
    assert failed == [17]
    st = stats_of(srv, "gather_fail")
    assert st["inference_stats"]["fail"]["count"] == 1 + len(failed)
    assert st["inference_stats"]["success"]["count"] == 1 + 40 - len(failed)
    # and the server keeps serving
    r = srv.infer("gather_fail", gather_body([0, 1, 2]))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0.5, 1.5, 2.5]


def test_stats_count_only_successful_executions(server_factory, test_models_dir):
    """Triton's statistics extension: inference_count and execution_count count successful
    inferences and executions; a failed run shows only in inference_stats.fail."""
    srv = server_factory(test_models_dir)
    assert srv.infer("gather_fail", gather_body([3, 42])).status_code == 400
    assert srv.infer("gather_fail", gather_body([3])).status_code == 200
    st = stats_of(srv, "gather_fail")
    assert st["inference_stats"]["fail"]["count"] == 1
    assert (st["inference_count"], st["execution_count"]) == (1, 1), (
        f"inference_count {st['inference_count']}, execution_count {st['execution_count']}, "
        f"batch_stats {st['batch_stats']}: the failed run of 2 rows is counted")


# --------------------------------------------------------------------------------------------
# stress


async def _stress_client(port, payloads, conns, limit_s):
    """payloads: list of request bytes. Returns list of (status, body) in order."""
    results = [None] * len(payloads)
    next_i = 0

    async def conn_worker():
        nonlocal next_i
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_i < len(payloads):
                i = next_i
                next_i += 1
                writer.write(payloads[i])
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = None
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v.strip())
                assert length is not None, head
                body = await reader.readexactly(length)
                results[i] = (status, body)
        finally:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*[conn_worker() for _ in range(conns)]), limit_s)
    return results


def test_stress_none_lost_or_mismatched(server_factory, test_models_dir):
    n, conns = (2000, 64) if SANITIZED else (10000, 256)
    srv = server_factory(test_models_dir)
    rng = random.Random(10000)
    payloads, expect = [], []
    for i in range(n):
        rows = rng.randint(1, 8)
        a = [[float(i % 997 + r), float(r), float(-i % 13), 0.5 * k] for r in range(rows) for k in (1,)]
        b = [[float(rng.randint(-9, 9)) for _ in range(4)] for _ in range(rows)]
        body = json.dumps({"id": str(i),
                           "inputs": [{"name": "a", "datatype": "FP32", "shape": [rows, 4], "data": a},
                                      {"name": "b", "datatype": "FP32", "shape": [rows, 4], "data": b}]}).encode()
        payloads.append(b"POST /v2/models/batched/infer HTTP/1.1\r\nHost: inferd\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        flat_a = [v for row in a for v in row]
        flat_b = [v for row in b for v in row]
        expect.append((str(i), [x + y for x, y in zip(flat_a, flat_b)], [x - y for x, y in zip(flat_a, flat_b)]))
    t0 = time.monotonic()
    results = asyncio.run(_stress_client(srv.port, payloads, conns, timeout(240)))
    elapsed = time.monotonic() - t0
    bad = []
    for i, res in enumerate(results):
        if res is None:
            bad.append((i, "lost"))
            continue
        status, body = res
        if status != 200:
            bad.append((i, status, body[:200]))
            continue
        doc = json.loads(body)
        outs = {o["name"]: o["data"] for o in doc["outputs"]}
        if doc.get("id") != expect[i][0] or outs.get("sum") != expect[i][1] or outs.get("diff") != expect[i][2]:
            bad.append((i, "mismatch", body[:200]))
    assert not bad, f"{len(bad)} of {n} requests lost or wrong, e.g. {bad[:5]}"
    st = stats_of(srv, "batched")
    check_counts_add_up(st)
    assert st["inference_stats"]["success"]["count"] == n
    assert st["inference_count"] == sum(len(e[1]) // 4 for e in expect)
    print(f"stress: {n} requests at {conns} connections in {elapsed:.1f}s; "
          f"{st['execution_count']} executions, mean batch {st['inference_count'] / st['execution_count']:.1f} rows")


# --------------------------------------------------------------------------------------------
# config errors


CONFIG_ERRORS = {
    "needs_batch_dim": ({"dynamic_batching": {"max_queue_delay_us": 100}}, ["dynamic_batching", "max_batch_size"]),
    "preferred_too_big": ({"max_batch_size": 8, "dynamic_batching": {"preferred_batch_sizes": [4, 16]}},
                          ["preferred_batch_sizes", "max_batch_size"]),
    "preferred_not_positive": ({"max_batch_size": 8, "dynamic_batching": {"preferred_batch_sizes": [0]}},
                               ["preferred_batch_sizes"]),
    "delay_negative": ({"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": -1}}, ["max_queue_delay_us"]),
    "unknown_key": ({"max_batch_size": 8, "dynamic_batching": {"max_queue_delay": 100}}, ["max_queue_delay"]),
    "queue_size_zero": ({"max_batch_size": 8, "dynamic_batching": {"max_queue_size": 0}}, ["max_queue_size"]),
    "default_level_above_levels": ({"max_batch_size": 8, "dynamic_batching": {"priority_levels": 2, "default_priority_level": 3}},
                                   ["default_priority_level"]),
    "timeout_negative": ({"max_batch_size": 8, "dynamic_batching": {"default_timeout_us": -1}}, ["default_timeout_us"]),
    "both_sections": ({"max_batch_size": 8, "dynamic_batching": {}, "queue_policy": {"max_queue_size": 4}},
                      ["queue_policy"]),
    "queue_policy_batching_key": ({"queue_policy": {"max_queue_delay_us": 10}}, ["max_queue_delay_us"]),
}


def test_scheduling_config_errors_name_the_field(server_factory, test_models_dir, tmp_path):
    repo = str(tmp_path)
    base = {"inputs": [{"name": "a", "datatype": "FP32", "dims": [4]}, {"name": "b", "datatype": "FP32", "dims": [4]}]}
    for name, (cfg, _) in CONFIG_ERRORS.items():
        full = dict(cfg)
        if "max_batch_size" in cfg:
            full.update(base)
        copy_model(test_models_dir, "add_sub", repo, new_name=name, config=full)
    copy_model(test_models_dir, "slow_queue", repo, new_name="fine_queue_policy")
    srv = server_factory(repo, wait_ready=False)
    body = wait_models_settled(srv, expect=tuple(CONFIG_ERRORS) + ("fine_queue_policy",))
    states = {m["name"]: m for m in body["models"]}
    assert states["fine_queue_policy"]["state"] == "READY", states["fine_queue_policy"]
    for name, (_, needles) in CONFIG_ERRORS.items():
        m = states[name]
        assert m["state"] == "UNAVAILABLE", (name, m)
        for needle in needles:
            assert needle in (m["reason"] or ""), f"{name}: reason {m['reason']!r} does not name {needle!r}"
