/* bn_renorm.h: Batch Renormalization (Ioffe 2017, arXiv 1702.03275), per type (included by
 * bn_typed.h after bn_entry.h, whose passes it composes).
 *
 * Per channel, with the batch's mean μ_B and biased variance σ²_B (the statistics pass of the
 * training forward) and the layer's renorm statistics (renorm_mean, renorm_stddev):
 *
 *   σ_B = √(σ²_B + ε),   s = max(renorm_stddev, √ε)
 *   r = clip(σ_B / s, rmin, rmax),   d = clip((μ_B − renorm_mean) / s, −dmax, dmax)
 *   y = γ·(x̂·r + d) + β = (x − μ_B)·γ·r/σ_B + (γ·d + β),   x̂ = (x − μ_B)/σ_B
 *
 * as tf.keras's BatchNormalization(renorm=True) computes them (s floored at √ε there too). The
 * backward treats r and d as constants (stop_gradient), so it is batch norm's training backward
 * with γ·r in place of γ, and dγ = Σdy·(x̂·r + d) = r·Σdy·x̂ + d·Σdy, dβ = Σdy.
 *
 * r and d are rounded to T before they enter the coefficients, so that the backward, which gets
 * them back from the caller, uses the forward's very values. With r = 1 and d = 0 (rmin = rmax = 1,
 * dmax = 0) every output equals batch norm's bit for bit. A NaN in x, in the renorm statistics or
 * in the parameters makes r or d NaN (the clipping keeps a NaN) and the channel's outputs NaN. */

#ifndef BN_RENORM_UNTYPED /* the part that does not depend on T, once */
#define BN_RENORM_UNTYPED
/* v clipped to [lo, hi]; a NaN stays NaN (tf.maximum/minimum propagate it; fmin/fmax would not). */
static inline double bn_clip(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}
#endif

int BN_RENORM_FORWARD(T *y, T *mean, T *var, T *r, T *d, const T *x, const T *gamma, const T *beta,
                      const T *renorm_mean, const T *renorm_stddev, ptrdiff_t outer,
                      ptrdiff_t channels, ptrdiff_t inner, double epsilon, double rmin, double rmax,
                      double dmax)
{
    bn_call call;
    ptrdiff_t C = channels;
    int ready = bn_call_begin(&call, outer, channels, inner, 1, 2, 10);
    if (ready <= 0)
        return ready;
    double *pivot = call.scratch + 2 * call.p.chunks * C, *centered_mean = pivot + C,
           *var_d = centered_mean + C, *scale = var_d + C, *shift = scale + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */

    /* The statistics exactly as the training forward computes them (see BN_FORWARD). */
    F(bn_batch_stats)(pivot, centered_mean, var_d, call.scratch, x, &call.p);
    double stddev_floor = sqrt(epsilon);
    for (ptrdiff_t c = 0; c < C; c++) {
        double batch_mean = pivot[c] + centered_mean[c];
        double batch_stddev = sqrt(var_d[c] + epsilon);
        double s = (double)renorm_stddev[c];
        if (s < stddev_floor) /* a NaN stays */
            s = stddev_floor;
        r[c] = (T)bn_clip(batch_stddev / s, rmin, rmax);
        d[c] = (T)bn_clip((batch_mean - (double)renorm_mean[c]) / s, -dmax, dmax);
        double g = gamma != NULL ? (double)gamma[c] : 1.0;
        scale[c] = g * (double)r[c] * bn_invstd(var_d[c], epsilon);
        shift[c] = g * (double)d[c] + (beta != NULL ? (double)beta[c] : 0.0);
    }
    F(bn_forward_finish)(y, mean, var, x, scale, pivot, centered_mean, var_d, shift, coef, &call.p);
    bn_call_end(&call);
    return 0;
}

int BN_RENORM_BACKWARD(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x, const T *gamma,
                       const T *mean, const T *var, const T *r, const T *d, ptrdiff_t outer,
                       ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    bn_call call;
    ptrdiff_t C = channels, m = outer * inner;
    int ready = bn_call_begin(&call, outer, channels, inner, 0, 2, 11);
    if (ready <= 0)
        return ready;
    double *sum_dy = call.scratch + 2 * call.p.chunks * C, *sum_dyxc = sum_dy + C,
           *mean_d = sum_dyxc + C, *a = mean_d + C, *b = a + C, *shift = b + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */
    for (ptrdiff_t c = 0; c < C; c++)
        mean_d[c] = (double)mean[c];
    F(bn_grad_sums)(sum_dy, sum_dyxc, call.scratch, NULL, dy, x, mean_d, NULL, &call.p);
    /* dx = a·(dy − Σdy/m) + b·(x − mean) with the effective scale γ·r (see bn_backward). */
    double inv_m = m > 0 ? 1.0 / (double)m : 0.0;
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = bn_invstd((double)var[c], epsilon);
        double g = (gamma != NULL ? (double)gamma[c] : 1.0) * (double)r[c];
        a[c] = g * s;
        b[c] = -g * s * s * s * sum_dyxc[c] * inv_m;
        shift[c] = sum_dy[c] * inv_m; /* the mean of dy */
    }
    if (m > 0) {
        F(bn_affine)(dx, dy, x, a, b, NULL, mean_d, shift, coef, &call.p);
        F(bn_fill_nan_channels)(dx, a, b, NULL, mean_d, shift, &call.p);
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = bn_invstd((double)var[c], epsilon);
        dgamma[c] = (T)((double)r[c] * sum_dyxc[c] * s + (double)d[c] * sum_dy[c]);
        dbeta[c] = (T)sum_dy[c];
    }
    bn_call_end(&call);
    return 0;
}
