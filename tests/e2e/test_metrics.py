"""GET /metrics against a real Prometheus (Debian's prometheus and promtool): the server is
scraped every second by a Prometheus this test starts on loopback; after load,
histogram_quantile(0.99, ...) over inferd's request-duration histogram agrees with the p99 the
load client (wrk) measured, within the histogram's bucket resolution; promtool checks the
exposition and deploy/'s rules; every metric name the Grafana dashboard and the alerting rules
use exists in /metrics."""

import json
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import requests

from conftest import EXAMPLE_REPO, REPO_ROOT, SANITIZED, free_port, timeout, wait_until
from grpc_stubs import channel, infer_request, pbg, start_grpc_server
import make_test_models as mtm

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
DASHBOARD = os.path.join(REPO_ROOT, "deploy", "grafana", "inferd-dashboard.json")
RULES = os.path.join(REPO_ROOT, "deploy", "prometheus", "inferd-alerts.yml")
POST_LUA = os.path.join(REPO_ROOT, "bench", "post_body.lua")

# Names deploy/ uses that another module adds to /metrics when it is built in: obs-drift's
# drift scores (docs/observability.md, "Drift"). Nothing else may be missing.
ADDED_ELSEWHERE = {"inferd_feature_drift"}
# Traffic management's families appear once a model has a traffic policy (this server has none);
# tests/e2e/test_traffic.py checks that every inferd_traffic_ name deploy/ uses is on /metrics.
TRAFFIC_NAMES = re.compile(r"^inferd_traffic_")
# Triton's names break Prometheus' naming conventions (no _total, "_us", "_count" on a counter),
# and promtool's linter says so; they are kept as Triton spells them so its dashboards work.
# promtool must report nothing else.
TRITON_NAMES = re.compile(r"^nv_inference_\w+ ")

# The histogram's finite bucket bounds in seconds (src/observability/metrics.c).
BOUNDS = [1e-5, 2.5e-5, 5e-5, 7.5e-5, 1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4, 7.5e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3,
          7.5e-3, 1e-2, 1.5e-2, 2e-2, 3e-2, 5e-2, 7.5e-2, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10]

CHURN_ROW = [0.5, 12, 1, 0, 2, 1, 70.5, 845.0, 0, 1, 1, 0]


def churn_body(rows=1):
    return json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 12],
                                   "data": CHURN_ROW * rows}]}).encode()


# --------------------------------------------------------------------------------------------
# the exposition, parsed


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """[(name, {labels}, value)], and the TYPE of each family; asserts every line is well formed."""
    samples, types = [], {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"malformed sample line: {line!r}"
        labels = dict(LABEL_RE.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples, types


def value(samples, name, **labels):
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items()))


# --------------------------------------------------------------------------------------------
# fixtures


def make_repo(out):
    """The example churn model, and `busy`: y = x after ~70 MFLOP of matrix products (several
    ms on one core), so that under load the server's own queueing is most of a request's time."""
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), os.path.join(out, "churn"))
    saved = (mtm.SLOW_SIZE, mtm.SLOW_CHAIN)
    mtm.SLOW_SIZE, mtm.SLOW_CHAIN = 256, 2
    try:
        mtm.save(out, "busy", mtm.model_of(mtm.slow_graph("busy", [None, None])),
                 config={"onnxruntime": {"intra_op_threads": 1}})
    finally:
        mtm.SLOW_SIZE, mtm.SLOW_CHAIN = saved


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = str(tmp_path_factory.mktemp("metrics-repo"))
    make_repo(repo)
    mport = free_port()
    s = start_grpc_server(repo, str(tmp_path_factory.mktemp("metrics-logs")),
                          args=["--metrics-port", str(mport), "--worker-threads", "1"])
    s.metrics_port = mport
    try:
        yield s
    finally:
        assert s.stop() == 0
        s.check_sanitizers()


