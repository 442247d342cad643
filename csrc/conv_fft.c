/* conv_fft.c: float32 channels-last 2-D convolution (stride 1) through 2-D FFTs, for large kernels.
 *
 * Each image plane lives in a P_h x P_w periodic domain (Z_Ph x Z_Pw), with the 2-D DFT
 * S[u,v] = sum_(r,c) s[r,c] w_h^(-u r) w_w^(-v c), w = e^(2 pi i / P). With x at rows 0..H-1, the
 * kernel's tap (di, dj) at (di - pad_top, dj - pad_left) mod P, and y, dy at rows 0..out_h-1:
 *
 *     Y[n,o]  = sum_c X[n,c] conj(KF[c,o])      y  = IDFT(Y)  read at (i, j)
 *     G[c,o]  = sum_n X[n,c] conj(DY[n,o])      dK = IDFT(G)  read at (di - pad_top, dj - pad_left)
 *     DX[n,c] = sum_o DY[n,o] KF[c,o]           dx = IDFT(DX) read at (h, w)
 *
 * (IDFT with the 1/(P_h P_w) factor). The circular products equal the linear ones when no index
 * wraps onto a real cell: P_h >= max(H + pad_top, out_h + kh - 1 - pad_top), and the same for the
 * columns; bnpy/ops/_conv_fft.py picks such sizes (products of 2, 3 and 5).
 *
 * Planes are transformed LANES at a time, one per SIMD lane: the LANES channels of a channels-last
 * pixel are LANES independent planes, so every butterfly is plain vector arithmetic, with no
 * shuffles. A block's spectrum is (P_h, Pr, 2, LANES) floats, Pr = P_w/2 + 1 (the real planes'
 * half spectrum): the LANES real parts of a frequency, then the LANES imaginary parts. The 1-D
 * transforms are mixed-radix (8, 4, 2, 3, 5) Stockham FFTs over many transforms at once; the real
 * row transforms pack two rows into one complex transform (rows a and b as a + ib) and untangle
 * them; the inverse is the forward transform with real and imaginary parts exchanged.
 *
 * Work items (an image, or a block of output channels for dK) are independent and each sums in a
 * fixed order, so results are bitwise the same for any thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fft_lanes.h"
#include "kernels.h"
#include "parallel.h"

int bnpy_fft_size_supported(ptrdiff_t n)
{
    if (n < 1)
        return 0;
    while (n % 2 == 0)
        n /= 2;
    while (n % 3 == 0)
        n /= 3;
    while (n % 5 == 0)
        n /= 5;
    return n == 1;
}

/* ---- 2-D real transforms of LANES planes ----------------------------------------------------- */

typedef struct {
    fft_plan rows, cols; /* length P_w (along a row), length P_h (along a column) */
    ptrdiff_t P_h, P_w, Pr, F;
    float *twiddles;
} fft2_plan;

static int fft2_init(fft2_plan *plan, ptrdiff_t P_h, ptrdiff_t P_w)
{
    plan->P_h = P_h;
    plan->P_w = P_w;
    plan->Pr = P_w / 2 + 1;
    plan->F = P_h * plan->Pr;
    plan->twiddles = malloc((size_t)(4 * (P_h + P_w) + 8) * sizeof(float));
    if (plan->twiddles == NULL)
        return -1;
    if (plan_init(&plan->rows, plan->twiddles, P_w) < 0 ||
        plan_init(&plan->cols, plan->twiddles + 4 * P_w + 4, P_h) < 0) {
        free(plan->twiddles);
        return -1;
    }
    return 0;
}

/* A worker's scratch: a spectrum and its ping-pong partner, and the packed row buffers. */
typedef struct {
    float *spec, *spec_work, *rows, *rows_work, *extra;
} scratch;

