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

// The table's convolution kernels for storage type S (float, double, Float16, BFloat16).
template <typename S>
struct StorageKernels;
template <>
struct StorageKernels<float> {
  static const ConvKernels<float>& get() { return kernels().f32; }
};
template <>
struct StorageKernels<double> {
  static const ConvKernels<double>& get() { return kernels().f64; }
};
template <>
struct StorageKernels<Float16> {
  static const ConvKernels<float, Float16>& get() { return kernels().f16; }
};
template <>
struct StorageKernels<BFloat16> {
  static const ConvKernels<float, BFloat16>& get() { return kernels().bf16; }
};
template <typename S>
const auto& kernels_for() {
  return StorageKernels<S>::get();
}

}  // namespace spx
