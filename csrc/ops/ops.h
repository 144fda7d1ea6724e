// Operators: the shape logic of every native op. Plain C++, no Python headers.
//
// Callers (the bindings) pass exactly-typed, C-contiguous buffers whose shapes the Python
// layer has validated; operators re-check what memory safety depends on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spx {

// Logical sizes of a 4-D tensor, whatever its memory layout.
struct Dims {
  int64_t n, c, h, w;
};

struct ConvArgs {
  Dims x, y;                // y: the final output (after the shuffle for sub-pixel)
  int64_t kh, kw;           // kernel size
  int64_t stride_h, stride_w;
  int64_t dilation_h, dilation_w;
  int64_t pad_top, pad_left;  // conv: zero padding; transposed: crop of the full output
  int64_t groups;
  bool nhwc;
  int threads;  // resolved thread count (>= 1)
};

enum class TransposedMethod { kDirect, kPolyphase };

// y = torch.nn.functional.conv2d(x, w, bias, ...); w is (C_out, C_in/groups, kh, kw).
template <typename T>
void conv2d(const ConvArgs& a, const T* x, const T* w, const T* bias, T* y);

// y = torch.nn.functional.conv_transpose2d(x, w, bias, ...) restricted to the window
// [pad_top, pad_top + y.h) x [pad_left, pad_left + y.w) of the full output;
// w is (C_in, C_out/groups, kh, kw). Non-finite weights are treated as zero; returns whether
// there were any (the caller adds their contributions, see conv_ops.cpp).
template <typename T>
bool conv_transpose2d(const ConvArgs& a, TransposedMethod method, const T* x, const T* w, const T* bias, T* y);

// y = pixel_shuffle(conv2d(x, w, bias, ...), (rh, rw)) without the intermediate tensor.
template <typename T>
void subpixel_conv2d(const ConvArgs& a, int64_t rh, int64_t rw, bool dcr, const T* x, const T* w, const T* bias,
                     T* y);

// Moves elements between the low-resolution tensor (batch, C*rh*rw, h, w) and the
// high-resolution one (batch, C, h*rh, w*rw) in either direction (unshuffle = to_low).
struct ShuffleArgs {
  int64_t batch, channels, h, w;  // channels and spatial size of the high-resolution side
  int64_t rh, rw;
  bool dcr, nhwc, to_low;
  int threads;
};
void pixel_shuffle(const ShuffleArgs& a, const void* src, void* dst, size_t element_size);

// (batch, h, w) -> (batch, h*sh, w*sw) with x[b, i, j] at [b, i*sh, j*sw], zeros elsewhere.
void zero_insert(int64_t batch, int64_t h, int64_t w, int64_t sh, int64_t sw, const void* src, void* dst,
                 size_t element_size, int threads);

}  // namespace spx
