/* batchnorm.c: Batch Normalization kernels (Ioffe & Szegedy 2015) on contiguous (outer, C, inner)
 * blocks, float32 and float64 from one type-generic body, every sum accumulated in double.
 *
 * The file includes itself twice (the part under BN_BODY), once with T = float and once with
 * T = double, so each kernel has one body. Per channel c, with m = outer * inner values:
 *
 *   training forward    mean = (1/m) Σ x,   var = (1/m) Σ (x − mean)²   (biased)
 *                       y = (x − mean) · γ/√(var + ε) + β
 *   inference forward   the same y with the given mean and var
 *   training backward   x̂ = (x − mean)/√(var + ε),  dβ = Σ dy,  dγ = Σ dy·x̂,
 *                       dx = γ/√(var + ε) · (dy − dβ/m − x̂·dγ/m)
 *   inference backward  dx = γ/√(var + ε) · dy,  dγ, dβ as above
 *   moving statistics   moving = momentum·moving + (1 − momentum)·batch
 *
 * When var + ε is exactly 0 (a constant channel with ε = 0) 1/√(var + ε) is taken as 0 (as PyTorch
 * does), so y = β and dx = 0 rather than NaN.
 *
 * Statistics are numerically stable without a second read of x from memory: each block of values
 * small enough to stay in L1 gets its mean and sum of squared deviations from sums about a shift
 * within its spread (the previous block's mean, or its own mean in a second pass over the block
 * when the level jumps; see bn_stats_rows), and blocks are combined with Chan's formula
 * δ = mean_b − mean_a,  mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n.
 * E[x²] − E[x]² is never used. The mean is carried relative to a pivot (one of the channel's
 * values), so that y = ((x − pivot) − (mean − pivot))·scale + β keeps every digit at large offsets.
 *
 * The elementwise passes (y, dx) compute in T's own precision: they accumulate nothing, and each
 * output is a few roundings of its own size (float32 results are within 1e-5 of a float64
 * reference, offsets of 1e4 included; the tests check it).
 *
 * Threads: the outer range is cut into chunks whose number depends on the sizes alone, each chunk
 * writes its partial statistics into scratch memory, and chunks are merged in order by one thread,
 * so the results are bitwise the same for every thread count. Elementwise passes are split freely.
 *
 * The hot loops are compiled twice (AVX2 and baseline) and picked at load time (GCC/Clang
 * target_clones on x86-64 Linux), because setup.py builds for the baseline ISA.
 */
#ifndef BN_BODY

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* In a forked child bnpy_get_num_threads() is 1 (threads.c): libgomp's pool does not survive fork(). */

/* Portable SIMD through GCC/Clang vector extensions: bn_vd holds 4 doubles (one AVX register, two
 * SSE2 ones in the baseline clone). Other compilers take the scalar loops, which every vector
 * loop below also uses for its tail. */
#if defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 9) && !defined(BN_NO_VECTOR)
#define BN_VECTOR 1
typedef double bn_vd __attribute__((vector_size(32)));
typedef float bn_vf __attribute__((vector_size(16)));
/* Macros, not functions: so the vector code is compiled inside each target clone (an inline
 * function gets lowered for the baseline ISA first), and this element-wise form becomes one
 * vcvtps2pd / vcvtpd2ps with AVX. Loads and stores need no alignment. */
#define bn_load_f32(p) ((bn_vd){(p)[0], (p)[1], (p)[2], (p)[3]})
#define bn_load_f64(p) ((bn_vd){(p)[0], (p)[1], (p)[2], (p)[3]})
#define bn_store_f32(p, v)                                                                        \
    do {                                                                                          \
        bn_vd v_ = (v);                                                                           \
        bn_vf f_ = {(float)v_[0], (float)v_[1], (float)v_[2], (float)v_[3]};                      \
        memcpy((p), &f_, sizeof f_);                                                              \
    } while (0)
#define bn_store_f64(p, v)                                                                        \
    do {                                                                                          \
        bn_vd v_ = (v);                                                                           \
        memcpy((p), &v_, sizeof v_);                                                              \
    } while (0)
#define bn_splat(a) ((bn_vd){(a), (a), (a), (a)})
#define bn_hsum(v) __extension__({ bn_vd h_ = (v); (h_[0] + h_[2]) + (h_[1] + h_[3]); })
#endif
#if defined(__GNUC__)
#define BN_INLINE static inline __attribute__((always_inline))
#else
#define BN_INLINE static inline
#endif

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define BN_HOT __attribute__((target_clones("avx2", "default"), noinline))
#endif
#endif
#ifndef BN_HOT
#define BN_HOT
#endif

#ifdef BNPY_OPENMP
/* Needs `bn_threads` (int), `bn_fork` (int: whether to fork at all) and `bn_grain` (units taken
 * at a time) in scope. Dynamic scheduling: on a shared machine a busy core must not hold up the
 * whole pass; which thread runs a unit never changes the result. */
#define BN_PARALLEL_FOR                                                                           \
    _Pragma("omp parallel for schedule(dynamic, bn_grain) num_threads(bn_threads) if(bn_fork)")
#else
#define BN_PARALLEL_FOR
#endif

/* Values per chunk of the outer range at least (so small inputs are one chunk), and at most this
 * many chunks (the merge and the scratch memory grow with it). */
