// Chooses the microkernel table once per process from the CPU's features.
#pragma once

#include "microkernels.h"

namespace spx {

struct SimdInfo {
  const char* active;     // level in use
  const char* compiled;   // comma-separated levels compiled into this build
  const char* supported;  // comma-separated compiled levels this CPU can run
  const char* requested;  // SUBPIXEL_EXT_SIMD as read at first use ("" when unset)
  bool request_understood;
};

// The table in use: the best level the CPU supports, capped by SUBPIXEL_EXT_SIMD.
const KernelTable& kernels();
SimdInfo simd_info();

}  // namespace spx
