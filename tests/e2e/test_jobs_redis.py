"""Batch jobs in Redis (--redis-url; docs/jobs.md, "Jobs in Redis") with a real redis-server: a job
submitted through one replica is worked by two together, with results equal to direct predicts and
status, results and idempotent resubmits answered by either; a replica killed with -9 mid-job has
its chunks taken over by the other after the claim timeout, with every record there exactly once;
Redis down: the jobs API answers 503, predictions go on; a chunk slower than the claim timeout
is run once, by the replica that holds it (its idle time is kept fresh), not again by another."""
import copy
import re
import signal
import time

import numpy as np
from onnx import TensorProto, helper

from conftest import SANITIZED, Server, timeout, wait_until
from redis_server import redis_server  # noqa: F401  (the fixture)
from test_jobs import accepted, all_results, check_against_direct, churn_records, start_server, status, submit
from app_repo import REG_CONFIG, write_repo
from make_test_models import const, model_of, save, slow_graph

import pytest

N = 4000 if SANITIZED else 20000
SAMPLE = 300 if SANITIZED else 1500
CLAIM_MS = 2000


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return write_repo(str(tmp_path_factory.mktemp("jobs_redis_repo")))


def replica(repo, tmp_path, logs_dir, redis, name, extra=()):
    args = ["--redis-url", redis.url, "--jobs-claim-timeout-ms", str(CLAIM_MS), "--job-chunk-records", "50",
            "--max-job-records", "200000"] + list(extra)
    return start_server(repo, str(tmp_path / name), logs_dir, args)


def records_done(srv):
    """This replica's committed records (inferd_job_records_total, both outcomes)."""
    text = srv.get("/metrics").text
    return sum(int(float(v)) for v in re.findall(r'^inferd_job_records_total\{[^}]*\} (\S+)$', text, re.M))


def wait_final(srv, bid, seconds=120):
    def done():
        s = status(srv, bid)
        return s if s["status"] in ("completed", "failed", "cancelled") else None
    return wait_until(done, timeout(seconds), interval=0.05, what=f"job {bid} to finish")


def pending(redis):
    """Entries read from the jobs streams and not acknowledged yet."""
    return sum(int(redis.cli("XPENDING", s, "inferd-jobs").split("\n")[0] or 0)
               for s in ("inferd:jobs:q:normal", "inferd:jobs:q:low"))


def held_by(redis, pid):
    """Entries of the normal stream pending under the consumer of the replica with this pid."""
    m = re.search(rf"-{pid}-[0-9a-f]+\n(\d+)", redis.cli("XPENDING", "inferd:jobs:q:normal", "inferd-jobs"))
    return int(m.group(1)) if m else 0


def test_two_replicas_work_one_job(repo, tmp_path, logs_dir, redis_server):
    a = replica(repo, tmp_path, logs_dir, redis_server, "a")
    b = replica(repo, tmp_path, logs_dir, redis_server, "b")
    try:
        records = churn_records(N, seed=31)
        key = {"Idempotency-Key": "redis-once"}
        bid = accepted(submit(a, records, headers=key))
        # the same key through the other replica: the same job
        r = submit(b, records, headers=key)
        assert r.status_code == 202 and r.json()["batch_id"] == bid, r.text
        final = wait_final(b, bid)
        assert final["status"] == "completed", final
        assert final["progress"] == {"completed": N, "failed": 0, "total": N}
        assert status(a, bid)["progress"] == final["progress"]
        # both replicas worked it, and between them each record once
        done_a, done_b = records_done(a), records_done(b)
        assert done_a > 0 and done_b > 0 and done_a + done_b == N, (done_a, done_b)
        results = all_results(a, bid)
        assert len(results) == N
        check_against_direct(b, records, results, SAMPLE, seed=32)
        assert all_results(b, bid) == results
        assert bid in [j["batch_id"] for j in b.get("/v1/batch?limit=100").json()["batches"]]
        assert pending(redis_server) == 0
        # finished jobs expire
        ttl = int(redis_server.cli("TTL", f"inferd:job:{bid}").strip())
        assert 0 < ttl <= 7 * 86400
    finally:
        a.stop()
        b.stop()
    a.check_clean_exit()
    b.check_clean_exit()


