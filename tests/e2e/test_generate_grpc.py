"""Text generation over gRPC (docs/grpc-api.md): a ModelInferRequest with text_input to a
generative model. ModelStreamInfer answers a response per piece of text and a final one
(triton_final_response, finish reason, usage); ModelInfer answers the whole text. The same
prompt and parameters give the same text as `inferd generate`."""

import json
import os
import shutil
import subprocess
import time

import grpc
import pytest

from conftest import INFERD_BIN, PYTHON, timeout, wait_until
from grpc_stubs import REPO_ROOT, mspb, pb, running_grpc_server

HERE = os.path.dirname(os.path.abspath(__file__))
T = timeout(60)


@pytest.fixture(scope="module")
def lm_repo(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("lm_grpc"))
    res = subprocess.run([PYTHON, os.path.join(HERE, "make_tiny_lm.py"), d], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    # a feature model beside it: StreamPredict mixes generations and predictions on one stream
    shutil.copytree(os.path.join(REPO_ROOT, "models", "churn"), os.path.join(d, "churn"))
    return d


@pytest.fixture(scope="module")
def gsrv(lm_repo, logs_dir):
    with running_grpc_server(lm_repo, logs_dir) as g:
        yield g


def gen_request(prompt, stream=None, **params):
    req = pb.ModelInferRequest(model_name="tinylm", id="g1")
    t = req.inputs.add()
    t.name, t.datatype = "text_input", "BYTES"
    t.shape.append(1)
    t.contents.bytes_contents.append(prompt.encode())
    for k, v in params.items():
        p = req.parameters[k]
        if isinstance(v, bool):
            p.bool_param = v
        elif isinstance(v, int):
            p.int64_param = v
        elif isinstance(v, float):
            p.double_param = v
        else:
            p.string_param = v
    if stream is not None:
        req.parameters["stream"].bool_param = stream
    return req


def params_of(resp):
    out = {}
    for k, v in resp.parameters.items():
        out[k] = getattr(v, v.WhichOneof("parameter_choice"))
    return out


def text_of(resp):
    for o in resp.outputs:
        if o.name == "text_output":
            return o.contents.bytes_contents[0].decode()
    return None


def cli_text(repo, prompt, *args):
    res = subprocess.run([INFERD_BIN, "generate", "--model-repository", repo, "--model", "tinylm", "--json",
                          "--prompt", prompt, *map(str, args)], capture_output=True, text=True, timeout=T)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[0])


def test_stream_pieces_then_final(gsrv, lm_repo):
    got = list(gsrv.infer.ModelStreamInfer(iter([gen_request("the stream", temperature=0.0, max_tokens=20)]),
                                           timeout=T))
    assert all(r.error_message == "" for r in got)
    pieces = [text_of(r.infer_response) for r in got[:-1]]
    final = params_of(got[-1].infer_response)
    assert final["triton_final_response"] is True and text_of(got[-1].infer_response) is None
    assert all(params_of(r.infer_response)["triton_final_response"] is False for r in got[:-1])
    assert len(pieces) >= 2  # text arrived piece by piece
    assert got[0].infer_response.id == "g1" and got[0].infer_response.model_name == "tinylm"
    want = cli_text(lm_repo, "the stream", "--temperature", 0, "--max-tokens", 20)
    assert "".join(pieces) == want["text"]
    assert final["finish_reason"] == want["finish_reason"]
    assert final["completion_tokens"] == want["completion_tokens"]
    assert final["prompt_tokens"] == want["prompt_tokens"]


def test_unary_and_seed(gsrv, lm_repo):
    resp = gsrv.infer.ModelInfer(gen_request("seeded", temperature=1.0, seed=11, max_tokens=15), timeout=T)
    want = cli_text(lm_repo, "seeded", "--temperature", 1, "--seed", 11, "--max-tokens", 15)
    assert text_of(resp) == want["text"]
    assert params_of(resp)["completion_tokens"] == want["completion_tokens"]
    # "stream": false on a stream: one response with the whole text
    got = list(gsrv.infer.ModelStreamInfer(iter([gen_request("seeded", stream=False, temperature=1.0, seed=11,
                                                             max_tokens=15)]), timeout=T))
    assert len(got) == 1 and text_of(got[0].infer_response) == want["text"]


