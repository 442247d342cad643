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
 * Accuracy: the local statistics are two passes in double per chunk (the chunk's mean, then
 * Σ(x − mean) and Σ(x − mean)² about it, the first correcting the mean), so a large offset loses
 * nothing; the elementwise passes subtract the float64 mean from x converted to double (the
 * ordinary inference kernel takes the mean in T, one rounding of |mean| in float32).
 *
 * Threads: the outer range is cut into chunks whose number depends on the sizes alone, each chunk
 * keeps its own partial sums, and the chunks are merged in order by one thread, so the results
 * are bitwise the same for every thread count. The elementwise passes are split freely.
 *
 * Compiled once, including itself twice through twin.h: float (_f32) and double (_f64).
 */
#ifndef BNPY_TWIN_BODY

#include <math.h>
#include <stdlib.h>

#include "bn_chan.h"
#include "kernels.h"
#include "parallel.h"

/* Values per chunk of the outer range at least (small inputs are one chunk), at most this many
 * chunks (the scratch and the final merge grow with it). */
#define BN_SYNC_CHUNK_VALUES 32768
#define BN_SYNC_MAX_CHUNKS 64

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

/* The scratch of an elementwise phase, `arrays` arrays of C doubles, into *scratch (to free): 1
 * when ready, 0 when there is nothing to compute (no channel or no value), -1 when it cannot be
 * allocated. */
