/* bn_sync.c: the phases of a batch norm whose batch is split across processes (synchronized BN).
 *
 * One process holds a shard of the batch; the statistics and the gradient sums of the whole batch
 * are combined from every shard's, which the caller exchanges (MPI in bnpy.distributed). Every
 * quantity that crosses processes is float64, whatever T is, so that no digit is lost between
 * the phases. Per channel c, shard r holds n_r = outer·inner values:
 *
 *   local statistics   n_r,  mean_r = (1/n_r) Σ x,  M2_r = Σ (x − mean_r)²
 *   merge (in order)   Chan's formula over r = 0, 1, ...: with δ = mean_b − mean_a, n = n_a + n_b,
 *                      mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n;  var = M2/n
 *   normalize          y = (x − mean)·γ/√(var + ε) + β          (mean, var given in float64)
 *   gradient sums      Σ dy  and  Σ dy·(x − mean)                (the global mean, in float64)
 *   backward apply     with the global sums S1 = Σdy, S2 = Σdy·(x − mean) and count m,
 *                      s = 1/√(var + ε):  dx = γ·s·(dy − S1/m) − γ·s³·S2/m·(x − mean)
 *
 * which is the training backward of batchnorm.c written with sums over the whole batch. The
 * merge runs in the order given, so every process that merges the same list gets the same bits.
 *
 * Accuracy: every sum and every elementwise value is computed in double from x converted to
 * double. The local statistics read x once: per chunk, Σd and Σd² with d = x − shift, the shift
 * the mean of the chunk's first values (x − shift is exact for x near it, as for data far from
 * 0), so that mean = shift + Σd/n and M2 = Σd² − (Σd)²/n. They are taken when
 * (Σd)² <= 0.8·n·Σd², i.e. |mean − shift| <= 2σ: then (Σd)²/n <= 0.8·Σd² and the subtraction
 * loses at most a factor 5 of double's precision. A channel of a chunk that fails the check (a
 * jump in level, a NaN) is summed again in two passes (its mean, then Σ(x − mean) and
 * Σ(x − mean)² about it, the first correcting the mean). The elementwise passes subtract the
 * float64 mean from x converted to double (the ordinary inference kernel takes the mean in T,
 * one rounding of |mean| in float32).
 *
 * Speed: the hot loops run on vectors of 4 doubles (simd.h), across channels in the channels-last
 * layout (four rows per sweep in the sums) and along each channel's segment otherwise, and are
 * compiled for AVX2 and for the baseline (BNPY_HOT); a·b + c contracts to a fused multiply-add
 * where the clone has one.
 *
 * Threads: the outer range is cut into chunks whose number depends on the sizes alone, each chunk
 * keeps its own partial sums, and the chunks are merged in order by one thread, so the results
 * are bitwise the same for every thread count. The elementwise passes are split freely.
 *
 * Compiled once, including itself twice through twin.h: float (_f32) and double (_f64).
 */
#ifndef BNPY_TWIN_BODY

/* As batchnorm.c: let a·b + c contract to one fused multiply-add where the clone has FMA (-std=c11
 * turns that off). Before simd.h, so that its always-inlined helpers compile under it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <math.h>
#include <stdlib.h>

#include "bn_chan.h"
#include "kernels.h"
#include "parallel.h"
#include "simd.h"

/* Values per chunk of the outer range at least (small inputs are one chunk), at most this many
 * chunks (the scratch and the final merge grow with it). */
#define BN_SYNC_CHUNK_VALUES 32768
#define BN_SYNC_MAX_CHUNKS 64
/* Values per channel averaged into a chunk's shift (see bn_sync_shifts). */
#define BN_SYNC_SHIFT_VALUES 16

#ifdef BNPY_VECTOR
/* 4 values of x's type as 4 doubles, and back (rounded), for either twin. */
#define bn_sync_load(p)                                                                            \
    _Generic((p),                                                                                  \
        const float *: bnpy_vd_load_f32,                                                           \
        float *: bnpy_vd_load_f32,                                                                 \
        const double *: bnpy_vd_load_f64,                                                          \
        double *: bnpy_vd_load_f64)(p)