#define BN_CHUNK_MIN_VALUES 32768
#define BN_MAX_CHUNKS 64
/* Values per channel and block: a block of 4096 float32/float64 values stays in L1. */
#ifndef BN_BLOCK_VALUES
#define BN_BLOCK_VALUES 4096
#endif
/* Channels per channel block in the channels-last (inner == 1) layout: bounds the stack arrays. */
#define BN_CHANNEL_BLOCK 512
/* Fewer values than this run on the calling thread: an OpenMP fork costs microseconds. */
#define BN_PARALLEL_MIN_VALUES 65536
/* Scratch of at most this many doubles lives on the stack (no malloc for small problems). */
#define BN_STACK_DOUBLES 512

/* How one call cuts its (outer, C, inner) block into work, from the sizes alone. */
typedef struct {
    ptrdiff_t outer, channels, inner;
    ptrdiff_t chunks;         /* chunks of the outer range, each with its own partial sums */
    ptrdiff_t channel_blocks; /* rows layout: channel blocks of BN_CHANNEL_BLOCK */
    int rows_layout;          /* inner == 1: each outer index is one contiguous row of C channels */
    int threads;              /* bnpy_get_num_threads() */
    int parallel;             /* large enough to fork */
} bn_plan;

static void bn_make_plan(bn_plan *p, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner)
{
    ptrdiff_t total = outer * channels * inner;
    p->outer = outer;
    p->channels = channels;
    p->inner = inner;
    p->chunks = total / BN_CHUNK_MIN_VALUES;
    if (p->chunks > BN_MAX_CHUNKS)
        p->chunks = BN_MAX_CHUNKS;
    if (p->chunks > outer)
        p->chunks = outer;
    if (p->chunks < 1)
        p->chunks = 1;
    p->rows_layout = inner == 1;
    p->channel_blocks = (channels + BN_CHANNEL_BLOCK - 1) / BN_CHANNEL_BLOCK;
    p->threads = bnpy_get_num_threads();
    p->parallel = p->threads > 1 && total >= BN_PARALLEL_MIN_VALUES;
}

/* First outer index of chunk k (k = chunks gives outer). */
static inline ptrdiff_t bn_chunk_start(const bn_plan *p, ptrdiff_t k)
{
    return k * p->outer / p->chunks;
}

/* Number of work units of a reduction: (chunk, channel block) or (chunk, channel). */
static inline ptrdiff_t bn_reduce_units(const bn_plan *p)
{
    return p->chunks * (p->rows_layout ? p->channel_blocks : p->channels);
}

/* Units a thread takes at a time: about 16 grabs per thread over the pass. */
static inline ptrdiff_t bn_grain_for(const bn_plan *p, ptrdiff_t units)
{
    ptrdiff_t grain = units / (16 * (ptrdiff_t)p->threads);
    return grain > 1 ? grain : 1;
}

/* Number of parts an elementwise pass is split into (any split gives the same result). */
static inline ptrdiff_t bn_elementwise_parts(const bn_plan *p, ptrdiff_t items)
{
    ptrdiff_t parts = p->parallel ? 16 * (ptrdiff_t)p->threads : 1;
    return parts < items ? parts : (items > 0 ? items : 1);
}

/* Scratch of n doubles: the caller's stack buffer when it fits, else malloc (NULL if that fails). */
static double *bn_scratch(size_t n, double *stack_buffer)
{
    return n <= BN_STACK_DOUBLES ? stack_buffer : (double *)malloc(n * sizeof(double));
}

static void bn_scratch_free(double *scratch, double *stack_buffer)
{
    if (scratch != stack_buffer)
        free(scratch);
}

/* 1/√(var + ε), with 0 for var + ε == 0 (a constant channel and ε = 0) instead of infinity. */
static inline double bn_invstd(double var, double epsilon)
{
    double v = var + epsilon;
    return v == 0.0 ? 0.0 : 1.0 / sqrt(v);
}

/* Chan's merge of a block (n_b values, mean_b, M2_b) into the running (n_a, mean_a, M2_a). */
static inline void bn_chan_merge(double *n_a, double *mean_a, double *m2_a, double n_b, double mean_b,
                                 double m2_b)
{
    double n = *n_a + n_b;
    if (n_b <= 0.0)
        return;
    double delta = mean_b - *mean_a;
    *mean_a += delta * (n_b / n);
    *m2_a += m2_b + delta * delta * (*n_a * n_b / n);
    *n_a = n;
}

/* Final merge of the per-chunk statistics, chunk by chunk in order (deterministic). */
static void bn_merge_chunk_stats(double *mean, double *var, const double *chunk_mean,
                                 const double *chunk_m2, const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    for (ptrdiff_t c = 0; c < C; c++) {
        double n_a = 0.0, mean_a = 0.0, m2_a = 0.0;
        for (ptrdiff_t k = 0; k < p->chunks; k++) {
            double n_k = (double)((bn_chunk_start(p, k + 1) - bn_chunk_start(p, k)) * p->inner);
            bn_chan_merge(&n_a, &mean_a, &m2_a, n_k, chunk_mean[k * C + c], chunk_m2[k * C + c]);
        }
        double v = n_a > 0.0 ? m2_a / n_a : 0.0;
        mean[c] = mean_a;
        var[c] = v > 0.0 ? v : 0.0; /* rounding can leave M2 a hair below zero */
    }
}

