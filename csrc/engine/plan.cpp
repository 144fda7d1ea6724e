#include "plan.h"

#include <algorithm>

#include "../ops/errors.h"

namespace spx {
namespace {

// Below this many multiply-adds a call runs on one thread: waking the pool costs more.
constexpr int64_t kSerialMacs = int64_t(1) << 16;

// Outputs of this many elements (8 MiB of float32) or more outgrow the caches' and the
// TLB's reach.
constexpr int64_t kLargeOutputElements = int64_t(1) << 21;

bool unit_steps(const std::vector<int64_t>& offsets) {
  for (size_t j = 1; j < offsets.size(); ++j)
    if (offsets[j] != offsets[j - 1] + 1) return false;
  return true;
}

// Whether block `c` is the column phase `r` sibling of `b` (same rows, same channels).
bool is_sibling(const ConvProblem& p, size_t b, size_t c, int64_t r) {
  const Block &blk = p.blocks[b], &cand = p.blocks[c];
  const Phase &ph = p.phases[blk.phase], &cp = p.phases[cand.phase];
  const int64_t S = ph.out_step[2];
  for (int a = 0; a < kMaxRank - 1; ++a) {
    const size_t i = static_cast<size_t>(a);
    if (cp.out_first[i] != ph.out_first[i] || cp.out_step[i] != ph.out_step[i] || cp.count[i] != ph.count[i])
      return false;
  }
  return cand.group == blk.group && cand.out_offsets == blk.out_offsets && cp.out_first[2] == r &&
         cp.out_step[2] == S && (cp.cols() == ph.cols() || cp.cols() + 1 == ph.cols());
}

Units make_units(const ConvProblem& p, bool allow_buffered) {
  Units u;
  std::vector<char> used(p.blocks.size(), 0);
  for (size_t b = 0; b < p.blocks.size(); ++b) {
    if (used[b]) continue;
    const Phase& ph = p.phases[p.blocks[b].phase];
    std::vector<size_t> unit{b};
    const int64_t S = ph.out_step[2];
    if (allow_buffered && S > 1 && S <= static_cast<int64_t>(p.blocks.size()) && ph.out_first[2] == 0) {
      for (int64_t r = 1; r < S; ++r)
        for (size_t c = b + 1; c < p.blocks.size(); ++c)
          if (!used[c] && is_sibling(p, b, c, r)) {
            unit.push_back(c);
            break;
          }
    }
    const bool buffered = static_cast<int64_t>(unit.size()) == S && S > 1;
    if (!buffered) unit.resize(1);
    for (size_t c : unit) used[c] = 1;
    u.blocks.push_back(unit);
    u.buffered.push_back(buffered);
    if (buffered) u.max_siblings = std::max(u.max_siblings, S);
  }
  return u;
}

// The outputs i in [*first, *last] of an axis whose read at frame position
// i * stride + offset falls in the input's span [begin, end] of the frame.
void reaching_outputs(int64_t offset, int64_t stride, int64_t begin, int64_t end, int64_t count, int64_t* first,
                      int64_t* last) {
  *first = std::max<int64_t>(0, -floor_div(offset - begin, stride));
  *last = std::min(count - 1, floor_div(end - offset, stride));
}

// Per tap of the single phase whether it reads the input from some output on every axis; the
// box [lo, hi] of outputs those taps reach the input from.
std::vector<char> live_taps(const ConvProblem& p, Extent* lo, Extent* hi) {
  const Phase& ph = p.phases[0];
  Extent span_end;
  for (size_t a = 0; a < kMaxRank; ++a) {
    span_end[a] = checked_add(p.frame.pad[a], checked_mul(p.in[a] - 1, p.frame.step[a], "frame"), "frame");
    (*lo)[a] = INT64_MAX, (*hi)[a] = -1;
  }
  std::vector<char> live(ph.taps.size(), 0);
  for (size_t t = 0; t < ph.taps.size(); ++t) {
    Extent first, last;
    bool reads = true;
    for (size_t a = 0; a < kMaxRank; ++a) {
      reaching_outputs(ph.taps[t].offset[a], p.stride[a], p.frame.pad[a], span_end[a], ph.count[a], &first[a], &last[a]);
      reads = reads && first[a] <= last[a];
    }
    if (!reads) continue;
    live[t] = 1;
    for (size_t a = 0; a < kMaxRank; ++a) (*lo)[a] = std::min((*lo)[a], first[a]), (*hi)[a] = std::max((*hi)[a], last[a]);
  }
  return live;
}

// A single output along an axis has no neighbour: its stride would only spread the rowvec
// frame's de-interleaved rows and the tiles' pixel steps (past int64 for a huge one).
void single_outputs_without_stride(ConvProblem* p) {
  for (size_t a = 0; a < kMaxRank; ++a)
    if (p->phases[0].count[a] == 1) p->stride[a] = 1;
}

// Padding that no output reads costs nothing: a single-phase problem is narrowed to the box of
// outputs that reach the input and to the taps that do (see PaddingOutputs), its frame to their
// reads. Problems without such outputs and taps are left exactly as described.
void trim_to_input(ConvPlan* plan) {
  ConvProblem& p = plan->problem;
  if (p.phases.size() != 1) return;
  Phase& ph = p.phases[0];
  Extent lo, hi;
  const std::vector<char> live = live_taps(p, &lo, &hi);
  const bool all_live = std::find(live.begin(), live.end(), 0) == live.end();
  bool any_live = std::find(live.begin(), live.end(), 1) != live.end(), whole = any_live;
  for (size_t a = 0; a < kMaxRank; ++a) whole = whole && lo[a] == 0 && hi[a] == ph.count[a] - 1;
  if (whole && all_live) return single_outputs_without_stride(&p);
  plan->padding_outputs = {!whole, ph.count, ph.out_first, ph.out_step, p.stride};
  if (!p.keep_padding_taps) {
    std::vector<Tap> kept;
    for (size_t t = 0; t < ph.taps.size(); ++t)
      if (live[t]) kept.push_back(ph.taps[t]);
    ph.taps = std::move(kept);
  }
  if (!any_live) {
    ph.count = {0, 0, 0};
    p.frame.size = {0, 0, 0};
    return;
  }
  for (size_t a = 0; a < kMaxRank; ++a) {
    int64_t t_min = INT64_MAX, t_max = INT64_MIN;
    for (const Tap& t : ph.taps) t_min = std::min(t_min, t.offset[a]), t_max = std::max(t_max, t.offset[a]);
    for (Tap& t : ph.taps) t.offset[a] -= t_min;
    ph.out_first[a] += lo[a] * ph.out_step[a];  // inside the output
    ph.count[a] = hi[a] - lo[a] + 1;
    p.frame.pad[a] -= lo[a] * p.stride[a] + t_min;  // frame positions
    p.frame.size[a] = checked_add(checked_mul(ph.count[a] - 1, p.stride[a], "frame"), t_max - t_min + 1, "frame");
  }
  single_outputs_without_stride(&p);
}

size_t tile_channels(const TileShapes& k, Family f) {
  return f == Family::kChanvec ? k.chanvec_nr : f == Family::kRowvec ? k.rowvec_mr : 1;
}
size_t tile_pixels(const TileShapes& k, Family f) {
  return f == Family::kChanvec ? k.chanvec_mr : f == Family::kRowvec ? k.rowvec_nr : k.rowvec1_nr;
}

// Estimated cycles of one family: padded FMA work plus output stores (vector or scalar).
double family_cost(const ConvProblem& p, const TileShapes& k, Family family, const Units& units) {
  const bool chanvec = family == Family::kChanvec;
  const int64_t tile_ch = static_cast<int64_t>(tile_channels(k, family));
  const int64_t tile_px = static_cast<int64_t>(tile_pixels(k, family));
  const double lanes = static_cast<double>(k.lanes), cg_in = static_cast<double>(p.in_channels_per_group());
  // A scalar store per element; a chanvec tile's stores into a channels-first output touch a
  // page per channel, which over a large output misses the TLB and cache (sr_64ch and
  // nnunet_up3d channels first, interleaved with other work: 1.3-1.8x slower than rowvec).
  const double scattered_store = p.batch * p.y.n >= kLargeOutputElements ? 6.0 : 2.0;
  double cost = 0;
  for (size_t u = 0; u < units.blocks.size(); ++u) {
    for (size_t b : units.blocks[u]) {
      const Block& blk = p.blocks[b];
      const Phase& ph = p.phases[blk.phase];
      const int64_t ch = static_cast<int64_t>(blk.out_offsets.size());
      // Per vector FMA; a single-row tile is bound by its loads (one per FMA) rather than
      // FMAs. A rowvec tile reads its input rows again for every tile of channels: with 32 or
      // more channels it ran 1.5-1.8x longer than chanvec on the same FMAs (hifigan_up1,
      // hifigan_up3, nnunet_up3d, sr_64ch channels first, AVX2 and AVX-512).
      const double fma_cost = family == Family::kRowvec1 ? 1.0 : family == Family::kRowvec && ch >= 32 ? 0.75 : 0.5;
      const double padded = double(ceil_div(ch, tile_ch) * tile_ch) * double(ceil_div(ph.cols(), tile_px) * tile_px);
      const bool vector_store = chanvec ? unit_steps(blk.out_offsets) : ph.out_step[2] * p.y.spatial[2] == 1;
      const double store = vector_store ? 1 / lanes : units.buffered[u] ? 3 / lanes : scattered_store;
      cost += double(ph.rows()) * (padded * cg_in * double(ph.taps.size()) * fma_cost / lanes +
                                   double(ch) * double(ph.cols()) * store);
    }
  }
  return cost;
}

void choose_family(ConvPlan* plan, const TileShapes& k) {
  const ConvProblem& p = plan->problem;
  Units row_units = make_units(p, p.y.spatial[2] == 1), single_units = make_units(p, false);
  plan->family = Family::kChanvec;
  double best = family_cost(p, k, Family::kChanvec, single_units);
  for (Family candidate : {Family::kRowvec, Family::kRowvec1}) {
    const double cost = family_cost(p, k, candidate, row_units);
    if (cost < best) best = cost, plan->family = candidate;
  }
  plan->units = plan->family == Family::kChanvec ? std::move(single_units) : std::move(row_units);
  plan->mr = plan->family == Family::kChanvec ? k.chanvec_mr : plan->family == Family::kRowvec1 ? 1 : k.rowvec_mr;
  plan->nr = plan->family == Family::kChanvec ? k.chanvec_nr : plan->family == Family::kRowvec1 ? k.rowvec1_nr : k.rowvec_nr;
}

void lay_out_frame(ConvPlan* plan, const TileShapes& k) {
  const ConvProblem& p = plan->problem;
  const InputFrame& f = p.frame;
  FrameLayout& fl = plan->frame;
  const bool chanvec = plan->family == Family::kChanvec;
  const int64_t frame_rows = checked_mul(f.size[0], f.size[1], "frame");
  fl.col_phases = chanvec ? 1 : p.stride[2];
  fl.cols_per_phase = ceil_div(f.size[2], fl.col_phases);
  fl.row_len = chanvec ? checked_mul(f.size[2], p.in_channels, "frame row")
                       : checked_mul(fl.col_phases, fl.cols_per_phase, "frame row");
  fl.plane = checked_mul(frame_rows, fl.row_len, "frame plane");
  fl.rows = checked_mul(chanvec ? p.batch : checked_mul(p.batch, p.in_channels, "frame"), frame_rows, "frame");
  // Row tiles read up to a tile width past the last valid pixel.
  const int64_t slack = static_cast<int64_t>(std::max(k.rowvec_nr, k.rowvec1_nr));
  fl.elements = checked_add(checked_mul(fl.rows, fl.row_len, "frame"), slack, "frame");
}

// Offset of tap t's frame position, relative to output pixel 0's, in the family's frame layout.
ptrdiff_t tap_position(const ConvPlan& plan, const Tap& t) {
  const FrameLayout& fl = plan.frame;
  const int64_t row = t.offset[0] * plan.problem.frame.size[1] + t.offset[1];
  if (plan.family == Family::kChanvec) return static_cast<ptrdiff_t>(row * fl.row_len + t.offset[2] * plan.problem.in_channels);
  return static_cast<ptrdiff_t>(row * fl.row_len + (t.offset[2] % fl.col_phases) * fl.cols_per_phase +
                                t.offset[2] / fl.col_phases);
}

// Below this many input channels per group, a chanvec kernel's loop over them (inside its
// loop over taps) would be mostly loop overhead: the offsets list every step instead. (The
// weight gradients have the batch as their channels, often 1.)
constexpr int64_t kChanvecInnerChannels = 4;

void reduction_offsets(ConvPlan* plan) {
  const ConvProblem& p = plan->problem;
  plan->chanvec_channels = p.in_channels_per_group() < kChanvecInnerChannels ? 1 : p.in_channels_per_group();
  plan->reduction_offsets.assign(p.phases.size(), {});
  for (size_t ph = 0; ph < p.phases.size(); ++ph) {
    std::vector<ptrdiff_t>& off = plan->reduction_offsets[ph];
    const std::vector<Tap>& taps = p.phases[ph].taps;
    if (plan->family == Family::kChanvec) {
      for (const Tap& t : taps)
        for (int64_t c = 0; c < p.in_channels_per_group() / plan->chanvec_channels; ++c)
          off.push_back(tap_position(*plan, t) + static_cast<ptrdiff_t>(c));
      continue;
    }
    // Taps outer, channels inner: the chanvec family's order, so every family reduces each
    // output in the same order and the family choice never changes a result's rounding.
    for (const Tap& t : taps)
      for (int64_t c = 0; c < p.in_channels_per_group(); ++c)
        off.push_back(static_cast<ptrdiff_t>(c * plan->frame.plane) + tap_position(*plan, t));
  }
}

// Panel positions, padded output offsets and the work count, per block.
void lay_out_blocks(ConvPlan* plan) {
  const ConvProblem& p = plan->problem;
  PackLayout& pk = plan->pack;
  pk.chanvec = plan->family == Family::kChanvec;
  pk.tile_channels = static_cast<int64_t>(pk.chanvec ? plan->nr : plan->mr);
  const size_t nb = p.blocks.size();
  pk.weights_first.assign(nb + 1, 0);
  pk.tiles_first.assign(nb + 1, 0);
  plan->out_offsets.assign(nb, {});
  plan->contiguous_channels.assign(nb, 0);
  plan->macs = 0;
  for (size_t b = 0; b < nb; ++b) {
    const Block& blk = p.blocks[b];
    const Phase& ph = p.phases[blk.phase];
    const int64_t channels = static_cast<int64_t>(blk.out_offsets.size());
    const int64_t tiles = ceil_div(channels, pk.tile_channels);
    const int64_t k = checked_mul(p.in_channels_per_group(), static_cast<int64_t>(ph.taps.size()), "reduction");
    const int64_t panel = checked_mul(checked_mul(tiles, k, "weights"), pk.tile_channels, "weights");
    pk.weights_first[b + 1] = checked_add(pk.weights_first[b], panel, "weights");
    pk.tiles_first[b + 1] = pk.tiles_first[b] + tiles;
    const int64_t pixels = checked_mul(ph.rows(), ph.cols(), "work");
    plan->macs = checked_add(plan->macs, checked_mul(checked_mul(pixels, channels, "work"), k, "work"), "work");
    plan->out_offsets[b].assign(blk.out_offsets.begin(), blk.out_offsets.end());
    plan->out_offsets[b].resize(static_cast<size_t>(tiles * pk.tile_channels), 0);
    plan->contiguous_channels[b] = unit_steps(blk.out_offsets);
  }
  plan->macs = checked_mul(plan->macs, p.batch, "work");
}

// Channel tiles of unit u (all its blocks have the same channels).
int64_t unit_tiles(const ConvPlan& plan, size_t u) {
  const size_t b = plan.units.blocks[u][0];
  return plan.pack.tiles_first[b + 1] - plan.pack.tiles_first[b];
}

// Bytes of frame rows a block of rowvec rows may read: half the smallest L2 cache we run on
// (512 KiB per core on AMD Zen 2 and 3), so the block's reads stay there for all its tiles.
constexpr int64_t kBlockFrameBytes = int64_t(256) << 10;

// Rows per block: the frame rows one more output row reads (its row stride in each channel
// of the group, times the distinct depths its taps read) against kBlockFrameBytes.
int64_t block_rows(const ConvPlan& plan, size_t element_bytes) {
  const ConvProblem& p = plan.problem;
  int64_t row_bytes = 1;
  for (const Phase& ph : p.phases) {
    std::vector<int64_t> depths;
    for (const Tap& t : ph.taps) depths.push_back(t.offset[0]);
    std::sort(depths.begin(), depths.end());
    const int64_t distinct = std::unique(depths.begin(), depths.end()) - depths.begin();
    const double bytes = double(p.in_channels_per_group()) * double(plan.frame.row_len) * double(element_bytes) *
                         double(p.stride[1]) * double(std::max<int64_t>(1, distinct));
    row_bytes = std::max(row_bytes, static_cast<int64_t>(std::min(bytes, double(kBlockFrameBytes))));
  }
  return std::max<int64_t>(1, kBlockFrameBytes / row_bytes);
}

// Several rows per task reuse each weight panel over more pixels; about 16 tasks per thread
// keep the static split balanced. Problems with too few rows for that (1-D, small images) also
// split their channel tiles across tasks. Results do not depend on the split.
void split_tasks(ConvPlan* plan, const TileShapes& k, int threads) {
  const ConvProblem& p = plan->problem;
  const Units& units = plan->units;
  plan->threads = plan->macs < kSerialMacs ? 1 : threads;
  int64_t all_rows = 0, max_rows = 1, max_cols = 0, max_tiles = 1;
  for (size_t u = 0; u < units.blocks.size(); ++u) {
    const Phase& ph = p.phases[p.blocks[units.blocks[u][0]].phase];
    all_rows = checked_add(all_rows, ph.rows(), "work");
    max_rows = std::max(max_rows, ph.rows());
    max_tiles = std::max(max_tiles, unit_tiles(*plan, u));
    for (size_t b : units.blocks[u]) max_cols = std::max(max_cols, p.phases[p.blocks[b].phase].cols());
  }
  const int64_t wanted = 16 * int64_t(plan->threads), row_tasks = checked_mul(p.batch, all_rows, "work");
  plan->task_rows = std::max<int64_t>(1, row_tasks / wanted);
  plan->task_tiles = max_tiles;
  if (plan->threads > 1 && row_tasks < wanted) plan->task_tiles = ceil_div(max_tiles, ceil_div(wanted, std::max<int64_t>(1, row_tasks)));
  // Tasks larger than a whole unit of one image take several images instead.
  plan->task_images = std::max<int64_t>(1, std::min(p.batch, plan->task_rows / max_rows));
  plan->block_rows = plan->family == Family::kChanvec ? plan->task_rows : block_rows(*plan, k.element_bytes);
  plan->first_task.assign(units.blocks.size() + 1, 0);
  for (size_t u = 0; u < units.blocks.size(); ++u) {
    const int64_t rows = p.phases[p.blocks[units.blocks[u][0]].phase].rows();
    plan->first_task[u + 1] = plan->first_task[u] + ceil_div(rows, plan->task_rows) * ceil_div(unit_tiles(*plan, u), plan->task_tiles);
  }
  plan->tasks_per_image = plan->first_task.back();
  plan->tasks = checked_mul(ceil_div(p.batch, plan->task_images), plan->tasks_per_image, "work");
  plan->buffer_row = max_cols + static_cast<int64_t>(plan->nr);
  plan->buffer_len = plan->family == Family::kChanvec
                         ? 0
                         : checked_mul(static_cast<int64_t>(plan->mr) * units.max_siblings, plan->buffer_row, "buffers");
}

// Whether the frame of a (trimmed) single-phase problem would be much larger than its input
// and output together (estimated in floating point: it may not even fit in 64 bits). The
// element counts come from the sizes, not from the image strides: a weight gradient's images
// are the channels of one tensor, one element apart in a channels-last layout.
bool sparse_frame(const ConvProblem& p) {
  if (p.phases.size() != 1) return false;
  double frame = double(p.batch) * double(p.in_channels), input = frame, outputs = 0;
  for (size_t a = 0; a < kMaxRank; ++a) frame *= double(p.frame.size[a]), input *= double(p.in[a]);
  for (const Block& b : p.blocks) outputs += double(b.out_offsets.size()) * double(volume(p.phases[b.phase].count));
  return frame > 8 * (input + double(p.batch) * outputs) + double(1 << 20);
}

}  // namespace

ConvPlan plan_conv(ConvProblem problem, const TileShapes& tiles, int threads) {
  ConvPlan plan;
  plan.problem = std::move(problem);
  trim_to_input(&plan);
  if (sparse_frame(plan.problem)) {
    plan.by_definition = true;
    plan.threads = threads;
    return plan;
  }
  choose_family(&plan, tiles);
  lay_out_frame(&plan, tiles);
  reduction_offsets(&plan);
  lay_out_blocks(&plan);
  split_tasks(&plan, tiles, threads);
  return plan;
}

std::array<std::vector<char>, kMaxRank> outputs_without_structural_zeros(const ConvPlan& plan, const Extent& out) {
  const ConvProblem& p = plan.problem;
  std::array<std::vector<char>, kMaxRank> exact;
  for (size_t a = 0; a < kMaxRank; ++a) {
    exact[a].assign(static_cast<size_t>(out[a]), 1);
    const int64_t begin = p.frame.pad[a], end = begin + (p.in[a] - 1) * p.frame.step[a];  // the input's span
    for (const Phase& ph : p.phases) {
      if (ph.taps.empty()) continue;
      int64_t t_min = INT64_MAX, t_max = INT64_MIN;
      for (const Tap& t : ph.taps) t_min = std::min(t_min, t.offset[a]), t_max = std::max(t_max, t.offset[a]);
      for (int64_t j = 0; j < ph.count[a]; ++j) {
        // Zero insertion puts structural zeros between any two input elements.
        const bool inside = p.frame.step[a] == 1 && j * p.stride[a] + t_min >= begin && j * p.stride[a] + t_max <= end;
        if (!inside) exact[a][static_cast<size_t>(ph.out_first[a] + j * ph.out_step[a])] = 0;
      }
    }
  }
  return exact;
}

}  // namespace spx
