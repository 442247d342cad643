/* kernels.h: the pure-C contract of bnpy's core.
 *
 * Every kernel is a plain C function on plain pointers and sizes: no Python.h, no PyObject, no
 * allocation of Python objects, so the glue (csrc/py_*.c) can release the GIL around any call.
 * Argument order: outputs, then inputs, then sizes, then scalars. Gradients are named d<name>;
 * inputs are const. Each prototype's comment gives every argument's shape.
 *
 * Sections: threads; batch normalization (batchnorm.c); convolution and pooling (conv.c, pool.c);
 * image warps (affine.c). Each family appends its prototypes in its own section.
 */
#ifndef BNPY_KERNELS_H
#define BNPY_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- threads (threads.c) -------------------------------------------------------------------- */

/* The thread-count setting: set by bnpy_set_num_threads, initially OMP_NUM_THREADS or the
 * OpenMP default; always 1 in a serial build and in a process forked after loading the module
 * (libgomp's thread pool does not survive fork()). */
int bnpy_num_threads_setting(void);
/* Number of threads kernels use: the setting, but at most the processors this process may run
 * on. More threads than that only lose time in these memory-bound kernels, and a team libgomp
 * cannot create (set_num_threads(4096) under a memory limit) ends the process: libgomp exits
 * with "Thread creation failed" instead of returning an error. */
int bnpy_get_num_threads(void);
/* n >= 1. Returns the previous setting. */
int bnpy_set_num_threads(int n);
/* 1 when built with OpenMP. */
int bnpy_have_openmp(void);

/* ---- batch normalization (batchnorm.c) ------------------------------------------------------ */

/* Every tensor is one contiguous (outer, C, inner) block with the channel axis in the middle:
 * channels-last (N, H, W, C) is (N·H·W, C, 1), channels-first (N, C, H, W) is (N, C, H·W), a dense
 * (N, C) is (N, C, 1). Per channel there are m = outer·inner values. Per-channel vectors (gamma,
 * beta, mean, var, dgamma, dbeta, moving_*) are (C,); gamma and beta may be NULL (γ = 1, β = 0).
 * The statistics are summed in T over short blocks about a shift near the mean, the block sums
 * in double (a block that fails its check is summed exactly in double); the gradient sums are
 * accumulated in double term by term. Results do not depend on the thread count (bitwise).
 * The elementwise output (y, dx) may be the very same buffer as x or dy (in place); it must not
 * overlap anything else. Kernels returning int give 0, or -1 when scratch memory could not be
 * allocated, in which case nothing has been written. Formulas: the header of batchnorm.c. */

/* Training forward: y (outer, C, inner); mean, var (C,) the batch mean and biased variance;
 * x (outer, C, inner); gamma, beta (C,) or NULL. Needs outer·inner >= 1. */
int bnpy_bn_forward_f32(float *y, float *mean, float *var, const float *x, const float *gamma,
                        const float *beta, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                        double epsilon);
int bnpy_bn_forward_f64(double *y, double *mean, double *var, const double *x, const double *gamma,
                        const double *beta, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                        double epsilon);

/* Inference forward with given statistics: y, x (outer, C, inner); gamma, beta (C,) or NULL;
 * mean, var (C,). */
int bnpy_bn_inference_f32(float *y, const float *x, const float *gamma, const float *beta,
                          const float *mean, const float *var, ptrdiff_t outer, ptrdiff_t channels,
                          ptrdiff_t inner, double epsilon);
int bnpy_bn_inference_f64(double *y, const double *x, const double *gamma, const double *beta,
                          const double *mean, const double *var, ptrdiff_t outer,
                          ptrdiff_t channels, ptrdiff_t inner, double epsilon);

/* Training backward (gradient of the training forward at its batch statistics): dx, dy, x
 * (outer, C, inner); dgamma = Σ dy·x̂ and dbeta = Σ dy (C,) (dgamma does not depend on gamma, so it
 * is returned for gamma == NULL too); gamma (C,) or NULL; mean, var (C,) from the forward. */
int bnpy_bn_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *mean, const float *var, ptrdiff_t outer,
                         ptrdiff_t channels, ptrdiff_t inner, double epsilon);
int bnpy_bn_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                         const double *x, const double *gamma, const double *mean,
                         const double *var, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                         double epsilon);