def test_several_generations_on_one_stream(gsrv):
    reqs = [gen_request(f"stream {i}", temperature=0.0, max_tokens=8) for i in range(3)]
    got = list(gsrv.infer.ModelStreamInfer(iter(reqs), timeout=T))
    finals = [r for r in got if params_of(r.infer_response).get("triton_final_response")]
    assert len(finals) == 3


def test_errors(gsrv):
    err = None
    try:
        gsrv.infer.ModelInfer(gen_request("x", max_tokens=500), timeout=T)
    except grpc.RpcError as exc:
        err = exc
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_tokens is too large" in err.details()
    got = list(gsrv.infer.ModelStreamInfer(iter([gen_request("x", temperature="hot")]), timeout=T))
    assert len(got) == 1 and "parameter 'temperature' must be a number" in got[0].error_message
    req = pb.ModelInferRequest(model_name="tinylm")
    t = req.inputs.add()
    t.name, t.datatype = "input_ids", "INT64"
    got = list(gsrv.infer.ModelStreamInfer(iter([req]), timeout=T))
    assert "input 'input_ids' is not one a generation takes" in got[0].error_message


def test_client_cancel_frees_the_sequence(gsrv):
    """A client that cancels its stream mid-generation: the sequence leaves the engine (the
    active-sequences gauge goes back to 0) long before max_tokens would have been reached."""
    req = gen_request("cancel", temperature=0.0, max_tokens=80)
    req.model_name = "tinylm_slow"
    it = gsrv.infer.ModelStreamInfer(iter([req]), timeout=T)
    for i, _ in enumerate(it):
        if i == 2:
            it.cancel()
            break

    def active():
        body = gsrv.srv.get("/metrics").text
        line = [x for x in body.splitlines() if x.startswith('inferd_generate_active_sequences{model="tinylm_slow"}')]
        return line and line[0].endswith(" 0")
    wait_until(active, timeout(10), what="no active sequence")
    body = gsrv.srv.get("/metrics").text
    cancelled = [x for x in body.splitlines()
                 if x.startswith('inferd_generate_sequences_total{model="tinylm_slow",finish_reason="cancelled"}')]
    assert int(cancelled[0].split()[-1]) == 1
    completion = [x for x in body.splitlines()
                  if x.startswith('inferd_generate_tokens_total{model="tinylm_slow",kind="completion"}')]
    assert int(completion[0].split()[-1]) < 80


# --------------------------------------------------------------------------------------------
# inferd.ModelService.StreamPredict: a record with text_input to a generative model

CHURN = {"tenure_months": 3, "monthly_charges": 89.5, "total_charges": 268.5, "support_calls": 2, "age": 29,
         "contract": "month-to-month", "payment_method": "electronic_check"}


def predict_request(model, features):
    r = mspb.PredictRequest(model=model)
    for k, v in features.items():
        f = r.record.features[k]
        if isinstance(v, bool):
            f.bool_value = v
        elif isinstance(v, int):
            f.int_value = v
        elif isinstance(v, float):
            f.number_value = v
        else:
            f.string_value = v
    return r


def stream_infer_text(gsrv, prompt, **params):
    got = list(gsrv.infer.ModelStreamInfer(iter([gen_request(prompt, **params)]), timeout=T))
    assert all(r.error_message == "" for r in got)
    return "".join(text_of(r.infer_response) for r in got[:-1]), params_of(got[-1].infer_response)