/* Sum of the per-chunk partial sums, chunk by chunk in order (deterministic). */
static void bn_merge_chunk_sums(double *sum, const double *chunk_sum, const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = 0.0;
        for (ptrdiff_t k = 0; k < p->chunks; k++)
            s += chunk_sum[k * C + c];
        sum[c] = s;
    }
}

#define BN_BODY
#define T float
#define F(name) name##_f32
#include "batchnorm.c"
#undef T
#undef F
#define T double
#define F(name) name##_f64
#include "batchnorm.c"
#undef T
#undef F
#undef BN_BODY

#else /* BN_BODY ------------------------------------------------------------------------------ */

/* ---- reductions over a contiguous run of values (channels-first segments) -------------------
 * Several independent double accumulators (vector registers), so the adds pipeline; the
 * summation order is fixed by the code, not by flags or threads. */

#ifdef BN_VECTOR
#undef BN_LOAD
#undef BN_STORE
#define BN_LOAD F(bn_load)
#define BN_STORE F(bn_store)
#endif

/* Σ d and Σ d² with d = p − center. */
BN_INLINE void F(bn_deviation_sums)(double *sum_d, double *sum_d2, const T *p, ptrdiff_t n,
                                    double center)
{
    double t1 = 0.0, t2 = 0.0;
    ptrdiff_t i = 0;
#ifdef BN_VECTOR
    bn_vd m = bn_splat(center);
    bn_vd e0 = bn_splat(0), e1 = e0, f0 = e0, f1 = e0;
    for (; i + 8 <= n; i += 8) {
        bn_vd d0 = BN_LOAD(p + i) - m, d1 = BN_LOAD(p + i + 4) - m;
        e0 += d0;
        e1 += d1;
        f0 += d0 * d0;
        f1 += d1 * d1;
    }
    t1 = bn_hsum(e0 + e1);
    t2 = bn_hsum(f0 + f1);
#endif
    for (; i < n; i++) {
        double d = (double)p[i] - center;
        t1 += d;
        t2 += d * d;
    }
    *sum_d = t1;
    *sum_d2 = t2;
}

/* Σ dy and Σ dy·(x − center) over a run; with dx, also dx = scale·dy (after the reads). */
BN_INLINE void F(bn_grad_sums)(double *sum_dy, double *sum_dyxc, T *dx, const T *dy,
                                   const T *x, ptrdiff_t n, double center, double scale)
{
    double t1 = 0.0, t2 = 0.0;
    ptrdiff_t i = 0;
#ifdef BN_VECTOR
    bn_vd m = bn_splat(center), s = bn_splat(scale);
    bn_vd e0 = bn_splat(0), e1 = e0, f0 = e0, f1 = e0;
    for (; i + 8 <= n; i += 8) {
        bn_vd g0 = BN_LOAD(dy + i), g1 = BN_LOAD(dy + i + 4);
        e0 += g0;
        e1 += g1;
        f0 += g0 * (BN_LOAD(x + i) - m);
        f1 += g1 * (BN_LOAD(x + i + 4) - m);
        if (dx != NULL) {
            BN_STORE(dx + i, g0 * s);
            BN_STORE(dx + i + 4, g1 * s);
        }
    }
    t1 = bn_hsum(e0 + e1);
    t2 = bn_hsum(f0 + f1);
#endif
    for (; i < n; i++) {
        double g = (double)dy[i];
        t1 += g;
        t2 += g * ((double)x[i] - center);
        if (dx != NULL)
            dx[i] = (T)(g * scale);
    }
    *sum_dy = t1;
    *sum_dyxc = t2;
}

/* ---- statistics: one work unit ----------------------------------------------------------- */

/* One pass per block of values of a channel (the block stays in L1), summed about a shift s: with
 * d = x − s, the block's mean is s + Σd/n_b and its M2 = Σd² − (Σd)²/n_b, and blocks merge with
 * Chan's formula. The shift is the previous block's mean (the pivot for a unit's first block, so
 * chunks stay independent); for data whose level does not jump from block to block it lies
 * within the block's spread, and the subtraction cancels nothing. Where it does not — the block's
 * mean is more than one of its standard deviations from s, i.e. (Σd)²/n_b > Σd²/2: a jump, a
 * trend, an outlying pivot — the block, still in L1, is summed again about its own mean (an exact
 * two-pass). Either way M2_b loses at most a factor 2 of cancellation; sums are in double. */

/* Rows layout: rows [r0, r1) of x (rows of C values), channels [c0, c0 + cw): the unit's mean of
 * x − pivot and M2 per channel into unit_mean, unit_m2 (all three indexed from c0). */
