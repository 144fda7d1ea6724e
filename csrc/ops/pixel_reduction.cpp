#include "pixel_reduction.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "../engine/plan.h"
#include "../engine/storage.h"
#include "../kernels/dispatch.h"
#include "../kernels/prefetch.h"
#include "errors.h"
#include "parallel.h"

namespace spx {
namespace {

// Block starts over `channels` in blocks of `width`, the last one ending at `channels`, with
// the elements it shares with the one before (ReductionTile::first_row / first_col).
std::vector<std::pair<int64_t, size_t>> channel_blocks(int64_t channels, int64_t width) {
  std::vector<std::pair<int64_t, size_t>> blocks;
  int64_t start = 0;
  for (; start + width <= channels; start += width) blocks.push_back({start, 0});
  if (start < channels) blocks.push_back({channels - width, static_cast<size_t>(start - (channels - width))});
  return blocks;
}

// Cache budgets (of a 2 MiB L2): a group's sums, and its panels of a chunk.
constexpr int64_t kSetSumsBytes = int64_t(512) << 10;
constexpr int64_t kChunkBytes = int64_t(512) << 10;

// The tile set: tap by tap, column block by column block, the row blocks innermost
// (consecutive tiles read the same vectors). False when its sums would not stay in the cache
// while the set goes through the chunks.
bool add_tile_set(PixelReductionPlan* p, int64_t element_bytes) {
  const auto rows = channel_blocks(p->broadcast_channels, p->rows), cols = channel_blocks(p->vector_channels, p->cols);
  const int64_t taps = volume(p->shape.kernel);
  const int64_t sums_bytes = taps * static_cast<int64_t>(rows.size()) * p->rows * static_cast<int64_t>(cols.size()) * p->cols * element_bytes;
  if (sums_bytes > kSetSumsBytes) return false;
  TileSet& set = p->tile_set;
  for (const auto& r : rows) set.row_firsts.push_back(r.first);
  for (const auto& c : cols) set.col_firsts.push_back(c.first);
  for (int64_t t = 0; t < taps; ++t)
    for (size_t c = 0; c < cols.size(); ++c)
      for (size_t r = 0; r < rows.size(); ++r) set.tiles.push_back({t, r, c, rows[r].second, cols[c].second});
  return true;
}

// A chunk's boxes: its output pixels o (o_first + [0, o_count) per axis) and the x positions
// they read, in phases: q * stride + r for q in q_first + [0, q_count) and every r < stride.
struct ChunkBoxes {
  Extent o_first, o_count, q_first, q_count;
};

ChunkBoxes chunk_boxes(const ConvShape& s, size_t axis, const PixelChunk& c) {
  ChunkBoxes b;
  for (size_t a = 0; a < kMaxRank; ++a) {
    b.o_first[a] = a == axis ? c.begin : 0;
    b.o_count[a] = a == axis ? c.end - c.begin : s.out[a];
    const int64_t lo = std::max<int64_t>(0, b.o_first[a] * s.stride[a] - s.pad_begin[a]);
    const int64_t hi = std::min(s.in[a] - 1, (b.o_first[a] + b.o_count[a] - 1) * s.stride[a] +
                                                 (s.kernel[a] - 1) * s.dilation[a] - s.pad_begin[a]);
    b.q_first[a] = lo / s.stride[a];
    b.q_count[a] = hi < lo ? 0 : hi / s.stride[a] - b.q_first[a] + 1;  // none: the chunk reads padding only
  }
  return b;
}

// Chunks whose rows hold about kChunkBytes of a tile set's channels of x and grad_y.
void add_chunks(PixelReductionPlan* p, int64_t element_bytes) {
  const ConvShape& s = p->shape;
  const size_t axis = p->chunk_axis;
  const TileSet& set = p->tile_set;
  const int64_t rows = static_cast<int64_t>(set.row_firsts.size()) * p->rows, cols = static_cast<int64_t>(set.col_firsts.size()) * p->cols;
  const int64_t gy_channels = p->broadcast_grad_y ? rows : cols, x_channels = p->broadcast_grad_y ? cols : rows;
  const int64_t row_bytes = (volume(s.out) / s.out[axis] * gy_channels + s.stride[axis] * (volume(s.in) / s.in[axis]) * x_channels) *
                            element_bytes;
  const int64_t chunk_rows = std::max<int64_t>(1, kChunkBytes / row_bytes);
  p->x_panel_pixels = 0;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t r0 = 0; r0 < s.out[axis]; r0 += chunk_rows) {
      p->chunks.push_back({n, r0, std::min(s.out[axis], r0 + chunk_rows)});
      const ChunkBoxes b = chunk_boxes(s, axis, p->chunks.back());
      p->x_panel_pixels = std::max(p->x_panel_pixels, volume(b.q_count) * volume(s.stride));
    }
}

// Below this many multiply-adds one thread is faster than starting more.
constexpr int64_t kParallelMacs = int64_t(1) << 22;

}  // namespace