/* Inference-mode backward (mean and var held fixed): dx = γ·dy/√(var + ε); dgamma, dbeta as above.
 * Shapes as for the training backward. */
int bnpy_bn_inference_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                                   const float *x, const float *gamma, const float *mean,
                                   const float *var, ptrdiff_t outer, ptrdiff_t channels,
                                   ptrdiff_t inner, double epsilon);
int bnpy_bn_inference_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                                   const double *x, const double *gamma, const double *mean,
                                   const double *var, ptrdiff_t outer, ptrdiff_t channels,
                                   ptrdiff_t inner, double epsilon);

/* In place, per channel: moving_mean = momentum·moving_mean + (1 − momentum)·mean and
 * moving_var = momentum·moving_var + (1 − momentum)·var·k with k = count/(count − 1) when
 * count > 1, else k = 1 (count <= 0: no correction requested; count == 1: none possible).
 * All (C,); mean/var may be the very same arrays as moving_mean/moving_var. */
void bnpy_bn_update_moving_stats_f32(float *moving_mean, float *moving_var, const float *mean,
                                     const float *var, ptrdiff_t channels, double momentum,
                                     ptrdiff_t count);
void bnpy_bn_update_moving_stats_f64(double *moving_mean, double *moving_var, const double *mean,
                                     const double *var, ptrdiff_t channels, double momentum,
                                     ptrdiff_t count);

/* Batch Renormalization (bn_renorm.h; Ioffe 2017), training mode. Forward: y, x (outer, C, inner);
 * mean, var (C,) the batch mean and biased variance, as bnpy_bn_forward gives them; r, d (C,) the
 * corrections r = clip(√(var + ε)/s, rmin, rmax), d = clip((mean − renorm_mean)/s, −dmax, dmax)
 * with s = max(renorm_stddev, √ε); y = γ·((x − mean)/√(var + ε)·r + d) + β. gamma, beta (C,) or
 * NULL; renorm_mean, renorm_stddev (C,). rmin <= rmax, dmax >= 0 (either may be infinite). */
int bnpy_bn_renorm_forward_f32(float *y, float *mean, float *var, float *r, float *d,
                               const float *x, const float *gamma, const float *beta,
                               const float *renorm_mean, const float *renorm_stddev,
                               ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, double epsilon,
                               double rmin, double rmax, double dmax);
int bnpy_bn_renorm_forward_f64(double *y, double *mean, double *var, double *r, double *d,
                               const double *x, const double *gamma, const double *beta,
                               const double *renorm_mean, const double *renorm_stddev,
                               ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, double epsilon,
                               double rmin, double rmax, double dmax);
/* Its backward with r and d held constant: dx as the training backward's with γ·r for γ,
 * dgamma = r·Σdy·x̂ + d·Σdy, dbeta = Σdy. mean, var, r, d (C,) from the forward; other shapes as
 * for bnpy_bn_backward. */
int bnpy_bn_renorm_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                                const float *x, const float *gamma, const float *mean,
                                const float *var, const float *r, const float *d, ptrdiff_t outer,
                                ptrdiff_t channels, ptrdiff_t inner, double epsilon);
int bnpy_bn_renorm_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                                const double *x, const double *gamma, const double *mean,
                                const double *var, const double *r, const double *d,
                                ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                                double epsilon);

/* Ghost batch normalization (bn_ghost.h), training mode, tf.keras's grouping: x and y are
 * virtual_batch·groups samples of (outer, C, inner) values, sample n at n·outer·C·inner; virtual
 * batch g holds samples g, g + groups, …, g + (virtual_batch − 1)·groups and is normalized with its
 * own mean and biased variance: mean, var (groups, C). gamma, beta (C,) or NULL. */
int bnpy_bn_ghost_forward_f32(float *y, float *mean, float *var, const float *x, const float *gamma,
                              const float *beta, ptrdiff_t virtual_batch, ptrdiff_t groups,
                              ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner, double epsilon);
int bnpy_bn_ghost_forward_f64(double *y, double *mean, double *var, const double *x,
                              const double *gamma, const double *beta, ptrdiff_t virtual_batch,
                              ptrdiff_t groups, ptrdiff_t outer, ptrdiff_t channels,
                              ptrdiff_t inner, double epsilon);
