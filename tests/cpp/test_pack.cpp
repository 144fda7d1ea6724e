// Packing: what the signature captures, and where each weight lands in the panels (the layout
// of pack.cpp: per tile of channels, [tap][c][lane] for both families).
#include <cmath>
#include <limits>

#include "../../csrc/engine/pack.h"
#include "../../csrc/kernels/dispatch.h"
#include "check.h"
#include "reference.h"

namespace spx_test {
namespace {

using spx::Family;

// The AVX2 float tile shapes: rowvec MR = 4, chanvec NR = 16 (as in test_plan.cpp).
const spx::TileShapes kTiles{8, 4, 24, 32, 6, 16, 4};

spx::ConvPlan plan_of(const ConvCase& c) { return spx::plan_conv(describe_problem(c), kTiles, 1); }

// weight[i] = i + 1: a packed value names the element it came from, and 0 is padding.
std::vector<float> numbered(int64_t count) {
  std::vector<float> w(static_cast<size_t>(count));
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i + 1);
  return w;
}

ConvCase polyphase_k4_s2_p1(int64_t height, int64_t width) {
  Geometry g;
  g.in_channels = 4, g.out_channels = 4, g.in = {height, width}, g.kernel = {4, 4}, g.stride = {2, 2}, g.pad = {1, 1};
  return make_case("conv_transpose2d k4 s2 p1", Op::kConvTranspose, g, false);
}

// Rowvec, 7 output channels in 2 tiles of 4 (the last one has a padding lane).
ConvCase conv2d_rowvec() {
  Geometry g;
  g.in_channels = 3, g.out_channels = 7, g.in = {8, 30}, g.kernel = {2, 2};
  return make_case("conv2d 3->7", Op::kConv, g, false);
}

// 1-D transposed, k = 4, s = 2, crop 1: phase 0 has taps k = 1, 3 and phase 1 taps k = 0, 2.
ConvCase conv_transpose1d_rowvec() {
  Geometry g;
  g.in_channels = 2, g.out_channels = 3, g.in = {20}, g.kernel = {4}, g.stride = {2}, g.pad = {1};
  return make_case("conv_transpose1d 2->3", Op::kConvTranspose, g, false);
}

}  // namespace

TEST_CASE(pack_signature_follows_the_taps) {
  const spx::ConvPlan small = plan_of(polyphase_k4_s2_p1(16, 16)), large = plan_of(polyphase_k4_s2_p1(40, 24));
  CHECK(spx::pack_signature(small) == spx::pack_signature(large));
  // A 1x1 input: each phase's taps that only ever read outside the input are left out.
  const spx::ConvPlan tiny = plan_of(polyphase_k4_s2_p1(1, 1));
  CHECK(tiny.problem.phases[0].taps.size() < small.problem.phases[0].taps.size());
  CHECK(spx::pack_signature(tiny) != spx::pack_signature(small));
}

TEST_CASE(pack_rowvec_panels) {
  const ConvCase c = conv2d_rowvec();  // weight (7, 3, 2, 2): w[co, c, kh, kw] is element co*12 + c*4 + kh*2 + kw
  const spx::ConvPlan plan = plan_of(c);
  CHECK(plan.family == Family::kRowvec);
  const std::vector<float> w = numbered(weight_count(c)), bias{10, 11, 12, 13, 14, 15, 16};
  const auto packed = spx::pack_weights(plan, w.data(), bias.data(), 1);
  CHECK_EQ(packed->weights.size(), 2u * 48);  // 2 tiles x (3 channels x 4 taps) x 4 lanes
  CHECK_EQ(packed->weights[0], 1.f);          // tile 0, c 0, tap 0, lane 0: w[0, 0, 0, 0]
  CHECK_EQ(packed->weights[31], 43.f);        // tile 0, tap (1, 0), c 1, lane 3: w[3, 1, 1, 0] = element 42
  CHECK_EQ(packed->weights[94], 84.f);        // tile 1, tap (1, 1), c 2, lane 2: w[6, 2, 1, 1] = element 83
  CHECK_EQ(packed->weights[48 + 3], 0.f);     // tile 1, lane 3: channel 7 does not exist
  CHECK_EQ(packed->weights[95], 0.f);
  CHECK(packed->bias == (spx::AlignedVector<float>{10, 11, 12, 13, 14, 15, 16, 0}));
  CHECK(reinterpret_cast<uintptr_t>(packed->weights.data()) % spx::kCacheLine == 0);  // no load straddles lines
  CHECK(!packed->had_nonfinite);
}

