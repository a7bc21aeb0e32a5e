"""Shared state in Redis (docs/redis.md), against a real redis-server the tests start:

- two inferd processes share one rate limit: their sum of admitted requests is R/s within 5 %
  (each alone would admit R/s: the sum would be twice that without Redis);
- replica B answers X-Cache: hit for what replica A computed and stored;
- a traffic change made on A is applied by B within a couple of seconds, also one made while Redis
  was down (pushed when it returns, unless another replica's change got there first);
- Redis killed under load: every prediction still succeeds, /health and /metrics say which
  features are on local fallback; Redis restarted: the shared features resume;
- a password in the URL is used (AUTH) and never shown; a bad URL is refused at start.
"""
import concurrent.futures
import json
import subprocess
import os
import re
import shutil
import threading
import time

import pytest
import requests

from app_repo import CHURN_RECORD, CHURN_ROW
from conftest import EXAMPLE_REPO, INFERD_BIN, free_port, running_server, timeout, wait_until
from redis_server import RedisServer, redis_server  # noqa: F401  (the fixture)

T = timeout(30)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """churn (no cache) and churnc (the same model with response_cache)."""
    root = str(tmp_path_factory.mktemp("redis_repo"))
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), os.path.join(root, "churn"))
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), os.path.join(root, "churnc"))
    cfg_path = os.path.join(root, "churnc", "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["response_cache"] = {"enable": True, "ttl_ms": 600000}
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    return root


@pytest.fixture
def replicas(repo, logs_dir, tmp_path):
    """Starts inferd replicas (each with its own state dir); all stopped, exit 0, at the end."""
    started = []

    def start(url, *args, n=2):
        out = []
        for i in range(n):
            state = tmp_path / f"state{len(started)}"
            cm = running_server(repo, args=["--grpc-port", "0", "--redis-url", url, "--state-dir", str(state)]
                                + list(args), workdir=logs_dir)
            srv = cm.__enter__()
            started.append(cm)
            out.append(srv)
        return out

    yield start
    errors = []
    for cm in reversed(started):
        try:
            cm.__exit__(None, None, None)
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)


def v2_body(x=None):
    row = list(CHURN_ROW)
    if x is not None:
        row[0] = x
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 12], "data": row}]}


def redis_health(srv):
    return srv.get("/health").json().get("redis")


def metric(srv, name, labels=""):
    text = srv.get("/metrics").text
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# ------------------------------------------------------------------------------------------------


