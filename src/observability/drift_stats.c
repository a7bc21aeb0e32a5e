/* observability/drift_stats: PSI, Jensen-Shannon distance, binned KS and quantile edges (pure). */
#include "observability/drift_stats.h"

#include <math.h>

static double total_of(const double *c, size_t n) {
  double t = 0;
  for (size_t i = 0; i < n; i++) t += c[i] > 0 ? c[i] : 0;
  return t;
}

static double floored(double count, double total) {
  double p = count > 0 ? count / total : 0;
  return p < DRIFT_EPSILON ? DRIFT_EPSILON : p;
}

double drift_psi(const double *ref, const double *cur, size_t n) {
  double tr = total_of(ref, n), tc = total_of(cur, n);
  if (tr <= 0 || tc <= 0) return NAN;
  double psi = 0;
  for (size_t i = 0; i < n; i++) {
    double p = floored(ref[i], tr), q = floored(cur[i], tc);
    psi += (q - p) * log(q / p);
  }
  return psi;
}

double drift_js_distance(const double *ref, const double *cur, size_t n) {
  double tr = total_of(ref, n), tc = total_of(cur, n);
  if (tr <= 0 || tc <= 0) return NAN;
  double d = 0;
  for (size_t i = 0; i < n; i++) {
    double p = ref[i] > 0 ? ref[i] / tr : 0, q = cur[i] > 0 ? cur[i] / tc : 0, m = (p + q) / 2;
    if (p > 0) d += 0.5 * p * log2(p / m);
    if (q > 0) d += 0.5 * q * log2(q / m);
  }
  /* rounding can leave a tiny negative divergence for identical histograms */
  return d > 0 ? sqrt(d > 1 ? 1 : d) : 0;
}

double drift_ks(const double *ref, const double *cur, size_t n) {
  double tr = total_of(ref, n), tc = total_of(cur, n);
  if (tr <= 0 || tc <= 0) return NAN;
  double cr = 0, cc = 0, best = 0;
  for (size_t i = 0; i < n; i++) {
    cr += ref[i] > 0 ? ref[i] : 0;
    cc += cur[i] > 0 ? cur[i] : 0;
    double diff = fabs(cr / tr - cc / tc);
    if (diff > best) best = diff;
  }
  return best;
}

size_t drift_bin_of(const double *edges, size_t n_edges, double x) {
  if (isnan(x)) return 0;
  size_t lo = 0, hi = n_edges; /* first edge > x */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (edges[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

double drift_quantile(const double *sorted, size_t n, double q) {
  double h = (double)(n - 1) * q;
  size_t lo = (size_t)floor(h);
  if (lo >= n - 1) return sorted[n - 1];
  return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

size_t drift_quantile_edges(const double *sorted, size_t n, size_t bins, double *edges) {
  size_t k = 0;
  if (n == 0 || bins < 2) return 0;
  for (size_t i = 1; i < bins; i++) {
    double e = drift_quantile(sorted, n, (double)i / (double)bins);
    if (k == 0 || e > edges[k - 1]) edges[k++] = e;
  }
  return k;
}
