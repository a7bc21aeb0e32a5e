"""Payload capture (docs/observability.md, "Payload capture"): the sampled share within
tolerance, records that parse and carry the request, rotation, and a full disk or a slow
consumer dropping and counting records without failing or holding up a request."""
import concurrent.futures
import json
import os
import re
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from conftest import EXAMPLE_REPO, INFERD_BIN, SANITIZED, Server, timeout

ROW = [3, 89.5, 268.5, 2, 29, 1, 0, 0, 0, 0, 1, 0]
SUMMARY = re.compile(r"payload capture: (\d+) records sampled, (\d+) written \((\d+) bytes, (\d+) files\); "
                     r"dropped: (\d+) queue full, (\d+) write errors, (\d+) too large")


def body(row=ROW):
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12], "data": [row]}]}


def start(logs_dir, cap_dir, *args):
    srv = Server(EXAMPLE_REPO, args=["--capture-dir", str(cap_dir)] + [str(a) for a in args], workdir=logs_dir)
    srv.start()
    return srv


def stop(srv):
    """Stops the server (the writer writes what is queued) and returns its capture counters."""
    srv.stop()
    srv.check_clean_exit()
    lines = [l["msg"] for l in srv.log_lines() if SUMMARY.search(l.get("msg", ""))]
    assert len(lines) == 1, srv.stderr()[-2000:]
    keys = ("sampled", "written", "bytes", "files", "dropped_queue", "dropped_write", "dropped_size")
    return dict(zip(keys, map(int, SUMMARY.search(lines[0]).groups())))


def capture_files(cap_dir):
    return sorted(f for f in os.listdir(cap_dir) if re.fullmatch(r"capture-\d{6}\.jsonl", f))


def records(cap_dir):
    out = []
    for name in capture_files(cap_dir):
        with open(os.path.join(cap_dir, name)) as f:
            for line in f:
                out.append(json.loads(line))  # every line is one whole JSON object
    return out


def send_many(srv, n, threads=4, headers=None):
    """n churn requests over a few connections; every one must succeed. Returns latencies."""
    def worker(k):
        s = requests.Session()
        lat = []
        for _ in range(k):
            t = time.monotonic()
            r = s.post(srv.url("/v2/models/churn/infer"), json=body(), headers=headers, timeout=timeout(30))
            lat.append(time.monotonic() - t)
            assert r.status_code == 200, r.text
        return lat
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return [x for lat in ex.map(worker, per) for x in lat]


def test_sampled_share_within_tolerance(logs_dir, tmp_path):
    cap = tmp_path / "cap"
    srv = start(logs_dir, cap, "--capture-percent", 20)
    n = 1000
    send_many(srv, n)
    counts = stop(srv)
    recs = records(cap)
    sigma = (n * 0.2 * 0.8) ** 0.5
    assert abs(len(recs) - 0.2 * n) <= 5 * sigma, len(recs)
    assert counts["sampled"] == counts["written"] == len(recs)
    assert counts["dropped_queue"] == counts["dropped_write"] == counts["dropped_size"] == 0


