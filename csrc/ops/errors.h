// Errors the operators raise before any parallel work starts (translated by the bindings).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace spx {

// A size that cannot be represented or allocated: becomes Python's MemoryError.
struct SizeError : std::runtime_error {
  explicit SizeError(const std::string& what) : std::runtime_error(what) {}
};

// Product of non-negative sizes; SizeError instead of a silent wrap-around.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a))
    throw SizeError(std::string("size of ") + what + " overflows 64 bits");
  return a * b;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0 || a > INT64_MAX - b)
    throw SizeError(std::string("size of ") + what + " overflows 64 bits");
  return a + b;
}

}  // namespace spx
