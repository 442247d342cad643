/* batchnorm.c: Batch Normalization kernels (Ioffe & Szegedy 2015) on contiguous (outer, C, inner)
 * blocks, float32 and float64 from one type-generic body; statistics summed in T over short
 * blocks whose sums add up in double, gradient sums in double term by term.
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
 * Statistics are numerically stable without a second read of x from memory: each channel is
 * summed about a shift near its mean (a pivot, the rounded mean of its first values) in T over
 * short blocks that are then added in double (see "reductions"); a block whose mean is far from
 * the shift, or whose sums near T's range limits, is summed again exactly in double, and the
 * pieces merge with Chan's formula
 *   δ = mean_b − mean_a,  mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n.
 * E[x²] − E[x]² is never used. The mean is carried relative to the pivot, so that
 * y = ((x − pivot) − (mean − pivot))·scale + β keeps every digit at large offsets.
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
#include <stdint.h>
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

/* Let a·b + c contract to one fused multiply-add where the clone has FMA (-std=c11 turns that
 * off): fewer operations in the gradient sums and the elementwise passes, and one rounding less. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(__clang__) && __GNUC__ >= 12
/* x86-64-v3: AVX2 with FMA (GCC 12 knows the level; see the pragma above). */
#define BN_HOT __attribute__((target_clones("arch=x86-64-v3", "default"), noinline))
#elif __has_attribute(target_clones)
#define BN_HOT __attribute__((target_clones("avx2", "default"), noinline))
#endif
#endif
#ifndef BN_HOT
#define BN_HOT
#endif

#ifdef BNPY_OPENMP
/* The for-loop given as the argument: in parallel when `bn_fork` (int) is true, on `bn_threads`
 * (int) threads taking `bn_grain` iterations at a time; otherwise plainly, outside any OpenMP
 * construct: even a region that does not fork (an if(0) clause) costs libgomp a team set-up,
 * 0.3 us a pass, which was half of a (32, 10) inference call. Dynamic scheduling: on a shared
 * machine a busy core must not hold up the whole pass; which thread runs an iteration never
 * changes the result. */
#define BN_PARALLEL_LOOP(...)                                                                     \
    do {                                                                                          \
        if (bn_fork) {                                                                            \
            _Pragma("omp parallel for schedule(dynamic, bn_grain) num_threads(bn_threads)")       \
            __VA_ARGS__                                                                           \
        } else {                                                                                  \
            __VA_ARGS__                                                                           \
        }                                                                                         \
    } while (0)
#else
#define BN_PARALLEL_LOOP(...)                                                                     \
    do {                                                                                          \
        __VA_ARGS__                                                                               \
    } while (0)
#endif

/* Values per chunk of the outer range at least (so small inputs are one chunk), and at most this
 * many chunks (the merge and the scratch memory grow with it). */
#define BN_CHUNK_MIN_VALUES 32768
#define BN_MAX_CHUNKS 64
/* The statistics' sums run in T over short blocks (see "reductions" below): rows per block in the
 * rows layout (four rows per sweep: each vector lane adds 8 partial sums of 4 terms, 32 squares
 * in a chain of fused multiply-adds), and values per block of a channels-first segment (four
 * vectors per step: each lane adds 8 partial sums, 8 squares per chain). */
#define BN_BLOCK_ROWS 32
#define BN_SEGMENT_BLOCK 256
/* Channels per channel block in the channels-last (inner == 1) layout: bounds the stack arrays. */
#define BN_CHANNEL_BLOCK 512
/* Channels per channel block in the channels-first layout: a unit walks its rows' segments of
 * these channels in memory order (one channel per unit walked memory with strides of C·L, and
 * per-unit overhead doubled the pass on short segments); 64 leaves parallel units when the
 * batch is small. */
#define BN_SEGMENT_CHANNELS 64
/* Tensors of at least this many bytes take the flat form of the rows layout's elementwise pass
 * (see BN_AFFINE_FLAT): between the L3-resident sizes where the sweeps win and the 12 MB where
 * the flat run does, on this project's 2-core Zen 3 machine. */
#define BN_FLAT_MIN_BYTES (6.0 * 1024 * 1024)
/* Values per channel averaged into its pivot (see bn_pivots). */
#define BN_PIVOT_VALUES 16
/* Fewer values than this run on the calling thread: an OpenMP fork costs microseconds. */
#define BN_PARALLEL_MIN_VALUES 65536
/* Scratch of at most this many doubles lives on the stack (no malloc for small problems). */
#define BN_STACK_DOUBLES 512

/* The statistics' four-row sweeps in the channels-last layout prefetch the rows this far ahead:
 * the hardware prefetchers do not keep up with four interleaved row streams (measured: 0.78x the
 * time at C = 120, 0.88x at 96, 0.93x at 64). The same in the gradient sums (two arrays, eight
 * streams) made them 1.2-1.4x slower, and the elementwise sweeps gained nothing. */
