#include "pack.h"

#include <cmath>

#include "../ops/parallel.h"

namespace spx {

std::vector<int64_t> pack_signature(const ConvPlan& plan) {
  const ConvProblem& p = plan.problem;
  std::vector<int64_t> s{plan.pack.chanvec, plan.pack.tile_channels, p.in_channels_per_group(),
                         p.weight_input_step, p.structural_zeros};
  for (const Block& b : p.blocks) {
    const std::vector<Tap>& taps = p.phases[b.phase].taps;
    s.insert(s.end(), {b.weight_first, b.weight_channel_step, b.bias_first, b.bias_step,
                       static_cast<int64_t>(b.out_offsets.size()), static_cast<int64_t>(taps.size())});
    for (const Tap& t : taps) s.push_back(t.weight_offset);
  }
  return s;
}

namespace {

// One block's panels: per tile of channels the bias, then [tap][c][lane] (both families
// reduce in that order), zero beyond the block's channels. Filled in the weights' own memory
// order.
template <typename S, typename T = compute_t<S>>
bool pack_block(const ConvPlan& plan, size_t b, const S* weight, const S* bias, PackedWeights<T>* out) {
  const ConvProblem& p = plan.problem;
  const PackLayout& pk = plan.pack;
  const Block& blk = p.blocks[b];
  const std::vector<Tap>& taps = p.phases[blk.phase].taps;
  const int64_t ntaps = static_cast<int64_t>(taps.size()), cg_in = p.in_channels_per_group();
  const int64_t channels = static_cast<int64_t>(blk.out_offsets.size()), tile_ch = pk.tile_channels;
  T* w = out->weights.data() + pk.weights_first[b];
  T* bs = out->bias.data() + pk.tiles_first[b] * tile_ch;
  bool nonfinite = false;
  for (int64_t tile = 0; tile < pk.tiles_first[b + 1] - pk.tiles_first[b]; ++tile) {
    for (int64_t lane = 0; lane < tile_ch; ++lane) {
      const int64_t co = tile * tile_ch + lane;
      *bs++ = co < channels && bias ? widen(bias[blk.bias_first + co * blk.bias_step]) : T(0);
    }
    for (int64_t c = 0; c < cg_in; ++c)
      for (int64_t lane = 0; lane < tile_ch; ++lane) {
        const int64_t co = tile * tile_ch + lane;
        const S* src = weight + blk.weight_first + co * blk.weight_channel_step + c * p.weight_input_step;
        for (int64_t t = 0; t < ntaps; ++t) {
          const int64_t at = (t * cg_in + c) * tile_ch + lane;
          const T v = co < channels ? widen(src[taps[static_cast<size_t>(t)].weight_offset]) : T(0);
          if (p.structural_zeros && !std::isfinite(v)) nonfinite = true;
          w[at] = v;
        }
      }
    w += cg_in * ntaps * tile_ch;
  }
  return nonfinite;
}

}  // namespace

template <typename S>
std::shared_ptr<const PackedWeights<compute_t<S>>> pack_weights(const ConvPlan& plan, const S* weight, const S* bias,
                                                                int threads) {
  auto packed = std::make_shared<PackedWeights<compute_t<S>>>();
  packed->signature = pack_signature(plan);
  packed->weights.resize(static_cast<size_t>(plan.pack.weights_first.back()));
  packed->bias.resize(static_cast<size_t>(plan.pack.tiles_first.back() * plan.pack.tile_channels));
  const int64_t blocks = static_cast<int64_t>(plan.problem.blocks.size());
  std::vector<char> nonfinite(static_cast<size_t>(blocks), 0);
  const int nt = packed->weights.size() < (size_t(1) << 16) ? 1 : threads;
  parallel_region(nt, [&](int tid, int count) {
    int64_t begin, end;
    split_range(blocks, tid, count, &begin, &end);
    for (int64_t b = begin; b < end; ++b)
      nonfinite[static_cast<size_t>(b)] = pack_block(plan, static_cast<size_t>(b), weight, bias, packed.get());
  });
  for (char f : nonfinite) packed->had_nonfinite |= f != 0;
  return packed;
}

template std::shared_ptr<const PackedWeights<float>> pack_weights(const ConvPlan&, const float*, const float*, int);
template std::shared_ptr<const PackedWeights<double>> pack_weights(const ConvPlan&, const double*, const double*, int);
template std::shared_ptr<const PackedWeights<float>> pack_weights(const ConvPlan&, const Float16*, const Float16*, int);
template std::shared_ptr<const PackedWeights<float>> pack_weights(const ConvPlan&, const BFloat16*, const BFloat16*, int);

}  // namespace spx
