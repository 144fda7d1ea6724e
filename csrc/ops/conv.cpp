// conv{1,2,3}d and the fused sub-pixel layer: correlations of the zero-padded input.
#include "describe.h"
#include "errors.h"

namespace spx {
namespace {

// The frame and single tap set of a correlation with `count` outputs per axis.
void correlation(const ConvShape& s, const Extent& count, ConvProblem* p, std::vector<Tap>* taps) {
  p->stride = s.stride;
  p->frame.pad = s.pad_begin;
  p->frame.step = {1, 1, 1};
  for (size_t a = 0; a < kMaxRank; ++a) {
    const int64_t span = checked_add(checked_mul(s.dilation[a], s.kernel[a] - 1, "kernel"), 1, "kernel");
    p->frame.size[a] = checked_add(checked_mul(count[a] - 1, s.stride[a], "frame"), span, "frame");
  }
  for_each_kernel_element(s, [&](const Extent& k) {
    taps->push_back({{k[0] * s.dilation[0], k[1] * s.dilation[1], k[2] * s.dilation[2]}, kernel_index(s, k)});
  });
  const int64_t taps_per_channel = volume(s.kernel);
  p->weight_input_step = taps_per_channel;
}

// Weights (C_conv, C_in/groups, *kernel): conv channel cc of group g reads row cc.
Block correlation_block(const ConvProblem& p, int64_t group, int64_t first_channel) {
  Block b;
  b.phase = 0;
  b.group = group;
  b.weight_channel_step = p.in_channels_per_group() * p.weight_input_step;
  b.weight_first = first_channel * b.weight_channel_step;
  b.bias_first = first_channel;
  b.bias_step = 1;
  return b;
}

}  // namespace

ConvProblem describe_conv(const ConvShape& s) {
  ConvProblem p = base_problem(s);
  std::vector<Tap> taps;
  correlation(s, s.out, &p, &taps);
  p.phases.push_back(make_phase(s.out, {0, 0, 0}, {1, 1, 1}, std::move(taps)));
  const int64_t cg_out = s.out_channels / s.groups;
  for (int64_t g = 0; g < s.groups; ++g) {
    Block b = correlation_block(p, g, g * cg_out);
    for (int64_t co = 0; co < cg_out; ++co) b.out_offsets.push_back((g * cg_out + co) * p.y.c);
    p.blocks.push_back(std::move(b));
  }
  return p;
}

ConvProblem describe_subpixel(const ConvShape& s, const Extent& factor, bool dcr) {
  ConvProblem p = base_problem(s);
  Extent count;
  for (size_t a = 0; a < kMaxRank; ++a) count[a] = s.out[a] / factor[a];
  std::vector<Tap> taps;
  correlation(s, count, &p, &taps);
  // One phase on the convolution's grid; each conv channel's output offset carries both its
  // shuffled channel and its sub-pixel position: CRD cc = c*R + rho, DCR cc = rho*C + c.
  p.phases.push_back(make_phase(count, {0, 0, 0}, factor, std::move(taps)));
  const int64_t channels = s.out_channels, R = volume(factor), cg_conv = channels * R / s.groups;
  for (int64_t g = 0; g < s.groups; ++g) {
    Block b = correlation_block(p, g, g * cg_conv);
    for (int64_t cc = g * cg_conv; cc < (g + 1) * cg_conv; ++cc) {
      const int64_t c = dcr ? cc % channels : cc / R, rho = dcr ? cc / channels : cc % R;
      const Extent sub{rho / (factor[1] * factor[2]), (rho / factor[2]) % factor[1], rho % factor[2]};
      int64_t offset = c * p.y.c;
      for (size_t a = 0; a < kMaxRank; ++a) offset += sub[a] * p.y.spatial[a];
      b.out_offsets.push_back(offset);
    }
    p.blocks.push_back(std::move(b));
  }
  return p;
}

}  // namespace spx