def test_records_parse_and_carry_the_request(logs_dir, tmp_path):
    cap = tmp_path / "cap"
    srv = start(logs_dir, cap, "--capture-percent", 100)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = srv.post("/v2/models/churn/infer", json=body(),
                 headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert r.status_code == 200
    sent_back = {r.headers["X-Request-ID"]}
    r = srv.post("/v2/models/churn/infer", json=body([10, 50.0, 500.0, 0, 60, 0, 0, 1, 1, 0, 0, 0]),
                 headers={"X-Request-ID": "my-request-1"})
    assert r.status_code == 200
    r = srv.post("/v1/models/churn/predict", json={"inputs": [{
        "tenure_months": 3, "monthly_charges": 89.5, "total_charges": 268.5, "support_calls": 2, "age": 29,
        "contract": "month-to-month", "payment_method": "electronic_check"}]})
    assert r.status_code == 200
    sent_back.add(r.headers["X-Request-ID"])
    r = srv.post("/v2/models/churn/infer", json=body())  # no id sent: one is made
    assert r.status_code == 200
    sent_back.add(r.headers["X-Request-ID"])
    counts = stop(srv)
    recs = records(cap)
    assert len(recs) == 4 == counts["written"]
    by_trace = {x["trace_id"]: x for x in recs}
    assert set(by_trace) == {trace_id, ""}
    t = by_trace[trace_id]  # the trace id of the traceparent sent
    assert t["model"] == "churn" and t["version"] == "1" and t["arm"] == "" and t["status"] == 200
    assert t["latency_us"] > 0 and t["latency_us"] >= t["compute_us"] and t["batch_size"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t["time"])
    [inp] = t["request"]["inputs"]
    assert inp["name"] == "input" and inp["datatype"] == "FP32" and inp["shape"] == [1, 12]
    np.testing.assert_allclose(inp["data"], [ROW], rtol=1e-6)
    outs = {o["name"]: o for o in t["response"]["outputs"]}
    assert {"label", "probabilities"} <= set(outs)
    assert outs["probabilities"]["data"][0][1] == pytest.approx(0.901401, abs=1e-4)
    # request_id: the client's X-Request-ID, else the id the server made and answered with
    by_id = {x["request_id"]: x for x in recs}
    assert len(by_id) == 4
    assert by_id["my-request-1"]["request"]["inputs"][0]["data"][0][4] == 60
    assert set(by_id) == {"my-request-1", *sent_back}


def test_files_rotate_and_numbering_continues(logs_dir, tmp_path):
    cap = tmp_path / "cap"
    srv = start(logs_dir, cap, "--capture-percent", 100, "--capture-max-file-bytes", 2048, "--capture-max-files", 3)
    send_many(srv, 40, threads=1)
    counts = stop(srv)
    assert counts["written"] == 40 and counts["files"] > 3
    files = capture_files(cap)
    assert len(files) == 3, files  # the oldest beyond --capture-max-files are gone
    nums = [int(f[8:14]) for f in files]
    assert nums == list(range(counts["files"] - 2, counts["files"] + 1)), nums
    for name in files:
        path = os.path.join(cap, name)
        with open(path) as f:
            lines = f.readlines()
        assert os.path.getsize(path) <= 2048 or len(lines) == 1
        for line in lines:
            assert json.loads(line)["model"] == "churn"
    # a restart starts a new file after the highest one, never appending to an old one
    srv = start(logs_dir, cap, "--capture-percent", 100, "--capture-max-files", 3)
    send_many(srv, 1, threads=1)
    stop(srv)
    assert capture_files(cap)[-1] == "capture-%06d.jsonl" % (nums[-1] + 1)


def test_full_disk_drops_and_counts(logs_dir, tmp_path):
    cap = tmp_path / "cap"
    cap.mkdir()
    os.symlink("/dev/full", cap / "capture-000001.jsonl")  # every write fails with ENOSPC
    srv = start(logs_dir, cap, "--capture-percent", 100)
    send_many(srv, 30)
    assert srv.get("/v2/health/ready").status_code == 200
    counts = stop(srv)
    assert counts["sampled"] == 30 and counts["written"] == 0 and counts["dropped_write"] == 30


def test_slow_consumer_drops_without_holding_requests(logs_dir, tmp_path):
    cap = tmp_path / "cap"
    cap.mkdir()
    fifo = cap / "capture-000001.jsonl"
    os.mkfifo(fifo)  # a consumer that reads slowly: the writer blocks on it, requests must not
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    slow, stop_reading, got = threading.Event(), threading.Event(), []
    slow.set()

    def reader():
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                chunk = None
            if chunk:
                got.append(chunk)
            elif chunk == b"" and stop_reading.is_set():
                return
            time.sleep(0.1 if slow.is_set() else 0.001)

    th = threading.Thread(target=reader)
    th.start()
    try:
        srv = start(logs_dir, cap, "--capture-percent", 100, "--capture-queue", 8)
        lat = send_many(srv, 400)
        slow.clear()  # now drain, so the writer can finish at shutdown
        stop_reading.set()
        counts = stop(srv)
    finally:
        stop_reading.set()
        slow.clear()
        th.join(timeout(30))
        os.close(fd)
    assert not th.is_alive()
    assert counts["sampled"] == 400
    assert counts["dropped_queue"] > 0
    assert counts["written"] + counts["dropped_queue"] + counts["dropped_write"] == 400
    lines = b"".join(got).decode().splitlines()
    assert len(lines) == counts["written"] and all(json.loads(l)["model"] == "churn" for l in lines)
    # a request never waited for the consumer: far below what the consumer took per record
    assert max(lat) < timeout(2.0), max(lat)


def test_bad_capture_options(logs_dir, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for args, needle in ((["--capture-dir", str(f)], "is not a directory"),
                         (["--capture-dir", str(tmp_path), "--capture-percent", "101"], "--capture-percent"),
                         (["--capture-dir", str(tmp_path), "--capture-queue", "0"], "--capture-queue")):
        srv = Server(EXAMPLE_REPO, args=args, workdir=logs_dir)
        with pytest.raises(AssertionError):
            srv.start()
        assert needle in srv.stderr(), srv.stderr()


def test_options_from_the_environment(logs_dir, tmp_path):
    """Capture and drift options have INFERD_ variables like every other flag (derived from the
    flag's name), and a bad value in one is refused at start naming the variable."""
    cap = tmp_path / "cap"
    srv = Server(EXAMPLE_REPO, workdir=logs_dir,
                 env={"INFERD_CAPTURE_DIR": str(cap), "INFERD_CAPTURE_PERCENT": "100", "INFERD_DRIFT_BUCKETS": "5"})
    srv.start()
    send_many(srv, 3, threads=1)
    counts = stop(srv)
    assert counts["written"] == 3 and len(records(cap)) == 3
    bad = subprocess.run([INFERD_BIN, "serve", "--model-repository", EXAMPLE_REPO, "--http-port", "0", "--grpc-port", "0"],
                         env=dict(os.environ, INFERD_DRIFT_BUCKETS="many"), capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "INFERD_DRIFT_BUCKETS" in bad.stderr, bad.stderr
