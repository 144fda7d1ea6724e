// Execution: the input frame and the tiles of one input, with packed weights, in one
// parallel region. Nothing here throws inside the region: scratch is allocated before it.
#pragma once

#include "../kernels/microkernels.h"
#include "pack.h"
#include "plan.h"

namespace spx {

template <typename T>
void execute_conv(const ConvPlan& plan, const PackedWeights<T>& packed, const T* x, T* y, const Epilogue<T>& epilogue);

}  // namespace spx
