/* Byte-pair encoding of one word as Hugging Face tokenizers' BPE model does it: every adjacent
 * pair that a merge rule names goes in a priority queue (lowest rank first, then leftmost);
 * the best is merged and the pairs it forms with its neighbours queued, until none is left.
 * O(n log n) in the word's symbols, no recursion. */
#ifndef INFERD_GENERATE_BPE_H
#define INFERD_GENERATE_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The merge rules: (left id, right id) -> (rank, merged id). An open-addressing table. */
typedef struct bpe_merges {
  uint64_t *keys; /* owned; left << 32 | right, or UINT64_MAX for an empty slot */
  uint32_t *rank; /* owned */
  uint32_t *merged; /* owned */
  size_t cap;       /* a power of two, at least twice count */
  size_t count;
} bpe_merges;

inferd_status bpe_merges_init(bpe_merges *m, size_t expected);
void bpe_merges_free(bpe_merges *m);
/* Adds or replaces (a later rule for the same pair wins, as tokenizers' map does). */
void bpe_merges_put(bpe_merges *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t merged);
/* True with *rank, *merged when the pair has a rule. */
bool bpe_merges_get(const bpe_merges *m, uint32_t left, uint32_t right, uint32_t *rank, uint32_t *merged);

/* Scratch space one encode call reuses across its words (owned; bpe_scratch_free). */
typedef struct bpe_scratch {
  struct bpe_symbol *sym;
  struct bpe_heap_item *heap;
  size_t sym_cap, heap_cap;
} bpe_scratch;

void bpe_scratch_free(bpe_scratch *s);

/* Merges ids[0..*n) in place; *n becomes the number of tokens left. False when out of memory
 * (or a word over INT32_MAX symbols). */
bool bpe_merge_word(const bpe_merges *m, bpe_scratch *s, uint32_t *ids, size_t *n);

#endif
