/* generate/sampling: the next token from logits (penalties, temperature, top_k, top_p, a seeded
 * RNG), log-probabilities, and stop sequences matched on streamed text. Pure functions. */
#include "generate/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void gen_rng_seed(gen_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t gen_rng_next(gen_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double gen_rng_uniform(gen_rng *r) { return (double)(gen_rng_next(r) >> 11) * 0x1.0p-53; }

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

void sample_apply_penalties(float *logits, size_t vocab, const uint32_t *history, size_t n, double presence,
                            double frequency, uint32_t *scratch) {
  if (n == 0 || (presence == 0 && frequency == 0)) return;
  memcpy(scratch, history, n * sizeof *scratch);
  qsort(scratch, n, sizeof *scratch, cmp_u32);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scratch[j] == scratch[i]) j++;
    if (scratch[i] < vocab) logits[scratch[i]] -= (float)((double)(j - i) * frequency + presence);
    i = j;
  }
}

static uint32_t argmax(const float *logits, size_t vocab) {
  uint32_t best = 0;
  for (size_t i = 1; i < vocab; i++)
    if (logits[i] > logits[best]) best = (uint32_t)i;
  return best;
}

/* likeliest first; among equals the lower id, so the order never depends on qsort's */
static int cmp_cand(const void *a, const void *b) {
  const sample_cand *x = a, *y = b;
  if (x->w != y->w) return x->w > y->w ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

uint32_t sample_choose(const float *logits, size_t vocab, const sample_params *p, gen_rng *rng, sample_cand *c) {
  if (vocab == 0) return 0;
  if (p->temperature <= 0) return argmax(logits, vocab);
  float m = logits[argmax(logits, vocab)];
  double total = 0;
  for (size_t i = 0; i < vocab; i++) {
    c[i].w = exp(((double)logits[i] - m) / p->temperature);
    c[i].id = (uint32_t)i;
    total += c[i].w;
  }
  size_t k = vocab;
  bool top_k = p->top_k > 0 && (uint64_t)p->top_k < vocab, top_p = p->top_p < 1;
  if (top_k || top_p) {
    qsort(c, vocab, sizeof *c, cmp_cand);
    if (top_k) k = (size_t)p->top_k;
    double kept = 0;
    for (size_t i = 0; i < k; i++) kept += c[i].w;
    if (top_p) {
      /* the smallest prefix whose share of the kept mass reaches top_p */
      double cum = 0, want = p->top_p * kept;
      size_t i = 0;
      while (i < k) {
        cum += c[i++].w;
        if (cum >= want) break;
      }
      k = i;
      kept = cum;
    }
    total = kept;
  }
  double u = gen_rng_uniform(rng) * total, cum = 0;
  for (size_t i = 0; i < k; i++) {
    cum += c[i].w;
    if (u < cum) return c[i].id;
  }
  /* rounding left u at the very end: the last candidate with any weight */
  for (size_t i = k; i-- > 0;)
    if (c[i].w > 0) return c[i].id;
  return c[0].id;
}

float sample_logprob(const float *logits, size_t vocab, double temperature, uint32_t id, uint32_t *top_ids,
                     float *top_lp, int n_top) {
  double t = temperature > 0 ? temperature : 1;
  float m = logits[argmax(logits, vocab)];
  double sum = 0;
  for (size_t i = 0; i < vocab; i++) sum += exp(((double)logits[i] - m) / t);
  double lse = log(sum > 0 ? sum : 1); /* sum >= 1: the largest logit adds exp(0) */
  int n = 0;
  for (size_t i = 0; i < vocab && n_top > 0; i++) {
    /* insertion into the sorted top list; a tie keeps the lower id first */
    float v = logits[i];
    if (n == n_top && !(v > logits[top_ids[n - 1]])) continue;
    int j = n < n_top ? n++ : n - 1;
    while (j > 0 && v > logits[top_ids[j - 1]]) {
      top_ids[j] = top_ids[j - 1];
      j--;
    }
    top_ids[j] = (uint32_t)i;
  }
  for (int i = 0; i < n; i++) top_lp[i] = (float)(((double)logits[top_ids[i]] - m) / t - lse);
  return id < vocab ? (float)(((double)logits[id] - m) / t - lse) : -INFINITY;
}

void stop_init(stop_matcher *m, const char *const *stops, size_t n) {
  memset(m, 0, sizeof *m);
  for (size_t i = 0; i < n && m->n < STOP_MAX; i++) {
    size_t len = strlen(stops[i]);
    if (len == 0 || len > STOP_MAX_BYTES) continue;
    m->stops[m->n] = stops[i];
    m->lens[m->n++] = len;
  }
}

bool stop_push(stop_matcher *m, const char *piece, size_t len, char *out, size_t *out_len) {
  *out_len = 0;
  if (m->matched) return true;
  /* text = held + piece, assembled in out (its room is n_held + len) */
  memcpy(out, m->held, m->n_held);
  memcpy(out + m->n_held, piece, len);
  size_t n = m->n_held + len;
  m->n_held = 0;
  /* the earliest stop sequence in the text (the held part held no complete one) */
  size_t first = n;
  for (size_t s = 0; s < m->n; s++) {
    size_t L = m->lens[s];
    for (size_t i = 0; i + L <= n && i < first; i++)
      if (memcmp(out + i, m->stops[s], L) == 0) {
        first = i;
        break;
      }
  }
  if (first < n) {
    m->matched = true;
    *out_len = first;
    return true;
  }
  /* hold the longest tail that is a proper prefix of some stop sequence */
  size_t hold = 0;
  for (size_t s = 0; s < m->n; s++) {
    size_t L = m->lens[s];
    for (size_t t = (L - 1 < n ? L - 1 : n); t > hold; t--)
      if (memcmp(out + n - t, m->stops[s], t) == 0) {
        hold = t;
        break;
      }
  }
  memcpy(m->held, out + n - hold, hold);
  m->n_held = hold;
  *out_len = n - hold;
  return false;
}

void stop_flush(stop_matcher *m, char *out, size_t *out_len) {
  *out_len = m->matched ? 0 : m->n_held;
  if (!m->matched) memcpy(out, m->held, m->n_held);
  m->n_held = 0;
}
