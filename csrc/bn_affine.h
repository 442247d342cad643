/* bn_affine.h: the elementwise passes of batch norm (y, dx), per type (included by bn_typed.h). */

/* ---- elementwise passes ----------------------------------------------------------------------
 * out = b·((v − pivot) − center) + shift, or with u: out = a·(u − shift) + b·(v − center), per
 * channel, in T's own precision: there is no
 * accumulation here, every output is a few roundings of its own size (x − pivot and x − mean
 * are exact or correctly rounded for close values), so float32 needs no double, and float32
 * vectors hold twice the lanes. The coefficients come as T arrays of C values.
 * Forward: u = NULL, v = x, pivot and center = the mean of x − pivot, shift = β. Inference:
 * u = NULL, pivot = NULL, center = mean, shift = β. Training backward: u = dy, v = x, pivot = NULL,
 * shift = mean of dy (so dy − mean(dy) is one correctly rounded subtraction, and m = 1 gives
 * exactly 0). out may be u or v itself (each element is written after it is read). */

/* One output value of the pass of `kind` (a constant wherever it is inlined). */
BNPY_ALWAYS_INLINE T F(bn_affine_value)(const int kind, T u, T v, T a, T b, T p, T c, T s)
{
    if (kind == BN_AFFINE_BACKWARD)
        return (u - s) * a + (v - c) * b;
    if (kind == BN_AFFINE_FORWARD)
        return ((v - p) - c) * b + s;
    return (v - c) * b + s;
}

#ifdef BNPY_VECTOR
/* The same for a vector of values. */
BNPY_ALWAYS_INLINE bn_vt F(bn_affine_vector)(const int kind, bn_vt u, bn_vt v, bn_vt a, bn_vt b,
                                             bn_vt p, bn_vt c, bn_vt s)
{
    if (kind == BN_AFFINE_BACKWARD)
        return (u - s) * a + (v - c) * b;
    if (kind == BN_AFFINE_FORWARD)
        return ((v - p) - c) * b + s;
    return (v - c) * b + s;
}
#endif

#ifdef BNPY_VECTOR
/* A vector into out at p: non-temporal when `stream` (p then 32-byte aligned), else ordinary. */
BNPY_ALWAYS_INLINE void F(bn_out_store)(int stream, T *p, bn_vt value)
{
#ifdef BNPY_HAVE_STREAM
    if (stream) {
        bnpy_stream_store32(p, &value);
        return;
    }
#else
    (void)stream;
#endif
    bn_vt_store(p, value);
}
#endif

/* Rows layout, rows [r0, r1) of C values for one constant `kind`, every pointer valid (what kind
 * does not use is not read). The vector loops run on "shifted rows" of C values that start `lead`
 * values into each row (lead as bn_align_lead gives it for out, 0 unless C is a multiple of the
 * vector width), so that every store of out is 32-byte aligned: NumPy puts large arrays 16 bytes
 * past a boundary, where every other unaligned store splits a cache line. The coefficients come rotated to match: column j of a shifted row is
 * channel (j + lead) mod C.
 *
 * Two vector forms. Sweeps: `sweep` rows at a time, so that each vector of coefficients is loaded
 * once for that many rows; four rows make the forward's pass faster than one, while the
 * backward's (two inputs: four rows make eight concurrent streams) is fastest row by row. Flat
 * (`flat`, C a multiple of the vector width): the rows as one run of values, the coefficients'
 * offset wrapping at C: no per-row work and a purely sequential stream, but the coefficients
 * loaded for every vector; faster once the tensor spills out of L3, slower below (bn_affine picks
 * it from BN_FLAT_MIN_BYTES).
 *
 * With `stream` (bn_affine sets it for tensors of BN_STREAM_MIN_BYTES and more whose shifted rows
 * are 32-byte aligned), the vector stores are non-temporal: they skip the read of each line an
 * ordinary store makes, and leave the caches to the inputs, which the next pass reads again. */
