// Transposed convolution, both methods, described as ConvProblems:
// * direct: zero-insert the input by the stride, then correlate with the flipped kernel;
// * polyphase: one sub-kernel per output phase on the low-resolution input.
#include <algorithm>
#include <utility>

#include "../engine/plan.h"
#include "describe.h"
#include "errors.h"

namespace spx {
namespace {

// Weights (C_in, C_out/groups, *kernel): output channel co of group g, input channel c.
void transposed_blocks(const ConvShape& s, ConvProblem* p, size_t phase) {
  const int64_t cg_out = s.out_channels / s.groups, taps_per_channel = volume(s.kernel);
  p->weight_input_step = cg_out * taps_per_channel;
  for (int64_t g = 0; g < s.groups; ++g) {
    Block b;
    b.phase = phase;
    b.group = g;
    b.weight_first = g * p->in_channels_per_group() * p->weight_input_step;
    b.weight_channel_step = taps_per_channel;
    b.bias_first = g * cg_out;
    b.bias_step = 1;
    for (int64_t co = 0; co < cg_out; ++co) b.out_offsets.push_back((g * cg_out + co) * p->y.c);
    p->blocks.push_back(std::move(b));
  }
}

void describe_direct(const ConvShape& s, ConvProblem* p) {
  Extent origin;
  for (size_t a = 0; a < kMaxRank; ++a) {
    const int64_t span = checked_add(checked_mul(s.dilation[a], s.kernel[a] - 1, "kernel"), 1, "kernel");
    p->frame.step[a] = s.stride[a];
    p->frame.pad[a] = std::max<int64_t>(0, span - 1 - s.pad_begin[a]);
    origin[a] = s.pad_begin[a] - (span - 1) + p->frame.pad[a];
    const int64_t input_end = checked_add(p->frame.pad[a], checked_mul(s.in[a] - 1, s.stride[a], "frame") + 1, "frame");
    p->frame.size[a] = std::max(input_end, saturating_add(saturating_add(origin[a], s.out[a]), span - 1));
  }
  std::vector<Tap> taps;
  for_each_kernel_element(s, [&](const Extent& k) {
    Tap t;
    Extent flipped;
    for (size_t a = 0; a < kMaxRank; ++a) {
      t.offset[a] = origin[a] + k[a] * s.dilation[a];
      flipped[a] = s.kernel[a] - 1 - k[a];
    }
    t.weight_offset = kernel_index(s, flipped);
    taps.push_back(t);
  });
  p->phases.push_back(make_phase(s.out, {0, 0, 0}, {1, 1, 1}, std::move(taps)));
  transposed_blocks(s, p, 0);
}

// One axis of the polyphase decomposition (shared design notes): output o = n*s + r reads
// input n + e for every tap k with r + crop - k*d == e*s.
struct AxisPhases {
  int64_t pad = 0, frame_len = 0;  // frame position of input 0; frame length
  std::vector<int64_t> count;      // outputs per phase
  std::vector<std::vector<std::pair<int64_t, int64_t>>> taps;  // (k, e) per phase
};

AxisPhases polyphase_axis(int64_t in, int64_t k, int64_t s, int64_t d, int64_t crop, int64_t out) {
  AxisPhases ax;
  // Phases r >= out have no output pixel: a huge stride on a small output costs nothing.
  const int64_t phases = std::min(s, out);
  ax.count.resize(static_cast<size_t>(phases));
  ax.taps.resize(static_cast<size_t>(phases));
  int64_t lowest = 0;
  for (int64_t r = 0; r < phases; ++r) {
    const int64_t count = (out - r - 1) / s + 1;  // r < out; no out + s overflow
    ax.count[static_cast<size_t>(r)] = count;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int64_t num = r + crop - kk * d;  // the Python layer checked crop + out and the kernel extent
      const int64_t e = floor_div(num, s);
      // Skip taps that are not on this phase, and taps that only ever read outside the input.
      if (num % s != 0 || e + count - 1 < 0 || e > in - 1) continue;
      ax.taps[static_cast<size_t>(r)].push_back({kk, e});
      lowest = std::min(lowest, e);
    }
  }
  ax.pad = -lowest;
  ax.frame_len = checked_add(ax.pad, in, "frame");
  for (int64_t r = 0; r < phases; ++r)
    for (const auto& t : ax.taps[static_cast<size_t>(r)])
      ax.frame_len = std::max(ax.frame_len, checked_add(ax.pad + t.second, ax.count[static_cast<size_t>(r)], "frame"));
  return ax;
}

// Taps of phase r: the product of the axes' tap sets.
std::vector<Tap> phase_taps(const ConvShape& s, const AxisPhases (&axes)[kMaxRank], const Extent& r) {
  std::vector<Tap> taps;
  const auto& t0 = axes[0].taps[size_t(r[0])];
  const auto& t1 = axes[1].taps[size_t(r[1])];
  const auto& t2 = axes[2].taps[size_t(r[2])];
  for (const auto& a : t0)
    for (const auto& b : t1)
      for (const auto& c : t2)
        taps.push_back({{a.second + axes[0].pad, b.second + axes[1].pad, c.second + axes[2].pad},
                        kernel_index(s, {a.first, b.first, c.first})});
  return taps;
}

void describe_polyphase(const ConvShape& s, ConvProblem* p) {
  AxisPhases axes[kMaxRank];
  for (size_t a = 0; a < kMaxRank; ++a) {
    axes[a] = polyphase_axis(s.in[a], s.kernel[a], s.stride[a], s.dilation[a], s.pad_begin[a], s.out[a]);
    p->frame.step[a] = 1;
    p->frame.pad[a] = axes[a].pad;
    p->frame.size[a] = axes[a].frame_len;
  }
  p->stride = {1, 1, 1};
  Extent r;
  for (r[0] = 0; r[0] < int64_t(axes[0].count.size()); ++r[0])
    for (r[1] = 0; r[1] < int64_t(axes[1].count.size()); ++r[1])
      for (r[2] = 0; r[2] < int64_t(axes[2].count.size()); ++r[2]) {
        const Extent count{axes[0].count[size_t(r[0])], axes[1].count[size_t(r[1])], axes[2].count[size_t(r[2])]};
        p->phases.push_back(make_phase(count, r, s.stride, phase_taps(s, axes, r)));
        transposed_blocks(s, p, p->phases.size() - 1);
      }
}

}  // namespace

ConvProblem describe_conv_transpose(const ConvShape& s, TransposedMethod method) {
  ConvProblem p = base_problem(s);
  p.structural_zeros = true;
  if (method == TransposedMethod::kDirect)
    describe_direct(s, &p);
  else
    describe_polyphase(s, &p);
  return p;
}

}  // namespace spx
