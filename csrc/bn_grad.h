/* bn_grad.h: the gradient sums of the batch-norm backwards, per type (included by bn_typed.h). */

/* ---- gradient sums: one work unit --------------------------------------------------------
 * Σdy and Σdy·(x − mean) in double; for float32 data the second is Σdy·x − mean·Σdy from exact
 * products (see "reductions" above). With dx, also dx = scale·dy (the inference backward's one
 * pass); dx may be dy or x itself: each element is written after it is read. */

/* x − mean in a gradient sum's term, for a vector of 4 values and for one: x alone for float32
 * data (Σdy·x now, minus mean·Σdy at the end of the unit). */
#ifdef BNPY_VECTOR
BNPY_ALWAYS_INLINE bnpy_vd F(bn_center_vd)(bnpy_vd v, bnpy_vd m)
{
    return BN_F32 ? v : v - m;
}
#endif

BNPY_ALWAYS_INLINE double F(bn_center)(double v, double m)
{
    return BN_F32 ? v : v - m;
}

/* Rows layout: rows [r0, r1), channels [c0, c0 + cw), sums into unit_dy, unit_dyxc (from c0). */
static BNPY_HOT void F(bn_grad_sums_rows)(double *out_dy, double *out_dyxc, T *dx, const T *dy,
                                          const T *x, const double *mean, const double *scale,
                                          ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, ptrdiff_t c0,
                                          ptrdiff_t cw)
{
    /* The sums live on this thread's stack and are written out once at the end: the units'
     * outputs are neighbours in shared scratch memory, and updating them in place would make the
     * cache line at each boundary bounce between cores. */
    double unit_dy[BN_CHANNEL_BLOCK], unit_dyxc[BN_CHANNEL_BLOCK];
    for (ptrdiff_t c = 0; c < cw; c++)
        unit_dy[c] = unit_dyxc[c] = 0.0;
    const double *m = mean + c0;
    const double *s = scale != NULL ? scale + c0 : NULL;
    ptrdiff_t c_vector_end = 0;
#ifdef BNPY_VECTOR
    /* Row by row, four rows per sweep (sequential streams, which the prefetchers follow; a
     * column-wise walk with the sums in registers was slower), four channels per vector, sums in
     * L1. */
    c_vector_end = cw - cw % 4;
    ptrdiff_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        ptrdiff_t o0 = r * C + c0, o1 = o0 + C, o2 = o1 + C, o3 = o2 + C;
        for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
            bnpy_vd mc = bnpy_vd_load_f64(m + c);
            bnpy_vd g0 = bn_vd_load_t(dy + o0 + c), g1 = bn_vd_load_t(dy + o1 + c);
            bnpy_vd g2 = bn_vd_load_t(dy + o2 + c), g3 = bn_vd_load_t(dy + o3 + c);
            bnpy_vd x0 = F(bn_center_vd)(bn_vd_load_t(x + o0 + c), mc),
                    x1 = F(bn_center_vd)(bn_vd_load_t(x + o1 + c), mc);
            bnpy_vd x2 = F(bn_center_vd)(bn_vd_load_t(x + o2 + c), mc),
                    x3 = F(bn_center_vd)(bn_vd_load_t(x + o3 + c), mc);
            bnpy_vd_store_f64(unit_dy + c, bnpy_vd_load_f64(unit_dy + c) + ((g0 + g1) + (g2 + g3)));
            bnpy_vd_store_f64(unit_dyxc + c, bnpy_vd_load_f64(unit_dyxc + c) +
                                                 ((g0 * x0 + g1 * x1) + (g2 * x2 + g3 * x3)));
            if (dx != NULL) {
                bnpy_vd sc = bnpy_vd_load_f64(s + c);
                bn_vd_store_t(dx + o0 + c, g0 * sc);
                bn_vd_store_t(dx + o1 + c, g1 * sc);
                bn_vd_store_t(dx + o2 + c, g2 * sc);
                bn_vd_store_t(dx + o3 + c, g3 * sc);
            }
        }
    }
    for (; r < r1; r++) {
        ptrdiff_t o0 = r * C + c0;
        for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
            bnpy_vd mc = bnpy_vd_load_f64(m + c), g0 = bn_vd_load_t(dy + o0 + c);
            bnpy_vd x0 = F(bn_center_vd)(bn_vd_load_t(x + o0 + c), mc);
            bnpy_vd_store_f64(unit_dy + c, bnpy_vd_load_f64(unit_dy + c) + g0);
            bnpy_vd_store_f64(unit_dyxc + c, bnpy_vd_load_f64(unit_dyxc + c) + g0 * x0);
            if (dx != NULL)
                bn_vd_store_t(dx + o0 + c, g0 * bnpy_vd_load_f64(s + c));
        }
    }
#endif
    for (ptrdiff_t r = r0; r < r1 && c_vector_end < cw; r++) {
        const T *g_row = dy + r * C + c0, *x_row = x + r * C + c0;
        T *dx_row = dx != NULL ? dx + r * C + c0 : NULL;
        for (ptrdiff_t c = c_vector_end; c < cw; c++) {
            double g = (double)g_row[c];
            unit_dy[c] += g;
            unit_dyxc[c] += g * F(bn_center)((double)x_row[c], m[c]);
            if (dx_row != NULL)
                dx_row[c] = (T)(g * s[c]);
        }
    }
    for (ptrdiff_t c = 0; c < cw; c++) {
        out_dy[c] = unit_dy[c];
        out_dyxc[c] = BN_F32 ? unit_dyxc[c] - m[c] * unit_dy[c] : unit_dyxc[c];
    }
}