static int scratch_init(scratch *sc, const fft2_plan *plan, size_t extra_floats)
{
    const size_t spec = (size_t)(plan->F * ELEM), pairs = (size_t)((plan->P_h + 1) / 2);
    const size_t rows = (size_t)plan->P_w * pairs * ELEM;
    sc->spec = malloc((2 * spec + 2 * rows + extra_floats) * sizeof(float));
    if (sc->spec == NULL)
        return -1;
    sc->spec_work = sc->spec + spec;
    sc->rows = sc->spec_work + spec;
    sc->rows_work = sc->rows + rows;
    sc->extra = sc->rows_work + rows;
    return 0;
}

static inline ptrdiff_t wrap(ptrdiff_t i, ptrdiff_t P)
{
    i %= P;
    return i < 0 ? i + P : i;
}

/* The half spectrum (P_h, Pr, 2, LANES) of LANES real planes whose cell (r, c), r < nrows,
 * c < ncols, is src[r row_stride + c col_stride + lane] (lane < nl; the other lanes are 0), placed
 * at ((r + sh) mod P_h, (c + sw) mod P_w). Computed in sc->spec; returns where it ended up
 * (sc->spec or sc->spec_work). nrows <= P_h, ncols <= P_w. */
BNPY_ALWAYS_INLINE float *spectrum2d(const fft2_plan *plan, const scratch *sc, const float *src,
                                     ptrdiff_t nrows, ptrdiff_t ncols, ptrdiff_t row_stride,
                                     ptrdiff_t col_stride, int nl, ptrdiff_t sh, ptrdiff_t sw)
{
    const ptrdiff_t P_w = plan->P_w, Pr = plan->Pr, pairs = (nrows + 1) / 2;
    /* rows 2q and 2q+1 as the real and imaginary parts of packed row q, element j at (j, q);
     * the columns no cell lands in are zero */
    for (ptrdiff_t c = ncols; c < P_w; c++)
        memset(sc->rows + wrap(c + sw, P_w) * pairs * ELEM, 0,
               (size_t)(pairs * ELEM) * sizeof(float));
    if (nrows % 2 == 1) /* the last packed row has no imaginary part */
        for (ptrdiff_t c = 0; c < ncols; c++)
            lanes_store(sc->rows + (wrap(c + sw, P_w) * pairs + pairs - 1) * ELEM + LANES,
                        lanes_zero());
    for (ptrdiff_t r = 0; r < nrows; r++) {
        float *dst = sc->rows + (r / 2) * ELEM + (r % 2) * LANES;
        ptrdiff_t j = wrap(sw, P_w);
        for (ptrdiff_t c = 0; c < ncols; c++) {
            const float *cell = src + r * row_stride + c * col_stride;
            if (nl == LANES) {
                lanes_store(dst + j * pairs * ELEM, lanes_load(cell));
            } else {
                float v[LANES] = {0};
                memcpy(v, cell, (size_t)nl * sizeof(float));
                lanes_store(dst + j * pairs * ELEM, lanes_load(v));
            }
            j = j + 1 == P_w ? 0 : j + 1;
        }
    }
    const float *z = fft_run(&plan->rows, sc->rows, sc->rows_work, pairs, 0);
    /* untangle: with Z = FFT(a + ib), A[k] = (Z[k] + conj(Z[-k]))/2, B[k] = (Z[k] - conj(Z[-k]))/2i */
    for (ptrdiff_t r = nrows; r < plan->P_h; r++) /* the rows no cell lands in */
        memset(sc->spec + wrap(r + sh, plan->P_h) * Pr * ELEM, 0,
               (size_t)(Pr * ELEM) * sizeof(float));
    for (ptrdiff_t q = 0; q < pairs; q++) {
        float *a = sc->spec + wrap(2 * q + sh, plan->P_h) * Pr * ELEM;
        float *b =
            2 * q + 1 < nrows ? sc->spec + wrap(2 * q + 1 + sh, plan->P_h) * Pr * ELEM : NULL;
        for (ptrdiff_t k = 0; k < Pr; k++) {
            const cvec zk = cv_load(z + (k * pairs + q) * ELEM, 0, LANES);
            const cvec zm = cv_load(z + (((P_w - k) % P_w) * pairs + q) * ELEM, 0, LANES);
            const cvec ak = {lanes_scale(lanes_add(zk.re, zm.re), 0.5f),
                             lanes_scale(lanes_sub(zk.im, zm.im), 0.5f)};
            cv_store(a + k * ELEM, ak, 0, LANES);
            if (b != NULL) {
                const cvec bk = {lanes_scale(lanes_add(zk.im, zm.im), 0.5f),
                                 lanes_scale(lanes_sub(zm.re, zk.re), 0.5f)};
                cv_store(b + k * ELEM, bk, 0, LANES);
            }
        }
    }
    return fft_run(&plan->cols, sc->spec, sc->spec_work, Pr, 0);
}

