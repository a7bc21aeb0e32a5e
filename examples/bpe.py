"""Byte-level BPE in GPT-2's layout, in plain Python: the one trainer and encoder that the scripts
making tokenizer.json files share (examples/make_lm.py for the example models,
tests/tokenizer/make_tokenizers.py and tests/e2e/make_tiny_lm.py for the tests). inferd's own
tokenizer is C (src/generate/); this only makes its inputs."""
import collections
import math
import re

# GPT-2's split, approximately ([^\W\d_] stands for \p{L}): exact on ASCII text, and only used to
# learn merges and to encode training text (the tests compare inferd with Hugging Face's own).
SPLIT = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    """GPT-2's map from bytes to printable characters (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def train_bpe(texts, num_merges, min_count=1):
    """The merges, most frequent adjacent pair first (ties broken by the pair's text, so every run
    gives the same list), counted over GPT-2's pre-tokenized words of texts; stops early when no
    pair occurs min_count times. Pairs are updated incrementally in the words that hold the
    merged pair."""
    counts = collections.Counter()
    for t in texts:
        counts.update(SPLIT.findall(t))
    words = [[B2U[b] for b in w.encode("utf-8")] for w in counts]
    freqs = [counts[w] for w in counts]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    merges = []
    while len(merges) < num_merges and pairs:
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if pairs[best] < min_count:
            break
        merges.append(best)
        new = best[0] + best[1]
        for i in sorted(where.pop(best, ())):
            w, f = words[i], freqs[i]
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] -= f
                if pairs[(a, b)] <= 0:
                    del pairs[(a, b)]
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                    out.append(new)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for a, b in zip(out, out[1:]):
                pairs[(a, b)] += f
                where[(a, b)].add(i)
    return merges


def base_vocab(merges):
    """The vocabulary the merges make: the 256 byte characters, then one token a merge (a text two
    merges both make keeps the later id, as a dict built in order does)."""
    return {t: i for i, t in enumerate([B2U[b] for b in range(256)] + [a + b for a, b in merges])}


def byte_level(add_prefix_space=False, trim_offsets=True, use_regex=True):
    """A ByteLevel pre-tokenizer, post-processor or decoder entry of tokenizer.json."""
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets,
            "use_regex": use_regex}


class Bpe:
    """Encodes with the merges (lowest rank first, leftmost on ties, as tokenizers does); eot is
    the special token after the merges' ids."""

    def __init__(self, merges, eot):
        self.vocab = base_vocab(merges)
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {}
        self.id_to_token = [B2U[b] for b in range(256)] + [a + b for a, b in merges] + [eot]
        self.eot = eot

    def word(self, w):
        got = self.cache.get(w)
        if got is not None:
            return got
        parts = [B2U[b] for b in w.encode("utf-8")]
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(ranked)
            if rank == math.inf:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids = [self.vocab[p] for p in parts]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        ids = []
        for w in SPLIT.findall(text):
            ids.extend(self.word(w))
        return ids

    def decode(self, ids):
        u2b = {c: b for b, c in B2U.items()}
        data = bytearray()
        for i in ids:
            tok = self.id_to_token[i]
            if tok == self.eot:
                data += tok.encode()
            else:
                data += bytes(u2b[c] for c in tok)
        return data.decode("utf-8", errors="replace")