BNPY_ALWAYS_INLINE void F(bn_affine_rows_of_kind)(const int kind, int flat, int stream,
                                                  ptrdiff_t lead, T *out, const T *u, const T *v,
                                                  const T *a, const T *b, const T *pivot,
                                                  const T *center, const T *shift, ptrdiff_t r0,
                                                  ptrdiff_t r1, ptrdiff_t C)
{
    const ptrdiff_t sweep = kind == BN_AFFINE_BACKWARD ? 1 : 4;
    T *out_s = out + lead;
    const T *u_s = u + lead, *v_s = v + lead;
    ptrdiff_t rows_end = lead > 0 ? r1 - 1 : r1, r = r0, c_tail = 0;
#ifdef BNPY_VECTOR
    if (flat) {
        for (ptrdiff_t j = r0 * C, end = rows_end * C, cj = 0; j < end; j += BN_VT_LANES) {
            bn_vt value =
                F(bn_affine_vector)(kind, bn_vt_load(u_s + j), bn_vt_load(v_s + j),
                                    bn_vt_load(a + cj), bn_vt_load(b + cj), bn_vt_load(pivot + cj),
                                    bn_vt_load(center + cj), bn_vt_load(shift + cj));
            F(bn_out_store)(stream, out_s + j, value);
            cj = cj + BN_VT_LANES == C ? 0 : cj + BN_VT_LANES;
        }
        r = rows_end;
        c_tail = C;
    } else {
        c_tail = C - C % BN_VT_LANES;
        for (; r + sweep <= rows_end; r += sweep) {
            for (ptrdiff_t c = 0; c < c_tail; c += BN_VT_LANES) {
                bn_vt av = bn_vt_load(a + c), bv = bn_vt_load(b + c), pv = bn_vt_load(pivot + c);
                bn_vt cv = bn_vt_load(center + c), sv = bn_vt_load(shift + c);
                for (ptrdiff_t k = 0; k < sweep; k++) {
                    ptrdiff_t o = (r + k) * C + c;
                    F(bn_out_store)(stream, out_s + o,
                                    F(bn_affine_vector)(kind, bn_vt_load(u_s + o),
                                                        bn_vt_load(v_s + o), av, bv, pv, cv, sv));
                }
            }
        }
    }
#ifdef BNPY_HAVE_STREAM
    if (stream)
        bnpy_stream_fence();
#endif
#else
    (void)flat;
    (void)stream;
#endif
    for (ptrdiff_t q = r0; q < rows_end; q++) {
        ptrdiff_t c = q < r ? c_tail : 0; /* rows swept above lack only the tail columns */
        for (; c < C; c++) {
            ptrdiff_t o = q * C + c;
            out_s[o] =
                F(bn_affine_value)(kind, u_s[o], v_s[o], a[c], b[c], pivot[c], center[c], shift[c]);
        }
    }
    /* The first `lead` values of row r0 and the rest of row r1 − 1, outside the shifted rows:
     * channel c sits at column c − lead (mod C) of the rotated coefficients. */
    for (ptrdiff_t c = 0; c < C && lead > 0; c++) {
        ptrdiff_t o = (c < lead ? r0 : r1 - 1) * C + c;
        ptrdiff_t j = c < lead ? c + C - lead : c - lead;
        out[o] = F(bn_affine_value)(kind, u[o], v[o], a[j], b[j], pivot[j], center[j], shift[j]);
    }
}

/* Rows layout: bn_affine_rows_of_kind, compiled once per kind. */
static BNPY_HOT void F(bn_affine_rows)(int kind, int flat, int stream, ptrdiff_t lead, T *out,
                                       const T *u, const T *v, const T *a, const T *b,
                                       const T *pivot, const T *center, const T *shift,
                                       ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C)
{
    if (kind == BN_AFFINE_BACKWARD)
        F(bn_affine_rows_of_kind)(BN_AFFINE_BACKWARD, flat, stream, lead, out, u, v, a, b, pivot,
                                  center, shift, r0, r1, C);
    else if (kind == BN_AFFINE_FORWARD)
        F(bn_affine_rows_of_kind)(BN_AFFINE_FORWARD, flat, stream, lead, out, u, v, a, b, pivot,
                                  center, shift, r0, r1, C);
    else
        F(bn_affine_rows_of_kind)(BN_AFFINE_INFERENCE, flat, stream, lead, out, u, v, a, b, pivot,
                                  center, shift, r0, r1, C);
}

