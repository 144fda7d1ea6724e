// Vector types for one instruction set, chosen by the SPX_ISA_* macro of the including unit.
//
// Everything here lives in an anonymous namespace (internal linkage), so the same names
// compiled with different flags in different units can never be merged by the linker.
#pragma once

#include <cstddef>
#include <math.h>  // C functions only: nothing with external linkage is defined in an ISA unit

#include "half.h"

#if defined(SPX_ISA_AVX512) || defined(SPX_ISA_AVX2) || defined(SPX_ISA_SSE2)
#include <immintrin.h>
#elif defined(SPX_ISA_NEON)
#include <arm_neon.h>
#endif

// For helpers that take the accumulators by pointer: inlined, the accumulators stay in
// registers; called, they would be spilled to the stack and reloaded around every call.
#if defined(__GNUC__) || defined(__clang__)
#define SPX_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define SPX_ALWAYS_INLINE __forceinline
#else
#define SPX_ALWAYS_INLINE inline
#endif

#if defined(__clang__)
#define SPX_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define SPX_UNROLL _Pragma("GCC unroll 16")
#else
#define SPX_UNROLL
#endif

namespace {

// Half-precision loads and stores through a float32 buffer, one element at a time: for units
// without conversion instructions. `V` is a complete float32 vector type by the time these
// are instantiated.
template <class V, typename H>
typename V::vec load_widened(const H* p) {
  float t[V::lanes];
  for (int i = 0; i < V::lanes; ++i) t[i] = widen(p[i]);
  return V::load(t);
}
template <class V, typename H>
void store_narrowed(H* p, typename V::vec v) {
  float t[V::lanes];
  V::store(t, v);
  for (int i = 0; i < V::lanes; ++i) narrow_to(p + i, t[i]);
}

#define SPX_HALF_BY_ELEMENT(V)                                                              \
  static vec load(const spx::Float16* p) { return load_widened<V>(p); }                    \
  static vec load(const spx::BFloat16* p) { return load_widened<V>(p); }                   \
  static void store(spx::Float16* p, vec v) { store_narrowed<V>(p, v); }                   \
  static void store(spx::BFloat16* p, vec v) { store_narrowed<V>(p, v); }

#if defined(SPX_ISA_AVX512)
struct VecF32 {
  typedef float scalar;
  typedef __m512 vec;
  enum { lanes = 16 };
  static vec load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static vec splat(float v) { return _mm512_set1_ps(v); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  static vec max(vec a, vec b) { return _mm512_max_ps(a, b); }
  static vec min(vec a, vec b) { return _mm512_min_ps(a, b); }
  // float16: AVX512F's vcvtph2ps / vcvtps2ph (round to nearest even).
  static vec load(const spx::Float16* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static void store(spx::Float16* p, vec v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // bfloat16: the upper 16 bits of a float32; stored rounded to nearest even, NaN kept quiet.
  static vec load(const spx::BFloat16* p) {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  }
  static void store(spx::BFloat16* p, vec v) {
    const __m512i u = _mm512_castps_si512(v), high = _mm512_srli_epi32(u, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(high, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7FFF));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    const __m512i quiet_nan = _mm512_or_si512(high, _mm512_set1_epi32(0x40));
    const __m512i r = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), rounded, quiet_nan);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
};
struct VecF64 {
  typedef double scalar;
  typedef __m512d vec;
  enum { lanes = 8 };
  static vec load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, vec v) { _mm512_storeu_pd(p, v); }
  static vec splat(double v) { return _mm512_set1_pd(v); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
  static vec add(vec a, vec b) { return _mm512_add_pd(a, b); }
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
  static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  static vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
  static vec min(vec a, vec b) { return _mm256_min_ps(a, b); }
  // float16: F16C's vcvtph2ps / vcvtps2ph (round to nearest even); dispatch requires F16C here.
  static vec load(const spx::Float16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store(spx::Float16* p, vec v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // bfloat16: the upper 16 bits of a float32; stored rounded to nearest even, NaN kept quiet.
  static vec load(const spx::BFloat16* p) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
  }
  static void store(spx::BFloat16* p, vec v) {
    const __m256i u = _mm256_castps_si256(v), high = _mm256_srli_epi32(u, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(high, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7FFF));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i quiet_nan = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet_nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    // Every lane is <= 0xFFFF, so the unsigned saturating pack only narrows.
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
  }
};
struct VecF64 {
  typedef double scalar;
  typedef __m256d vec;
  enum { lanes = 4 };
  static vec load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, vec v) { _mm256_storeu_pd(p, v); }
  static vec splat(double v) { return _mm256_set1_pd(v); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
  static vec add(vec a, vec b) { return _mm256_add_pd(a, b); }
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
  SPX_HALF_BY_ELEMENT(VecF32)
  static vec splat(float v) { return _mm_set1_ps(v); }
  static vec fma(vec a, vec b, vec c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static vec add(vec a, vec b) { return _mm_add_ps(a, b); }
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
  static vec add(vec a, vec b) { return _mm_add_pd(a, b); }
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
  SPX_HALF_BY_ELEMENT(VecF32)
  static vec splat(float v) { return vdupq_n_f32(v); }
  static vec fma(vec a, vec b, vec c) { return vfmaq_f32(c, a, b); }
  static vec add(vec a, vec b) { return vaddq_f32(a, b); }
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
  static vec add(vec a, vec b) { return vaddq_f64(a, b); }
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
  SPX_HALF_BY_ELEMENT(VecScalar)
  static vec splat(T s) {
    vec r;
    for (int i = 0; i < 4; ++i) r.v[i] = s;
    return r;
  }
  static vec fma(vec a, vec b, vec c) {
    for (int i = 0; i < 4; ++i) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  static vec add(vec a, vec b) {
    for (int i = 0; i < 4; ++i) a.v[i] += b.v[i];
    return a;
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
