// Vector types for one instruction set, chosen by the SPX_ISA_* macro of the including unit.
//
// Everything here lives in an anonymous namespace (internal linkage), so the same names
// compiled with different flags in different units can never be merged by the linker.
#pragma once

#include <cstddef>
#include <math.h>  // C functions only: nothing with external linkage is defined in an ISA unit

#if defined(SPX_ISA_AVX512) || defined(SPX_ISA_AVX2) || defined(SPX_ISA_SSE2)
#include <immintrin.h>
#elif defined(SPX_ISA_NEON)
#include <arm_neon.h>
#endif

#if defined(__clang__)
#define SPX_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define SPX_UNROLL _Pragma("GCC unroll 16")
#else
#define SPX_UNROLL
#endif

namespace {

#if defined(SPX_ISA_AVX512)
struct VecF32 {
  typedef float scalar;
  typedef __m512 vec;
  enum { lanes = 16 };
  static vec load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static vec splat(float v) { return _mm512_set1_ps(v); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec max(vec a, vec b) { return _mm512_max_ps(a, b); }
  static vec min(vec a, vec b) { return _mm512_min_ps(a, b); }
};
struct VecF64 {
  typedef double scalar;
  typedef __m512d vec;
  enum { lanes = 8 };
  static vec load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, vec v) { _mm512_storeu_pd(p, v); }
  static vec splat(double v) { return _mm512_set1_pd(v); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
  static vec max(vec a, vec b) { return _mm512_max_pd(a, b); }
  static vec min(vec a, vec b) { return _mm512_min_pd(a, b); }
};
#elif defined(SPX_ISA_AVX2)
struct VecF32 {
  typedef float scalar;
  typedef __m256 vec;
  enum { lanes = 8 };
  static vec load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
  static vec splat(float v) { return _mm256_set1_ps(v); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
  static vec min(vec a, vec b) { return _mm256_min_ps(a, b); }
};
struct VecF64 {
  typedef double scalar;
  typedef __m256d vec;
  enum { lanes = 4 };
  static vec load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, vec v) { _mm256_storeu_pd(p, v); }
  static vec splat(double v) { return _mm256_set1_pd(v); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
  static vec max(vec a, vec b) { return _mm256_max_pd(a, b); }
  static vec min(vec a, vec b) { return _mm256_min_pd(a, b); }
};
#elif defined(SPX_ISA_SSE2)
// x86-64 baseline: no FMA instruction, so multiply then add.
struct VecF32 {
  typedef float scalar;
  typedef __m128 vec;
  enum { lanes = 4 };
  static vec load(const float* p) { return _mm_loadu_ps(p); }
  static void store(float* p, vec v) { _mm_storeu_ps(p, v); }
  static vec splat(float v) { return _mm_set1_ps(v); }
  static vec fma(vec a, vec b, vec c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static vec max(vec a, vec b) { return _mm_max_ps(a, b); }
  static vec min(vec a, vec b) { return _mm_min_ps(a, b); }
};
struct VecF64 {
  typedef double scalar;
  typedef __m128d vec;
  enum { lanes = 2 };
  static vec load(const double* p) { return _mm_loadu_pd(p); }
  static void store(double* p, vec v) { _mm_storeu_pd(p, v); }
  static vec splat(double v) { return _mm_set1_pd(v); }
  static vec fma(vec a, vec b, vec c) { return _mm_add_pd(_mm_mul_pd(a, b), c); }
  static vec max(vec a, vec b) { return _mm_max_pd(a, b); }
  static vec min(vec a, vec b) { return _mm_min_pd(a, b); }
};
#elif defined(SPX_ISA_NEON)
struct VecF32 {
  typedef float scalar;
  typedef float32x4_t vec;
  enum { lanes = 4 };
  static vec load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, vec v) { vst1q_f32(p, v); }
  static vec splat(float v) { return vdupq_n_f32(v); }
  static vec fma(vec a, vec b, vec c) { return vfmaq_f32(c, a, b); }
  static vec max(vec a, vec b) { return vmaxq_f32(a, b); }
  static vec min(vec a, vec b) { return vminq_f32(a, b); }
};
struct VecF64 {
  typedef double scalar;
  typedef float64x2_t vec;
  enum { lanes = 2 };
  static vec load(const double* p) { return vld1q_f64(p); }
  static void store(double* p, vec v) { vst1q_f64(p, v); }
  static vec splat(double v) { return vdupq_n_f64(v); }
  static vec fma(vec a, vec b, vec c) { return vfmaq_f64(c, a, b); }
  static vec max(vec a, vec b) { return vmaxq_f64(a, b); }
  static vec min(vec a, vec b) { return vminq_f64(a, b); }
};
#else
// Portable fallback for other architectures: small fixed arrays the compiler may vectorize.
template <typename T>
struct VecScalar {
  typedef T scalar;
  struct vec {
    T v[4];
  };
  enum { lanes = 4 };
  static vec load(const T* p) {
    vec r;
    for (int i = 0; i < 4; ++i) r.v[i] = p[i];
    return r;
  }
  static void store(T* p, vec a) {
    for (int i = 0; i < 4; ++i) p[i] = a.v[i];
  }
  static vec splat(T s) {
    vec r;
    for (int i = 0; i < 4; ++i) r.v[i] = s;
    return r;
  }
  static vec fma(vec a, vec b, vec c) {
    for (int i = 0; i < 4; ++i) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  // b when a and b are unordered, as the x86 instructions do (NaN in b propagates).
  static vec max(vec a, vec b) {
    for (int i = 0; i < 4; ++i) b.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
    return b;
  }
  static vec min(vec a, vec b) {
    for (int i = 0; i < 4; ++i) b.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
    return b;
  }
};
typedef VecScalar<float> VecF32;
typedef VecScalar<double> VecF64;
#endif

}  // namespace
