// Errors the operators raise before any parallel work starts (translated by the bindings), and
// the checked arithmetic that raises them.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace spx {

// A size that cannot be represented or allocated: becomes Python's MemoryError.
struct SizeError : std::runtime_error {
  explicit SizeError(const std::string& what) : std::runtime_error(what) {}
};

// Checked 64-bit arithmetic for every size and position the operators derive from user
// geometry (defence in depth: the Python layer validates the geometry first).

// *r = a op b; true (and *r unspecified) when the exact result does not fit in int64.
inline bool add_overflows(int64_t a, int64_t b, int64_t* r) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_add_overflow(a, b, r);
#else
  if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return true;
  *r = a + b;
  return false;
#endif
}
inline bool sub_overflows(int64_t a, int64_t b, int64_t* r) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_sub_overflow(a, b, r);
#else
  if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b)) return true;
  *r = a - b;
  return false;
#endif
}
inline bool mul_overflows(int64_t a, int64_t b, int64_t* r) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_mul_overflow(a, b, r);
#else
  if (a != 0 && b != 0) {
    const bool negative = (a < 0) != (b < 0);
    const uint64_t ua = a < 0 ? 0 - uint64_t(a) : uint64_t(a), ub = b < 0 ? 0 - uint64_t(b) : uint64_t(b);
    const uint64_t limit = negative ? uint64_t(INT64_MAX) + 1 : uint64_t(INT64_MAX);
    if (ua > limit / ub) return true;
  }
  *r = int64_t(uint64_t(a) * uint64_t(b));
  return false;
#endif
}

// Product of non-negative sizes; SizeError instead of a silent wrap-around.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0 || mul_overflows(a, b, &r)) throw SizeError(std::string("size of ") + what + " overflows 64 bits");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0 || add_overflows(a, b, &r)) throw SizeError(std::string("size of ") + what + " overflows 64 bits");
  return r;
}

// A position past the end of anything representable: reads there can only be padding, and
// planning drops them (a frame that still needs them cannot be allocated: SizeError).
inline int64_t saturating_add(int64_t a, int64_t b) {
  int64_t r;
  return add_overflows(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

}  // namespace spx