/* The inverse of spectrum2d: from the half spectrum `spec` (overwritten; sc->spec_work is its
 * partner) of LANES real planes, dst[r row_stride + c col_stride + lane] = scale * plane at
 * ((r + sh) mod P_h, (c + sw) mod P_w) (+ bias[lane]) for r < nrows, c < ncols, lane < nl. */
BNPY_ALWAYS_INLINE void signal2d(const fft2_plan *plan, const scratch *sc, float *spec,
                                 float *spec_work, float *dst, ptrdiff_t nrows, ptrdiff_t ncols,
                                 ptrdiff_t row_stride, ptrdiff_t col_stride, int nl, ptrdiff_t sh,
                                 ptrdiff_t sw, float scale, const float *bias)
{
    const ptrdiff_t P_w = plan->P_w, Pr = plan->Pr, pairs = (nrows + 1) / 2;
    const float *t = fft_run(&plan->cols, spec, spec_work, Pr, 1);
    /* rows 2q, 2q+1 (spectra A, B, Hermitian) as one complex row a + ib: Z[k] = A[k] + i B[k] */
    for (ptrdiff_t q = 0; q < pairs; q++) {
        const float *a = t + wrap(2 * q + sh, plan->P_h) * Pr * ELEM;
        const float *b = 2 * q + 1 < nrows ? t + wrap(2 * q + 1 + sh, plan->P_h) * Pr * ELEM : NULL;
        for (ptrdiff_t k = 0; k < P_w; k++) {
            const ptrdiff_t kk = k < Pr ? k : P_w - k;
            cvec ak = cv_load(a + kk * ELEM, 0, LANES);
            cvec bk =
                b != NULL ? cv_load(b + kk * ELEM, 0, LANES) : (cvec){lanes_zero(), lanes_zero()};
            if (k == 0 || 2 * k == P_w) { /* a real plane's DC and Nyquist bins are real */
                ak.im = lanes_zero();
                bk.im = lanes_zero();
            } else if (k >= Pr) { /* conj(A[P_w - k]), conj(B[P_w - k]) */
                ak.im = lanes_sub(lanes_zero(), ak.im);
                bk.im = lanes_sub(lanes_zero(), bk.im);
            }
            const cvec zk = {lanes_sub(ak.re, bk.im), lanes_add(ak.im, bk.re)};
            cv_store(sc->rows + (k * pairs + q) * ELEM, zk, 0, LANES);
        }
    }
    const float *z = fft_run(&plan->rows, sc->rows, sc->rows_work, pairs, 1);
    lanes b = lanes_zero();
    if (bias != NULL) {
        float bl[LANES] = {0};
        memcpy(bl, bias, (size_t)nl * sizeof(float));
        b = lanes_load(bl);
    }
    for (ptrdiff_t r = 0; r < nrows; r++) {
        const float *row = z + (r / 2) * ELEM + (r % 2) * LANES;
        ptrdiff_t j = wrap(sw, P_w);
        for (ptrdiff_t c = 0; c < ncols; c++) {
            const lanes v = lanes_add(lanes_scale(lanes_load(row + j * pairs * ELEM), scale), b);
            float *out = dst + r * row_stride + c * col_stride;
            if (nl == LANES) {
                lanes_store(out, v);
            } else {
                float vl[LANES];
                lanes_store(vl, v);
                memcpy(out, vl, (size_t)nl * sizeof(float));
            }
            j = j + 1 == P_w ? 0 : j + 1;
        }
    }
}

