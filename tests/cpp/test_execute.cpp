// Execution against the definitions (reference.cpp) on odd shapes, and its invariances: packed
// weights reused across input sizes, thread counts, fused activations.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../../csrc/engine/execute.h"
#include "../../csrc/kernels/dispatch.h"
#include "check.h"
#include "reference.h"

namespace spx_test {
namespace {

using spx::Activation;

const spx::Epilogue<float> kNoActivationF{Activation::kNone, 0.f};

template <typename T>
bool bit_identical(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0;
}

// Both layouts; both methods of a transposed convolution; both channel orders of a sub-pixel one.
std::vector<ConvCase> variants(const std::string& name, Op op, const Geometry& g) {
  std::vector<ConvCase> out;
  for (bool channels_last : {false, true}) {
    ConvCase c = make_case(name, op, g, channels_last);
    out.push_back(c);
    if (op == Op::kConvTranspose) c.method = spx::TransposedMethod::kDirect;
    if (op == Op::kSubpixel) c.dcr = true;
    if (op != Op::kConv) out.push_back(c);
  }
  return out;
}

Geometry geometry(int64_t batch, int64_t in_channels, int64_t out_channels, int64_t groups, std::vector<int64_t> in,
                  std::vector<int64_t> kernel, std::vector<int64_t> stride = {}, std::vector<int64_t> dilation = {},
                  std::vector<int64_t> pad = {}) {
  Geometry g;
  g.batch = batch, g.in_channels = in_channels, g.out_channels = out_channels, g.groups = groups;
  g.in = std::move(in), g.kernel = std::move(kernel), g.stride = std::move(stride), g.dilation = std::move(dilation);
  g.pad = std::move(pad);
  return g;
}

std::vector<ConvCase> odd_shapes() {
  std::vector<ConvCase> cases;
  auto add = [&](const std::string& name, Op op, const Geometry& g) {
    for (const ConvCase& c : variants(name, op, g)) cases.push_back(c);
  };
  add("conv1d k4 s3, batch 3", Op::kConv, geometry(3, 3, 5, 1, {17}, {4}, {3}, {}, {2}));
  add("conv2d groups 2, dilation 2x3", Op::kConv, geometry(1, 4, 6, 2, {9, 11}, {3, 2}, {2, 1}, {2, 3}, {1, 2}));
  add("conv3d", Op::kConv, geometry(2, 2, 3, 1, {5, 6, 7}, {2, 3, 1}, {1, 2, 3}, {}, {1, 0, 0}));
  add("conv2d length-1 axis", Op::kConv, geometry(1, 2, 4, 1, {1, 13}, {1, 3}, {}, {}, {0, 1}));
  add("conv2d depthwise", Op::kConv, geometry(1, 4, 4, 4, {7, 9}, {3, 3}, {}, {}, {1, 1}));
  add("conv2d 20->36 (partial tiles)", Op::kConv, geometry(1, 20, 36, 1, {5, 8}, {3, 3}, {}, {}, {1, 1}));
  // Rows wide enough for strided chanvec runs (AVX-512: 14 pixels) and a remainder, with a
  // partial and with whole channel tiles.
  add("conv2d rows of 29, 5->20", Op::kConv, geometry(2, 5, 20, 1, {3, 29}, {3, 3}, {}, {}, {1, 1}));
  add("conv2d rows of 30, 3->32", Op::kConv, geometry(1, 3, 32, 1, {2, 30}, {1, 3}, {}, {}, {0, 1}));
  add("conv_transpose2d k4 s2 phase rows of 30", Op::kConvTranspose, geometry(1, 6, 34, 1, {3, 30}, {4, 4}, {2, 2}, {}, {1, 1}));
  add("conv1d one output channel", Op::kConv, geometry(1, 3, 1, 1, {40}, {5}, {2}, {}, {2}));
  Geometry output_padding = geometry(3, 3, 2, 1, {9}, {3}, {2}, {}, {1});
  output_padding.output_padding = 1;
  add("conv_transpose1d k3 s2 (k not a multiple of s), batch 3", Op::kConvTranspose, output_padding);
  add("conv_transpose2d k1 s3 (k < s: empty phases)", Op::kConvTranspose, geometry(1, 2, 3, 1, {4, 5}, {1, 1}, {3, 3}));
  add("conv_transpose2d k3 d2 s2 (gcd 2: empty phases)", Op::kConvTranspose,
      geometry(1, 3, 4, 1, {5, 6}, {3, 3}, {2, 2}, {2, 2}, {1, 0}));
  add("conv_transpose3d groups 2", Op::kConvTranspose, geometry(1, 4, 6, 2, {3, 4, 5}, {2, 3, 4}, {1, 2, 3}, {}, {0, 1, 2}));
  add("conv_transpose2d length-1 axis, batch 3", Op::kConvTranspose, geometry(3, 2, 3, 1, {1, 7}, {1, 4}, {1, 2}, {}, {0, 1}));
  add("conv_transpose2d k4 s2 16->24", Op::kConvTranspose, geometry(1, 16, 24, 1, {6, 5}, {4, 4}, {2, 2}, {}, {1, 1}));
  Geometry sub1 = geometry(1, 2, 2, 1, {11}, {3}, {}, {}, {1});
  sub1.factor = {3};
  add("subpixel1d r3", Op::kSubpixel, sub1);
  Geometry sub2 = geometry(3, 4, 2, 2, {5, 6}, {3, 3}, {}, {}, {1, 1});
  sub2.factor = {2, 3};
  add("subpixel2d r2x3 groups 2, batch 3", Op::kSubpixel, sub2);
  Geometry sub3 = geometry(1, 3, 2, 1, {3, 4, 5}, {3, 1, 3}, {1, 1, 2}, {}, {1, 0, 1});
  sub3.factor = {2, 1, 2};
  add("subpixel3d r2x1x2", Op::kSubpixel, sub3);
  return cases;
}

// The engine against the definition on grid data (exact in float and double).
template <typename T>
void check_case(const ConvCase& c, bool with_bias, int threads, const spx::Epilogue<T>& epilogue, int ulps,
                const std::vector<T>* input = nullptr) {
  const std::vector<T> x = input ? *input : grid_values<T>(input_count(c), 1);
  const std::vector<T> w = grid_values<T>(weight_count(c), 2), b = grid_values<T>(bias_count(c), 3);
  const T* bias = with_bias ? b.data() : nullptr;
  std::vector<double> want = reference(c, x.data(), w.data(), bias);
  for (double& v : want) v = double(activate(T(v), epilogue.activation, epilogue.negative_slope));
  compare(run_engine(c, x.data(), w.data(), bias, threads, epilogue), want, describe(c), ulps);
}

// Cases large enough to run on several threads, one per tile family and store path.
std::vector<ConvCase> threaded_cases() {
  std::vector<ConvCase> cases;
  cases.push_back(make_case("conv2d 8->16 rowvec", Op::kConv, geometry(3, 8, 16, 1, {24, 40}, {3, 3}, {}, {}, {1, 1}), false));
  cases.push_back(make_case("conv2d 16->24 chanvec", Op::kConv, geometry(2, 16, 24, 1, {12, 20}, {3, 3}, {}, {}, {1, 1}), true));
  cases.push_back(make_case("conv2d depthwise rowvec1", Op::kConv, geometry(2, 8, 8, 8, {32, 48}, {5, 5}, {}, {}, {2, 2}), false));
  cases.push_back(make_case("conv_transpose2d k4 s2 buffered", Op::kConvTranspose,
                            geometry(1, 8, 8, 1, {20, 24}, {4, 4}, {2, 2}, {}, {1, 1}), false));
  Geometry sub = geometry(1, 8, 4, 1, {16, 18}, {3, 3}, {}, {}, {1, 1});
  sub.factor = {2, 2};
  cases.push_back(make_case("subpixel2d r2", Op::kSubpixel, sub, true));
  // Many small images: a task takes several images through each channel tile.
  for (bool last : {false, true})
    cases.push_back(make_case("conv_transpose2d batch 16 of 4x4", Op::kConvTranspose,
                              geometry(16, 16, 24, 1, {4, 4}, {4, 4}, {2, 2}, {}, {1, 1}), last));
  // One row per phase: the threads share the channel tiles instead of rows.
  for (bool last : {false, true})
    cases.push_back(make_case("conv_transpose1d k16 s8 few rows", Op::kConvTranspose,
                              geometry(1, 16, 64, 1, {200}, {16}, {8}, {}, {4}), last));
  return cases;
}

}  // namespace

TEST_CASE(execute_matches_reference_on_odd_shapes) {
  int empty_phases = 0;
  for (const ConvCase& c : odd_shapes()) {
    check_case<float>(c, true, 1, kNoActivationF, 0);
    check_case<double>(c, false, 1, {Activation::kNone, 0.0}, 0);  // double without a bias: both paths
    for (const spx::Phase& ph : describe_problem(c).phases) empty_phases += ph.taps.empty();
  }
  CHECK(empty_phases > 0);  // the shapes do exercise phases with no tap
}

TEST_CASE(execute_reuses_packed_weights_across_input_sizes) {
  for (bool channels_last : {false, true})
    for (Op op : {Op::kConvTranspose, Op::kConv}) {
      // The tile family, so the panel layout, depends on the row width: for conv (one phase)
      // only a change of height is sure to keep it at every SIMD level.
      Geometry g = op == Op::kConv ? geometry(2, 4, 6, 1, {16, 24}, {3, 3}, {}, {}, {1, 1})
                                   : geometry(2, 4, 6, 1, {16, 16}, {4, 4}, {2, 2}, {}, {1, 1});
      const ConvCase small_case = make_case("small", op, g, channels_last);
      g.in = {40, 24};
      const ConvCase large_case = make_case("40x24", op, g, channels_last);
      const spx::ConvPlan small_plan = spx::plan_conv(describe_problem(small_case), spx::tile_shapes(spx::kernels_for<float>()), 1);
      const spx::ConvPlan large_plan = spx::plan_conv(describe_problem(large_case), spx::tile_shapes(spx::kernels_for<float>()), 1);
      CHECK_MSG(spx::pack_signature(small_plan) == spx::pack_signature(large_plan), describe(large_case));
      const std::vector<float> x = random_values<float>(input_count(large_case), 1);
      const std::vector<float> w = random_values<float>(weight_count(large_case), 2);
      const std::vector<float> b = random_values<float>(bias_count(large_case), 3);
      const auto reused = spx::pack_weights(small_plan, w.data(), b.data(), 1);
      std::vector<float> y(size_t(output_count(large_case)));
      spx::execute_conv(large_plan, *reused, x.data(), y.data(), kNoActivationF);
      CHECK_MSG(bit_identical(y, run_engine(large_case, x.data(), w.data(), b.data(), 1, kNoActivationF)),
                describe(large_case));
    }
}

TEST_CASE(execute_bit_identical_across_thread_counts) {
  for (const ConvCase& c : threaded_cases()) {
    for (int threads : {2, 3})
      CHECK_MSG(spx::plan_conv(describe_problem(c), spx::tile_shapes(spx::kernels_for<float>()), threads).threads == threads, describe(c));
    const std::vector<float> x = random_values<float>(input_count(c), 1), w = random_values<float>(weight_count(c), 2);
    const std::vector<float> b = random_values<float>(bias_count(c), 3);
    const std::vector<float> one = run_engine(c, x.data(), w.data(), b.data(), 1, kNoActivationF);
    for (int threads : {2, 3})
      CHECK_MSG(bit_identical(one, run_engine(c, x.data(), w.data(), b.data(), threads, kNoActivationF)),
                describe(c) << " with " << threads << " threads");
    check_case<float>(c, true, 3, kNoActivationF, 0);
  }
}

TEST_CASE(execute_row_blocks_change_no_result) {
  // Rowvec tasks run their rows in blocks (every tile over a block before the next): any block
  // size gives the same bits as one block per task, which the reference checks above.
  int rowvec_cases = 0;
  for (const ConvCase& c : threaded_cases()) {
    const spx::ConvPlan plan = spx::plan_conv(describe_problem(c), spx::tile_shapes(spx::kernels_for<float>()), 1);
    if (plan.family == spx::Family::kChanvec) continue;
    ++rowvec_cases;
    const std::vector<float> x = random_values<float>(input_count(c), 1), w = random_values<float>(weight_count(c), 2);
    const std::vector<float> b = random_values<float>(bias_count(c), 3);
    const auto packed = spx::pack_weights(plan, w.data(), b.data(), 1);
    auto run_blocks = [&](int64_t block_rows) {
      spx::ConvPlan blocked = plan;
      blocked.block_rows = block_rows;
      std::vector<float> y(size_t(output_count(c)));
      spx::execute_conv(blocked, *packed, x.data(), y.data(), kNoActivationF);
      return y;
    };
    const std::vector<float> whole = run_blocks(plan.task_rows);
    for (int64_t rows : {int64_t(1), int64_t(2), int64_t(5)})
      CHECK_MSG(bit_identical(whole, run_blocks(rows)), describe(c) << " in blocks of " << rows << " rows");
  }
  CHECK(rowvec_cases >= 2);
}

TEST_CASE(execute_fused_activations) {
  const std::vector<ConvCase> shapes = odd_shapes(), threaded = threaded_cases();
  std::vector<ConvCase> cases(shapes.begin(), shapes.begin() + 20);  // conv and some transposed, both layouts
  cases.insert(cases.end(), threaded.begin(), threaded.end());
  for (Activation a : {Activation::kRelu, Activation::kRelu6, Activation::kLeakyRelu, Activation::kTanh,
                       Activation::kSigmoid}) {
    const int ulps = a == Activation::kTanh || a == Activation::kSigmoid ? 4 : 0;
    for (const ConvCase& c : cases) {
      check_case<float>(c, true, 1, {a, 0.1f}, ulps);
      check_case<double>(c, true, 2, {a, 0.1}, ulps);
    }
  }
}

TEST_CASE(execute_activations_propagate_nan) {
  for (const ConvCase& c : odd_shapes()) {
    std::vector<float> x = grid_values<float>(input_count(c), 1);
    for (size_t i = 0; i < x.size(); i += 7) x[i] = std::numeric_limits<float>::quiet_NaN();
    for (Activation a : {Activation::kRelu, Activation::kRelu6, Activation::kLeakyRelu})
      check_case<float>(c, true, 1, {a, 0.1f}, 0, &x);
  }
}

}  // namespace spx_test
