/* threads.c: the one thread-count setting every kernel reads. */
#include "kernels.h"

#ifdef BNPY_OPENMP
#include <omp.h>
#endif

#if defined(BNPY_OPENMP) && defined(__unix__) && defined(__GNUC__)
#include <pthread.h>
/* libgomp's thread pool does not survive fork(): a child that enters a parallel region of more
 * than one thread hangs (multiprocessing's fork start method, a fork()ing data loader). In a
 * forked child every kernel therefore runs on one thread. The handler is registered when the
 * extension is loaded, before any parallel region. */
#define BNPY_FORK_GUARD 1
static volatile int in_forked_child = 0;
static void mark_forked_child(void)
{
    in_forked_child = 1;
}
__attribute__((constructor)) static void register_fork_guard(void)
{
    pthread_atfork(NULL, NULL, mark_forked_child);
}
#endif

#ifdef BNPY_OPENMP
static int num_threads = 0; /* 0: not set yet, use the OpenMP default (OMP_NUM_THREADS) */
#endif

int bnpy_have_openmp(void)
{
#ifdef BNPY_OPENMP
    return 1;
#else
    return 0;
#endif
}

#ifdef BNPY_OPENMP
/* The processors this process may run on (its affinity mask), read when the setting is first
 * used and at every bnpy_set_num_threads (a system call: too slow for every kernel call). */
static int processors = 0;
#endif

int bnpy_num_threads_setting(void)
{
#ifdef BNPY_FORK_GUARD
    if (in_forked_child)
        return 1;
#endif
#ifdef BNPY_OPENMP
    if (num_threads <= 0) {
        num_threads = omp_get_max_threads();
        if (num_threads < 1)
            num_threads = 1;
    }
    return num_threads;
#else
    return 1;
#endif
}

int bnpy_get_num_threads(void)
{
    int setting = bnpy_num_threads_setting();
#ifdef BNPY_OPENMP
    if (processors <= 0) {
        processors = omp_get_num_procs();
        if (processors < 1)
            processors = 1;
    }
    return setting < processors ? setting : processors;
#else
    return setting;
#endif
}

int bnpy_set_num_threads(int n)
{
    int previous = bnpy_num_threads_setting();
#ifdef BNPY_OPENMP
    num_threads = n < 1 ? 1 : n;
    processors = 0; /* read again: the affinity mask may have changed */
#endif
    return previous;
}
