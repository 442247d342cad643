/* py_memory.c: a caching allocator for the data of NumPy arrays, active while bnpy's framework
 * trains or predicts (bnpy/_memory.py puts it around Sequential's compute methods).
 *
 * A training step allocates and frees the same large arrays every batch: layer outputs,
 * gradients, matmul results. glibc gives large blocks back to the system when they are freed
 * (mmap'd ones at once, heap ones when the heap's top is trimmed), so every step faults the pages
 * in again and the kernel zeroes each one; the cache leaves none (the page faults and system time
 * of a step, with and without it, are in docs/framework.md).
 *
 * This handler keeps freed blocks of at least CACHE_MIN_BYTES, up to a total of cache_limit(),
 * and hands one out again for the next allocation of exactly its size. NumPy installs it through
 * PyDataMem_SetHandler (NumPy >= 1.22), which is per context (contextvars): only the arrays made
 * inside the framework's calls use it. Every array keeps a reference to the handler that made it,
 * so an array freed later, in any thread, comes back here.
 *
 * What is kept: a block freed while a call is active (`depth` > 0); arrays freed between calls go
 * straight back to malloc. Blocks freed during a call stay for the next one (a loop of
 * train_on_batch calls reuses them as fit does); when an outermost call ends, the blocks that
 * were already cached when it began and that it did not take are released. So between calls the
 * cache holds at most what the last call freed, never more than cache_limit(), and
 * _array_cache_release() empties it. The cache is shared by all threads under a spin lock (held
 * for a few instructions, never across malloc or free).
 */
#include "glue.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#define CACHE_MIN_BYTES ((size_t)1 << 20) /* smaller blocks: glibc's own bins serve them well */
#define CACHE_MAX_BLOCKS 64
#define CACHE_MAX_BYTES ((size_t)512 << 20)  /* and at most 1/8 of the physical memory */
#define HUGEPAGE_MIN_BYTES ((size_t)4 << 20) /* as NumPy's own allocator */

typedef struct {
    void *ptr;
    size_t size;
    unsigned long generation; /* of the outermost call during which it was freed */
} cached_block;

static cached_block cache[CACHE_MAX_BLOCKS]; /* oldest first */
static int cache_count = 0;
static size_t cache_bytes = 0;
static long depth = 0;               /* active calls; blocks are cached only while > 0 */
static size_t limit_bytes = 0;       /* cache_limit(), set by the first _array_cache_enter */
static unsigned long generation = 0; /* outermost calls begun so far */
static atomic_flag cache_lock = ATOMIC_FLAG_INIT;

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&cache_lock, memory_order_acquire))
        ;
}

static void unlock(void)
{
    atomic_flag_clear_explicit(&cache_lock, memory_order_release);
}

#if defined(__unix__) && defined(__GNUC__)
#include <pthread.h>
/* A child forked while another thread held the lock would wait for it forever: the child starts
 * with the lock free (its one thread holds nothing; the cached blocks are valid copies). */
__attribute__((constructor)) static void register_fork_unlock(void)
{
    pthread_atfork(NULL, NULL, unlock);
}
#endif

/* CACHE_MAX_BYTES, or 1/8 of the physical memory if that is less. */
static size_t cache_limit(void)
{
    size_t limit = CACHE_MAX_BYTES;
#if defined(__linux__)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (size_t)pages / 8 < limit / (size_t)page)
        limit = (size_t)pages / 8 * (size_t)page;
#endif
    return limit;
}

/* A cached block of exactly `size` bytes (the most recently freed one), or NULL. */
static void *take(size_t size)
{
    void *p = NULL;
    lock();
    for (int i = cache_count - 1; i >= 0; i--) {
        if (cache[i].size == size) {
            p = cache[i].ptr;
            memmove(cache + i, cache + i + 1, (size_t)(cache_count - 1 - i) * sizeof *cache);
            cache_count--;
            cache_bytes -= size;
            break;
        }
    }
    unlock();
    return p;
}

static void *fresh(size_t size)
{
    void *p = malloc(size ? size : 1);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* Let the kernel back large arrays with huge pages, as NumPy's default allocator does. */
    if (p != NULL && size >= HUGEPAGE_MIN_BYTES) {
        uintptr_t start = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
        madvise((void *)start, size - (start - (uintptr_t)p), MADV_HUGEPAGE);
    }
#endif
    return p;
}

static void *cache_malloc(void *ctx, size_t size)
{
    void *p = size >= CACHE_MIN_BYTES ? take(size) : NULL;
    return p != NULL ? p : fresh(size);
}

static void *cache_calloc(void *ctx, size_t nelem, size_t elsize)
{
    if (elsize != 0 && nelem > SIZE_MAX / elsize)
        return NULL;
    size_t size = nelem * elsize;
    void *p = size >= CACHE_MIN_BYTES ? take(size) : NULL;
    if (p != NULL)
        return memset(p, 0, size);
    return calloc(nelem ? nelem : 1, elsize ? elsize : 1);
}

static void *cache_realloc(void *ctx, void *ptr, size_t new_size)
{
    return realloc(ptr, new_size ? new_size : 1); /* every block is malloc's, cached or not */
}

