#include "operator.h"

#include <cmath>
#include <cstring>

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

template <typename T>
TileShapes tiles_for();
template <>
TileShapes tiles_for<float>() { return tile_shapes(kernels().f32); }
template <>
TileShapes tiles_for<double>() { return tile_shapes(kernels().f64); }

}  // namespace

template <typename T>
ConvOperator<T>::ConvOperator(const OpParams& params, const T* weight, const T* bias, const Epilogue<T>& epilogue)
    : params_(params), weight_(weight), bias_(bias), epilogue_(epilogue), finite_weights_(true) {
  // (C_out, C_in/groups, *kernel) or (C_in, C_out/groups, *kernel): the same count.
  const int64_t count = checked_mul(checked_mul(params.in_channels / params.groups, params.out_channels, "weight"),
                                    checked_mul(volume(params.factor), volume(params.kernel), "weight"), "weight");
  for (int64_t i = 0; i < count && finite_weights_; ++i) finite_weights_ = std::isfinite(weight[i]);
}

template <typename T>
ConvShape ConvOperator<T>::shape(int64_t batch, const Extent& in, const Extent& out, const Extent& pad_begin) const {
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

template <typename T>
std::shared_ptr<const ConvPlan> ConvOperator<T>::plan(const ConvShape& s, int threads) const {
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
  auto made = std::make_shared<const ConvPlan>(plan_conv(std::move(problem), tiles_for<T>(), threads));
  std::lock_guard<std::mutex> lock(mutex_);
  if (plans_.size() >= kCachedPlans) plans_.erase(plans_.begin());
  plans_.emplace_back(std::move(key), made);
  return made;
}

template <typename T>
std::shared_ptr<const PackedWeights<T>> ConvOperator<T>::packed(const ConvPlan& plan) const {
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

template <typename T>
bool ConvOperator<T>::runs_as_scatter(const ConvShape& s) const {
  if (params_.kind != OpKind::kConvTranspose || params_.method != TransposedMethod::kPolyphase) return false;
  const int64_t per_pixel = std::max<int64_t>(1, (s.out_channels / s.groups) * volume(s.kernel));
  return s.batch * s.in_channels * volume(s.in) <= kScatterMacs / per_pixel;
}

template <typename T>
void ConvOperator<T>::run(const ConvShape& s, const T* x, T* y, int threads) const {
  const int64_t y_elements = checked_mul(checked_mul(s.batch, s.out_channels, "output"), volume(s.out), "output");
  if (runs_as_scatter(s)) {
    scatter_transposed(s, x, weight_, bias_, y);  // the definition, non-finite weights included
    apply_activation(y, y_elements, epilogue_);
    return;
  }
  const std::shared_ptr<const ConvPlan> p = plan(s, threads);
  if (p->by_definition) return execute_by_definition(*p, x, weight_, bias_, y, epilogue_);
  const std::shared_ptr<const PackedWeights<T>> w = packed(*p);
  if (w->had_nonfinite) return run_with_nonfinite_weights(s, *p, *w, x, y);
  execute_conv(*p, *w, x, y, epilogue_);
}

// The engine's products with padding and inserted zeros are only zero for finite weights:
// it runs on the arrays as they are (no activation, which could make a wrong NaN finite),
// then the outputs that came out non-finite are recomputed from the definition.
template <typename T>
void ConvOperator<T>::run_with_nonfinite_weights(const ConvShape& s, const ConvPlan& plan,
                                                 const PackedWeights<T>& packed, const T* x, T* y) const {
  execute_conv(plan, packed, x, y, Epilogue<T>{Activation::kNone, T(0)});
  recompute_nonfinite_outputs(s, x, weight_, bias_, y, plan.threads);
  apply_activation(y, checked_mul(checked_mul(s.batch, s.out_channels, "output"), volume(s.out), "output"), epilogue_);
}

template <typename T>
void apply_activation(T* y, int64_t count, const Epilogue<T>& e) {
  if (e.activation == Activation::kNone) return;
  for (int64_t i = 0; i < count; ++i) y[i] = activate(y[i], e);
}

template class ConvOperator<float>;
template class ConvOperator<double>;
template void apply_activation(float*, int64_t, const Epilogue<float>&);
template void apply_activation(double*, int64_t, const Epilogue<double>&);

}  // namespace spx