TEST_CASE(pack_chanvec_panels) {
  Geometry g;  // weight (20, 16, 3, 3): w[co, c, kh, kw] is element co*144 + c*9 + kh*3 + kw
  g.in_channels = 16, g.out_channels = 20, g.in = {6, 7}, g.kernel = {3, 3}, g.pad = {1, 1};
  const ConvCase c = make_case("conv2d 16->20", Op::kConv, g, true);
  const spx::ConvPlan plan = plan_of(c);
  CHECK(plan.family == Family::kChanvec);
  const std::vector<float> w = numbered(weight_count(c));
  const auto packed = spx::pack_weights(plan, w.data(), static_cast<const float*>(nullptr), 1);
  CHECK_EQ(packed->weights.size(), 2u * 9 * 16 * 16);  // 2 tiles x 9 taps x 16 channels x 16 lanes
  CHECK_EQ(packed->weights[0], 1.f);
  CHECK_EQ(packed->weights[1061], 743.f);  // tile 0, tap (1, 1), c 2, lane 5: w[5, 2, 1, 1] = element 742
  CHECK_EQ(packed->weights[4595], 2880.f);  // tile 1, tap (2, 2), c 15, lane 3: w[19, 15, 2, 2] = element 2879
  CHECK_EQ(packed->weights[2304 + 4], 0.f);  // tile 1, lane 4: channel 20 does not exist
  CHECK(packed->bias == spx::AlignedVector<float>(32, 0.f));  // no bias: zeros
}

TEST_CASE(pack_transposed_panels) {
  const ConvCase c = conv_transpose1d_rowvec();  // weight (2, 3, 4): w[ci, co, k] is element ci*12 + co*4 + k
  const spx::ConvPlan plan = plan_of(c);
  CHECK(plan.family == Family::kRowvec);
  CHECK_EQ(plan.problem.phases.size(), 2u);
  CHECK_EQ(plan.problem.phases[0].taps.at(1).weight_offset, 3);
  CHECK_EQ(plan.problem.phases[1].taps.at(1).weight_offset, 2);
  const std::vector<float> w = numbered(weight_count(c));
  const auto packed = spx::pack_weights(plan, w.data(), static_cast<const float*>(nullptr), 1);
  CHECK(plan.pack.weights_first == (std::vector<int64_t>{0, 16, 32}));  // (2 channels x 2 taps) x 4 lanes
  CHECK_EQ(packed->weights[14], 24.f);  // block 0, tap k = 3, c 1, lane 2: w[1, 2, 3] = element 23
  CHECK_EQ(packed->weights[24], 3.f);   // block 1, tap k = 2, c 0, lane 0: w[0, 0, 2] = element 2
  CHECK_EQ(packed->weights[16 + 3], 0.f);
}

TEST_CASE(pack_nonfinite_weights_flagged_only_for_transposed) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const ConvCase transposed = conv_transpose1d_rowvec();
  std::vector<float> w = numbered(weight_count(transposed));
  w[23] = inf;  // packed at 14 (see pack_transposed_panels)
  w[2] = nan;   // packed at 24
  const auto flagged = spx::pack_weights(plan_of(transposed), w.data(), static_cast<const float*>(nullptr), 1);
  CHECK_EQ(flagged->weights[14], inf);  // packed as they are: the operator repairs the outputs
  CHECK(std::isnan(flagged->weights[24]));
  CHECK(flagged->had_nonfinite);
  w[23] = 24, w[2] = 3;
  CHECK(!spx::pack_weights(plan_of(transposed), w.data(), static_cast<const float*>(nullptr), 1)->had_nonfinite);

  const ConvCase conv = conv2d_rowvec();
  std::vector<float> cw = numbered(weight_count(conv));
  cw[42] = inf;  // packed at 31 (see pack_rowvec_panels)
  const auto kept = spx::pack_weights(plan_of(conv), cw.data(), static_cast<const float*>(nullptr), 1);
  CHECK_EQ(kept->weights[31], inf);
  CHECK(!kept->had_nonfinite);
}

TEST_CASE(pack_same_with_threads) {
  Geometry g;  // 128 x 64 x 9 weights: enough to pack on several threads
  g.in_channels = 128, g.out_channels = 64, g.in = {4, 4}, g.kernel = {3, 3};
  for (bool channels_last : {false, true}) {
    const ConvCase c = make_case("conv2d 128->64", Op::kConv, g, channels_last);
    const spx::ConvPlan plan = plan_of(c);
    const std::vector<double> w = random_values<double>(weight_count(c), 1), bias = random_values<double>(64, 2);
    const auto one = spx::pack_weights(plan, w.data(), bias.data(), 1), two = spx::pack_weights(plan, w.data(), bias.data(), 2);
    CHECK(one->weights == two->weights);
    CHECK(one->bias == two->bias);
  }
}

}  // namespace spx_test
