"""Continuous batching with members coming and going (generate/engine.c): the batch's KV cache
stays in one set of batch tensors between decode steps and is rebuilt (rows gathered, compacted,
the common left padding trimmed) only when a sequence joins after its prefill or leaves. Streams
that join one after another while others decode, leave at different steps (different max_tokens)
and a client that leaves mid-stream must each give exactly the greedy text they give alone: a
row copied to the wrong place, a stale row or a wrong padding changes the text."""

import http.client
import json
import os
import subprocess
import threading

import pytest

from conftest import PYTHON, running_server, timeout

HERE = os.path.dirname(os.path.abspath(__file__))
LM = "tinylm_slow"  # a decode step of a few ms: the streams overlap for many steps


@pytest.fixture(scope="module")
def lm_server(tmp_path_factory, logs_dir):
    d = str(tmp_path_factory.mktemp("lm"))
    res = subprocess.run([PYTHON, os.path.join(HERE, "make_tiny_lm.py"), d], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    with running_server(d, workdir=logs_dir) as srv:
        yield srv


def solo(srv, prompt, max_tokens):
    r = srv.post(f"/v2/models/{LM}/generate", data=json.dumps(
        {"text_input": prompt, "parameters": {"max_tokens": max_tokens, "temperature": 0}}),
        headers={"Content-Type": "application/json"}, timeout=timeout(60))
    assert r.status_code == 200, r.text
    return r.json()


class Stream(threading.Thread):
    """One generate_stream client: starts once `after` has received `after_events` events, reads
    the SSE events and gathers text_output; with leave_after it closes the connection after that
    many events (a client that leaves)."""

    def __init__(self, srv, prompt, max_tokens, after=None, after_events=0, leave_after=None):
        super().__init__(daemon=True)
        self.srv, self.prompt, self.max_tokens = srv, prompt, max_tokens
        self.after, self.after_events, self.leave_after = after, after_events, leave_after
        self.events = 0
        self.progress = threading.Condition()
        self.text, self.finish, self.error = "", None, None

    def wait_events(self, n):
        with self.progress:
            ok = self.progress.wait_for(lambda: self.events >= n or not self.is_alive(), timeout(60))
        assert ok and (self.events >= n or self.error is None), f"stream stalled at {self.events} events: {self.error}"

    def run(self):
        try:
            if self.after is not None:
                self.after.wait_events(self.after_events)
            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=timeout(60))
            body = json.dumps({"text_input": self.prompt,
                               "parameters": {"max_tokens": self.max_tokens, "temperature": 0}})
            conn.request("POST", f"/v2/models/{LM}/generate_stream", body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\n")
                if not line.startswith("data: "):
                    continue
                ev = json.loads(line[len("data: "):])
                self.text += ev.get("text_output", "")
                if ev.get("finish_reason"):
                    self.finish = ev["finish_reason"]
                with self.progress:
                    self.events += 1
                    self.progress.notify_all()
                if self.leave_after is not None and self.events >= self.leave_after:
                    conn.sock.close()  # the client leaves mid-stream
                    break
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            with self.progress:
                self.progress.notify_all()


def metric(srv, name, **labels):
    total = 0.0
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# prompts of different lengths (different cache lengths: rows padded differently), max_tokens
# that end them at different steps; None: the stream runs to max_tokens
CASES = [
    ("In the beginning", 60),
    ("and the earth was without form, and void; and darkness", 14),
    ("x", 40),
    ("Let there be light: and there was light. And God saw", 25),
    ("the evening and the morning were the first day", 50),
    ("and it was so", 8),
    ("And God called the firmament Heaven", 33),
]


def test_streams_that_join_and_leave_at_different_steps_each_give_their_solo_text(lm_server):
    srv = lm_server
    alone = [solo(srv, p, m) for p, m in CASES]
    # the comparison means something: the texts differ, and most run to max_tokens
    assert len({a["text_output"] for a in alone}) == len(CASES)
    assert sum(a["finish_reason"] == "length" for a in alone) >= len(CASES) - 1, alone

    steps0 = metric(srv, "inferd_generate_batch_size_count", model=LM)
    rows0 = metric(srv, "inferd_generate_batch_size_sum", model=LM)
    # each stream starts once the one before has 3 events: it joins a batch already decoding; a
    # client that leaves after 5 events is among them, and one more joins after it has left
    streams, prev = [], None
    for i, (p, m) in enumerate(CASES):
        s = Stream(srv, p, m, after=prev, after_events=3)
        streams.append(s)
        prev = s
        if i == 3:
            leaver = Stream(srv, CASES[0][0], 60, after=prev, after_events=2, leave_after=5)
            streams.append(leaver)
            prev = leaver
    late = Stream(srv, CASES[2][0], 40, after=streams[-1], after_events=6)  # joins as others end
    streams.append(late)
    for s in streams:
        s.start()
    for s in streams:
        s.join(timeout(120))
        assert not s.is_alive()
    for s in streams:
        assert s.error is None, s.error

    together = [s for s in streams if s is not leaver and s is not late]
    for (p, m), a, s in zip(CASES, alone, together):
        assert s.text == a["text_output"], (p, m, s.text, a["text_output"])
        assert s.finish == a["finish_reason"], (p, s.finish, a["finish_reason"])
    assert late.text == alone[2]["text_output"]
    # the client that left got the start of its text
    assert leaver.events == 5 and alone[0]["text_output"].startswith(leaver.text)
    # the streams did decode together: the mean batch over these steps is well above one
    steps = metric(srv, "inferd_generate_batch_size_count", model=LM) - steps0
    rows = metric(srv, "inferd_generate_batch_size_sum", model=LM) - rows0
    assert steps > 0 and rows / steps >= 2, (rows, steps)
    assert metric(srv, "inferd_generate_sequences_total", model=LM, finish_reason="cancelled") >= 1
