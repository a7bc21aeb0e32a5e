"""Reload under load (issue 10): 64 clients on their own connections (32 V2 JSON over HTTP
keep-alive, 32 gRPC ModelInfer) while a model's versions are added, replaced (a new model file)
and removed 20 times, once found by poll mode and once through the repository API. Every answer
must be a 2xx from a version instance that was READY at some point between the request's send
and its reply; the one error allowed is a 404 for a version named explicitly that had been
removed by then. Through the API, a second model is also unloaded and loaded again (with a new
file) every cycle while a quarter of the requests go to it: those must be 2xx from its
current instance, the one error allowed being 503 / UNAVAILABLE once its unload has begun.
Latency during reloads is measured in bench/reload_under_load.sh, not here."""

import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import requests

import make_test_models as tm
from conftest import timeout, wait_until
from grpc_stubs import grpc_server_factory, infer_request, pb, pbg  # noqa: F401

CLIENTS = 64
CYCLES = 20
# y = x * factor; each model file written gets a factor of its own, version * 1000 + generation,
# so an answer tells which instance (not only which version) computed it.
FIRST_ROLLING = 3


class Timeline:
    """What the cycle script knows about when each instance and version may or must serve.

    possible[factor] = [start, end]: the instance may be READY from the moment the action that
    creates it began until the moment the script saw it gone (end None: still there). A 200 from
    it is valid when that interval overlaps [send, reply].
    present[version] = [start, end]: the version is certainly routable from the moment the
    script saw it READY until the action that removes it began. A 404 naming it is an error when
    [send, reply] lies inside that interval."""

    def __init__(self):
        self.lock = threading.Lock()
        self.possible = {}
        self.present = {}

    def instance_may_start(self, factor, t):
        with self.lock:
            self.possible.setdefault(factor, []).append([t, None])

    def instance_gone(self, factor, t):
        with self.lock:
            self.possible[factor][-1][1] = t

    def version_present(self, version, t):
        with self.lock:
            self.present.setdefault(version, []).append([t, None])

    def version_removing(self, version, t):
        with self.lock:
            self.present[version][-1][1] = t

    def instance_valid(self, factor, ts, tr):
        return any(s <= tr and (e is None or e >= ts) for s, e in self.possible.get(factor, []))

    def version_certainly_present(self, version, ts, tr):
        return any(s <= ts and (e is None or e >= tr) for s, e in self.present.get(version, []))


def write_version(repo, version, factor):
    """<repo>/vm/<version>/model.onnx computing y = x * factor, renamed in as a whole folder."""
    tmp = os.path.join(repo, f".tmp-{version}-{time.monotonic_ns()}")
    tm.save(tmp, "vm", tm.versioned(factor), version=version)
    os.rename(os.path.join(tmp, "vm", str(version)), os.path.join(repo, "vm", str(version)))
    shutil.rmtree(tmp)


def replace_file(repo, version, factor, model="vm"):
    """Replaces a version's model file in one rename, as a deploy tool would."""
    path = os.path.join(repo, model, str(version), "model.onnx")
    with open(path + ".tmp", "wb") as f:
        f.write(tm.versioned(factor).SerializeToString())
    os.replace(path + ".tmp", path)


def index(srv):
    r = srv.post("/v2/repository/index")
    assert r.status_code == 200, r.text
    return {(e["name"], e.get("version", "")): e for e in r.json()}


def explicit_factor(srv, version):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    r = srv.infer("vm", body, version=version)
    return r.json()["outputs"][0]["data"][0] if r.status_code == 200 else None