#define bn_sync_store(p, v)                                                                        \
    _Generic((p), float *: bnpy_vd_store_f32, double *: bnpy_vd_store_f64)(p, v)
#endif

/* How a call cuts its (outer, C, inner) block into chunks of the outer range, from sizes alone. */
typedef struct {
    ptrdiff_t outer, channels, inner, chunks;
    int threads, parallel;
} bn_sync_plan;

static bn_sync_plan bn_sync_make_plan(ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner)
{
    bn_sync_plan p;
    double total = (double)outer * (double)channels * (double)inner;
    ptrdiff_t chunks = (ptrdiff_t)(total / BN_SYNC_CHUNK_VALUES);
    chunks = chunks > BN_SYNC_MAX_CHUNKS ? BN_SYNC_MAX_CHUNKS : chunks;
    chunks = chunks > outer ? outer : chunks;
    p.outer = outer;
    p.channels = channels;
    p.inner = inner;
    p.chunks = chunks < 1 ? 1 : chunks;
    p.threads = bnpy_threads_for(total);
    p.parallel = p.threads > 1 && p.chunks > 1;
    return p;
}

/* First outer index of chunk k (k = chunks gives outer). */
static inline ptrdiff_t bn_sync_chunk_start(const bn_sync_plan *p, ptrdiff_t k)
{
    return k * p->outer / p->chunks;
}

/* Partial sums per chunk: `count` (chunks, C) arrays of double in one block (free(sum[0])). */
typedef struct {
    bn_sync_plan plan;
    double *sum[3];
} bn_sync_partials;

/* The frame of both reductions (local statistics, gradient sums): the plan for (outer, channels,
 * inner), `count` arrays of partial sums, and `chunk` run on every chunk (in parallel when the
 * plan says so) with `job`, which holds *s. 0, or -1 when the sums cannot be allocated. */
static int bn_sync_chunked_sums(bn_sync_partials *s, int count, ptrdiff_t outer, ptrdiff_t channels,
                                ptrdiff_t inner, void (*chunk)(void *job, ptrdiff_t k), void *job)
{
    s->plan = bn_sync_make_plan(outer, channels, inner);
    const ptrdiff_t size = s->plan.chunks * channels;
    double *block = malloc((size_t)(count * size) * sizeof(double));
    if (block == NULL)
        return -1;
    for (int i = 0; i < 3; i++)
        s->sum[i] = i < count ? block + i * size : NULL;
    bnpy_parallel_for(s->plan.chunks, s->plan.parallel, s->plan.threads, 1, chunk, job);
    return 0;
}

void bnpy_bn_merge_stats(double *count, double *mean, double *var, const double *counts,
                         const double *means, const double *m2s, ptrdiff_t parts,
                         ptrdiff_t channels)
{
    double n_a = 0.0;
    for (ptrdiff_t c = 0; c < channels; c++)
        mean[c] = var[c] = 0.0;
    for (ptrdiff_t r = 0; r < parts; r++) {
        double n_b = counts[r];
        if (!(n_b > 0.0)) /* an empty shard adds nothing */
            continue;
        n_a = bn_chan_merge_channels(mean, var, means + r * channels, m2s + r * channels, n_a, n_b,
                                     channels);
    }
    bn_m2_to_var(var, n_a, channels);
    *count = n_a;
}

#define BNPY_TWIN_FILE "bn_sync.c"
#include "twin.h"

#else /* ------------------------------------------------------------ the body, once per type */

/* ---- per-channel sums ------------------------------------------------------------------------
 * Σg and Σg·(x − center) per channel over outer indices [r0, r1), into s1 and s2 (set here), with
 * g = dy for the gradient sums (center = the mean), or g = x − center when `squares`: the
 * statistics' Σd and Σd² about the shift (dy unused). One body for both, `squares` a constant
 * wherever it is inlined. Channels-last layout: four rows per sweep, four channels per vector;
 * channels-first: each segment along its length on two vectors of 4 lanes, then added in. */
