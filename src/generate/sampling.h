/* generate/sampling: choosing the next token from a model's logits, as pure functions (no model,
 * no threads): a seeded RNG, repetition penalties, temperature / top_k / top_p sampling and
 * log-probabilities, and the stop-sequence matcher that works on the streamed text. */
#ifndef INFERD_GENERATE_SAMPLING_H
#define INFERD_GENERATE_SAMPLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xoshiro256** seeded through splitmix64: the same seed gives the same draws on every machine. */
typedef struct gen_rng {
  uint64_t s[4];
} gen_rng;
void gen_rng_seed(gen_rng *r, uint64_t seed);
uint64_t gen_rng_next(gen_rng *r);
/* Uniform in [0, 1), 53 bits. */
double gen_rng_uniform(gen_rng *r);

/* What sample_choose uses (already resolved: no "not given" values). */
typedef struct sample_params {
  double temperature; /* 0: greedy (the likeliest token, the lowest id on a tie) */
  double top_p;       /* (0, 1] */
  int64_t top_k;      /* 0: off */
  double presence_penalty, frequency_penalty;
} sample_params;

/* OpenAI's penalties: logits[t] -= count(t) * frequency + (count(t) > 0) * presence, over the
 * tokens generated so far (history[0..n), any order). scratch holds n entries. */
void sample_apply_penalties(float *logits, size_t vocab, const uint32_t *history, size_t n, double presence,
                            double frequency, uint32_t *scratch);

/* Scratch for sample_choose: vocab entries (the caller allocates once per sequence). */
typedef struct sample_cand {
  double w; /* unnormalised probability */
  uint32_t id;
} sample_cand;

/* Picks a token from logits[0..vocab) (already penalised): greedy at temperature 0, else a draw
 * from softmax(logits / temperature) restricted to the top_k likeliest, then to the smallest
 * set of likeliest whose probability reaches top_p. */
uint32_t sample_choose(const float *logits, size_t vocab, const sample_params *p, gen_rng *rng, sample_cand *scratch);

/* log softmax(logits / t)[id] (t = temperature, or 1 for greedy); and when top, the n likeliest
 * ids with their log-probabilities, likeliest first (ties: lower id first). */
float sample_logprob(const float *logits, size_t vocab, double temperature, uint32_t id, uint32_t *top_ids,
                     float *top_lp, int n_top);

/* Stop sequences on streamed text. Text goes in piece by piece (whole UTF-8 characters); what
 * cannot be the start of a stop sequence comes out at once, a tail that may be is held until
 * the next piece decides it. A stop sequence split across tokens is found. */
#define STOP_MAX 4
#define STOP_MAX_BYTES 256
typedef struct stop_matcher {
  const char *stops[STOP_MAX];
  size_t lens[STOP_MAX];
  size_t n;
  char held[STOP_MAX_BYTES];
  size_t n_held;
  bool matched; /* a stop sequence was found; nothing more comes out */
} stop_matcher;

/* stops[i] must be non-empty and at most STOP_MAX_BYTES bytes; borrowed. */
void stop_init(stop_matcher *m, const char *const *stops, size_t n);
/* Appends to out (room for n_held + len bytes, see stop_out_cap) the text released by piece,
 * sets *out_len; returns true when a stop sequence completed (out then holds the text before it
 * and every later push releases nothing). */
bool stop_push(stop_matcher *m, const char *piece, size_t len, char *out, size_t *out_len);
static inline size_t stop_out_cap(size_t piece_len) { return STOP_MAX_BYTES + piece_len; }
/* At the end of the generation: the held text (none after a match). */
void stop_flush(stop_matcher *m, char *out, size_t *out_len);

#endif
