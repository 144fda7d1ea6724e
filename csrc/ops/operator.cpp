#include "operator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../engine/activation.h"
#include "../kernels/dispatch.h"
#include "errors.h"

namespace spx {
namespace {

// Below this many multiply-adds a transposed convolution runs as a plain scatter: the same
// useful products without the engine's set-up, which would dominate a call this small.
constexpr int64_t kScatterMacs = 4096;
// Plans and packed weights kept per operator (input shapes and weight layouts in use).
constexpr size_t kCachedPlans = 8, kCachedPacks = 4;

template <typename S>
std::vector<compute_t<S>> widened(const S* values, int64_t count) {
  std::vector<compute_t<S>> out(static_cast<size_t>(count));
  for (size_t i = 0; i < out.size(); ++i) out[i] = widen(values[i]);
  return out;
}

// Whether every value is finite: a chunk at a time, each chunk without a branch per value.
template <typename S>
bool all_finite(const S* values, int64_t count) {
  constexpr int64_t kChunk = 4096;
  for (int64_t i0 = 0; i0 < count; i0 += kChunk) {
    unsigned nonfinite = 0;  // an integer or-reduction: it vectorizes where a bool one does not
    const int64_t end = std::min(count, i0 + kChunk);
    for (int64_t i = i0; i < end; ++i) nonfinite |= unsigned(nonfinite_value(widen(values[i])));
    if (nonfinite) return false;
  }
  return true;
}

}  // namespace

template <typename S>
ConvOperator<S>::ConvOperator(const OpParams& params, const S* weight, const S* bias, const Epilogue<T>& epilogue)
    : params_(params), weight_(weight), bias_(bias), epilogue_(epilogue), finite_weights_(true) {
  // (C_out, C_in/groups, *kernel) or (C_in, C_out/groups, *kernel): the same count.
  const int64_t count = checked_mul(checked_mul(params.in_channels / params.groups, params.out_channels, "weight"),
                                    checked_mul(volume(params.factor), volume(params.kernel), "weight"), "weight");
  // Transposed problems have structural zeros: packing finds their non-finite weights.
  finite_weights_ = params.kind == OpKind::kConvTranspose || all_finite(weight, count);
}

template <typename S>
ConvShape ConvOperator<S>::shape(int64_t batch, const Extent& in, const Extent& out, const Extent& pad_begin) const {
  ConvShape s;
  s.batch = batch;
  s.in_channels = params_.in_channels;
  s.out_channels = params_.out_channels;
  s.in = in;
  s.out = out;
  s.kernel = params_.kernel;
  s.stride = params_.stride;
  s.dilation = params_.dilation;
  s.pad_begin = pad_begin;
  s.groups = params_.groups;
  s.channels_last = params_.channels_last;
  return s;
}

template <typename S>
std::shared_ptr<const ConvPlan> ConvOperator<S>::plan(const ConvShape& s, int threads) const {
  std::vector<int64_t> key{s.batch, threads};
  key.insert(key.end(), s.in.begin(), s.in.end());
  key.insert(key.end(), s.out.begin(), s.out.end());
  key.insert(key.end(), s.pad_begin.begin(), s.pad_begin.end());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& entry : plans_)
      if (entry.first == key) return entry.second;
  }
  ConvProblem problem = params_.kind == OpKind::kConv ? describe_conv(s)
                        : params_.kind == OpKind::kSubpixel ? describe_subpixel(s, params_.factor, params_.dcr)
                                                            : describe_conv_transpose(s, params_.method);
  problem.keep_padding_taps = !problem.structural_zeros && !finite_weights_;
  auto made = std::make_shared<const ConvPlan>(plan_conv(std::move(problem), tile_shapes(kernels_for<S>()), threads));
  std::lock_guard<std::mutex> lock(mutex_);
  if (plans_.size() >= kCachedPlans) plans_.erase(plans_.begin());
  plans_.emplace_back(std::move(key), made);
  return made;
}

template <typename S>
std::shared_ptr<const PackedWeights<compute_t<S>>> ConvOperator<S>::packed(const ConvPlan& plan) const {
  const std::vector<int64_t> signature = pack_signature(plan);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& p : packs_)
      if (p->signature == signature) return p;
  }
  auto made = pack_weights(plan, weight_, bias_, plan.threads);
  std::lock_guard<std::mutex> lock(mutex_);
  if (packs_.size() >= kCachedPacks) packs_.erase(packs_.begin());
  packs_.push_back(made);
  return made;
}

