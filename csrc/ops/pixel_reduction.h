// A weight gradient as sums over pixels, with no frame: for every kernel tap k, one matrix
// product over the output pixels o,
//
//   grad_weight[co, ci, k] += grad_y[n, o, co] * x[n, o * stride + k * dilation - pad, ci],
//
// register tile by register tile (the microkernels' pixel_reduction), each tile over the pixels
// whose x position is inside x (padding contributes nothing, so no multiply is spent on it).
// Both operands channels last. The tiles read grad_y in place and x from panels: per chunk of
// pixels, a block of x's channels phase by phase (positions o * stride + r, r < stride), so
// that a tile reads it as one contiguous stream whatever the stride and the channel count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "ops.h"

namespace spx {

// One register tile: a kernel tap, a block of broadcast channels and one of vector channels,
// the blocks given by their index in the tile set's lists. The last block of each kind may
// start early to stay inside the group's channels; its first_row rows (first_col columns) are
// then another tile's and not stored.
struct ReductionTile {
  int64_t tap;
  size_t row_block, col_block;
  size_t first_row, first_col;
};

// The tiles of a group, the same for every group: its blocks of broadcast channels (rows) x
// blocks of vector channels (columns) x every tap, whose sums stay in the cache while the set
// goes through the chunks.
struct TileSet {
  std::vector<int64_t> row_firsts, col_firsts;  // the blocks' first channels (in the group)
  std::vector<ReductionTile> tiles;
};

// The pixels of one image in rows [begin, end) of the outermost axis with more than one.
struct PixelChunk {
  int64_t image, begin, end;
};

struct PixelReductionPlan {
  ConvShape shape;
  bool broadcast_grad_y;  // tiles broadcast grad_y's channels and vector x's, or the reverse
  int64_t broadcast_channels, vector_channels;  // per group
  int64_t rows, cols;                           // of a tile (MR, NR)
  size_t chunk_axis;
  TileSet tile_set;
  std::vector<PixelChunk> chunks;
  int64_t x_panel_pixels;  // the largest chunk's, per block of x's channels
  int threads;
};

// nullopt for channels first, when a group has fewer channels than a tile has rows or columns
// either way round, or when a group's sums (its weight, in whole tiles) are too large to stay
// in the cache.
template <typename T>
std::optional<PixelReductionPlan> plan_pixel_reduction(const ConvShape& s, int threads);

// sums (groups, taps, broadcast_channels, vector_channels), zeroed by the caller, += the
// products of x and grad_y (channels last). Each tile adds its chunks' sums in chunk order on one thread:
// bit-identical for any thread count.
template <typename T>
void execute_pixel_reduction(const PixelReductionPlan& plan, const T* x, const T* grad_y, T* sums);

// grad_weight (out_channels, in_channels/groups, *kernel), C-contiguous, from the sums.
template <typename T>
void store_weight_grad(const PixelReductionPlan& plan, const T* sums, T* grad_weight);

}  // namespace spx