/* Channels-first layout: outer indices [r0, r1), channels [c0, c0 + cw), segments of L values in
 * memory order; sums into out_dy, out_dyxc (from c0), as bn_grad_sums_rows. */
static BNPY_HOT void F(bn_grad_sums_segments)(double *out_dy, double *out_dyxc, T *dx, const T *dy,
                                              const T *x, const double *mean, const double *scale,
                                              ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, ptrdiff_t c0,
                                              ptrdiff_t cw, ptrdiff_t L)
{
    double unit_dy[BN_SEGMENT_CHANNELS], unit_dyxc[BN_SEGMENT_CHANNELS];
    for (ptrdiff_t c = 0; c < cw; c++)
        unit_dy[c] = unit_dyxc[c] = 0.0;
    for (ptrdiff_t r = r0; r < r1; r++) {
        for (ptrdiff_t c = 0; c < cw; c++) {
            ptrdiff_t offset = (r * C + c0 + c) * L, i = 0;
            const T *g = dy + offset, *v = x + offset;
            T *d = dx != NULL ? dx + offset : NULL;
            double m = mean[c0 + c], sv = scale != NULL ? scale[c0 + c] : 0.0, t1 = 0.0, t2 = 0.0;
#ifdef BNPY_VECTOR
            bnpy_vd mc = bnpy_vd_splat(m), sc = bnpy_vd_splat(sv);
            bnpy_vd e0 = bnpy_vd_splat(0), e1 = e0, f0 = e0, f1 = e0;
            for (; i + 8 <= L; i += 8) {
                bnpy_vd g0 = bn_vd_load_t(g + i), g1 = bn_vd_load_t(g + i + 4);
                e0 += g0;
                e1 += g1;
                f0 += g0 * F(bn_center_vd)(bn_vd_load_t(v + i), mc);
                f1 += g1 * F(bn_center_vd)(bn_vd_load_t(v + i + 4), mc);
                if (d != NULL) {
                    bn_vd_store_t(d + i, g0 * sc);
                    bn_vd_store_t(d + i + 4, g1 * sc);
                }
            }
            t1 = bnpy_vd_hsum(e0 + e1);
            t2 = bnpy_vd_hsum(f0 + f1);
#endif
            for (; i < L; i++) {
                double gi = (double)g[i];
                t1 += gi;
                t2 += gi * F(bn_center)((double)v[i], m);
                if (d != NULL)
                    d[i] = (T)(gi * sv);
            }
            unit_dy[c] += t1;
            unit_dyxc[c] += t2;
        }
    }
    for (ptrdiff_t c = 0; c < cw; c++) {
        out_dy[c] = unit_dy[c];
        out_dyxc[c] = BN_F32 ? unit_dyxc[c] - mean[c0 + c] * unit_dy[c] : unit_dyxc[c];
    }
}

/* ---- the reductions over all units ------------------------------------------------------- */

/* What a reduction's units compute, and from what: the statistics (a = chunk means, b = chunk M2,
 * about `center` = the pivots) or the gradient sums (a = Σdy, b = Σdy·(x − center), dx = scale·dy
 * when dx is given), per chunk as (chunks, C) arrays. */
struct F(bn_reduce_job) {
    int stats;
    double *chunk_a, *chunk_b;
    T *dx;
    const T *dy, *x;
    const double *center, *scale;
    const bn_plan *p;
};

static void F(bn_reduce_unit)(void *ctx, ptrdiff_t u)
{
    const struct F(bn_reduce_job) *j = ctx;
    const bn_plan *p = j->p;
    const bn_unit w = bn_unit_at(p, u);
    const ptrdiff_t C = p->channels, at = w.k * C + w.c0;
    double *a = j->chunk_a + at, *b = j->chunk_b + at;
    if (j->stats && p->rows_layout)
        F(bn_stats_rows)(a, b, j->x, j->center + w.c0, w.r0, w.r1, C, w.c0, w.cw);
    else if (j->stats)
        F(bn_stats_segments)(a, b, j->x, j->center + w.c0, w.r0, w.r1, C, w.c0, w.cw, p->inner);
    else if (p->rows_layout)
        F(bn_grad_sums_rows)(a, b, j->dx, j->dy, j->x, j->center, j->scale, w.r0, w.r1, C, w.c0,
                             w.cw);
    else
        F(bn_grad_sums_segments)(a, b, j->dx, j->dy, j->x, j->center, j->scale, w.r0, w.r1, C, w.c0,
                                 w.cw, p->inner);
}

/* Per-chunk mean of x − pivot and M2 of every channel: chunk_mean, chunk_m2 are (chunks, C). */
static void F(bn_chunk_stats)(double *chunk_mean, double *chunk_m2, const T *x, const double *pivot,
                              const bn_plan *p)
{
    struct F(bn_reduce_job) job = {1, chunk_mean, chunk_m2, NULL, NULL, x, pivot, NULL, p};
    bn_for_each_unit(p, F(bn_reduce_unit), &job);
}

/* Per-chunk Σdy and Σdy·(x − mean): chunk_dy, chunk_dyxc are (chunks, C). */
static void F(bn_chunk_grad_sums)(double *chunk_dy, double *chunk_dyxc, T *dx, const T *dy,
                                  const T *x, const double *mean, const double *scale,
                                  const bn_plan *p)
{
    struct F(bn_reduce_job) job = {0, chunk_dy, chunk_dyxc, dx, dy, x, mean, scale, p};
    bn_for_each_unit(p, F(bn_reduce_unit), &job);
}