static int bn_sync_scratch(double **scratch, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                           ptrdiff_t arrays)
{
    if (channels <= 0 || outer * inner <= 0)
        return 0;
    *scratch = malloc((size_t)(arrays * channels) * sizeof(double));
    return *scratch != NULL ? 1 : -1;
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

/* ---- local statistics ----------------------------------------------------------------------- */

struct SUF(bn_sync_stats_job) {
    double *chunk_mean, *chunk_m2, *chunk_lin; /* (chunks, C) each */
    const T *x;
    const bn_sync_plan *p; /* p and parts: set by bn_sync_affine */
};

/* Σ over the values of channel c in outer indices [r0, r1) of (x − center[c]) into lin[c] and of
 * its square into sq[c] (sq NULL: Σ(x − center) alone), added to what they hold. The channels-last
 * layout (inner == 1) walks rows with the channel innermost, a loop that vectorises. */
static void SUF(bn_sync_center_sums)(double *lin, double *sq, const T *x, const double *center,
                                     ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t C, ptrdiff_t L)
{
    if (L == 1) {
        for (ptrdiff_t r = r0; r < r1; r++) {
            const T *row = x + r * C;
            if (sq == NULL)
                for (ptrdiff_t c = 0; c < C; c++)
                    lin[c] += (double)row[c] - center[c];
            else
                for (ptrdiff_t c = 0; c < C; c++) {
                    double d = (double)row[c] - center[c];
                    lin[c] += d;
                    sq[c] += d * d;
                }
        }
        return;
    }
    for (ptrdiff_t r = r0; r < r1; r++)
        for (ptrdiff_t c = 0; c < C; c++) {
            const T *v = x + (r * C + c) * L;
            double mc = center[c], s = 0.0, q = 0.0;
            for (ptrdiff_t i = 0; i < L; i++) {
                double d = (double)v[i] - mc;
                s += d;
                q += d * d;
            }
            lin[c] += s;
            if (sq != NULL)
                sq[c] += q;
        }
}

/* Chunk k: mean and M2 of each channel over its outer indices, two passes in double: the mean,
 * then Σ(x − mean), the rounding left in the mean, and Σ(x − mean)² about it. */
static void SUF(bn_sync_stats_chunk)(void *ctx, ptrdiff_t k)
{
    const struct SUF(bn_sync_stats_job) *j = ctx;
    const bn_sync_plan *p = j->p;
    const ptrdiff_t C = p->channels, L = p->inner;
    const ptrdiff_t r0 = bn_sync_chunk_start(p, k), r1 = bn_sync_chunk_start(p, k + 1);
    double *mean = j->chunk_mean + k * C, *m2 = j->chunk_m2 + k * C, *lin = j->chunk_lin + k * C;
    const double n = (double)((r1 - r0) * L);
    for (ptrdiff_t c = 0; c < C; c++)
        mean[c] = m2[c] = lin[c] = 0.0;
    if (n == 0.0)
        return;
    SUF(bn_sync_center_sums)(lin, NULL, j->x, mean, r0, r1, C, L); /* Σx: the center is 0 */
    for (ptrdiff_t c = 0; c < C; c++) {
        mean[c] = lin[c] / n;
        lin[c] = 0.0;
    }
    SUF(bn_sync_center_sums)(lin, m2, j->x, mean, r0, r1, C, L);
    for (ptrdiff_t c = 0; c < C; c++) {
        double offset = lin[c] / n, q = m2[c] - lin[c] * offset;
        mean[c] += offset;
        m2[c] = q < 0.0 ? 0.0 : q; /* a NaN stays */
    }
}

int SUF(bnpy_bn_local_stats)(double *mean, double *m2, const T *x, ptrdiff_t outer,
                             ptrdiff_t channels, ptrdiff_t inner)
{
    const ptrdiff_t C = channels;
    if (C <= 0)
        return 0;
    bn_sync_plan p = bn_sync_make_plan(outer, channels, inner);
    double *scratch = malloc((size_t)((3 * C + 1) * p.chunks) * sizeof(double));
    if (scratch == NULL)
        return -1;
    double *chunk_counts = scratch + 3 * p.chunks * C, total;
    struct SUF(bn_sync_stats_job)
        job = {scratch, scratch + p.chunks * C, scratch + 2 * p.chunks * C, x, &p};
    bnpy_parallel_for(p.chunks, p.parallel, p.threads, 1, SUF(bn_sync_stats_chunk), &job);
    for (ptrdiff_t k = 0; k < p.chunks; k++)
        chunk_counts[k] =
            (double)((bn_sync_chunk_start(&p, k + 1) - bn_sync_chunk_start(&p, k)) * inner);
    /* the chunks merged in order, as shards are; the variance times the count is M2 again */
    bnpy_bn_merge_stats(&total, mean, m2, chunk_counts, job.chunk_mean, job.chunk_m2, p.chunks, C);
    for (ptrdiff_t c = 0; c < C; c++)
        m2[c] *= total;
    free(scratch);
    return 0;
}

/* ---- gradient sums -------------------------------------------------------------------------- */

struct SUF(bn_sync_grad_job) {
    double *chunk_dy, *chunk_dyxc; /* (chunks, C) */
    const T *dy, *x;
    const double *mean;
    const bn_sync_plan *p; /* p and parts: set by bn_sync_affine */
};

static void SUF(bn_sync_grad_chunk)(void *ctx, ptrdiff_t k)
{
    const struct SUF(bn_sync_grad_job) *j = ctx;
    const bn_sync_plan *p = j->p;
    const ptrdiff_t C = p->channels, L = p->inner;
    const ptrdiff_t r0 = bn_sync_chunk_start(p, k), r1 = bn_sync_chunk_start(p, k + 1);
    double *sum_dy = j->chunk_dy + k * C, *sum_dyxc = j->chunk_dyxc + k * C;
    for (ptrdiff_t c = 0; c < C; c++)
        sum_dy[c] = sum_dyxc[c] = 0.0;
    if (L == 1) { /* channels last: the channel innermost, a loop that vectorises */
        for (ptrdiff_t r = r0; r < r1; r++) {
            const T *g = j->dy + r * C, *v = j->x + r * C;
            for (ptrdiff_t c = 0; c < C; c++) {
                double gc = (double)g[c];
                sum_dy[c] += gc;
                sum_dyxc[c] += gc * ((double)v[c] - j->mean[c]);
            }
        }
        return;
    }
    for (ptrdiff_t r = r0; r < r1; r++)
        for (ptrdiff_t c = 0; c < C; c++) {
            const T *g = j->dy + (r * C + c) * L, *v = j->x + (r * C + c) * L;
            double mc = j->mean[c], s = 0.0, q = 0.0;
            for (ptrdiff_t i = 0; i < L; i++) {
                double gi = (double)g[i];
                s += gi;
                q += gi * ((double)v[i] - mc);
            }
            sum_dy[c] += s;
            sum_dyxc[c] += q;
        }
}

int SUF(bnpy_bn_grad_sums)(double *sum_dy, double *sum_dyxc, const T *dy, const T *x,
                           const double *mean, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner)
{
    const ptrdiff_t C = channels;
    if (C <= 0)
        return 0;
    bn_sync_plan p = bn_sync_make_plan(outer, channels, inner);
    double *scratch = malloc((size_t)(2 * p.chunks * C) * sizeof(double));
    if (scratch == NULL)
        return -1;
    struct SUF(bn_sync_grad_job) job = {scratch, scratch + p.chunks * C, dy, x, mean, &p};
    bnpy_parallel_for(p.chunks, p.parallel, p.threads, 1, SUF(bn_sync_grad_chunk), &job);
    for (ptrdiff_t c = 0; c < C; c++)
        sum_dy[c] = sum_dyxc[c] = 0.0;
    for (ptrdiff_t k = 0; k < p.chunks; k++) /* in order: the same bits for any thread count */
        for (ptrdiff_t c = 0; c < C; c++) {
            sum_dy[c] += job.chunk_dy[k * C + c];
            sum_dyxc[c] += job.chunk_dyxc[k * C + c];
        }
    free(scratch);
    return 0;
}

/* ---- elementwise passes --------------------------------------------------------------------
 * out = (u − u_mean)·a + (x − mean)·b + shift per channel, all in double: the forward is
 * u = NULL, a = 0, b = γ·s, shift = β; the backward u = dy, a = γ·s, u_mean = S1/m,
 * b = −γ·s³·S2/m, shift = 0. One pass, split over the outer range (any split gives the same
 * values); out may be x or u itself (each element is written after it is read). */

struct SUF(bn_sync_affine_job) {
    T *out;
    const T *u, *x;
    const double *u_mean, *a, *mean, *b, *shift; /* (C,) each; u_mean, a unused when u is NULL */
    const bn_sync_plan *p;                       /* p and parts: set by bn_sync_affine */
    ptrdiff_t parts;
};

static void SUF(bn_sync_affine_part)(void *ctx, ptrdiff_t part)
{
    const struct SUF(bn_sync_affine_job) *j = ctx;
    const bn_sync_plan *p = j->p;
    const ptrdiff_t C = p->channels, L = p->inner;
    const ptrdiff_t r0 = part * p->outer / j->parts, r1 = (part + 1) * p->outer / j->parts;
    if (L == 1) { /* channels last: the channel innermost, a loop that vectorises */
        for (ptrdiff_t r = r0; r < r1; r++) {
            T *out = j->out + r * C;
            const T *x = j->x + r * C;
            if (j->u == NULL)
                for (ptrdiff_t c = 0; c < C; c++)
                    out[c] = (T)(((double)x[c] - j->mean[c]) * j->b[c] + j->shift[c]);
            else
                for (ptrdiff_t c = 0; c < C; c++)
                    out[c] = (T)(((double)j->u[r * C + c] - j->u_mean[c]) * j->a[c] +
                                 ((double)x[c] - j->mean[c]) * j->b[c] + j->shift[c]);
        }
        return;
    }
    for (ptrdiff_t r = r0; r < r1; r++)
        for (ptrdiff_t c = 0; c < C; c++) {
            const ptrdiff_t at = (r * C + c) * L;
            const double mc = j->mean[c], bc = j->b[c], sc = j->shift[c];
            if (j->u == NULL) {
                for (ptrdiff_t i = 0; i < L; i++)
                    j->out[at + i] = (T)(((double)j->x[at + i] - mc) * bc + sc);
            } else {
                const double uc = j->u_mean[c], ac = j->a[c];
                for (ptrdiff_t i = 0; i < L; i++)
                    j->out[at + i] = (T)(((double)j->u[at + i] - uc) * ac +
                                         ((double)j->x[at + i] - mc) * bc + sc);
            }
        }
}

/* The pass of job (its plan and parts set here) over the (outer, channels, inner) block. */
static void SUF(bn_sync_affine)(struct SUF(bn_sync_affine_job) * job, ptrdiff_t outer,
                                ptrdiff_t channels, ptrdiff_t inner)
{
    const bn_sync_plan p = bn_sync_make_plan(outer, channels, inner);
    ptrdiff_t parts = p.threads > 1 ? 16 * (ptrdiff_t)p.threads : 1;
    job->p = &p;
    job->parts = parts < p.outer ? parts : (p.outer > 0 ? p.outer : 1);
    bnpy_parallel_for(job->parts, p.threads > 1 && job->parts > 1, p.threads, 1,
                      SUF(bn_sync_affine_part), job);
}

int SUF(bnpy_bn_normalize)(T *y, const T *x, const T *gamma, const T *beta, const double *mean,
                           const double *var, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                           double epsilon)
{
    const ptrdiff_t C = channels;
    double *scale;
    int ready = bn_sync_scratch(&scale, outer, channels, inner, 2);
    if (ready <= 0)
        return ready;
    double *shift = scale + C;
    for (ptrdiff_t c = 0; c < C; c++) {
        scale[c] = (gamma != NULL ? (double)gamma[c] : 1.0) * bn_invstd(var[c], epsilon);
        shift[c] = beta != NULL ? (double)beta[c] : 0.0;
    }
    struct SUF(bn_sync_affine_job) job = {y, NULL, x, NULL, NULL, mean, scale, shift, NULL, 0};
    SUF(bn_sync_affine)(&job, outer, channels, inner);
    free(scale);
    return 0;
}

int SUF(bnpy_bn_backward_apply)(T *dx, const T *dy, const T *x, const T *gamma, const double *mean,
                                const double *var, const double *sum_dy, const double *sum_dyxc,
                                double count, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                                double epsilon)
{
    const ptrdiff_t C = channels;
    double *scratch;
    int ready = bn_sync_scratch(&scratch, outer, channels, inner, 4);
    if (ready <= 0)
        return ready;
    double *a = scratch, *b = a + C, *dy_mean = b + C, *zero = dy_mean + C;
    const double inv_m = count > 0.0 ? 1.0 / count : 0.0;
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = bn_invstd(var[c], epsilon), g = gamma != NULL ? (double)gamma[c] : 1.0;
        a[c] = g * s;
        b[c] = -g * s * s * s * sum_dyxc[c] * inv_m;
        dy_mean[c] = sum_dy[c] * inv_m;
        zero[c] = 0.0;
    }
    struct SUF(bn_sync_affine_job) job = {dx, dy, x, dy_mean, a, mean, b, zero, NULL, 0};
    SUF(bn_sync_affine)(&job, outer, channels, inner);
    free(scratch);
    return 0;
}

#endif /* BNPY_TWIN_BODY */
