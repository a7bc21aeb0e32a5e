"""Scale-out end to end: three inferd replicas behind a real HAProxy (the configuration
deploy/haproxy/render.sh writes), and a real redis-server, all started here on free loopback
ports and stopped after (docs/scaling.md).

- kill -9 of one replica under 64-connection load loses no request (the issue allows 0.1 %;
  without HAProxy's l7 retries the requests in flight on the killed replica fail, about one in
  4,000 here, so the test asks for none to stay able to tell the two apart);
- SIGTERM of one replica under the same load loses none either, and the replica exits 0;
- a rate limit of R/s holds within 5 % across all replicas when they share Redis (--redis-url);
- Redis killed and restarted under load: no prediction fails, and the replicas write their
  shared state into the new Redis once it is back;
- a batch job submitted through HAProxy, its replica killed with -9 while it holds chunks of
  the job: the other two take them over after the claim timeout and the job completes through
  HAProxy with every record once, in input order, equal to a direct predict, progress never
  going back.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

from conftest import EXAMPLE_REPO, REPO_ROOT, Server, free_port, timeout, wait_until
from redis_server import redis_server  # noqa: F401  (the fixture: a real redis-server, store's tests/e2e/redis_server.py)
from test_jobs import accepted, all_results, check_against_direct, churn_records, submit
from conftest import SANITIZED

RENDER = os.path.join(REPO_ROOT, "deploy", "haproxy", "render.sh")
LOAD_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scaleout_load.lua")
CHURN_BODY = ('{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12], '
              '"data": [24.0, 70.5, 1692.0, 2.0, 41.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]}], '
              '"outputs": [{"name": "probabilities"}]}')
INFER_PATH = "/v2/models/churn/infer"
# Load lengths: long enough that a replica dies with requests in flight and the others carry on;
# short because the suite runs twice, once under ASan (three sanitized replicas on two cores).
LOAD_SECONDS = 6


@pytest.fixture(scope="module")
def churn_repo(tmp_path_factory):
    """A repository with the churn example alone: each replica loads only what the load needs."""
    repo = tmp_path_factory.mktemp("scaleout-repo")
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), repo / "churn")
    return str(repo)


@pytest.fixture(scope="module")
def body_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scaleout-body") / "churn.json"
    path.write_text(CHURN_BODY)
    return str(path)


class HAProxy:
    """HAProxy in the foreground on the configuration render.sh writes for the given replicas."""

    def __init__(self, workdir, replica_ports):
        self.workdir = str(workdir)
        self.replica_ports = list(replica_ports)
        self.proc = None
        self.port = self.stats_port = None

    def start(self):
        for _ in range(3):  # a free port may be taken between probe and bind
            self.port, self.stats_port = free_port(), free_port()
            cfg = os.path.join(self.workdir, f"haproxy-{self.port}.cfg")
            with open(cfg, "w") as f:
                subprocess.run([RENDER, "--bind", f"127.0.0.1:{self.port}",
                                "--stats", f"127.0.0.1:{self.stats_port}", "--inter-ms", "200"]
                               + [f"127.0.0.1:{p}" for p in self.replica_ports], stdout=f, check=True)
            self.log_path = os.path.join(self.workdir, f"haproxy-{self.port}.log")
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL)
            try:
                wait_until(lambda: self.proc.poll() is None and self.servers_up() == len(self.replica_ports),
                           timeout(15), what="HAProxy up with every replica UP")
                return self
            except AssertionError:
                self.stop()
                if "cannot bind" not in self.log().lower():
                    raise AssertionError(f"HAProxy did not come up:\n{self.log()[-3000:]}")
        raise AssertionError("could not start HAProxy on a free port")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stats(self):
        """Per-server rows of HAProxy's CSV statistics, by server name."""
        text = requests.get(f"http://127.0.0.1:{self.stats_port}/;csv", timeout=5).text
        lines = text.splitlines()
        head = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(head, l.split(","))) for l in lines[1:] if l]
        return {r["svname"]: r for r in rows if r["pxname"] == "inferd"}

    def servers_up(self):
        return sum(1 for name, r in self.stats().items() if name.startswith("r") and r["status"] == "UP")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Cluster:
    def __init__(self, replicas, haproxy):
        self.replicas = replicas
        self.haproxy = haproxy

    def url(self, path):
        return f"http://127.0.0.1:{self.haproxy.port}{path}"

    # through HAProxy, in the shape test_jobs' helpers expect of a server
    def get(self, path, **kw):
        kw.setdefault("timeout", timeout(20))
        return requests.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", timeout(60))
        return requests.post(self.url(path), **kw)

    def served_by(self, method, path_start):
        """The replica HAProxy sent the last `method path_start...` request to (its httplog line,
        written once the answer is sent: it may come a moment after the client has it)."""
        def hits():
            return re.findall(rf"inferd/r(\d+) .*\"{method} {re.escape(path_start)}", self.haproxy.log())
        wait_until(hits, timeout(10), what=f"{method} {path_start} in HAProxy's log")
        return self.replicas[int(hits()[-1]) - 1]


