// Field-by-field comparison of plans, problem included: the names of the fields that differ.
#pragma once

#include <string>
#include <vector>

#include "../../csrc/engine/plan.h"

namespace spx_test {

std::vector<std::string> plan_differences(const spx::ConvPlan& a, const spx::ConvPlan& b);

}  // namespace spx_test
