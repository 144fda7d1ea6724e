// Operators: how each native op is described as a ConvProblem, plus the data-movement ops.
// Plain C++, no Python headers. Callers (the bindings) pass exactly-typed, C-contiguous
// buffers whose shapes the Python layer has validated; operators re-check what memory safety
// depends on.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../engine/problem.h"

namespace spx {

// One convolution's geometry in any rank (unit leading axes below rank 3).
struct ConvShape {
  int64_t batch = 0, in_channels = 0;
  int64_t out_channels = 0;  // of y (after the shuffle for sub-pixel)
  Extent in{}, out{};        // spatial sizes of x and y
  Extent kernel{}, stride{}, dilation{};
  Extent pad_begin{};  // conv: zero padding at the start; transposed: crop of the full output
  int64_t groups = 1;
  bool channels_last = false;
};

enum class TransposedMethod { kDirect, kPolyphase };

// y = conv(x, w) (PyTorch conv{1,2,3}d), w (C_out, C_in/groups, *kernel).
ConvProblem describe_conv(const ConvShape& s);
// y = pixel_shuffle(conv(x, w), factor) without the intermediate tensor; w (C*prod(factor), C_in/groups, *kernel).
ConvProblem describe_subpixel(const ConvShape& s, const Extent& factor, bool dcr);
// y = the window [pad_begin, pad_begin + out) of the full transposed convolution, w (C_in, C_out/groups, *kernel).
ConvProblem describe_conv_transpose(const ConvShape& s, TransposedMethod method);

// The transposed convolution from its definition: every input pixel adds x * w[k] to the
// outputs it reaches (fast for tiny problems; exact for non-finite weights).
template <typename T>
void scatter_transposed(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);

// Moves elements between the low-resolution tensor (batch, C*prod(factor), *spatial) and the
// high-resolution one (batch, C, *(spatial*factor)) in either direction (unshuffle = to_low).
struct ShuffleArgs {
  int64_t batch, channels;  // channels of the high-resolution side
  Extent low, factor;       // low-resolution spatial size
  bool dcr, channels_last, to_low;
  int threads;
};
// Element sizes the data movement handles: every NumPy numeric dtype's.
inline bool movable_element_size(size_t size) {
  return size == 1 || size == 2 || size == 4 || size == 8 || size == 16 || size == 32;
}
void pixel_shuffle(const ShuffleArgs& a, const void* src, void* dst, size_t element_size);

// (batch, *spatial) -> (batch, *(spatial*stride)) with x[b, i] at [b, i*stride], zeros elsewhere.
void zero_insert(int64_t batch, const Extent& size, const Extent& stride, const void* src, void* dst,
                 size_t element_size, int threads);

}  // namespace spx
