/* bn_stats.h: the statistics pass of batch norm, per type (included by bn_typed.h). */

/* ---- reductions ------------------------------------------------------------------------------
 * Statistics: Σd and Σd² with d = x − s, s a shift near the channel's mean, run in T over short
 * blocks (per vector lane, Σd adds at most 8 partial sums of 4 terms; Σd², positive terms whose
 * rounding cannot cancel, at most 32 terms in a chain) that are then added in double. A block's
 * sums are checked first (bn_stats_ok): its mean within 2σ of the shift, so that the terms of Σd
 * are of the size of σ and Σd² is at most 5 times the block's M2, and no overflow or subnormal
 * loss in T. T rounding then moves the mean by ~1e-7·σ, which is what y depends on, and the
 * variance by ~1e-7 relative (the tests hold them to 1e-6·σ and 1e-5 of a float64 reference). A
 * block that fails (a jump in level, values near T's range limits, a NaN or Inf) is summed again
 * exactly, in double, by bn_exact_block: rare for ordinary data. For float32 data this runs the
 * statistics pass at the width of float32 vectors with no conversion: a float32→double conversion
 * can cost more than reading the value from L3 (docs/batchnorm.md has the measurements).
 *
 * Gradient sums Σdy and Σdy·(x − mean) run in double term by term: their results are compared
 * with their own size (dβ and dγ of a channel can cancel to far below Σ|dy|), which float32 terms
 * cannot promise. For float32 data the second is Σdy·x − mean·Σdy: products of two float32 values
 * are exact in double, so no subtraction is needed before the conversion. */

/* The exact path: the mean of x − pivot and M2 of n values at stride `stride`, two passes in double. */
static void F(bn_exact_block)(double *mean, double *m2, const T *x, ptrdiff_t n, ptrdiff_t stride,
                              double pivot)
{
    double s = 0.0, q = 0.0;
    for (ptrdiff_t i = 0; i < n; i++)
        s += (double)x[i * stride] - pivot;
    s /= (double)n;
    for (ptrdiff_t i = 0; i < n; i++) {
        double d = ((double)x[i * stride] - pivot) - s;
        q += d * d;
    }
    *mean = s;
    *m2 = q;
}

/* Whether a block's sums about the shift can be used, all in T: s1 = Σd, sq = Σd², nb values.
 * (Σd)² <= 0.8·nb·Σd², i.e. |block mean − shift| <= 2·σ_block, so that Σd² is at most 5 times
 * the block's M2 and its rounding stays that small against it; Σd² at most BN_T_BIG (so nothing
 * overflowed, and (Σd)² <= nb·Σd² cannot); Σd² at least BN_T_TINY (no term that counts was
 * subnormal), or Σd and Σd² both exactly 0 (every d is 0: a constant channel). NaN fails every
 * comparison. & and | on 0/1 ints let a loop of it vectorise. */
BNPY_ALWAYS_INLINE int F(bn_stats_ok)(T s1, T sq, T nb)
{
    return ((s1 * s1 <= (T)0.8 * nb * sq) & (sq <= BN_T_BIG) &
            ((sq >= BN_T_TINY) | ((sq == 0) & (s1 == 0))));
}

/* ---- statistics: one work unit -------------------------------------------------------------
 * Per channel, the values are summed about a shift (initially the pivot, see bn_pivots) in a
 * "run" of blocks whose sums pass BN_STATS_OK: the run keeps D1 = Σd and D2 = Σd² in double, and
 * its mean and M2 are s + D1/n and D2 − D1²/n (at most a factor 5 of cancellation, which double
 * absorbs). A block that fails the check ends the run: the run and the block (summed exactly, in
 * double, about its own mean) are merged into the unit's statistics with Chan's formula, and a
 * new run starts with the block's mean as its shift. The unit's mean is relative to the pivot. */