@pytest.fixture(scope="module")
def prometheus(srv, tmp_path_factory):
    """A real Prometheus on loopback scraping srv's --metrics-port every second."""
    assert os.path.exists(PROMETHEUS), "prometheus not found: install Debian's prometheus (scripts/bootstrap.sh)"
    d = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    cfg = d / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: inferd
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["127.0.0.1:{srv.metrics_port}"]
rule_files:
  - {RULES}
""")
    log = open(d / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={d / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(base + "/-/ready", timeout=1).status_code == 200, timeout(60),
                   what="Prometheus ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def promql(base, expr):
    r = requests.get(base + "/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def scrape(srv, http_port=False):
    url = srv.url("/metrics") if http_port else f"http://127.0.0.1:{srv.metrics_port}/metrics"
    r = requests.get(url, timeout=timeout(10))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    return r.text


def raise_priority():
    """For this process' children: a higher scheduling priority when allowed (root), else none."""
    try:
        os.nice(-10)
    except OSError:
        pass


def raise_server_priority(pid):
    """Every thread of the server at a higher priority when allowed. On a machine shared with
    other busy processes the scheduler's pauses otherwise land in the client's time and not
    the server's (a request waiting in a socket buffer, or a reply in wrk's), and the two
    measurements stop describing the same thing."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), -10)
    except OSError:
        pass


def wrk_p99(url, body_path, seconds, conns):
    """Runs wrk against url; returns (p99 in seconds, requests, non-200 responses)."""
    env = dict(os.environ, BODY=body_path)
    res = subprocess.run([WRK, "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", POST_LUA, url],
                         capture_output=True, text=True, env=env, timeout=seconds + 60, preexec_fn=raise_priority)
    assert res.returncode == 0, res.stderr
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", res.stdout, re.M)
    assert m, res.stdout
    p99 = float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
    n = int(re.search(r"(\d+) requests in", res.stdout).group(1))
    bad = int(re.search(r"BENCH non200=(\d+)", res.stdout).group(1))
    return p99, n, bad


def bucket_of(seconds):
    """The index of the bucket a value falls in (len(BOUNDS): +Inf)."""
    for i, b in enumerate(BOUNDS):
        if seconds <= b * (1 + 1e-9):
            return i
    return len(BOUNDS)


# --------------------------------------------------------------------------------------------
# tests


def promql_at(base, expr, at):
    r = requests.get(base + "/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def prometheus_has(base, served):
    """Waits until Prometheus has scraped a count of at least `served` busy requests; returns the time."""
    q = 'sum(inferd_request_duration_seconds_count{model="busy",protocol="http"}) or vector(0)'

    def seen():
        res = promql(base, q)
        return bool(res) and float(res[0]["value"][1]) >= served
    wait_until(seen, timeout(30), what=f"Prometheus to scrape a count of {served}")
    return time.time()


def served_count(srv):
    samples, _ = parse_exposition(scrape(srv))
    return value(samples, "inferd_request_duration_seconds_count", model="busy", protocol="http")


# Connections wrk keeps busy. A request's time is then mostly the server's queue (CONNS - 1 runs
# ahead of it), which grows with CONNS while the time no server can see (a request waiting in
# the socket for a loop thread, a reply for wrk, each a scheduler's pause on a loaded machine)
# does not: with 8 the client's p99 ran 1.2-1.9x the server's at load 15-20 on 2 cores, more
# than a bucket apart; with 32, within 5 %. The rate, and so the request count, is the same.
CONNS = 32


def one_load(srv, prometheus, body):
    """One window of load: (client p99, Prometheus' p99 over that window, allowed range)."""
    before = served_count(srv)
    assert before > 0
    t0 = prometheus_has(prometheus, before)
    p99, n, bad = wrk_p99(srv.url("/v2/models/busy/infer"), str(body), seconds=8 if not SANITIZED else 12, conns=CONNS)
    assert bad == 0 and n > 200, (n, bad)
    served = served_count(srv)
    t1 = prometheus_has(prometheus, served)
    # the window's own distribution: the counters at its end less those at its start
    sel = 'inferd_request_duration_seconds_bucket{model="busy",protocol="http"}'
    d = int((t1 - t0) * 1000)  # ms: PromQL durations are whole units
    res = promql_at(prometheus, f"histogram_quantile(0.99, sum by (le) ({sel}) - sum by (le) ({sel} offset {d}ms))", t1)
    prom_p99 = float(res[0]["value"][1])
    b = bucket_of(prom_p99)
    # Within the bucket resolution: the client's p99 falls in the bucket Prometheus' estimate is
    # in, or one bucket either side (the client's time also holds the loopback round trip and
    # its own parsing, and the quantile is interpolated linearly inside its bucket).
    # A sanitizer build is several times slower on the socket path the server cannot time (a
    # request waiting to be read, a reply to be taken), and it loads the machine more: two
    # buckets either side there. The release build is held to one.
    k = 2 if SANITIZED else 1
    lo = BOUNDS[b - 1 - k] if b - 1 - k >= 0 else 0.0
    hi = BOUNDS[b + k] if b + k < len(BOUNDS) else float("inf")
    return p99, prom_p99, lo, hi


def test_p99_from_prometheus_matches_the_client(srv, prometheus, tmp_path):
    body = tmp_path / "busy.json"
    # CONNS connections on one worker and a model of milliseconds: a request's time is the
    # server's (its queue and compute), not the loopback's or wrk's, which no server can see
    body.write_bytes(json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}).encode())
    raise_server_priority(srv.proc.pid)
    # one request first, so that the series exists (and is scraped) before the first window
    assert requests.post(srv.url("/v2/models/busy/infer"), data=body.read_bytes(), timeout=timeout(30)).status_code == 200
    # On a machine shared with other busy processes a pause of wrk's own (a reply waiting in its
    # socket buffer) lands in the client's tail and no server can see it: up to three windows,
    # each compared on its own. A histogram that measures the wrong thing (a stage, not the
    # whole; the wrong unit) misses in every window.
    tries = []
    for _ in range(3):
        p99, prom_p99, lo, hi = one_load(srv, prometheus, body)
        tries.append(f"client p99 {p99 * 1e3:.3f} ms, Prometheus p99 {prom_p99 * 1e3:.3f} ms "
                     f"(allowed {lo * 1e3:.3f}..{hi * 1e3:.3f} ms)")
        if lo <= p99 <= hi:
            break
    else:
        raise AssertionError("no window agreed:\n" + "\n".join(tries))
    print("\n".join(tries))
    # and Prometheus reads the same stage histograms the server exposes
    stages = promql(prometheus, 'sum by (stage) (inferd_request_stage_duration_seconds_count{model="busy"})')
    assert {r["metric"]["stage"] for r in stages} == {"queue", "batch", "compute", "serialize"}, stages
    up = promql(prometheus, 'up{job="inferd"}')
    assert up and up[0]["value"][1] == "1", up