@pytest.fixture
def cluster_factory(churn_repo, tmp_path, logs_dir):
    """Starts N replicas (each with its own state dir and gRPC port) and HAProxy in front; at the
    end stops what is still running and checks the replicas that were not killed exit 0."""
    made = []

    def start(n=3, args=()):
        replicas = []
        for i in range(n):
            srv = Server(churn_repo, args=["--grpc-port", "0", "--worker-threads", "1", "--http-threads", "1",
                                           "--state-dir", str(tmp_path / f"state{i}")] + list(args),
                         workdir=logs_dir)
            replicas.append(srv)
            made.append(srv)
            srv.start()
        hp = HAProxy(tmp_path, [r.port for r in replicas]).start()
        made.append(hp)
        return Cluster(replicas, hp)

    yield start
    errors = []
    for thing in reversed(made):
        if isinstance(thing, HAProxy):
            thing.stop()
            continue
        if thing.proc is None or thing.returncode == -signal.SIGKILL:
            continue
        if thing.alive():
            thing.stop()
        try:
            thing.check_clean_exit()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)


def run_load(url, body_file, seconds, connections, threads=2):
    """Starts wrk against url; returns (process, parse) where parse() waits and returns counts."""
    env = dict(os.environ, BODY=body_file)
    proc = subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "20s",
                             "-s", LOAD_LUA, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)

    def parse():
        out, _ = proc.communicate(timeout=seconds + timeout(60))
        assert proc.returncode == 0, f"wrk failed:\n{out}"
        statuses = {int(c): int(n) for c, n in re.findall(r"^STATUS (\d+) (\d+)$", out, re.M)}
        errs = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", re.search(r"^ERRORS .*$", out, re.M).group(0)))
        m = re.search(r"^REQUESTS (\d+) DURATION_US (\d+)$", out, re.M)
        return {"statuses": statuses, "socket_errors": sum(errs.values()), "requests": int(m.group(1)),
                "seconds": int(m.group(2)) / 1e6, "output": out}

    return proc, parse


def failed(result):
    return result["socket_errors"] + sum(n for c, n in result["statuses"].items() if c != 200)


def _lose_a_replica_under_load(cluster, body_file, how):
    victim = cluster.replicas[1]
    proc, parse = run_load(cluster.url(INFER_PATH), body_file, LOAD_SECONDS, 64)
    # strike once the load is well under way (every replica busy), then leave time after it
    time.sleep(LOAD_SECONDS / 3)
    before = victim.get("/metrics").text
    assert re.search(r'^nv_inference_request_success\{model="churn"[^}]*\} [1-9]', before, re.M), \
        "the replica to be stopped was not serving any of the load"
    victim.send_signal(how)
    victim.wait_exit()
    result = parse()
    return victim, result


def test_kill_9_of_one_replica_under_load_loses_no_request(cluster_factory, body_file):
    cluster = cluster_factory(3)
    victim, result = _lose_a_replica_under_load(cluster, body_file, signal.SIGKILL)
    assert victim.returncode == -signal.SIGKILL
    total = result["requests"]
    assert total >= 500, f"too little load to judge: {result['output']}"
    lost = failed(result)
    assert lost == 0, (f"{lost} of {total} requests failed ({100.0 * lost / total:.3f} %; the issue allows "
                       f"0.1 %, the configuration aims at none):\n{result['output']}")
    # HAProxy saw the dead replica and moved requests: retries or redispatches were counted
    stats = cluster.haproxy.stats()
    moved = int(stats["BACKEND"]["wretr"] or 0) + int(stats["BACKEND"]["wredis"] or 0)
    assert moved > 0, f"HAProxy counted no retry or redispatch: was the replica serving? {stats['BACKEND']}"
    assert stats["r2"]["status"].startswith("DOWN"), stats["r2"]
    # the others carry on through HAProxy after the load
    r = requests.post(cluster.url(INFER_PATH), data=CHURN_BODY, headers={"Content-Type": "application/json"},
                      timeout=timeout(10))
    assert r.status_code == 200, r.text


def test_sigterm_of_one_replica_under_load_drains_without_a_failed_request(cluster_factory, body_file):
    cluster = cluster_factory(3)
    victim, result = _lose_a_replica_under_load(cluster, body_file, signal.SIGTERM)
    assert victim.returncode == 0, victim.stderr()[-3000:]
    victim.check_sanitizers()
    total = result["requests"]
    assert total >= 500, f"too little load to judge: {result['output']}"
    lost = failed(result)
    assert lost == 0, f"{lost} of {total} requests failed while a replica drained:\n{result['output']}"
    assert cluster.haproxy.stats()["r2"]["status"].startswith("DOWN")


