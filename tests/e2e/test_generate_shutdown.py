"""SIGTERM while token streams are running and outlive the drain timeout (docs/generate.md): the
server stops within the timeout plus a bound, exits 0 with no sanitizer report, and every client
sees its stream end (closed or finished), none hangs. Streams over HTTP SSE (/v1/completions),
Triton's generate_stream and gRPC ModelStreamInfer at once, on tinylm_one (lm_repos.py), which
decodes one sequence at a time: the others wait in the engine, so the work in flight lasts
seconds, far longer than the 100 ms drain."""

import signal
import threading
import time

import grpc
import requests

from conftest import Server, free_port, timeout
from grpc_stubs import pb, pbg
from lm_repos import one_at_a_time_repo

DRAIN_MS = 100


def test_sigterm_with_streams_that_outlive_the_drain(tmp_path, logs_dir):
    repo = one_at_a_time_repo(tmp_path)
    gport = free_port()
    srv = Server(repo, args=["--grpc-port", str(gport), "--drain-timeout-ms", str(DRAIN_MS)], workdir=logs_dir)
    srv.start()
    try:
        first_token = threading.Event()
        ended = {}

        def sse(i, path, body):
            try:
                with requests.post(srv.url(path), json=body, stream=True, timeout=timeout(60)) as r:
                    assert r.status_code == 200, r.text
                    lines = r.iter_lines()
                    last = b""
                    for line in lines:
                        if line.startswith(b"data:"):
                            first_token.set()
                            last = line
                    ended[i] = ("shutdown" if b"the server is shutting down" in last else "finished"
                                if last == b"data: [DONE]" else "cut", last[:120])
            except (requests.RequestException, ConnectionError) as exc:
                ended[i] = ("closed", type(exc).__name__)  # the connection went before an end event

        def grpc_stream(i):
            ch = grpc.insecure_channel(f"127.0.0.1:{gport}")
            req = pb.ModelInferRequest(model_name="tinylm_one")
            t = req.inputs.add(name="text_input", datatype="BYTES", shape=[1])  # noqa: E741
            t.contents.bytes_contents.append(b"the grpc stream")
            req.parameters["max_tokens"].int64_param = 80
            req.parameters["temperature"].double_param = 0.0
            try:
                it = pbg.GRPCInferenceServiceStub(ch).ModelStreamInfer(iter([req]), timeout=timeout(60))
                last = None
                for r in it:
                    first_token.set()
                    last = r
                ended[i] = ("shutdown" if last and "shutting down" in last.error_message else "finished", "")
            except grpc.RpcError as exc:
                ended[i] = ("shutdown" if "shutting down" in (exc.details() or "") else "closed", exc.code().name + " " + str(exc.details()))
            finally:
                ch.close()

        body = {"model": "tinylm_one", "prompt": "a long story", "max_tokens": 80, "temperature": 0, "stream": True}
        threads = [threading.Thread(target=sse, args=(i, "/v1/completions", dict(body, prompt=f"story {i}")))
                   for i in range(14)]
        threads += [threading.Thread(target=sse, args=(14 + i, "/v2/models/tinylm_one/generate_stream",
                                                       {"text_input": f"tale {i}",
                                                        "parameters": {"max_tokens": 80, "temperature": 0}}))
                    for i in range(4)]
        threads += [threading.Thread(target=grpc_stream, args=(18 + i,)) for i in range(2)]
        for t in threads:
            t.start()
        assert first_token.wait(timeout(60)), "no stream started"
        time.sleep(0.2)  # the first stream is decoding, the others wait in the engine
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        code = srv.wait_exit(timeout(30))
        stopped_s = time.monotonic() - t0
        for t in threads:
            t.join(timeout(30))
        assert not any(t.is_alive() for t in threads), f"a client's stream never ended: {ended}"
        assert sorted(ended) == list(range(20)), ended
        # one sequence at a time: most were still waiting or decoding when the drain ran out, and
        # each ends with the engine's reason (an HTTP stream's error event, a gRPC stream's error
        # response), never a cut connection or gRPC core's own cancellation
        kinds = [k for k, _ in ended.values()]
        assert set(kinds) <= {"finished", "shutdown"}, ended
        assert kinds.count("shutdown") >= 10, ended
        assert code == 0, srv.stderr()[-4000:]
        srv.check_sanitizers()
        assert stopped_s < DRAIN_MS / 1000 + timeout(10), f"stopped after {stopped_s:.1f} s"
    finally:
        if srv.alive():
            srv.proc.kill()
            srv.proc.wait()