template <typename T>
std::optional<PixelReductionPlan> plan_pixel_reduction(const ConvShape& s, int threads) {
  const auto& k = kernels_for<T>();
  const int64_t mr = static_cast<int64_t>(k.pixel_reduction_mr), nr = static_cast<int64_t>(k.pixel_reduction_nr);
  if (!s.channels_last) return std::nullopt;
  const int64_t cg_out = s.out_channels / s.groups, cg_in = s.in_channels / s.groups;
  // Either operand's channels can be the broadcast rows: the way round with fewer tiles, grad_y's
  // on a tie (measured against broadcasting x's from its panel wherever that fits: gan_decoder,
  // hifigan_up1, sr_64ch and nnunet_up3d 1.1-1.5x faster this way, AVX-512 and AVX2).
  const bool fits_gy_rows = cg_out >= mr && cg_in >= nr, fits_x_rows = cg_in >= mr && cg_out >= nr;
  if (!fits_gy_rows && !fits_x_rows) return std::nullopt;
  const bool gy_rows = fits_gy_rows && (!fits_x_rows || ceil_div(cg_out, mr) * ceil_div(cg_in, nr) <=
                                                            ceil_div(cg_in, mr) * ceil_div(cg_out, nr));
  PixelReductionPlan p;
  p.shape = s;
  p.broadcast_grad_y = gy_rows;
  p.broadcast_channels = gy_rows ? cg_out : cg_in;
  p.vector_channels = gy_rows ? cg_in : cg_out;
  p.rows = mr;
  p.cols = nr;
  const int64_t element_bytes = static_cast<int64_t>(sizeof(T));
  // A group's weight larger than the cache's share would need several tile sets, each reading
  // x and grad_y again; the engine is as fast or faster there (measured, weight gradient alone:
  // dcgan_block 2.2-2.7x faster on the engine, gan_decoder and hifigan_up1 1.0-1.1x).
  if (!add_tile_set(&p, element_bytes)) return std::nullopt;
  p.chunk_axis = 0;
  while (p.chunk_axis < kMaxRank - 1 && s.out[p.chunk_axis] == 1) ++p.chunk_axis;
  add_chunks(&p, element_bytes);
  const int64_t macs = checked_mul(checked_mul(s.batch, volume(s.out), "grad_weight"),
                                   checked_mul(s.out_channels * cg_in, volume(s.kernel), "grad_weight"), "grad_weight");
  p.threads = macs < kParallelMacs ? 1 : threads;
  return p;
}

