// The element types the engine stores and the type each one computes in.
//
// float and double compute in themselves; float16 and bfloat16 are storage only: frames,
// packed weights and accumulators are float32, and each output is rounded once when stored.
#pragma once

#include "../kernels/half.h"

namespace spx {

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