def test_stream_predict_generates_as_model_stream_infer(gsrv):
    got = list(gsrv.app.StreamPredict(iter([predict_request("tinylm", {"text_input": "the stream",
                                                                       "temperature": 0.0, "max_tokens": 20})]),
                                      timeout=T))
    assert all(r.error == "" for r in got)
    assert len(got) >= 3  # pieces of text, then the final response
    assert all(r.text != "" and r.finish_reason == "" for r in got[:-1])
    final = got[-1]
    assert final.text == "" and final.model == "tinylm" and final.model_version == "1"
    want, want_final = stream_infer_text(gsrv, "the stream", temperature=0.0, max_tokens=20)
    assert "".join(r.text for r in got[:-1]) == want
    assert final.finish_reason == want_final["finish_reason"]
    assert final.prompt_tokens == want_final["prompt_tokens"]
    assert final.completion_tokens == want_final["completion_tokens"]
    # sampling with a seed: the same text as ModelStreamInfer with that seed
    got = list(gsrv.app.StreamPredict(iter([predict_request("tinylm", {"text_input": "seeded", "temperature": 1,
                                                                       "seed": 11, "max_tokens": 15})]), timeout=T))
    want, _ = stream_infer_text(gsrv, "seeded", temperature=1.0, seed=11, max_tokens=15)
    assert got[-1].finish_reason and "".join(r.text for r in got[:-1]) == want


def test_stream_predict_mixes_generations_predictions_and_errors(gsrv):
    """Each request on one stream gets its own answer: a generation (pieces, final), a feature
    model's prediction, and per-request errors naming the feature at fault."""
    reqs = [predict_request("tinylm", {"text_input": "mixed", "temperature": 0.0, "max_tokens": 6}),
            predict_request("churn", CHURN),
            predict_request("tinylm", {"text_input": "x", "prompt": "y"}),
            predict_request("tinylm", {"text_input": 5}),
            predict_request("tinylm", {"max_tokens": 3}),
            predict_request("tinylm", {"text_input": "x", "max_tokens": 500})]
    got = list(gsrv.app.StreamPredict(iter(reqs), timeout=T))
    # a generation's pieces interleave with the other answers; they all carry its id
    finals = [r for r in got if r.finish_reason]
    assert len(finals) == 1
    gen = [r for r in got if r.id == finals[0].id]
    assert gen[-1] is finals[0] and all(r.error == "" for r in gen)
    want, _ = stream_infer_text(gsrv, "mixed", temperature=0.0, max_tokens=6)
    assert "".join(r.text for r in gen) == want
    rest = [r for r in got if r.id != finals[0].id]
    assert len(rest) == 5 and len(set(r.id for r in got)) == 6
    pred = [r for r in rest if r.model == "churn"]
    assert len(pred) == 1 and pred[0].error == "" and pred[0].result.label in ("stay", "churn")
    errs = [r for r in rest if r.model == "tinylm"]
    assert len(errs) == 4 and all(r.error and r.text == "" and r.finish_reason == "" for r in errs)

    def answer(part):
        found = [r for r in errs if part in r.error]
        assert len(found) == 1, (part, [r.error for r in errs])
        return found[0]
    unknown = answer("feature 'prompt' is not one a generation takes")
    assert [(e.path, e.kind) for e in unknown.errors] == [("$.record.features.prompt", "unknown_feature")]
    wrong = answer("feature 'text_input' must be a string")
    assert [(e.path, e.kind) for e in wrong.errors] == [("$.record.features.text_input", "wrong_type")]
    missing = answer("needs the string feature 'text_input'")
    assert [(e.path, e.kind) for e in missing.errors] == [("$.record.features.text_input", "missing_feature")]
    answer("max_tokens 500 exceed")


def test_same_prompt_and_seed_give_the_same_text_over_grpc_and_rest(gsrv):
    """The issue's cross-protocol check, sampled (not greedy): OpenAI's /v1/completions over REST,
    ModelInfer and ModelStreamInfer's pieces give one text for one prompt, seed and parameters."""
    params = dict(max_tokens=20, seed=11, temperature=0.9, top_p=0.95)
    r = gsrv.srv.post("/v1/completions", json={"model": "tinylm", "prompt": "the same", **params}, timeout=T)
    assert r.status_code == 200, r.text
    want = r.json()["choices"][0]["text"]
    assert want
    assert text_of(gsrv.infer.ModelInfer(gen_request("the same", **params), timeout=T)) == want
    got = list(gsrv.infer.ModelStreamInfer(iter([gen_request("the same", stream=True, **params)]), timeout=T))
    assert "".join(text_of(x.infer_response) or "" for x in got) == want
    r = gsrv.srv.post("/v1/completions", json={"model": "tinylm", "prompt": "the same", **dict(params, seed=12)}, timeout=T)
    assert r.json()["choices"][0]["text"] != want  # the seed matters