def test_promtool_check_metrics(srv):
    text = scrape(srv)
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    problems = [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]
    other = [p for p in problems if not TRITON_NAMES.match(p)]
    assert not other, "promtool check metrics:\n" + "\n".join(other)
    # a parse error would have stopped it before any lint line: make sure it got through the lot
    assert res.returncode in (0, 3), (res.returncode, problems)


def test_promtool_check_rules():
    res = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def names_in_promql(expr):
    """The metric names an expression uses (ours and Triton's and process_*)."""
    return set(re.findall(r"\b((?:inferd|nv|process)_[a-zA-Z0-9_]+)", expr))


def test_every_name_in_dashboard_and_rules_exists(srv):
    samples, types = parse_exposition(scrape(srv))
    present = {n for n, _, _ in samples} | set(types)
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v.get("type") == "query"]
    rules = open(RULES).read()
    exprs += re.findall(r"expr:\s*\|?\s*\n?((?:.*\n)*?)\s+for:", rules)
    used = set().union(*(names_in_promql(e) for e in exprs))
    assert len(used) > 10, used
    missing = {n for n in used - present - ADDED_ELSEWHERE if not TRAFFIC_NAMES.match(n)}
    assert not missing, f"deploy/ uses names /metrics lacks: {sorted(missing)}"


