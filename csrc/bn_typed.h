/* bn_typed.h: the batch-norm passes and entry points for one element type T, included twice by
 * batchnorm.c with BN_PICK(f32, f64) choosing the float or the double column of this table. */

/* The element type, and the suffix of the internal functions' names. */
#define T BN_PICK(float, double)
#define F(name) BN_PICK(name##_f32, name##_f64)
#define BN_F32 BN_PICK(1, 0)
/* A block's sum of squares below BN_T_BIG overflowed nowhere, and one of at least BN_T_TINY lost
 * nothing that counts to subnormals (see bn_stats_ok in bn_stats.h). */
#define BN_T_BIG BN_PICK(1e30f, 1e300)
#define BN_T_TINY BN_PICK(1e-30f, 1e-290)

/* Values of T in 32 bytes, a vector's lanes. */
#define BN_VT_LANES ((ptrdiff_t)(32 / sizeof(T)))
#ifdef BNPY_VECTOR
/* bn_vt: 32 bytes of T (8 floats or 4 doubles), loaded and stored as they are. */
#define bn_vt BN_PICK(bnpy_vf8, bnpy_vd)
#define bn_vt_load BN_PICK(bnpy_vf8_load, bnpy_vd_load_f64)
#define bn_vt_store BN_PICK(bnpy_vf8_store, bnpy_vd_store_f64)
#define bn_vt_hsum BN_PICK(bnpy_vf8_hsum, bnpy_vd_hsum)
/* 4 values of T as 4 doubles, and back. */
#define bn_vd_load_t BN_PICK(bnpy_vd_load_f32, bnpy_vd_load_f64)
#define bn_vd_store_t BN_PICK(bnpy_vd_store_f32, bnpy_vd_store_f64)
#endif

/* The entry points of kernels.h this instantiation defines (in bn_entry.h). */
#define BN_FORWARD BN_PICK(bnpy_bn_forward_f32, bnpy_bn_forward_f64)
#define BN_INFERENCE BN_PICK(bnpy_bn_inference_f32, bnpy_bn_inference_f64)
#define BN_BACKWARD BN_PICK(bnpy_bn_backward_f32, bnpy_bn_backward_f64)
#define BN_INFERENCE_BACKWARD                                                                      \
    BN_PICK(bnpy_bn_inference_backward_f32, bnpy_bn_inference_backward_f64)
#define BN_UPDATE_MOVING_STATS                                                                     \
    BN_PICK(bnpy_bn_update_moving_stats_f32, bnpy_bn_update_moving_stats_f64)
/* ... and in bn_renorm.h. */
#define BN_RENORM_FORWARD BN_PICK(bnpy_bn_renorm_forward_f32, bnpy_bn_renorm_forward_f64)
#define BN_RENORM_BACKWARD BN_PICK(bnpy_bn_renorm_backward_f32, bnpy_bn_renorm_backward_f64)
/* ... and in bn_ghost.h. */
#define BN_GHOST_FORWARD BN_PICK(bnpy_bn_ghost_forward_f32, bnpy_bn_ghost_forward_f64)
#define BN_GHOST_BACKWARD BN_PICK(bnpy_bn_ghost_backward_f32, bnpy_bn_ghost_backward_f64)

#include "bn_stats.h"
#include "bn_grad.h"
#include "bn_affine.h"
#include "bn_entry.h"
#include "bn_renorm.h"
#include "bn_ghost.h"

#undef T
#undef F
#undef BN_F32
#undef BN_T_BIG
#undef BN_T_TINY
#undef bn_vt
#undef bn_vt_load
#undef bn_vt_store
#undef bn_vt_hsum
#undef BN_VT_LANES
#undef bn_vd_load_t
#undef bn_vd_store_t
#undef BN_FORWARD
#undef BN_INFERENCE
#undef BN_BACKWARD
#undef BN_INFERENCE_BACKWARD
#undef BN_UPDATE_MOVING_STATS
#undef BN_RENORM_FORWARD
#undef BN_RENORM_BACKWARD
#undef BN_GHOST_FORWARD
#undef BN_GHOST_BACKWARD
