// The element types the engine stores and the type each one computes in.
//
// float and double compute in themselves; float16 and bfloat16 are storage only: frames,
// packed weights and accumulators are float32, and each output is rounded once when stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "../kernels/half.h"

namespace spx {

// Whether v is Inf or NaN, by its exponent bits: branch-free, so loops over many values
// vectorize (std::isfinite with an early exit does not).
inline bool nonfinite_value(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x7f800000u) == 0x7f800000u;
}
inline bool nonfinite_value(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
}

// Packed weights start on a cache line: then no vector load of a panel straddles two lines
// (a panel row is a whole number of vectors).
constexpr size_t kCacheLine = 64;

template <typename T>
struct CacheLineAllocator {
  typedef T value_type;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  // A plain allocation a line longer, the block placed on a line boundary inside it and the
  // allocation's address stored just before the block (aligned operator new measured a higher
  // resident size over repeated large allocations).
  T* allocate(size_t n) {
    char* raw = static_cast<char*>(::operator new(n * sizeof(T) + kCacheLine));
    char* block = raw + kCacheLine - reinterpret_cast<uintptr_t>(raw) % kCacheLine;  // >= raw + sizeof(void*)
    std::memcpy(block - sizeof(void*), &raw, sizeof(void*));
    return reinterpret_cast<T*>(block);
  }
  void deallocate(T* p, size_t) {
    void* raw;
    std::memcpy(&raw, reinterpret_cast<char*>(p) - sizeof(void*), sizeof(void*));
    ::operator delete(raw);
  }
  // resize() default-initializes: packing writes every element, so no zeroing pass first.
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

template <typename S>
struct ComputeType {
  typedef S type;
};
template <>
struct ComputeType<Float16> {
  typedef float type;
};
template <>
struct ComputeType<BFloat16> {
  typedef float type;
};
template <typename S>
using compute_t = typename ComputeType<S>::type;

}  // namespace spx