def test_exposition_shape_and_counts(srv):
    """Cumulative buckets ending in +Inf == _count; Triton's counters agree with ours; a 4xx
    counts as a failure; gRPC requests get protocol="grpc"; the HTTP port serves /metrics too."""
    before, _ = parse_exposition(scrape(srv))
    ok = requests.post(srv.url("/v2/models/churn/infer"), data=churn_body(3),
                       headers={"Content-Type": "application/json"}, timeout=timeout(10))
    assert ok.status_code == 200
    bad = requests.post(srv.url("/v2/models/churn/infer"), data=b'{"inputs": [{"name": "input", "datatype": "FP32", '
                        b'"shape": [1, 11], "data": [1,2,3,4,5,6,7,8,9,10,11]}]}',
                        headers={"Content-Type": "application/json"}, timeout=timeout(10))
    assert bad.status_code == 400
    with channel(srv) as ch:
        stub = pbg.GRPCInferenceServiceStub(ch)
        for _ in range(3):
            stub.ModelInfer(infer_request("churn", [("input", "FP32", np.array([CHURN_ROW], np.float32))]),
                            timeout=timeout(10))
    text = scrape(srv, http_port=True)
    after, types = parse_exposition(text)
    assert types["inferd_request_duration_seconds"] == "histogram"
    assert types["nv_inference_request_success"] == "counter"
    assert types["nv_inference_pending_request_count"] == "gauge"

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("inferd_request_duration_seconds_count", model="churn", protocol="http", status_class="2xx") == 1
    assert delta("inferd_request_duration_seconds_count", model="churn", protocol="http", status_class="4xx") == 1
    assert delta("inferd_request_duration_seconds_count", model="churn", protocol="grpc", status_class="2xx") == 3
    assert delta("nv_inference_request_success", model="churn") == 4
    assert delta("nv_inference_request_failure", model="churn", reason="OTHER") == 1
    assert delta("nv_inference_count", model="churn") == 6  # rows: 3 + 3 x 1
    assert delta("inferd_batch_size_count", model="churn") == 4
    assert value(after, "nv_inference_pending_request_count", model="churn") == 0
    assert value(after, "inferd_model_ready", model="churn", version="1") == 1
    assert value(after, "inferd_model_load_duration_seconds", model="churn") > 0
    assert delta("inferd_received_bytes_total", protocol="grpc") > 0
    assert value(after, "process_resident_memory_bytes") > 1e6
    assert value(after, "process_open_fds") > 3
    # every histogram: cumulative, non-decreasing buckets, +Inf equal to _count
    series = {}
    for n, l, v in after:
        if n.endswith("_bucket"):
            key = (n[:-7], tuple(sorted((k, x) for k, x in l.items() if k != "le")))
            series.setdefault(key, []).append((l["le"], v))
    assert series
    for (name, key), buckets in series.items():
        vals = [v for _, v in buckets]
        assert vals == sorted(vals), (name, key, buckets)
        assert buckets[-1][0] == "+Inf"
        count = value(after, name + "_count", **dict(key))
        assert buckets[-1][1] == count, (name, key)
    # no request ids, no keys in labels: the label names are the documented bounded set (drift's
    # feature names come from the model's profile, not from requests)
    label_names = set().union(*(set(l) for _, l, _ in after))
    assert label_names <= {"model", "version", "protocol", "status_class", "stage", "le", "reason", "state",
                           "feature", "statistic", "result"}, label_names


def test_metrics_port_serves_metrics_only(srv):
    r = requests.get(f"http://127.0.0.1:{srv.metrics_port}/v2/health/ready", timeout=timeout(10))
    assert r.status_code == 404
    assert "error" in r.json()