def test_kill_9_replica_chunks_taken_over(repo, tmp_path, logs_dir, redis_server):
    a = replica(repo, tmp_path, logs_dir, redis_server, "a")
    b = replica(repo, tmp_path, logs_dir, redis_server, "b")
    try:
        records = churn_records(N, seed=41)
        bid = accepted(submit(a, records))
        wait_until(lambda: records_done(a) > N // 20, timeout(60), interval=0.01, what="replica A to be under way")
        # freeze A at a moment it holds entries of the job (read, not yet acknowledged), then kill it
        def frozen_holding():
            a.proc.send_signal(signal.SIGSTOP)
            if held_by(redis_server, a.proc.pid) > 0:
                return True
            a.proc.send_signal(signal.SIGCONT)
            return False
        wait_until(frozen_holding, timeout(30), interval=0.01, what="replica A to hold entries")
        held = held_by(redis_server, a.proc.pid)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        at_kill = status(b, bid)
        print(f"at the kill: {at_kill['progress']}, A held {held} entries")
        assert at_kill["status"] == "processing", at_kill
        final = wait_final(b, bid)
        assert final["status"] == "completed", final
        # exactly once: progress counts each chunk's commit once, and results are keyed by index
        assert final["progress"] == {"completed": N, "failed": 0, "total": N}
        results = all_results(b, bid)
        assert [r["index"] for r in results] == list(range(N))
        check_against_direct(b, records, results, SAMPLE // 3, seed=42)
        assert pending(redis_server) == 0 and held_by(redis_server, a.proc.pid) == 0
    finally:
        if a.alive():
            a.proc.kill()
        b.stop()
    b.check_clean_exit()


def test_redis_down_jobs_503_predictions_go_on(repo, tmp_path, logs_dir, redis_server):
    a = replica(repo, tmp_path, logs_dir, redis_server, "a")
    try:
        bid = accepted(submit(a, churn_records(10, seed=51)))
        wait_final(a, bid, 30)
        redis_server.kill()
        wait_until(lambda: a.get("/health").json().get("redis", {}).get("connected") is False, timeout(10),
                   what="Redis to be seen down")
        r = submit(a, churn_records(3, seed=52))
        assert r.status_code == 503 and "Redis" in r.json()["error"], r.text
        r = a.get(f"/v1/batch/{bid}/status")
        assert r.status_code == 503 and "Redis" in r.json()["error"], r.text
        r = a.post("/v1/models/churn/predict", json={"inputs": churn_records(2, seed=53)})
        assert r.status_code == 200, r.text
        # Redis back (empty: nothing was persisted): jobs work again
        redis_server.restart()
        wait_until(lambda: a.get("/health").json().get("redis", {}).get("connected") is True, timeout(15),
                   what="Redis to be seen up")
        bid = accepted(submit(a, churn_records(30, seed=54)))
        assert wait_final(a, bid, 60)["progress"] == {"completed": 30, "failed": 0, "total": 30}
    finally:
        a.stop()
    a.check_clean_exit()



# -- a chunk slower than the claim timeout ---------------------------------------------------------

SLOW_CLAIM_MS = 400
SLOW_CHUNKS = 4  # under one XREADGROUP's COUNT 8: a replica reads them all, then works them one by one


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory):
    """slow_reg: the reg model's features (a, b, colour -> x FP32 [N, 3]) and value = x @ [1, 2, 10]
    + 0.5, after the slow model's matrix products (make_test_models.py; some hundreds of ms a
    run, whatever the batch), so that every job chunk runs longer than SLOW_CLAIM_MS."""
    root = str(tmp_path_factory.mktemp("jobs_redis_slow"))
    g = slow_graph("slow_reg", ["N", 3])
    g.node.extend([helper.make_node("MatMul", ["y", "w"], ["yw"]), helper.make_node("Add", ["yw", "b"], ["value"])])
    g.initializer.extend([const("w", np.array([[1.0], [2.0], [10.0]], np.float32)),
                          const("b", np.array([0.5], np.float32))])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N", 1])])
    config = copy.deepcopy(REG_CONFIG)
    config.update(max_batch_size=2, version_policy={"latest": 1}, onnxruntime={"intra_op_threads": 1})
    save(root, "slow_reg", model_of(g), 1, config)
    return root


def model_runs(srv, model):
    """Requests of `model` this replica ran (a job chunk is one)."""
    m = re.search(rf'^nv_inference_request_success\{{model="{model}"[^}}]*\}} (\S+)$', srv.get("/metrics").text, re.M)
    return int(float(m.group(1))) if m else 0


def test_chunk_slower_than_the_claim_timeout_runs_once(slow_repo, tmp_path, logs_dir, redis_server):
    """Two replicas, a claim timeout shorter than one chunk's run: the replica that reads the
    job's chunks keeps them its own while it works them (one at a time, so the last waits three
    runs), and the other, looking for idle entries every 2 s, finds none to claim. Without the
    keeper each chunk idles past the timeout, is claimed and run again by the other replica
    (stored once, but the model ran twice): the model's run count tells."""
    args = ["--grpc-port", "0", "--redis-url", redis_server.url, "--jobs-claim-timeout-ms", str(SLOW_CLAIM_MS),
            "--job-chunk-records", "2", "--job-chunks-in-flight", "1"]
    a = Server(slow_repo, args=args + ["--state-dir", str(tmp_path / "a")], workdir=logs_dir)
    b = Server(slow_repo, args=args + ["--state-dir", str(tmp_path / "b")], workdir=logs_dir)
    try:
        a.start()
        b.start()
        record = {"a": 1.5, "b": 2, "colour": "green"}
        # a chunk here outlasts the claim timeout: the test is about that case
        t0 = time.monotonic()
        r = a.post("/v1/models/slow_reg/predict", json={"inputs": [record, record]})
        took_ms = (time.monotonic() - t0) * 1000
        assert r.status_code == 200, r.text
        assert took_ms > SLOW_CLAIM_MS, f"a run took {took_ms:.0f} ms, not longer than the {SLOW_CLAIM_MS} ms timeout"
        before = model_runs(a, "slow_reg") + model_runs(b, "slow_reg")
        records = [{"a": float(i), "b": i % 7, "colour": ["red", "green", "blue"][i % 3]}
                   for i in range(2 * SLOW_CHUNKS)]
        bid = accepted(submit(a, records, model="slow_reg"))
        final = wait_final(a, bid, 120)
        assert final["progress"] == {"completed": 2 * SLOW_CHUNKS, "failed": 0, "total": 2 * SLOW_CHUNKS}, final
        runs_a, runs_b = model_runs(a, "slow_reg"), model_runs(b, "slow_reg")
        print(f"a run took {took_ms:.0f} ms; slow_reg runs: A {runs_a}, B {runs_b}, {before} of them before the job")
        assert runs_a + runs_b - before == SLOW_CHUNKS, \
            f"{runs_a + runs_b - before} model runs for {SLOW_CHUNKS} chunks (A {runs_a}, B {runs_b}, before {before})"
        results = all_results(b, bid)
        assert [x["index"] for x in results] == list(range(2 * SLOW_CHUNKS))
        for rec, res in zip(records, results):
            want = rec["a"] + 2 * rec["b"] + 10 * ["red", "green", "blue"].index(rec["colour"]) + 0.5
            assert abs(res["result"]["value"] - want) < 1e-3, (rec, res)
        assert pending(redis_server) == 0
    finally:
        a.stop()
        b.stop()
    a.check_clean_exit()
    b.check_clean_exit()