@pytest.mark.parametrize("control", ["poll", "api"])
def test_reloads_under_64_clients(grpc_server_factory, tmp_path, control):
    repo = str(tmp_path / "repo")
    os.makedirs(os.path.join(repo, "vm"))
    tm.save(repo, "vm", tm.versioned(1000), version=1,
            config=dict(tm.VERSIONED_CONFIG, version_policy={"all": True}))
    write_version(repo, 2, 2000)
    write_version(repo, FIRST_ROLLING, FIRST_ROLLING * 1000)
    tl = Timeline()
    # "aux" (API runs only): one version, factors 100 + generation; unloaded and loaded each cycle
    aux = control == "api"
    tl_aux = Timeline()
    if aux:
        tm.save(repo, "aux", tm.versioned(100), version=1, config=tm.VERSIONED_CONFIG)
    t = time.monotonic()
    for f in (1000, 2000, FIRST_ROLLING * 1000):
        tl.instance_may_start(f, t)
    tl_aux.instance_may_start(100, t)
    args = (["--model-control-mode", "poll", "--repository-poll-secs", "1"] if control == "poll"
            else ["--model-control-mode", "explicit", "--load-model", "vm", "--load-model", "aux"])
    g = grpc_server_factory(repo, args=args)
    srv = g.srv
    t = time.monotonic()
    for v in (1, 2, FIRST_ROLLING):
        tl.version_present(v, t)
    tl_aux.version_present(1, t)

    stop = threading.Event()
    rolling = [FIRST_ROLLING]  # the rolling version clients may name: certainly READY, or None
    aux_loaded = [aux]  # whether clients may send to aux: the script has it certainly loaded
    records = [[] for _ in range(CLIENTS)]
    body1 = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}

    def target(n):
        """(model, version): a quarter of the requests to aux while it is loaded; of vm's, every
        third names no version, every third version 1, every third the rolling version (when
        the script has it READY)."""
        if n % 4 == 3 and aux_loaded[0]:
            return "aux", ""
        k = n % 3
        if k == 0:
            return "vm", ""
        if k == 1:
            return "vm", "1"
        v = rolling[0]
        return "vm", (str(v) if v is not None else "")

    def rest(i):
        s = requests.Session()
        n = 0
        while not stop.is_set():
            model, ver = target(n)
            n += 1
            path = f"/v2/models/{model}/versions/{ver}/infer" if ver else f"/v2/models/{model}/infer"
            ts = time.monotonic()
            try:
                r = s.post(srv.url(path), json=body1, timeout=timeout(30))
                tr = time.monotonic()
                if r.status_code == 200:
                    j = r.json()
                    records[i].append(("rest", model, ver, ts, tr, 200, j.get("model_version"), j["outputs"][0]["data"][0], ""))
                else:
                    records[i].append(("rest", model, ver, ts, tr, r.status_code, None, None, r.text[:200]))
            except requests.RequestException as e:
                records[i].append(("rest", model, ver, ts, time.monotonic(), "exception", None, None, repr(e)[:200]))
        s.close()

    def rpc(i):
        # a channel of its own, not shared with the other channels' subchannel pool: one
        # HTTP/2 connection per client
        ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)])
        stub = pbg.GRPCInferenceServiceStub(ch)
        reqs = {}
        n = 0
        while not stop.is_set():
            model, ver = target(n)
            n += 1
            req = reqs.get((model, ver))
            if req is None:
                req = reqs[(model, ver)] = infer_request(model, [("x", "FP32", np.ones((1, 1), np.float32))],
                                                         version=ver)
            ts = time.monotonic()
            try:
                out = stub.ModelInfer(req, timeout=timeout(30))
                tr = time.monotonic()
                y = (np.frombuffer(out.raw_output_contents[0], np.float32)[0] if out.raw_output_contents
                     else out.outputs[0].contents.fp32_contents[0])
                records[i].append(("grpc", model, ver, ts, tr, 200, out.model_version, float(y), ""))
            except grpc.RpcError as e:
                code = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.UNAVAILABLE: 503}.get(e.code(), str(e.code()))
                records[i].append(("grpc", model, ver, ts, time.monotonic(), code, None, None, (e.details() or "")[:200]))
        ch.close()

    threads = [threading.Thread(target=rest if i % 2 == 0 else rpc, args=(i,), daemon=True) for i in range(CLIENTS)]
    for th in threads:
        th.start()
    wait_until(lambda: all(records), timeout(30), what="every client answered once")
    t_start = time.monotonic()
    windows = []  # [action start, settled] per cycle
    try:
        time.sleep(0.3)  # some steady traffic first
        for k in range(CYCLES):
            old, new = FIRST_ROLLING + k, FIRST_ROLLING + k + 1
            old_v2, new_v2 = 2000 + k, 2000 + k + 1
            t0 = time.monotonic()
            # this cycle adds version `new`, replaces version 2's file and removes version `old`
            tl.instance_may_start(new * 1000, t0)
            tl.instance_may_start(new_v2, t0)
            rolling[0] = None
            tl.version_removing(old, t0)
            write_version(repo, new, new * 1000)
            replace_file(repo, 2, new_v2)
            shutil.rmtree(os.path.join(repo, "vm", str(old)))
            if control == "api":
                if k % 2 == 0:
                    r = srv.post("/v2/repository/models/vm/load")
                    assert r.status_code == 200, (k, r.status_code, r.text)
                else:
                    g.infer.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="vm"), timeout=timeout(30))

            def settled():
                idx = index(srv)
                return (idx.get(("vm", str(new)), {}).get("state") == "READY" and ("vm", str(old)) not in idx
                        and explicit_factor(srv, 2) == float(new_v2) and explicit_factor(srv, None) == float(new * 1000))

            wait_until(settled, timeout(20), interval=0.01, what=f"cycle {k} settled")
            t1 = time.monotonic()
            tl.instance_gone(old * 1000, t1)
            tl.instance_gone(old_v2, t1)
            tl.version_present(new, t1)
            rolling[0] = new
            if aux:  # unload aux, give it a new file, load it again (REST and gRPC alternately)
                ta = time.monotonic()
                aux_loaded[0] = False
                tl_aux.version_removing(1, ta)
                if k % 2 == 0:
                    r = srv.post("/v2/repository/models/aux/unload")
                    assert r.status_code == 200, (k, r.status_code, r.text)
                else:
                    g.infer.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="aux"), timeout=timeout(30))
                tb = time.monotonic()  # no new request reaches the old instance after this
                tl_aux.instance_gone(100 + k, tb)
                tl_aux.instance_may_start(100 + k + 1, tb)
                replace_file(repo, 1, 100 + k + 1, model="aux")
                if k % 2 == 1:
                    r = srv.post("/v2/repository/models/aux/load")
                    assert r.status_code == 200, (k, r.status_code, r.text)
                else:
                    g.infer.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="aux"), timeout=timeout(30))
                tl_aux.version_present(1, time.monotonic())
                aux_loaded[0] = True
                t1 = time.monotonic()
            windows.append((t0, t1))
            time.sleep(0.1)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout(30))
    elapsed = time.monotonic() - t_start

    bad, total, during, gone, aux_unloaded, aux_ok = [], 0, 0, 0, 0, 0
    for rec in (r for rs in records for r in rs):
        kind, model, ver, ts, tr, status, mv, y, text = rec
        total += 1
        if any(s <= tr and ts <= e for s, e in windows):
            during += 1
        if model == "aux":
            if status == 200 and float(int(y)) == y and mv == "1" and tl_aux.instance_valid(int(y), ts, tr):
                aux_ok += 1
            elif status == 503 and not tl_aux.version_certainly_present(1, ts, tr):
                aux_unloaded += 1  # sent to aux while its unload had begun
            else:
                bad.append(("aux: not its current instance" if status == 200 else "aux: error", rec))
            continue
        if status == 200:
            factor = int(y)
            ok = (float(factor) == y and mv == str(factor // 1000) and (not ver or ver == mv)
                  and tl.instance_valid(factor, ts, tr))
            if not ok:
                bad.append(("not from an instance READY at the time", rec))
        elif status == 404 and ver and not tl.version_certainly_present(int(ver), ts, tr):
            gone += 1  # a version named explicitly that had been removed
            continue
        else:
            bad.append(("error", rec))
    print(f"{control}: {CYCLES} cycles in {elapsed:.1f} s, {total} requests from {CLIENTS} clients, "
          f"{during} overlapping a reload, {gone} 404 for a removed version, "
          f"{aux_ok} 200 and {aux_unloaded} 503 from aux, {len(bad)} bad")
    assert not bad, bad[:10]
    assert all(len(r) > 0 for r in records)
    assert during > 0
    assert aux_ok > 0 or not aux