static BN_HOT void F(bn_stats_rows)(double *unit_mean, double *unit_m2, const T *x,
                                    const double *pivot, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C,
                                    ptrdiff_t c0, ptrdiff_t cw)
{
    double shift[BN_CHANNEL_BLOCK], block_d1[BN_CHANNEL_BLOCK], block_d2[BN_CHANNEL_BLOCK];
    ptrdiff_t block_rows = BN_BLOCK_VALUES / cw;
    if (block_rows < 4)
        block_rows = 4;
    double n_a = 0.0;
    for (ptrdiff_t c = 0; c < cw; c++) {
        unit_mean[c] = unit_m2[c] = 0.0;
        shift[c] = pivot[c];
    }
    for (ptrdiff_t rb = r0; rb < r1; rb += block_rows) {
        ptrdiff_t re = rb + block_rows < r1 ? rb + block_rows : r1;
        double nb = (double)(re - rb), inv_nb = 1.0 / nb;
        for (ptrdiff_t c = 0; c < cw; c++)
            block_d1[c] = block_d2[c] = 0.0;
        ptrdiff_t c_scalar = 0; /* channels from here on take the scalar loop */
#ifdef BN_VECTOR
        /* Row by row, a sequential stream that the hardware prefetchers follow (a column-wise
         * walk measured slower); two rows per sweep halve the updates of the sums in L1. */
        ptrdiff_t c_vector_end = cw - cw % 4, r = rb;
        for (; r + 2 <= re; r += 2) {
            const T *p = x + r * C + c0, *q = p + C;
            for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
                bn_vd s = bn_load_f64(shift + c), d0 = BN_LOAD(p + c) - s, d1 = BN_LOAD(q + c) - s;
                bn_store_f64(block_d1 + c, bn_load_f64(block_d1 + c) + (d0 + d1));
                bn_store_f64(block_d2 + c, bn_load_f64(block_d2 + c) + (d0 * d0 + d1 * d1));
            }
        }
        if (r < re) {
            const T *p = x + r * C + c0;
            for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
                bn_vd d0 = BN_LOAD(p + c) - bn_load_f64(shift + c);
                bn_store_f64(block_d1 + c, bn_load_f64(block_d1 + c) + d0);
                bn_store_f64(block_d2 + c, bn_load_f64(block_d2 + c) + d0 * d0);
            }
        }
        c_scalar = c_vector_end;
#endif
        if (c_scalar < cw) {
            for (ptrdiff_t r = rb; r < re; r++) {
                const T *row = x + r * C + c0;
                for (ptrdiff_t c = c_scalar; c < cw; c++) {
                    double d = (double)row[c] - shift[c];
                    block_d1[c] += d;
                    block_d2[c] += d * d;
                }
            }
        }
        for (ptrdiff_t c = 0; c < cw; c++) {
            if (block_d1[c] * block_d1[c] * inv_nb > 0.5 * block_d2[c]) {
                /* The shift is far from this block's mean: sum again about the mean. */
                shift[c] += block_d1[c] * inv_nb;
                double d1 = 0.0, d2 = 0.0;
                for (ptrdiff_t r = rb; r < re; r++) {
                    double d = (double)x[r * C + c0 + c] - shift[c];
                    d1 += d;
                    d2 += d * d;
                }
                block_d1[c] = d1;
                block_d2[c] = d2;
            }
        }
        double n = n_a + nb, w_b = nb / n, w_ab = n_a * nb / n;
        for (ptrdiff_t c = 0; c < cw; c++) { /* no division per channel: this runs every block */
            double offset = block_d1[c] * inv_nb;
            double mean_b = (shift[c] - pivot[c]) + offset;
            double m2_b = block_d2[c] - block_d1[c] * offset;
            double delta = mean_b - unit_mean[c];
            unit_mean[c] += delta * w_b;
            unit_m2[c] += m2_b + delta * delta * w_ab;
            shift[c] += offset; /* the next block's shift: this block's mean */
        }
        n_a = n;
    }
}

/* Channels-first layout: outer indices [r0, r1), channel c, each a contiguous segment of L values. */
static BN_HOT void F(bn_stats_segments)(double *unit_mean, double *unit_m2, const T *x,
                                        double pivot, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C,
                                        ptrdiff_t c, ptrdiff_t L)
{
    double n_a = 0.0, mean_a = 0.0, m2_a = 0.0, shift = pivot;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const T *segment = x + (r * C + c) * L;
        for (ptrdiff_t b = 0; b < L; b += BN_BLOCK_VALUES) {
            ptrdiff_t len = L - b < BN_BLOCK_VALUES ? L - b : BN_BLOCK_VALUES;
            double nb = (double)len, d1, d2;
            F(bn_deviation_sums)(&d1, &d2, segment + b, len, shift);
            if (d1 * d1 / nb > 0.5 * d2) { /* the shift is far from this block's mean: again */
                shift += d1 / nb;
                F(bn_deviation_sums)(&d1, &d2, segment + b, len, shift);
            }
            double offset = d1 / nb;
            bn_chan_merge(&n_a, &mean_a, &m2_a, nb, (shift - pivot) + offset, d2 - d1 * offset);
            shift += offset;
        }
    }
    *unit_mean = mean_a;
    *unit_m2 = m2_a;
}

