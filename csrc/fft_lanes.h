/* fft_lanes.h: 1-D FFTs of many transforms at once on lane vectors (internal, for conv_fft.c).
 *
 * A complex lane element is 2 x LANES floats: the LANES real parts, then the LANES imaginary
 * parts, one independent transform per lane. fft_run computes `batch` interleaved DFTs
 *     X[k] = sum_j x[j] e^(-2 pi i j k / n)
 * with mixed-radix (8, 4, 2, 3, 5) Stockham passes (self-sorting: the result is in natural order,
 * ping-ponging between two buffers), and the unscaled inverse as the same transform with the real
 * and imaginary parts exchanged: swap(DFT(swap(z))) = IDFT(z) * n. Everything is always inlined, so
 * that it is compiled inside conv_fft.c's hot functions with their instruction set (BNPY_HOT).
 */
#ifndef BNPY_FFT_LANES_H
#define BNPY_FFT_LANES_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels.h"
#include "simd.h"

#define LANES BNPY_FFT_LANES
#define ELEM (2 * LANES) /* floats per complex lane element */
#define MAX_STAGES 64

/* ---- lane vectors and their complex arithmetic ---------------------------------------------- */

#ifdef BNPY_VECTOR
typedef bnpy_vf8 lanes;

BNPY_ALWAYS_INLINE lanes lanes_load(const float *p)
{
    return bnpy_vf8_load(p);
}

BNPY_ALWAYS_INLINE void lanes_store(float *p, lanes a)
{
    bnpy_vf8_store(p, a);
}

BNPY_ALWAYS_INLINE lanes lanes_add(lanes a, lanes b)
{
    return a + b;
}

BNPY_ALWAYS_INLINE lanes lanes_sub(lanes a, lanes b)
{
    return a - b;
}

BNPY_ALWAYS_INLINE lanes lanes_scale(lanes a, float s)
{
    return a * s;
}

BNPY_ALWAYS_INLINE lanes lanes_zero(void)
{
    return (lanes){0};
}
#else
typedef struct {
    float v[LANES];
} lanes;

BNPY_ALWAYS_INLINE lanes lanes_load(const float *p)
{
    lanes a;
    memcpy(a.v, p, sizeof a.v);
    return a;
}

BNPY_ALWAYS_INLINE void lanes_store(float *p, lanes a)
{
    memcpy(p, a.v, sizeof a.v);
}

BNPY_ALWAYS_INLINE lanes lanes_add(lanes a, lanes b)
{
    for (int l = 0; l < LANES; l++)
        a.v[l] += b.v[l];
    return a;
}

BNPY_ALWAYS_INLINE lanes lanes_sub(lanes a, lanes b)
{
    for (int l = 0; l < LANES; l++)
        a.v[l] -= b.v[l];
    return a;
}

BNPY_ALWAYS_INLINE lanes lanes_scale(lanes a, float s)
{
    for (int l = 0; l < LANES; l++)
        a.v[l] *= s;
    return a;
}

BNPY_ALWAYS_INLINE lanes lanes_zero(void)
{
    lanes a;
    memset(a.v, 0, sizeof a.v);
    return a;
}
#endif

typedef struct {
    lanes re, im;
} cvec;

/* Loads and stores with the real part at offset ro and the imaginary part at io (0 and LANES, or
 * exchanged for the inverse transform). */
BNPY_ALWAYS_INLINE cvec cv_load(const float *p, ptrdiff_t ro, ptrdiff_t io)
{
    return (cvec){lanes_load(p + ro), lanes_load(p + io)};
}

BNPY_ALWAYS_INLINE void cv_store(float *p, cvec a, ptrdiff_t ro, ptrdiff_t io)
{
    lanes_store(p + ro, a.re);
    lanes_store(p + io, a.im);
}

BNPY_ALWAYS_INLINE cvec cv_add(cvec a, cvec b)
{
    return (cvec){lanes_add(a.re, b.re), lanes_add(a.im, b.im)};
}

BNPY_ALWAYS_INLINE cvec cv_sub(cvec a, cvec b)
{
    return (cvec){lanes_sub(a.re, b.re), lanes_sub(a.im, b.im)};
}

BNPY_ALWAYS_INLINE cvec cv_scale(cvec a, float s)
{
    return (cvec){lanes_scale(a.re, s), lanes_scale(a.im, s)};
}