static void cache_free(void *ctx, void *ptr, size_t size)
{
    if (ptr == NULL)
        return;
    void *evicted[CACHE_MAX_BLOCKS];
    int n_evicted = 0, kept = 0;
    if (size >= CACHE_MIN_BYTES) {
        lock();
        if (depth > 0 && size <= limit_bytes) {
            /* Room for it: the oldest blocks go first. */
            while (cache_count > 0 &&
                   (cache_count == CACHE_MAX_BLOCKS || cache_bytes + size > limit_bytes)) {
                evicted[n_evicted++] = cache[0].ptr;
                cache_bytes -= cache[0].size;
                memmove(cache, cache + 1, (size_t)(cache_count - 1) * sizeof *cache);
                cache_count--;
            }
            cache[cache_count].ptr = ptr;
            cache[cache_count].size = size;
            cache[cache_count].generation = generation;
            cache_count++;
            cache_bytes += size;
            kept = 1;
        }
        unlock();
    }
    for (int i = 0; i < n_evicted; i++)
        free(evicted[i]);
    if (!kept)
        free(ptr);
}

static PyDataMem_Handler cache_handler = {
    "bnpy_array_cache",
    1,
    {NULL, cache_malloc, cache_calloc, cache_realloc, cache_free},
};

static PyObject *handler_capsule = NULL; /* made once; arrays hold references to it */

/* _array_cache_enter() -> previous handler: install the cache for the current context. */
static PyObject *array_cache_enter(PyObject *module, PyObject *unused)
{
    if (handler_capsule == NULL) {
        handler_capsule = PyCapsule_New(&cache_handler, "mem_handler", NULL);
        if (handler_capsule == NULL)
            return NULL;
    }
    size_t limit = cache_limit();
    lock();
    limit_bytes = limit;
    if (depth++ == 0)
        generation++;
    unlock();
    PyObject *previous = PyDataMem_SetHandler(handler_capsule);
    if (previous == NULL) {
        lock();
        depth--;
        unlock();
    }
    return previous;
}

/* Under the lock: move into released[] every cached block (all) or those not freed during the
 * current outermost call; returns how many. */
static int drop_blocks(cached_block *released, int all)
{
    int n = 0, kept = 0;
    for (int i = 0; i < cache_count; i++) {
        if (all || cache[i].generation != generation) {
            released[n++] = cache[i];
            cache_bytes -= cache[i].size;
        } else {
            cache[kept++] = cache[i];
        }
    }
    cache_count = kept;
    return n;
}

/* _array_cache_exit(previous): put `previous` back; the end of an outermost call releases the
 * blocks it found cached and did not take. */
static PyObject *array_cache_exit(PyObject *module, PyObject *previous)
{
    if (!PyCapsule_IsValid(previous, "mem_handler")) {
        PyErr_Format(PyExc_TypeError,
                     "_array_cache_exit: previous must be the handler _array_cache_enter returned, "
                     "got %.200s",
                     Py_TYPE(previous)->tp_name);
        return NULL;
    }
    PyObject *ours = PyDataMem_SetHandler(previous);
    if (ours == NULL)
        return NULL;
    Py_DECREF(ours);
    cached_block released[CACHE_MAX_BLOCKS];
    int n = 0;
    lock();
    if (depth > 0 && --depth == 0)
        n = drop_blocks(released, 0);
    unlock();
    for (int i = 0; i < n; i++)
        free(released[i].ptr);
    Py_RETURN_NONE;
}

/* _array_cache_release() -> blocks released: empty the cache (when no call is active). */
static PyObject *array_cache_release(PyObject *module, PyObject *unused)
{
    cached_block released[CACHE_MAX_BLOCKS];
    int n = 0;
    lock();
    if (depth == 0)
        n = drop_blocks(released, 1);
    unlock();
    for (int i = 0; i < n; i++)
        free(released[i].ptr);
    return PyLong_FromLong(n);
}

/* _array_cache_info() -> (active calls, cached blocks, cached bytes, byte limit): for tests. */
static PyObject *array_cache_info(PyObject *module, PyObject *unused)
{
    size_t limit = cache_limit();
    lock();
    long d = depth;
    int count = cache_count;
    size_t bytes = cache_bytes;
    unlock();
    return Py_BuildValue("(linn)", d, count, (Py_ssize_t)bytes, (Py_ssize_t)limit);
}

PyMethodDef bnpy_memory_methods[] = {
    {"_array_cache_enter", array_cache_enter, METH_NOARGS,
     "_array_cache_enter()\n--\n\nUse bnpy's caching allocator for new arrays in this context; "
     "returns the previous handler, for _array_cache_exit."},
    {"_array_cache_exit", array_cache_exit, METH_O,
     "_array_cache_exit(previous, /)\n--\n\nRestore `previous`; the end of an outermost call "
     "releases "
     "the blocks it found cached and did not take."},
    {"_array_cache_release", array_cache_release, METH_NOARGS,
     "_array_cache_release()\n--\n\nFree every cached block (when no call is active); returns how "
     "many."},
    {"_array_cache_info", array_cache_info, METH_NOARGS,
     "_array_cache_info()\n--\n\n(active callers, cached blocks, cached bytes, byte limit)."},
    {NULL, NULL, 0, NULL},
};
