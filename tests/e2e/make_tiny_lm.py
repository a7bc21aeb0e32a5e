#!/usr/bin/python3
"""Write a tiny random-weight causal LM in Hugging Face Optimum's ONNX layout, for the generation
tests (tests/e2e/test_generate.py) and bench/generate.sh.

    /usr/bin/python3 tests/e2e/make_tiny_lm.py OUT_DIR

Importable: write_repo(out_dir). Fixed seeds: the files are the same on every run. Models
(OUT_DIR/<name>/1/model.onnx + tokenizer.json, OUT_DIR/<name>/config.json):

  tinylm       2 layers, 2 heads of 16, d 32, with a KV cache: input_ids, attention_mask,
               position_ids, past_key_values.{0,1}.{key,value} [batch, 2, past, 16] in; logits
               [batch, seq, vocab], present.{0,1}.{key,value} out. Context 96.
  tinylm_nokv  the same weights without the cache: input_ids, attention_mask, position_ids ->
               logits (the whole sequence each step).
  tinylm_slow  tinylm with ~8 M extra multiply-adds per token that barely change it: a
               generation lasts long enough for a client to leave in the middle.

The tokenizer is byte-level BPE (GPT-2's byte-to-unicode alphabet, a few merges, and the added
special token <|endoftext|> as the last id). The weights are random but scaled so greedy text is
varied; the text means nothing.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from bpe import B2U, byte_level  # noqa: E402  examples/bpe.py

D, H, DH, LAYERS, CTX, FF = 32, 2, 16, 2, 96, 64


def tokenizer_json():
    vocab = {B2U[b]: b for b in range(256)}
    merges = []
    for a, b in [("t", "h"), ("th", "e"), ("h", "e"), ("Ġ", "t"), ("Ġt", "he"), ("i", "n"), ("a", "n"), ("e", "r"), ("o", "n"),
                 ("Ġ", "a"), ("r", "e"), ("Ġ", "s"), ("e", "n")]:
        vocab[a + b] = len(vocab)
        merges.append(a + " " + b)
    eos = len(vocab)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eos, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": byte_level(),
        "post_processor": byte_level(True, trim_offsets=False),
        "decoder": byte_level(True),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": merges},
    }, eos + 1, eos


def build(vocab, kv, rng, slow=False):
    inits, nodes = [], []

    def w(name, shape, scale):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def c(name, arr):
        inits.append(numpy_helper.from_array(np.array(arr), name))
        return name

    def n(op, ins, outs, **kw):
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    w("wte", (vocab, D), 1.0)
    w("wpe", (CTX, D), 0.5)
    c("shape_bshd", np.array([0, 0, H, DH], dtype=np.int64))
    c("shape_bsd", np.array([0, 0, D], dtype=np.int64))
    c("scale", np.array(1.0 / np.sqrt(DH), dtype=np.float32))
    c("neg", np.array(-1e9, dtype=np.float32))
    c("zero", np.array(0, dtype=np.int64))
    c("one", np.array(1, dtype=np.int64))
    c("ax0", np.array([0], dtype=np.int64))
    c("ax1", np.array([1], dtype=np.int64))
    c("ax12", np.array([1, 2], dtype=np.int64))
    c("ln_g", np.ones(D, dtype=np.float32))
    c("ln_b", np.zeros(D, dtype=np.float32))
    ins = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
           helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_length"]),
           helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"])]
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", vocab])]
    x = n("Add", [n("Gather", ["wte", "input_ids"], ["tok"]), n("Gather", ["wpe", "position_ids"], ["pos"])], ["x0"])
    # the mask, shared by the layers: key j visible to query i when j <= i's index in the
    # timeline [past | new] and attention_mask[j] is 1
    seq = n("Gather", [n("Shape", ["input_ids"], ["ids_shape"]), "one"], ["S"])
    tot = n("Gather", [n("Shape", ["attention_mask"], ["mask_shape"]), "one"], ["T"])
    kidx = n("Range", ["zero", tot, "one"], ["kidx"])
    qidx = n("Range", [n("Sub", [tot, seq], ["T_minus_S"]), tot, "one"], ["qidx"])
    causal = n("LessOrEqual", [n("Unsqueeze", [kidx, "ax0"], ["k2"]), n("Unsqueeze", [qidx, "ax1"], ["q2"])], ["causal"])
    pad = n("Unsqueeze", [n("Cast", ["attention_mask"], ["mask_b"], to=TensorProto.BOOL), "ax12"], ["pad"])
    allowed = n("And", [causal, pad], ["allowed"])
    for l in range(LAYERS):
        p = f"l{l}_"
        h = n("LayerNormalization", [x, "ln_g", "ln_b"], [p + "ln1"], axis=-1)
        heads = {}
        for part in ("q", "k", "v"):
            m = n("MatMul", [h, w(p + "w" + part, (D, D), 0.4)], [p + part])
            heads[part] = n("Transpose", [n("Reshape", [m, "shape_bshd"], [p + part + "_r"])], [p + part + "_t"],
                            perm=[0, 2, 1, 3])
        k, v = heads["k"], heads["v"]
        if kv:
            for part in ("key", "value"):
                ins.append(helper.make_tensor_value_info(f"past_key_values.{l}.{part}", TensorProto.FLOAT,
                                                         ["batch_size", H, "past_sequence_length", DH]))
                outs.append(helper.make_tensor_value_info(f"present.{l}.{part}", TensorProto.FLOAT,
                                                          ["batch_size", H, "total_length", DH]))
            k = n("Concat", [f"past_key_values.{l}.key", k], [f"present.{l}.key"], axis=2)
            v = n("Concat", [f"past_key_values.{l}.value", v], [f"present.{l}.value"], axis=2)
        kt = n("Transpose", [k], [p + "kt"], perm=[0, 1, 3, 2])
        scores = n("Mul", [n("MatMul", [heads["q"], kt], [p + "qk"]), "scale"], [p + "scores"])
        masked = n("Where", [allowed, scores, "neg"], [p + "masked"])
        probs = n("Softmax", [masked], [p + "probs"], axis=-1)
        att = n("MatMul", [probs, v], [p + "att"])
        att = n("Reshape", [n("Transpose", [att], [p + "att_t"], perm=[0, 2, 1, 3]), "shape_bsd"], [p + "att_r"])
        x = n("Add", [x, n("MatMul", [att, w(p + "wo", (D, D), 0.3)], [p + "o"])], [p + "x1"])
        h2 = n("LayerNormalization", [x, "ln_g", "ln_b"], [p + "ln2"], axis=-1)
        ff = n("Relu", [n("MatMul", [h2, w(p + "w1", (D, FF), 0.3)], [p + "f1"])], [p + "f1r"])
        x = n("Add", [x, n("MatMul", [ff, w(p + "w2", (FF, D), 0.3)], [p + "f2"])], [p + "x2"])
    if slow:
        # ~8 M multiply-adds per token that depend on the input and barely touch it, so a
        # generation takes long enough for a client to leave in the middle of it
        b = n("MatMul", [x, w("burn_in", (D, 1024), 0.03)], ["burn_t0"])
        for i in range(8):
            b = n("Tanh", [n("MatMul", [b, w(f"burn{i}", (1024, 1024), 0.03)], [f"burn_m{i}"])], [f"burn_t{i + 1}"])
        c("tiny", np.array(1e-6, dtype=np.float32))
        b = n("Mul", [n("MatMul", [b, w("burn_out", (1024, D), 0.03)], ["burn_o"]), "tiny"], ["burn_s"])
        x = n("Add", [x, b], ["x_burned"])
    hf = n("LayerNormalization", [x, "ln_g", "ln_b"], ["lnf"], axis=-1)
    n("MatMul", [hf, w("lm_head", (D, vocab), 1.0)], ["logits"])
    graph = helper.make_graph(nodes, "tinylm", ins, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def config(eos):
    return {
        "backend": "onnxruntime",
        "max_batch_size": 0,
        "generate": {
            "eos_token_ids": [eos],
            "context_length": CTX,
            "max_sequences": 16,
            "chat_template": {
                "roles": {"system": {"prefix": "# ", "suffix": "\n"}, "user": {"prefix": "Q: ", "suffix": "\n"},
                          "assistant": {"prefix": "A: ", "suffix": "<|endoftext|>\n"}},
                "generation_prompt": "A:",
            },
            "defaults": {"temperature": 0.8, "max_tokens": 24},
        },
    }


def write_repo(out_dir):
    tok, vocab, eos = tokenizer_json()
    for name, kv, slow in (("tinylm", True, False), ("tinylm_nokv", False, False), ("tinylm_slow", True, True)):
        d = os.path.join(out_dir, name, "1")
        os.makedirs(d, exist_ok=True)
        onnx.save(build(vocab, kv, np.random.default_rng(7), slow), os.path.join(d, "model.onnx"))
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(tok, f, ensure_ascii=False)
        with open(os.path.join(out_dir, name, "config.json"), "w") as f:
            json.dump(config(eos), f, indent=1)


if __name__ == "__main__":
    write_repo(sys.argv[1])
