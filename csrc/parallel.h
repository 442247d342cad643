/* parallel.h: the threading policy of every kernel (internal; kernels include it after kernels.h).
 *
 * One rule for all: a loop touching fewer than BNPY_PARALLEL_MIN_VALUES values runs on the calling
 * thread, outside any OpenMP construct (a parallel region costs microseconds, and on a busy machine
 * a late worker makes a tiny call slow); larger loops run on bnpy_get_num_threads() threads, except
 * that bnpy_parallel_for keeps to the calling thread for a while after its caller had to wait for
 * a late team (see bnpy_serial_until). The serial build (no OpenMP) compiles the same loops without the pragmas. Which thread runs an
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

#ifdef BNPY_OPENMP
#include <omp.h>

/* Until this time (omp_get_wtime seconds) bnpy_parallel_for runs its loops on the calling thread:
 * the last forked loop's caller waited for its team longer than it worked, and longer than a
 * worker takes to wake. A parallel region ends
 * only when every thread of the team has arrived, and on a machine whose cores other processes
 * hold, a worker can wait a scheduler time slice (milliseconds) before it runs at all: the caller
 * then does all the work and waits on top, and two threads are many times slower than one. Which
 * thread runs an iteration never changes a result, so this only trades speed. */
static double bnpy_serial_until = 0.0;
#define BNPY_SERIAL_BACKOFF 0.05 /* seconds on one thread after such a loop */
/* A wait shorter than this is a sleeping worker waking up (tens of microseconds, more on a busy
 * machine), which the next loops would pay again; a scheduler time slice is milliseconds. */
#define BNPY_LATE_TEAM_SECONDS 0.5e-3

/* Any thread may read or set it (concurrent callers): atomically, where the compiler can. */
static inline double bnpy_serial_until_get(void)
{
    double t;
#if defined(__GNUC__)
    __atomic_load(&bnpy_serial_until, &t, __ATOMIC_RELAXED);
#else
    t = bnpy_serial_until;
#endif
    return t;
}

static inline void bnpy_serial_until_set(double t)
{
#if defined(__GNUC__)
    __atomic_store(&bnpy_serial_until, &t, __ATOMIC_RELAXED);
#else
    bnpy_serial_until = t;
#endif
}
#endif

/* body(ctx, i) for i in [0, n): on `threads` threads taking `grain` iterations at a time (dynamic
 * schedule: a busy core must not hold up the whole loop) when fork is true and the last forked
 * loop did not wait for a late team (see bnpy_serial_until), else plainly on the calling thread,
 * outside any OpenMP construct (even a region that does not fork, an if(0) clause, costs libgomp
 * a team set-up). */
static inline void bnpy_parallel_for(ptrdiff_t n, int fork, int threads, ptrdiff_t grain,
                                     void (*body)(void *ctx, ptrdiff_t i), void *ctx)
{
#ifdef BNPY_OPENMP
    double start = fork ? omp_get_wtime() : 0.0;
    if (fork && start >= bnpy_serial_until_get()) {
        double caller_done = start;
#pragma omp parallel num_threads(threads)
        {
#pragma omp for schedule(dynamic, grain) nowait
            for (ptrdiff_t i = 0; i < n; i++)
                body(ctx, i);
            if (omp_get_thread_num() == 0)
                caller_done = omp_get_wtime();
        }
        double end = omp_get_wtime();
        double waited = end - caller_done;
        if (waited > caller_done - start && waited > BNPY_LATE_TEAM_SECONDS)
            bnpy_serial_until_set(end + BNPY_SERIAL_BACKOFF);
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
