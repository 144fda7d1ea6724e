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

}  // namespace spx