/* The end of a unit: each channel's last run folded into its statistics. Channels that never
 * took the exact path (run_start 0: the run is all of the unit) need no merge, and no division
 * per channel: a loop that vectorises (the general fold, two divisions a channel, had become a
 * tenth of the statistics pass). */
static void F(bn_finish_runs)(double *unit_mean, double *unit_m2, const T *shift, const double *d1,
                              const double *d2, const double *run_start, const double *pivot,
                              double n_seen, ptrdiff_t cw)
{
    int any_merged = 0;
    for (ptrdiff_t c = 0; c < cw; c++)
        any_merged |= run_start[c] != 0.0;
    if (!any_merged && n_seen > 0.0) {
        double inv_n = 1.0 / n_seen;
        for (ptrdiff_t c = 0; c < cw; c++) {
            double offset = d1[c] * inv_n;
            unit_mean[c] = ((double)shift[c] - pivot[c]) + offset;
            unit_m2[c] = d2[c] - d1[c] * offset;
        }
        return;
    }
    for (ptrdiff_t c = 0; c < cw; c++) {
        double n_a = run_start[c];
        bn_fold_run(&n_a, unit_mean + c, unit_m2 + c, n_seen - run_start[c], d1[c], d2[c],
                    (double)shift[c] - pivot[c]);
    }
}

/* Rows layout: rows [r0, r1) of x (rows of C values), channels [c0, c0 + cw): the unit's mean of
 * x − pivot and M2 per channel into unit_mean, unit_m2 (all three indexed from c0). */