BNPY_ALWAYS_INLINE void SUF(bn_sync_sums_of)(const int squares, double *s1, double *s2, const T *dy,
                                             const T *x, const double *center, ptrdiff_t r0,
                                             ptrdiff_t r1, ptrdiff_t C, ptrdiff_t L)
{
    for (ptrdiff_t c = 0; c < C; c++)
        s1[c] = s2[c] = 0.0;
    if (L == 1) {
        ptrdiff_t c_vector_end = 0;
#ifdef BNPY_VECTOR
        c_vector_end = C - C % 4;
        ptrdiff_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const ptrdiff_t o0 = r * C, o1 = o0 + C, o2 = o1 + C, o3 = o2 + C;
            for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
                bnpy_vd m = bnpy_vd_load_f64(center + c);
                bnpy_vd x0 = bn_sync_load(x + o0 + c) - m, x1 = bn_sync_load(x + o1 + c) - m;
                bnpy_vd x2 = bn_sync_load(x + o2 + c) - m, x3 = bn_sync_load(x + o3 + c) - m;
                bnpy_vd g0 = squares ? x0 : bn_sync_load(dy + o0 + c);
                bnpy_vd g1 = squares ? x1 : bn_sync_load(dy + o1 + c);
                bnpy_vd g2 = squares ? x2 : bn_sync_load(dy + o2 + c);
                bnpy_vd g3 = squares ? x3 : bn_sync_load(dy + o3 + c);
                bnpy_vd_store_f64(s1 + c, bnpy_vd_load_f64(s1 + c) + ((g0 + g1) + (g2 + g3)));
                bnpy_vd_store_f64(s2 + c, bnpy_vd_load_f64(s2 + c) +
                                              ((g0 * x0 + g1 * x1) + (g2 * x2 + g3 * x3)));
            }
        }
        for (; r < r1; r++)
            for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
                bnpy_vd x0 = bn_sync_load(x + r * C + c) - bnpy_vd_load_f64(center + c);
                bnpy_vd g0 = squares ? x0 : bn_sync_load(dy + r * C + c);
                bnpy_vd_store_f64(s1 + c, bnpy_vd_load_f64(s1 + c) + g0);
                bnpy_vd_store_f64(s2 + c, g0 * x0 + bnpy_vd_load_f64(s2 + c));
            }
#endif
        for (ptrdiff_t r = r0; r < r1 && c_vector_end < C; r++)
            for (ptrdiff_t c = c_vector_end; c < C; c++) {
                double d = (double)x[r * C + c] - center[c];
                double g = squares ? d : (double)dy[r * C + c];
                s1[c] += g;
                s2[c] = g * d + s2[c];
            }
        return;
    }
    for (ptrdiff_t r = r0; r < r1; r++)
        for (ptrdiff_t c = 0; c < C; c++) {
            const ptrdiff_t at = (r * C + c) * L;
            const double mc = center[c];
            double t1 = 0.0, t2 = 0.0;
            ptrdiff_t i = 0;
#ifdef BNPY_VECTOR
            bnpy_vd m = bnpy_vd_splat(mc), e0 = bnpy_vd_splat(0.0), e1 = e0, f0 = e0, f1 = e0;
            for (; i + 8 <= L; i += 8) {
                bnpy_vd x0 = bn_sync_load(x + at + i) - m, x1 = bn_sync_load(x + at + i + 4) - m;
                bnpy_vd g0 = squares ? x0 : bn_sync_load(dy + at + i);
                bnpy_vd g1 = squares ? x1 : bn_sync_load(dy + at + i + 4);
                e0 += g0;
                e1 += g1;
                f0 = g0 * x0 + f0;
                f1 = g1 * x1 + f1;
            }
            t1 = bnpy_vd_hsum(e0 + e1);
            t2 = bnpy_vd_hsum(f0 + f1);
#endif
            for (; i < L; i++) {
                double d = (double)x[at + i] - mc;
                double g = squares ? d : (double)dy[at + i];
                t1 += g;
                t2 = g * d + t2;
            }
            s1[c] += t1;
            s2[c] += t2;
        }
}

/* bn_sync_sums_of compiled once per value of squares. */
static BNPY_HOT void SUF(bn_sync_sums)(int squares, double *s1, double *s2, const T *dy, const T *x,
                                       const double *center, ptrdiff_t r0, ptrdiff_t r1,
                                       ptrdiff_t C, ptrdiff_t L)
{
    if (squares)
        SUF(bn_sync_sums_of)(1, s1, s2, dy, x, center, r0, r1, C, L);
    else
        SUF(bn_sync_sums_of)(0, s1, s2, dy, x, center, r0, r1, C, L);
}