/* Per-chunk mean of x − pivot and M2 of every channel: chunk_mean, chunk_m2 are (chunks, C). */
static void F(bn_chunk_stats)(double *chunk_mean, double *chunk_m2, const T *x,
                              const double *pivot, const bn_plan *p)
{
    ptrdiff_t C = p->channels, units = bn_reduce_units(p);
    int bn_threads = p->threads, bn_fork;
    ptrdiff_t bn_grain;
    (void)bn_threads;
    if (p->rows_layout) {
        bn_fork = p->parallel && units > 1;
        bn_grain = bn_grain_for(p, units);
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_FOR
        for (ptrdiff_t u = 0; u < units; u++) {
            ptrdiff_t k = u / p->channel_blocks, c0 = (u % p->channel_blocks) * BN_CHANNEL_BLOCK;
            ptrdiff_t cw = C - c0 < BN_CHANNEL_BLOCK ? C - c0 : BN_CHANNEL_BLOCK;
            F(bn_stats_rows)(chunk_mean + k * C + c0, chunk_m2 + k * C + c0, x, pivot + c0,
                             bn_chunk_start(p, k), bn_chunk_start(p, k + 1), C, c0, cw);
        }
    } else {
        bn_fork = p->parallel && units > 1;
        bn_grain = bn_grain_for(p, units);
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_FOR
        for (ptrdiff_t u = 0; u < units; u++) {
            ptrdiff_t k = u / C, c = u % C;
            F(bn_stats_segments)(chunk_mean + u, chunk_m2 + u, x, pivot[c], bn_chunk_start(p, k),
                                 bn_chunk_start(p, k + 1), C, c, p->inner);
        }
    }
}

/* ---- gradient sums: one work unit -------------------------------------------------------- */

/* Rows layout: Σdy and Σdy·(x − mean) of rows [r0, r1), channels [c0, c0 + cw); with dx, also
 * dx = scale·dy (the inference backward's one pass). dx may be dy or x itself: each element is
 * written after it is read. */
static BN_HOT void F(bn_grad_sums_rows)(double *unit_dy, double *unit_dyxc, T *dx, const T *dy,
                                        const T *x, const double *mean, const double *scale,
                                        ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, ptrdiff_t c0,
                                        ptrdiff_t cw)
{
    for (ptrdiff_t c = 0; c < cw; c++)
        unit_dy[c] = unit_dyxc[c] = 0.0;
    const double *m = mean + c0;
    const double *s = scale != NULL ? scale + c0 : NULL;
    ptrdiff_t c_scalar = 0;
#ifdef BN_VECTOR
    /* Row by row (a sequential stream, which the hardware prefetchers follow; a column-wise walk
     * with the sums in registers measured 1.4x slower), four channels per vector, sums in L1;
     * two rows per sweep halve the updates of the sums. dx is written after both rows are read. */
    ptrdiff_t c_vector_end = cw - cw % 4, r = r0;
    for (; r + 2 <= r1; r += 2) {
        ptrdiff_t o0 = r * C + c0, o1 = o0 + C;
        for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
            bn_vd mc = bn_load_f64(m + c);
            bn_vd g0 = BN_LOAD(dy + o0 + c), g1 = BN_LOAD(dy + o1 + c);
            bn_vd x0 = BN_LOAD(x + o0 + c), x1 = BN_LOAD(x + o1 + c);
            bn_store_f64(unit_dy + c, bn_load_f64(unit_dy + c) + (g0 + g1));
            bn_store_f64(unit_dyxc + c, bn_load_f64(unit_dyxc + c) + (g0 * (x0 - mc) + g1 * (x1 - mc)));
            if (dx != NULL) {
                bn_vd sc = bn_load_f64(s + c);
                BN_STORE(dx + o0 + c, g0 * sc);
                BN_STORE(dx + o1 + c, g1 * sc);
            }
        }
    }
    if (r < r1) {
        ptrdiff_t o0 = r * C + c0;
        for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
            bn_vd g0 = BN_LOAD(dy + o0 + c), x0 = BN_LOAD(x + o0 + c);
            bn_store_f64(unit_dy + c, bn_load_f64(unit_dy + c) + g0);
            bn_store_f64(unit_dyxc + c, bn_load_f64(unit_dyxc + c) + g0 * (x0 - bn_load_f64(m + c)));
            if (dx != NULL)
                BN_STORE(dx + o0 + c, g0 * bn_load_f64(s + c));
        }
    }
    c_scalar = c_vector_end;
#endif
    if (c_scalar < cw) {
        for (ptrdiff_t r = r0; r < r1; r++) {
            const T *g_row = dy + r * C + c0, *x_row = x + r * C + c0;
            T *dx_row = dx != NULL ? dx + r * C + c0 : NULL;
            for (ptrdiff_t c = c_scalar; c < cw; c++) {
                double g = (double)g_row[c];
                unit_dy[c] += g;
                unit_dyxc[c] += g * ((double)x_row[c] - m[c]);
                if (dx_row != NULL)
                    dx_row[c] = (T)(g * s[c]);
            }
        }
    }
}

/* Channels-first layout: outer indices [r0, r1), channel c, segments of L values. */
static BN_HOT void F(bn_grad_sums_segments)(double *unit_dy, double *unit_dyxc, T *dx, const T *dy,
                                            const T *x, double mean, double scale, ptrdiff_t r0,
                                            ptrdiff_t r1, ptrdiff_t C, ptrdiff_t c, ptrdiff_t L)
{
    double s_dy = 0.0, s_dyxc = 0.0;
    for (ptrdiff_t r = r0; r < r1; r++) {
        ptrdiff_t offset = (r * C + c) * L;
        double a, b;
        F(bn_grad_sums)(&a, &b, dx != NULL ? dx + offset : NULL, dy + offset, x + offset, L, mean,
                        scale);
        s_dy += a;
        s_dyxc += b;
    }
    *unit_dy = s_dy;
    *unit_dyxc = s_dyxc;
}

