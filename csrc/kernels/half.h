// Half-precision storage types and their scalar conversions to and from float32.
//
// float16 (IEEE binary16) and bfloat16 are storage formats here: the engine computes in
// float32 and rounds once, to nearest even, when it stores a result. The conversions are in
// an anonymous namespace (internal linkage) because the per-ISA units include this header too
// (see microkernels.h): a shared inline definition could be merged across units.
#pragma once

#include <stdint.h>
#include <string.h>

namespace spx {

struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

}  // namespace spx

namespace {

inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

inline float widen_f16(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return bits_float(sign | 0x7F800000u | (mantissa << 13));  // Inf, NaN (payload kept)
  if (exponent != 0) return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
  const float subnormal = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // mantissa * 2**-24, exact
  return sign ? -subnormal : subnormal;
}

// Round to nearest, ties to even; overflow to Inf; NaN stays NaN (quiet).
inline uint16_t narrow_f16(float f) {
  const uint32_t all = float_bits(f), sign = (all >> 16) & 0x8000u, u = all & 0x7FFFFFFFu;
  if (u > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((u >> 13) & 0x3FFu));
  if (u >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 (Inf included)
  uint32_t h, rem, half;
  if (u >= 0x38800000u) {  // a normal half: rebias the exponent, drop 13 mantissa bits
    const uint32_t r = u - 0x38000000u;
    h = r >> 13, rem = r & 0x1FFFu, half = 0x1000u;
  } else if (u >= 0x33000000u) {  // a subnormal half (or the smallest normal, by rounding)
    const uint32_t shift = 126 - (u >> 23), m = (u & 0x7FFFFFu) | 0x800000u;
    h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  } else {
    return static_cast<uint16_t>(sign);  // below half the smallest subnormal
  }
  if (rem > half || (rem == half && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float widen_bf16(uint16_t h) { return bits_float(uint32_t(h) << 16); }

inline uint16_t narrow_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Element access in the compute type, whatever the storage type.
inline float widen(float v) { return v; }
inline double widen(double v) { return v; }
inline float widen(spx::Float16 v) { return widen_f16(v.bits); }
inline float widen(spx::BFloat16 v) { return widen_bf16(v.bits); }
inline void narrow_to(float* p, float v) { *p = v; }
inline void narrow_to(double* p, double v) { *p = v; }
inline void narrow_to(spx::Float16* p, float v) { p->bits = narrow_f16(v); }
inline void narrow_to(spx::BFloat16* p, float v) { p->bits = narrow_bf16(v); }

}  // namespace