/* ---- local statistics ----------------------------------------------------------------------- */

/* The shift of each channel for outer indices [r0, r1) (r1 > r0): the mean of its first values, at
 * most BN_SYNC_SHIFT_VALUES of them (the first rows, or the start of the first segment). */
static void SUF(bn_sync_shifts)(double *shift, const T *x, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C,
                                ptrdiff_t L)
{
    ptrdiff_t span = L == 1 ? r1 - r0 : L;
    ptrdiff_t n = span < BN_SYNC_SHIFT_VALUES ? span : BN_SYNC_SHIFT_VALUES;
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = 0.0;
        for (ptrdiff_t i = 0; i < n; i++)
            s += L == 1 ? (double)x[(r0 + i) * C + c] : (double)x[(r0 * C + c) * L + i];
        shift[c] = s / (double)n;
    }
}

/* The exact path of one channel over outer indices [r0, r1), two passes in double: its mean, then
 * Σ(x − mean), the rounding left in the mean, and Σ(x − mean)² about it. */
static void SUF(bn_sync_exact_channel)(double *mean, double *m2, const T *x, ptrdiff_t c,
                                       ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, ptrdiff_t L)
{
    const double n = (double)((r1 - r0) * L);
    double s = 0.0, lin = 0.0, q = 0.0;
    for (ptrdiff_t r = r0; r < r1; r++)
        for (ptrdiff_t i = 0; i < L; i++)
            s += (double)x[(r * C + c) * L + i];
    const double center = s / n;
    for (ptrdiff_t r = r0; r < r1; r++)
        for (ptrdiff_t i = 0; i < L; i++) {
            double d = (double)x[(r * C + c) * L + i] - center;
            lin += d;
            q += d * d;
        }
    const double offset = lin / n;
    q -= lin * offset;
    *mean = center + offset;
    *m2 = q < 0.0 ? 0.0 : q; /* a NaN stays */
}

/* A reduction's job: its partial sums, and what its chunks read (mean: the gradient sums'). */
struct SUF(bn_sync_sums_job) {
    bn_sync_partials s;
    const T *dy, *x;
    const double *mean;
};

/* Chunk k: mean and M2 of each channel over its outer indices, one pass about the chunk's shifts
 * (the header's check, and the exact path for a channel that fails it). Partial sums: mean, M2,
 * and Σ(x − shift). */
static void SUF(bn_sync_stats_chunk)(void *ctx, ptrdiff_t k)
{
    const struct SUF(bn_sync_sums_job) *j = ctx;
    const bn_sync_plan *p = &j->s.plan;
    const ptrdiff_t C = p->channels, L = p->inner;
    const ptrdiff_t r0 = bn_sync_chunk_start(p, k), r1 = bn_sync_chunk_start(p, k + 1);
    double *mean = j->s.sum[0] + k * C, *m2 = j->s.sum[1] + k * C, *lin = j->s.sum[2] + k * C;
    const double n = (double)((r1 - r0) * L);
    if (n == 0.0) {
        for (ptrdiff_t c = 0; c < C; c++)
            mean[c] = m2[c] = 0.0;
        return;
    }
    SUF(bn_sync_shifts)(mean, j->x, r0, r1, C, L); /* mean holds the shifts until the end */
    SUF(bn_sync_sums)(1, lin, m2, NULL, j->x, mean, r0, r1, C, L);
    for (ptrdiff_t c = 0; c < C; c++) {
        if (lin[c] * lin[c] <= 0.8 * n * m2[c]) { /* NaN fails it */
            double offset = lin[c] / n, q = m2[c] - lin[c] * offset;
            mean[c] += offset;
            m2[c] = q < 0.0 ? 0.0 : q;
        } else {
            SUF(bn_sync_exact_channel)(mean + c, m2 + c, j->x, c, r0, r1, C, L);
        }
    }
}

