// Microkernel interface: the argument blocks every ISA implements and the dispatch table.
//
// Plain C++ with no standard-library templates: this header is included by the per-ISA
// translation units, which are compiled with different instruction-set flags (see
// CMakeLists.txt). Anything with external linkage defined there could be merged across
// those units by the linker and run on a CPU that lacks the instructions.
#pragma once

#include <cstddef>

#include "half.h"

namespace spx {

// What a tile applies to its accumulators before storing them (after the bias).
enum class Activation { kNone, kRelu, kRelu6, kLeakyRelu, kTanh, kSigmoid };

template <typename T>
struct Epilogue {
  Activation activation;
  T negative_slope;  // leaky_relu only
};

// Vectors along output pixels of one row (NCHW frame): an MR x NR tile of
// (output channels) x (pixels), reduction over `k` steps of (input channel, tap). T is the
// compute type (of the frame, the packed weights and the accumulators), Y the output's.
template <typename T, typename Y = T>
struct RowvecArgs {
  size_t mr_valid;            // output channels of the tile that are stored (<= MR)
  size_t nr_valid;            // pixels of the tile that are stored (<= NR)
  size_t k;                   // reduction steps
  const T* x;                 // input element read by pixel 0 at offset 0
  const ptrdiff_t* x_offsets; // k offsets from x; pixel j reads x[offset + j]
  const T* w;                 // packed weights, k x MR
  const T* bias;              // MR entries
  Y* y;                       // output pixel 0, before the channel offset
  const ptrdiff_t* y_channel_offsets;  // MR entries: where channel i's pixel 0 is, from y
  ptrdiff_t y_pixel_stride;
  Epilogue<T> epilogue;
};

// Vectors along output channels (NHWC frame): an MR x NR tile of (pixels) x (output channels),
// reduction over taps x input channels (input channels contiguous in memory).
template <typename T, typename Y = T>
struct ChanvecArgs {
  size_t mr_valid;              // pixels of the tile that are stored (<= MR)
  size_t nr_valid;              // output channels that are stored (<= NR)
  size_t taps;
  size_t channels;              // input channels per tap
  const T* x;                   // the tile's base in the frame (first input channel, tap 0)
  const ptrdiff_t* x_pixel_offsets;  // mr_valid entries: pixel i's base, from x (pixels may
                                     // span several output rows)
  const ptrdiff_t* tap_offsets; // taps offsets from a pixel's base
  const T* w;                   // packed weights, taps x channels x NR
  const T* bias;                // NR entries
  Y* y;                         // the tile's base in the output
  const ptrdiff_t* y_channel_offsets;  // NR entries: where channel j of a pixel is, from its base
  bool y_channels_contiguous;   // y_channel_offsets[j] == y_channel_offsets[0] + j
  const ptrdiff_t* y_pixel_offsets;    // mr_valid entries: pixel i's base, from y
  // The strided kernel's pixels instead: pixel i's base is i * stride from x / from y.
  ptrdiff_t x_pixel_stride, y_pixel_stride;
  Epilogue<T> epilogue;
};

// A weight gradient's products summed over pixels (channels-last operands, no frame): an MR x NR
// tile of (broadcast channels) x (vector channels), one step per pixel of a box of up to three
// axes: sums[i * sums_row + j] += sum over the box of broadcast[i] * vectors[j] at that pixel,
// for the rows i >= first_row and columns j >= first_col only (tiles overlap at the edges).
template <typename T>
struct PixelReductionArgs {
  const T* broadcast;          // MR consecutive elements at each pixel
  const T* vectors;            // NR consecutive elements at each pixel
  size_t counts[3];            // pixels of the box along each axis (outermost first)
  ptrdiff_t broadcast_strides[3], vector_strides[3];  // element steps along each axis
  T* sums;
  ptrdiff_t sums_row;
  size_t first_row, first_col;
};

template <typename T, typename Y = T>
struct ConvKernels {
  size_t lanes;  // elements per vector register
  void (*rowvec)(const RowvecArgs<T, Y>& args);
  size_t rowvec_mr;
  size_t rowvec_nr;
  // The same with a single output channel (MR = 1) and a wider pixel tile, for problems with
  // one output channel per group (single-channel images, depthwise).
  void (*rowvec1)(const RowvecArgs<T, Y>& args);
  size_t rowvec1_nr;
  void (*chanvec)(const ChanvecArgs<T, Y>& args);
  size_t chanvec_mr;
  size_t chanvec_nr;
  // The same for chanvec_strided_mr evenly spaced pixels, all stored (nullptr and 0 where
  // the instruction set has no wider tile than chanvec's).
  void (*chanvec_strided)(const ChanvecArgs<T, Y>& args);
  size_t chanvec_strided_mr;
  void (*pixel_reduction)(const PixelReductionArgs<T>& args);
  size_t pixel_reduction_mr;
  size_t pixel_reduction_nr;
};

struct KernelTable {
  const char* isa;
  ConvKernels<float> f32;
  ConvKernels<double> f64;
  // Register-only float32 FMA loop for measuring the machine's peak: `iterations` rounds of
  // fma_per_iteration independent vector FMAs of fma_lanes lanes. Returns a value that
  // depends on every FMA so the loop cannot be optimized away.
  float (*fma_loop)(size_t iterations);
  size_t fma_per_iteration;
  size_t fma_lanes;
  // Half-precision storage: float32 frames, weights and accumulators, outputs rounded to
  // nearest even in the tiles' store (the f32 tile shapes).
  ConvKernels<float, Float16> f16;
  ConvKernels<float, BFloat16> bf16;
  // n half-precision elements src[i * stride] to float32 dst[i] (the input frame's copy).
  void (*widen_f16)(const Float16* src, ptrdiff_t stride, float* dst, size_t n);
  void (*widen_bf16)(const BFloat16* src, ptrdiff_t stride, float* dst, size_t n);
};

// One getter per compiled ISA unit; declared for all, defined only where compiled.
const KernelTable* kernel_table_scalar();
const KernelTable* kernel_table_sse2();
const KernelTable* kernel_table_avx2();
const KernelTable* kernel_table_avx512();
const KernelTable* kernel_table_neon();

}  // namespace spx
