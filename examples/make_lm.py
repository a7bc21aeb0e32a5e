#!/usr/bin/python3
"""Build the example generative models: a tiny causal language model and a tiny sentence encoder,
both trained here on the King James Bible that Debian's bible-kjv-text package ships.

    /usr/bin/python3 examples/make_lm.py [OUT_DIR] [--lm-steps N] [--encoder-steps N] [--only lm|encoder]

OUT_DIR defaults to the repository's models/. Needs Debian's python3-torch, python3-onnx and
bible-kjv (the `bible` program that reads bible-kjv-text's compressed text); `make models`
installs them when they are missing. Seeded; torch runs on one thread (the build machines are
small and shared), so a run takes a few minutes and gives the same files on the same machine.

Models written:

  tinylm     OUT_DIR/tinylm/1/model.onnx + tokenizer.json, OUT_DIR/tinylm/config.json: a
             decoder-only transformer (4 layers, d=128, 4 heads, context 256) in the layout
             Hugging Face Optimum exports for a causal LM with a KV cache: inputs input_ids,
             attention_mask, position_ids, past_key_values.{i}.key/.value [batch, heads,
             past_len, head_dim]; outputs logits, present.{i}.key/.value. One graph for prefill
             (past_len 0) and decode.
  tinyembed  OUT_DIR/tinyembed/1/model.onnx + tokenizer.json, OUT_DIR/tinyembed/config.json: a
             bag of embeddings (d=128) with inputs input_ids, attention_mask and output
             last_hidden_state [batch, seq, 128], trained contrastively so that the mean over
             attention_mask of last_hidden_state, L2 normalised, puts neighbouring verses close.

The LM is warm-started as a bigram model (its embedding and output head fitted to the corpus's
token-pair counts, every block starting as the identity), then trained as a transformer for a few
dozen steps: the build machines are 2 shared cores, where a step of 1,024 tokens takes seconds.

The tokenizer (both models share it) is a byte-level BPE in GPT-2's layout, 2,048 ids (256
bytes, 1,791 merges, <|endoftext|>), trained below on the same text and saved as a Hugging Face
tokenizer.json that src/generate/tokenizer.c reads.
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

from bpe import Bpe, byte_level, train_bpe  # examples/bpe.py, beside this script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCER = "inferd examples/make_lm.py"
MAX_BYTES = 8 * 1024 * 1024
OPSET = 14

VOCAB_SIZE = 2048  # 256 bytes + merges + <|endoftext|>
EOT = "<|endoftext|>"
EOT_ID = VOCAB_SIZE - 1

# The causal LM
LM_LAYERS, LM_DIM, LM_HEADS, LM_CONTEXT = 4, 128, 4, 256
# The encoder
ENC_DIM, ENC_MAX_LEN = 128, 512


# ---- the corpus -------------------------------------------------------------------------------


def kjv_chapters():
    """[(heading, [verse, ...]), ...] for the 1,189 chapters, Genesis 1 to Revelation 22, as the
    bible-kjv package's `bible` program prints them (-l0: one verse a line, no wrapping)."""
    bible = shutil.which("bible")
    if bible is None:
        sys.exit("make_lm.py: the `bible` program is missing: apt-get install -y bible-kjv")
    out = subprocess.run([bible, "-l0", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    chapters = []
    for line in out.splitlines():
        if not line.strip():
            continue
        m = re.match(r"\s+\d+ (.*)$", line)
        if m:
            chapters[-1][1].append(m.group(1).strip())
        else:
            chapters.append((line.strip(), []))
    assert len(chapters) == 1189 and sum(len(v) for _, v in chapters) == 31102, "unexpected bible-kjv output"
    return chapters


def chapter_text(heading, verses):
    """One training document: the heading ("Genesis 1"), then one verse a line (no numbers)."""
    return heading + "\n" + "\n".join(verses) + "\n"


def tokenizer_json(bpe, merges):
    """The Hugging Face tokenizers file: GPT-2's layout (ByteLevel pre-tokenizer without a prefix
    space, BPE, ByteLevel decoder) with <|endoftext|> as the one special token, last id."""
    level = byte_level()
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": EOT_ID, "content": EOT, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": level,
        "post_processor": level,
        "decoder": level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": bpe.vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


# ---- the models -------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm transformer block. bias is added to the attention scores ([batch, 1, q, k]: 0 where
    a query may look, a large negative number where not); past_k/past_v are prepended to this
    step's keys and values, which are returned (the KV cache)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x, bias, past_k=None, past_v=None):
        b, t, d = x.shape[0], x.shape[1], x.shape[2]
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q = q.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = v.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        att = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(self.head_dim)) + bias
        att = F.dropout(torch.softmax(att, dim=-1), 0.1, self.training)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return x, k, v