static BNPY_HOT void F(bn_stats_rows)(double *unit_mean, double *unit_m2, const T *x,
                                      const double *pivot, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C,
                                      ptrdiff_t c0, ptrdiff_t cw)
{
    T shift[BN_CHANNEL_BLOCK], sq[BN_CHANNEL_BLOCK], lin[BN_CHANNEL_BLOCK];
    double d1[BN_CHANNEL_BLOCK], d2[BN_CHANNEL_BLOCK];
    double run_start[BN_CHANNEL_BLOCK];
    double n_seen = 0.0; /* values per channel so far; a run holds those after run_start[c] */
    for (ptrdiff_t c = 0; c < cw; c++) {
        shift[c] = (T)pivot[c];
        d1[c] = d2[c] = run_start[c] = unit_mean[c] = unit_m2[c] = 0.0;
    }
    for (ptrdiff_t rb = r0; rb < r1; rb += BN_BLOCK_ROWS) {
        ptrdiff_t nb = r1 - rb < BN_BLOCK_ROWS ? r1 - rb : BN_BLOCK_ROWS;
        const T *block = x + rb * C + c0;
        for (ptrdiff_t c = 0; c < cw; c++)
            lin[c] = sq[c] = 0;
        /* The block, row by row (sequential streams; a column-wise walk with the sums in
         * registers was no faster), four rows per sweep, its sums lin = Σd and sq = Σd² in L1. */
        ptrdiff_t c_vector_end = 0, r = 0;
#ifdef BNPY_VECTOR
        c_vector_end = cw - cw % BN_VT_LANES;
        for (; r + 4 <= nb; r += 4) {
            const T *p0 = block + r * C, *p1 = p0 + C, *p2 = p1 + C, *p3 = p2 + C;
            for (ptrdiff_t c = 0; c < c_vector_end; c += BN_VT_LANES) {
                bn_prefetch_sweep(x + c0, rb + r, r1, C, c, sizeof(T));
                bn_vt s = bn_vt_load(shift + c);
                bn_vt a = bn_vt_load(p0 + c) - s, b = bn_vt_load(p1 + c) - s;
                bn_vt e = bn_vt_load(p2 + c) - s, f = bn_vt_load(p3 + c) - s;
                /* A chain that contracts to four fused multiply-adds: fewer operations than a
                 * tree of products. */
                bn_vt q = bn_vt_load(sq + c);
                q = a * a + q;
                q = b * b + q;
                q = e * e + q;
                bn_vt_store(sq + c, f * f + q);
                bn_vt_store(lin + c, bn_vt_load(lin + c) + ((a + b) + (e + f)));
            }
        }
        for (; r < nb; r++) {
            const T *p0 = block + r * C;
            for (ptrdiff_t c = 0; c < c_vector_end; c += BN_VT_LANES) {
                bn_vt a = bn_vt_load(p0 + c) - bn_vt_load(shift + c);
                bn_vt_store(sq + c, bn_vt_load(sq + c) + a * a);
                bn_vt_store(lin + c, bn_vt_load(lin + c) + a);
            }
        }
#endif
        for (r = 0; r < nb && c_vector_end < cw; r++) {
            const T *row = block + r * C;
            for (ptrdiff_t c = c_vector_end; c < cw; c++) {
                T d = row[c] - shift[c];
                sq[c] += d * d;
                lin[c] += d;
            }
        }
        double dnb = (double)nb;
        T tnb = (T)nb;
        int all_ok = 1;
        for (ptrdiff_t c = 0; c < cw; c++)
            all_ok &= F(bn_stats_ok)(lin[c], sq[c], tnb);
        if (all_ok) { /* the common case, a loop that vectorises */
            for (ptrdiff_t c = 0; c < cw; c++) {
                d1[c] += (double)lin[c];
                d2[c] += (double)sq[c];
            }
            n_seen += dnb;
            continue;
        }
        for (ptrdiff_t c = 0; c < cw; c++) {
            if (F(bn_stats_ok)(lin[c], sq[c], tnb)) {
                d1[c] += (double)lin[c];
                d2[c] += (double)sq[c];
                continue;
            }
            double n_a = run_start[c], mean_b, m2_b;
            bn_fold_run(&n_a, unit_mean + c, unit_m2 + c, n_seen - run_start[c], d1[c], d2[c],
                        (double)shift[c] - pivot[c]);
            F(bn_exact_block)(&mean_b, &m2_b, block + c, nb, C, pivot[c]);
            bn_chan_merge(&n_a, unit_mean + c, unit_m2 + c, dnb, mean_b, m2_b);
            if (isfinite(pivot[c] + mean_b))
                shift[c] = (T)(pivot[c] + mean_b);
            d1[c] = d2[c] = 0.0;
            run_start[c] = n_seen + dnb;
        }
        n_seen += dnb;
    }
    F(bn_finish_runs)(unit_mean, unit_m2, shift, d1, d2, run_start, pivot, n_seen, cw);
}

/* Channels-first layout: outer indices [r0, r1), channels [c0, c0 + cw), each (outer index,
 * channel) a contiguous segment of L values, walked in memory order in blocks of at most
 * BN_SEGMENT_BLOCK values; results as bn_stats_rows. */
