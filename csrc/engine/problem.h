// The problem every convolution of this package is described as: phases x channel blocks,
// each a correlation of a zero-padded input "frame" with a set of taps.
//
//   y[n, out_offsets[co] + sum_a (out_first[a] + i_a * out_step[a]) * y.spatial[a]]
//     = bias(co) + sum over input channels c of the block's group and taps t of
//       weight(co, c, t) * frame[n, c, i_a * stride[a] + t.offset[a]]
//
// Spatial rank is a parameter: coordinates are arrays of kMaxRank axes (depth, height,
// width), and a lower rank has unit leading axes, so 1-D, 2-D and 3-D run the same code. The
// operators (csrc/ops) only describe their problem; plan.h, pack.h and execute.h do the rest.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace spx {

constexpr int kMaxRank = 3;
using Extent = std::array<int64_t, kMaxRank>;  // per spatial axis, the last one innermost

inline int64_t volume(const Extent& e) { return e[0] * e[1] * e[2]; }

struct Tap {
  Extent offset;          // frame position read by output pixel 0 of the phase
  int64_t weight_offset;  // element offset of the kernel tap in the weight
};

// Output pixels on a regular grid that share one set of taps.
struct Phase {
  Extent count, out_first, out_step;
  std::vector<Tap> taps;
  // Everything but the innermost axis is a "row" of the engine's tiles.
  int64_t rows() const { return count[0] * count[1]; }
  int64_t cols() const { return count[2]; }
};

// A group's output channels in one phase, each with its own place in the output.
struct Block {
  size_t phase;
  int64_t group;  // input-channel group read
  // weight(co, c, t) = weight[weight_first + co * weight_channel_step + c * weight_input_step + t.weight_offset]
  int64_t weight_first, weight_channel_step;
  int64_t bias_first, bias_step;     // bias(co) = bias[bias_first + co * bias_step]
  std::vector<int64_t> out_offsets;  // per local channel: element offset of its pixel 0 in y[n]
};

// Element strides of a tensor addressed as (n, c, spatial...), whatever its memory layout.
struct TensorStrides {
  int64_t n, c;
  Extent spatial;
};

inline TensorStrides layout_strides(int64_t channels, const Extent& size, bool channels_last) {
  TensorStrides s;
  int64_t step = channels_last ? channels : 1;
  for (int a = kMaxRank - 1; a >= 0; --a) {
    s.spatial[static_cast<size_t>(a)] = step;
    step *= size[static_cast<size_t>(a)];
  }
  s.c = channels_last ? 1 : step;
  s.n = channels_last ? step : step * channels;
  return s;
}

// Where the input lands in the zero-padded work buffer.
struct InputFrame {
  Extent pad;   // frame position of input pixel 0 (negative: the frame starts inside the input)
  Extent step;  // frame distance between neighbouring input pixels (zero insertion)
  Extent size;
};

struct ConvProblem {
  int64_t batch = 0, in_channels = 0, groups = 1;
  Extent in{};      // input spatial size
  Extent stride{};  // frame distance between neighbouring output pixels of a phase
  TensorStrides x{}, y{};
  InputFrame frame{};
  int64_t weight_input_step = 0;  // weight elements between neighbouring input channels
  // Transposed convolutions' frames hold padding and inserted zeros that their definition
  // never multiplies: a non-finite weight meeting one makes a NaN the definition does not
  // have, so packing flags such weights and the operator sums the outputs that come out
  // non-finite and read such a zero again without it (resum_structural_zero_outputs).
  // Correlations multiply their zero padding by definition (false).
  bool structural_zeros = false;
  // Planning drops the taps that only ever read padding, unless the definition multiplies
  // that padding by non-finite weights (set by the operator for correlations with such weights).
  bool keep_padding_taps = false;
  std::vector<Phase> phases;
  std::vector<Block> blocks;

  int64_t in_channels_per_group() const { return in_channels / groups; }
};

}  // namespace spx