def test_rate_limit_holds_across_replicas_with_redis(cluster_factory, redis_server, body_file):
    """R/s for the one (anonymous) caller, across three replicas sharing Redis: the requests
    admitted over the run come within 5 % of R per second (plus the burst). Without the shared
    state each replica would admit R/s of its own, three times as many."""
    # A burst of one second: the bucket then absorbs the stalls of a loaded machine (a sanitized
    # build, the other tests) instead of losing the units no request was there to take; with a
    # burst of 5 (83 ms) a busy machine read 13 % low.
    rate, burst = 60, 60
    # a slow answer (a sanitized build on a busy machine) must wait, not fall back to local counts
    cluster = cluster_factory(3, args=["--redis-url", redis_server.url, "--redis-timeout-ms", "1000",
                                       "--rate-limit", f"{rate}/s",
                                       "--rate-burst", str(burst)])
    seconds = 10
    proc, parse = run_load(cluster.url(INFER_PATH), body_file, seconds, 12)
    result = parse()
    admitted = result["statuses"].get(200, 0)
    refused = result["statuses"].get(429, 0)
    assert refused > 0, f"the load never reached the limit: {result['output']}"
    assert failed(result) == refused, f"answers other than 200 and 429: {result['output']}"
    expected = rate * result["seconds"] + burst
    print(f"admitted {admitted} in {result['seconds']:.2f} s, expected {expected:.0f}")
    assert abs(admitted - expected) <= 0.05 * expected, (
        f"{admitted} admitted in {result['seconds']:.2f} s at {rate}/s (burst {burst}) across 3 replicas: "
        f"expected {expected:.0f} +- 5 %")


def test_redis_killed_and_restarted_predictions_never_fail(cluster_factory, redis_server, body_file):
    """Rate limits go to Redis on every request (a limit far above the load); Redis dies and comes
    back on the same port: every prediction still answers 200, and the replicas write their limits
    into the new, empty Redis once it is back (the shared state resumes)."""
    cluster = cluster_factory(3, args=["--redis-url", redis_server.url, "--rate-limit", "1000000/s"])

    def state_in_redis():
        requests.post(cluster.url(INFER_PATH), data=CHURN_BODY, headers={"Content-Type": "application/json"},
                      timeout=5)
        return int(redis_server.cli("DBSIZE").strip() or 0) > 0

    wait_until(state_in_redis, timeout(10), interval=0.2, what="the replicas' limits in Redis")
    proc, parse = run_load(cluster.url(INFER_PATH), body_file, LOAD_SECONDS, 16)
    time.sleep(LOAD_SECONDS / 4)
    redis_server.kill()
    time.sleep(LOAD_SECONDS / 4)
    redis_server.restart()  # a new, empty Redis on the same port
    assert redis_server.cli("DBSIZE").strip() == "0"
    result = parse()
    assert failed(result) == 0, f"predictions failed while Redis was away:\n{result['output']}"
    assert result["requests"] >= 200, result["output"]
    # Redis being away is not a reason to leave the rotation: every replica stayed UP
    assert cluster.haproxy.servers_up() == 3, cluster.haproxy.stats()
    wait_until(state_in_redis, timeout(20), interval=0.2, what="the replicas writing to Redis again")

    def every_replica_back():
        for srv in cluster.replicas:
            redis = srv.get("/health").json()["redis"]
            if not redis["connected"] or any(v != "redis" for v in redis["features"].values()):
                return False
        return True

    wait_until(every_replica_back, timeout(20), interval=0.2,
               what="every replica's /health: Redis connected, no feature on local fallback")