static BNPY_HOT void F(bn_affine_segments)(T *out, const T *u, const T *v, const T *a, const T *b,
                                           const T *pivot, const T *center, const T *shift,
                                           ptrdiff_t s0, ptrdiff_t s1, ptrdiff_t C, ptrdiff_t L)
{
    for (ptrdiff_t s = s0; s < s1; s++) {
        ptrdiff_t c = s % C, i = 0;
        T ac = u != NULL ? a[c] : (T)0, bc = b[c], pc = pivot != NULL ? pivot[c] : (T)0,
          cc = center[c], sc = shift[c];
        T *o = out + s * L;
        const T *vs = v + s * L, *us = u != NULL ? u + s * L : NULL;
#ifdef BNPY_VECTOR
        bn_vt zero = {0}, av = zero + ac, bv = zero + bc, pv = zero + pc, cv = zero + cc,
              sv = zero + sc;
        if (us != NULL) {
            for (; i + BN_VT_LANES <= L; i += BN_VT_LANES)
                bn_vt_store(o + i, (bn_vt_load(us + i) - sv) * av + (bn_vt_load(vs + i) - cv) * bv);
        } else if (pivot != NULL) {
            for (; i + BN_VT_LANES <= L; i += BN_VT_LANES)
                bn_vt_store(o + i, ((bn_vt_load(vs + i) - pv) - cv) * bv + sv);
        } else {
            for (; i + BN_VT_LANES <= L; i += BN_VT_LANES)
                bn_vt_store(o + i, (bn_vt_load(vs + i) - cv) * bv + sv);
        }
#endif
        if (us != NULL) {
            for (; i < L; i++)
                o[i] = (us[i] - sc) * ac + (vs[i] - cc) * bc;
        } else {
            for (; i < L; i++)
                o[i] = ((vs[i] - pc) - cc) * bc + sc;
        }
    }
}

/* The arguments of bn_affine, for its parts: rows (rows layout) or segments of L values
 * (channels-first layout), `items` of them cut into `parts`. */
struct F(bn_affine_job) {
    int kind, flat, stream;
    ptrdiff_t lead;
    T *out;
    const T *u, *v, *a, *b, *pivot, *center, *shift;
    const bn_plan *p;
    ptrdiff_t items, parts;
};

static void F(bn_affine_part)(void *ctx, ptrdiff_t q)
{
    const struct F(bn_affine_job) *j = ctx;
    const bn_plan *p = j->p;
    ptrdiff_t start = q * j->items / j->parts, end = (q + 1) * j->items / j->parts;
    if (p->rows_layout)
        F(bn_affine_rows)(j->kind, j->flat, j->stream, j->lead, j->out, j->u != NULL ? j->u : j->v,
                          j->v, j->a, j->b, j->pivot, j->center, j->shift, start, end, p->channels);
    else
        F(bn_affine_segments)(j->out, j->u, j->v, j->a, j->b,
                              j->kind == BN_AFFINE_FORWARD ? j->pivot : NULL, j->center, j->shift,
                              start, end, p->channels, p->inner);
}

/* The pass over the whole block; the double coefficients (a may be NULL when u is, pivot may be
 * NULL) are first rounded to T into coef, which has room for 5·C values of T. */