/* Per-chunk Σdy and Σdy·(x − mean): chunk_dy, chunk_dyxc are (chunks, C). */
static void F(bn_chunk_grad_sums)(double *chunk_dy, double *chunk_dyxc, T *dx, const T *dy,
                                  const T *x, const double *mean, const double *scale,
                                  const bn_plan *p)
{
    ptrdiff_t C = p->channels, units = bn_reduce_units(p);
    int bn_threads = p->threads, bn_fork;
    ptrdiff_t bn_grain;
    (void)bn_threads;
    if (p->rows_layout) {
        bn_fork = p->parallel && units > 1;
        bn_grain = bn_grain_for(p, units);
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_FOR
        for (ptrdiff_t u = 0; u < units; u++) {
            ptrdiff_t k = u / p->channel_blocks, c0 = (u % p->channel_blocks) * BN_CHANNEL_BLOCK;
            ptrdiff_t cw = C - c0 < BN_CHANNEL_BLOCK ? C - c0 : BN_CHANNEL_BLOCK;
            F(bn_grad_sums_rows)(chunk_dy + k * C + c0, chunk_dyxc + k * C + c0, dx, dy, x, mean,
                                 scale, bn_chunk_start(p, k), bn_chunk_start(p, k + 1), C, c0, cw);
        }
    } else {
        bn_fork = p->parallel && units > 1;
        bn_grain = bn_grain_for(p, units);
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_FOR
        for (ptrdiff_t u = 0; u < units; u++) {
            ptrdiff_t k = u / C, c = u % C;
            F(bn_grad_sums_segments)(chunk_dy + u, chunk_dyxc + u, dx, dy, x, mean[c],
                                     scale != NULL ? scale[c] : 0.0, bn_chunk_start(p, k),
                                     bn_chunk_start(p, k + 1), C, c, p->inner);
        }
    }
}

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

#ifdef BN_VECTOR
typedef T F(bn_vt) __attribute__((vector_size(32)));
#define BN_VT F(bn_vt)
#define BN_VT_LANES ((ptrdiff_t)(32 / sizeof(T)))
#define BN_VT_LOAD(p) __extension__({ BN_VT v_; memcpy(&v_, (p), sizeof v_); v_; })
#define BN_VT_STORE(p, v)                                                                         \
    do {                                                                                          \
        BN_VT w_ = (v);                                                                           \
        memcpy((p), &w_, sizeof w_);                                                              \
    } while (0)
#endif

/* Rows layout: rows [r0, r1) of C values. */
static BN_HOT void F(bn_affine_rows)(T *out, const T *u, const T *v, const T *a, const T *b,
                                     const T *pivot, const T *center, const T *shift, ptrdiff_t r0,
                                     ptrdiff_t r1, ptrdiff_t C)
{
    for (ptrdiff_t r = r0; r < r1; r++) {
        T *o = out + r * C;
        const T *vr = v + r * C, *ur = u != NULL ? u + r * C : NULL;
        ptrdiff_t c = 0;
#ifdef BN_VECTOR
        if (ur != NULL) {
            for (; c + BN_VT_LANES <= C; c += BN_VT_LANES)
                BN_VT_STORE(o + c, (BN_VT_LOAD(ur + c) - BN_VT_LOAD(shift + c)) * BN_VT_LOAD(a + c) +
                                       (BN_VT_LOAD(vr + c) - BN_VT_LOAD(center + c)) * BN_VT_LOAD(b + c));
        } else if (pivot != NULL) {
            for (; c + BN_VT_LANES <= C; c += BN_VT_LANES)
                BN_VT_STORE(o + c, ((BN_VT_LOAD(vr + c) - BN_VT_LOAD(pivot + c)) - BN_VT_LOAD(center + c)) *
                                           BN_VT_LOAD(b + c) +
                                       BN_VT_LOAD(shift + c));
        } else {
            for (; c + BN_VT_LANES <= C; c += BN_VT_LANES)
                BN_VT_STORE(o + c, (BN_VT_LOAD(vr + c) - BN_VT_LOAD(center + c)) * BN_VT_LOAD(b + c) +
                                       BN_VT_LOAD(shift + c));
        }
#endif
        if (ur != NULL) {
            for (; c < C; c++)
                o[c] = (ur[c] - shift[c]) * a[c] + (vr[c] - center[c]) * b[c];
        } else if (pivot != NULL) {
            for (; c < C; c++)
                o[c] = ((vr[c] - pivot[c]) - center[c]) * b[c] + shift[c];
        } else {
            for (; c < C; c++)
                o[c] = (vr[c] - center[c]) * b[c] + shift[c];
        }
    }
}