static BNPY_HOT void F(bn_stats_segments)(double *unit_mean, double *unit_m2, const T *x,
                                          const double *pivot, ptrdiff_t r0, ptrdiff_t r1,
                                          ptrdiff_t C, ptrdiff_t c0, ptrdiff_t cw, ptrdiff_t L)
{
    T shift[BN_SEGMENT_CHANNELS];
    double d1[BN_SEGMENT_CHANNELS], d2[BN_SEGMENT_CHANNELS], run_start[BN_SEGMENT_CHANNELS];
    double n_seen = 0.0; /* values per channel so far; a run holds those after run_start[c] */
    for (ptrdiff_t c = 0; c < cw; c++) {
        shift[c] = (T)pivot[c];
        d1[c] = d2[c] = run_start[c] = unit_mean[c] = unit_m2[c] = 0.0;
    }
    for (ptrdiff_t r = r0; r < r1; r++) {
        for (ptrdiff_t b = 0; b < L; b += BN_SEGMENT_BLOCK) {
            ptrdiff_t nb = L - b < BN_SEGMENT_BLOCK ? L - b : BN_SEGMENT_BLOCK;
            for (ptrdiff_t c = 0; c < cw; c++) {
                const T *p = x + (r * C + c0 + c) * L + b;
                T lin = 0, sq = 0, sh = shift[c];
                ptrdiff_t i = 0;
#ifdef BNPY_VECTOR
                /* Four vectors per step: four chains of fused multiply-adds for Σd², a tree of
                 * four for Σd (each lane adds at most 8 partial sums), trees across the lanes. */
                bn_vt zero = {0}, s = zero + sh, q0 = zero, q1 = zero, q2 = zero, q3 = zero;
                bn_vt l0 = zero;
                for (; i + 4 * BN_VT_LANES <= nb; i += 4 * BN_VT_LANES) {
                    bn_vt va = bn_vt_load(p + i) - s, vb = bn_vt_load(p + i + BN_VT_LANES) - s;
                    bn_vt ve = bn_vt_load(p + i + 2 * BN_VT_LANES) - s;
                    bn_vt vf = bn_vt_load(p + i + 3 * BN_VT_LANES) - s;
                    q0 = va * va + q0;
                    q1 = vb * vb + q1;
                    q2 = ve * ve + q2;
                    q3 = vf * vf + q3;
                    l0 += (va + vb) + (ve + vf);
                }
                for (; i + BN_VT_LANES <= nb; i += BN_VT_LANES) {
                    bn_vt va = bn_vt_load(p + i) - s;
                    q0 = va * va + q0;
                    l0 += va;
                }
                q0 = (q0 + q1) + (q2 + q3);
                sq = bn_vt_hsum(q0);
                lin = bn_vt_hsum(l0);
#endif
                for (; i < nb; i++) {
                    T d = p[i] - sh;
                    sq += d * d;
                    lin += d;
                }
                if (F(bn_stats_ok)(lin, sq, (T)nb)) {
                    d1[c] += (double)lin;
                    d2[c] += (double)sq;
                    continue;
                }
                double n_a = run_start[c], mean_b, m2_b;
                bn_fold_run(&n_a, unit_mean + c, unit_m2 + c, n_seen - run_start[c], d1[c], d2[c],
                            (double)shift[c] - pivot[c]);
                F(bn_exact_block)(&mean_b, &m2_b, p, nb, 1, pivot[c]);
                bn_chan_merge(&n_a, unit_mean + c, unit_m2 + c, (double)nb, mean_b, m2_b);
                if (isfinite(pivot[c] + mean_b))
                    shift[c] = (T)(pivot[c] + mean_b);
                d1[c] = d2[c] = 0.0;
                run_start[c] = n_seen + (double)nb;
            }
            n_seen += (double)nb;
        }
    }
    F(bn_finish_runs)(unit_mean, unit_m2, shift, d1, d2, run_start, pivot, n_seen, cw);
}

/* The pivot of each channel: the mean of its first values (at most BN_PIVOT_VALUES of them: the
 * first rows, or the start of the first segment), rounded to T. Close to the channel's mean
 * (within ~σ/4 for 16 values), it is also the statistics' first shift, so that the first block
 * of a unit rarely needs the exact path (a single value, ~1σ away, sent a third of them there). */
static void F(bn_pivots)(double *pivot, const T *x, const bn_plan *p)
{
    ptrdiff_t C = p->channels, L = p->inner;
    ptrdiff_t n = (p->rows_layout ? p->outer : L) < BN_PIVOT_VALUES
                      ? (p->rows_layout ? p->outer : L)
                      : BN_PIVOT_VALUES;
    ptrdiff_t step = p->rows_layout ? C : 1;
    for (ptrdiff_t c = 0; c < C; c++) {
        const T *first = p->rows_layout ? x + c : x + c * L;
        double s = 0.0;
        for (ptrdiff_t i = 0; i < n; i++)
            s += (double)first[i * step];
        pivot[c] = (double)(T)(s / (double)n);
    }
}