static void F(bn_affine)(T *out, const T *u, const T *v, const double *a, const double *b,
                         const double *pivot, const double *center, const double *shift, T *coef,
                         const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    T *ta = coef, *tb = ta + C, *tp = tb + C, *tc = tp + C, *ts = tc + C;
    /* Rows layout: every row starts at the same offset from a 32-byte boundary when C is a
     * multiple of the vector width; the coefficients are rotated by that lead (bn_affine_rows). */
    ptrdiff_t lead = 0;
#ifdef BNPY_VECTOR
    if (p->rows_layout && C % BN_VT_LANES == 0)
        lead = bn_align_lead(out, sizeof(T));
#endif
    for (ptrdiff_t j = 0; j < C; j++) {
        ptrdiff_t c = j + lead < C ? j + lead : j + lead - C;
        ta[j] = a != NULL ? (T)a[c] : (T)0;
        tb[j] = (T)b[c];
        tp[j] = pivot != NULL ? (T)pivot[c] : (T)0;
        tc[j] = (T)center[c];
        ts[j] = (T)shift[c];
    }
    struct F(bn_affine_job) job;
    job.kind = u != NULL       ? BN_AFFINE_BACKWARD
               : pivot != NULL ? BN_AFFINE_FORWARD
                               : BN_AFFINE_INFERENCE;
    double bytes = (double)p->outer * (double)C * sizeof(T);
    job.flat = p->rows_layout && C % BN_VT_LANES == 0 && bytes >= BN_FLAT_MIN_BYTES;
    /* Non-temporal stores (see bn_affine_rows_of_kind) from BN_STREAM_MIN_BYTES in training,
     * where a step's working set is four such arrays (x, y, dy, dx); the inference's two stay in
     * the last-level cache below BN_FLAT_MIN_BYTES, and there ordinary stores are faster. */
    job.stream = 0;
#ifdef BNPY_HAVE_STREAM
    job.stream =
        p->rows_layout && C % BN_VT_LANES == 0 && (uintptr_t)(out + lead) % 32 == 0 &&
        bytes >= (job.kind == BN_AFFINE_INFERENCE ? BN_FLAT_MIN_BYTES : BN_STREAM_MIN_BYTES);
#endif
    job.lead = lead;
    job.out = out;
    job.u = u;
    job.v = v;
    job.a = ta;
    job.b = tb;
    job.pivot = tp;
    job.center = tc;
    job.shift = ts;
    job.p = p;
    job.items = p->rows_layout ? p->outer : p->outer * C;
    job.parts = bn_elementwise_parts(p, job.items);
    bnpy_parallel_for(job.parts, p->parallel && job.parts > 1, p->threads, 1, F(bn_affine_part),
                      &job);
}

/* NaN in a channel's coefficients (a NaN or Inf among its values, or NaN statistics or
 * parameters given) makes every output of that channel NaN; but which NaN comes out of an
 * operation on two NaNs depends on the order of its operands, which differs between the vector
 * and the scalar loops (chosen by the output's alignment). Such channels are therefore written
 * over with one quiet NaN, so the result does not depend on memory layout. Any of the coefficient
 * arrays may be NULL. */
static void F(bn_fill_nan_channels)(T *out, const double *a, const double *b, const double *pivot,
                                    const double *center, const double *shift, const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    /* The common case, no NaN anywhere, in one branch-free scan per array. */
    if (!(bn_any_nan(a, C) | bn_any_nan(b, C) | bn_any_nan(pivot, C) | bn_any_nan(center, C) |
          bn_any_nan(shift, C)))
        return;
    ptrdiff_t L = p->inner;
    for (ptrdiff_t c = 0; c < C; c++) {
        if (!((a != NULL && isnan(a[c])) || (b != NULL && isnan(b[c])) ||
              (pivot != NULL && isnan(pivot[c])) || (center != NULL && isnan(center[c])) ||
              (shift != NULL && isnan(shift[c]))))
            continue;
        for (ptrdiff_t r = 0; r < p->outer; r++)
            for (ptrdiff_t i = 0; i < L; i++)
                out[(r * C + c) * L + i] = (T)NAN;
    }
}