def test_two_replicas_share_one_rate_limit(redis_server, replicas):
    # A burst of a second's units: the bucket never runs over between two takes even when both
    # clients stall for most of a second (a loaded machine, the sanitizers), so no unit is lost
    # to the clients' own pace and the count is the limiter's alone. (With a burst of 1, a unit
    # that came while both clients were busy would be lost.)
    rate, burst = 40, 40
    a, b = replicas(redis_server.url, "--rate-limit", str(rate), "--rate-burst", str(burst))
    for s in (a, b):
        assert redis_health(s)["features"]["rate_limits"] == "redis"
    duration = 5.0
    stop_at = [0.0]
    counts = {}

    def hammer(srv):
        session = requests.Session()
        ok = other = refused = 0
        while time.monotonic() < stop_at[0]:
            r = session.post(srv.url("/v2/models/churn/infer"), json=v2_body(), timeout=T)
            if r.status_code == 200:
                ok += 1
            elif r.status_code == 429:
                refused += 1
            else:
                other += 1
        counts[srv.port] = (ok, refused, other)

    # a first request each, so both clients start with warm connections; then one window
    for s in (a, b):
        s.session.post(s.url("/v2/models/churn/infer"), json=v2_body(), timeout=T)
    time.sleep(1.1)  # every bucket full again
    start = time.monotonic()
    stop_at[0] = start + duration
    threads = [threading.Thread(target=hammer, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    admitted = sum(c[0] for c in counts.values())
    refused = sum(c[1] for c in counts.values())
    assert all(c[2] == 0 for c in counts.values()), counts
    assert refused > admitted, f"the clients did not offer more than the limit: {counts}"
    expected = rate * elapsed + burst  # the rate over the window, plus the full bucket it starts with
    print(f"shared limit: {admitted} admitted in {elapsed:.2f} s, expected {expected:.1f} ({counts})")
    assert abs(admitted - expected) <= 0.05 * expected, (
        f"{admitted} admitted by 2 replicas in {elapsed:.2f} s at {rate}/s shared: expected {expected:.0f} ± 5 % "
        f"({counts})")
    # both replicas took part (a shared budget, not one replica starving the other)
    assert all(c[0] > 0.2 * admitted for c in counts.values()), counts
    assert metric(a, "inferd_redis_fallback", '{feature="rate_limits"}') == 0


def test_replica_b_hits_what_replica_a_stored(redis_server, replicas):
    a, b = replicas(redis_server.url)
    body = v2_body(x=7.25)
    ra = a.session.post(a.url("/v2/models/churnc/infer"), json=body, timeout=T)
    assert ra.status_code == 200, ra.text
    assert ra.headers.get("X-Cache") == "miss"
    # the store into Redis is sent as the result completes: wait until it is there
    wait_until(lambda: metric(a, "inferd_cache_redis_stores_total") == 1, T, what="A's result stored in Redis")
    rb = b.session.post(b.url("/v2/models/churnc/infer"), json=body, timeout=T)
    assert rb.status_code == 200, rb.text
    assert rb.headers.get("X-Cache") == "hit"
    assert rb.json()["outputs"] == ra.json()["outputs"]
    assert metric(b, "inferd_cache_redis_lookups_total", '{result="hit"}') == 1
    # B did not run the model: its version's execution count is still 0
    stats = b.get("/v2/models/churnc/versions/1/stats").json()["model_stats"][0]
    assert stats["execution_count"] == 0, stats
    # now in B's local tier too: a second request is a hit without Redis
    rb2 = b.session.post(b.url("/v2/models/churnc/infer"), json=body, timeout=T)
    assert rb2.headers.get("X-Cache") == "hit"
    assert metric(b, "inferd_cache_redis_lookups_total", '{result="hit"}') == 1
    # a different request misses on both tiers
    rb3 = b.session.post(b.url("/v2/models/churnc/infer"), json=v2_body(x=8.5), timeout=T)
    assert rb3.headers.get("X-Cache") == "miss"
    assert metric(b, "inferd_cache_redis_lookups_total", '{result="miss"}') == 1
    # the /v1 records route shares the same entries
    rv1 = a.session.post(a.url("/v1/models/churnc/predict"), json={"inputs": [CHURN_RECORD]}, timeout=T)
    assert rv1.status_code == 200 and rv1.headers.get("X-Cache") == "miss"
    wait_until(lambda: metric(a, "inferd_cache_redis_stores_total") == 2, T, what="the /v1 result in Redis")
    rv1b = b.session.post(b.url("/v1/models/churnc/predict"), json={"inputs": [CHURN_RECORD]}, timeout=T)
    assert rv1b.headers.get("X-Cache") == "hit"
    volatile = ("id", "created", "inference_time_ms")
    assert {k: v for k, v in rv1b.json().items() if k not in volatile} == \
        {k: v for k, v in rv1.json().items() if k not in volatile}


def test_a_damaged_entry_in_redis_is_a_miss(redis_server, replicas):
    """What Redis holds is read back with every length checked: a value that is not ours (cut
    short, or junk) is a miss that runs the model, never a crash or a wrong answer."""
    a, b = replicas(redis_server.url)
    bodies = [v2_body(x=20.5 + i) for i in range(3)]
    want = []
    for i, body in enumerate(bodies):
        r = a.session.post(a.url("/v2/models/churnc/infer"), json=body, timeout=T)
        assert r.status_code == 200 and r.headers.get("X-Cache") == "miss"
        want.append(r.json()["outputs"])
        wait_until(lambda i=i: metric(a, "inferd_cache_redis_stores_total") == i + 1, T, what="stored")
    keys = sorted(redis_server.cli("KEYS", "inferd:cache:*").split())
    assert len(keys) == 3, keys
    redis_server.cli("SET", keys[0], "IFC1")  # the magic, then nothing
    redis_server.cli("SET", keys[1], "junk that is not an entry")
    # a real entry cut short by 3 bytes: every length before the end still reads
    redis_server.cli("EVAL", "local v = redis.call('GET', KEYS[1]) redis.call('SET', KEYS[1], string.sub(v, 1, #v - 3))",
                     "1", keys[2])
    for body, expect in zip(bodies, want):
        r = b.session.post(b.url("/v2/models/churnc/infer"), json=body, timeout=T)
        assert r.status_code == 200, r.text
        assert r.headers.get("X-Cache") == "miss"
        assert r.json()["outputs"] == expect
    assert metric(b, "inferd_cache_redis_lookups_total", '{result="hit"}') == 0


def test_a_traffic_change_on_a_is_seen_by_b(redis_server, replicas):
    a, b = replicas(redis_server.url)
    pred = {"inputs": [CHURN_RECORD]}
    assert b.session.post(b.url("/v1/models/churn/versions/production/predict"), json=pred,
                          timeout=T).status_code == 404
    r = a.request("PUT", "/v1/models/churn/traffic", json={"aliases": {"production": 1}, "reason": "go live"})
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    wait_until(lambda: b.get("/v1/models/churn/traffic").json().get("aliases") == {"production": "1"},
               timeout(5), interval=0.05, what="B to apply A's alias")
    seen_after = time.monotonic() - t0
    assert seen_after < timeout(2.5), f"B saw the change after {seen_after:.2f} s"
    r = b.session.post(b.url("/v1/models/churn/versions/production/predict"), json=pred, timeout=T)
    assert r.status_code == 200, r.text
    # the history is shared too: B lists A's change with its reason
    hist = b.get("/v1/models/churn/traffic/history").json()
    events = hist.get("events", hist) if isinstance(hist, dict) else hist
    assert any(e.get("why") == "go live" for e in events), hist
    # and a change on B reaches A
    r = b.request("PUT", "/v1/models/churn/traffic", json={"aliases": {"production": 1, "staging": 1}})
    assert r.status_code == 200, r.text
    wait_until(lambda: a.get("/v1/models/churn/traffic").json().get("aliases") == {"production": "1", "staging": "1"},
               timeout(5), interval=0.05, what="A to apply B's change")


def aliases(srv):
    return srv.get("/v1/models/churn/traffic").json().get("aliases")


def test_a_traffic_change_made_while_redis_is_down_is_shared_when_it_returns(redis_server, replicas, tmp_path):
    a, b = replicas(redis_server.url)
    redis_server.kill()
    wait_until(lambda: redis_health(a)["connected"] is False, timeout(5), what="A to see Redis gone")
    r = a.request("PUT", "/v1/models/churn/traffic", json={"aliases": {"production": 1}})
    assert r.status_code == 200, r.text  # kept in A's own SQLite store
    assert aliases(a) == {"production": "1"}
    assert redis_health(a)["features"]["traffic"] == "local_fallback"
    time.sleep(1.5)  # B polls every 0.5 s: it must not have applied anything
    assert aliases(b) in (None, {})
    # Redis back (empty): A pushes its change on its next poll, without another change, and B
    # applies it; the history in Redis has the event
    redis_server.restart()
    wait_until(lambda: aliases(b) == {"production": "1"}, timeout(10), interval=0.05,
               what="B to apply the change A made while Redis was down")
    assert "is now shared" in a.stderr()
    hist = subprocess.run(["redis-cli", "-p", str(redis_server.port), "LRANGE", "inferd:traffic:history:churn", "0", "-1"],
                          capture_output=True, text=True, check=True).stdout
    assert "production" in hist, hist
    # and a change made with Redis up still reaches B
    r = a.request("PUT", "/v1/models/churn/traffic", json={"aliases": {"production": 1, "staging": 1}})
    assert r.status_code == 200, r.text
    wait_until(lambda: aliases(b) == {"production": "1", "staging": "1"},
               timeout(5), interval=0.05, what="B to apply A's change once Redis is back")


def test_two_replicas_changed_while_redis_was_down_agree_when_it_returns(redis_server, replicas):
    """Both replicas change the same model while Redis is down: when it returns, the first to push
    wins and the other takes its policy (no flapping between the two)."""
    a, b = replicas(redis_server.url)
    redis_server.kill()
    wait_until(lambda: not redis_health(a)["connected"] and not redis_health(b)["connected"], timeout(5),
               what="both to see Redis gone")
    assert a.request("PUT", "/v1/models/churn/traffic", json={"aliases": {"production": 1}}).status_code == 200
    assert b.request("PUT", "/v1/models/churn/traffic", json={"aliases": {"canary": 1}}).status_code == 200
    redis_server.restart()
    wait_until(lambda: aliases(a) == aliases(b), timeout(10), interval=0.05, what="A and B to agree")
    agreed = aliases(a)
    assert agreed in ({"production": "1"}, {"canary": "1"}), agreed
    loser = b if agreed == {"production": "1"} else a
    assert "another replica changed this model meanwhile" in loser.stderr()
    time.sleep(1.5)  # three polls each: nothing moves any more
    assert aliases(a) == aliases(b) == agreed


def test_redis_killed_under_load_then_restarted(redis_server, replicas):
    # a limit nobody reaches here (a bucket of 100000), refilled at 1/s: each request keeps its
    # key in Redis for a second, so the test can see the limit's state move to the new Redis
    a, b = replicas(redis_server.url, "--rate-limit", "1", "--rate-burst", "100000")
    assert redis_health(a)["connected"] and redis_health(b)["connected"]
    stop = threading.Event()
    results = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def load(srv, i):
        session = requests.Session()
        n = 0
        while not stop.is_set():
            model = "churnc" if n % 2 else "churn"
            r = session.post(srv.url(f"/v2/models/{model}/infer"), json=v2_body(x=float((i * 100003 + n) % 5000)),
                             timeout=T)
            n += 1
            with lock:
                if r.status_code == 200:
                    results["ok"] += 1
                else:
                    results["bad"].append((r.status_code, r.text[:200]))

    pool = concurrent.futures.ThreadPoolExecutor(4)
    futures = [pool.submit(load, s, i) for i, s in enumerate((a, b, a, b))]
    time.sleep(1.0)
    redis_server.kill()
    for s in (a, b):
        wait_until(lambda s=s: redis_health(s)["connected"] is False, timeout(5), what="/health to say disconnected")
    time.sleep(1.5)  # load goes on with Redis gone
    for s in (a, b):
        h = redis_health(s)
        assert h["features"] == {"rate_limits": "local_fallback", "cache": "local_fallback",
                                 "traffic": "local_fallback", "jobs": "local_fallback"}, h
        assert metric(s, "inferd_redis_connected") == 0
        assert metric(s, "inferd_redis_fallback", '{feature="rate_limits"}') == 1
        assert metric(s, "inferd_redis_fallback", '{feature="cache"}') == 1
        assert "unreachable" in s.stderr() and "local fallback" in s.stderr()
    ok_during = results["ok"]
    redis_server.restart()
    for s in (a, b):
        wait_until(lambda s=s: redis_health(s)["connected"] is True, timeout(10), what="reconnected")
    time.sleep(0.5)
    stop.set()
    for f in futures:
        f.result()
    pool.shutdown()
    assert results["bad"] == [], results["bad"][:5]
    assert results["ok"] > ok_during > 0
    for s in (a, b):
        assert redis_health(s)["features"]["rate_limits"] == "redis"
        assert metric(s, "inferd_redis_connected") == 1
        assert metric(s, "inferd_redis_connects_total") >= 2
        assert metric(s, "inferd_redis_fallback", '{feature="rate_limits"}') == 0
    # the shared features work again: A stores, B hits; the limit is in Redis again
    body = v2_body(x=12345.5)
    ra = a.session.post(a.url("/v2/models/churnc/infer"), json=body, timeout=T)
    assert ra.headers.get("X-Cache") == "miss"
    wait_until(lambda: redis_server.cli("DBSIZE").strip() not in ("", "0"), T, what="an entry in the new Redis")

    def b_hits():
        return b.session.post(b.url("/v2/models/churnc/infer"), json=body, timeout=T).headers.get("X-Cache") == "hit"
    wait_until(b_hits, T, what="B to hit A's entry in the restarted Redis")
    # the rate limit's keys go to the restarted Redis (a request through each replica)
    a.session.post(a.url("/v2/models/churn/infer"), json=v2_body(), timeout=T)
    assert "inferd:rl:req:" in redis_server.cli("KEYS", "inferd:rl:*")


def test_a_hung_redis_costs_requests_a_bounded_wait(redis_server, replicas):
    """Redis paused (connections open, no answers): each request waits at most the timeout for
    its rate-limit check and cache lookup, a few timeouts in a row put the link down (then no
    wait at all), and it comes back when Redis answers again."""
    (a,) = replicas(redis_server.url, "--rate-limit", "1", "--rate-burst", "100000", "--redis-timeout-ms", "50", n=1)
    assert redis_health(a)["connected"]
    redis_server.pause()
    try:
        slowest = 0.0
        for i in range(30):
            t0 = time.monotonic()
            r = a.session.post(a.url("/v2/models/churnc/infer"), json=v2_body(x=100.0 + i), timeout=T)
            slowest = max(slowest, time.monotonic() - t0)
            assert r.status_code == 200, r.text
        # 50 ms for the limit + 50 ms for the cache lookup, with room for a loaded machine
        assert slowest < timeout(1.0), f"a request took {slowest:.2f} s with Redis hung"
        h = redis_health(a)
        assert h["connected"] is False and h["features"]["rate_limits"] == "local_fallback", h
        assert metric(a, "inferd_redis_command_timeouts_total") >= 1
        assert "got no answer within their timeout" in a.stderr()
    finally:
        redis_server.resume()
    wait_until(lambda: redis_health(a)["connected"] is True, timeout(10), what="reconnected after the pause")
    r = a.session.post(a.url("/v2/models/churn/infer"), json=v2_body(), timeout=T)
    assert r.status_code == 200 and "inferd:rl:req:" in redis_server.cli("KEYS", "inferd:rl:*")


def test_a_password_is_used_and_never_shown(tmp_path, replicas):
    pw = "s3cret-Pa55"
    rs = RedisServer(tmp_path / "redispw", password=pw).start()
    try:
        (a,) = replicas(rs.url, "--rate-limit", "1", "--rate-burst", "1000", n=1)
        h = redis_health(a)
        assert h["connected"] is True, h
        assert pw not in json.dumps(h) and ":***@" in h["url"]
        a.session.post(a.url("/v2/models/churn/infer"), json=v2_body(), timeout=T)
        assert "inferd:rl:req:" in rs.cli("KEYS", "*")  # it did authenticate: its commands ran
        assert pw not in a.stderr() and pw not in a.get("/metrics").text
    finally:
        rs.kill()


def test_a_wrong_password_falls_back_and_says_so(tmp_path, replicas):
    rs = RedisServer(tmp_path / "redispw2", password="right").start()
    try:
        url = rs.url.replace(":right@", ":wrong@")
        (a,) = replicas(url, n=1)
        assert redis_health(a)["connected"] is False
        r = a.session.post(a.url("/v2/models/churnc/infer"), json=v2_body(), timeout=T)
        assert r.status_code == 200
        assert "wrong" not in a.stderr()
        assert "refused the connection's set-up" in a.stderr()
    finally:
        rs.kill()


def test_no_redis_at_start_serves_and_connects_later(tmp_path, replicas):
    rs = RedisServer(tmp_path / "later", port=free_port())  # not started yet
    (a,) = replicas(rs.url, n=1)
    assert redis_health(a)["connected"] is False
    assert a.session.post(a.url("/v2/models/churn/infer"), json=v2_body(), timeout=T).status_code == 200
    rs.start()
    try:
        wait_until(lambda: redis_health(a)["connected"] is True, timeout(10), what="the late Redis")
    finally:
        rs.kill()


@pytest.mark.parametrize("url,needle", [
    ("http://127.0.0.1:6379", "--redis-url must look like redis://"),
    ("redis://127.0.0.1:99999", "the port must be 1 to 65535"),
    ("redis://:hunter2@:6379", "the host is missing"),
    ("redis://127.0.0.1:6379/x", "the database must be a number"),
])
def test_a_bad_url_is_refused_at_start(repo, url, needle):
    res = subprocess.run([INFERD_BIN, "serve", "--model-repository", repo, "--host", "127.0.0.1", "--http-port", "0",
                          "--grpc-port", "0", "--redis-url", url], capture_output=True, text=True, timeout=T)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr
    assert "hunter2" not in res.stderr  # never echoes a password
