/* bn_chan.h: per-channel arithmetic shared by batchnorm.c and bn_sync.c, so that the
 * single-process and the synchronized batch norm merge statistics and scale with the same
 * operations in the same order (each includer's floating-point pragmas apply to its copy). */
#ifndef BNPY_BN_CHAN_H
#define BNPY_BN_CHAN_H

#include <math.h>
#include <stddef.h>

/* Chan's formula for C channels: the block b (n_b values, mean_b, M2_b per channel) merged into
 * the running (n_a, mean, m2); with δ = mean_b − mean and n = n_a + n_b,
 *   mean += δ·n_b/n,   m2 += M2_b + δ²·n_a·n_b/n.
 * The weights are computed once, so the loop has no division. Returns n. */
static inline double bn_chan_merge_channels(double *mean, double *m2, const double *mean_b,
                                            const double *m2_b, double n_a, double n_b, ptrdiff_t C)
{
    double n = n_a + n_b, w_b = n_b / n, w_ab = n_a * n_b / n;
    for (ptrdiff_t c = 0; c < C; c++) {
        double delta = mean_b[c] - mean[c];
        mean[c] += delta * w_b;
        m2[c] += m2_b[c] + delta * delta * w_ab;
    }
    return n;
}

/* M2 of n values to the biased variance M2/n in place (0 when n is 0). Rounding can leave M2 a
 * hair below zero, clamped to 0; a NaN (from a NaN or Inf in the channel) stays. */
static inline void bn_m2_to_var(double *var, double n, ptrdiff_t C)
{
    for (ptrdiff_t c = 0; c < C; c++) {
        double v = n > 0.0 ? var[c] / n : 0.0;
        var[c] = v < 0.0 ? 0.0 : v;
    }
}

/* 1/√(var + ε), with 0 for var + ε == 0 (a constant channel and ε = 0) instead of infinity. */
static inline double bn_invstd(double var, double epsilon)
{
    double v = var + epsilon;
    return v == 0.0 ? 0.0 : 1.0 / sqrt(v);
}

#endif /* BNPY_BN_CHAN_H */