/* acc[f] = (acc[f] +) x_l[f] v[f] (or conj(v[f])) for every frequency f < F: x_l the spectrum of
 * lane l of `spec` (blocks of F elements; a scalar per frequency), v one block's spectrum. With
 * first, acc is overwritten (the first term of a sum). One pass over the block per term keeps
 * the loads unit-stride and the index arithmetic out of the loop. */
BNPY_ALWAYS_INLINE void mac_lane(float *acc, const float *spec, ptrdiff_t F, ptrdiff_t l,
                                 const float *v, int conj_v, int first)
{
    const float *x = spec + (l / LANES) * F * ELEM + l % LANES;
    for (ptrdiff_t f = 0; f < F; f++) {
        const float xr = x[f * ELEM], xi = x[f * ELEM + LANES];
        const cvec vf = cv_load(v + f * ELEM, 0, LANES);
        const cvec zero = {lanes_zero(), lanes_zero()};
        const cvec base = first ? zero : cv_load(acc + f * ELEM, 0, LANES);
        cv_store(acc + f * ELEM, conj_v ? cv_mac_conj(base, xr, xi, vf) : cv_mac(base, xr, xi, vf),
                 0, LANES);
    }
}

static inline int block_lanes(ptrdiff_t total, ptrdiff_t block)
{
    const ptrdiff_t left = total - block * LANES;
    return (int)(left < LANES ? left : LANES);
}

/* ---- the work items ------------------------------------------------------------------------ */

typedef struct {
    const fft2_plan *plan;
    float *out;
    const float *in, *in2, *bias;
    ptrdiff_t N, B, R, C, L, Cin, Cout, sh, sw;
    ptrdiff_t in_rows, in_cols, out_rows, out_cols; /* dy's planes; the planes written */
    int *status;
} job;

/* spectrum of (B, R, C, L) planes: item = (b, lane block) */
BNPY_HOT static void spectrum_item(void *ctx, ptrdiff_t item)
{
    const job *jb = ctx;
    const fft2_plan *plan = jb->plan;
    const ptrdiff_t nlb = (jb->L + LANES - 1) / LANES, b = item / nlb, lb = item % nlb;
    scratch sc;
    if (scratch_init(&sc, plan, 0) < 0) {
        jb->status[item] = -1;
        return;
    }
    const float *src = jb->in + b * jb->R * jb->C * jb->L + lb * LANES;
    const float *s = spectrum2d(plan, &sc, src, jb->R, jb->C, jb->C * jb->L, jb->L,
                                block_lanes(jb->L, lb), jb->sh, jb->sw);
    memcpy(jb->out + item * plan->F * ELEM, s, (size_t)(plan->F * ELEM) * sizeof(float));
    free(sc.spec);
}

/* forward: item = image n; y[n] for every block of output channels */
BNPY_HOT static void forward_item(void *ctx, ptrdiff_t n)
{
    const job *jb = ctx;
    const fft2_plan *plan = jb->plan;
    const ptrdiff_t F = plan->F, nob = (jb->Cout + LANES - 1) / LANES;
    const float scale = (float)(1.0 / ((double)plan->P_h * (double)plan->P_w));
    scratch sc;
    if (scratch_init(&sc, plan, 0) < 0) {
        jb->status[n] = -1;
        return;
    }
    for (ptrdiff_t ob = 0; ob < nob; ob++) {
        for (ptrdiff_t c = 0; c < jb->Cin; c++) /* sum_c X[n,c] conj(KF[c,o]) */
            mac_lane(sc.spec, jb->in, F, n * jb->Cin + c, jb->in2 + (c * nob + ob) * F * ELEM, 1,
                     c == 0);
        signal2d(plan, &sc, sc.spec, sc.spec_work,
                 jb->out + n * jb->out_rows * jb->out_cols * jb->Cout + ob * LANES, jb->out_rows,
                 jb->out_cols, jb->out_cols * jb->Cout, jb->Cout, block_lanes(jb->Cout, ob), 0, 0,
                 scale, jb->bias != NULL ? jb->bias + ob * LANES : NULL);
    }
    free(sc.spec);
}

