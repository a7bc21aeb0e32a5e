"""Text generation over HTTP end to end: OpenAI's chat/completions, completions and embeddings
(with the official `openai` npm SDK as the client), Triton's generate and generate_stream, and
the streaming replies under them (conn.c): chunked framing read byte by byte from a raw socket,
HTTP/1.0, pipelining behind a stream, TLS, heartbeats, a client cut off for reading too slowly,
and clients that disconnect mid-stream (the generation stops, its usage is logged).

The models are the example repository's tinylm (a causal LM with a KV cache) and tinyembed (a
sentence encoder), copied into a temporary repository. The disconnect tests rely on tinylm's greedy
text for PROMPT running MAX tokens without an end-of-sequence token (each test checks it first),
so that a generation there can only end early because its client left; at several ms a step the
client's close is seen long before MAX."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import requests

from conftest import EXAMPLE_REPO, REPO_ROOT, Server, free_port, raw_connect, running_server, timeout, wait_until

LM, EMB = "tinylm", "tinyembed"
SDK_DIR = os.path.join(REPO_ROOT, "tests", "openai")
NODE = shutil.which("node") or "/usr/bin/node"
CURL = shutil.which("curl") or "/usr/bin/curl"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
PROMPT = "And God said"


@pytest.fixture(scope="module")
def gen_repo(tmp_path_factory):
    d = tmp_path_factory.mktemp("genrepo")
    for m in (LM, EMB):
        shutil.copytree(os.path.join(EXAMPLE_REPO, m), d / m)
    return str(d)


@pytest.fixture(scope="module")
def gen_server(gen_repo, logs_dir):
    with running_server(gen_repo, args=["--grpc-port", str(free_port())], workdir=logs_dir) as srv:
        yield srv


def post_json(srv, path, body, **kw):
    return srv.post(path, data=json.dumps(body), headers={"Content-Type": "application/json"}, **kw)


# ---- raw HTTP helpers ------------------------------------------------------------------------

def read_head(sock, buf=b""):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the head: {buf[:300]!r}"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    return lines[0], headers, rest


def read_chunked(sock, buf):
    """The chunked body in buf + what follows on sock, checked strictly (hex size, CRLF after
    the size and after the data, the zero chunk and the final CRLF). Returns (body, chunk sizes,
    leftover bytes)."""
    body, sizes = b"", []

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed inside the chunked body after {body[-200:]!r}"
            buf += chunk

    while True:
        while b"\r\n" not in buf:
            need(len(buf) + 1)
        line, buf = buf.split(b"\r\n", 1)
        assert line and all(c in b"0123456789abcdefABCDEF" for c in line), f"bad chunk-size line {line!r}"
        size = int(line, 16)
        sizes.append(size)
        need(size + 2)
        body += buf[:size]
        assert buf[size:size + 2] == b"\r\n", f"chunk data not followed by CRLF: {buf[size:size + 10]!r}"
        buf = buf[size + 2:]
        if size == 0:
            return body, sizes, buf


def sse_events(body):
    """SSE events of a body: (data payloads, comment lines). Every event ends with a blank line."""
    text = body.decode("utf-8")
    assert text.endswith("\n\n"), f"the stream does not end with a whole event: {text[-200:]!r}"
    datas, comments = [], []
    for block in text.split("\n\n")[:-1]:
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            else:
                assert line.startswith("data: "), f"unexpected SSE line {line!r}"
                datas.append(line[len("data: "):])
    return datas, comments


def request_bytes(path, body, version="1.1", extra=""):
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/{version}\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{extra}\r\n").encode() + data


def stream_text(datas):
    return "".join(json.loads(d)["text_output"] for d in datas if not d.startswith("[DONE]"))


# ---- framing -----------------------------------------------------------------------------

def test_generate_stream_is_chunked_sse_and_the_connection_is_reused(gen_server):
    with raw_connect(gen_server.port) as s:
        s.sendall(request_bytes(f"/v2/models/{LM}/generate_stream",
                                {"text_input": PROMPT, "parameters": {"max_tokens": 16, "seed": 3}}))
        status, h, rest = read_head(s)
        assert status == "HTTP/1.1 200 OK", status
        assert h["transfer-encoding"] == "chunked" and "content-length" not in h
        assert h["content-type"].startswith("text/event-stream")
        assert h["cache-control"] == "no-cache" and h.get("x-request-id")
        body, sizes, left = read_chunked(s, rest)
        assert sizes[-1] == 0 and len(sizes) >= 3, sizes  # the head's, pieces, the end
        datas, _ = sse_events(body)
        last = json.loads(datas[-1])
        assert last["finish_reason"] in ("length", "stop") and last["usage"]["completion_tokens"] <= 16
        assert all(json.loads(d)["model_name"] == LM for d in datas)
        # keep-alive: the next request on the same connection is answered
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        status, h, rest = read_head(s, left)
        assert status == "HTTP/1.1 200 OK"


def test_a_request_pipelined_behind_a_stream_waits_for_its_end(gen_server):
    with raw_connect(gen_server.port) as s:
        s.sendall(request_bytes(f"/v2/models/{LM}/generate_stream",
                                {"text_input": PROMPT, "parameters": {"max_tokens": 24, "seed": 4}})
                  + b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        status, h, rest = read_head(s)
        assert h["transfer-encoding"] == "chunked"
        body, sizes, left = read_chunked(s, rest)  # the whole stream comes first...
        datas, _ = sse_events(body)
        assert "finish_reason" in json.loads(datas[-1])
        status, h, rest = read_head(s, left)  # ...then the pipelined answer
        assert status == "HTTP/1.1 200 OK" and json.loads(rest[:int(h["content-length"])]) == {"live": True}


def test_http10_stream_has_no_chunks_and_ends_with_the_connection(gen_server):
    with raw_connect(gen_server.port) as s:
        s.sendall(request_bytes(f"/v2/models/{LM}/generate_stream",
                                {"text_input": PROMPT, "parameters": {"max_tokens": 8, "seed": 3}}, version="1.0"))
        status, h, rest = read_head(s)
        assert status.startswith("HTTP/1.1 200"), status
        assert "transfer-encoding" not in h and "content-length" not in h
        assert h["connection"] == "close"
        body = rest
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    datas, _ = sse_events(body)
    assert "finish_reason" in json.loads(datas[-1])


def test_curl_sse_framing_of_chat_stream_with_usage(gen_server):
    body = {"model": LM, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 10, "seed": 5,
            "stream": True, "stream_options": {"include_usage": True}}
    out = subprocess.run([CURL, "-sSN", "--http1.1", "-H", "Content-Type: application/json", "-d", json.dumps(body),
                          gen_server.url("/v1/chat/completions")], capture_output=True, timeout=timeout(60))
    assert out.returncode == 0, out.stderr
    datas, _ = sse_events(out.stdout)
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == LM for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    assert all(c["usage"] is None for c in chunks[:-1])  # include_usage: null until the last
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] in ("length", "stop") and finish["delta"] == {}
    n_content = sum(1 for c in chunks[1:-2] if c["choices"][0]["delta"].get("content"))
    assert 1 <= n_content <= usage["usage"]["completion_tokens"] <= 10


class HttpsServer(Server):
    def url(self, path):
        return f"https://{self.host}:{self.port}{path}"

    def wait_live(self, seconds=None):
        def live():
            assert self.proc.poll() is None, f"inferd exited early with code {self.proc.returncode}"
            try:
                return self.session.get(self.url("/v2/health/live"), timeout=timeout(1)).status_code == 200
            except requests.RequestException:
                return False
        wait_until(live, timeout(20) if seconds is None else seconds, what="inferd live over HTTPS")


def test_stream_over_tls(gen_repo, server_factory, tmp_path):
    key, cert = str(tmp_path / "k.pem"), str(tmp_path / "c.pem")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    srv = HttpsServer(gen_repo, args=["--grpc-port", str(free_port()), "--tls-cert", cert, "--tls-key", key])
    srv.session.trust_env = False
    srv.session.verify = cert
    try:
        srv.start()
        body = {"text_input": PROMPT, "parameters": {"max_tokens": 12, "seed": 3}}
        out = subprocess.run([CURL, "-sSN", "--cacert", cert, "-H", "Content-Type: application/json", "-d", json.dumps(body),
                              srv.url(f"/v2/models/{LM}/generate_stream")], capture_output=True, timeout=timeout(60))
        assert out.returncode == 0, out.stderr
        datas, _ = sse_events(out.stdout)
        plain = srv.post(f"/v2/models/{LM}/generate", json=body).json()
        assert stream_text(datas) == plain["text_output"] and plain["text_output"]
    finally:
        srv.stop()
    srv.check_clean_exit()


def test_heartbeat_comments_keep_a_silent_stream_alive(gen_repo, server_factory):
    # every 1 ms without a write: the head goes before the prompt's prefill, so comments come
    # between it and the first token, and the SSE clients (curl here, the SDK elsewhere) skip them
    srv = server_factory(gen_repo, args=["--grpc-port", str(free_port()), "--stream-heartbeat-ms", "1"])
    long_prompt = " ".join(["And God said, Let there be light: and there was light."] * 12)
    with raw_connect(srv.port) as s:
        s.sendall(request_bytes(f"/v2/models/{LM}/generate_stream",
                                {"text_input": long_prompt, "parameters": {"max_tokens": 40, "seed": 1}}))
        _, h, rest = read_head(s)
        body, _, _ = read_chunked(s, rest)
    datas, comments = sse_events(body)
    assert comments and all(c == ": keep-alive" for c in comments)
    assert "finish_reason" in json.loads(datas[-1])


# ---- the same text every way ------------------------------------------------------------------

def test_same_prompt_and_seed_give_the_same_text_over_rest_sse_and_triton(gen_server):
    params = {"max_tokens": 20, "seed": 11, "temperature": 0.9, "top_p": 0.95}
    texts = {}
    r = post_json(gen_server, "/v1/completions", {"model": LM, "prompt": PROMPT, **params})
    assert r.status_code == 200, r.text
    texts["completions"] = r.json()["choices"][0]["text"]
    r = post_json(gen_server, "/v1/chat/completions", {"model": LM, "messages": [{"role": "user", "content": PROMPT}], **params})
    texts["chat"] = r.json()["choices"][0]["message"]["content"]
    r = post_json(gen_server, "/v1/completions", {"model": LM, "prompt": PROMPT, "stream": True, **params})
    datas, _ = sse_events(r.content)
    texts["completions sse"] = "".join(json.loads(d)["choices"][0]["text"] for d in datas[:-1])
    r = post_json(gen_server, f"/v2/models/{LM}/generate", {"text_input": PROMPT, "parameters": params})
    texts["generate"] = r.json()["text_output"]
    r = post_json(gen_server, f"/v2/models/{LM}/versions/1/generate_stream", {"text_input": PROMPT, "parameters": params})
    datas, _ = sse_events(r.content)
    texts["generate_stream"] = stream_text(datas)
    # tinylm's chat template wraps a lone user message in nothing, so chat sees the same prompt
    assert len(set(texts.values())) == 1 and texts["generate"], texts
    r = post_json(gen_server, "/v1/completions", {"model": LM, "prompt": PROMPT, **dict(params, seed=12)})
    assert r.json()["choices"][0]["text"] != texts["completions"]  # the seed matters


# ---- the official SDK -------------------------------------------------------------------------

def test_openai_node_sdk(gen_server):
    assert os.path.isdir(os.path.join(SDK_DIR, "node_modules", "openai")), \
        "the openai npm package is missing: scripts/bootstrap.sh installs it (npm ci in tests/openai)"
    out = subprocess.run([NODE, "client.mjs", gen_server.url("/v1"), LM, EMB], cwd=SDK_DIR, capture_output=True,
                         text=True, timeout=timeout(120))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    ids = {m["id"] for m in res["models"]}
    assert {LM, EMB} <= ids and all(m["object"] == "model" and m["owned_by"] == "inferd" for m in res["models"])
    assert res["model"] == {"id": LM, "object": "model"}
    chat, cmpl, stream = res["chat"], res["completion"], res["chat_stream"]
    assert chat["object"] == "chat.completion" and chat["role"] == "assistant" and chat["content"]
    assert chat["usage"]["completion_tokens"] == 12 or chat["finish_reason"] == "stop"
    assert cmpl["object"] == "text_completion" and cmpl["text"] == chat["content"]
    assert stream["text"] == chat["content"] and stream["role"] == "assistant"
    assert stream["usage"] == chat["usage"] and stream["finish_reason"] == chat["finish_reason"]
    assert res["completion_stream"]["text"] == cmpl["text"]
    emb = res["embeddings"]
    assert emb["object"] == "list" and emb["n"] == 2 and emb["dims"] > 8 and emb["usage"]["prompt_tokens"] > 0
    assert abs(sum(x * x for x in emb["first"]) - 1.0) < 1e-4  # L2-normalised
    assert max(abs(a - b) for a, b in zip(emb["first"], res["embeddings_float"]["first"])) < 1e-6  # base64 == float
    err = res["error"]
    assert err["status"] == 400 and err["param"] == "n" and err["type"] == "invalid_request_error"
    assert "only n = 1" in err["message"] and err["name"] == "BadRequestError"


# ---- embeddings ---------------------------------------------------------------------------------

def test_embeddings_mean_pooled_normalised_and_batch_independent(gen_server):
    texts = ["In the beginning God created the heaven and the earth.", "Jesus wept.", "And the evening and the morning"]
    r = post_json(gen_server, "/v1/embeddings", {"model": EMB, "input": texts, "encoding_format": "float"})
    assert r.status_code == 200, r.text
    doc = r.json()
    vecs = [d["embedding"] for d in sorted(doc["data"], key=lambda d: d["index"])]
    for v in vecs:
        assert abs(sum(x * x for x in v) - 1.0) < 1e-4
    # padding to the longest input must not change a shorter input's vector: the mask keeps it out
    for i, t in enumerate(texts):
        alone = post_json(gen_server, "/v1/embeddings", {"model": EMB, "input": t}).json()["data"][0]["embedding"]
        assert max(abs(a - b) for a, b in zip(alone, vecs[i])) < 1e-4
    assert doc["usage"]["prompt_tokens"] == doc["usage"]["total_tokens"] > len(texts)
    # token ids in, the same vector as the text they encode
    ids = [[5, 6, 7], [8, 9]]
    r = post_json(gen_server, "/v1/embeddings", {"model": EMB, "input": ids})
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    r = post_json(gen_server, "/v1/embeddings", {"model": EMB, "input": "Jesus wept.", "dimensions": 16})
    v = r.json()["data"][0]["embedding"]
    assert len(v) == 16 and abs(sum(x * x for x in v) - 1.0) < 1e-4


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,body,status,param,needle", [
    ("/v1/chat/completions", {"model": LM, "messages": [{"role": "user", "content": "x"}], "n": 3}, 400, "n", "only n = 1"),
    ("/v1/chat/completions", {"model": LM, "messages": []}, 400, "messages", "non-empty array"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, 400, "model", "model must be"),
    ("/v1/chat/completions", {"model": LM, "messages": [{"role": "user", "content": "x"}], "temperature": 3}, 400,
     "temperature", "between 0 and 2"),
    ("/v1/chat/completions", {"model": LM, "messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5}, 400,
     "stop", "at most 4"),
    ("/v1/chat/completions", {"model": LM, "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, 400,
     "top_logprobs", "needs logprobs"),
    ("/v1/chat/completions", {"model": LM, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
     400, "tools", "not supported"),
    ("/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, None, "nope"),
    ("/v1/chat/completions", {"model": EMB, "messages": [{"role": "user", "content": "x"}]}, 400, None, "not a generative"),
    ("/v1/completions", {"model": LM, "prompt": "x", "max_tokens": 100000}, 400, None, "context length"),
    ("/v1/completions", {"model": LM, "prompt": ["a", "b"]}, 400, "prompt", "one prompt per request"),
    ("/v1/completions", {"model": LM, "prompt": "x", "max_tokens": 0}, 400, "max_tokens", "at least 1"),
    ("/v1/completions", {"model": LM, "prompt": "x", "echo": True}, 400, "echo", "not supported"),
    ("/v1/embeddings", {"model": EMB, "input": 5}, 400, "input", "input must be"),
    ("/v1/embeddings", {"model": EMB, "input": "x", "encoding_format": "hex"}, 400, "encoding_format", "base64"),
    ("/v1/embeddings", {"model": LM, "input": "x"}, 400, None, "not a sentence encoder"),
    ("/v1/embeddings", {"model": EMB, "input": ""}, 400, None, "empty"),
])
def test_openai_errors_name_what_is_wrong(gen_server, path, body, status, param, needle):
    r = post_json(gen_server, path, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err, dict) and needle in err["message"], err
    assert err["param"] == param and err["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert "code" in err


def test_triton_generate_errors_are_inferd_errors(gen_server):
    r = post_json(gen_server, f"/v2/models/{LM}/generate", {"text_input": "x", "parameters": {"max_tokenz": 3}})
    assert r.status_code == 400 and "parameters.max_tokenz" in r.json()["error"]
    r = post_json(gen_server, f"/v2/models/{LM}/generate", {"parameters": {}})
    assert r.status_code == 400 and "text_input" in r.json()["error"]
    r = post_json(gen_server, f"/v2/models/{LM}/generate_stream", {"text_input": "x", "parameters": {"top_p": 0}})
    assert r.status_code == 400 and "parameters.top_p" in r.json()["error"]
    assert r.headers["Content-Type"].startswith("application/json")  # refused before the stream began


def test_models_list_serves_both_kinds_of_client(gen_server):
    doc = gen_server.get("/v1/models").json()
    assert doc["object"] == "list"
    assert {m["id"] for m in doc["data"]} == {m["id"] for m in doc["models"]} == {LM, EMB}
    one = gen_server.get(f"/v1/models/{LM}").json()
    assert one["object"] == "model" and one["id"] == LM and one["versions"]


def test_openapi_lists_the_generation_routes(gen_server):
    doc = gen_server.get("/openapi.json").json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    for name in ("ChatCompletionRequest", "ChatCompletion", "CompletionRequest", "Completion", "EmbeddingRequest",
                 "EmbeddingList", "GenerateRequest", "GenerateResponse", "OpenAIError"):
        assert schemas[name]["properties"], name
    assert "usage" in schemas["ChatCompletion"]["properties"] and "usage" in schemas["EmbeddingList"]["properties"]
    for p in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v2/models/{model}/generate",
              "/v2/models/{model}/generate_stream"):
        assert "post" in paths[p], p
    assert paths["/v1/chat/completions"]["post"]["x-required-scope"] == "infer:<the model>"


# ---- disconnects ----------------------------------------------------------------------------------

def metric(srv, name, **labels):
    total = 0.0
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


MAX = 200  # tinylm's greedy text for PROMPT has no end-of-sequence token this far (checked)


def check_runs_to_max(srv):
    full = post_json(srv, f"/v2/models/{LM}/generate", {"text_input": PROMPT, "parameters": {"max_tokens": MAX, "temperature": 0}})
    assert full.json()["finish_reason"] == "length", "the test needs a prompt whose greedy text runs to MAX: " + full.text
    return full.json()


def start_and_drop(srv, tokens=3):
    """A generate_stream whose client reads `tokens` text events and closes. Returns the request id."""
    s = raw_connect(srv.port)
    try:
        s.sendall(request_bytes(f"/v2/models/{LM}/generate_stream",
                                {"text_input": PROMPT, "parameters": {"max_tokens": MAX, "temperature": 0}}))
        _, h, buf = read_head(s)
        while buf.count(b"data: ") < tokens:
            chunk = s.recv(65536)
            assert chunk, "the stream ended before the client left"
            buf += chunk
        return h["x-request-id"]
    finally:
        s.close()


def cancelled(srv):
    return metric(srv, "inferd_generate_sequences_total", model=LM, finish_reason="cancelled")


def test_a_client_that_leaves_after_3_tokens_stops_its_generation_and_its_usage_is_logged(gen_server):
    srv = gen_server
    full = check_runs_to_max(srv)  # alone, it runs to max_tokens
    before = cancelled(srv)
    rid = start_and_drop(srv)
    # the loop sees the close at once and sets the cancel flag; the engine drops the sequence at
    # its next step: finished as cancelled, not as length
    wait_until(lambda: metric(srv, "inferd_generate_active_sequences", model=LM) == 0, timeout(5),
               what="no active sequence")
    assert cancelled(srv) == before + 1
    line = wait_until(lambda: srv.access_lines(rid), timeout(5), what="the stream's access line")[0]
    assert line["path"] == f"/v2/models/{LM}/generate_stream" and line["status"] == 200
    assert line["prompt_tokens"] == full["usage"]["prompt_tokens"]
    assert 3 <= line["completion_tokens"] < MAX, line
    assert line["total_tokens"] == line["prompt_tokens"] + line["completion_tokens"]


def test_100_disconnects(gen_server):
    srv, n = gen_server, 100  # under ASan too: leaks are checked when the server stops
    check_runs_to_max(srv)
    before = cancelled(srv)
    ids = set(start_and_drop(srv) for _ in range(n))
    wait_until(lambda: metric(srv, "inferd_generate_active_sequences", model=LM) == 0, timeout(10),
               what="no active sequence")

    def logged():
        lines = [l for l in srv.access_lines() if l["request_id"] in ids]
        return lines if len(lines) == n else None
    lines = wait_until(logged, timeout(10), what="every stream's access line")
    # A whole stream of MAX tokens takes about 0.2 s: a client descheduled that long between its
    # third token and its close (a loaded machine) sees it finish first. Those ran to MAX; every
    # other one was cancelled at its disconnect, with what it had generated counted.
    cut = [l for l in lines if l["completion_tokens"] < MAX]
    assert all(l["completion_tokens"] == MAX for l in lines if l not in cut)
    assert all(3 <= l["completion_tokens"] for l in cut)
    assert len(cut) >= 90, f"only {len(cut)} of {n} disconnects cut their generation"
    assert cancelled(srv) == before + len(cut), [
        l for l in srv.get("/metrics").text.splitlines() if l.startswith("inferd_generate_sequences_total")]


def test_a_client_that_reads_too_slowly_is_cut_off(gen_repo, server_factory):
    # a 1 KiB bound: the client reads nothing, the socket's buffers hold what it has not taken,
    # and the stream passes the bound; the server closes the connection (no final chunk) and
    # the generation stops
    srv = server_factory(gen_repo, args=["--grpc-port", str(free_port()), "--stream-max-buffered-bytes", "1024"])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: a small window
    check_runs_to_max(srv)
    s.connect(("127.0.0.1", srv.port))
    try:
        s.sendall(request_bytes("/v1/completions", {"model": LM, "prompt": PROMPT, "max_tokens": MAX, "stream": True,
                                                    "temperature": 0, "logprobs": 5}))
        wait_until(lambda: cancelled(srv) >= 1, timeout(20), what="the slow client's generation cancelled")
        s.settimeout(timeout(10))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert not data.endswith(b"0\r\n\r\n"), "a cut-off stream must not look complete"
    finally:
        s.close()
    line = wait_until(lambda: [l for l in srv.access_lines() if l["path"] == "/v1/completions"], timeout(5))[0]
    assert line["completion_tokens"] < MAX