/* Its backward: the training backward per virtual batch; dgamma, dbeta (C,) summed over the
 * virtual batches; mean, var (groups, C) from the forward. */
int bnpy_bn_ghost_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *gamma, const float *mean,
                               const float *var, ptrdiff_t virtual_batch, ptrdiff_t groups,
                               ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                               double epsilon);
int bnpy_bn_ghost_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                               const double *x, const double *gamma, const double *mean,
                               const double *var, ptrdiff_t virtual_batch, ptrdiff_t groups,
                               ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                               double epsilon);

/* ---- synchronized batch normalization (bn_sync.c) ------------------------------------------- */

/* The phases of a batch norm whose batch is split across processes; shapes as above, and every
 * per-channel quantity that crosses processes is float64 (C,). Formulas: the header of bn_sync.c.
 * Results do not depend on the thread count (bitwise). int kernels return 0, or -1 when scratch
 * memory could not be allocated (nothing written). */

/* One shard's per-channel mean and M2 = Σ(x − mean)² over its outer·inner values (0 if none). */
int bnpy_bn_local_stats_f32(double *mean, double *m2, const float *x, ptrdiff_t outer,
                            ptrdiff_t channels, ptrdiff_t inner);
int bnpy_bn_local_stats_f64(double *mean, double *m2, const double *x, ptrdiff_t outer,
                            ptrdiff_t channels, ptrdiff_t inner);
/* Chan's merge of `parts` shards in order: counts (parts,), means and m2s (parts, C) row-major;
 * count = Σ counts, mean and var = M2/count (biased; 0 when count is 0) (C,). Shards with a
 * count <= 0 are skipped. */
void bnpy_bn_merge_stats(double *count, double *mean, double *var, const double *counts,
                         const double *means, const double *m2s, ptrdiff_t parts,
                         ptrdiff_t channels);
/* y = (x − mean)·γ/√(var + ε) + β with float64 mean and var; y may be x itself. */
int bnpy_bn_normalize_f32(float *y, const float *x, const float *gamma, const float *beta,
                          const double *mean, const double *var, ptrdiff_t outer,
                          ptrdiff_t channels, ptrdiff_t inner, double epsilon);
int bnpy_bn_normalize_f64(double *y, const double *x, const double *gamma, const double *beta,
                          const double *mean, const double *var, ptrdiff_t outer,
                          ptrdiff_t channels, ptrdiff_t inner, double epsilon);
/* sum_dy = Σdy and sum_dyxc = Σdy·(x − mean) per channel, in double; mean float64 (C,). */
int bnpy_bn_grad_sums_f32(double *sum_dy, double *sum_dyxc, const float *dy, const float *x,
                          const double *mean, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner);
int bnpy_bn_grad_sums_f64(double *sum_dy, double *sum_dyxc, const double *dy, const double *x,
                          const double *mean, ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner);
/* dx of the training backward from the whole batch's statistics (mean, var), sums (sum_dy,
 * sum_dyxc) and count; dx may be dy or x itself. */
int bnpy_bn_backward_apply_f32(float *dx, const float *dy, const float *x, const float *gamma,
                               const double *mean, const double *var, const double *sum_dy,
                               const double *sum_dyxc, double count, ptrdiff_t outer,
                               ptrdiff_t channels, ptrdiff_t inner, double epsilon);
int bnpy_bn_backward_apply_f64(double *dx, const double *dy, const double *x, const double *gamma,
                               const double *mean, const double *var, const double *sum_dy,
                               const double *sum_dyxc, double count, ptrdiff_t outer,
                               ptrdiff_t channels, ptrdiff_t inner, double epsilon);

/* ---- convolution and pooling (conv.c, pool.c) ----------------------------------------------- */

/* Geometry shared by the kernels below. x is C-contiguous (N, H, W, C) when channels_first == 0,
 * else (N, C, H, W). A window (kernel or pool) of kh x kw with strides sh, sw >= 1 starts at input
 * row i*sh - pad_top and column j*sw - pad_left for output (i, j), 0 <= i < out_h, 0 <= j < out_w;
 * cells outside x are zero padding. All sizes >= 1 (N, C >= 0). Each kernel exists as _f32 (float)
 * and _f64 (double). */