/* kernel gradient: item = block of output channels; sums over the images in order */
BNPY_HOT static void dkernel_item(void *ctx, ptrdiff_t ob)
{
    const job *jb = ctx;
    const fft2_plan *plan = jb->plan;
    const ptrdiff_t F = plan->F, Cin = jb->Cin, Cout = jb->Cout;
    const float scale = (float)(1.0 / ((double)plan->P_h * (double)plan->P_w));
    const int nl = block_lanes(Cout, ob);
    scratch sc;
    if (scratch_init(&sc, plan, (size_t)(Cin * F * ELEM)) < 0) {
        jb->status[ob] = -1;
        return;
    }
    float *g = sc.extra; /* (Cin, F) elements: sum_n X[n,c] conj(DY[n]) */
    for (ptrdiff_t n = 0; n < jb->N; n++) {
        const float *d =
            spectrum2d(plan, &sc, jb->in + n * jb->in_rows * jb->in_cols * Cout + ob * LANES,
                       jb->in_rows, jb->in_cols, jb->in_cols * Cout, Cout, nl, 0, 0);
        for (ptrdiff_t c = 0; c < Cin; c++)
            mac_lane(g + c * F * ELEM, jb->in2, F, n * Cin + c, d, 1, n == 0);
    }
    for (ptrdiff_t c = 0; c < Cin; c++)
        signal2d(plan, &sc, g + c * F * ELEM, sc.spec_work, jb->out + c * Cout + ob * LANES,
                 jb->out_rows, jb->out_cols, jb->out_cols * Cin * Cout, Cin * Cout, nl, jb->sh,
                 jb->sw, scale, NULL);
    free(sc.spec);
}

/* input gradient: item = image n; DY of all output channels, then dx block by block */
BNPY_HOT static void dinput_item(void *ctx, ptrdiff_t n)
{
    const job *jb = ctx;
    const fft2_plan *plan = jb->plan;
    const ptrdiff_t F = plan->F, Cin = jb->Cin, Cout = jb->Cout;
    const ptrdiff_t nob = (Cout + LANES - 1) / LANES, ncb = (Cin + LANES - 1) / LANES;
    const float scale = (float)(1.0 / ((double)plan->P_h * (double)plan->P_w));
    scratch sc;
    if (scratch_init(&sc, plan, (size_t)(nob * F * ELEM)) < 0) {
        jb->status[n] = -1;
        return;
    }
    float *dys = sc.extra; /* (nob, F) elements */
    for (ptrdiff_t ob = 0; ob < nob; ob++) {
        const float *d = spectrum2d(
            plan, &sc, jb->in + n * jb->in_rows * jb->in_cols * Cout + ob * LANES, jb->in_rows,
            jb->in_cols, jb->in_cols * Cout, Cout, block_lanes(Cout, ob), 0, 0);
        memcpy(dys + ob * F * ELEM, d, (size_t)(F * ELEM) * sizeof(float));
    }
    for (ptrdiff_t cb = 0; cb < ncb; cb++) {
        for (ptrdiff_t o = 0; o < Cout; o++) /* sum_o DY[n,o] KF[c,o] */
            mac_lane(sc.spec, dys, F, o, jb->in2 + (o * ncb + cb) * F * ELEM, 0, o == 0);
        signal2d(plan, &sc, sc.spec, sc.spec_work,
                 jb->out + n * jb->out_rows * jb->out_cols * Cin + cb * LANES, jb->out_rows,
                 jb->out_cols, jb->out_cols * Cin, Cin, block_lanes(Cin, cb), 0, 0, scale, NULL);
    }
    free(sc.spec);
}

/* Runs body over n_items items of jb with the plan of the FFT size (P_h, P_w), on threads when
 * the work (work_per_bin times the plan's F bins) is large enough; 0, or -1 when the plan or a
 * worker's scratch could not be allocated. */
