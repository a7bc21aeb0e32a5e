"""A generation waiting for a place in the batch (all max_sequences busy) is held to its deadline
while it waits (docs/generate.md): with one sequence decoding at a time and a queue of streams
ahead of it, a request with X-Request-Timeout-Ms gets its 504 while the queue ahead is still
being worked, not when its turn comes."""

import threading

import requests

from conftest import running_server, timeout
from lm_repos import one_at_a_time_repo


def test_a_waiting_generation_ends_at_its_deadline(tmp_path, logs_dir):
    repo = one_at_a_time_repo(tmp_path)
    with running_server(repo, workdir=logs_dir) as srv:
        order, lock = [], threading.Lock()
        started = threading.Event()

        def stream(i):
            body = {"model": "tinylm_one", "prompt": f"queue {i}", "max_tokens": 80, "temperature": 0, "stream": True}
            with requests.post(srv.url("/v1/completions"), json=body, stream=True, timeout=timeout(120)) as r:
                assert r.status_code == 200, r.text
                for line in r.iter_lines():
                    if line.startswith(b"data:"):
                        started.set()
            with lock:
                order.append(f"stream {i}")

        ahead = [threading.Thread(target=stream, args=(i,)) for i in range(12)]
        for t in ahead:
            t.start()
        assert started.wait(timeout(60))
        r = requests.post(srv.url("/v1/completions"), headers={"X-Request-Timeout-Ms": "200"},
                          json={"model": "tinylm_one", "prompt": "in a hurry", "max_tokens": 8, "temperature": 0},
                          timeout=timeout(120))
        with lock:
            order.append("deadline")
        for t in ahead:
            t.join(timeout(120))
        assert r.status_code == 504, r.text
        assert "waited for a place in the batch" in r.json()["error"]["message"], r.text
        # answered while the streams ahead of it were still being worked, not after them
        assert order.index("deadline") < len(order) - 1, order
        metrics = srv.get("/metrics").text
        assert 'inferd_generate_active_sequences{model="tinylm_one"} 0' in metrics