/* -i a */
BNPY_ALWAYS_INLINE cvec cv_mul_minus_i(cvec a)
{
    return (cvec){a.im, lanes_sub(lanes_zero(), a.re)};
}

/* a (wr + i wi) */
BNPY_ALWAYS_INLINE cvec cv_mul_scalar(cvec a, float wr, float wi)
{
    return (cvec){lanes_sub(lanes_scale(a.re, wr), lanes_scale(a.im, wi)),
                  lanes_add(lanes_scale(a.re, wi), lanes_scale(a.im, wr))};
}

/* acc + (xr + i xi) a */
BNPY_ALWAYS_INLINE cvec cv_mac(cvec acc, float xr, float xi, cvec a)
{
    return cv_add(acc, cv_mul_scalar(a, xr, xi));
}

/* acc + (xr + i xi) conj(a) */
BNPY_ALWAYS_INLINE cvec cv_mac_conj(cvec acc, float xr, float xi, cvec a)
{
    return (cvec){lanes_add(acc.re, lanes_add(lanes_scale(a.re, xr), lanes_scale(a.im, xi))),
                  lanes_add(acc.im, lanes_sub(lanes_scale(a.re, xi), lanes_scale(a.im, xr)))};
}

/* ---- 1-D FFT plans and the Stockham passes ------------------------------------------------- */

typedef struct {
    ptrdiff_t n;
    int stages;
    int radix[MAX_STAGES];
    const float
        *twiddle[MAX_STAGES]; /* stage s: (cos, sin) of -2 pi p k / len_s, p < m, 1 <= k < r */
} fft_plan;

/* Factor n into 8s, 4s, 2s, 3s and 5s and fill the twiddles (at most 4n floats). 0, or -1 when n has
 * another prime factor. */
static inline int plan_init(fft_plan *plan, float *twiddles, ptrdiff_t n)
{
    const double two_pi = 6.283185307179586476925286766559;
    ptrdiff_t len = n;
    plan->n = n;
    plan->stages = 0;
    while (len > 1) {
        const int r = len % 8 == 0   ? 8
                      : len % 4 == 0 ? 4
                      : len % 2 == 0 ? 2
                      : len % 3 == 0 ? 3
                      : len % 5 == 0 ? 5
                                     : 0;
        if (r == 0 || plan->stages == MAX_STAGES)
            return -1;
        const ptrdiff_t m = len / r;
        plan->radix[plan->stages] = r;
        plan->twiddle[plan->stages] = twiddles;
        for (ptrdiff_t p = 0; p < m; p++)
            for (int k = 1; k < r; k++) {
                const double angle = -two_pi * (double)(p * k) / (double)len;
                *twiddles++ = (float)cos(angle);
                *twiddles++ = (float)sin(angle);
            }
        plan->stages++;
        len = m;
    }
    return 0;
}

/* Output k >= 1 of a butterfly, times its twiddle (w[2 (k - 1)], w[2 (k - 1) + 1]), stored at
 * b + k s ELEM. */
BNPY_ALWAYS_INLINE void store_twiddled(float *b, int k, cvec v, const float *w, ptrdiff_t s,
                                       ptrdiff_t ro, ptrdiff_t io)
{
    cv_store(b + k * s * ELEM, cv_mul_scalar(v, w[2 * (k - 1)], w[2 * (k - 1) + 1]), ro, io);
}

/* The butterflies of pass_radix: each loads the r inputs a + t step of one DFT_r, computes the
 * outputs sum_t a_t w_r^(-t k) and stores them at b + k s ELEM (k >= 1 times its twiddle), each
 * as soon as it is computed, so that few vectors are live at once. */
BNPY_ALWAYS_INLINE void dft2(const float *a, float *b, const float *w, ptrdiff_t s, ptrdiff_t step,
                             ptrdiff_t ro, ptrdiff_t io)
{
    const cvec a0 = cv_load(a, ro, io), a1 = cv_load(a + step, ro, io);
    cv_store(b, cv_add(a0, a1), ro, io);
    store_twiddled(b, 1, cv_sub(a0, a1), w, s, ro, io);
}