int SUF(bnpy_bn_local_stats)(double *mean, double *m2, const T *x, ptrdiff_t outer,
                             ptrdiff_t channels, ptrdiff_t inner)
{
    const ptrdiff_t C = channels;
    if (C <= 0)
        return 0;
    struct SUF(bn_sync_sums_job) job = {.x = x};
    if (bn_sync_chunked_sums(&job.s, 3, outer, C, inner, SUF(bn_sync_stats_chunk), &job) < 0)
        return -1;
    const bn_sync_plan *p = &job.s.plan;
    double *chunk_counts = job.s.sum[2], total; /* the Σ(x − shift) are spent: (chunks,) counts */
    for (ptrdiff_t k = 0; k < p->chunks; k++)
        chunk_counts[k] =
            (double)((bn_sync_chunk_start(p, k + 1) - bn_sync_chunk_start(p, k)) * inner);
    /* the chunks merged in order, as shards are; the variance times the count is M2 again */
    bnpy_bn_merge_stats(&total, mean, m2, chunk_counts, job.s.sum[0], job.s.sum[1], p->chunks, C);
    for (ptrdiff_t c = 0; c < C; c++)
        m2[c] *= total;
    free(job.s.sum[0]);
    return 0;
}

/* ---- gradient sums -------------------------------------------------------------------------- */

/* Chunk k: Σ dy and Σ dy·(x − mean) of each channel over its outer indices (the partial sums). */
static void SUF(bn_sync_grad_chunk)(void *ctx, ptrdiff_t k)
{
    const struct SUF(bn_sync_sums_job) *j = ctx;
    const bn_sync_plan *p = &j->s.plan;
    const ptrdiff_t C = p->channels;
    SUF(bn_sync_sums)(0, j->s.sum[0] + k * C, j->s.sum[1] + k * C, j->dy, j->x, j->mean,
                      bn_sync_chunk_start(p, k), bn_sync_chunk_start(p, k + 1), C, p->inner);
}

int SUF(bnpy_bn_grad_sums)(double *sum_dy, double *sum_dyxc, const T *dy, const T *x,
                           const double *mean, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner)
{
    const ptrdiff_t C = channels;
    if (C <= 0)
        return 0;
    struct SUF(bn_sync_sums_job) job = {.dy = dy, .x = x, .mean = mean};
    if (bn_sync_chunked_sums(&job.s, 2, outer, C, inner, SUF(bn_sync_grad_chunk), &job) < 0)
        return -1;
    for (ptrdiff_t c = 0; c < C; c++)
        sum_dy[c] = sum_dyxc[c] = 0.0;
    for (ptrdiff_t k = 0; k < job.s.plan.chunks;
         k++) /* in order: the same bits for any thread count */
        for (ptrdiff_t c = 0; c < C; c++) {
            sum_dy[c] += job.s.sum[0][k * C + c];
            sum_dyxc[c] += job.s.sum[1][k * C + c];
        }
    free(job.s.sum[0]);
    return 0;
}

/* ---- elementwise passes --------------------------------------------------------------------
 * out = (u − u_mean)·a + (x − mean)·b + shift per channel, all in double: the forward is
 * u = NULL, b = γ·s, shift = β; the backward u = dy, a = γ·s, u_mean = S1/m,
 * b = −γ·s³·S2/m, no shift. One pass, split over the outer range (any split gives the same
 * values); out may be x or u itself (each element is written after it is read). */

struct SUF(bn_sync_affine_job) {
    T *out;
    const T *u, *x;
    const double *mean;
    /* the coefficients, (C,) each in one block (bn_sync_affine_begin, bn_sync_affine): u_mean and
     * a used only with u, shift only without (the backward's is 0) */
    double *u_mean, *a, *b, *shift;
    const bn_sync_plan *p; /* p and parts: set by bn_sync_affine */
    ptrdiff_t parts;
};

/* job's coefficients for the caller to fill: 1 when they are ready, 0 when there is nothing to
 * compute (no channel or no value), -1 when they cannot be allocated. */
