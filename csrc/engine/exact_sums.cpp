// Outputs that met a structural zero with non-finite weights, summed again without it.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "execute.h"
#include "../ops/parallel.h"

namespace spx {
namespace {

constexpr int64_t kMaxTileChannels = 64;  // more than any instruction set's tile holds

// The input element offset (in x[n, c]) of phase grid index j read through tap t, or -1
// where the frame holds a structural zero there.
int64_t tap_input(const ConvProblem& p, const Extent& j, const Tap& t) {
  int64_t offset = 0;
  for (size_t a = 0; a < kMaxRank; ++a) {
    const int64_t f = j[a] * p.stride[a] + t.offset[a] - p.frame.pad[a];
    if (f < 0 || f % p.frame.step[a] != 0 || f / p.frame.step[a] >= p.in[a]) return -1;
    offset += f / p.frame.step[a] * p.x.spatial[a];
  }
  return offset;
}

// Whether no later term can change these sums.
template <typename T>
bool all_nan(const T* sum, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(sum[i])) return false;
  return true;
}

// Output j of block b's channel tile `tile`: if the engine made any of its channels non-finite,
// all of them again from the packed weights in the engine's order, skipping structural zeros.
template <typename T>
void resum_tile(const ConvPlan& plan, const PackedWeights<T>& packed, const T* x, T* y, int64_t n, size_t b,
                int64_t tile, const Extent& j) {
  const ConvProblem& p = plan.problem;
  const Block& blk = p.blocks[b];
  const Phase& ph = p.phases[blk.phase];
  const int64_t tile_ch = plan.pack.tile_channels, cg_in = p.in_channels_per_group();
  const int64_t valid = std::min(tile_ch, static_cast<int64_t>(blk.out_offsets.size()) - tile * tile_ch);
  int64_t pixel = n * p.y.n;
  for (size_t a = 0; a < kMaxRank; ++a) pixel += (ph.out_first[a] + j[a] * ph.out_step[a]) * p.y.spatial[a];
  const int64_t* out = blk.out_offsets.data() + tile * tile_ch;
  bool nonfinite = false;
  for (int64_t lane = 0; lane < valid; ++lane) nonfinite = nonfinite || !std::isfinite(y[pixel + out[lane]]);
  if (!nonfinite) return;
  T sum[kMaxTileChannels];
  std::copy_n(packed.bias.data() + (plan.pack.tiles_first[b] + tile) * tile_ch, tile_ch, sum);
  const T* w = packed.weights.data() + plan.pack.weights_first[b] + tile * int64_t(ph.taps.size()) * cg_in * tile_ch;
  const T* x_group = x + n * p.x.n + blk.group * cg_in * p.x.c;
  for (size_t t = 0; t < ph.taps.size() && !all_nan(sum, valid); ++t, w += cg_in * tile_ch) {
    const int64_t at = tap_input(p, j, ph.taps[t]);
    for (int64_t c = 0; c < cg_in && at >= 0; ++c) {
      const T xv = x_group[c * p.x.c + at];
      for (int64_t lane = 0; lane < tile_ch; ++lane) sum[lane] += xv * w[c * tile_ch + lane];
    }
  }
  for (int64_t lane = 0; lane < valid; ++lane) y[pixel + out[lane]] = sum[lane];
}

}  // namespace

template <typename T>
void resum_structural_zero_outputs(const ConvPlan& plan, const PackedWeights<T>& packed, const T* x, T* y,
                                   const Extent& out) {
  const ConvProblem& p = plan.problem;
  if (plan.pack.tile_channels > kMaxTileChannels) throw std::logic_error("a tile holds more channels than expected");
  const std::array<std::vector<char>, kMaxRank> exact = outputs_without_structural_zeros(plan, out);
  int64_t all_rows = 0;  // (image, block, phase row)
  std::vector<int64_t> first_row{0};
  for (const Block& blk : p.blocks) first_row.push_back(all_rows += p.phases[blk.phase].rows());
  all_rows *= p.batch;
  parallel_region(plan.threads, [&](int tid, int count) {
    int64_t begin, end;
    split_range(all_rows, tid, count, &begin, &end);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / first_row.back(), in_image = r % first_row.back();
      const size_t b = size_t(std::upper_bound(first_row.begin(), first_row.end(), in_image) - first_row.begin() - 1);
      const Phase& ph = p.phases[p.blocks[b].phase];
      const int64_t i = in_image - first_row[b];
      Extent j{i / ph.count[1], i % ph.count[1], 0};
      const bool exact_row = exact[0][size_t(ph.out_first[0] + j[0] * ph.out_step[0])] &&
                             exact[1][size_t(ph.out_first[1] + j[1] * ph.out_step[1])];
      for (j[2] = 0; j[2] < ph.count[2]; ++j[2]) {
        if (exact_row && exact[2][size_t(ph.out_first[2] + j[2] * ph.out_step[2])]) continue;
        for (int64_t tile = 0; tile < plan.pack.tiles_first[b + 1] - plan.pack.tiles_first[b]; ++tile)
          resum_tile(plan, packed, x, y, n, b, tile, j);
      }
    }
  });
}

template void resum_structural_zero_outputs(const ConvPlan&, const PackedWeights<float>&, const float*, float*,
                                            const Extent&);
template void resum_structural_zero_outputs(const ConvPlan&, const PackedWeights<double>&, const double*, double*,
                                            const Extent&);

}  // namespace spx