BNPY_ALWAYS_INLINE void dft3(const float *a, float *b, const float *w, ptrdiff_t s, ptrdiff_t step,
                             ptrdiff_t ro, ptrdiff_t io)
{
    const float half_sqrt3 = 0.86602540378443864676f;
    const cvec a0 = cv_load(a, ro, io), a1 = cv_load(a + step, ro, io),
               a2 = cv_load(a + 2 * step, ro, io);
    const cvec t1 = cv_add(a1, a2);
    const cvec t2 = cv_sub(a0, cv_scale(t1, 0.5f));
    const cvec t3 = cv_mul_minus_i(cv_scale(cv_sub(a1, a2), half_sqrt3));
    cv_store(b, cv_add(a0, t1), ro, io);
    store_twiddled(b, 1, cv_add(t2, t3), w, s, ro, io);
    store_twiddled(b, 2, cv_sub(t2, t3), w, s, ro, io);
}

BNPY_ALWAYS_INLINE void dft4(const float *a, float *b, const float *w, ptrdiff_t s, ptrdiff_t step,
                             ptrdiff_t ro, ptrdiff_t io)
{
    const cvec a0 = cv_load(a, ro, io), a1 = cv_load(a + step, ro, io),
               a2 = cv_load(a + 2 * step, ro, io), a3 = cv_load(a + 3 * step, ro, io);
    const cvec s02 = cv_add(a0, a2), d02 = cv_sub(a0, a2);
    const cvec s13 = cv_add(a1, a3), d13 = cv_mul_minus_i(cv_sub(a1, a3));
    cv_store(b, cv_add(s02, s13), ro, io);
    store_twiddled(b, 1, cv_add(d02, d13), w, s, ro, io);
    store_twiddled(b, 2, cv_sub(s02, s13), w, s, ro, io);
    store_twiddled(b, 3, cv_sub(d02, d13), w, s, ro, io);
}

BNPY_ALWAYS_INLINE void dft5(const float *a, float *b, const float *w, ptrdiff_t s, ptrdiff_t step,
                             ptrdiff_t ro, ptrdiff_t io)
{
    /* cos and sin of 2 pi/5 and 4 pi/5 */
    const float c1 = 0.30901699437494742410f, c2 = -0.80901699437494742410f;
    const float s1 = 0.95105651629515357212f, s2 = 0.58778525229247312917f;
    const cvec a0 = cv_load(a, ro, io), a1 = cv_load(a + step, ro, io),
               a2 = cv_load(a + 2 * step, ro, io), a3 = cv_load(a + 3 * step, ro, io),
               a4 = cv_load(a + 4 * step, ro, io);
    const cvec t1 = cv_add(a1, a4), t2 = cv_add(a2, a3);
    const cvec t3 = cv_sub(a1, a4), t4 = cv_sub(a2, a3);
    const cvec r1 = cv_add(a0, cv_add(cv_scale(t1, c1), cv_scale(t2, c2)));
    const cvec r2 = cv_add(a0, cv_add(cv_scale(t1, c2), cv_scale(t2, c1)));
    const cvec i1 = cv_mul_minus_i(cv_add(cv_scale(t3, s1), cv_scale(t4, s2)));
    const cvec i2 = cv_mul_minus_i(cv_sub(cv_scale(t3, s2), cv_scale(t4, s1)));
    cv_store(b, cv_add(a0, cv_add(t1, t2)), ro, io);
    store_twiddled(b, 1, cv_add(r1, i1), w, s, ro, io);
    store_twiddled(b, 2, cv_add(r2, i2), w, s, ro, io);
    store_twiddled(b, 3, cv_sub(r2, i2), w, s, ro, io);
    store_twiddled(b, 4, cv_sub(r1, i1), w, s, ro, io);
}

/* Radix 8 as two radix-4 DFTs: the sums and differences a_t +- a_(t+4) give the even outputs
 * (DFT_4 of the sums) and the odd ones (DFT_4 of the differences times w_8^(-t)). */
BNPY_ALWAYS_INLINE void dft4_of(cvec c0, cvec c1, cvec c2, cvec c3, cvec *out)
{
    const cvec e0 = cv_add(c0, c2), e1 = cv_sub(c0, c2);
    const cvec f0 = cv_add(c1, c3), f1 = cv_mul_minus_i(cv_sub(c1, c3));
    out[0] = cv_add(e0, f0);
    out[1] = cv_add(e1, f1);
    out[2] = cv_sub(e0, f0);
    out[3] = cv_sub(e1, f1);
}

