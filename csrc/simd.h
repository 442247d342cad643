/* simd.h: portable SIMD through GCC/Clang vector extensions (internal, for the kernels).
 *
 * BNPY_VECTOR is defined when the compiler has them; other compilers take the scalar loops, which
 * every vector loop also uses for its tail. Vectors are 32 bytes: one AVX register, two SSE2 ones
 * in a baseline build. The helpers are always inlined, so that their vector code is compiled
 * inside the caller, with the caller's instruction set: a hot loop compiled as target clones
 * (AVX2 and baseline, see BNPY_HOT) gets one vcvtps2pd per load of 4 floats as doubles in its AVX2
 * clone. Loads and stores need no alignment.
 */
#ifndef BNPY_SIMD_H
#define BNPY_SIMD_H

#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define BNPY_ALWAYS_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define BNPY_ALWAYS_INLINE static __forceinline
#else
#define BNPY_ALWAYS_INLINE static inline
#endif

/* The hot loops are compiled twice (x86-64-v3, i.e. AVX2 with FMA, and the baseline) and picked
 * at load time, because setup.py builds for the baseline ISA (GCC target_clones on x86-64 Linux). */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(__clang__) && __GNUC__ >= 12
#define BNPY_HOT __attribute__((target_clones("arch=x86-64-v3", "default"), noinline))
#elif __has_attribute(target_clones)
#define BNPY_HOT __attribute__((target_clones("avx2", "default"), noinline))
#endif
#endif
#ifndef BNPY_HOT
#define BNPY_HOT
#endif

#if defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 9) && !defined(BNPY_NO_VECTOR)
#define BNPY_VECTOR 1

/* The helpers take and return 32-byte vectors, which changes the ABI of a function compiled
 * without AVX; being always inlined, they have no ABI. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

typedef double bnpy_vd __attribute__((vector_size(32))); /* 4 doubles */
typedef float bnpy_vf8 __attribute__((vector_size(32))); /* 8 floats */
typedef float bnpy_vf4 __attribute__((vector_size(16))); /* 4 floats */

/* 4 floats or doubles as 4 doubles; 4 doubles into 4 floats or doubles. */
BNPY_ALWAYS_INLINE bnpy_vd bnpy_vd_load_f32(const float *p)
{
    return (bnpy_vd){p[0], p[1], p[2], p[3]};
}

BNPY_ALWAYS_INLINE bnpy_vd bnpy_vd_load_f64(const double *p)
{
    bnpy_vd v;
    memcpy(&v, p, sizeof v);
    return v;
}

BNPY_ALWAYS_INLINE void bnpy_vd_store_f32(float *p, bnpy_vd v)
{
    bnpy_vf4 f = {(float)v[0], (float)v[1], (float)v[2], (float)v[3]};
    memcpy(p, &f, sizeof f);
}

BNPY_ALWAYS_INLINE void bnpy_vd_store_f64(double *p, bnpy_vd v)
{
    memcpy(p, &v, sizeof v);
}

BNPY_ALWAYS_INLINE bnpy_vd bnpy_vd_splat(double a)
{
    return (bnpy_vd){a, a, a, a};
}

/* The sum of a vector's lanes, as a tree. */
BNPY_ALWAYS_INLINE double bnpy_vd_hsum(bnpy_vd v)
{
    return (v[0] + v[2]) + (v[1] + v[3]);
}

/* 8 floats, loaded and stored as they are. */
BNPY_ALWAYS_INLINE bnpy_vf8 bnpy_vf8_load(const float *p)
{
    bnpy_vf8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

BNPY_ALWAYS_INLINE void bnpy_vf8_store(float *p, bnpy_vf8 v)
{
    memcpy(p, &v, sizeof v);
}

BNPY_ALWAYS_INLINE float bnpy_vf8_hsum(bnpy_vf8 v)
{
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* A non-temporal store of 32 bytes (as they are, any type) to dst, which must be 16-byte aligned:
 * the line goes to memory without being read first (an ordinary store reads the line it writes,
 * a third of a copy's traffic once the arrays stream from memory). x86-64 only (SSE2, the
 * baseline); BNPY_HAVE_STREAM says whether it exists. Call bnpy_stream_fence() after the last
 * one, before other threads read what was written. */
#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define BNPY_HAVE_STREAM 1
BNPY_ALWAYS_INLINE void bnpy_stream_store32(void *dst, const void *src)
{
    __m128i lo, hi;
    memcpy(&lo, src, sizeof lo);
    memcpy(&hi, (const char *)src + sizeof lo, sizeof hi);
    _mm_stream_si128((__m128i *)dst, lo);
    _mm_stream_si128((__m128i *)dst + 1, hi);
}

BNPY_ALWAYS_INLINE void bnpy_stream_fence(void)
{
    _mm_sfence();
}
#endif

#endif /* BNPY_VECTOR */

#endif /* BNPY_SIMD_H */