# Masked scores get this rather than -inf: a query with nothing to look at (a padding position)
# then gets a uniform softmax instead of NaN.
MASKED = -1e9


class CausalLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB_SIZE, LM_DIM)
        self.pos = nn.Embedding(LM_CONTEXT, LM_DIM)
        self.blocks = nn.ModuleList([Block(LM_DIM, LM_HEADS) for _ in range(LM_LAYERS)])
        self.ln = nn.LayerNorm(LM_DIM)
        self.head = nn.Linear(LM_DIM, VOCAB_SIZE, bias=False)
        self.apply(init_weights)
        # Every block starts as the identity (its two output projections are zero) and positions
        # start unknown (zero): the untrained transformer is exactly LN(tok[a]) @ head, the model
        # the bigram warm start fits; training then grows attention and the MLPs from there.
        nn.init.zeros_(self.pos.weight)
        for blk in self.blocks:
            nn.init.zeros_(blk.proj.weight)
            nn.init.zeros_(blk.fc2.weight)

    def bigram_logits(self, ids):
        """The logits for a token with no context: what the model computes while every block is
        still the identity."""
        return self.head(self.ln(self.tok(ids)))

    def forward(self, input_ids, attention_mask, position_ids, *past):
        """Optimum's signature: attention_mask covers past and new tokens ([batch, past + seq]);
        past is (key0, value0, key1, value1, ...), each [batch, heads, past, head_dim]. Returns
        logits [batch, seq, vocab] and the presents in the same order."""
        seq = input_ids.shape[1]
        total = attention_mask.shape[1]
        # query i (absolute index past + i) sees key j when j <= past + i and the key is not padding
        kidx = torch.arange(total, device=input_ids.device)
        qidx = torch.arange(seq, device=input_ids.device) + (total - seq)
        allowed = (kidx[None, :] <= qidx[:, None])[None, None] & (attention_mask[:, None, None, :] > 0)
        bias = torch.where(allowed, torch.zeros((), dtype=torch.float32), torch.full((), MASKED))
        x = self.tok(input_ids) + self.pos(position_ids)
        presents = []
        for i, blk in enumerate(self.blocks):
            pk = past[2 * i] if past else None
            pv = past[2 * i + 1] if past else None
            x, k, v = blk(x, bias, pk, pv)
            presents += [k, v]
        logits = self.head(self.ln(x))
        return (logits, *presents)


class Encoder(nn.Module):
    """A bag of embeddings: each token's vector (LayerNorm'd), no context, zero at padding. The
    sentence embedding is their mean: training a transformer encoder does not fit the few CPU
    minutes this machine gives (see the README)."""

    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB_SIZE, ENC_DIM)
        self.ln = nn.LayerNorm(ENC_DIM)
        nn.init.normal_(self.tok.weight, std=1.0)

    def forward(self, input_ids, attention_mask):
        """last_hidden_state [batch, seq, dim]."""
        return self.ln(self.tok(input_ids)) * attention_mask[:, :, None].to(torch.float32)


def init_weights(m):
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


