"""A generation waiting for a place in the batch (all max_sequences busy) is held to its deadline
while it waits (docs/generate.md): with one sequence decoding at a time and a queue of streams
ahead of it, a request with X-Request-Timeout-Ms gets its 504 while the queue ahead is still
being worked, not when its turn comes; and one whose client leaves behind a flood of pipelined
requests is cancelled at once."""

import json
import socket
import threading
import time

import requests

from conftest import running_server, timeout, wait_until
from lm_repos import one_at_a_time_repo


class Queue:
    """n streams of 80 tokens on tinylm_one, each on its own connection, started together: one
    decodes, the others wait. `order` gets "stream i" as each ends; the test adds its own events
    to it, so their place among the ends shows what happened while the queue was worked."""

    def __init__(self, srv, n=12):
        self.order, self.lock, self.started = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._stream, args=(srv, i)) for i in range(n)]
        for t in self.threads:
            t.start()
        assert self.started.wait(timeout(60)), "no stream started"

    def _stream(self, srv, i):
        body = {"model": "tinylm_one", "prompt": f"queue {i}", "max_tokens": 80, "temperature": 0, "stream": True}
        with requests.post(srv.url("/v1/completions"), json=body, stream=True, timeout=timeout(120)) as r:
            assert r.status_code == 200, r.text
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    self.started.set()
        self.note(f"stream {i}")

    def note(self, event):
        with self.lock:
            self.order.append(event)

    def join(self):
        for t in self.threads:
            t.join(timeout(120))
        return self.order


def test_a_waiting_generation_ends_at_its_deadline(tmp_path, logs_dir):
    repo = one_at_a_time_repo(tmp_path)
    with running_server(repo, workdir=logs_dir) as srv:
        queue = Queue(srv)
        r = requests.post(srv.url("/v1/completions"), headers={"X-Request-Timeout-Ms": "200"},
                          json={"model": "tinylm_one", "prompt": "in a hurry", "max_tokens": 8, "temperature": 0},
                          timeout=timeout(120))
        queue.note("deadline")
        order = queue.join()
        assert r.status_code == 504, r.text
        assert "waited for a place in the batch" in r.json()["error"]["message"], r.text
        # answered while the streams ahead of it were still being worked, not after them
        assert order.index("deadline") < len(order) - 1, order
        metrics = srv.get("/metrics").text
        assert 'inferd_generate_active_sequences{model="tinylm_one"} 0' in metrics


def cancelled_count(srv):
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith('inferd_generate_sequences_total{model="tinylm_one",finish_reason="cancelled"}'):
            return float(line.split()[-1])
    return 0.0


def test_a_client_that_leaves_behind_a_pipelined_flood_is_seen_at_once(tmp_path, logs_dir):
    """The client sends a streaming generation, then more than 64 KiB of pipelined requests (the
    server stops reading them while the stream runs), then closes: its generation, still waiting
    behind the others, is cancelled at once, not when its turn comes and the write fails."""
    repo = one_at_a_time_repo(tmp_path)
    with running_server(repo, workdir=logs_dir) as srv:
        queue = Queue(srv)
        body = json.dumps({"model": "tinylm_one", "prompt": "leaving", "max_tokens": 80, "stream": True}).encode()
        head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        # 336 KB: past the 64 KiB the server reads ahead, and past what one read takes
        flood = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n" * 8000
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout(30))
        s.sendall(head + body + flood)
        time.sleep(0.3)  # the server has read its head and the first 64 KiB, and stopped reading
        s.close()
        wait_until(lambda: cancelled_count(srv) >= 1, timeout(60), interval=0.02, what="the left generation cancelled")
        queue.note("cancelled")
        order = queue.join()
        assert order.index("cancelled") < len(order) - 1, order