namespace {

// x's panels for a group and a chunk: per block of the set's x channels, the positions of
// the chunk's window phase by phase (position q * stride + r, r < stride per axis), each
// phase a box of q_count pixels of `width` channels.
template <typename T>
struct XPanels {
  T* data;
  int64_t width, block_size, phase_size;
};

template <typename T>
XPanels<T> x_panels(T* data, int64_t width, const ConvShape& s, const ChunkBoxes& b) {
  const int64_t phase_size = volume(b.q_count) * width;
  return {data, width, phase_size * volume(s.stride), phase_size};
}

// Packing jobs: a block, a phase of the outer two axes, a row of the box (outer two q) and a
// run of kPackRun q along the innermost axis, whose positions (all its phases) are read in order.
constexpr int64_t kPackRun = 256;
constexpr int64_t kPackPrefetch = 8;  // pixels ahead

template <typename T>
void pack_x_job(const ConvShape& s, const T* image, const ChunkBoxes& b, const XPanels<T>& panels, int64_t first,
                int64_t block, int64_t job) {
  const int64_t runs = ceil_div(b.q_count[2], kPackRun);
  const int64_t run = job % runs, q1 = job / runs % b.q_count[1], q0 = job / runs / b.q_count[1] % b.q_count[0];
  const int64_t outer_phase = job / runs / b.q_count[1] / b.q_count[0];
  const int64_t r0 = outer_phase / s.stride[1], r1 = outer_phase % s.stride[1];
  const int64_t pos0 = (b.q_first[0] + q0) * s.stride[0] + r0, pos1 = (b.q_first[1] + q1) * s.stride[1] + r1;
  if (pos0 >= s.in[0] || pos1 >= s.in[1]) return;  // past x: no tile reads it
  const T* row = image + ((pos0 * s.in[1] + pos1) * s.in[2]) * s.in_channels + first;
  T* dst = panels.data + block * panels.block_size + (outer_phase * s.stride[2]) * panels.phase_size +
           (q0 * b.q_count[1] + q1) * b.q_count[2] * panels.width;
  const int64_t w = panels.width;
  for (int64_t q2 = run * kPackRun; q2 < std::min(b.q_count[2], (run + 1) * kPackRun); ++q2)
    for (int64_t r2 = 0; r2 < s.stride[2]; ++r2) {
      const int64_t pos2 = (b.q_first[2] + q2) * s.stride[2] + r2;
      if (pos2 >= s.in[2]) break;
      const T* src = row + pos2 * s.in_channels;
      // A few channels of pixels far apart: past the hardware prefetchers' reach (a page).
      for (int64_t c = 0; c < w; c += kCacheLine / sizeof(T)) SPX_PREFETCH(src + kPackPrefetch * s.in_channels + c);
      T* d = dst + r2 * panels.phase_size + q2 * w;
      for (int64_t c = 0; c < w; ++c) d[c] = src[c];  // a few channels: a loop, not a library call
    }
}

// This thread's share of packing group g's x panels for a chunk.
template <typename T>
void pack_x_panels(const PixelReductionPlan& p, int64_t g, const PixelChunk& chunk, const ChunkBoxes& b,
                   const T* x, const XPanels<T>& panels, int tid, int count) {
  const ConvShape& s = p.shape;
  const std::vector<int64_t>& firsts = p.broadcast_grad_y ? p.tile_set.col_firsts : p.tile_set.row_firsts;
  const int64_t per_block = s.stride[0] * s.stride[1] * b.q_count[0] * b.q_count[1] * ceil_div(b.q_count[2], kPackRun);
  const T* image = x + chunk.image * volume(s.in) * s.in_channels + g * (s.in_channels / s.groups);
  int64_t begin, end;
  split_range(static_cast<int64_t>(firsts.size()) * per_block, tid, count, &begin, &end);
  for (int64_t j = begin; j < end; ++j)
    pack_x_job(s, image, b, panels, firsts[static_cast<size_t>(j / per_block)], j / per_block, j % per_block);
}

// The tile's box of the chunk's output pixels whose x position is inside x (grad_y read in
// place, x in its panel), and the arguments that sum it; false when the box is empty.
template <typename T>
bool tile_box(const PixelReductionPlan& p, int64_t g, const ReductionTile& tile, const PixelChunk& chunk,
              const ChunkBoxes& b, const T* grad_y, const XPanels<T>& x, T* sums, PixelReductionArgs<T>* args) {
  const ConvShape& s = p.shape;
  const Extent tap = {tile.tap / (s.kernel[1] * s.kernel[2]), tile.tap / s.kernel[2] % s.kernel[1], tile.tap % s.kernel[2]};
  const int64_t row_first = p.tile_set.row_firsts[tile.row_block], col_first = p.tile_set.col_firsts[tile.col_block];
  const T* gy = grad_y + chunk.image * volume(s.out) * s.out_channels + g * (s.out_channels / s.groups) +
                (p.broadcast_grad_y ? row_first : col_first);
  const T* xp = x.data + static_cast<int64_t>(p.broadcast_grad_y ? tile.col_block : tile.row_block) * x.block_size;
  int64_t gy_step = s.out_channels, x_step = x.width, phase = 0, phase_step = 1;
  for (size_t a = kMaxRank; a-- > 0;) {
    const int64_t shift = tap[a] * s.dilation[a] - s.pad_begin[a];  // x position of output pixel 0
    const int64_t lo = std::max({int64_t(0), floor_div(-shift + s.stride[a] - 1, s.stride[a]), b.o_first[a]});
    const int64_t hi = std::min(b.o_first[a] + b.o_count[a], floor_div(s.in[a] - 1 - shift, s.stride[a]) + 1);
    if (hi <= lo) return false;
    args->counts[a] = static_cast<size_t>(hi - lo);
    const int64_t q_shift = floor_div(shift, s.stride[a]);  // x position lo * stride + shift = q * stride + r
    gy += lo * gy_step;
    xp += (lo + q_shift - b.q_first[a]) * x_step;
    (p.broadcast_grad_y ? args->broadcast_strides : args->vector_strides)[a] = gy_step;
    (p.broadcast_grad_y ? args->vector_strides : args->broadcast_strides)[a] = x_step;
    phase += (shift - q_shift * s.stride[a]) * phase_step;
    gy_step *= s.out[a];
    x_step *= b.q_count[a];
    phase_step *= s.stride[a];
  }
  xp += phase * x.phase_size;
  args->broadcast = p.broadcast_grad_y ? gy : xp;
  args->vectors = p.broadcast_grad_y ? xp : gy;
  args->sums = sums + ((g * volume(s.kernel) + tile.tap) * p.broadcast_channels + row_first) * p.vector_channels + col_first;
  args->sums_row = p.vector_channels;
  args->first_row = tile.first_row;
  args->first_col = tile.first_col;
  return true;
}

}  // namespace