def mean_pool(hidden, mask):
    """What the server does with an encoder's output: the mean over attention_mask, L2 normalised."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))


# ---- training ---------------------------------------------------------------------------------


def bigram_warm_start(model, stream, steps):
    """Fits the embedding, final LayerNorm and output head to the corpus's token-pair counts:
    for every token a, the cross-entropy of LN(tok[a]) @ head against the distribution of the
    token after a (all 2,048 rows a step: the whole corpus's bigram statistics for the price of
    one small matrix product). Cheap, and it turns a random model into a bigram model before the
    transformer trains."""
    data = np.asarray(stream, dtype=np.int64)
    counts = np.zeros((VOCAB_SIZE, VOCAB_SIZE), np.float32)
    np.add.at(counts, (data[:-1], data[1:]), 1.0)
    rows = counts.sum(1)
    seen = torch.tensor(np.nonzero(rows)[0])
    target = torch.tensor(counts[seen.numpy()] / rows[seen.numpy(), None])
    weight = torch.tensor(rows[seen.numpy()] / rows.sum())
    params = list(model.tok.parameters()) + list(model.ln.parameters()) + list(model.head.parameters())
    opt = torch.optim.Adam(params, lr=2e-2)
    t0 = time.time()
    for step in range(steps):
        logp = F.log_softmax(model.bigram_logits(seen), dim=-1)
        loss = -((target * logp).sum(1) * weight).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  bigram step {step}/{steps} loss {float(loss):.3f} {time.time() - t0:.0f}s", flush=True)
    return time.time() - t0, float(loss) if steps else math.nan


def train_lm(model, stream, steps, batch, seed):
    """Next-token prediction on random 256-token windows of the whole text (chapters joined by
    <|endoftext|>); positions start at 0 in every window."""
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(stream, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), weight_decay=0.01)
    model.train()
    t0, log = time.time(), []
    pos = torch.arange(LM_CONTEXT)[None, :].expand(batch, -1)
    mask = torch.ones(batch, LM_CONTEXT, dtype=torch.long)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 5e-4, min(10, steps // 5 + 1))
        starts = torch.randint(0, len(stream) - LM_CONTEXT - 1, (batch,), generator=g)
        idx = starts[:, None] + torch.arange(LM_CONTEXT + 1)[None, :]
        chunk = data[idx]
        logits = model(chunk[:, :-1], mask, pos)[0]
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 10 == 0 or step == steps - 1:
            log.append((step, float(loss), time.time() - t0))
            print(f"  lm step {step}/{steps} loss {float(loss):.3f} {time.time() - t0:.0f}s", flush=True)
    model.eval()
    return time.time() - t0, log


def lm_eval_loss(model, stream, windows=32):
    """Mean next-token loss over fixed windows (the same every run): the README's figure."""
    data = torch.tensor(stream, dtype=torch.long)
    rng = random.Random(7)
    starts = [rng.randrange(0, len(stream) - LM_CONTEXT - 1) for _ in range(windows)]
    chunk = torch.stack([data[s:s + LM_CONTEXT + 1] for s in starts])
    with torch.no_grad():
        logits = model(chunk[:, :-1], torch.ones(windows, LM_CONTEXT, dtype=torch.long),
                       torch.arange(LM_CONTEXT)[None, :].expand(windows, -1))[0]
        return float(F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), chunk[:, 1:].reshape(-1)))


def generate(model, ids, n, temperature=0.0, top_k=0, seed=0):
    """Decodes with the KV cache exactly as a server would (prefill, then one token a step)."""
    g = torch.Generator().manual_seed(seed)
    out = list(ids)
    with torch.no_grad():
        x = torch.tensor([ids])
        res = model(x, torch.ones_like(x), torch.arange(len(ids))[None, :])
        for _ in range(n):
            logits, past = res[0][0, -1], res[1:]
            if temperature == 0:
                nxt = int(torch.argmax(logits))
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, top_k).values[-1]
                    logits = torch.where(logits < kth, torch.full((), -math.inf), logits)
                nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g))
            out.append(nxt)
            if nxt == EOT_ID or len(out) >= LM_CONTEXT:
                break
            res = model(torch.tensor([[nxt]]), torch.ones(1, len(out), dtype=torch.long),
                        torch.tensor([[len(out) - 1]]), *past)
    return out


