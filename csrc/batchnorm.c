/* batchnorm.c: Batch Normalization kernels (Ioffe & Szegedy 2015) on contiguous (outer, C, inner)
 * blocks, float32 and float64 from one type-generic body; statistics summed in T over short
 * blocks whose sums add up in double, gradient sums in double term by term.
 *
 * Files, by pass: this one holds what does not depend on T (the plan of a call, the merges) and
 * instantiates bn_typed.h twice, with T = float and T = double, so each kernel has one body:
 * bn_stats.h (statistics), bn_grad.h (gradient sums), bn_affine.h (elementwise passes) and
 * bn_entry.h (the entry points of kernels.h, composed of those passes). Per channel c, with
 * m = outer * inner values:
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
 * The hot loops are BNPY_HOT (simd.h): compiled for AVX2 and for the baseline, picked at load time.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Let a·b + c contract to one fused multiply-add where the clone has FMA (-std=c11 turns that
 * off): fewer operations in the gradient sums and the elementwise passes, and one rounding less.
 * Before simd.h, so that its always-inlined helpers are compiled under the same options. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "bn_chan.h"
#include "kernels.h"
#include "parallel.h"
#include "simd.h"

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
 * (see bn_affine_rows_of_kind): the sweeps win while the tensor fits in the last-level cache, the
 * flat run once it streams from memory; the crossover measured is in docs/batchnorm.md. */
#define BN_FLAT_MIN_BYTES (6.0 * 1024 * 1024)
/* Tensors of at least this many bytes (channels-last, C a multiple of the vector width) are
 * written by the training passes with non-temporal stores (see bn_affine_rows_of_kind): a step's
 * four such arrays then fill half of a 32 MiB L3 shared with other processes, its output is
 * evicted before it is read again, and an ordinary store would first read each line and evict
 * inputs the next pass reads (docs/performance.md has the measurements). */
#define BN_STREAM_MIN_BYTES (3.5 * 1024 * 1024)
/* Values per channel averaged into its pivot (see bn_pivots). */
#define BN_PIVOT_VALUES 16
/* Scratch of at most this many doubles lives on the stack (no malloc for small problems). */
#define BN_STACK_DOUBLES 512

/* The statistics' four-row sweeps in the channels-last layout prefetch the rows this far ahead,
 * because hardware prefetchers do not keep up with four interleaved row streams. Only there: in
 * the gradient sums (eight streams) software prefetch slowed the pass, and the elementwise sweeps
 * gained nothing (docs/batchnorm.md, "Tuning measurements"). */
#define BN_PREFETCH_ROWS 8

/* Prefetch the four rows [row + BN_PREFETCH_ROWS, + 4) of `base` (rows of C values of `elem`
 * bytes) at column `col`, once per 64-byte line, when they are before row `end`. */
BNPY_ALWAYS_INLINE void bn_prefetch_sweep(const void *base, ptrdiff_t row, ptrdiff_t end,
                                          ptrdiff_t C, ptrdiff_t col, size_t elem)
{
#if defined(__GNUC__)
    if (row + BN_PREFETCH_ROWS + 4 <= end && (col * (ptrdiff_t)elem) % 64 == 0) {
        const char *f = (const char *)base + ((row + BN_PREFETCH_ROWS) * C + col) * (ptrdiff_t)elem;
        ptrdiff_t s = C * (ptrdiff_t)elem;
        __builtin_prefetch(f);
        __builtin_prefetch(f + s);
        __builtin_prefetch(f + 2 * s);
        __builtin_prefetch(f + 3 * s);
    }
#else
    (void)base, (void)row, (void)end, (void)C, (void)col, (void)elem;
#endif
}

/* How one call cuts its (outer, C, inner) block into work, from the sizes alone. */
typedef struct {
    ptrdiff_t outer, channels, inner;
    ptrdiff_t chunks;      /* chunks of the outer range, each with its own partial sums */
    ptrdiff_t block_width; /* channels per channel block: BN_CHANNEL_BLOCK, BN_SEGMENT_CHANNELS */
    ptrdiff_t channel_blocks; /* blocks of block_width channels; a reduction unit: (chunk, block) */
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
    p->parallel = p->threads > 1 && total >= BNPY_PARALLEL_MIN_VALUES;
}

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