/* col (N*out_h*out_w, kh*kw*C):
 *   col[(n,i,j), (di,dj,c)] = x[n, i*sh + di*dh - pad_top, j*sw + dj*dw - pad_left, c]
 * or 0 outside x; dh, dw >= 1 dilate the kernel (1: a plain convolution). x: see above. */
void bnpy_im2col_f32(float *col, const float *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                     int channels_first, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                     ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h, ptrdiff_t out_w,
                     ptrdiff_t dh, ptrdiff_t dw);
void bnpy_im2col_f64(double *col, const double *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                     ptrdiff_t C, int channels_first, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                     ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                     ptrdiff_t out_w, ptrdiff_t dh, ptrdiff_t dw);
/* The adjoint of im2col. dx (like x, overwritten): dx[cell] = sum of the dcol entries that im2col
 * copied from that cell. dcol (N*out_h*out_w, kh*kw*C). */
void bnpy_col2im_f32(float *dx, const float *dcol, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                     ptrdiff_t C, int channels_first, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                     ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                     ptrdiff_t out_w, ptrdiff_t dh, ptrdiff_t dw);
void bnpy_col2im_f64(double *dx, const double *dcol, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                     ptrdiff_t C, int channels_first, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                     ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                     ptrdiff_t out_w, ptrdiff_t dh, ptrdiff_t dw);
/* y (rows, C) in place: y[r, c] += bias[c]. bias (C,). */
void bnpy_add_bias_rows_f32(float *y, const float *bias, ptrdiff_t rows, ptrdiff_t C);
void bnpy_add_bias_rows_f64(double *y, const double *bias, ptrdiff_t rows, ptrdiff_t C);
/* dbias (C,) = sum over r of dy[r, c], accumulated in double. dy (rows, C). Returns 0, or -1 when
 * the per-thread partial sums cannot be allocated (dbias untouched). */
int bnpy_sum_rows_f32(float *dbias, const float *dy, ptrdiff_t rows, ptrdiff_t C);
int bnpy_sum_rows_f64(double *dbias, const double *dy, ptrdiff_t rows, ptrdiff_t C);
/* b (N, B, A): b[n, j, i] = a[n, i, j] + (bias ? bias[j] : 0). a (N, A, B); bias (B,) or NULL. */
void bnpy_batch_transpose_f32(float *b, const float *a, const float *bias, ptrdiff_t N, ptrdiff_t A,
                              ptrdiff_t B);
void bnpy_batch_transpose_f64(double *b, const double *a, const double *bias, ptrdiff_t N,
                              ptrdiff_t A, ptrdiff_t B);

/* Pooling (pool.c): only cells inside x take part; requires pad_top, pad_bottom < ph and
 * pad_left, pad_right < pw, so every window holds a real cell. y, argmax, dy: (N, out_h, out_w, C)
 * or (N, C, out_h, out_w) following channels_first. argmax holds h*W + w of the first maximum of
 * each window (row-major window order; a NaN is a maximum). */
void bnpy_max_pool2d_f32(float *y, int32_t *argmax, const float *x, ptrdiff_t N, ptrdiff_t H,
                         ptrdiff_t W, ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw,
                         ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left,
                         ptrdiff_t out_h, ptrdiff_t out_w);
void bnpy_max_pool2d_f64(double *y, int32_t *argmax, const double *x, ptrdiff_t N, ptrdiff_t H,
                         ptrdiff_t W, ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw,
                         ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left,
                         ptrdiff_t out_h, ptrdiff_t out_w);
/* dx (like x, overwritten): dx[n, argmax, c] += dy[n, i, j, c]. */
void bnpy_max_pool2d_backward_f32(float *dx, const float *dy, const int32_t *argmax, ptrdiff_t N,
                                  ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, int channels_first,
                                  ptrdiff_t out_h, ptrdiff_t out_w);
void bnpy_max_pool2d_backward_f64(double *dx, const double *dy, const int32_t *argmax, ptrdiff_t N,
                                  ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, int channels_first,
                                  ptrdiff_t out_h, ptrdiff_t out_w);
/* y = mean of the real cells of each window. */
void bnpy_avg_pool2d_f32(float *y, const float *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                         ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t sh,
                         ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                         ptrdiff_t out_w);