static int SUF(bn_sync_affine_begin)(struct SUF(bn_sync_affine_job) * job, ptrdiff_t outer,
                                     ptrdiff_t channels, ptrdiff_t inner)
{
    if (channels <= 0 || outer * inner <= 0)
        return 0;
    double *block = malloc((size_t)(4 * channels) * sizeof(double));
    if (block == NULL)
        return -1;
    job->u_mean = block;
    job->a = block + channels;
    job->b = block + 2 * channels;
    job->shift = block + 3 * channels;
    return 1;
}

/* One output value; `with_u` a constant wherever it is inlined. The forward adds the shift β, the
 * backward (whose shift is 0) does not. */
BNPY_ALWAYS_INLINE T SUF(bn_sync_affine_value)(const int with_u, T u, T x, double u_mean, double a,
                                               double mean, double b, double shift)
{
    double value = ((double)x - mean) * b;
    return (T)(with_u ? ((double)u - u_mean) * a + value : value + shift);
}

#ifdef BNPY_VECTOR
BNPY_ALWAYS_INLINE bnpy_vd SUF(bn_sync_affine_vector)(const int with_u, bnpy_vd u, bnpy_vd x,
                                                      bnpy_vd u_mean, bnpy_vd a, bnpy_vd mean,
                                                      bnpy_vd b, bnpy_vd shift)
{
    bnpy_vd value = (x - mean) * b;
    return with_u ? (u - u_mean) * a + value : value + shift;
}
#endif

/* Outer indices [r0, r1) of the pass, for one constant `with_u`: along each segment, or in the
 * channels-last layout across channels (four per vector), the forward four rows per sweep (each
 * vector of coefficients loaded once for them) and the backward row by row (its two inputs over
 * four rows make eight streams: slower, as in batchnorm.c's passes). */
BNPY_ALWAYS_INLINE void SUF(bn_sync_affine_range)(const int with_u,
                                                  const struct SUF(bn_sync_affine_job) * j,
                                                  ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t C = j->p->channels, L = j->p->inner;
    const double *um = j->u_mean, *a = j->a, *m = j->mean, *b = j->b, *sh = j->shift;
    if (L == 1) {
        ptrdiff_t c_vector_end = 0, r = r0;
#ifdef BNPY_VECTOR
        const ptrdiff_t sweep = with_u ? 1 : 4;
        c_vector_end = C - C % 4;
        for (; r + sweep <= r1; r += sweep)
            for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
                bnpy_vd zero = bnpy_vd_splat(0.0);
                bnpy_vd uc = with_u ? bnpy_vd_load_f64(um + c) : zero;
                bnpy_vd ac = with_u ? bnpy_vd_load_f64(a + c) : zero;
                bnpy_vd sc = with_u ? zero : bnpy_vd_load_f64(sh + c);
                bnpy_vd mc = bnpy_vd_load_f64(m + c), bc = bnpy_vd_load_f64(b + c);
                for (ptrdiff_t k = 0; k < sweep; k++) {
                    const ptrdiff_t o = (r + k) * C + c;
                    bnpy_vd uv = with_u ? bn_sync_load(j->u + o) : zero;
                    bn_sync_store(j->out + o,
                                  SUF(bn_sync_affine_vector)(with_u, uv, bn_sync_load(j->x + o), uc,
                                                             ac, mc, bc, sc));
                }
            }
#endif
        for (ptrdiff_t q = r0; q < r1; q++) {
            T *out = j->out + q * C;
            const T *x = j->x + q * C, *u = with_u ? j->u + q * C : x;
            for (ptrdiff_t c = q < r ? c_vector_end : 0; c < C; c++) /* swept rows: the tail */
                out[c] = SUF(bn_sync_affine_value)(with_u, u[c], x[c], with_u ? um[c] : 0.0,
                                                   with_u ? a[c] : 0.0, m[c], b[c],
                                                   with_u ? 0.0 : sh[c]);
        }
        return;
    }
    for (ptrdiff_t r = r0; r < r1; r++)
        for (ptrdiff_t c = 0; c < C; c++) {
            const ptrdiff_t at = (r * C + c) * L;
            T *out = j->out + at;
            const T *x = j->x + at, *u = with_u ? j->u + at : x;
            const double uc = with_u ? um[c] : 0.0, ac = with_u ? a[c] : 0.0;
            const double sc = with_u ? 0.0 : sh[c];
            ptrdiff_t i = 0;
#ifdef BNPY_VECTOR
            bnpy_vd vu = bnpy_vd_splat(uc), va = bnpy_vd_splat(ac), vm = bnpy_vd_splat(m[c]);
            bnpy_vd vb = bnpy_vd_splat(b[c]), vs = bnpy_vd_splat(sc);
            for (; i + 4 <= L; i += 4)
                bn_sync_store(out + i,
                              SUF(bn_sync_affine_vector)(with_u, with_u ? bn_sync_load(u + i) : vu,
                                                         bn_sync_load(x + i), vu, va, vm, vb, vs));
#endif
            for (; i < L; i++)
                out[i] = SUF(bn_sync_affine_value)(with_u, u[i], x[i], uc, ac, m[c], b[c], sc);
        }
}