template <typename T>
void execute_pixel_reduction(const PixelReductionPlan& p, const T* x, const T* grad_y, T* sums) {
  const ConvShape& s = p.shape;
  const auto kernel = kernels_for<T>().pixel_reduction;
  const TileSet& set = p.tile_set;
  const int64_t x_width = p.broadcast_grad_y ? p.cols : p.rows;
  const int64_t x_blocks = static_cast<int64_t>((p.broadcast_grad_y ? set.col_firsts : set.row_firsts).size());
  AlignedVector<T> panel(static_cast<size_t>(checked_mul(x_blocks * x_width, p.x_panel_pixels, "x")));
  const std::atomic<bool>& stop = stop_flag();
  parallel_region(p.threads, [&](int tid, int count) {
    PixelReductionArgs<T> args;
    int64_t begin, end;
    split_range(static_cast<int64_t>(set.tiles.size()), tid, count, &begin, &end);
    for (int64_t g = 0; g < s.groups; ++g)
      for (const PixelChunk& chunk : p.chunks) {
        const ChunkBoxes b = chunk_boxes(s, p.chunk_axis, chunk);
        const XPanels<T> panels = x_panels(panel.data(), x_width, s, b);
        const bool stopped = stop.load(std::memory_order_relaxed);  // every thread still meets every barrier
        if (!stopped) pack_x_panels(p, g, chunk, b, x, panels, tid, count);
        region_barrier();
        for (int64_t t = begin; t < end && !stopped; ++t)
          if (tile_box(p, g, set.tiles[static_cast<size_t>(t)], chunk, b, grad_y, panels, sums, &args)) kernel(args);
        region_barrier();  // before the panels are packed again
      }
  });
}

// Columns moved at a time: for each, the sums of every tap are gathered (a cache line of
// columns from each tap's sums) and written as the weight's run of taps.
constexpr int64_t kStoreColumns = 16;

template <typename T>
void store_weight_grad(const PixelReductionPlan& p, const T* sums, T* grad_weight) {
  const ConvShape& s = p.shape;
  const int64_t taps = volume(s.kernel), cg_out = s.out_channels / s.groups, cg_in = s.in_channels / s.groups;
  const int64_t tap_size = p.broadcast_channels * p.vector_channels;
  std::vector<T> runs(static_cast<size_t>(taps * kStoreColumns));  // [column][tap]
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t r = 0; r < p.broadcast_channels; ++r)
      for (int64_t c0 = 0; c0 < p.vector_channels; c0 += kStoreColumns) {
        const int64_t n = std::min(kStoreColumns, p.vector_channels - c0);
        for (int64_t t = 0; t < taps; ++t) {
          const T* row = sums + (g * taps + t) * tap_size + r * p.vector_channels + c0;
          for (int64_t j = 0; j < n; ++j) runs[static_cast<size_t>(j * taps + t)] = row[j];
        }
        for (int64_t j = 0; j < n; ++j) {
          const int64_t co = p.broadcast_grad_y ? r : c0 + j, ci = p.broadcast_grad_y ? c0 + j : r;
          std::copy(runs.begin() + j * taps, runs.begin() + (j + 1) * taps, grad_weight + ((g * cg_out + co) * cg_in + ci) * taps);
        }
      }
}

template std::optional<PixelReductionPlan> plan_pixel_reduction<float>(const ConvShape&, int);
template std::optional<PixelReductionPlan> plan_pixel_reduction<double>(const ConvShape&, int);
template void execute_pixel_reduction(const PixelReductionPlan&, const float*, const float*, float*);
template void execute_pixel_reduction(const PixelReductionPlan&, const double*, const double*, double*);
template void store_weight_grad(const PixelReductionPlan&, const float*, float*);
template void store_weight_grad(const PixelReductionPlan&, const double*, double*);

}  // namespace spx