void bnpy_avg_pool2d_f64(double *y, const double *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                         ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t sh,
                         ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                         ptrdiff_t out_w);
/* dx (like x, overwritten): each real cell of a window gets dy / (number of real cells). */
void bnpy_avg_pool2d_backward_f32(float *dx, const float *dy, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                                  ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw,
                                  ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left,
                                  ptrdiff_t out_h, ptrdiff_t out_w);
void bnpy_avg_pool2d_backward_f64(double *dx, const double *dy, ptrdiff_t N, ptrdiff_t H,
                                  ptrdiff_t W, ptrdiff_t C, int channels_first, ptrdiff_t ph,
                                  ptrdiff_t pw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                                  ptrdiff_t pad_left, ptrdiff_t out_h, ptrdiff_t out_w);

/* Direct float32 channels-last convolution (conv_direct.c), for few input channels and large
 * kernels. Needs AVX2 + FMA: call only when bnpy_conv_direct_available() returns 1, and with
 * Cout % 8 == 0. Geometry as above; H, W are x's sizes, the pads those of xpad.
 * xpad (N, H+pad_top+pad_bottom, W+pad_left+pad_right, C): x with zero padding. */
int bnpy_conv_direct_available(void);
/* xpad as above from x (N, H, W, C). */
void bnpy_pad_nhwc_f32(float *xpad, const float *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                       ptrdiff_t C, ptrdiff_t pad_top, ptrdiff_t pad_bottom, ptrdiff_t pad_left,
                       ptrdiff_t pad_right);
/* y (N, out_h, out_w, Cout) = conv(xpad, kernel) + bias. kernel (kh, kw, C, Cout); bias (Cout,) or
 * NULL. Returns 0, or -1 if a scratch copy of the kernel cannot be allocated (y untouched). */
int bnpy_conv2d_direct_f32(float *y, const float *xpad, const float *kernel, const float *bias,
                           ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t kh,
                           ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                           ptrdiff_t pad_bottom, ptrdiff_t pad_left, ptrdiff_t pad_right,
                           ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t Cout);
/* dkernel (kh, kw, C, Cout) = sum over (n, i, j) of xpad-window ⊗ dy (accumulated in double).
 * dy (N, out_h, out_w, Cout). Returns 0, or -1 if scratch cannot be allocated (dkernel untouched). */
int bnpy_conv2d_direct_dkernel_f32(float *dkernel, const float *xpad, const float *dy, ptrdiff_t N,
                                   ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t kh,
                                   ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                                   ptrdiff_t pad_bottom, ptrdiff_t pad_left, ptrdiff_t pad_right,
                                   ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t Cout);

/* ---- FFT convolution (conv_fft.c) ---------------------------------------------------------- */

/* Float32 channels-last stride-1 convolution through 2-D FFTs of size P_h x P_w (products of 2, 3
 * and 5; bnpy_fft_size_supported). Planes are transformed BNPY_FFT_LANES at a time; a spectrum is
 * (blocks, P_h, Pr, 2, BNPY_FFT_LANES) floats, Pr = P_w/2 + 1: per frequency the lanes' real parts,
 * then their imaginary parts. Formulas and the sizes that make the circular products linear: the
 * header of conv_fft.c. Each returns 0, or -1 when scratch memory could not be allocated (the
 * output is then incomplete: the glue discards it). Results do not depend on the thread count. */
#define BNPY_FFT_LANES 8
int bnpy_fft_size_supported(ptrdiff_t n);
/* spec (B, ceil(L/LANES), P_h, Pr, 2, LANES): the spectra of the L planes of each a[b] (a is
 * (B, R, C, L), C-contiguous, R <= P_h, C <= P_w), cell (r, c) placed at
 * ((r + shift_h) mod P_h, (c + shift_w) mod P_w); lanes beyond L are 0. */
int bnpy_fft_spectrum_f32(float *spec, const float *a, ptrdiff_t B, ptrdiff_t R, ptrdiff_t C,
                          ptrdiff_t L, ptrdiff_t P_h, ptrdiff_t P_w, ptrdiff_t shift_h,
                          ptrdiff_t shift_w);
