/* parallel.h: the threading policy of every kernel (internal; kernels include it after kernels.h).
 *
 * One rule for all: a loop touching fewer than BNPY_PARALLEL_MIN_VALUES values runs on the calling
 * thread, outside any OpenMP construct (a parallel region costs microseconds, and on a busy machine
 * a late worker makes a tiny call slow); larger loops run on bnpy_get_num_threads() threads. The
 * serial build (no OpenMP) compiles the same loops without the pragmas. Which thread runs an
 * iteration never changes a result: reductions merge per-chunk partial sums in a fixed order.
 */
#ifndef BNPY_PARALLEL_H
#define BNPY_PARALLEL_H

#include <stddef.h>

#include "kernels.h"

#define BNPY_PARALLEL_MIN_VALUES 65536

/* Threads for a loop touching `work` values: 1 below BNPY_PARALLEL_MIN_VALUES, else the setting. */
static inline int bnpy_threads_for(double work)
{
    return work < (double)BNPY_PARALLEL_MIN_VALUES ? 1 : bnpy_get_num_threads();
}

/* Pragmas for a for-loop on nt threads (nt from bnpy_threads_for): static schedule, static over
 * two collapsed loops, or dynamic one iteration at a time (iterations of uneven cost). In the
 * serial build they expand to a statement that uses nt. */
#ifdef BNPY_OPENMP
#define BNPY_PRAGMA(x) _Pragma(#x)
#define BNPY_OMP_FOR(nt) BNPY_PRAGMA(omp parallel for schedule(static) num_threads(nt))
#define BNPY_OMP_FOR2(nt) BNPY_PRAGMA(omp parallel for collapse(2) schedule(static) num_threads(nt))
#define BNPY_OMP_FOR_DYNAMIC(nt) BNPY_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(nt))
#else
#define BNPY_OMP_FOR(nt) (void)(nt);
#define BNPY_OMP_FOR2(nt) (void)(nt);
#define BNPY_OMP_FOR_DYNAMIC(nt) (void)(nt);
#endif

/* body(ctx, i) for i in [0, n): on `threads` threads taking `grain` iterations at a time (dynamic
 * schedule: a busy core must not hold up the whole loop) when fork is true, else plainly on the
 * calling thread, outside any OpenMP construct (even a region that does not fork, an if(0)
 * clause, costs libgomp a team set-up). */
static inline void bnpy_parallel_for(ptrdiff_t n, int fork, int threads, ptrdiff_t grain,
                                     void (*body)(void *ctx, ptrdiff_t i), void *ctx)
{
#ifdef BNPY_OPENMP
    if (fork) {
#pragma omp parallel for schedule(dynamic, grain) num_threads(threads)
        for (ptrdiff_t i = 0; i < n; i++)
            body(ctx, i);
        return;
    }
#else
    (void)fork;
    (void)threads;
    (void)grain;
#endif
    for (ptrdiff_t i = 0; i < n; i++)
        body(ctx, i);
}

#endif /* BNPY_PARALLEL_H */