/* bn_sync_affine_range compiled once per with_u. */
static BNPY_HOT void SUF(bn_sync_affine_rows)(const struct SUF(bn_sync_affine_job) * j,
                                              ptrdiff_t r0, ptrdiff_t r1)
{
    if (j->u != NULL)
        SUF(bn_sync_affine_range)(1, j, r0, r1);
    else
        SUF(bn_sync_affine_range)(0, j, r0, r1);
}

static void SUF(bn_sync_affine_part)(void *ctx, ptrdiff_t part)
{
    const struct SUF(bn_sync_affine_job) *j = ctx;
    const ptrdiff_t outer = j->p->outer;
    SUF(bn_sync_affine_rows)(j, part * outer / j->parts, (part + 1) * outer / j->parts);
}

/* The pass of job (its plan and parts set here) over the (outer, channels, inner) block; then its
 * coefficients are freed. */
static void SUF(bn_sync_affine)(struct SUF(bn_sync_affine_job) * job, ptrdiff_t outer,
                                ptrdiff_t channels, ptrdiff_t inner)
{
    const bn_sync_plan p = bn_sync_make_plan(outer, channels, inner);
    ptrdiff_t parts = p.threads > 1 ? 16 * (ptrdiff_t)p.threads : 1;
    job->p = &p;
    job->parts = parts < p.outer ? parts : (p.outer > 0 ? p.outer : 1);
    bnpy_parallel_for(job->parts, p.threads > 1 && job->parts > 1, p.threads, 1,
                      SUF(bn_sync_affine_part), job);
    free(job->u_mean); /* the block's start */
}

int SUF(bnpy_bn_normalize)(T *y, const T *x, const T *gamma, const T *beta, const double *mean,
                           const double *var, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                           double epsilon)
{
    struct SUF(bn_sync_affine_job) job = {.out = y, .x = x, .mean = mean};
    int ready = SUF(bn_sync_affine_begin)(&job, outer, channels, inner);
    if (ready <= 0)
        return ready;
    for (ptrdiff_t c = 0; c < channels; c++) {
        job.b[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd(var[c], epsilon);
        job.shift[c] = beta != NULL ? (double)beta[c] : 0.0;
    }
    SUF(bn_sync_affine)(&job, outer, channels, inner);
    return 0;
}

int SUF(bnpy_bn_backward_apply)(T *dx, const T *dy, const T *x, const T *gamma, const double *mean,
                                const double *var, const double *sum_dy, const double *sum_dyxc,
                                double count, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                                double epsilon)
{
    struct SUF(bn_sync_affine_job) job = {.out = dx, .u = dy, .x = x, .mean = mean};
    const double inv_m = count > 0.0 ? 1.0 / count : 0.0;
    int ready = SUF(bn_sync_affine_begin)(&job, outer, channels, inner);
    if (ready <= 0)
        return ready;
    for (ptrdiff_t c = 0; c < channels; c++) {
        double s = bn_invstd(var[c], epsilon), g = gamma != NULL ? (double)gamma[c] : 1.0;
        job.a[c] = g * s;
        job.b[c] = -g * s * s * s * sum_dyxc[c] * inv_m;
        job.u_mean[c] = sum_dy[c] * inv_m;
    }
    SUF(bn_sync_affine)(&job, outer, channels, inner);
    return 0;
}

#endif /* BNPY_TWIN_BODY */
