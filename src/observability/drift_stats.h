/* observability/drift_stats: the pure statistics of drift detection — PSI, Jensen-Shannon
 * distance and the (binned) Kolmogorov-Smirnov statistic between a reference histogram and a
 * current one over the same bins — and the quantile bin edges profiles are built with. */
#ifndef INFERD_DRIFT_STATS_H
#define INFERD_DRIFT_STATS_H

#include <stddef.h>

/* A bin with no observations would make PSI's log ratio infinite; each bin's proportion is
 * floored at this before PSI is computed (not renormalised), as most PSI implementations do.
 * With it, a bin holding 0 % against one holding 10 % adds (0.1 - 1e-4) * ln(0.1 / 1e-4),
 * about 0.69: one emptied decile alone is an alert. */
#define DRIFT_EPSILON 1e-4

/* Population stability index of cur against ref, both counts over the same n bins:
 * sum_i (q_i - p_i) * ln(q_i / p_i), p = ref / sum(ref), q = cur / sum(cur), each floored at
 * DRIFT_EPSILON. NAN when either histogram is empty (no data, no score). */
double drift_psi(const double *ref, const double *cur, size_t n);

/* Jensen-Shannon distance (the square root of the divergence, log base 2, so 0..1) between the
 * two normalised histograms; empty bins contribute nothing (0 log 0 = 0). NAN when either is
 * empty. The same value as scipy.spatial.distance.jensenshannon(ref, cur, base=2). */
double drift_js_distance(const double *ref, const double *cur, size_t n);

/* Kolmogorov-Smirnov statistic over ordered bins: the largest difference between the two
 * cumulative distributions at the bins' upper edges. For numeric features binned at quantile
 * edges this is the two-sample KS statistic evaluated at those edges (a lower bound of the
 * exact statistic over raw values). NAN when either is empty. */
double drift_ks(const double *ref, const double *cur, size_t n);

/* The bin of x among n_edges ascending edges: the number of edges <= x, so bin i holds
 * edges[i-1] <= x < edges[i] (bin 0 everything below the first edge, bin n_edges everything
 * from the last up). numpy: searchsorted(edges, x, side="right"). NaN goes to bin 0. */
size_t drift_bin_of(const double *edges, size_t n_edges, double x);

/* The q-quantile (0..1) of n ascending values, linearly interpolated between the two closest
 * ranks (numpy.quantile's default, "linear"). n must be > 0. */
double drift_quantile(const double *sorted, size_t n, double q);

/* Edges for `bins` equal-frequency bins over n ascending values: the quantiles at 1/bins ..
 * (bins-1)/bins, with repeats removed (a value shared by many rows, as integer features have,
 * makes fewer, wider bins). edges needs room for bins - 1; returns how many were written. */
size_t drift_quantile_edges(const double *sorted, size_t n, size_t bins, double *edges);

#endif
