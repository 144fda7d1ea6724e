// Execution: the input frame and the tiles of one input, with packed weights, in one
// parallel region. Nothing here throws inside the region: scratch is allocated before it.
#pragma once

#include "../kernels/microkernels.h"
#include "pack.h"
#include "plan.h"

namespace spx {

// x and y are stored as S; the frame, the packed weights and the tiles compute in compute_t<S>.
template <typename S>
void execute_conv(const ConvPlan& plan, const PackedWeights<compute_t<S>>& packed, const S* x, S* y,
                  const Epilogue<compute_t<S>>& epilogue);

// Every output of a plan with by_definition set, summed from the problem and the weights as
// given (not packed); `bias` may be null.
template <typename T>
void execute_by_definition(const ConvPlan& plan, const T* x, const T* weight, const T* bias, T* y,
                           const Epilogue<T>& epilogue);

// After execute_conv with weights that had_nonfinite: every output that came out non-finite
// and read a structural zero (outputs_without_structural_zeros; for polyphase plans only the
// border ones) is summed again from the packed weights without those zeros, as the definition
// has it. `out` is the problem's output size.
template <typename T>
void resum_structural_zero_outputs(const ConvPlan& plan, const PackedWeights<T>& packed, const T* x, T* y,
                                   const Extent& out);

}  // namespace spx