template <typename S>
bool ConvOperator<S>::runs_as_scatter(const ConvShape& s) const {
  if (params_.kind != OpKind::kConvTranspose || params_.method != TransposedMethod::kPolyphase) return false;
  const int64_t per_pixel = std::max<int64_t>(1, (s.out_channels / s.groups) * volume(s.kernel));
  return s.batch * s.in_channels * volume(s.in) <= kScatterMacs / per_pixel;
}

template <typename S>
void ConvOperator<S>::run(const ConvShape& s, const S* x, S* y, int threads) const {
  constexpr bool half = !std::is_same<S, T>::value;
  if (runs_as_scatter(s)) {
    if constexpr (half) {
      return run_widened(s, x, y, threads);
    } else {
      scatter_transposed(s, x, weight_, bias_, y);  // the definition, non-finite weights included
      apply_activation(y, checked_mul(checked_mul(s.batch, s.out_channels, "output"), volume(s.out), "output"), epilogue_);
      return;
    }
  }
  const std::shared_ptr<const ConvPlan> p = plan(s, threads);
  if (p->by_definition) {
    if constexpr (half) return run_widened(s, x, y, threads);
    else return execute_by_definition(*p, x, weight_, bias_, y, epilogue_);
  }
  const std::shared_ptr<const PackedWeights<T>> w = packed(*p);
  if (w->had_nonfinite) {
    if constexpr (half) return run_widened(s, x, y, threads);
    else return run_with_nonfinite_weights(s, *p, *w, x, y);
  }
  execute_conv(*p, *w, x, y, epilogue_);
}

// Half-precision storage on the paths outside the engine (a tiny scatter, non-finite
// weights): the float32 operator on widened copies, then one rounding per output.
template <typename S>
void ConvOperator<S>::run_widened(const ConvShape& s, const S* x, S* y, int threads) const {
  const OpParams& p = params_;
  const int64_t stored_out = checked_mul(p.out_channels, volume(p.factor), "weight");  // the weight's / bias' count
  const int64_t w_elements = checked_mul(checked_mul(p.in_channels, stored_out / p.groups, "weight"), volume(p.kernel), "weight");
  const std::vector<T> xf = widened(x, checked_mul(checked_mul(s.batch, s.in_channels, "input"), volume(s.in), "input"));
  const std::vector<T> wf = widened(weight_, w_elements);
  const std::vector<T> bf = bias_ ? widened(bias_, stored_out) : std::vector<T>();
  std::vector<T> yf(static_cast<size_t>(checked_mul(checked_mul(s.batch, s.out_channels, "output"), volume(s.out), "output")));
  const ConvOperator<T> op(params_, wf.data(), bias_ ? bf.data() : nullptr, epilogue_);
  op.run(s, xf.data(), yf.data(), threads);
  for (size_t i = 0; i < yf.size(); ++i) narrow_to(y + i, yf[i]);
}

// The engine's products with padding and inserted zeros are only zero for finite weights:
// it runs on the arrays as they are (no activation, which could make a wrong NaN finite),
// then the outputs that came out non-finite and read such a zero (polyphase: the border ones
// only) are summed again without it.
template <typename S>
void ConvOperator<S>::run_with_nonfinite_weights(const ConvShape& s, const ConvPlan& plan,
                                                 const PackedWeights<T>& packed, const S* x, S* y) const {
  if constexpr (std::is_same<S, T>::value) {  // half-precision storage goes through run_widened
    execute_conv(plan, packed, x, y, Epilogue<T>{Activation::kNone, T(0)});
    resum_structural_zero_outputs(plan, packed, x, y, s.out);
    apply_activation(y, checked_mul(checked_mul(s.batch, s.out_channels, "output"), volume(s.out), "output"), epilogue_);
  }
}

template <typename T>
void apply_activation(T* y, int64_t count, const Epilogue<T>& e) {
  if (e.activation == Activation::kNone) return;
  for (int64_t i = 0; i < count; ++i) y[i] = activate(y[i], e);
}

template class ConvOperator<float>;
template class ConvOperator<double>;
template class ConvOperator<Float16>;
template class ConvOperator<BFloat16>;
template void apply_activation(float*, int64_t, const Epilogue<float>&);
template void apply_activation(double*, int64_t, const Epilogue<double>&);

}  // namespace spx
