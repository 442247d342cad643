/* bn_ghost.h: ghost (virtual) batch normalization as tf.keras's virtual_batch_size computes it,
 * per type (included by bn_typed.h after bn_entry.h, whose passes it composes).
 *
 * x is N = V·G samples of S = outer·C·inner values each, sample n at x + n·S, each one an
 * (outer, C, inner) block. tf.keras reshapes the batch to (V, G, ...) and reduces over the V axis,
 * so virtual batch g holds samples g, g + G, …, g + (V − 1)·G: per g and channel c, with
 * m = V·outer·inner values,
 *
 *   mean[g, c] = (1/m) Σ x,   var[g, c] = (1/m) Σ (x − mean)²      (over the samples of g)
 *   y = (x − mean[g])·γ/√(var[g] + ε) + β
 *
 * and the backward is batch norm's training backward per virtual batch, dγ and dβ summed over
 * the virtual batches. The samples of one virtual batch are not contiguous, so each sample is
 * its own (outer, C, inner) block for the passes: its statistics about its own pivot, merged in
 * double over the virtual batch with Chan's formula in sample order; its gradient sums added in
 * double in sample order; the elementwise passes run sample by sample with the virtual batch's
 * coefficients. Results do not depend on the thread count (each pass's do not, and the merges run
 * in a fixed order). The passes pay a fixed cost per channel and call, so this suits samples of
 * many values (feature maps); Dense-like samples (outer·inner = 1) are better served by viewing
 * the batch as (V, G·C) and calling the training forward once (bnpy.ops does that when the
 * channel axis is the first after the batch axis). */

int BN_GHOST_FORWARD(T *y, T *mean, T *var, const T *x, const T *gamma, const T *beta,
                     ptrdiff_t virtual_batch, ptrdiff_t groups, ptrdiff_t outer, ptrdiff_t channels,
                     ptrdiff_t inner, double epsilon)
{
    bn_call call;
    ptrdiff_t C = channels, sample = outer * channels * inner;
    double m_sample = (double)(outer * inner);
    if (virtual_batch <= 0 || groups <= 0)
        return 0;
    int ready = bn_call_begin(&call, outer, channels, inner, 1, 2, 13);
    if (ready <= 0)
        return ready;
    double *pivot = call.scratch + 2 * call.p.chunks * C, *centered = pivot + C,
           *var_d = centered + C, *pivot0 = var_d + C, *group_mean = pivot0 + C,
           *group_m2 = group_mean + C, *scale = group_m2 + C, *shift = scale + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */

    for (ptrdiff_t g = 0; g < groups; g++) {
        /* Statistics: each sample's about its own pivot, merged relative to the first one's. */
        for (ptrdiff_t v = 0; v < virtual_batch; v++) {
            F(bn_batch_stats)(pivot, centered, var_d, call.scratch, x + (v * groups + g) * sample,
                              &call.p);
            for (ptrdiff_t c = 0; c < C; c++) {
                if (v == 0) {
                    pivot0[c] = pivot[c];
                    group_mean[c] = centered[c];
                    group_m2[c] = var_d[c] * m_sample;
                    continue;
                }
                double n_a = (double)v * m_sample;
                bn_chan_merge(&n_a, group_mean + c, group_m2 + c, m_sample,
                              (pivot[c] - pivot0[c]) + centered[c], var_d[c] * m_sample);
            }
        }
        double inv_m = 1.0 / ((double)virtual_batch * m_sample);
        for (ptrdiff_t c = 0; c < C; c++) {
            double group_var = group_m2[c] * inv_m;
            scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd(group_var, epsilon);
            shift[c] = beta != NULL ? (double)beta[c] : 0.0;
            mean[g * C + c] = (T)(pivot0[c] + group_mean[c]);
            var[g * C + c] = (T)group_var;
        }
        /* y = ((x − pivot0) − (mean − pivot0))·scale + β, as the training forward writes it. */
        for (ptrdiff_t v = 0; v < virtual_batch; v++) {
            ptrdiff_t offset = (v * groups + g) * sample;
            F(bn_affine)(y + offset, NULL, x + offset, NULL, scale, pivot0, group_mean, shift, coef,
                         &call.p);
            F(bn_fill_nan_channels)(y + offset, NULL, scale, pivot0, group_mean, shift, &call.p);
        }
    }
    bn_call_end(&call);
    return 0;
}

int BN_GHOST_BACKWARD(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x, const T *gamma,
                      const T *mean, const T *var, ptrdiff_t virtual_batch, ptrdiff_t groups,
                      ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    bn_call call;
    ptrdiff_t C = channels, sample = outer * channels * inner;
    int ready = bn_call_begin(&call, outer, channels, inner, 0, 2, 15);
    if (ready <= 0)
        return ready;
    double *sum_dy = call.scratch + 2 * call.p.chunks * C, *sum_dyxc = sum_dy + C,
           *group_dy = sum_dyxc + C, *group_dyxc = group_dy + C, *mean_d = group_dyxc + C,
           *a = mean_d + C, *b = a + C, *shift = b + C, *dgamma_d = shift + C,
           *dbeta_d = dgamma_d + C;
    T *coef = (T *)(dbeta_d + C); /* 5·C values of T for bn_affine */
    ptrdiff_t m = virtual_batch * outer * inner;
    double inv_m = m > 0 ? 1.0 / (double)m : 0.0;
    for (ptrdiff_t c = 0; c < C; c++)
        dgamma_d[c] = dbeta_d[c] = 0.0;

    for (ptrdiff_t g = 0; g < groups; g++) {
        for (ptrdiff_t c = 0; c < C; c++) {
            mean_d[c] = (double)mean[g * C + c];
            group_dy[c] = group_dyxc[c] = 0.0;
        }
        for (ptrdiff_t v = 0; v < virtual_batch; v++) {
            ptrdiff_t offset = (v * groups + g) * sample;
            F(bn_grad_sums)(sum_dy, sum_dyxc, call.scratch, NULL, dy + offset, x + offset, mean_d,
                            NULL, &call.p);
            for (ptrdiff_t c = 0; c < C; c++) {
                group_dy[c] += sum_dy[c];
                group_dyxc[c] += sum_dyxc[c];
            }
        }
        /* dx = a·(dy − Σdy/m) + b·(x − mean), as bn_backward's training branch. */
        for (ptrdiff_t c = 0; c < C; c++) {
            double s = bn_invstd((double)var[g * C + c], epsilon);
            double gam = gamma != NULL ? (double)gamma[c] : 1.0;
            a[c] = gam * s;
            b[c] = -gam * s * s * s * group_dyxc[c] * inv_m;
            shift[c] = group_dy[c] * inv_m;
            dgamma_d[c] += group_dyxc[c] * s;
            dbeta_d[c] += group_dy[c];
        }
        if (m == 0)
            continue;
        for (ptrdiff_t v = 0; v < virtual_batch; v++) {
            ptrdiff_t offset = (v * groups + g) * sample;
            F(bn_affine)(dx + offset, dy + offset, x + offset, a, b, NULL, mean_d, shift, coef,
                         &call.p);
            F(bn_fill_nan_channels)(dx + offset, a, b, NULL, mean_d, shift, &call.p);
        }
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        dgamma[c] = (T)dgamma_d[c];
        dbeta[c] = (T)dbeta_d[c];
    }
    bn_call_end(&call);
    return 0;
}