/* Channels-first layout: segments [s0, s1) of L values (segment s has channel s mod C). */
static BN_HOT void F(bn_affine_segments)(T *out, const T *u, const T *v, const T *a, const T *b,
                                         const T *pivot, const T *center, const T *shift,
                                         ptrdiff_t s0, ptrdiff_t s1, ptrdiff_t C, ptrdiff_t L)
{
    for (ptrdiff_t s = s0; s < s1; s++) {
        ptrdiff_t c = s % C, i = 0;
        T ac = u != NULL ? a[c] : (T)0, bc = b[c], pc = pivot != NULL ? pivot[c] : (T)0,
          cc = center[c], sc = shift[c];
        T *o = out + s * L;
        const T *vs = v + s * L, *us = u != NULL ? u + s * L : NULL;
#ifdef BN_VECTOR
        BN_VT zero = {0}, av = zero + ac, bv = zero + bc, pv = zero + pc, cv = zero + cc,
              sv = zero + sc;
        if (us != NULL) {
            for (; i + BN_VT_LANES <= L; i += BN_VT_LANES)
                BN_VT_STORE(o + i, (BN_VT_LOAD(us + i) - sv) * av + (BN_VT_LOAD(vs + i) - cv) * bv);
        } else if (pivot != NULL) {
            for (; i + BN_VT_LANES <= L; i += BN_VT_LANES)
                BN_VT_STORE(o + i, ((BN_VT_LOAD(vs + i) - pv) - cv) * bv + sv);
        } else {
            for (; i + BN_VT_LANES <= L; i += BN_VT_LANES)
                BN_VT_STORE(o + i, (BN_VT_LOAD(vs + i) - cv) * bv + sv);
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

/* The pass over the whole block; the double coefficients (a may be NULL when u is, pivot may be
 * NULL) are first rounded to T into coef, which has room for 5·C values of T. */
static void F(bn_affine)(T *out, const T *u, const T *v, const double *a, const double *b,
                         const double *pivot, const double *center, const double *shift,
                         T *coef, const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    T *ta = coef, *tb = ta + C, *tp = tb + C, *tc = tp + C, *ts = tc + C;
    for (ptrdiff_t c = 0; c < C; c++) {
        ta[c] = a != NULL ? (T)a[c] : (T)0;
        tb[c] = (T)b[c];
        tp[c] = pivot != NULL ? (T)pivot[c] : (T)0;
        tc[c] = (T)center[c];
        ts[c] = (T)shift[c];
    }
    const T *pv = pivot != NULL ? tp : NULL;
    int bn_threads = p->threads, bn_fork;
    ptrdiff_t bn_grain;
    (void)bn_threads;
    if (p->rows_layout) {
        ptrdiff_t parts = bn_elementwise_parts(p, p->outer);
        bn_fork = p->parallel && parts > 1;
        bn_grain = 1;
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_FOR
        for (ptrdiff_t q = 0; q < parts; q++)
            F(bn_affine_rows)(out, u, v, ta, tb, pv, tc, ts, q * p->outer / parts,
                              (q + 1) * p->outer / parts, C);
    } else {
        ptrdiff_t segments = p->outer * C, parts = bn_elementwise_parts(p, segments);
        bn_fork = p->parallel && parts > 1;
        bn_grain = 1;
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_FOR
        for (ptrdiff_t q = 0; q < parts; q++)
            F(bn_affine_segments)(out, u, v, ta, tb, pv, tc, ts, q * segments / parts,
                                  (q + 1) * segments / parts, C, p->inner);
    }
}

/* ---- the kernels of kernels.h ------------------------------------------------------------ */

int F(bnpy_bn_forward)(T *y, T *mean, T *var, const T *x, const T *gamma, const T *beta,
                       ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    bn_plan p;
    double stack_buffer[BN_STACK_DOUBLES];
    ptrdiff_t C = channels;
    if (C <= 0 || outer * inner <= 0)
        return 0;
    bn_make_plan(&p, outer, channels, inner);
    double *scratch = bn_scratch((size_t)(2 * p.chunks * C + 10 * C), stack_buffer);
    if (scratch == NULL)
        return -1;
    double *chunk_mean = scratch, *chunk_m2 = chunk_mean + p.chunks * C;
    double *pivot = chunk_m2 + p.chunks * C, *centered_mean = pivot + C, *var_d = centered_mean + C,
           *scale = var_d + C, *shift = scale + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */

    /* The mean is carried relative to a pivot, one of the channel's own values (its first):
     * mean = pivot + centered_mean with centered_mean of the size of σ (|pivot − mean| <= √m·σ),
     * and y = ((x − pivot) − centered_mean)·scale + β, where x − pivot is exact for data far from
     * 0 (1e4 + N(0, 1)). Subtracting one rounded mean instead would cost an ulp of |x| in y. */
    for (ptrdiff_t c = 0; c < C; c++)
        pivot[c] = (double)x[c * inner];
    F(bn_chunk_stats)(chunk_mean, chunk_m2, x, pivot, &p);
    bn_merge_chunk_stats(centered_mean, var_d, chunk_mean, chunk_m2, &p);
    for (ptrdiff_t c = 0; c < C; c++) {
        scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd(var_d[c], epsilon);
        shift[c] = beta != NULL ? (double)beta[c] : 0.0;
    }
    F(bn_affine)(y, NULL, x, NULL, scale, pivot, centered_mean, shift, coef, &p);
    for (ptrdiff_t c = 0; c < C; c++) {
        mean[c] = (T)(pivot[c] + centered_mean[c]);
        var[c] = (T)var_d[c];
    }
    bn_scratch_free(scratch, stack_buffer);
    return 0;
}

int F(bnpy_bn_inference)(T *y, const T *x, const T *gamma, const T *beta, const T *mean,
                         const T *var, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                         double epsilon)
{
    bn_plan p;
    double stack_buffer[BN_STACK_DOUBLES];
    ptrdiff_t C = channels;
    if (C <= 0 || outer * inner <= 0)
        return 0;
    bn_make_plan(&p, outer, channels, inner);
    double *scratch = bn_scratch((size_t)(8 * C), stack_buffer);
    if (scratch == NULL)
        return -1;
    double *mean_d = scratch, *scale = mean_d + C, *shift = scale + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */
    for (ptrdiff_t c = 0; c < C; c++) {
        mean_d[c] = (double)mean[c];
        scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd((double)var[c], epsilon);
        shift[c] = beta != NULL ? (double)beta[c] : 0.0;
    }
    F(bn_affine)(y, NULL, x, NULL, scale, NULL, mean_d, shift, coef, &p);
    bn_scratch_free(scratch, stack_buffer);
    return 0;
}

int F(bnpy_bn_backward)(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x, const T *gamma,
                        const T *mean, const T *var, ptrdiff_t outer, ptrdiff_t channels,
                        ptrdiff_t inner, double epsilon)
{
    bn_plan p;
    double stack_buffer[BN_STACK_DOUBLES];
    ptrdiff_t C = channels, m = outer * inner;
    if (C <= 0)
        return 0;
    bn_make_plan(&p, outer, channels, inner);
    double *scratch = bn_scratch((size_t)(2 * p.chunks * C + 11 * C), stack_buffer);
    if (scratch == NULL)
        return -1;
    double *chunk_dy = scratch, *chunk_dyxc = chunk_dy + p.chunks * C;
    double *sum_dy = chunk_dyxc + p.chunks * C, *sum_dyxc = sum_dy + C, *mean_d = sum_dyxc + C,
           *a = mean_d + C, *b = a + C, *shift = b + C;
    T *coef = (T *)(shift + C); /* 5·C values of T for bn_affine */
    for (ptrdiff_t c = 0; c < C; c++)
        mean_d[c] = (double)mean[c];
    if (m > 0) {
        F(bn_chunk_grad_sums)(chunk_dy, chunk_dyxc, NULL, dy, x, mean_d, NULL, &p);
        bn_merge_chunk_sums(sum_dy, chunk_dy, &p);
        bn_merge_chunk_sums(sum_dyxc, chunk_dyxc, &p);
    } else {
        for (ptrdiff_t c = 0; c < C; c++)
            sum_dy[c] = sum_dyxc[c] = 0.0;
    }
    /* dx = a·(dy − Σdy/m) + b·(x − mean) with a = γ·s, b = −γ·s³·Σdy(x − mean)/m,
     * s = 1/√(var + ε): the compact form γ·s·(dy − Σdy/m − x̂·Σdy·x̂/m) written out. */
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = bn_invstd((double)var[c], epsilon);
        double g = gamma != NULL ? (double)gamma[c] : 1.0;
        double inv_m = m > 0 ? 1.0 / (double)m : 0.0;
        a[c] = g * s;
        b[c] = -g * s * s * s * sum_dyxc[c] * inv_m;
        shift[c] = sum_dy[c] * inv_m; /* the mean of dy */
    }
    if (m > 0)
        F(bn_affine)(dx, dy, x, a, b, NULL, mean_d, shift, coef, &p);
    for (ptrdiff_t c = 0; c < C; c++) {
        dgamma[c] = (T)(sum_dyxc[c] * bn_invstd((double)var[c], epsilon));
        dbeta[c] = (T)sum_dy[c];
    }
    bn_scratch_free(scratch, stack_buffer);
    return 0;
}

int F(bnpy_bn_inference_backward)(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x,
                                  const T *gamma, const T *mean, const T *var, ptrdiff_t outer,
                                  ptrdiff_t channels, ptrdiff_t inner, double epsilon)
{
    bn_plan p;
    double stack_buffer[BN_STACK_DOUBLES];
    ptrdiff_t C = channels, m = outer * inner;
    if (C <= 0)
        return 0;
    bn_make_plan(&p, outer, channels, inner);
    double *scratch = bn_scratch((size_t)(2 * p.chunks * C + 4 * C), stack_buffer);
    if (scratch == NULL)
        return -1;
    double *chunk_dy = scratch, *chunk_dyxc = chunk_dy + p.chunks * C;
    double *sum_dy = chunk_dyxc + p.chunks * C, *sum_dyxc = sum_dy + C, *mean_d = sum_dyxc + C,
           *scale = mean_d + C;
    for (ptrdiff_t c = 0; c < C; c++) {
        mean_d[c] = (double)mean[c];
        scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd((double)var[c], epsilon);
    }
    if (m > 0) {
        /* One pass: the sums for dγ, dβ and dx = γ/√(var + ε)·dy. */
        F(bn_chunk_grad_sums)(chunk_dy, chunk_dyxc, dx, dy, x, mean_d, scale, &p);
        bn_merge_chunk_sums(sum_dy, chunk_dy, &p);
        bn_merge_chunk_sums(sum_dyxc, chunk_dyxc, &p);
    } else {
        for (ptrdiff_t c = 0; c < C; c++)
            sum_dy[c] = sum_dyxc[c] = 0.0;
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        dgamma[c] = (T)(sum_dyxc[c] * bn_invstd((double)var[c], epsilon));
        dbeta[c] = (T)sum_dy[c];
    }
    bn_scratch_free(scratch, stack_buffer);
    return 0;
}

void F(bnpy_bn_update_moving_stats)(T *moving_mean, T *moving_var, const T *mean, const T *var,
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

#endif /* BN_BODY */
