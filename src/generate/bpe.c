/* Byte-pair encoding of one word: the merge table and the priority-queue merge (bpe.h). */
#include "generate/bpe.h"

#include <stdlib.h>
#include <string.h>

typedef struct bpe_symbol {
  uint32_t id;
  int64_t prev, next; /* -1: none */
  int removed;
} bpe_symbol;

typedef struct bpe_heap_item {
  uint32_t rank, merged;
  size_t pos;
} bpe_heap_item;

static uint64_t mix(uint64_t k) { /* splitmix64's finalizer: pairs of small ids spread well */
  k ^= k >> 30;
  k *= 0xbf58476d1ce4e5b9ULL;
  k ^= k >> 27;
  k *= 0x94d049bb133111ebULL;
  k ^= k >> 31;
  return k;
}

inferd_status bpe_merges_init(bpe_merges *m, size_t expected) {
  memset(m, 0, sizeof *m);
  size_t cap = 16;
  while (cap < expected * 2) cap <<= 1;
  m->keys = malloc(cap * sizeof *m->keys);
  m->rank = malloc(cap * sizeof *m->rank);
  m->merged = malloc(cap * sizeof *m->merged);
  if (!m->keys || !m->rank || !m->merged) {
    bpe_merges_free(m);
    return status_make(INFERD_INTERNAL, "out of memory for %zu merge rules", expected);
  }
  memset(m->keys, 0xFF, cap * sizeof *m->keys);
  m->cap = cap;
  return status_ok();
}

void bpe_merges_free(bpe_merges *m) {
  free(m->keys);
  free(m->rank);
  free(m->merged);
  memset(m, 0, sizeof *m);
}

static size_t slot_of(const bpe_merges *m, uint64_t key) {
  size_t i = (size_t)mix(key) & (m->cap - 1);
  while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
  return i;
}

void bpe_merges_put(bpe_merges *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t merged) {
  uint64_t key = (uint64_t)left << 32 | right;
  size_t i = slot_of(m, key); /* the caller sized the table for every rule: a slot is free */
  if (m->keys[i] == UINT64_MAX) m->count++;
  m->keys[i] = key;
  m->rank[i] = rank;
  m->merged[i] = merged;
}

bool bpe_merges_get(const bpe_merges *m, uint32_t left, uint32_t right, uint32_t *rank, uint32_t *merged) {
  if (m->count == 0) return false;
  size_t i = slot_of(m, (uint64_t)left << 32 | right);
  if (m->keys[i] == UINT64_MAX) return false;
  *rank = m->rank[i];
  *merged = m->merged[i];
  return true;
}

void bpe_scratch_free(bpe_scratch *s) {
  free(s->sym);
  free(s->heap);
  memset(s, 0, sizeof *s);
}

static bool heap_less(const bpe_heap_item *a, const bpe_heap_item *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_heap_item *h, size_t *n, bpe_heap_item it) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(&it, &h[parent])) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = it;
}

static bpe_heap_item heap_pop(bpe_heap_item *h, size_t *n) {
  bpe_heap_item top = h[0], last = h[--*n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && heap_less(&h[c + 1], &h[c])) c++;
    if (!heap_less(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n > 0) h[i] = last;
  return top;
}

inferd_status bpe_merge_word(const bpe_merges *m, bpe_scratch *s, uint32_t *ids, size_t *n) {
  size_t count = *n;
  if (count < 2 || m->count == 0) return status_ok();
  /* Each merge removes a symbol and queues at most two pairs: the heap never holds more than
   * the count - 1 initial pairs plus 2 per merge, i.e. under 3 * count. */
  size_t heap_cap = 3 * count;
  if (s->cap < heap_cap) {
    bpe_symbol *sym = realloc(s->sym, heap_cap * sizeof *sym);
    if (sym) s->sym = sym;
    bpe_heap_item *heap = realloc(s->heap, heap_cap * sizeof *heap);
    if (heap) s->heap = heap;
    if (!sym || !heap) return status_make(INFERD_INTERNAL, "out of memory for a word of %zu symbols", count);
    s->cap = heap_cap;
  }
  bpe_symbol *sym = s->sym;
  bpe_heap_item *heap = s->heap;
  size_t hn = 0;
  for (size_t i = 0; i < count; i++) {
    sym[i].id = ids[i];
    sym[i].prev = (int64_t)i - 1;
    sym[i].next = i + 1 < count ? (int64_t)i + 1 : -1;
    sym[i].removed = 0;
  }
  uint32_t rank, merged;
  for (size_t i = 0; i + 1 < count; i++)
    if (bpe_merges_get(m, ids[i], ids[i + 1], &rank, &merged))
      heap_push(heap, &hn, (bpe_heap_item){.rank = rank, .merged = merged, .pos = i});
  while (hn > 0) {
    bpe_heap_item top = heap_pop(heap, &hn);
    bpe_symbol *cur = &sym[top.pos];
    if (cur->removed || cur->next < 0) continue;
    bpe_symbol *right = &sym[cur->next];
    /* A stale entry: one of the pair has merged since it was queued. */
    if (!bpe_merges_get(m, cur->id, right->id, &rank, &merged) || merged != top.merged) continue;
    cur->id = top.merged;
    right->removed = 1;
    cur->next = right->next;
    if (cur->next >= 0) sym[cur->next].prev = (int64_t)top.pos;
    if (cur->prev >= 0 && bpe_merges_get(m, sym[cur->prev].id, cur->id, &rank, &merged))
      heap_push(heap, &hn, (bpe_heap_item){.rank = rank, .merged = merged, .pos = (size_t)cur->prev});
    if (cur->next >= 0 && bpe_merges_get(m, cur->id, sym[cur->next].id, &rank, &merged))
      heap_push(heap, &hn, (bpe_heap_item){.rank = rank, .merged = merged, .pos = top.pos});
  }
  size_t out = 0;
  for (int64_t i = 0; i >= 0; i = sym[i].next) ids[out++] = sym[i].id;
  *n = out;
  return status_ok();
}
