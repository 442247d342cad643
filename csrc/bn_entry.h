/* bn_entry.h: the batch-norm entry points of kernels.h, per type (included by bn_typed.h, whose
 * table names them: bnpy_bn_forward_f32 and so on). */

/* The training forward's statistics per channel: a pivot (a T value within the channel's data),
 * the mean relative to it and the biased variance, through chunk_scratch (2·chunks·C doubles).
 * The mean is carried relative to the pivot: mean = pivot + centered_mean with centered_mean of
 * the size of σ, and y = ((x − pivot) − centered_mean)·scale + β, where x − pivot is exact for
 * data far from 0 (1e4 + N(0, 1)). Subtracting one rounded mean instead would cost an ulp of |x|
 * in y. */
static void F(bn_batch_stats)(double *pivot, double *centered_mean, double *var_d,
                              double *chunk_scratch, const T *x, const bn_plan *p)
{
    double *chunk_mean = chunk_scratch, *chunk_m2 = chunk_scratch + p->chunks * p->channels;
    F(bn_pivots)(pivot, x, p);
    F(bn_chunk_stats)(chunk_mean, chunk_m2, x, pivot, p);
    bn_merge_chunk_stats(centered_mean, var_d, chunk_mean, chunk_m2, p);
}

/* The end of a training forward: y = ((x − pivot) − centered_mean)·scale + shift (NaN channels
 * filled), and the batch's mean and variance rounded to T. */
static void F(bn_forward_finish)(T *y, T *mean, T *var, const T *x, const double *scale,
                                 const double *pivot, const double *centered_mean,
                                 const double *var_d, const double *shift, T *coef,
                                 const bn_plan *p)
{
    F(bn_affine)(y, NULL, x, NULL, scale, pivot, centered_mean, shift, coef, p);
    F(bn_fill_nan_channels)(y, NULL, scale, pivot, centered_mean, shift, p);
    for (ptrdiff_t c = 0; c < p->channels; c++) {
        mean[c] = (T)(pivot[c] + centered_mean[c]);
        var[c] = (T)var_d[c];
    }
}

int BN_FORWARD(T *y, T *mean, T *var, const T *x, const T *gamma, const T *beta, ptrdiff_t outer,
               ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    bn_call call;
    int ready = bn_call_begin(&call, outer, channels, inner, 1, 2, 10);
    if (ready <= 0)
        return ready;
    ptrdiff_t C = channels;
    double *pivot = call.scratch + 2 * call.p.chunks * C, *centered_mean = pivot + C,
           *var_d = centered_mean + C, *scale = var_d + C, *shift = scale + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */
    F(bn_batch_stats)(pivot, centered_mean, var_d, call.scratch, x, &call.p);
    for (ptrdiff_t c = 0; c < C; c++) {
        scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd(var_d[c], epsilon);
        shift[c] = beta != NULL ? (double)beta[c] : 0.0;
    }
    F(bn_forward_finish)(y, mean, var, x, scale, pivot, centered_mean, var_d, shift, coef, &call.p);
    bn_call_end(&call);
    return 0;
}

int BN_INFERENCE(T *y, const T *x, const T *gamma, const T *beta, const T *mean, const T *var,
                 ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    bn_call call;
    int ready = bn_call_begin(&call, outer, channels, inner, 1, 0, 8);
    if (ready <= 0)
        return ready;
    ptrdiff_t C = channels;
    double *mean_d = call.scratch, *scale = mean_d + C, *shift = scale + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */
    for (ptrdiff_t c = 0; c < C; c++) {
        mean_d[c] = (double)mean[c];
        scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd((double)var[c], epsilon);
        shift[c] = beta != NULL ? (double)beta[c] : 0.0;
    }
    F(bn_affine)(y, NULL, x, NULL, scale, NULL, mean_d, shift, coef, &call.p);
    F(bn_fill_nan_channels)(y, NULL, scale, NULL, mean_d, shift, &call.p);
    bn_call_end(&call);
    return 0;
}

/* Σdy and Σdy·(x − mean) per channel into sum_dy, sum_dyxc (0 when there are no values), through
 * chunk_scratch (2·chunks·C doubles); with dx, also dx = scale·dy in the same pass. */
static void F(bn_grad_sums)(double *sum_dy, double *sum_dyxc, double *chunk_scratch, T *dx,
                            const T *dy, const T *x, const double *mean_d, const double *scale,
                            const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    if (p->outer * p->inner == 0) {
        for (ptrdiff_t c = 0; c < C; c++)
            sum_dy[c] = sum_dyxc[c] = 0.0;
        return;
    }
    double *chunk_dy = chunk_scratch, *chunk_dyxc = chunk_scratch + p->chunks * C;
    F(bn_chunk_grad_sums)(chunk_dy, chunk_dyxc, dx, dy, x, mean_d, scale, p);
    bn_merge_chunk_sums(sum_dy, chunk_dy, p);
    bn_merge_chunk_sums(sum_dyxc, chunk_dyxc, p);
}

