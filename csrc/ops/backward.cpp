// Weight and bias gradients of the convolutions, for training.
//
//   grad_weight[co, ci, k] = sum over n and output pixels o of
//                            grad_y[n, co, o] * xpad[n, ci, o * stride + k * dilation]
//
// is itself a correlation, described here as a ConvProblem for the engine: per group, its
// "batch" is the input channel ci, its reduction channels are the images n, its taps are the
// output pixels o (weights: grad_y) and its outputs are the kernel taps k (frame stride: the
// dilation). The reduction runs over n and o in one fixed order inside one microkernel call,
// so the result is bit-identical for any thread count. A transposed convolution's weight
// gradient is the same correlation with x and grad_y swapped (ops.h): its taps are then the
// low-resolution input pixels, so no multiply is spent on an inserted zero.
#include "backward.h"

#include <memory>

#include "../engine/execute.h"
#include "../engine/pack.h"
#include "../engine/plan.h"
#include "../kernels/dispatch.h"
#include "describe.h"
#include "errors.h"
#include "parallel.h"

namespace spx {
namespace {

// Element strides of a C-contiguous (C_out, C_in/groups, *kernel) weight, addressed as
// (n = input channel, c = output channel, spatial = kernel tap).
TensorStrides weight_strides(const ConvShape& s) {
  TensorStrides w;
  const int64_t taps = volume(s.kernel);
  w.n = taps;
  w.c = (s.in_channels / s.groups) * taps;
  w.spatial = {s.kernel[1] * s.kernel[2], s.kernel[2], 1};
  return w;
}

// The taps: one per output pixel o, reading frame position o * stride, weight grad_y[., ., o].
std::vector<Tap> pixel_taps(const ConvShape& s, const TensorStrides& gy) {
  std::vector<Tap> taps;
  taps.reserve(static_cast<size_t>(volume(s.out)));
  for (int64_t a = 0; a < s.out[0]; ++a)
    for (int64_t b = 0; b < s.out[1]; ++b)
      for (int64_t c = 0; c < s.out[2]; ++c)
        taps.push_back({{a * s.stride[0], b * s.stride[1], c * s.stride[2]},
                        a * gy.spatial[0] + b * gy.spatial[1] + c * gy.spatial[2]});
  return taps;
}

template <typename T>
const ConvKernels<T>& kernels_of();
template <>
const ConvKernels<float>& kernels_of<float>() { return kernels().f32; }
template <>
const ConvKernels<double>& kernels_of<double>() { return kernels().f64; }

}  // namespace

ConvProblem describe_weight_grad(const ConvShape& s) {
  const TensorStrides xs = layout_strides(s.in_channels, s.in, s.channels_last);
  const TensorStrides gy = layout_strides(s.out_channels, s.out, s.channels_last);
  const int64_t cg_out = s.out_channels / s.groups;
  ConvProblem p;
  p.batch = s.in_channels / s.groups;
  p.in_channels = s.batch;
  p.groups = 1;
  p.in = s.in;
  p.x = {xs.c, xs.n, xs.spatial};  // batch <-> channels
  p.y = weight_strides(s);
  p.stride = s.dilation;
  p.frame.pad = s.pad_begin;
  p.frame.step = {1, 1, 1};
  for (size_t a = 0; a < kMaxRank; ++a) {
    const int64_t span = checked_mul(s.dilation[a], s.kernel[a] - 1, "kernel");
    p.frame.size[a] = checked_add(checked_add(span, checked_mul(s.out[a] - 1, s.stride[a], "frame"), "frame"), 1, "frame");
  }
  p.weight_input_step = gy.n;
  p.phases.push_back(make_phase(s.kernel, {0, 0, 0}, {1, 1, 1}, pixel_taps(s, gy)));
  Block b;
  b.phase = 0;
  b.group = 0;
  b.weight_first = 0;
  b.weight_channel_step = gy.c;
  b.bias_first = b.bias_step = 0;
  for (int64_t co = 0; co < cg_out; ++co) b.out_offsets.push_back(co * p.y.c);
  p.blocks.push_back(std::move(b));
  return p;
}

template <typename T>
void conv_weight_grad(const ConvShape& s, const T* x, const T* grad_y, T* grad_weight, int threads) {
  const int64_t cg_in = s.in_channels / s.groups, cg_out = s.out_channels / s.groups;
  const int64_t per_group = checked_mul(checked_mul(cg_out, cg_in, "grad_weight"), volume(s.kernel), "grad_weight");
  if (s.batch == 0 || per_group == 0) {
    for (int64_t i = 0; i < per_group * s.groups; ++i) grad_weight[i] = T(0);
    return;
  }
  const ConvPlan plan = plan_conv(describe_weight_grad(s), tile_shapes(kernels_of<T>()), threads);
  const TensorStrides xs = layout_strides(s.in_channels, s.in, s.channels_last);
  const TensorStrides gy = layout_strides(s.out_channels, s.out, s.channels_last);
  for (int64_t g = 0; g < s.groups; ++g) {
    // The plan does not depend on the group; only where its data lives does.
    const auto packed = pack_weights<T>(plan, grad_y + g * cg_out * gy.c, nullptr, plan.threads);
    execute_conv(plan, *packed, x + g * cg_in * xs.c, grad_weight + g * per_group, Epilogue<T>{Activation::kNone, T(0)});
  }
}

template <typename T>
void bias_grad(int64_t batch, int64_t channels, int64_t pixels, bool channels_last, const T* grad_y, T* grad_bias,
               int threads) {
  // Per channel: images outer, pixels inner, in memory order within an image; one thread per
  // channel range, so the order never depends on the thread count.
  const int nt = batch * channels * pixels < (int64_t(1) << 16) ? 1 : threads;
  parallel_region(nt, [&](int tid, int count) {
    int64_t begin, end;
    split_range(channels, tid, count, &begin, &end);
    for (int64_t c = begin; c < end; ++c) {
      double sum = 0;  // float32 gradients summed in double: many terms, one rounding
      for (int64_t n = 0; n < batch; ++n) {
        const T* image = grad_y + n * channels * pixels;
        if (channels_last)
          for (int64_t i = 0; i < pixels; ++i) sum += image[i * channels + c];
        else
          for (int64_t i = 0; i < pixels; ++i) sum += image[c * pixels + i];
      }
      grad_bias[c] = static_cast<T>(sum);
    }
  });
}

template void conv_weight_grad(const ConvShape&, const float*, const float*, float*, int);
template void conv_weight_grad(const ConvShape&, const double*, const double*, double*, int);
template void bias_grad(int64_t, int64_t, int64_t, bool, const float*, float*, int);
template void bias_grad(int64_t, int64_t, int64_t, bool, const double*, double*, int);

}  // namespace spx