#define BN_PREFETCH_ROWS 8
#if defined(__GNUC__)
/* Prefetch the four rows [row + BN_PREFETCH_ROWS, + 4) of `base` (rows of C values of `elem`
 * bytes) at column `col`, once per 64-byte line, when they are before row `end`. */
#define BN_PREFETCH_SWEEP(base, row, end, C, col, elem)                                           \
    do {                                                                                          \
        if ((row) + BN_PREFETCH_ROWS + 4 <= (end) && ((col) * (elem)) % 64 == 0) {                \
            const char *f_ = (const char *)((base) + ((row) + BN_PREFETCH_ROWS) * (C) + (col));   \
            ptrdiff_t s_ = (C) * (ptrdiff_t)(elem);                                               \
            __builtin_prefetch(f_);                                                               \
            __builtin_prefetch(f_ + s_);                                                          \
            __builtin_prefetch(f_ + 2 * s_);                                                      \
            __builtin_prefetch(f_ + 3 * s_);                                                      \
        }                                                                                         \
    } while (0)
#else
#define BN_PREFETCH_SWEEP(base, row, end, C, col, elem) ((void)0)
#endif

/* How one call cuts its (outer, C, inner) block into work, from the sizes alone. */
typedef struct {
    ptrdiff_t outer, channels, inner;
    ptrdiff_t chunks;         /* chunks of the outer range, each with its own partial sums */
    ptrdiff_t block_width;    /* channels per channel block: BN_CHANNEL_BLOCK, BN_SEGMENT_CHANNELS */
    ptrdiff_t channel_blocks; /* channel blocks of block_width: a reduction's unit is (chunk, block) */
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
    p->block_width = p->rows_layout ? BN_CHANNEL_BLOCK : BN_SEGMENT_CHANNELS;
    p->channel_blocks = (channels + p->block_width - 1) / p->block_width;
    p->threads = bnpy_get_num_threads();
    p->parallel = p->threads > 1 && total >= BN_PARALLEL_MIN_VALUES;
}

/* A reduction's loop over its units, in parallel (dynamic schedule): BODY runs for chunk k,
 * channels [c0, c0 + cw) and outer indices [r0, r1), with C the channel count. */
#define BN_FOR_EACH_UNIT(p, ...)                                                                  \
    do {                                                                                          \
        ptrdiff_t C = (p)->channels, units = bn_reduce_units(p), width = (p)->block_width;        \
        int bn_threads = (p)->threads, bn_fork = (p)->parallel && units > 1;                      \
        ptrdiff_t bn_grain = bn_grain_for((p), units);                                            \
        (void)bn_threads;                                                                         \
        (void)bn_fork;                                                                            \
        (void)bn_grain;                                                                           \
        BN_PARALLEL_LOOP(for (ptrdiff_t u = 0; u < units; u++) {                                  \
            ptrdiff_t k = u / (p)->channel_blocks, c0 = (u % (p)->channel_blocks) * width;        \
            ptrdiff_t cw = C - c0 < width ? C - c0 : width, r0 = bn_chunk_start((p), k);          \
            ptrdiff_t r1 = bn_chunk_start((p), k + 1);                                            \
            __VA_ARGS__                                                                           \
        });                                                                                       \
    } while (0)

/* First outer index of chunk k (k = chunks gives outer). */
static inline ptrdiff_t bn_chunk_start(const bn_plan *p, ptrdiff_t k)
{
    return k * p->outer / p->chunks;
}

