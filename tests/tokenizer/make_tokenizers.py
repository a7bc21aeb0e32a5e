#!/usr/bin/python3
"""Writes the tokenizer.json files the tokenizer tests use: a tiny byte-level BPE in GPT-2's
layout, trained by a deterministic script on license texts Debian ships
(/usr/share/common-licenses), in several variants of the options the C tokenizer supports.
    tests/tokenizer/make_tokenizers.py OUT_DIR
No downloads; the same files every time."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from bpe import B2U, base_vocab, byte_level, train_bpe  # noqa: E402  examples/bpe.py

LICENSES = ["GPL-3", "Apache-2.0", "Artistic", "MPL-2.0", "LGPL-2.1"]
def training_text():
    parts = []
    for name in LICENSES:
        with open(os.path.join("/usr/share/common-licenses", name), encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
    # A few non-Latin words so that merges exist for them too.
    parts.append("Grüße aus München. Ça va très bien. 日本語のテキスト。 Привет, мир! 안녕하세요 😀👍🏽")
    return "\n".join(parts)


def train(num_merges):
    merges = train_bpe([training_text()], num_merges, min_count=2)
    return base_vocab(merges), merges


def added(id_, content, special=True, normalized=False):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": special}


def tokenizer(vocab, merges, *, merge_form="string", add_prefix_space=False, use_regex=True, normalizer=None,
              added_tokens=(), decoder=True, ignore_merges=False, unk_token=None, fuse_unk=False):
    # tokenizers' rule: the vocabulary's id for a text it has, else the next id after the rest
    ids, n = [], len(vocab)
    for a in added_tokens:
        if a[0] in vocab:
            ids.append(vocab[a[0]])
        else:
            ids.append(n)
            n += 1
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(i, *a) for i, a in zip(ids, added_tokens)],
        "normalizer": normalizer,
        "pre_tokenizer": byte_level(add_prefix_space, use_regex=use_regex),
        "post_processor": byte_level(True),
        "decoder": byte_level(True) if decoder else None,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": unk_token, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": fuse_unk, "byte_fallback": False,
            "ignore_merges": ignore_merges, "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges] if merge_form == "string" else [[a, b] for a, b in merges],
        },
    }


def ascii_only(vocab, merges):
    """The vocabulary without the characters of bytes over 0x7F, plus <unk>: what those bytes
    become shows the unknown-token rules."""
    gone = {B2U[b] for b in range(0x80, 0x100)}
    keep = [t for t in sorted(vocab, key=vocab.get) if not gone & set(t)]
    small = {t: i for i, t in enumerate(keep + ["<unk>"])}
    return small, [(a, b) for a, b in merges if a in small and b in small and a + b in small]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    vocab, merges = train(1500)
    small, small_merges = ascii_only(vocab, merges)
    variants = {
        # GPT-2 itself: no prefix space, "a b" merges, <|endoftext|> as the one special token.
        "gpt2.json": tokenizer(vocab, merges, added_tokens=[("<|endoftext|>",)]),
        # A prefix space, [a, b] merges, chat-style special tokens, a normalized non-special
        # added token, ignore_merges.
        "prefix.json": tokenizer(vocab, merges, merge_form="array", add_prefix_space=True, ignore_merges=True,
                                 added_tokens=[("<|im_start|>",), ("<|im_end|>",), ("<|endoftext|>",),
                                               ("license holder", False, True)]),
        # Lowercase (in a Sequence) before the split, and an added token matched after it.
        "lower.json": tokenizer(vocab, merges, normalizer={"type": "Sequence", "normalizers": [{"type": "Lowercase"}]},
                                added_tokens=[("<SEP>",), ("copyright", False, True)]),
        # No regex split (each piece between added tokens is one word), no decoder.
        "noregex.json": tokenizer(vocab, merges[:300], use_regex=False, decoder=False,
                                  added_tokens=[("<|endoftext|>",)]),
        # Characters not in the vocabulary: <unk>, runs of them fused into one or not.
        "unk_fused.json": tokenizer(small, small_merges, unk_token="<unk>", fuse_unk=True),
        "unk.json": tokenizer(small, small_merges, unk_token="<unk>", added_tokens=[("<unk>",)]),
        # ... and no unk_token: they are dropped.
        "unk_none.json": tokenizer(small, small_merges),
    }
    for name, tok in variants.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