/* dγ = Σdy·(x − mean)/√(var + ε) and dβ = Σdy, rounded to T. */
static void F(bn_write_param_grads)(T *dgamma, T *dbeta, const double *sum_dy,
                                    const double *sum_dyxc, const T *var, double epsilon,
                                    ptrdiff_t C)
{
    for (ptrdiff_t c = 0; c < C; c++) {
        dgamma[c] = (T)(sum_dyxc[c] * bn_invstd((double)var[c], epsilon));
        dbeta[c] = (T)sum_dy[c];
    }
}

/* The two backwards, which share their sums: training (the statistics depend on x) or inference
 * (they are constants).
 *   training:  dx = a·(dy − Σdy/m) + b·(x − mean) with a = γ·s, b = −γ·s³·Σdy(x − mean)/m,
 *              s = 1/√(var + ε): the compact form γ·s·(dy − Σdy/m − x̂·Σdy·x̂/m) written out,
 *              in a second pass after the sums;
 *   inference: dx = γ·s·dy, written in the same pass as the sums. */
static int F(bn_backward)(int training, T *dx, T *dgamma, T *dbeta, const T *dy, const T *x,
                          const T *gamma, const T *mean, const T *var, ptrdiff_t outer,
                          ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    bn_call call;
    int ready = bn_call_begin(&call, outer, channels, inner, 0, 2, 11);
    if (ready <= 0)
        return ready;
    ptrdiff_t C = channels, m = outer * inner;
    double *sum_dy = call.scratch + 2 * call.p.chunks * C, *sum_dyxc = sum_dy + C,
           *mean_d = sum_dyxc + C, *a = mean_d + C, *b = a + C, *shift = b + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */
    for (ptrdiff_t c = 0; c < C; c++) {
        mean_d[c] = (double)mean[c];
        a[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd((double)var[c], epsilon);
    }
    F(bn_grad_sums)(sum_dy, sum_dyxc, call.scratch, training ? NULL : dx, dy, x, mean_d,
                    training ? NULL : a, &call.p);
    if (training) {
        double inv_m = m > 0 ? 1.0 / (double)m : 0.0;
        for (ptrdiff_t c = 0; c < C; c++) {
            double s = bn_invstd((double)var[c], epsilon);
            double g = gamma != NULL ? (double)gamma[c] : 1.0;
            b[c] = -g * s * s * s * sum_dyxc[c] * inv_m;
            shift[c] = sum_dy[c] * inv_m; /* the mean of dy */
        }
        if (m > 0)
            F(bn_affine)(dx, dy, x, a, b, NULL, mean_d, shift, coef, &call.p);
    }
    if (m > 0)
        F(bn_fill_nan_channels)(dx, a, training ? b : NULL, NULL, training ? mean_d : NULL,
                                training ? shift : NULL, &call.p);
    F(bn_write_param_grads)(dgamma, dbeta, sum_dy, sum_dyxc, var, epsilon, C);
    bn_call_end(&call);
    return 0;
}

int BN_BACKWARD(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x, const T *gamma, const T *mean,
                const T *var, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    return F(bn_backward)(1, dx, dgamma, dbeta, dy, x, gamma, mean, var, outer, channels, inner,
                          epsilon);
}

int BN_INFERENCE_BACKWARD(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x, const T *gamma,
                          const T *mean, const T *var, ptrdiff_t outer, ptrdiff_t channels,
                          ptrdiff_t inner, double epsilon)
{
    return F(bn_backward)(0, dx, dgamma, dbeta, dy, x, gamma, mean, var, outer, channels, inner,
                          epsilon);
}

void BN_UPDATE_MOVING_STATS(T *moving_mean, T *moving_var, const T *mean, const T *var,
                            ptrdiff_t channels, double momentum, ptrdiff_t count)
{
    /* count m > 1: the paper's unbiased estimate var·m/(m − 1); m <= 1: no correction (no NaN). */
    double correction = count > 1 ? (double)count / (double)(count - 1) : 1.0;
    double keep = momentum, take = 1.0 - momentum;
    for (ptrdiff_t c = 0; c < channels; c++) {
        double batch_mean = (double)mean[c], batch_var = (double)var[c] * correction;
        moving_mean[c] = (T)(keep * (double)moving_mean[c] + take * batch_mean);
        moving_var[c] = (T)(keep * (double)moving_var[c] + take * batch_var);
    }
}
