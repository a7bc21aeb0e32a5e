"""gRPC through HAProxy: two inferd replicas behind the configuration deploy/haproxy/render.sh
writes with --grpc-bind (HTTP/2 on both sides), a real haproxy and Debian's grpcio client, all on
loopback (docs/scaling.md).

- one client channel's calls are spread over both replicas (a TCP balancer would pin the channel
  to one);
- a replica killed with -9 while calls are in flight loses none of them: HAProxy retries the
  calls it held on the other replica (retry-on empty-response) and marks it down;
- a bidirectional stream (ModelStreamInfer) answers through HAProxy like direct.
"""

import os
import re
import shutil
import signal
import subprocess
import threading

import grpc
import numpy as np
import pytest
import requests

from conftest import EXAMPLE_REPO, REPO_ROOT, free_port, timeout, wait_until
from grpc_stubs import infer_request, output_arrays, pb, pbg, start_grpc_server

RENDER = os.path.join(REPO_ROOT, "deploy", "haproxy", "render.sh")
T = timeout(30)
ROW = [24.0, 70.5, 1692.0, 2.0, 41.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def churn_call(i):
    row = list(ROW)
    row[1] += i  # each call its own input, so an answer can't be another call's
    return infer_request("churn", [("input", "FP32", [row])], outputs=["probabilities"], request_id=f"call-{i}")


def successes(srv):
    m = re.search(r'^nv_inference_request_success\{model="churn"[^}]*\} (\d+)', srv.get("/metrics").text, re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture
def cluster(tmp_path, logs_dir):
    repo = tmp_path / "repo"
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), repo / "churn")
    replicas = [start_grpc_server(str(repo), logs_dir, args=["--worker-threads", "1", "--http-threads", "1",
                                                             "--state-dir", str(tmp_path / f"state{i}")])
                for i in range(2)]
    port, stats = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    with open(cfg, "w") as f:
        subprocess.run([RENDER, "--bind", f"127.0.0.1:{free_port()}", "--grpc-bind", f"127.0.0.1:{port}",
                        "--stats", f"127.0.0.1:{stats}", "--inter-ms", "200"]
                       + [f"127.0.0.1:{r.port},{r.grpc_port}" for r in replicas], stdout=f, check=True)
    log = open(tmp_path / "haproxy.log", "wb")
    hp = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def grpc_servers():
        text = requests.get(f"http://127.0.0.1:{stats}/;csv", timeout=5).text
        lines = text.splitlines()
        head = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(head, l.split(","))) for l in lines[1:] if l]
        return {r["svname"]: r["status"] for r in rows if r["pxname"] == "inferd_grpc" and r["svname"].startswith("r")}

    try:
        wait_until(lambda: hp.poll() is None and list(grpc_servers().values()) == ["UP", "UP"], timeout(15),
                   what="HAProxy's gRPC backend with both replicas UP")
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(ch).result(timeout=T)
        yield replicas, pbg.GRPCInferenceServiceStub(ch), grpc_servers
        ch.close()
    finally:
        hp.terminate()
        hp.wait(timeout=10)
        log.close()
        for r in replicas:
            if r.alive():
                r.stop()
                r.check_clean_exit()


def direct_answers(replica, n, offset=0):
    ch = grpc.insecure_channel(f"127.0.0.1:{replica.grpc_port}")
    stub = pbg.GRPCInferenceServiceStub(ch)
    got = [output_arrays(stub.ModelInfer(churn_call(offset + i), timeout=T))["probabilities"][1] for i in range(n)]
    ch.close()
    return got


def test_one_channel_is_balanced_and_survives_kill_9(cluster):
    replicas, stub, grpc_servers = cluster
    want = direct_answers(replicas[0], 240)
    base = [successes(r) for r in replicas]
    for i in range(40):
        resp = stub.ModelInfer(churn_call(i), timeout=T)
        assert resp.id == f"call-{i}"
        np.testing.assert_array_equal(output_arrays(resp)["probabilities"][1], want[i])
    served = [successes(r) - b for r, b in zip(replicas, base)]
    assert sum(served) == 40 and min(served) >= 5, f"one channel's calls were not spread: {served}"

    # calls in flight from 8 threads on the one channel when replica 2 dies: those it held are
    # retried on replica 1 by HAProxy (retry-on empty-response), those after go to replica 1
    failures, done = [], []

    def caller(t):
        for i in range(40 + t, 240, 8):
            try:
                resp = stub.ModelInfer(churn_call(i), timeout=T)
                np.testing.assert_array_equal(output_arrays(resp)["probabilities"][1], want[i])
                done.append(i)
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                failures.append((i, repr(exc)[:300]))

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(8)]
    before = successes(replicas[0])
    for t in threads:
        t.start()
    wait_until(lambda: len(done) >= 4, T, what="calls under way before the kill")
    replicas[1].send_signal(signal.SIGKILL)
    replicas[1].wait_exit()
    for t in threads:
        t.join(timeout=T)
    assert not failures, f"{len(failures)} of 200 calls failed when a replica died: {failures[:3]}"
    assert sorted(done) == list(range(40, 240))
    assert successes(replicas[0]) - before >= 100  # the survivor took the rest
    wait_until(lambda: grpc_servers()["r2"] == "DOWN", timeout(10), what="the killed replica marked DOWN")


def test_stream_through_haproxy(cluster):
    replicas, stub, _ = cluster
    want = direct_answers(replicas[0], 5)
    got = list(stub.ModelStreamInfer(iter([churn_call(i) for i in range(5)]), timeout=T))
    assert [r.error_message for r in got] == [""] * 5
    for i, r in enumerate(got):
        assert r.infer_response.id == f"call-{i}"
        np.testing.assert_array_equal(output_arrays(r.infer_response)["probabilities"][1], want[i])


def test_render_needs_a_grpc_port_per_replica():
    bad = subprocess.run([RENDER, "--grpc-bind", "127.0.0.1:9000", "127.0.0.1:8000,8001", "127.0.0.1:8002"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "127.0.0.1:8002" in bad.stderr and "gRPC port" in bad.stderr
    for r in ["127.0.0.1:8000,", "127.0.0.1:8000,x", "127.0.0.1:8000,1,2", "127.0.0.1:"]:
        res = subprocess.run([RENDER, r], capture_output=True, text=True)
        assert res.returncode == 2 and r in res.stderr, (r, res.stderr)
    ok = subprocess.run([RENDER, "--grpc-bind", "127.0.0.1:9000", "h1:8000,8001"], capture_output=True, text=True,
                        check=True).stdout
    assert "server r1 h1:8000\n" in ok and "server r1 h1:8001 check port 8000\n" in ok