def verse_pairs(chapters):
    """(verse, the next verse of the same chapter) for every verse that has one."""
    return [(v[i], v[i + 1]) for _, v in chapters for i in range(len(v) - 1)]


def pad_batch(seqs, max_len):
    seqs = [s[:max_len] for s in seqs]
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), EOT_ID, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def train_encoder(model, bpe, pairs, steps, batch, seed):
    """InfoNCE with in-batch negatives: each verse must pick out the verse that follows it among
    the batch's other verses (temperature 0.05, symmetric), with the server's pooling."""
    rng = random.Random(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    t0 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 1e-2, 20)
        chosen = rng.sample(pairs, batch)
        a_ids, a_mask = pad_batch([bpe.encode(a) for a, _ in chosen], ENC_MAX_LEN)
        b_ids, b_mask = pad_batch([bpe.encode(b) for _, b in chosen], ENC_MAX_LEN)
        ea = mean_pool(model(a_ids, a_mask), a_mask)
        eb = mean_pool(model(b_ids, b_mask), b_mask)
        sims = ea @ eb.t() / 0.05
        target = torch.arange(batch)
        loss = (F.cross_entropy(sims, target) + F.cross_entropy(sims.t(), target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  encoder step {step}/{steps} loss {float(loss):.3f} {time.time() - t0:.0f}s", flush=True)
    model.eval()
    return time.time() - t0


def retrieval_accuracy(model, bpe, pairs, n=1000, seed=11):
    """Of n held-out-by-seed verses, the share whose nearest neighbour among the n following
    verses is its own (chance: 1/n)."""
    chosen = random.Random(seed).sample(pairs, n)
    with torch.no_grad():
        embs = []
        for col in (0, 1):
            parts = []
            for i in range(0, n, 100):
                ids, mask = pad_batch([bpe.encode(p[col]) for p in chosen[i:i + 100]], ENC_MAX_LEN)
                parts.append(mean_pool(model(ids, mask), mask))
            embs.append(torch.cat(parts))
        hits = (embs[0] @ embs[1].t()).argmax(1) == torch.arange(n)
    return float(hits.float().mean())


# ---- export -----------------------------------------------------------------------------------


def export_lm(model, path):
    names_in = ["input_ids", "attention_mask", "position_ids"]
    names_out = ["logits"]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "past_sequence_length + sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    for i in range(LM_LAYERS):
        for kv in ("key", "value"):
            names_in.append(f"past_key_values.{i}.{kv}")
            names_out.append(f"present.{i}.{kv}")
            axes[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            axes[f"present.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length + sequence_length"}
    # Traced with a past of 3 and 2 new tokens, so that nothing about either length is folded
    # into the graph; prefill feeds a past of length 0.
    b, past, seq = 2, 3, 2
    args = (torch.ones(b, seq, dtype=torch.long), torch.ones(b, past + seq, dtype=torch.long),
            torch.arange(past, past + seq)[None, :].expand(b, -1).contiguous(),
            *[torch.zeros(b, LM_HEADS, past, LM_DIM // LM_HEADS) for _ in range(2 * LM_LAYERS)])
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=names_in, output_names=names_out, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=False)


def export_encoder(model, path):
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "sequence_length"},
            "last_hidden_state": {0: "batch_size", 1: "sequence_length"}}
    args = (torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET,
                          do_constant_folding=True)


def finish_onnx(path, doc):
    m = onnx.load(path)
    m.producer_name = PRODUCER
    m.doc_string = doc
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    size = os.path.getsize(path)
    assert size < MAX_BYTES, f"{path}: {size} bytes is over the budget"
    print(f"wrote {path} ({size} bytes)")
    return size


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ---- main -------------------------------------------------------------------------------------


LM_PROMPTS = ["In the beginning", "And God said", "The LORD is my shepherd", "Jesus answered and said unto them,"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(REPO, "models"))
    ap.add_argument("--bigram-steps", type=int, default=40, help="the LM's bigram warm start")
    ap.add_argument("--lm-steps", type=int, default=40, help="the LM's transformer training")
    ap.add_argument("--lm-batch", type=int, default=4, help="windows of 256 tokens a step")
    ap.add_argument("--encoder-steps", type=int, default=600, help="0: random weights")
    ap.add_argument("--only", choices=["lm", "encoder"])
    ap.add_argument("--save-state", metavar="DIR", help="also save the torch weights there (to check the export)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(20261130)

    chapters = kjv_chapters()
    texts = [chapter_text(h, v) for h, v in chapters]
    t0 = time.time()
    merges = train_bpe(texts, VOCAB_SIZE - 256 - 1)
    bpe = Bpe(merges, EOT)
    tok_json = tokenizer_json(bpe, merges)
    print(f"BPE: {len(merges)} merges in {time.time() - t0:.0f}s")
    stream = []
    for t in texts:
        stream += bpe.encode(t) + [EOT_ID]
    n_bytes = sum(len(t.encode()) for t in texts)
    print(f"corpus: {len(chapters)} chapters, {n_bytes} bytes, {len(stream)} tokens")
    stats = {"chapters": len(chapters), "bytes": n_bytes, "tokens": len(stream), "merges": len(merges)}

    if args.only in (None, "lm"):
        make_lm_model(args, bpe, tok_json, stream, stats)
    if args.only in (None, "encoder"):
        make_encoder_model(args, bpe, tok_json, chapters, stats)


def make_lm_model(args, bpe, tok_json, stream, stats):
    torch.manual_seed(1)
    model = CausalLM()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"tinylm: {n_params} parameters, {args.bigram_steps} + {args.lm_steps} steps")
    loss0 = lm_eval_loss(model, stream)
    bsecs, bloss = bigram_warm_start(model, stream, args.bigram_steps)
    loss1 = lm_eval_loss(model, stream)
    # The transformer steps are kept even when they do not beat the warm start's loss: without
    # them every block is the identity and the output depends on the last token alone, which would
    # make the model useless for checking a KV cache or batching (any cache gives the same logits).
    secs, _ = train_lm(model, stream, args.lm_steps, args.lm_batch, seed=2) if args.lm_steps else (0.0, [])
    loss = lm_eval_loss(model, stream)
    kept = "the trained ones"
    print(f"  eval loss: {loss0:.3f} random, {loss1:.3f} after the bigram fit, {loss:.3f} kept: {kept}")
    samples = []
    for n, p in enumerate(LM_PROMPTS):
        greedy = bpe.decode(generate(model, bpe.encode(p), 40))
        sampled = bpe.decode(generate(model, bpe.encode(p), 40, temperature=0.8, top_k=40, seed=3 + n))
        samples.append((p, greedy, sampled))
        print(f"  {p!r} -> greedy {greedy!r}\n  {'':{len(repr(p))}}    sampled {sampled!r}")

    name_dir = os.path.join(args.out, "tinylm")
    vdir = os.path.join(name_dir, "1")
    os.makedirs(vdir, exist_ok=True)
    path = os.path.join(vdir, "model.onnx")
    if args.save_state:
        torch.save(model.state_dict(), os.path.join(args.save_state, "tinylm.pt"))
    export_lm(model, path)
    size = finish_onnx(path, "tinylm: a 4-layer decoder-only transformer trained on the King James Bible "
                             "(examples/make_lm.py); Optimum's causal-LM layout with a KV cache")
    write_json(os.path.join(vdir, "tokenizer.json"), tok_json)
    write_json(os.path.join(name_dir, "config.json"), {
        "description": "Tiny causal LM (4 layers, d=128, context 256) trained on the King James Bible; "
                       "text generation example",
        "generate": {
            "eos_token_ids": [EOT_ID],
            "context_length": LM_CONTEXT,
            "chat_template": {
                "roles": {"system": {"prefix": "", "suffix": "\n"}, "user": {"prefix": "", "suffix": ""},
                          "assistant": {"prefix": "", "suffix": "\n"}},
                "generation_prompt": "",
            },
            "defaults": {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "max_tokens": 64},
        },
    })
    info = dict(stats, params=n_params, steps=args.lm_steps, seconds=secs, eval_loss=loss, onnx_bytes=size,
                kept=kept, bigram_steps=args.bigram_steps, bigram_seconds=bsecs, bigram_loss=bloss, loss0=loss0, loss1=loss1,
                batch=args.lm_batch,
                tokenizer_bytes=os.path.getsize(os.path.join(vdir, "tokenizer.json")), samples=samples)
    with open(os.path.join(name_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(lm_readme(info))


def make_encoder_model(args, bpe, tok_json, chapters, stats):
    torch.manual_seed(4)
    model = Encoder()
    n_params = sum(p.numel() for p in model.parameters())
    pairs = verse_pairs(chapters)
    print(f"tinyembed: {n_params} parameters, {len(pairs)} verse pairs, {args.encoder_steps} steps")
    before = retrieval_accuracy(model, bpe, pairs)
    secs = train_encoder(model, bpe, pairs, args.encoder_steps, 64, seed=5) if args.encoder_steps else 0.0
    after = retrieval_accuracy(model, bpe, pairs)
    print(f"  next-verse retrieval top-1 among 1000: {before:.3f} untrained, {after:.3f} trained")
    name_dir = os.path.join(args.out, "tinyembed")
    vdir = os.path.join(name_dir, "1")
    os.makedirs(vdir, exist_ok=True)
    path = os.path.join(vdir, "model.onnx")
    if args.save_state:
        torch.save(model.state_dict(), os.path.join(args.save_state, "tinyembed.pt"))
    export_encoder(model, path)
    size = finish_onnx(path, "tinyembed: a bag-of-embeddings sentence encoder trained on the King James Bible "
                             "(examples/make_lm.py); mean-pool last_hidden_state over attention_mask")
    write_json(os.path.join(vdir, "tokenizer.json"), tok_json)
    write_json(os.path.join(name_dir, "config.json"), {
        "description": "Tiny sentence encoder (bag of embeddings, d=128) trained on the King James Bible; embeddings "
                       "example (mean pooling over attention_mask, L2 normalised)",
    })
    info = dict(stats, params=n_params, steps=args.encoder_steps, seconds=secs, before=before, after=after,
                onnx_bytes=size, tokenizer_bytes=os.path.getsize(os.path.join(vdir, "tokenizer.json")))
    with open(os.path.join(name_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(encoder_readme(info))


def lm_readme(i):
    sample_lines = "\n".join(f"| `{p}` | {g[len(p):]!r} | {s[len(p):]!r} |".replace("\\n", "⏎")
                             for p, g, s in i["samples"])
    trained = (f"a bigram warm start ({i['bigram_steps']} Adam steps over all 2,048 rows of the token-pair "
               f"distribution, {i['bigram_seconds'] / 60:.1f} minutes), then {i['steps']} steps of {i['batch']} "
               f"windows of 256 tokens of ordinary next-token training (AdamW, peak learning rate 5e-4, cosine; "
               f"{i['seconds'] / 60:.1f} minutes), both on one CPU thread of a shared 2-core machine; the "
               f"weights kept: {i['kept']}. Next-token loss on 32 fixed windows of the text: "
               f"{i['loss0']:.2f} nats untrained (ln 2048 = 7.62), {i['loss1']:.2f} after the warm start, "
               f"{i['eval_loss']:.2f} as committed"
               if i["bigram_steps"] or i["steps"] else
               "NOT TRAINED: random weights (written with --bigram-steps 0 --lm-steps 0 as a layout check)")
    return f"""# tinylm

A tiny decoder-only transformer that writes King James English, made by
`examples/make_lm.py` (`make models`). An example of a generative model for inferd: an ONNX
causal LM in the layout Hugging Face Optimum exports, with a KV cache, its tokenizer.json and a
`generate` section in config.json.

## Files

| file | what |
| --- | --- |
| `1/model.onnx` | the model ({i['onnx_bytes']:,} bytes, {i['params']:,} parameters, FP32, opset {OPSET}) |
| `1/tokenizer.json` | byte-level BPE in GPT-2's layout, 2,048 ids ({i['tokenizer_bytes']:,} bytes) |
| `config.json` | `generate`: eos ids, context length, chat template, sampling defaults |

## The graph

Inputs: `input_ids` INT64 [batch, seq]; `attention_mask` INT64 [batch, past + seq] (1 for a
real token, 0 for padding); `position_ids` INT64 [batch, seq] (0 for a sequence's first token;
left padding: `cumsum(attention_mask) - 1`, as Optimum does); `past_key_values.{{0..3}}.key` and
`.value` FP32 [batch, 4, past, 32]. Outputs: `logits` FP32 [batch, seq, 2048];
`present.{{0..3}}.key` and `.value` FP32 [batch, 4, past + seq, 32] (the past with this call's
keys and values appended). Batch, sequence and past lengths are dynamic; one graph does both:

- prefill: the prompt's ids, a past of length 0 (a zero-sized dimension, as Optimum feeds it);
- decode: one new id a sequence, the presents of the step before as the past.

A query at absolute index `past + i` attends to key `j` when `j <= past + i` and
`attention_mask[j]` is 1 (causal by index, padding by mask, as Hugging Face's models do). The
context is 256 positions (learned position embeddings): `position_ids` must stay below 256.

Architecture: 4 pre-norm blocks (d=128, 4 heads of 32, GELU MLP of 512), learned position
embeddings, a final LayerNorm and an output projection of its own (not tied to the embedding, so
that the bigram warm start can fit input and output separately).

## Corpus and training

The King James Version of the Bible (1611; public domain; the copyright file of Debian's
`bible-kjv-text` says so), as Debian's `bible-kjv` package's `bible` program prints it: the
{i['chapters']:,} chapters from Genesis 1 to Revelation 22, each a document of its heading
("Genesis 1") and one verse a line without the verse numbers, separated by `<|endoftext|>`
({i['bytes']:,} bytes, {i['tokens']:,} tokens). It was chosen because a package ships it whole,
it is book-length, its licence allows anything, and its style is so distinctive that a tiny model
trained for minutes produces text anyone can recognise.

Tokenizer: byte-level BPE ({i['merges']:,} merges learned from the same text, most frequent pair
first, ties by the pair's text) plus `<|endoftext|>` (id {EOT_ID}, special); ByteLevel
pre-tokenizer (GPT-2's split, no prefix space) and decoder. Identical ids to Hugging Face
`tokenizers`: tests/e2e/test_tokenizer_reference.py compares inferd's tokenizer on this file
with the Rust library and its JavaScript port.

Training: {trained}.

Why a warm start: on the machine that made it (2 cores shared by several sessions), one step of
1,024 tokens took 10-25 s, so the few minutes of CPU the example may take hold a few dozen steps,
far too few for a transformer from random weights to write anything. Every block starts as the
identity (its attention and MLP output projections are zero) and positions start at zero, so
the untrained model computes `head(LN(tok[a]))` from the last token alone: a bigram model. That
part is fitted first against the whole corpus's token-pair distribution (one 2,048 x 2,048
product a step, about a second of CPU), which gives the local phrasing of the text; the
transformer steps that follow start growing attention and MLPs from there (too few of them here
to lower the held-out loss: they are kept so that the output depends on the whole context, which
a KV cache or batching test needs). More steps (`--lm-steps`, `--lm-batch`) on a
quiet machine give a better model in the same layout.

## Sample output

From `examples/make_lm.py`'s own decode loop over the KV cache (⏎ is a newline), up to 40 tokens:
greedy, and sampled (temperature 0.8, top-k 40, seeds 3, 4, 5, 6):

| prompt | greedy | sampled |
| --- | --- | --- |
{sample_lines}

## config.json `generate`

```json
{{
  "eos_token_ids": [{EOT_ID}],
  "context_length": {LM_CONTEXT},
  "chat_template": {{
    "roles": {{"system": {{"prefix": "", "suffix": "\\n"}}, "user": {{"prefix": "", "suffix": ""}},
              "assistant": {{"prefix": "", "suffix": "\\n"}}}},
    "generation_prompt": ""
  }},
  "defaults": {{"temperature": 0.8, "top_p": 0.95, "top_k": 40, "max_tokens": 64}}
}}
```

- `eos_token_ids`: generation stops at any of these ids (`<|endoftext|>`, which ends every
  chapter in the training text).
- `context_length`: prompt plus completion tokens at most (the model's 256 positions).
- `chat_template`: each message becomes its role's prefix + content + suffix, in order, then
  `generation_prompt` opens the assistant's turn. This model was never trained on dialogue: its
  template just continues the user's text (a user message is the start of a verse).
- `defaults`: sampling parameters used when a request does not give them.

The settings the server actually reads are documented in docs/generate.md.
"""


def encoder_readme(i):
    trained = (f"{i['steps']} steps of 64 pairs (Adam, peak learning rate 1e-2, cosine), "
               f"{i['seconds'] / 60:.1f} minutes on one CPU thread"
               if i["steps"] else "NOT TRAINED: random weights (written with --encoder-steps 0 as a layout check)")
    return f"""# tinyembed

A tiny sentence encoder for the embeddings example, made by `examples/make_lm.py`
(`make models`) on the same corpus and with the same tokenizer as `tinylm`.

## Files

| file | what |
| --- | --- |
| `1/model.onnx` | the model ({i['onnx_bytes']:,} bytes, {i['params']:,} parameters, FP32, opset {OPSET}) |
| `1/tokenizer.json` | the same byte-level BPE as tinylm ({i['tokenizer_bytes']:,} bytes) |
| `config.json` | a description only |

## The graph

Inputs `input_ids` INT64 [batch, seq] and `attention_mask` INT64 [batch, seq] (no
`token_type_ids`: this is not BERT); output `last_hidden_state` FP32 [batch, seq, 128]. Batch
and sequence are dynamic (no position embeddings: any length); padding ids do not matter. The sentence
embedding is what the server computes: the mean of `last_hidden_state` over the positions where
`attention_mask` is 1, L2-normalised (the model was trained with exactly that pooling).

Architecture: a bag of embeddings: `last_hidden_state[t] = LayerNorm(embedding[input_ids[t]])`,
zero where attention_mask is 0; no attention, so a token's vector does not depend on its
neighbours and the sentence embedding is the (normalised) mean of its tokens' vectors. A
transformer encoder was the first plan; on this machine its training did not fit the time (see
models/tinylm/README.md), and a bag of embeddings trains in a minute.

## What it learned

Contrastive training (InfoNCE with in-batch negatives, temperature 0.05, symmetric): for each of
64 verses in a batch, the embedding must be closer to the verse that follows it in its chapter
than to the 63 other verses' successors. Neighbouring verses share their subject, names and
vocabulary (a genealogy, a law about offerings, a psalm of praise, a parable), so the encoder
learns a topical similarity over King James English: each token's vector is pulled towards the
tokens that tend to occur in the next verse, so verses about the same thing (and with the same
names) come close and unrelated ones stay apart. Word order means nothing to it. It knows nothing outside that text's vocabulary and style.

Training: {trained}. Measured on 1,000 verse pairs sampled with a fixed seed: the share whose
nearest embedding among the 1,000 following verses is their own is {i['after']:.1%} after
training and {i['before']:.1%} with the random initial weights (chance: 0.1%). The pairs are
drawn from the training pairs (the corpus is small and the point is to show that the embedding
is meaningful, not to benchmark it). tests/e2e/test_example_lm.py checks the served model on 24
pairs of famous neighbouring verses: the mean rank of a verse's successor among the 24 successors
is 3.0 with these weights, 6.3 to 6.9 with random embeddings (four seeds; chance 12.5).

Corpus: the King James Bible from Debian's `bible-kjv-text` ({i['chapters']:,} chapters,
public domain; see models/tinylm/README.md).
"""


if __name__ == "__main__":
    main()