static int run_items(job *jb, ptrdiff_t P_h, ptrdiff_t P_w, ptrdiff_t n_items, double work_per_bin,
                     void (*body)(void *, ptrdiff_t))
{
    fft2_plan plan;
    if (fft2_init(&plan, P_h, P_w) < 0)
        return -1;
    int *status = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof(int));
    if (status == NULL) {
        free(plan.twiddles);
        return -1;
    }
    jb->plan = &plan;
    jb->status = status;
    const int threads = bnpy_threads_for(work_per_bin * plan.F);
    bnpy_parallel_for(n_items, threads > 1 && n_items > 1, threads, 1, body, jb);
    int rc = 0;
    for (ptrdiff_t i = 0; i < n_items; i++)
        rc |= status[i];
    free(status);
    free(plan.twiddles);
    return rc < 0 ? -1 : 0;
}

/* ---- entry points (contracts in kernels.h) --------------------------------------------------- */

int bnpy_fft_spectrum_f32(float *spec, const float *a, ptrdiff_t B, ptrdiff_t R, ptrdiff_t C,
                          ptrdiff_t L, ptrdiff_t P_h, ptrdiff_t P_w, ptrdiff_t shift_h,
                          ptrdiff_t shift_w)
{
    job jb = {.out = spec, .in = a, .B = B, .R = R, .C = C, .L = L, .sh = shift_h, .sw = shift_w};
    const ptrdiff_t items = B * ((L + LANES - 1) / LANES);
    return run_items(&jb, P_h, P_w, items, (double)items * ELEM, spectrum_item);
}

/* The job of one convolution pass: out written from in and in2 (which of x, dy, the kernel or
 * their spectra each is, the item functions say), N images of Cin -> Cout channels, the in planes
 * (in_rows, in_cols) read and the out planes (out_rows, out_cols) written. */
static job conv_job(float *out, const float *in, const float *in2, ptrdiff_t N, ptrdiff_t Cin,
                    ptrdiff_t Cout, ptrdiff_t in_rows, ptrdiff_t in_cols, ptrdiff_t out_rows,
                    ptrdiff_t out_cols)
{
    return (job){.out = out,
                 .in = in,
                 .in2 = in2,
                 .N = N,
                 .Cin = Cin,
                 .Cout = Cout,
                 .in_rows = in_rows,
                 .in_cols = in_cols,
                 .out_rows = out_rows,
                 .out_cols = out_cols};
}

int bnpy_conv2d_fft_forward_f32(float *y, const float *xspec, const float *kspec, const float *bias,
                                ptrdiff_t N, ptrdiff_t Cin, ptrdiff_t Cout, ptrdiff_t out_h,
                                ptrdiff_t out_w, ptrdiff_t P_h, ptrdiff_t P_w)
{
    job jb = conv_job(y, xspec, kspec, N, Cin, Cout, 0, 0, out_h, out_w);
    jb.bias = bias;
    return run_items(&jb, P_h, P_w, N, (double)N * Cout * 2, forward_item);
}

int bnpy_conv2d_fft_dkernel_f32(float *dkernel, const float *dy, const float *xspec, ptrdiff_t N,
                                ptrdiff_t Cin, ptrdiff_t Cout, ptrdiff_t out_h, ptrdiff_t out_w,
                                ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t pad_top, ptrdiff_t pad_left,
                                ptrdiff_t P_h, ptrdiff_t P_w)
{
    job jb = conv_job(dkernel, dy, xspec, N, Cin, Cout, out_h, out_w, kh, kw);
    jb.sh = -pad_top;
    jb.sw = -pad_left;
    const ptrdiff_t items = (Cout + LANES - 1) / LANES;
    return run_items(&jb, P_h, P_w, items, (double)N * Cout * 2, dkernel_item);
}

int bnpy_conv2d_fft_dinput_f32(float *dx, const float *dy, const float *ktspec, ptrdiff_t N,
                               ptrdiff_t Cin, ptrdiff_t Cout, ptrdiff_t H, ptrdiff_t W,
                               ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t P_h, ptrdiff_t P_w)
{
    job jb = conv_job(dx, dy, ktspec, N, Cin, Cout, out_h, out_w, H, W);
    return run_items(&jb, P_h, P_w, N, (double)N * (Cin + Cout) * 2, dinput_item);
}
