#include "pack.h"

#include <algorithm>
#include <cstdint>

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

// Input channel c of block b's channel tile `tile`: its weights of every tap into the panel
// ([tap][c][lane]: both families reduce in that order), zero beyond the block's channels.
// Returns whether a non-finite weight met structural zeros.
template <typename S, typename T = compute_t<S>>
bool pack_tile_channel(const ConvPlan& plan, size_t b, int64_t tile, int64_t c, const S* weight,
                       PackedWeights<T>* out) {
  const ConvProblem& p = plan.problem;
  const PackLayout& pk = plan.pack;
  const Block& blk = p.blocks[b];
  const std::vector<Tap>& taps = p.phases[blk.phase].taps;
  const int64_t ntaps = static_cast<int64_t>(taps.size()), cg_in = p.in_channels_per_group();
  const int64_t tile_ch = pk.tile_channels, step = blk.weight_channel_step;
  const int64_t valid = std::min(tile_ch, static_cast<int64_t>(blk.out_offsets.size()) - tile * tile_ch);
  const S* in = weight + blk.weight_first + tile * tile_ch * step + c * p.weight_input_step;
  T* panel = out->weights.data() + pk.weights_first[b] + (tile * ntaps * cg_in + c) * tile_ch;
  bool nonfinite = false;
  for (int64_t t = 0; t < ntaps; ++t) {
    T* w = panel + t * cg_in * tile_ch;
    const S* tap = in + taps[static_cast<size_t>(t)].weight_offset;
    for (int64_t lane = 0; lane < valid; ++lane) {
      w[lane] = widen(tap[lane * step]);
      nonfinite |= nonfinite_value(w[lane]);
    }
    std::fill(w + valid, w + tile_ch, T(0));
  }
  return nonfinite && p.structural_zeros;
}

// Input channels [c0, c1) of every block's panels. Blocks inside channels inside channel
// tiles: one input channel's weights of a tile's lanes are a few cache lines holding every
// tap of every phase, read from L1 by all the blocks (phases) sharing the tile; each panel
// is written in runs of consecutive channels.
template <typename S, typename T = compute_t<S>>
bool pack_channels(const ConvPlan& plan, int64_t c0, int64_t c1, const S* weight, PackedWeights<T>* out) {
  const PackLayout& pk = plan.pack;
  const size_t blocks = plan.problem.blocks.size();
  int64_t max_tiles = 0;
  for (size_t b = 0; b < blocks; ++b) max_tiles = std::max(max_tiles, pk.tiles_first[b + 1] - pk.tiles_first[b]);
  bool found = false;
  for (int64_t tile = 0; tile < max_tiles; ++tile)
    for (int64_t c = c0; c < c1; ++c)
      for (size_t b = 0; b < blocks; ++b)
        if (tile < pk.tiles_first[b + 1] - pk.tiles_first[b]) found = pack_tile_channel(plan, b, tile, c, weight, out) || found;
  return found;
}

// Input channels per pass of pack_channels: the weights a pass reads for all blocks
// (a phase's taps are spread over the whole kernel) stay in the L2 cache meanwhile.
template <typename S>
int64_t channels_per_pass(const ConvProblem& p) {
  constexpr int64_t kPassBytes = int64_t(256) << 10;
  int64_t per_channel = 1;  // weights one input channel of group 0 contributes
  for (const Block& b : p.blocks)
    if (b.group == 0) per_channel += static_cast<int64_t>(b.out_offsets.size() * p.phases[b.phase].taps.size());
  return std::max<int64_t>(1, kPassBytes / (per_channel * static_cast<int64_t>(sizeof(S))));
}

template <typename S, typename T = compute_t<S>>
void pack_block_bias(const ConvPlan& plan, size_t b, const S* bias, PackedWeights<T>* out) {
  const Block& blk = plan.problem.blocks[b];
  const int64_t channels = static_cast<int64_t>(blk.out_offsets.size()), tile_ch = plan.pack.tile_channels;
  T* bs = out->bias.data() + plan.pack.tiles_first[b] * tile_ch;
  for (int64_t co = 0; co < (plan.pack.tiles_first[b + 1] - plan.pack.tiles_first[b]) * tile_ch; ++co)
    bs[co] = co < channels && bias ? widen(bias[blk.bias_first + co * blk.bias_step]) : T(0);
}

}  // namespace

template <typename S>
std::shared_ptr<const PackedWeights<compute_t<S>>> pack_weights(const ConvPlan& plan, const S* weight, const S* bias,
                                                                int threads) {
  auto packed = std::make_shared<PackedWeights<compute_t<S>>>();
  packed->signature = pack_signature(plan);
  packed->weights.resize(static_cast<size_t>(plan.pack.weights_first.back()));
  packed->bias.resize(static_cast<size_t>(plan.pack.tiles_first.back() * plan.pack.tile_channels));
  const size_t blocks = plan.problem.blocks.size();
  for (size_t b = 0; b < blocks; ++b) pack_block_bias(plan, b, bias, packed.get());
  // Threads take ranges of input channels through every block, a pass at a time.
  const int64_t pass = channels_per_pass<S>(plan.problem);
  const int nt = packed->weights.size() < (size_t(1) << 16) ? 1 : threads;
  std::vector<char> nonfinite(static_cast<size_t>(nt), 0);
  parallel_region(nt, [&](int tid, int count) {
    int64_t begin, end;
    split_range(plan.problem.in_channels_per_group(), tid, count, &begin, &end);
    bool found = false;
    for (int64_t c0 = begin; c0 < end; c0 += pass)
      found = pack_channels(plan, c0, std::min(end, c0 + pass), weight, packed.get()) || found;
    nonfinite[static_cast<size_t>(tid)] = found;
  });
  for (char f : nonfinite) packed->had_nonfinite |= f != 0;
  return packed;
}

template std::shared_ptr<const PackedWeights<float>> pack_weights(const ConvPlan&, const float*, const float*, int);
template std::shared_ptr<const PackedWeights<double>> pack_weights(const ConvPlan&, const double*, const double*, int);
template std::shared_ptr<const PackedWeights<float>> pack_weights(const ConvPlan&, const Float16*, const Float16*, int);
template std::shared_ptr<const PackedWeights<float>> pack_weights(const ConvPlan&, const BFloat16*, const BFloat16*, int);

}  // namespace spx