/* y (N, out_h, out_w, Cout) = IDFT(sum_c X[n,c] conj(KF[c,o])) + bias. xspec: the spectrum of x as
 * (1, H, W, N*Cin) (lane n*Cin + c); kspec (Cin, ceil(Cout/LANES), ...): the spectra of the kernel
 * as (Cin, kh, kw, Cout), shifted by (-pad_top, -pad_left); bias (Cout,) or NULL. */
int bnpy_conv2d_fft_forward_f32(float *y, const float *xspec, const float *kspec, const float *bias,
                                ptrdiff_t N, ptrdiff_t Cin, ptrdiff_t Cout, ptrdiff_t out_h,
                                ptrdiff_t out_w, ptrdiff_t P_h, ptrdiff_t P_w);
/* dkernel (kh, kw, Cin, Cout) = IDFT(sum_n X[n,c] conj(DY[n,o])) read at (di - pad_top,
 * dj - pad_left); dy (N, out_h, out_w, Cout); xspec as for the forward. */
int bnpy_conv2d_fft_dkernel_f32(float *dkernel, const float *dy, const float *xspec, ptrdiff_t N,
                                ptrdiff_t Cin, ptrdiff_t Cout, ptrdiff_t out_h, ptrdiff_t out_w,
                                ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t pad_top, ptrdiff_t pad_left,
                                ptrdiff_t P_h, ptrdiff_t P_w);
/* dx (N, H, W, Cin) = IDFT(sum_o DY[n,o] KF[c,o]); dy (N, out_h, out_w, Cout); ktspec
 * (Cout, ceil(Cin/LANES), ...): the spectra of the kernel as (Cout, kh, kw, Cin), shifted as for
 * the forward. */
int bnpy_conv2d_fft_dinput_f32(float *dx, const float *dy, const float *ktspec, ptrdiff_t N,
                               ptrdiff_t Cin, ptrdiff_t Cout, ptrdiff_t H, ptrdiff_t W,
                               ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t P_h, ptrdiff_t P_w);

/* ---- image warps (affine.c) ----------------------------------------------------------------- */

/* How a warp samples outside the input image (scipy.ndimage's mode names, as Keras 2.0 passes
 * them): constant fills with cval; nearest repeats the edge pixel; reflect mirrors about the edge
 * of the image (d c b a | a b c d | d c b a); wrap is scipy's legacy periodic extension, whose
 * period is (size - 1) pixels, not size. */
enum bnpy_fill_mode {
    BNPY_FILL_CONSTANT = 0,
    BNPY_FILL_NEAREST = 1,
    BNPY_FILL_REFLECT = 2,
    BNPY_FILL_WRAP = 3,
};

/* Affine warp of a batch of images, one matrix per image; each output pixel at (row, col) samples
 * the input at the output->input map
 *     r = m[0]*row + m[1]*col + m[2],   c = m[3]*row + m[4]*col + m[5]
 * (scipy.ndimage.affine_transform's convention: matrix m[0..1, 0..1], offset m[0..1, 2]).
 *   out       (n, channels, height, width) if channels_first else (n, height, width, channels)
 *   images    same shape as out; must not overlap out
 *   matrices  (n, matrix_rows, 3) row-major, matrix_rows 2 or 3 (a 3rd homogeneous row is ignored)
 *   order     0: nearest, the pixel at floor(r + 0.5), floor(c + 0.5) (scipy's order=0; ties round
 *                up); 1: bilinear (scipy's order=1)
 *   fill_mode enum bnpy_fill_mode; cval is the constant-mode fill value
 * Coordinates are computed in double for both dtypes; bilinear blends in double.
 * Threads: OpenMP over (image, output row); results do not depend on the thread count. */
void bnpy_affine_warp_f32(float *out, const float *images, const double *matrices, ptrdiff_t n,
                          ptrdiff_t height, ptrdiff_t width, ptrdiff_t channels,
                          ptrdiff_t matrix_rows, int channels_first, int order, int fill_mode,
                          double cval);
void bnpy_affine_warp_f64(double *out, const double *images, const double *matrices, ptrdiff_t n,
                          ptrdiff_t height, ptrdiff_t width, ptrdiff_t channels,
                          ptrdiff_t matrix_rows, int channels_first, int order, int fill_mode,
                          double cval);

#endif /* BNPY_KERNELS_H */
