/* Phase timing of csrc/batchnorm.c without Python: each pass of the float32 kernels (statistics,
 * the forward's elementwise pass, gradient sums, the backward's elementwise pass) and the whole
 * kernels, against a memcpy and an AVX2 read of the same size; minimum of 300 calls each, one
 * process, so the ratios are free of Python and of most of a shared machine's noise.
 *
 *   cc -O3 -std=c11 -fopenmp -DBNPY_OPENMP -fno-math-errno -Icsrc benchmarks/bn_phases.c -o /tmp/bn_phases -lm
 *   [BN_OFFSET=16] /tmp/bn_phases N H W C [first] [threads]      e.g. /tmp/bn_phases 32 16 16 96
 *
 * "last" times channels-last (N·H·W rows of C), "first" channels-first (N, C, H·W). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <stdint.h>
static int g_threads = 1;
int bnpy_get_num_threads(void) { return g_threads; }
#ifndef BNFILE
#define BNFILE "../csrc/batchnorm.c"
#endif
#include BNFILE

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
/* Every array starts `g_offset` bytes past a 64-byte boundary (BN_OFFSET=16 is where NumPy's
 * allocator puts large arrays: malloc's 16-byte header after an mmap'd page). */
static size_t g_offset = 0;
static float *alloc(size_t n) { char *p = malloc(n * 4 + 4096 + 128); p += (64 - (uintptr_t)p % 64) % 64; return (float *)(p + g_offset); }
static double rnd(void) { double u = (rand() + 1.0) / (RAND_MAX + 2.0), v = (rand() + 1.0) / (RAND_MAX + 2.0); return sqrt(-2 * log(u)) * cos(6.283185307 * v); }
__attribute__((target("avx2"))) static float readsum(const float *x, size_t n) {
    typedef float v8 __attribute__((vector_size(32)));
    v8 a = {0}, b = {0}, c = {0}, d = {0};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) { v8 t; memcpy(&t, x + i, 32); a += t; memcpy(&t, x + i + 8, 32); b += t; memcpy(&t, x + i + 16, 32); c += t; memcpy(&t, x + i + 24, 32); d += t; }
    a += b + c + d; float s = 0; for (int l = 0; l < 8; l++) s += a[l]; for (; i < n; i++) s += x[i]; return s;
}
volatile float sink;
#define TIME(label, stmt) do { double best = 1e9; for (int it = 0; it < reps; it++) { double t0 = now(); stmt; double t = now() - t0; if (t < best) best = t; } printf(" %s %6.1f", label, best * 1e6); } while (0)
int main(int argc, char **argv) {
    ptrdiff_t N = atol(argv[1]), H = atol(argv[2]), W = atol(argv[3]), C = atol(argv[4]);
    int first = argc > 5 && argv[5][0] == 'f'; g_threads = argc > 6 ? atoi(argv[6]) : 1;
    int reps = 300;
    if (getenv("BN_OFFSET")) g_offset = (size_t)atol(getenv("BN_OFFSET"));
    size_t n = N * H * W * C;
    float *x = alloc(n), *dy = alloc(n), *y = alloc(n), *dx = alloc(n), *dst = alloc(n);
    for (size_t i = 0; i < n; i++) { x[i] = rnd(); dy[i] = rnd(); }
    float g[4096], b[4096], mean[4096], var[4096], dg[4096], db[4096];
    for (int c = 0; c < C; c++) { g[c] = 1; b[c] = 0; }
    ptrdiff_t outer = first ? N : N * H * W, inner = first ? H * W : 1;
    bnpy_bn_forward_f32(y, mean, var, x, g, b, outer, C, inner, 1e-3);
    bn_plan p; bn_make_plan(&p, outer, C, inner);
    double *cm = malloc(8 * 64 * C * 2), *cm2 = cm + 64 * C, piv[4096], md[4096], sc[4096], sh[4096]; float coef[5 * 4096];

    for (int c = 0; c < C; c++) { piv[c] = 0; md[c] = mean[c]; sc[c] = 1; sh[c] = 0; }
    printf("%s (%ld,%ld,%ld,%ld) th%d off%zu:", first ? "first" : "last ", N, H, W, C, g_threads, g_offset);
    TIME("copy", memcpy(dst, x, n * 4));
    TIME("read", sink = readsum(x, n));
    TIME("| stats", bn_chunk_stats_f32(cm, cm2, x, piv, &p));
    TIME("affine", bn_affine_f32(y, NULL, x, NULL, sc, piv, md, sh, coef, &p));
    TIME("fwd", bnpy_bn_forward_f32(y, mean, var, x, g, b, outer, C, inner, 1e-3));
    TIME("inf", bnpy_bn_inference_f32(y, x, g, b, mean, var, outer, C, inner, 1e-3));
    TIME("| gsums", bn_chunk_grad_sums_f32(cm, cm2, NULL, dy, x, md, NULL, &p));
    TIME("bwdaff", bn_affine_f32(dx, dy, x, sc, sc, NULL, md, sh, coef, &p));
    TIME("bwd", bnpy_bn_backward_f32(dx, dg, db, dy, x, g, mean, var, outer, C, inner, 1e-3));
    TIME("| step", (bnpy_bn_forward_f32(y, mean, var, x, g, b, outer, C, inner, 1e-3),
                    bnpy_bn_backward_f32(dx, dg, db, dy, x, g, mean, var, outer, C, inner, 1e-3)));
    printf("\n");
    return 0;
}
