// Planning is pure and its sizes are what the problem implies (hand-computed below with fixed
// tile shapes, those of the AVX2 float kernels, so the numbers do not depend on the machine).
#include <algorithm>

#include "../../csrc/kernels/dispatch.h"
#include "check.h"
#include "plan_compare.h"
#include "reference.h"

namespace spx_test {
namespace {

using spx::Family;
using P = std::vector<ptrdiff_t>;
using I = std::vector<int64_t>;

// lanes, rowvec MR x NR, rowvec1 NR, chanvec MR x NR
const spx::TileShapes kTiles{8, 4, 24, 32, 6, 16, 4};

spx::ConvPlan plan_of(const ConvCase& c, int threads, const spx::TileShapes& tiles = kTiles) {
  return spx::plan_conv(describe_problem(c), tiles, threads);
}

// 1-D, one output channel, channels-first: a single-channel row kernel.
ConvCase conv1d_one_output_channel() {
  Geometry g;
  g.batch = 2, g.in_channels = 3, g.out_channels = 1;
  g.in = {10}, g.kernel = {3}, g.stride = {2}, g.pad = {1};  // out 5, frame 11
  return make_case("conv1d 3->1", Op::kConv, g, false);
}

// 2-D, many channels, channels-last: vectors along the output channels.
ConvCase conv2d_many_channels_last() {
  Geometry g;
  g.in_channels = 16, g.out_channels = 32;
  g.in = {6, 7}, g.kernel = {3, 3}, g.pad = {1, 1};  // out 6x7, frame 8x9
  return make_case("conv2d 16->32", Op::kConv, g, true);
}

// 3-D transposed, k = s = 2: eight phases of one tap each, column siblings interleaved.
ConvCase conv_transpose3d_k2_s2() {
  Geometry g;
  g.in_channels = 2, g.out_channels = 3;
  g.in = {2, 3, 4}, g.kernel = {2, 2, 2}, g.stride = {2, 2, 2};  // out 4x6x8
  return make_case("conv_transpose3d 2->3", Op::kConvTranspose, g, false);
}

// Large enough to run threaded: 3 images x 64 rows of 8 channels.
ConvCase conv2d_threaded() {
  Geometry g;
  g.batch = 3, g.in_channels = 4, g.out_channels = 8;
  g.in = {64, 16}, g.kernel = {3, 3}, g.pad = {1, 1};
  return make_case("conv2d threaded", Op::kConv, g, false);
}

std::vector<ConvCase> assorted_cases() {
  std::vector<ConvCase> cases{conv1d_one_output_channel(), conv2d_many_channels_last(), conv_transpose3d_k2_s2(),
                              conv2d_threaded()};
  Geometry g;
  g.in_channels = 4, g.out_channels = 2, g.groups = 2, g.in = {5, 9}, g.kernel = {3, 3}, g.pad = {1, 1},
  g.factor = {2, 3};
  cases.push_back(make_case("subpixel2d", Op::kSubpixel, g, false));
  ConvCase direct = make_case("conv_transpose2d direct", Op::kConvTranspose, g, true);
  direct.method = spx::TransposedMethod::kDirect;
  cases.push_back(direct);
  return cases;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += n + " ";
  return s;
}

}  // namespace

TEST_CASE(plan_twice_is_identical) {
  for (const ConvCase& c : assorted_cases())
    for (int threads : {1, 2}) {
      const std::vector<std::string> differ = plan_differences(plan_of(c, threads), plan_of(c, threads));
      CHECK_MSG(differ.empty(), describe(c) << " differs in " << joined(differ));
    }
  // The comparison itself sees a change deep inside the problem.
  spx::ConvPlan changed = plan_of(conv_transpose3d_k2_s2(), 1);
  changed.problem.phases[5].taps[0].weight_offset += 1;
  CHECK(plan_differences(plan_of(conv_transpose3d_k2_s2(), 1), changed) == std::vector<std::string>{"problem.phases"});
}

TEST_CASE(plan_thread_count_changes_only_the_task_split) {
  const std::vector<std::string> split{"threads", "task_rows", "task_tiles", "task_images", "tasks_per_image", "tasks", "first_task"};
  const ConvCase c = conv2d_threaded();
  const spx::ConvPlan one = plan_of(c, 1);
  for (int threads : {2, 3}) {
    const spx::ConvPlan many = plan_of(c, threads);
    for (const std::string& field : plan_differences(one, many))
      CHECK_MSG(std::count(split.begin(), split.end(), field) == 1, field << " changed with " << threads << " threads");
    CHECK_EQ(many.threads, threads);
  }
  // 3 images x 64 rows over ~16 tasks per thread: 12, 6 and 4 rows per task.
  CHECK_EQ(one.task_rows, 12);
  CHECK_EQ(plan_of(c, 2).task_rows, 6);
  CHECK_EQ(plan_of(c, 3).task_rows, 4);
  CHECK(plan_of(c, 3).first_task == (I{0, 16}));
  CHECK_EQ(plan_of(c, 3).tasks, 48);
  // A 1-D transposed convolution has one row per phase: its tasks split the channel tiles.
  Geometry g;
  g.batch = 1, g.in_channels = 16, g.out_channels = 64;
  g.in = {200}, g.kernel = {16}, g.stride = {8}, g.pad = {4};
  const ConvCase row = make_case("conv_transpose1d few rows", Op::kConvTranspose, g, false);
  CHECK_EQ(plan_of(row, 1).task_tiles, plan_of(row, 1).pack.tiles_first[1]);  // serial: whole units
  const spx::ConvPlan shared = plan_of(row, 2);
  CHECK(shared.task_tiles < shared.pack.tiles_first[1]);
  CHECK(shared.tasks >= 2 * 2);
  // Many images of a few rows: each task takes several whole images of a unit.
  Geometry small;
  small.batch = 16, small.in_channels = 16, small.out_channels = 24;
  small.in = {4, 4}, small.kernel = {4, 4}, small.stride = {2, 2}, small.pad = {1, 1};
  const spx::ConvPlan batched = plan_of(make_case("conv_transpose2d batch 16", Op::kConvTranspose, small, true), 1);
  CHECK(batched.task_images > 1);
  CHECK_EQ(batched.tasks, (16 + batched.task_images - 1) / batched.task_images * batched.tasks_per_image);
  // Below the serial threshold a plan runs on one thread whatever is asked.
  CHECK_EQ(plan_of(conv1d_one_output_channel(), 3).threads, 1);
}

TEST_CASE(plan_trims_outputs_that_read_only_padding) {
  // conv2d(ones(2x2), ones(1x1), padding=12000, stride=12000): 3x3 outputs, only the centre
  // reads the input. Planned for that one output with a one-pixel frame; the rest is padding.
  Geometry g;
  g.in = {2, 2}, g.kernel = {1, 1}, g.stride = {12000, 12000}, g.pad = {12000, 12000};
  const spx::ConvPlan p = plan_of(make_case("conv2d huge padding", Op::kConv, g, false), 1);
  CHECK(p.padding_outputs.fill);
  CHECK(p.padding_outputs.count == (spx::Extent{1, 3, 3}));
  CHECK(p.padding_outputs.stride == (spx::Extent{1, 12000, 12000}));
  CHECK(p.problem.phases.at(0).count == (spx::Extent{1, 1, 1}));
  CHECK(p.problem.phases[0].out_first == (spx::Extent{0, 1, 1}));
  CHECK(p.problem.frame.size == (spx::Extent{1, 1, 1}));
  CHECK(p.problem.frame.pad == (spx::Extent{0, 0, 0}));
  CHECK(p.problem.stride == (spx::Extent{1, 1, 1}));  // a single output has no neighbour
  CHECK(!p.by_definition);
}

TEST_CASE(plan_drops_taps_that_only_read_padding) {
  // 1-D, kernel 3 dilated by 50000 around one pixel: only the centre tap reaches it.
  Geometry g;
  g.in = {1}, g.kernel = {3}, g.dilation = {50000}, g.pad = {50000};
  ConvCase c = make_case("conv1d dilated", Op::kConv, g, false);
  const spx::ConvPlan p = plan_of(c, 1);
  CHECK(!p.padding_outputs.fill);  // the one output reaches the input
  CHECK_EQ(p.problem.phases.at(0).taps.size(), 1u);
  CHECK_EQ(p.problem.phases[0].taps[0].weight_offset, 1);
  CHECK(p.problem.frame.size == (spx::Extent{1, 1, 1}));
  // Unless the definition multiplies that padding by non-finite weights.
  spx::ConvProblem keep = describe_problem(c);
  keep.keep_padding_taps = true;
  CHECK_EQ(spx::plan_conv(keep, kTiles, 1).problem.phases.at(0).taps.size(), 3u);
}

TEST_CASE(plan_leaves_ordinary_problems_as_described) {
  for (const ConvCase& c : assorted_cases()) {
    const spx::ConvProblem described = describe_problem(c);
    const spx::ConvPlan p = plan_of(c, 1);
    CHECK_MSG(!p.padding_outputs.fill && !p.by_definition, describe(c));
    CHECK_MSG(p.problem.frame.size == described.frame.size && p.problem.frame.pad == described.frame.pad, describe(c));
    for (size_t ph = 0; ph < described.phases.size(); ++ph)
      CHECK_MSG(p.problem.phases[ph].taps.size() == described.phases[ph].taps.size(), describe(c));
  }
}

TEST_CASE(plan_sums_by_definition_when_reads_are_too_sparse) {
  // Two outputs 2**60 apart, each reaching the one input pixel through another tap: a frame
  // would span 2**61 elements.
  Geometry g;
  g.in = {1}, g.kernel = {2}, g.stride = {int64_t(1) << 60}, g.dilation = {int64_t(1) << 60}, g.pad = {int64_t(1) << 60};
  const spx::ConvPlan p = plan_of(make_case("conv1d sparse", Op::kConv, g, false), 2);
  CHECK(p.by_definition);
  CHECK(p.problem.phases.at(0).count == (spx::Extent{1, 1, 2}));
}

TEST_CASE(plan_sizes_1d_rowvec1) {
  const spx::ConvPlan p = plan_of(conv1d_one_output_channel(), 1);
  CHECK(p.family == Family::kRowvec1);
  CHECK_EQ(p.mr, 1u);
  CHECK_EQ(p.nr, 32u);
  CHECK(p.problem.frame.size == (spx::Extent{1, 1, 11}));
  CHECK(p.problem.frame.pad == (spx::Extent{0, 0, 1}));
  // Stride 2: each frame row de-interleaved into 2 column phases of ceil(11/2) = 6.
  CHECK_EQ(p.frame.col_phases, 2);
  CHECK_EQ(p.frame.cols_per_phase, 6);
  CHECK_EQ(p.frame.row_len, 12);
  CHECK_EQ(p.frame.plane, 12);
  CHECK_EQ(p.frame.rows, 6);            // 2 images x 3 channels x 1 row
  CHECK_EQ(p.frame.elements, 6 * 12 + 32);  // + a rowvec1 tile of slack
  // Tap offsets 0, 1, 2 sit at column phase (t % 2) * 6 + t / 2, per channel plane of 12;
  // taps outer, channels inner.
  CHECK(p.reduction_offsets == std::vector<P>{{0, 12, 24, 6, 18, 30, 1, 13, 25}});
  CHECK(p.pack.weights_first == (I{0, 9}));
  CHECK(p.pack.tiles_first == (I{0, 1}));
  CHECK_EQ(p.pack.tile_channels, 1);
  CHECK(p.out_offsets == std::vector<P>{{0}});
  CHECK_EQ(p.macs, 2 * 5 * 9);
  CHECK_EQ(p.buffer_row, 5 + 32);
  CHECK_EQ(p.buffer_len, 5 + 32);
  CHECK_EQ(p.tasks, 2);
}

TEST_CASE(plan_sizes_2d_chanvec) {
  const spx::ConvPlan p = plan_of(conv2d_many_channels_last(), 2);
  CHECK(p.family == Family::kChanvec);
  CHECK_EQ(p.mr, 6u);
  CHECK_EQ(p.nr, 16u);
  CHECK(p.problem.frame.size == (spx::Extent{1, 8, 9}));
  CHECK_EQ(p.frame.col_phases, 1);
  CHECK_EQ(p.frame.row_len, 9 * 16);  // columns x input channels
  CHECK_EQ(p.frame.plane, 8 * 144);
  CHECK_EQ(p.frame.rows, 8);
  CHECK_EQ(p.frame.elements, 8 * 144 + 32);
  const std::vector<ptrdiff_t>& taps = p.reduction_offsets.at(0);
  CHECK_EQ(taps.size(), 9u);
  CHECK(taps == (P{0, 16, 32, 144, 160, 176, 288, 304, 320}));  // kh * row_len + kw * channels
  CHECK(p.pack.weights_first == (I{0, 2 * 16 * 9 * 16}));
  CHECK(p.pack.tiles_first == (I{0, 2}));
  CHECK_EQ(p.contiguous_channels.at(0), 1);
  CHECK_EQ(p.macs, 6 * 7 * 32 * 16 * 9);
  CHECK_EQ(p.threads, 2);
  CHECK_EQ(p.buffer_len, 0);
  // 6 rows are too few tasks for 2 threads: each of the 2 channel tiles is a task of its own.
  CHECK_EQ(p.task_tiles, 1);
  CHECK(p.first_task == (I{0, 12}));
}

TEST_CASE(plan_sizes_3d_buffered_rowvec) {
  const spx::ConvPlan p = plan_of(conv_transpose3d_k2_s2(), 1);
  CHECK(p.family == Family::kRowvec);
  CHECK_EQ(p.problem.phases.size(), 8u);
  CHECK(p.problem.frame.size == (spx::Extent{2, 3, 4}));
  CHECK_EQ(p.frame.col_phases, 1);
  CHECK_EQ(p.frame.row_len, 4);
  CHECK_EQ(p.frame.plane, 2 * 3 * 4);
  CHECK_EQ(p.frame.rows, 2 * 2 * 3);  // input channels x depth x height
  CHECK_EQ(p.frame.elements, 12 * 4 + 32);
  // Column phases 0 and 1 of the same rows pair up into 4 buffered units.
  CHECK(p.units.blocks == (std::vector<std::vector<size_t>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  CHECK(p.units.buffered == (std::vector<char>{1, 1, 1, 1}));
  CHECK_EQ(p.units.max_siblings, 2);
  for (const std::vector<ptrdiff_t>& off : p.reduction_offsets) CHECK(off == (P{0, 24}));  // one tap, 2 channels
  CHECK(p.out_offsets.at(3) == (P{0, 192, 384, 0}));  // channel stride 4*6*8, padded to MR = 4
  CHECK(p.pack.weights_first == (I{0, 8, 16, 24, 32, 40, 48, 56, 64}));
  CHECK_EQ(p.macs, 8 * 24 * 3 * 2);
  CHECK_EQ(p.buffer_row, 4 + 24);
  CHECK_EQ(p.buffer_len, 4 * 2 * 28);  // MR rows per sibling
  CHECK(p.first_task == (I{0, 6, 12, 18, 24}));
}

TEST_CASE(plan_blocks_rowvec_rows_by_the_frame_they_read) {
  // conv2d 32->4 k3 channels first on 64x512: one more output row reads a new row of 514
  // floats in each of 32 channels, 65792 bytes; 3 rows fit in 256 KiB, fewer than a task's 4.
  Geometry g;
  g.batch = 1, g.in_channels = 32, g.out_channels = 4;
  g.in = {64, 512}, g.kernel = {3, 3}, g.pad = {1, 1};
  const spx::ConvPlan p = plan_of(make_case("conv2d 32->4", Op::kConv, g, false), 1);
  CHECK(p.family == Family::kRowvec);
  CHECK_EQ(p.frame.row_len, 514);
  CHECK_EQ(p.task_rows, 4);
  CHECK_EQ(p.block_rows, 3);
  // With stride 2 (the input gradient of a stride-2 transposed convolution) a row reads two.
  g.stride = {2, 2};
  CHECK_EQ(plan_of(make_case("conv2d 32->4 s2", Op::kConv, g, false), 1).block_rows, 1);
  // Chanvec tasks are one block.
  const spx::ConvPlan c = plan_of(conv2d_many_channels_last(), 1);
  CHECK_EQ(c.block_rows, c.task_rows);
}

TEST_CASE(plan_family_follows_layout) {
  const spx::KernelTable& k = spx::kernels();
  for (const spx::TileShapes& tiles : {kTiles, spx::tile_shapes(k.f32), spx::tile_shapes(k.f64)}) {
    CHECK(plan_of(conv1d_one_output_channel(), 1, tiles).family == Family::kRowvec1);
    CHECK(plan_of(conv2d_many_channels_last(), 1, tiles).family == Family::kChanvec);
    CHECK(plan_of(conv_transpose3d_k2_s2(), 1, tiles).family == Family::kRowvec);
  }
}

}  // namespace spx_test