def test_the_committed_haproxy_cfg_is_what_render_writes_and_haproxy_accepts_it():
    """deploy/haproxy/haproxy.cfg is render.sh's output for the arguments its header names, and
    HAProxy's own check accepts it; render.sh refuses what is not HOST:PORT."""
    committed = os.path.join(REPO_ROOT, "deploy", "haproxy", "haproxy.cfg")
    with open(committed) as f:
        text = f.read()
    command = re.search(r"^#   deploy/haproxy/render\.sh (.*)$", text, re.M)
    assert command, "haproxy.cfg's header does not name the render.sh command"
    args = command.group(1).split()
    assert len([a for a in args if not a.startswith("-") and re.match(r"^[\d.]+:\d+$", a)]) >= 3
    rendered = subprocess.run([RENDER, *args], capture_output=True, text=True, check=True).stdout
    assert text == rendered, "deploy/haproxy/haproxy.cfg is stale: rerun the render.sh command in its header"
    check = subprocess.run(["haproxy", "-c", "-f", committed], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration file is valid" in check.stdout + check.stderr
    bad = subprocess.run([RENDER, "localhost"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not HOST:PORT" in bad.stderr


# -- a batch job across replicas -----------------------------------------------------------------

JOB_RECORDS = 3000 if SANITIZED else 15000
JOB_CLAIM_MS = 2000


def _job_records_done(srv):
    """This replica's committed job records (inferd_job_records_total, both outcomes)."""
    text = srv.get("/metrics").text
    return sum(int(float(v)) for v in re.findall(r"^inferd_job_records_total\{[^}]*\} (\S+)$", text, re.M))


def _held_by(redis, pid):
    """Stream entries pending under the consumer of the replica with this pid (read, not acknowledged)."""
    m = re.search(rf"-{pid}-[0-9a-f]+\n(\d+)", redis.cli("XPENDING", "inferd:jobs:q:normal", "inferd-jobs"))
    return int(m.group(1)) if m else 0


def test_job_through_haproxy_survives_kill_9_of_its_replica(cluster_factory, redis_server):
    """A job submitted through HAProxy to three replicas sharing Redis: the replica that took the
    submission is killed with -9 while it holds chunks of the job (read from the stream, not
    committed); the other two claim them after --jobs-claim-timeout-ms and the job completes,
    read through HAProxy, with every record exactly once, in input order, each equal to a direct
    predict, and progress never going back across the kill."""
    cluster = cluster_factory(3, args=["--redis-url", redis_server.url, "--jobs-claim-timeout-ms", str(JOB_CLAIM_MS),
                                       "--job-chunk-records", "50", "--max-job-records", "100000"])
    records = churn_records(JOB_RECORDS, seed=71)
    bid = accepted(submit(cluster, records))
    submitter = cluster.served_by("POST", "/v1/batch/predict")
    progress = []

    def job_status():
        r = cluster.get(f"/v1/batch/{bid}/status")
        assert r.status_code == 200, r.text
        s = r.json()
        progress.append(s["progress"]["completed"] + s["progress"]["failed"])
        return s

    # mid-job: some of it committed. The victim is the replica the job was submitted to, or, if
    # the others took all its chunks so far, the one that has done the most of it: the point is
    # that a replica working the job dies.
    wait_until(lambda: job_status() and sum(_job_records_done(r) for r in cluster.replicas) >= 10 * 50,
               timeout(60), interval=0.02, what="the job to be under way")
    done = {id(r): _job_records_done(r) for r in cluster.replicas}
    victim = submitter if done[id(submitter)] > 0 else max(cluster.replicas, key=lambda r: done[id(r)])
    others = [r for r in cluster.replicas if r is not victim]

    # freeze it at a moment it holds entries of the job, then kill it: those chunks are the
    # ones the others must take over
    def frozen_holding():
        victim.send_signal(signal.SIGSTOP)
        if _held_by(redis_server, victim.proc.pid) > 0:
            return True
        victim.send_signal(signal.SIGCONT)
        return False

    wait_until(frozen_holding, timeout(30), interval=0.01, what="the victim to hold entries of the job")
    held = _held_by(redis_server, victim.proc.pid)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait_exit() == -signal.SIGKILL
    others_at_kill = sum(_job_records_done(r) for r in others)  # before the status: see below
    at_kill = job_status()
    assert at_kill["status"] == "processing", f"the job was not mid-way at the kill: {at_kill}"
    print(f"killed r{cluster.replicas.index(victim) + 1} (the submission went to "
          f"r{cluster.replicas.index(submitter) + 1}) holding {held} chunk entries at {at_kill['progress']}")

    def finished():
        s = job_status()
        return s if s["status"] in ("completed", "failed", "cancelled") else None

    final = wait_until(finished, timeout(60), interval=0.05, what=f"job {bid} to finish after the kill")
    assert final["status"] == "completed", final
    assert final["progress"] == {"completed": JOB_RECORDS, "failed": 0, "total": JOB_RECORDS}, final
    assert progress == sorted(progress), "progress went backwards"
    # the victim's chunks were taken over: nothing left pending under it, or at all
    assert _held_by(redis_server, victim.proc.pid) == 0
    assert redis_server.cli("XPENDING", "inferd:jobs:q:normal", "inferd-jobs").split("\n")[0] == "0"
    # the survivors committed at least what was left at the kill, the victim's held chunks among
    # it (each replica counts only its first commit of a chunk, so this also holds no duplicate)
    others_done = sum(_job_records_done(r) for r in others)
    assert others_done - others_at_kill >= JOB_RECORDS - at_kill["progress"]["completed"], \
        (others_at_kill, others_done, at_kill)
    # every record once, in input order, each equal to a direct /v1 predict (through HAProxy)
    results = all_results(cluster, bid)
    assert [r["index"] for r in results] == list(range(JOB_RECORDS))
    check_against_direct(cluster, records, results, JOB_RECORDS, seed=72)
