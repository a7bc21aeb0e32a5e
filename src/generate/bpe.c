/* Byte-pair encoding of one word: the merge table and the priority-queue merge (bpe.h). */
#include "generate/bpe.h"

#include <stdlib.h>
#include <string.h>

/* 12 bytes a symbol and a queue entry: a word is at most TOKENIZER_MAX_INPUT_BYTES symbols. */
typedef struct bpe_symbol {
  uint32_t id;
  int32_t prev, next; /* -1: none; prev -2: merged into the symbol on its left */
} bpe_symbol;

typedef struct bpe_heap_item {
  uint32_t rank, merged, pos;
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

/* Room for one more queue entry. (The merge path returns bools, not inferd_status: a status
 * is 516 bytes, and returning one per queued pair cost a quarter of the encoding time.) */
static bool heap_room(bpe_scratch *s, size_t n) {
  if (n < s->heap_cap) return true;
  size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
  bpe_heap_item *h = realloc(s->heap, cap * sizeof *h);
  if (!h) return false;
  s->heap = h;
  s->heap_cap = cap;
  return true;
}

static bool heap_less(const bpe_heap_item *a, const bpe_heap_item *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static bool heap_push(bpe_scratch *s, size_t *n, bpe_heap_item it) {
  if (!heap_room(s, *n)) return false;
  bpe_heap_item *h = s->heap;
  size_t i = (*n)++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(&it, &h[parent])) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = it;
  return true;
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

bool bpe_merge_word(const bpe_merges *m, bpe_scratch *s, uint32_t *ids, size_t *n) {
  size_t count = *n;
  if (count < 2 || m->count == 0) return true;
  if (count > INT32_MAX) return false;
  if (s->sym_cap < count) {
    bpe_symbol *sym = realloc(s->sym, count * sizeof *sym);
    if (!sym) return false;
    s->sym = sym;
    s->sym_cap = count;
  }
  bpe_symbol *sym = s->sym;
  size_t hn = 0;
  for (size_t i = 0; i < count; i++) {
    sym[i].id = ids[i];
    sym[i].prev = (int32_t)i - 1;
    sym[i].next = i + 1 < count ? (int32_t)i + 1 : -1;
  }
  uint32_t rank, merged;
  /* The queue grows as needed: each merge removes a symbol and queues at most two pairs. */
  for (size_t i = 0; i + 1 < count; i++)
    if (bpe_merges_get(m, ids[i], ids[i + 1], &rank, &merged))
      if (!heap_push(s, &hn, (bpe_heap_item){.rank = rank, .merged = merged, .pos = (uint32_t)i})) return false;
  while (hn > 0) {
    bpe_heap_item top = heap_pop(s->heap, &hn);
    bpe_symbol *cur = &sym[top.pos];
    if (cur->prev == -2 || cur->next < 0) continue;
    bpe_symbol *right = &sym[cur->next];
    /* A stale entry: one of the pair has merged since it was queued. */
    if (!bpe_merges_get(m, cur->id, right->id, &rank, &merged) || merged != top.merged) continue;
    cur->id = top.merged;
    right->prev = -2;
    cur->next = right->next;
    if (cur->next >= 0) sym[cur->next].prev = (int32_t)top.pos;
    if (cur->prev >= 0 && bpe_merges_get(m, sym[cur->prev].id, cur->id, &rank, &merged))
      if (!heap_push(s, &hn, (bpe_heap_item){.rank = rank, .merged = merged, .pos = (uint32_t)cur->prev})) return false;
    if (cur->next >= 0 && bpe_merges_get(m, cur->id, sym[cur->next].id, &rank, &merged))
      if (!heap_push(s, &hn, (bpe_heap_item){.rank = rank, .merged = merged, .pos = top.pos})) return false;
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = sym[i].next) ids[out++] = sym[i].id;
  *n = out;
  return true;
}
