// Planning: everything a convolution derives from its problem's shapes (no data). Pure and
// deterministic, so it is tested on its own and cached per input shape by the operators.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../kernels/microkernels.h"
#include "problem.h"

namespace spx {

enum class Family { kChanvec, kRowvec, kRowvec1 };

// The register-tile shapes of the microkernel table in use.
struct TileShapes {
  size_t lanes, rowvec_mr, rowvec_nr, rowvec1_nr, chanvec_mr, chanvec_nr;
  size_t element_bytes;  // of the compute type
};

template <typename T, typename Y>
TileShapes tile_shapes(const ConvKernels<T, Y>& k) {
  return {k.lanes, k.rowvec_mr, k.rowvec_nr, k.rowvec1_nr, k.chanvec_mr, k.chanvec_nr, sizeof(T)};
}

// Phases whose outputs interleave along the innermost axis (polyphase phases r = 0..S-1 of
// the same rows) can be computed into a row buffer with contiguous vector stores and then
// interleaved. A unit is the blocks one task computes: one block, or S such siblings.
struct Units {
  std::vector<std::vector<size_t>> blocks;
  std::vector<char> buffered;
  int64_t max_siblings = 1;
};

// Frame layout of the family: channels innermost for chanvec; for rowvec each frame row's
// columns de-interleaved by the stride, so a tile of consecutive outputs reads consecutive memory.
struct FrameLayout {
  int64_t col_phases = 1, cols_per_phase = 0;
  int64_t row_len = 0;   // elements of one frame row
  int64_t plane = 0;     // elements of one channel's frame (rowvec) or one image's (chanvec)
  int64_t rows = 0;      // frame rows of the whole batch
  int64_t elements = 0;  // frame + read slack past the end
};

// Where each block's panels live in the packed weights: the only input of packing besides the
// problem, and what decides whether packed weights can be reused for another input size.
struct PackLayout {
  bool chanvec = false;
  int64_t tile_channels = 0;
  std::vector<int64_t> weights_first, tiles_first;  // per block, plus the total at the end
};

// A single-phase problem whose outputs near the edges read padding only (huge padding, or a
// dilation that jumps over the input) is planned for the box of outputs that can reach the
// input, with a frame that covers just their reads. The phase grid before that trimming is
// kept here: its other outputs are the bias (plus the weights times zero for correlations).
struct PaddingOutputs {
  bool fill = false;
  Extent count{}, first{}, step{};
  Extent stride{};  // the problem's stride before trimming
};

struct ConvPlan {
  ConvProblem problem;
  PaddingOutputs padding_outputs;
  // Reads too sparse for a frame (taps far apart, e.g. a dilation that jumps over the input):
  // every output is summed from its definition instead (execute_by_definition), and nothing
  // below but `threads` is planned.
  bool by_definition = false;
  Family family = Family::kChanvec;
  size_t mr = 0, nr = 0;
  Units units;
  FrameLayout frame;
  PackLayout pack;
  std::vector<std::vector<ptrdiff_t>> reduction_offsets;  // per phase, into the frame
  // Input channels a chanvec kernel reads from each reduction offset: all of the group's, or
  // 1 when there are few (then the offsets list every (tap, channel) step).
  int64_t chanvec_channels = 0;
  std::vector<std::vector<ptrdiff_t>> out_offsets;        // per block, padded to whole tiles
  std::vector<char> contiguous_channels;                  // per block
  int64_t macs = 0;
  int threads = 1;
  // Tasks: up to task_rows rows and task_tiles channel tiles of one unit of task_images images
  // (a unit's tasks run through its row chunks first, then its tile chunks; a task runs its
  // images inside each tile, so small images share the tile's weights while they are in cache).
  int64_t task_rows = 1, task_tiles = 1, task_images = 1, tasks_per_image = 0, tasks = 0;
  // Rowvec tasks run their rows in blocks of block_rows, every tile over a block before the
  // next: the frame rows one block reads stay in the L2 cache for all the tiles. (Chanvec
  // tasks run as one block: measured no better blocked.)
  int64_t block_rows = 1;
  std::vector<int64_t> first_task;  // per unit, plus the total at the end
  int64_t buffer_row = 0, buffer_len = 0;  // per-thread row buffers of buffered units
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// Rounded toward minus infinity, for any sign of a; b > 0.
inline int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && a < 0); }

ConvPlan plan_conv(ConvProblem problem, const TileShapes& tiles, int threads);

// Per axis and output index (0 .. out[a] - 1), whether every tap the engine sums for that
// index reads an input element, never a structural zero (padding or an inserted zero): an
// output of indices marked on every axis is the definition's sum even for non-finite weights.
// Outputs no phase computes (the padding outputs of PaddingOutputs, empty phases) are marked.
std::array<std::vector<char>, kMaxRank> outputs_without_structural_zeros(const ConvPlan& plan, const Extent& out);

}  // namespace spx
