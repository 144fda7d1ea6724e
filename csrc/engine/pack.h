// Packing: weights and bias into the microkernel's panel order, once per weight layout.
//
// Packed weights depend on the plan's PackLayout and on each block's taps and weight
// mapping, never on the input's size otherwise: an operator reuses them for every input
// whose plan has the same signature.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "plan.h"
#include "storage.h"

namespace spx {

template <typename T>
struct PackedWeights {
  std::vector<int64_t> signature;  // pack_signature() of the plans these weights serve
  AlignedVector<T> weights, bias;
  bool had_nonfinite = false;  // non-finite weights meet structural zeros (see ConvProblem)
};

// Everything packing reads from a plan, as one comparable list.
std::vector<int64_t> pack_signature(const ConvPlan& plan);

// Weights stored as S are packed in S's compute type (half precision widened to float32 here,
// once, rather than in every tile).
template <typename S>
std::shared_ptr<const PackedWeights<compute_t<S>>> pack_weights(const ConvPlan& plan, const S* weight, const S* bias,
                                                                int threads);

}  // namespace spx