/* One work unit of a reduction: chunk k (outer indices [r0, r1)), channels [c0, c0 + cw). */
typedef struct {
    ptrdiff_t k, c0, cw, r0, r1;
} bn_unit;

static inline bn_unit bn_unit_at(const bn_plan *p, ptrdiff_t u)
{
    bn_unit w;
    w.k = u / p->channel_blocks;
    w.c0 = (u % p->channel_blocks) * p->block_width;
    w.cw = p->channels - w.c0 < p->block_width ? p->channels - w.c0 : p->block_width;
    w.r0 = bn_chunk_start(p, w.k);
    w.r1 = bn_chunk_start(p, w.k + 1);
    return w;
}

/* unit(ctx, u) for every unit u of a reduction, in parallel when the plan says so. */
static void bn_for_each_unit(const bn_plan *p, void (*unit)(void *ctx, ptrdiff_t u), void *ctx)
{
    ptrdiff_t units = bn_reduce_units(p);
    bnpy_parallel_for(units, p->parallel && units > 1, p->threads, bn_grain_for(p, units), unit,
                      ctx);
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

/* Which pass bn_affine runs: the training backward (u = dy), the forward (with a pivot), or the
 * inference forward. */
enum { BN_AFFINE_BACKWARD = 0, BN_AFFINE_FORWARD = 1, BN_AFFINE_INFERENCE = 2 };

/* Scratch of n doubles: the caller's stack buffer when it fits, else malloc (NULL if that fails). */
static double *bn_scratch(size_t n, double *stack_buffer)
{
    return n <= BN_STACK_DOUBLES ? stack_buffer : (double *)malloc(n * sizeof(double));
}

/* The plan of a call and its scratch: `chunk_arrays` arrays of chunks·C doubles (per-chunk sums)
 * and `channel_arrays` of C (NULL if that cannot be allocated). */
static double *bn_begin(bn_plan *p, double *stack_buffer, ptrdiff_t outer, ptrdiff_t channels,
                        ptrdiff_t inner, ptrdiff_t chunk_arrays, ptrdiff_t channel_arrays)
{
    bn_make_plan(p, outer, channels, inner);
    return bn_scratch((size_t)((chunk_arrays * p->chunks + channel_arrays) * channels),
                      stack_buffer);
}

static void bn_scratch_free(double *scratch, double *stack_buffer)
{
    if (scratch != stack_buffer)
        free(scratch);
}

/* One entry point's plan and scratch, the scratch on the stack when it fits. */
typedef struct {
    bn_plan p;
    double *scratch;
    double stack_buffer[BN_STACK_DOUBLES];
} bn_call;

/* Starts an entry point (see bn_begin): 1 when c is ready; 0 when there is nothing to compute (no
 * channel, or, when values_needed, no value per channel); -1 when the scratch cannot be
 * allocated. A ready call ends with bn_call_end. */
static int bn_call_begin(bn_call *c, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                         int values_needed, ptrdiff_t chunk_arrays, ptrdiff_t channel_arrays)
{
    if (channels <= 0 || (values_needed && outer * inner <= 0))
        return 0;
    c->scratch =
        bn_begin(&c->p, c->stack_buffer, outer, channels, inner, chunk_arrays, channel_arrays);
    return c->scratch != NULL ? 1 : -1;
}

static void bn_call_end(bn_call *c)
{
    bn_scratch_free(c->scratch, c->stack_buffer);
}

/* Whether any of the n values of v (none if v is NULL) is NaN. */
static inline int bn_any_nan(const double *v, ptrdiff_t n)
{
    int any = 0;
    for (ptrdiff_t i = 0; v != NULL && i < n; i++)
        any |= v[i] != v[i];
    return any;
}

/* Chan's merge of a block (n_b values, mean_b, M2_b) into the running (n_a, mean_a, M2_a). */
static inline void bn_chan_merge(double *n_a, double *mean_a, double *m2_a, double n_b,
                                 double mean_b, double m2_b)
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
        n_a = bn_chan_merge_channels(mean, var, chunk_mean + k * C, chunk_m2 + k * C, n_a, n_b, C);
    }
    bn_m2_to_var(var, n_a, C);
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

/* ---- the passes and entry points, once per type (bn_typed.h reads BN_PICK) --------------- */

#define BN_PICK(f32, f64) f32
#include "bn_typed.h"
#undef BN_PICK
#define BN_PICK(f32, f64) f64
#include "bn_typed.h"
#undef BN_PICK
