"""Text generation end to end (docs/generate.md): `inferd generate` drives the real pipeline and
engine (serve_submit -> the version's engine thread) on a tiny random-weight LM in Optimum's
layout (make_tiny_lm.py). Continuous batching must not change a sequence's text; the KV cache
must give what a full recompute gives; cancellation frees a sequence at the next step; limits
and load refusals say what is wrong."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import INFERD_BIN, PYTHON, SANITIZER_MARKERS, timeout, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def lm_repo(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("lm"))
    res = subprocess.run([PYTHON, os.path.join(HERE, "make_tiny_lm.py"), d], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return d


PROMPTS = [f"prompt {i} says the" + " x" * i for i in range(1, 17)]


def generate(repo, model, *args, prompts=None, prompt=None, ok=True, tmp=None):
    cmd = [INFERD_BIN, "generate", "--model-repository", repo, "--model", model, "--json", *map(str, args)]
    if prompts is not None:
        path = os.path.join(tmp, "prompts.txt")
        with open(path, "w") as f:
            for p in prompts:
                f.write(json.dumps(p) + "\n")
        cmd += ["--prompts", path]
    else:
        cmd += ["--prompt", prompt]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout(120))
    for m in SANITIZER_MARKERS:
        assert m not in res.stderr, res.stderr
    if ok:
        assert res.returncode == 0, res.stdout + res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    seqs = [x for x in lines if not x.get("summary")]
    return seqs, res


def test_concurrent_sequences_give_the_text_each_gives_alone(lm_repo, tmp_path):
    """16 sequences of different prompt lengths decode together (one batched Run per step, the
    caches left-padded to the longest) and each gives exactly its text alone."""
    together, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 40, prompts=PROMPTS, tmp=tmp_path)
    alone, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 40, "--sequential", prompts=PROMPTS,
                        tmp=tmp_path)
    assert len(together) == len(alone) == 16
    for a, b in zip(together, alone):
        assert a["completion_tokens"] == b["completion_tokens"]
        assert a["finish_reason"] == b["finish_reason"]
        assert a["text"] == b["text"], (a, b)
    # most run to max_tokens, so the batch holds many sequences for many steps
    assert sum(a["completion_tokens"] == 40 for a in alone) >= 8
    # the prompts differ, so do the texts: the comparison is not between empty strings
    assert len({a["text"] for a in alone}) == 16


def test_kv_cache_gives_what_a_full_recompute_gives(lm_repo, tmp_path):
    """The same weights without a cache run the whole sequence each step: the cached model's text
    equals it, batched and not."""
    cached, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 30, prompts=PROMPTS[:6], tmp=tmp_path)
    full, _ = generate(lm_repo, "tinylm_nokv", "--temperature", 0, "--max-tokens", 30, prompts=PROMPTS[:6],
                       tmp=tmp_path)
    assert [c["text"] for c in cached] == [f["text"] for f in full]


def test_seed_gives_the_same_text(lm_repo):
    args = ("--temperature", 1, "--top-p", 0.9, "--max-tokens", 30)
    a, _ = generate(lm_repo, "tinylm", *args, "--seed", 5, prompt="the seed")
    b, _ = generate(lm_repo, "tinylm", *args, "--seed", 5, prompt="the seed")
    c, _ = generate(lm_repo, "tinylm", *args, "--seed", 6, prompt="the seed")
    assert a[0]["text"] == b[0]["text"]
    assert a[0]["text"] != c[0]["text"]
    # the same seed in a batch of 8 (each sequence has its own generator)
    d, _ = generate(lm_repo, "tinylm", *args, "--seed", 5, "--streams", 8, prompt="the seed")
    assert all(x["text"] == a[0]["text"] for x in d)


def test_cancel_removes_the_sequence_at_the_next_step(lm_repo):
    """The client's cancel flag, set after the 3rd token, ends the sequence before the next decode
    step: exactly 3 tokens, finish 'cancelled', usage counted; 100 of them at once (ASan: no leak)."""
    n = 100
    seqs, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 50, "--cancel-after", 3,
                       "--streams", n, prompt="cancel me")
    assert len(seqs) == n
    for s in seqs:
        assert s["finish_reason"] == "cancelled", s
        assert s["completion_tokens"] == 3, s
        assert s["prompt_tokens"] > 0


def test_length_and_eos(lm_repo):
    seqs, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 7, prompt="short")
    assert seqs[0]["finish_reason"] == "length" and seqs[0]["completion_tokens"] == 7
    # the model's default max_tokens (config generate.defaults: 24)
    seqs, _ = generate(lm_repo, "tinylm", "--temperature", 0, prompt="short")
    assert seqs[0]["completion_tokens"] == 24


def test_stop_sequence_across_tokens(lm_repo):
    """A stop sequence taken from the middle of the greedy text ends it there; the stop text and
    what follows are not in the result."""
    full, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 40, prompt="stop here")
    text = full[0]["text"]
    # a 3-character stop from the middle (with characters that appear once before it, to be fair)
    k = len(text) // 2
    stop = text[k:k + 3]
    cut = text.find(stop)
    seqs, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 40, "--stop", stop, prompt="stop here")
    assert seqs[0]["finish_reason"] == "stop", (text, stop, seqs)
    assert seqs[0]["text"] == text[:cut]
    assert seqs[0]["completion_tokens"] < 40


def test_logprobs(lm_repo):
    seqs, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 5, "--logprobs", 3, prompt="lp")
    lps = seqs[0]["logprobs"]
    assert len(lps) == 5
    for t in lps:
        assert len(t["top"]) == 3
        assert t["top"][0]["id"] == t["id"]  # greedy: the chosen one is the likeliest
        assert t["top"][0]["logprob"] >= t["top"][1]["logprob"] >= t["top"][2]["logprob"]
        assert t["logprob"] <= 0


def test_chat_template(lm_repo):
    plain, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 3, prompt="Q: hi\nA:")
    chat, _ = generate(lm_repo, "tinylm", "--temperature", 0, "--max-tokens", 3, "--chat", prompt="hi")
    # the template (config.json) makes "Q: hi\nA:" of the user message
    assert chat[0]["prompt_tokens"] == plain[0]["prompt_tokens"]
    assert chat[0]["text"] == plain[0]["text"]


@pytest.mark.parametrize("args,needle", [
    (("--max-tokens", 200), "max_tokens is too large"),
    (("--max-tokens", 0), "max_tokens must be at least 1"),
    (("--temperature", 3), "temperature must be between 0 and 2"),
    (("--temperature", -1), "temperature must be between 0 and 2"),
    (("--top-p", 0), "top_p"),
    (("--presence-penalty", 5), "presence_penalty"),
    (("--logprobs", 30), "top_logprobs"),
])
def test_invalid_parameters(lm_repo, args, needle):
    seqs, res = generate(lm_repo, "tinylm", *args, prompt="limits", ok=False)
    assert res.returncode == 1
    assert needle in seqs[0]["error"], seqs


def test_prompt_longer_than_the_context(lm_repo):
    seqs, res = generate(lm_repo, "tinylm", prompt="word " * 200, ok=False)
    assert res.returncode == 1
    err = seqs[0]["error"]
    assert "the prompt is too long" in err and "context length of 96" in err, err


def _variant(lm_repo, tmp_path, name, edit_config=None, drop_tokenizer=False, edit_model=None):
    dst = os.path.join(str(tmp_path), "repo")
    shutil.copytree(os.path.join(lm_repo, "tinylm"), os.path.join(dst, name))
    cfg_path = os.path.join(dst, name, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if edit_config:
        edit_config(cfg)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    if drop_tokenizer:
        os.remove(os.path.join(dst, name, "1", "tokenizer.json"))
    return dst


@pytest.mark.parametrize("case,needle", [
    ("no_context", "generate.context_length is required"),
    ("batched", "max_batch_size must be 0"),
    ("no_tokenizer", "no tokenizer.json"),
    ("bad_eos", "eos_token_ids has 99999"),
    ("unknown_field", "unknown field 'beam_width'"),
])
def test_load_refusals(lm_repo, tmp_path, case, needle):
    def edit(cfg):
        g = cfg["generate"]
        if case == "no_context":
            del g["context_length"]
        elif case == "batched":
            cfg["max_batch_size"] = 8
        elif case == "bad_eos":
            g["eos_token_ids"] = [99999]
        elif case == "unknown_field":
            g["beam_width"] = 4
    repo = _variant(lm_repo, tmp_path, "m", edit_config=edit, drop_tokenizer=case == "no_tokenizer")
    _, res = generate(repo, "m", prompt="x", ok=False)
    assert res.returncode == 1
    assert "did not load" in res.stderr and needle in res.stderr, res.stderr


def test_not_a_generative_model(lm_repo, tmp_path):
    repo = _variant(lm_repo, tmp_path, "plain", edit_config=lambda c: c.pop("generate"))
    seqs, res = generate(repo, "plain", prompt="x", ok=False)
    assert res.returncode == 1
    assert "model 'plain' is not a generative model" in seqs[0]["error"]


def test_generation_metrics_on_metrics(lm_repo, server_factory):
    srv = server_factory(lm_repo)
    body = wait_until(lambda: (b := srv.get("/metrics").text) and 'inferd_generate_active_sequences{model="tinylm"}' in b and b,
                      timeout(20), what="the generation metrics")
    for family in ("inferd_generate_time_to_first_token_seconds_bucket", "inferd_generate_inter_token_seconds_bucket",
                   "inferd_generate_batch_size_bucket", 'inferd_generate_tokens_total{model="tinylm",kind="completion"}',
                   'inferd_generate_sequences_total{model="tinylm",finish_reason="cancelled"}'):
        assert family in body, family


def test_tokens_per_minute_budget(lm_repo):
    """The caller's budget reserves prompt + max_tokens at the hand-off and gets back what a
    generation did not use: two full generations of 45 fit in 100, a third is refused (429 with
    when it fits); generations cancelled after 3 tokens give back the rest, so three fit."""
    args = ("--temperature", 0, "--max-tokens", 40, "--streams", 3, "--sequential", "--tokens-per-minute", 100)
    seqs, res = generate(lm_repo, "tinylm", *args, prompt="quota", ok=False)
    assert res.returncode == 1
    assert [s.get("error") is None for s in seqs] == [True, True, False], seqs
    assert seqs[0]["prompt_tokens"] + 40 == 45
    assert "token limit: 'anonymous' may use 100 tokens per minute; this generation's 45" in seqs[2]["error"]
    seqs, _ = generate(lm_repo, "tinylm", *args, "--cancel-after", 3, prompt="quota")
    assert all(s["finish_reason"] == "cancelled" for s in seqs)
    # more than a minute's budget can never fit
    seqs, res = generate(lm_repo, "tinylm", "--max-tokens", 90, "--tokens-per-minute", 50, prompt="quota", ok=False)
    assert "lower max_tokens" in seqs[0]["error"]