BNPY_ALWAYS_INLINE void dft8(const float *a, float *b, const float *w, ptrdiff_t s, ptrdiff_t step,
                             ptrdiff_t ro, ptrdiff_t io)
{
    const float half_sqrt2 = 0.70710678118654752440f;
    cvec sum[4], dif[4], even[4], odd[4];
    for (int t = 0; t < 4; t++) {
        const cvec lo = cv_load(a + t * step, ro, io), hi = cv_load(a + (t + 4) * step, ro, io);
        sum[t] = cv_add(lo, hi);
        dif[t] = cv_sub(lo, hi);
    }
    /* dif[t] w_8^(-t): w_8^-1 = (1 - i)/sqrt2, w_8^-2 = -i, w_8^-3 = -(1 + i)/sqrt2 */
    const cvec d1 = {lanes_scale(lanes_add(dif[1].re, dif[1].im), half_sqrt2),
                     lanes_scale(lanes_sub(dif[1].im, dif[1].re), half_sqrt2)};
    const cvec d3 = {
        lanes_scale(lanes_sub(dif[3].im, dif[3].re), half_sqrt2),
        lanes_scale(lanes_sub(lanes_zero(), lanes_add(dif[3].re, dif[3].im)), half_sqrt2)};
    dft4_of(sum[0], sum[1], sum[2], sum[3], even);
    dft4_of(dif[0], d1, cv_mul_minus_i(dif[2]), d3, odd);
    cv_store(b, even[0], ro, io);
    for (int k = 1; k < 8; k++)
        store_twiddled(b, k, k % 2 == 0 ? even[k / 2] : odd[k / 2], w, s, ro, io);
}

/* One pass of radix r (a constant where it is called, so that each radix compiles to its own
 * loop around its butterfly): for p < m, q < s, the r inputs x[q + s(p + t m)] (t < r) give the
 * outputs work[q + s(r p + k)] = DFT_r(inputs)[k] * w_len^(-p k), len = r m, with the r - 1
 * twiddles w_len^(-p k) (k >= 1) at tw + 2 (r - 1) p. */
BNPY_ALWAYS_INLINE void pass_radix(float *work, const float *x, ptrdiff_t s, ptrdiff_t m,
                                   const float *tw, ptrdiff_t ro, ptrdiff_t io, const int r)
{
    const ptrdiff_t step = s * m * ELEM;
    for (ptrdiff_t p = 0; p < m; p++) {
        const float *w = tw + 2 * (r - 1) * p;
        for (ptrdiff_t q = 0; q < s; q++) {
            const float *a = x + (q + s * p) * ELEM;
            float *b = work + (q + r * s * p) * ELEM;
            if (r == 8)
                dft8(a, b, w, s, step, ro, io);
            else if (r == 4)
                dft4(a, b, w, s, step, ro, io);
            else if (r == 2)
                dft2(a, b, w, s, step, ro, io);
            else if (r == 3)
                dft3(a, b, w, s, step, ro, io);
            else
                dft5(a, b, w, s, step, ro, io);
        }
    }
}

/* `batch` DFTs of length plan->n at once, element j of transform q at x + (q + batch j) ELEM;
 * inverse: the unscaled inverse DFT (the forward transform with re and im exchanged). Ping-pongs
 * between x and work; returns the buffer that holds the result, in natural order. */
BNPY_ALWAYS_INLINE float *fft_run(const fft_plan *plan, float *x, float *work, ptrdiff_t batch,
                                  int inverse)
{
    const ptrdiff_t ro = inverse ? LANES : 0, io = LANES - ro;
    ptrdiff_t len = plan->n, s = batch;
    for (int st = 0; st < plan->stages; st++) {
        const int r = plan->radix[st];
        const ptrdiff_t m = len / r;
        /* each call with a constant radix, compiled to that radix's own loop */
        if (r == 8)
            pass_radix(work, x, s, m, plan->twiddle[st], ro, io, 8);
        else if (r == 4)
            pass_radix(work, x, s, m, plan->twiddle[st], ro, io, 4);
        else if (r == 2)
            pass_radix(work, x, s, m, plan->twiddle[st], ro, io, 2);
        else if (r == 3)
            pass_radix(work, x, s, m, plan->twiddle[st], ro, io, 3);
        else
            pass_radix(work, x, s, m, plan->twiddle[st], ro, io, 5);
        float *t = x;
        x = work;
        work = t;
        s *= r;
        len = m;
    }
    return x;
}

#endif /* BNPY_FFT_LANES_H */
