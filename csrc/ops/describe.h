// Pieces the operators' problem descriptions share.
#pragma once

#include "ops.h"

namespace spx {

inline ConvProblem base_problem(const ConvShape& s) {
  ConvProblem p;
  p.batch = s.batch;
  p.in_channels = s.in_channels;
  p.groups = s.groups;
  p.in = s.in;
  p.x = layout_strides(s.in_channels, s.in, s.channels_last);
  p.y = layout_strides(s.out_channels, s.out, s.channels_last);
  p.stride = {1, 1, 1};
  return p;
}

// Row-major flat index of kernel element k.
inline int64_t kernel_index(const ConvShape& s, const Extent& k) {
  return (k[0] * s.kernel[1] + k[1]) * s.kernel[2] + k[2];
}

// Calls fn(k) for every kernel element in row-major order.
template <class Fn>
void for_each_kernel_element(const ConvShape& s, Fn&& fn) {
  for (int64_t a = 0; a < s.kernel[0]; ++a)
    for (int64_t b = 0; b < s.kernel[1]; ++b)
      for (int64_t c = 0; c < s.kernel[2]; ++c) fn(Extent{a, b, c});
}

inline Phase make_phase(const Extent& count, const Extent& first, const Extent& step, std::vector<Tap> taps) {
  Phase ph;
  ph.count = count;
  ph.out_first = first;
  ph.out_step = step;
  ph.taps = std::move(taps);
  return ph;
}

}  // namespace spx
