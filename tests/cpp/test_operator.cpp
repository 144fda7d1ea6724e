// ConvOperator: its plan and pack caches, the scatter path of tiny transposed convolutions and
// the completion of non-finite weights and inputs.
#include <cmath>
#include <limits>

#include "../../csrc/ops/operator.h"
#include "check.h"
#include "reference.h"

namespace spx_test {
namespace {

using spx::Activation;

spx::OpParams params_of(const ConvCase& c) {
  spx::OpParams p;
  p.kind = c.op == Op::kConv ? spx::OpKind::kConv : c.op == Op::kSubpixel ? spx::OpKind::kSubpixel : spx::OpKind::kConvTranspose;
  p.method = c.method;
  p.kernel = c.shape.kernel, p.stride = c.shape.stride, p.dilation = c.shape.dilation;
  p.factor = c.factor, p.dcr = c.dcr;
  p.groups = c.shape.groups, p.in_channels = c.shape.in_channels, p.out_channels = c.shape.out_channels;
  p.channels_last = c.shape.channels_last;
  return p;
}

template <typename T>
std::vector<T> run_operator(const spx::ConvOperator<T>& op, const ConvCase& c, const std::vector<T>& x, int threads) {
  std::vector<T> y(size_t(output_count(c)), T(1e30));
  op.run(c.shape, x.data(), y.data(), threads);
  return y;
}

ConvCase transposed_k4_s2_p1(int64_t height, int64_t width, bool channels_last) {
  Geometry g;
  g.batch = 2, g.in_channels = 4, g.out_channels = 6, g.in = {height, width}, g.kernel = {4, 4}, g.stride = {2, 2},
  g.pad = {1, 1};
  return make_case("conv_transpose2d k4 s2 p1", Op::kConvTranspose, g, channels_last);
}

// operator.cpp runs a polyphase transposed convolution of at most kScatterMacs = 4096 useful
// multiply-adds as a scatter; this one has 2 x 3 x 3 inputs x 3 outputs x 3 x 3 taps = 486.
ConvCase tiny_transposed(bool channels_last) {
  Geometry g;
  g.batch = 1, g.in_channels = 2, g.out_channels = 3, g.in = {3, 3}, g.kernel = {3, 3}, g.stride = {2, 2}, g.pad = {1, 1};
  return make_case("tiny conv_transpose2d", Op::kConvTranspose, g, channels_last);
}

// Inf, -Inf and NaN weights, NaN and Inf inputs, among grid values (zeros included).
void make_nonfinite(std::vector<float>* x, std::vector<float>* w) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  (*w)[1] = inf, (*w)[w->size() / 2] = -inf, (*w)[w->size() - 3] = nan;
  (*x)[2] = nan, (*x)[x->size() / 3] = inf, (*x)[x->size() - 1] = -inf;
}

}  // namespace

TEST_CASE(operator_caches_plans_and_packs) {
  const ConvCase c = transposed_k4_s2_p1(16, 16, false), larger = transposed_k4_s2_p1(40, 24, false);
  const std::vector<float> w = grid_values<float>(weight_count(c), 2), b = grid_values<float>(bias_count(c), 3);
  const spx::ConvOperator<float> op(params_of(c), w.data(), b.data(), {Activation::kNone, 0.f});
  const spx::ConvShape shape = op.shape(c.shape.batch, c.shape.in, c.shape.out, c.shape.pad_begin);
  const auto plan = op.plan(shape, 1);
  CHECK(op.plan(shape, 1) == plan);
  CHECK(op.plan(shape, 2) != plan);  // the thread count is part of the key
  const auto packed = op.packed(*plan);
  CHECK(op.packed(*plan) == packed);
  const auto larger_plan = op.plan(op.shape(larger.shape.batch, larger.shape.in, larger.shape.out, larger.shape.pad_begin), 1);
  CHECK(larger_plan != plan);
  CHECK(op.packed(*larger_plan) == packed);  // same signature: the same packed weights
  const std::vector<float> x = grid_values<float>(input_count(c), 1);
  const std::vector<double> want = reference(c, x.data(), w.data(), b.data());
  for (int call = 0; call < 2; ++call) compare(run_operator(op, c, x, 1), want, describe(c) + " via the operator");
  CHECK(op.plan(shape, 1) == plan);  // run() used the cached plan and pack
  CHECK(op.packed(*plan) == packed);
}