/* Number of work units of a reduction: (chunk, channel block). */
static inline ptrdiff_t bn_reduce_units(const bn_plan *p)
{
    return p->chunks * p->channel_blocks;
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

/* Values of `size` bytes from p to the next 32-byte boundary (0 if p is not aligned to `size`). */
static inline ptrdiff_t bn_align_lead(const void *p, size_t size)
{
    size_t past = (size_t)((uintptr_t)p % 32);
    return past % size != 0 ? 0 : (ptrdiff_t)((32 - past) % 32 / size);
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

/* Fold a run (n_run values summed about a shift: d1 = Σd, d2 = Σd², with shift − pivot given) into
 * the running statistics (n_a, mean_a of x − pivot, M2_a). */
static inline void bn_fold_run(double *n_a, double *mean_a, double *m2_a, double n_run, double d1,
                               double d2, double shift_minus_pivot)
{
    if (n_run <= 0.0)
        return;
    double offset = d1 / n_run;
    bn_chan_merge(n_a, mean_a, m2_a, n_run, shift_minus_pivot + offset, d2 - d1 * offset);
}

/* Final merge of the per-chunk statistics, chunk by chunk in order (deterministic). Every channel
 * of a chunk has the same count, so the merge weights are computed once per chunk and the loop
 * over channels has no division and no dependence from one channel to the next. */
static void bn_merge_chunk_stats(double *mean, double *var, const double *chunk_mean,
                                 const double *chunk_m2, const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    for (ptrdiff_t c = 0; c < C; c++) /* chunk 0 as the start */
        mean[c] = chunk_mean[c], var[c] = chunk_m2[c];
    double n_a = (double)(bn_chunk_start(p, 1) * p->inner);
    for (ptrdiff_t k = 1; k < p->chunks; k++) {
        double n_b = (double)((bn_chunk_start(p, k + 1) - bn_chunk_start(p, k)) * p->inner);
        double n = n_a + n_b, w_b = n_b / n, w_ab = n_a * n_b / n;
        const double *mean_k = chunk_mean + k * C, *m2_k = chunk_m2 + k * C;
        for (ptrdiff_t c = 0; c < C; c++) { /* Chan's formula, as bn_chan_merge */
            double delta = mean_k[c] - mean[c];
            mean[c] += delta * w_b;
            var[c] += m2_k[c] + delta * delta * w_ab;
        }
        n_a = n;
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        double v = n_a > 0.0 ? var[c] / n_a : 0.0;
        /* rounding can leave M2 a hair below zero; a NaN (from a NaN or Inf in the channel) stays */
        var[c] = v < 0.0 ? 0.0 : v;
    }
}

/* Sum of the per-chunk partial sums, chunk by chunk in order (deterministic). */
static void bn_merge_chunk_sums(double *sum, const double *chunk_sum, const bn_plan *p)
{
    ptrdiff_t C = p->channels;
    for (ptrdiff_t c = 0; c < C; c++)
        sum[c] = chunk_sum[c];
    for (ptrdiff_t k = 1; k < p->chunks; k++)
        for (ptrdiff_t c = 0; c < C; c++)
            sum[c] += chunk_sum[k * C + c];
}

/* BN_F32: T is float (see "reductions"). BN_T_BIG, BN_T_TINY: a block's sum of squares below
 * BN_T_BIG overflowed nowhere, and one of at least BN_T_TINY lost nothing that counts to
 * subnormals (see BN_STATS_OK). */
#define BN_BODY
#define T float
#define F(name) name##_f32
#define BN_F32 1
#define BN_T_BIG 1e30f
#define BN_T_TINY 1e-30f
#include "batchnorm.c"
#undef T
#undef F
#undef BN_F32
#undef BN_T_BIG
#undef BN_T_TINY
#define T double
#define F(name) name##_f64
#define BN_F32 0
#define BN_T_BIG 1e300
#define BN_T_TINY 1e-290
#include "batchnorm.c"
#undef T
#undef F
#undef BN_F32
#undef BN_T_BIG
#undef BN_T_TINY
#undef BN_BODY

#else /* BN_BODY ------------------------------------------------------------------------------ */

/* ---- reductions ------------------------------------------------------------------------------
 * Statistics: Σd and Σd² with d = x − s, s a shift near the channel's mean, run in T over short
 * blocks (per vector lane, Σd adds at most 8 partial sums of 4 terms; Σd², positive terms whose
 * rounding cannot cancel, at most 32 terms in a chain) that are then added in double. A block's
 * sums are checked first (BN_STATS_OK): its mean within 2σ of the shift, so that the terms of Σd
 * are of the size of σ and Σd² is at most 5 times the block's M2, and no overflow or subnormal
 * loss in T. T rounding then moves the mean by ~1e-7·σ, which is what y depends on, and the
 * variance by ~1e-7 relative (the tests hold them to 1e-6·σ and 1e-5 of a float64 reference). A
 * block that fails (a jump in level, values near T's range limits, a NaN or Inf) is summed again
 * exactly, in double, by bn_exact_block: rare for ordinary data. For float32 data this runs the
 * statistics pass at the width of float32 vectors with no conversion: on this project's Zen 3
 * machine a float32→double conversion costs more than reading the value from L3, and the
 * double-per-term pass ran at 4x a read (now 1.8x).
 *
 * Gradient sums Σdy and Σdy·(x − mean) run in double term by term: their results are compared
 * with their own size (dβ and dγ of a channel can cancel to far below Σ|dy|), which float32 terms
 * cannot promise. For float32 data the second is Σdy·x − mean·Σdy: products of two float32 values
 * are exact in double, so no subtraction is needed before the conversion. */

#ifdef BN_VECTOR
#undef BN_LOAD
#undef BN_STORE
#define BN_LOAD F(bn_load)   /* 4 values of T as 4 doubles */
#define BN_STORE F(bn_store) /* 4 doubles into 4 values of T */
typedef T F(bn_vt) __attribute__((vector_size(32)));
#undef BN_VT
#define BN_VT F(bn_vt) /* 32 bytes of T: 8 floats or 4 doubles */
#define BN_VT_LANES ((ptrdiff_t)(32 / sizeof(T)))
/* The sum of a vector's lanes, as a tree. */
#undef BN_HSUM
#if BN_F32
#define BN_HSUM(v) (((v)[0] + (v)[4]) + ((v)[1] + (v)[5])) + (((v)[2] + (v)[6]) + ((v)[3] + (v)[7]))
#else
#define BN_HSUM(v) (((v)[0] + (v)[2]) + ((v)[1] + (v)[3]))
#endif
#define BN_VT_LOAD(p) __extension__({ BN_VT v_; memcpy(&v_, (p), sizeof v_); v_; })
#define BN_VT_STORE(p, v)                                                                         \
    do {                                                                                          \
        BN_VT w_ = (v);                                                                           \
        memcpy((p), &w_, sizeof w_);                                                              \
    } while (0)
#endif

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
#define BN_STATS_OK(s1, sq, nb)                                                                   \
    (((s1) * (s1) <= (T)0.8 * (nb) * (sq)) & ((sq) <= BN_T_BIG) &                                \
     (((sq) >= BN_T_TINY) | (((sq) == 0) & ((s1) == 0))))

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
static BN_HOT void F(bn_stats_rows)(double *unit_mean, double *unit_m2, const T *x,
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
         * registers measured no faster), four rows per sweep, its sums lin = Σd and sq = Σd² in
         * L1. */
        ptrdiff_t c_vector_end = 0, r = 0;
#ifdef BN_VECTOR
        c_vector_end = cw - cw % BN_VT_LANES;
        for (; r + 4 <= nb; r += 4) {
            const T *p0 = block + r * C, *p1 = p0 + C, *p2 = p1 + C, *p3 = p2 + C;
            for (ptrdiff_t c = 0; c < c_vector_end; c += BN_VT_LANES) {
                BN_PREFETCH_SWEEP(x + c0, rb + r, r1, C, c, sizeof(T));
                BN_VT s = BN_VT_LOAD(shift + c);
                BN_VT a = BN_VT_LOAD(p0 + c) - s, b = BN_VT_LOAD(p1 + c) - s;
                BN_VT e = BN_VT_LOAD(p2 + c) - s, f = BN_VT_LOAD(p3 + c) - s;
                /* A chain that contracts to four fused multiply-adds (5% faster than a tree
                 * of products). */
                BN_VT q = BN_VT_LOAD(sq + c);
                q = a * a + q;
                q = b * b + q;
                q = e * e + q;
                BN_VT_STORE(sq + c, f * f + q);
                BN_VT_STORE(lin + c, BN_VT_LOAD(lin + c) + ((a + b) + (e + f)));
            }
        }
        for (; r < nb; r++) {
            const T *p0 = block + r * C;
            for (ptrdiff_t c = 0; c < c_vector_end; c += BN_VT_LANES) {
                BN_VT a = BN_VT_LOAD(p0 + c) - BN_VT_LOAD(shift + c);
                BN_VT_STORE(sq + c, BN_VT_LOAD(sq + c) + a * a);
                BN_VT_STORE(lin + c, BN_VT_LOAD(lin + c) + a);
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
            all_ok &= BN_STATS_OK(lin[c], sq[c], tnb);
        if (all_ok) { /* the common case, a loop that vectorises */
            for (ptrdiff_t c = 0; c < cw; c++) {
                d1[c] += (double)lin[c];
                d2[c] += (double)sq[c];
            }
            n_seen += dnb;
            continue;
        }
        for (ptrdiff_t c = 0; c < cw; c++) {
            if (BN_STATS_OK(lin[c], sq[c], tnb)) {
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
static BN_HOT void F(bn_stats_segments)(double *unit_mean, double *unit_m2, const T *x,
                                        const double *pivot, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C,
                                        ptrdiff_t c0, ptrdiff_t cw, ptrdiff_t L)
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
#ifdef BN_VECTOR
                /* Four vectors per step: four chains of fused multiply-adds for Σd², a tree of
                 * four for Σd (each lane adds at most 8 partial sums), trees across the lanes. */
                BN_VT zero = {0}, s = zero + sh, q0 = zero, q1 = zero, q2 = zero, q3 = zero;
                BN_VT l0 = zero;
                for (; i + 4 * BN_VT_LANES <= nb; i += 4 * BN_VT_LANES) {
                    BN_VT va = BN_VT_LOAD(p + i) - s, vb = BN_VT_LOAD(p + i + BN_VT_LANES) - s;
                    BN_VT ve = BN_VT_LOAD(p + i + 2 * BN_VT_LANES) - s;
                    BN_VT vf = BN_VT_LOAD(p + i + 3 * BN_VT_LANES) - s;
                    q0 = va * va + q0;
                    q1 = vb * vb + q1;
                    q2 = ve * ve + q2;
                    q3 = vf * vf + q3;
                    l0 += (va + vb) + (ve + vf);
                }
                for (; i + BN_VT_LANES <= nb; i += BN_VT_LANES) {
                    BN_VT va = BN_VT_LOAD(p + i) - s;
                    q0 = va * va + q0;
                    l0 += va;
                }
                q0 = (q0 + q1) + (q2 + q3);
                sq = BN_HSUM(q0);
                lin = BN_HSUM(l0);
#endif
                for (; i < nb; i++) {
                    T d = p[i] - sh;
                    sq += d * d;
                    lin += d;
                }
                if (BN_STATS_OK(lin, sq, (T)nb)) {
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

/* Per-chunk mean of x − pivot and M2 of every channel: chunk_mean, chunk_m2 are (chunks, C). */
static void F(bn_chunk_stats)(double *chunk_mean, double *chunk_m2, const T *x,
                              const double *pivot, const bn_plan *p)
{
    BN_FOR_EACH_UNIT(p, {
        if (p->rows_layout)
            F(bn_stats_rows)(chunk_mean + k * C + c0, chunk_m2 + k * C + c0, x, pivot + c0, r0, r1,
                             C, c0, cw);
        else
            F(bn_stats_segments)(chunk_mean + k * C + c0, chunk_m2 + k * C + c0, x, pivot + c0, r0,
                                 r1, C, c0, cw, p->inner);
    });
}

/* ---- gradient sums: one work unit --------------------------------------------------------
 * Σdy and Σdy·(x − mean) in double; for float32 data the second is Σdy·x − mean·Σdy from exact
 * products (see "reductions" above). With dx, also dx = scale·dy (the inference backward's one
 * pass); dx may be dy or x itself: each element is written after it is read. */

#if BN_F32
#define BN_CENTER(v, m) (v) /* Σdy·x now, minus mean·Σdy at the end of the unit */
#else
#define BN_CENTER(v, m) ((v) - (m))
#endif

/* Rows layout: rows [r0, r1), channels [c0, c0 + cw), sums into unit_dy, unit_dyxc (from c0). */
static BN_HOT void F(bn_grad_sums_rows)(double *out_dy, double *out_dyxc, T *dx, const T *dy,
                                        const T *x, const double *mean, const double *scale,
                                        ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, ptrdiff_t c0,
                                        ptrdiff_t cw)
{
    /* The sums live on this thread's stack and are written out once at the end: the units'
     * outputs are neighbours in shared scratch memory, and updating them in place made the cache
     * line at each boundary bounce between cores (2 threads were 1.2x faster than one). */
    double unit_dy[BN_CHANNEL_BLOCK], unit_dyxc[BN_CHANNEL_BLOCK];
    for (ptrdiff_t c = 0; c < cw; c++)
        unit_dy[c] = unit_dyxc[c] = 0.0;
    const double *m = mean + c0;
    const double *s = scale != NULL ? scale + c0 : NULL;
    ptrdiff_t c_vector_end = 0;
#ifdef BN_VECTOR
    /* Row by row, four rows per sweep (sequential streams; a column-wise walk with the sums in
     * registers measured 1.4x slower), four channels per vector, sums in L1. */
    c_vector_end = cw - cw % 4;
    ptrdiff_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        ptrdiff_t o0 = r * C + c0, o1 = o0 + C, o2 = o1 + C, o3 = o2 + C;
        for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
            bn_vd mc = bn_load_f64(m + c);
            bn_vd g0 = BN_LOAD(dy + o0 + c), g1 = BN_LOAD(dy + o1 + c);
            bn_vd g2 = BN_LOAD(dy + o2 + c), g3 = BN_LOAD(dy + o3 + c);
            bn_vd x0 = BN_CENTER(BN_LOAD(x + o0 + c), mc), x1 = BN_CENTER(BN_LOAD(x + o1 + c), mc);
            bn_vd x2 = BN_CENTER(BN_LOAD(x + o2 + c), mc), x3 = BN_CENTER(BN_LOAD(x + o3 + c), mc);
            (void)mc;
            bn_store_f64(unit_dy + c, bn_load_f64(unit_dy + c) + ((g0 + g1) + (g2 + g3)));
            bn_store_f64(unit_dyxc + c,
                         bn_load_f64(unit_dyxc + c) + ((g0 * x0 + g1 * x1) + (g2 * x2 + g3 * x3)));
            if (dx != NULL) {
                bn_vd sc = bn_load_f64(s + c);
                BN_STORE(dx + o0 + c, g0 * sc);
                BN_STORE(dx + o1 + c, g1 * sc);
                BN_STORE(dx + o2 + c, g2 * sc);
                BN_STORE(dx + o3 + c, g3 * sc);
            }
        }
    }
    for (; r < r1; r++) {
        ptrdiff_t o0 = r * C + c0;
        for (ptrdiff_t c = 0; c < c_vector_end; c += 4) {
            bn_vd mc = bn_load_f64(m + c), g0 = BN_LOAD(dy + o0 + c);
            bn_vd x0 = BN_CENTER(BN_LOAD(x + o0 + c), mc);
            (void)mc;
            bn_store_f64(unit_dy + c, bn_load_f64(unit_dy + c) + g0);
            bn_store_f64(unit_dyxc + c, bn_load_f64(unit_dyxc + c) + g0 * x0);
            if (dx != NULL)
                BN_STORE(dx + o0 + c, g0 * bn_load_f64(s + c));
        }
    }
#endif
    for (ptrdiff_t r = r0; r < r1 && c_vector_end < cw; r++) {
        const T *g_row = dy + r * C + c0, *x_row = x + r * C + c0;
        T *dx_row = dx != NULL ? dx + r * C + c0 : NULL;
        for (ptrdiff_t c = c_vector_end; c < cw; c++) {
            double g = (double)g_row[c];
            unit_dy[c] += g;
            unit_dyxc[c] += g * BN_CENTER((double)x_row[c], m[c]);
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
static BN_HOT void F(bn_grad_sums_segments)(double *out_dy, double *out_dyxc, T *dx, const T *dy,
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
            (void)m;
#ifdef BN_VECTOR
            bn_vd mc = bn_splat(m), sc = bn_splat(sv);
            bn_vd e0 = bn_splat(0), e1 = e0, f0 = e0, f1 = e0;
            (void)mc;
            for (; i + 8 <= L; i += 8) {
                bn_vd g0 = BN_LOAD(g + i), g1 = BN_LOAD(g + i + 4);
                e0 += g0;
                e1 += g1;
                f0 += g0 * BN_CENTER(BN_LOAD(v + i), mc);
                f1 += g1 * BN_CENTER(BN_LOAD(v + i + 4), mc);
                if (d != NULL) {
                    BN_STORE(d + i, g0 * sc);
                    BN_STORE(d + i + 4, g1 * sc);
                }
            }
            t1 = bn_hsum(e0 + e1);
            t2 = bn_hsum(f0 + f1);
#endif
            for (; i < L; i++) {
                double gi = (double)g[i];
                t1 += gi;
                t2 += gi * BN_CENTER((double)v[i], m);
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
#undef BN_CENTER

/* Per-chunk Σdy and Σdy·(x − mean): chunk_dy, chunk_dyxc are (chunks, C). */
static void F(bn_chunk_grad_sums)(double *chunk_dy, double *chunk_dyxc, T *dx, const T *dy,
                                  const T *x, const double *mean, const double *scale,
                                  const bn_plan *p)
{
    BN_FOR_EACH_UNIT(p, {
        if (p->rows_layout)
            F(bn_grad_sums_rows)(chunk_dy + k * C + c0, chunk_dyxc + k * C + c0, dx, dy, x, mean,
                                 scale, r0, r1, C, c0, cw);
        else
            F(bn_grad_sums_segments)(chunk_dy + k * C + c0, chunk_dyxc + k * C + c0, dx, dy, x,
                                     mean, scale, r0, r1, C, c0, cw, p->inner);
    });
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


/* One output value or vector of the pass, K = 0 training backward (u = dy), 1 forward (with a
 * pivot), 2 inference; a macro, so that vectors are compiled inside each target clone. */
#define BN_AFFINE(K, U, V, A, B, P, CC, S)                                                        \
    ((K) == 0 ? ((U) - (S)) * (A) + ((V) - (CC)) * (B)                                            \
              : (K) == 1 ? (((V) - (P)) - (CC)) * (B) + (S) : ((V) - (CC)) * (B) + (S))

/* Rows layout, rows [r, rows_end) of C values for one K, on the shifted pointers out_s, u_s, v_s
 * (see bn_affine_rows): BN_AFFINE_SWEEP(K) rows per sweep, so that each vector of coefficients is
 * loaded once for that many rows. Measured on (32, 16, 16, 96) and (32, 32, 32, 96): four rows
 * make the forward's pass 1.4x faster than one, while the backward's (two inputs) is fastest row
 * by row (four rows make eight concurrent streams, and were up to 1.3x slower once the tensors
 * spill out of L3). */
#define BN_AFFINE_SWEEP(K) ((K) == 0 ? 1 : 4)
#ifdef BN_VECTOR
#define BN_AFFINE_ROWS_VECTOR(K)                                                                  \
    c_tail = C - C % BN_VT_LANES;                                                                 \
    for (; r + BN_AFFINE_SWEEP(K) <= rows_end; r += BN_AFFINE_SWEEP(K)) {                         \
        for (ptrdiff_t c = 0; c < c_tail; c += BN_VT_LANES) {                                     \
            BN_VT av = BN_VT_LOAD(a + c), bv = BN_VT_LOAD(b + c), pv = BN_VT_LOAD(pivot + c);     \
            BN_VT cv = BN_VT_LOAD(center + c), sv = BN_VT_LOAD(shift + c);                        \
            for (ptrdiff_t k = 0; k < BN_AFFINE_SWEEP(K); k++) {                                  \
                ptrdiff_t o = (r + k) * C + c;                                                    \
                BN_VT_STORE(out_s + o, BN_AFFINE(K, BN_VT_LOAD(u_s + o), BN_VT_LOAD(v_s + o), av,   \
                                                 bv, pv, cv, sv));                                \
            }                                                                                     \
        }                                                                                         \
    }
#else
#define BN_AFFINE_ROWS_VECTOR(K)
#endif
/* Rows layout as one flat run of values (C a multiple of the vector width), the coefficients'
 * offset wrapping at C: no per-row work and a purely sequential stream, but the coefficients
 * loaded for every vector. Measured against the sweeps above: 0.66-0.85x the time on tensors of
 * 12 MB and more ((32, 32, 32, 96), (256, 14, 14, 256)), 1.0-1.15x on the L3-resident 3-4 MB
 * ones, where the extra loads count; bn_affine picks it from BN_FLAT_MIN_BYTES. */
#ifdef BN_VECTOR
#define BN_AFFINE_FLAT(K)                                                                         \
    if (flat) {                                                                                   \
        for (ptrdiff_t j = r0 * C, end = rows_end * C, cj = 0; j < end; j += BN_VT_LANES) {       \
            BN_VT_STORE(out_s + j, BN_AFFINE(K, BN_VT_LOAD(u_s + j), BN_VT_LOAD(v_s + j),         \
                                             BN_VT_LOAD(a + cj), BN_VT_LOAD(b + cj),              \
                                             BN_VT_LOAD(pivot + cj), BN_VT_LOAD(center + cj),     \
                                             BN_VT_LOAD(shift + cj)));                            \
            cj = cj + BN_VT_LANES == C ? 0 : cj + BN_VT_LANES;                                    \
        }                                                                                         \
        r = rows_end;                                                                             \
        c_tail = C;                                                                               \
    } else
#else
#define BN_AFFINE_FLAT(K)
#endif
#define BN_AFFINE_ROWS(K)                                                                         \
    do {                                                                                          \
        T *out_s = out + lead;                                                                    \
        const T *u_s = u + lead, *v_s = v + lead;                                                 \
        ptrdiff_t rows_end = lead > 0 ? r1 - 1 : r1, r = r0, c_tail = 0;                          \
        BN_AFFINE_FLAT(K) { BN_AFFINE_ROWS_VECTOR(K) }                                            \
        for (ptrdiff_t q = r0; q < rows_end; q++) {                                               \
            ptrdiff_t c = q < r ? c_tail : 0; /* rows swept above lack only the tail columns */   \
            for (; c < C; c++) {                                                                  \
                ptrdiff_t o = q * C + c;                                                          \
                out_s[o] = BN_AFFINE(K, u_s[o], v_s[o], a[c], b[c], pivot[c], center[c],         \
                                     shift[c]);                                                   \
            }                                                                                     \
        }                                                                                         \
        /* The first `lead` values of row r0 and the rest of row r1 − 1, outside the shifted    \
         * rows: channel c sits at column c − lead (mod C) of the rotated coefficients. */        \
        for (ptrdiff_t c = 0; c < C && lead > 0; c++) {                                           \
            ptrdiff_t o = (c < lead ? r0 : r1 - 1) * C + c;                                       \
            ptrdiff_t j = c < lead ? c + C - lead : c - lead;                                     \
            out[o] = BN_AFFINE(K, u[o], v[o], a[j], b[j], pivot[j], center[j], shift[j]);         \
        }                                                                                         \
    } while (0)

/* Rows layout: rows [r0, r1) of C values (every pointer valid; what `kind` does not use is not
 * read). The vector loops run on "shifted rows" of C values that start `lead` values into each
 * row (lead as bn_align_lead gives it for out, 0 unless C is a multiple of the vector width),
 * so that every store of out is 32-byte aligned: NumPy puts large arrays 16 bytes past a
 * boundary, where every other unaligned store splits a cache line (the forward's pass measured
 * 10% slower, the backward's 20%, on (32, 16, 16, 96)). The coefficients come rotated to match:
 * column j of a shifted row is channel (j + lead) mod C. `flat` as BN_AFFINE_FLAT. */
static BN_HOT void F(bn_affine_rows)(int kind, int flat, ptrdiff_t lead, T *out, const T *u,
                                     const T *v, const T *a, const T *b, const T *pivot,
                                     const T *center, const T *shift, ptrdiff_t r0, ptrdiff_t r1,
                                     ptrdiff_t C)
{
    (void)flat;
    if (kind == 0)
        BN_AFFINE_ROWS(0);
    else if (kind == 1)
        BN_AFFINE_ROWS(1);
    else
        BN_AFFINE_ROWS(2);
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
    /* Rows layout: every row starts at the same offset from a 32-byte boundary when C is a
     * multiple of the vector width; the coefficients are rotated by that lead (bn_affine_rows). */
    ptrdiff_t lead = 0;
#ifdef BN_VECTOR
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
    const T *pv = pivot != NULL ? tp : NULL;
    int kind = u != NULL ? 0 : pivot != NULL ? 1 : 2; /* as in BN_AFFINE */
    int bn_threads = p->threads, bn_fork;
    ptrdiff_t bn_grain;
    (void)bn_threads;
    if (p->rows_layout) {
        ptrdiff_t parts = bn_elementwise_parts(p, p->outer);
        int flat = C % (ptrdiff_t)(32 / sizeof(T)) == 0 &&
                   (double)p->outer * (double)C * sizeof(T) >= BN_FLAT_MIN_BYTES;
        bn_fork = p->parallel && parts > 1;
        bn_grain = 1;
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_LOOP(for (ptrdiff_t q = 0; q < parts; q++) {
            F(bn_affine_rows)(kind, flat, lead, out, u != NULL ? u : v, v, ta, tb, tp, tc, ts,
                              q * p->outer / parts, (q + 1) * p->outer / parts, C);
        });
    } else {
        ptrdiff_t segments = p->outer * C, parts = bn_elementwise_parts(p, segments);
        bn_fork = p->parallel && parts > 1;
        bn_grain = 1;
        (void)bn_fork;
        (void)bn_grain;
        BN_PARALLEL_LOOP(for (ptrdiff_t q = 0; q < parts; q++) {
            F(bn_affine_segments)(out, u, v, ta, tb, pv, tc, ts, q * segments / parts,
                                  (q + 1) * segments / parts, C, p->inner);
        });
    }
}

/* The pivot of each channel: the mean of its first values (at most BN_PIVOT_VALUES of them: the
 * first rows, or the start of the first segment), rounded to T. Close to the channel's mean
 * (within ~σ/4 for 16 values), it is also the statistics' first shift, so that the first block
 * of a unit rarely needs the exact path (a single value, ~1σ away, sent a third of them there). */
static void F(bn_pivots)(double *pivot, const T *x, const bn_plan *p)
{
    ptrdiff_t C = p->channels, L = p->inner;
    ptrdiff_t n = (p->rows_layout ? p->outer : L) < BN_PIVOT_VALUES ? (p->rows_layout ? p->outer : L)
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

/* NaN in a channel's coefficients (a NaN or Inf among its values, or NaN statistics or
 * parameters given) makes every output of that channel NaN; but which NaN comes out of an
 * operation on two NaNs depends on the order of its operands, which differs between the vector
 * and the scalar loops (chosen by the output's alignment). Such channels are therefore written
 * over with one quiet NaN, so the result does not depend on memory layout. Any of the coefficient
 * arrays may be NULL. */
static void F(bn_fill_nan_channels)(T *out, const double *a, const double *b, const double *pivot,
                                    const double *center, const double *shift, const bn_plan *p)
{
    ptrdiff_t C = p->channels, L = p->inner;
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

    /* The mean is carried relative to a pivot, a T value within the channel's data:
     * mean = pivot + centered_mean with centered_mean of the size of σ, and
     * y = ((x − pivot) − centered_mean)·scale + β, where x − pivot is exact for data far from
     * 0 (1e4 + N(0, 1)). Subtracting one rounded mean instead would cost an ulp of |x| in y. */
    F(bn_pivots)(pivot, x, &p);
    F(bn_chunk_stats)(chunk_mean, chunk_m2, x, pivot, &p);
    bn_merge_chunk_stats(centered_mean, var_d, chunk_mean, chunk_m2, &p);
    for (ptrdiff_t c = 0; c < C; c++) {
        scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd(var_d[c], epsilon);
        shift[c] = beta != NULL ? (double)beta[c] : 0.0;
    }
    F(bn_affine)(y, NULL, x, NULL, scale, pivot, centered_mean, shift, coef, &p);
    F(bn_fill_nan_channels)(y, NULL, scale, pivot, centered_mean, shift, &p);
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
    F(bn_fill_nan_channels)(y, NULL, scale, NULL, mean_d, shift, &p);
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
    if (m > 0) {
        F(bn_affine)(dx, dy, x, a, b, NULL, mean_d, shift, coef, &p);
        F(bn_fill_nan_channels)(dx, a, b, NULL, mean_d, shift, &p);
    }
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
        F(bn_fill_nan_channels)(dx, NULL, scale, NULL, NULL, NULL, &p);
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
