/* threads.c: the one thread-count setting every kernel reads. */
#include "kernels.h"

#ifdef BNPY_OPENMP
#include <omp.h>
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

int bnpy_get_num_threads(void)
{
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

int bnpy_set_num_threads(int n)
{
    int previous = bnpy_get_num_threads();
#ifdef BNPY_OPENMP
    num_threads = n < 1 ? 1 : n;
#endif
    return previous;
}