def test_metrics_off(server_factory):
    s = server_factory(EXAMPLE_REPO, args=["--metrics", "off", "--grpc-port", str(free_port())])
    r = s.get("/metrics")
    assert r.status_code == 404 and "metrics are off" in r.json()["error"]


def test_other_modules_metrics_on_metrics(tmp_path):
    """Tracing's export counters, drift's scores and payload capture's counters are collectors
    of the registry: with those features on they are on /metrics, and a collector that cannot
    be reached (nothing listens at the OTLP endpoint) shows up as counted drops."""
    from conftest import Server
    repo = str(tmp_path / "repo")
    shutil.copytree(os.path.join(EXAMPLE_REPO, "churn"), os.path.join(repo, "churn"))
    dead = free_port()  # nothing listens here
    s = Server(repo, args=["--grpc-port", str(free_port()), "--state-dir", str(tmp_path / "state"),
                           "--otlp-endpoint", f"http://127.0.0.1:{dead}", "--otlp-export-interval-ms", "50",
                           "--capture-dir", str(tmp_path / "cap"), "--capture-percent", "100"],
               workdir=str(tmp_path))
    s.start()
    try:
        for _ in range(5):
            r = s.session.post(s.url("/v2/models/churn/infer"), data=churn_body(), timeout=timeout(10))
            assert r.status_code == 200, r.text

        def dropped():
            samples, _ = parse_exposition(s.session.get(s.url("/metrics"), timeout=timeout(10)).text)
            return value(samples, "inferd_trace_spans_dropped_total", reason="export_failed") or 0

        wait_until(lambda: dropped() > 0, timeout(20))
        text = s.session.get(s.url("/metrics"), timeout=timeout(10)).text
        for family in ("inferd_trace_requests_sampled_total", "inferd_trace_exports_total",
                       "inferd_feature_drift", "inferd_drift_window_samples"):
            assert f"# TYPE {family} " in text, family
        assert re.search(r'^inferd_feature_drift\{model="churn",version="1",feature="tenure_months",'
                         r'statistic="psi"\} ', text, re.M)
        assert "# TYPE inferd_capture" in text
    finally:
        assert s.stop() == 0
        s.check_sanitizers()


def test_batch_wait_is_its_own_stage(tmp_path):
    """A lone request to a model whose batcher waits max_queue_delay_us for company spends that
    wait in stage="batch" (an instance was free all along), not in stage="queue"."""
    from conftest import Server
    repo = str(tmp_path / "repo")
    model, config = mtm.batched()  # add_sub with a batch dimension
    mtm.save(repo, "held", model, config=dict(config, dynamic_batching={"max_queue_delay_us": 200000}))
    s = Server(repo, args=["--grpc-port", str(free_port()), "--state-dir", str(tmp_path / "state")],
               workdir=str(tmp_path))
    s.start()
    try:
        body = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}
                           for n in ("a", "b")]}
        for _ in range(3):  # one at a time: each waits the whole delay alone
            r = s.session.post(s.url("/v2/models/held/infer"), json=body, timeout=timeout(20))
            assert r.status_code == 200, r.text
        samples, _ = parse_exposition(s.session.get(s.url("/metrics"), timeout=timeout(10)).text)
        def mean(stage):
            n = value(samples, "inferd_request_stage_duration_seconds_count", model="held", stage=stage)
            return value(samples, "inferd_request_stage_duration_seconds_sum", model="held", stage=stage) / n
        # The batcher lets a lone request go max_queue_delay_us after it arrived, and the hold
        # counts from then (an instance was free), however late a worker first looked at it on
        # a loaded machine: the whole 200 ms. Less only by the moment a worker takes to mark its
        # instance free after posting the previous reply (the next request may arrive first).
        assert mean("batch") >= 0.19, (mean("batch"), mean("queue"))
        assert mean("queue") < 0.05, (mean("batch"), mean("queue"))  # never waiting for an instance
    finally:
        assert s.stop() == 0
        s.check_sanitizers()