TEST_CASE(operator_scatter_path_equals_engine_path) {
  for (bool channels_last : {false, true})
    for (Activation a : {Activation::kNone, Activation::kRelu}) {
      const ConvCase c = tiny_transposed(channels_last);
      const std::vector<float> x = grid_values<float>(input_count(c), 1), w = grid_values<float>(weight_count(c), 2);
      const std::vector<float> b = grid_values<float>(bias_count(c), 3);
      const spx::Epilogue<float> epilogue{a, 0.f};
      const spx::ConvOperator<float> op(params_of(c), w.data(), b.data(), epilogue);
      const std::vector<float> engine = run_engine(c, x.data(), w.data(), b.data(), 1, epilogue);
      std::vector<double> want(engine.begin(), engine.end());
      compare(run_operator(op, c, x, 1), want, describe(c) + " scatter vs engine");
      std::vector<double> definition = reference(c, x.data(), w.data(), b.data());
      for (double& v : definition) v = double(activate(float(v), a, 0.f));
      compare(engine, definition, describe(c) + " engine vs reference");
    }
}

TEST_CASE(operator_nonfinite_weights_and_inputs) {
  std::vector<ConvCase> cases{tiny_transposed(false), tiny_transposed(true)};
  for (bool channels_last : {false, true})
    for (spx::TransposedMethod method : {spx::TransposedMethod::kPolyphase, spx::TransposedMethod::kDirect}) {
      cases.push_back(transposed_k4_s2_p1(9, 7, channels_last));
      cases.back().method = method;
    }
  Geometry conv;  // conv pads with zeros: an infinite weight meeting the padding gives NaN
  conv.in_channels = 3, conv.out_channels = 4, conv.in = {6, 5}, conv.kernel = {3, 3}, conv.pad = {1, 1};
  cases.push_back(make_case("conv2d", Op::kConv, conv, false));
  for (const ConvCase& c : cases)
    for (Activation a : {Activation::kNone, Activation::kRelu}) {
      std::vector<float> x = grid_values<float>(input_count(c), 1), w = grid_values<float>(weight_count(c), 2);
      const std::vector<float> b = grid_values<float>(bias_count(c), 3);
      make_nonfinite(&x, &w);
      const spx::ConvOperator<float> op(params_of(c), w.data(), b.data(), {a, 0.f});
      std::vector<double> want = reference(c, x.data(), w.data(), b.data());
      int nonfinite = 0;
      for (double& v : want) nonfinite += !std::isfinite(v), v = double(activate(float(v), a, 0.f));
      CHECK_MSG(nonfinite > 0 && nonfinite < int(want.size()), describe(c));
      for (int threads : {1, 2}) compare(run_operator(op, c, x, threads), want, describe(c) + " with non-finite values");
    }
}

}  // namespace spx_test

namespace spx_test {
namespace {

// x rounded to the storage type H (through float32) and H's bits read back as float32.
template <typename H>
std::vector<H> to_half(const std::vector<float>& values) {
  std::vector<H> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) narrow_to(&out[i], values[i]);
  return out;
}
template <typename H>
std::vector<float> to_float(const std::vector<H>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = widen(values[i]);
  return out;
}

// A half-precision operator computes the float32 operator's sums on the widened values and
// rounds each once: bit for bit the float32 result rounded (the engine, scatter and non-finite
// paths alike).
template <typename H>
void check_half_equals_rounded_float(const ConvCase& c, bool nonfinite) {
  std::vector<float> x = grid_values<float>(input_count(c), 1), w = grid_values<float>(weight_count(c), 2);
  const std::vector<float> b = grid_values<float>(bias_count(c), 3);
  if (nonfinite) make_nonfinite(&x, &w);
  const std::vector<H> xh = to_half<H>(x), wh = to_half<H>(w), bh = to_half<H>(b);
  const std::vector<float> xf = to_float(xh), wf = to_float(wh), bf = to_float(bh);
  for (Activation a : {Activation::kNone, Activation::kSigmoid}) {
    const spx::ConvOperator<H> half(params_of(c), wh.data(), bh.data(), {a, 0.f});
    const spx::ConvOperator<float> single(params_of(c), wf.data(), bf.data(), {a, 0.f});
    for (int threads : {1, 2}) {
      std::vector<H> y(size_t(output_count(c)));
      half.run(c.shape, xh.data(), y.data(), threads);
      const std::vector<H> want = to_half<H>(run_operator(single, c, xf, threads));
      size_t differ = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        const bool both_nan = std::isnan(widen(y[i])) && std::isnan(widen(want[i]));
        differ += !both_nan && y[i].bits != want[i].bits;
      }
      CHECK_MSG(differ == 0, describe(c) + ": " + std::to_string(differ) + " half results differ");
    }
  }
}

}  // namespace

TEST_CASE(operator_half_precision_equals_rounded_float) {
  for (bool channels_last : {false, true}) {
    for (const ConvCase& c : {transposed_k4_s2_p1(13, 11, channels_last), tiny_transposed(channels_last)}) {
      check_half_equals_rounded_float<spx::Float16>(c, false);
      check_half_equals_rounded_float<spx::BFloat16>(c, false);
      check_half_equals_rounded_float<spx::Float16>(c, true);
      check_half_equals_rounded_float<spx::BFloat16>(c, true);
    }
  }
}

}  // namespace spx_test
