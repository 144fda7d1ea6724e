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
// Channels last with enough channels and a small enough weight per group, the pixel reduction
// (pixel_reduction.h) runs it instead.
#include "backward.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "../engine/execute.h"
#include "../engine/pack.h"
#include "../engine/plan.h"
#include "../kernels/dispatch.h"
#include "describe.h"
#include "errors.h"
#include "interleave.h"
#include "parallel.h"
#include "pixel_reduction.h"

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

// Frame length along axis a: every position o * stride + k * dilation the correlation reads.
int64_t frame_length(const ConvShape& s, size_t a) {
  const int64_t span = checked_mul(s.dilation[a], s.kernel[a] - 1, "kernel");
  return checked_add(checked_add(span, checked_mul(s.out[a] - 1, s.stride[a], "frame"), "frame"), 1, "frame");
}

// Blocks of at most this many output channels: packing runs one block per thread.
constexpr int64_t kBlockChannels = 32;

// Blocks for output channels [0, channels): channel co's result goes to co * channel_step, its
// weights (grad_y) start at co * grad_y_c.
void add_blocks(ConvProblem* p, int64_t channels, int64_t grad_y_c, int64_t channel_step) {
  for (int64_t first = 0; first < channels; first += kBlockChannels) {
    Block b;
    b.phase = 0;
    b.group = 0;
    b.weight_first = first * grad_y_c;
    b.weight_channel_step = grad_y_c;
    b.bias_first = b.bias_step = 0;
    for (int64_t co = first; co < std::min(channels, first + kBlockChannels); ++co)
      b.out_offsets.push_back(co * channel_step);
    p->blocks.push_back(std::move(b));
  }
}

// One group's weight gradient: its input channels are the problem's batch, the tile's pixels
// the kernel's innermost axis. (Measured against merging the channels into the tiles' pixel
// axis: that streams both operands from memory for every tile and ran 1.5-3x slower.)
ConvProblem describe_weight_grad(const ConvShape& s, const TensorStrides& xs, const TensorStrides& gy) {
  ConvProblem p;
  p.batch = s.in_channels / s.groups;
  p.in_channels = s.batch;
  p.in = s.in;
  p.x = {xs.c, xs.n, xs.spatial};  // batch <-> channels
  p.y = weight_strides(s);
  p.stride = s.dilation;
  p.frame.pad = s.pad_begin;
  p.frame.step = {1, 1, 1};
  for (size_t a = 0; a < kMaxRank; ++a) p.frame.size[a] = frame_length(s, a);
  p.weight_input_step = gy.n;
  p.phases.push_back(make_phase(s.kernel, {0, 0, 0}, {1, 1, 1}, pixel_taps(s, gy)));
  add_blocks(&p, s.out_channels / s.groups, gy.c, p.y.c);
  return p;
}


// A part of the reduction: the output pixels of some rows of the outermost axis that has
// more than one, and the input window they read (offsets in elements of the whole tensors).
struct Chunk {
  ConvShape shape;
  int64_t x_offset, grad_y_offset;
};

// Reduction steps (taps x images) per chunk: a chunk's packed grad_y (this many steps x 32
// channels, 512 KiB in float32) stays in the L2 cache while every input channel and kernel row
// reuses it, instead of streaming from memory once per tile (measured: nnunet_up3d's weight
// gradient 1.8x faster, the 2-D workloads unchanged). Chunks depend on the shapes, never on threads.
constexpr int64_t kChunkSteps = 4096;

std::vector<Chunk> reduction_chunks(const ConvShape& s, const TensorStrides& xs, const TensorStrides& gy) {
  size_t axis = 0;
  while (axis < kMaxRank - 1 && s.out[axis] == 1) ++axis;
  const int64_t per_row = checked_mul(volume(s.out) / s.out[axis], s.batch, "reduction");
  const int64_t rows = std::max<int64_t>(1, kChunkSteps / per_row);
  std::vector<Chunk> chunks;
  for (int64_t r0 = 0; r0 < s.out[axis]; r0 += rows) {
    const int64_t r1 = std::min(s.out[axis], r0 + rows);
    const int64_t first = r0 * s.stride[axis] - s.pad_begin[axis];  // input position the window starts at
    const int64_t last = (r1 - 1) * s.stride[axis] + (s.kernel[axis] - 1) * s.dilation[axis] - s.pad_begin[axis];
    const int64_t begin = std::max<int64_t>(0, first), end = std::min(s.in[axis] - 1, last);
    if (end < begin) continue;  // the chunk reads padding only: all its products are zero
    Chunk c{s, begin * xs.spatial[axis], r0 * gy.spatial[axis]};
    c.shape.out[axis] = r1 - r0;
    c.shape.in[axis] = end - begin + 1;
    c.shape.pad_begin[axis] = begin - first;
    chunks.push_back(c);
  }
  return chunks;
}

// into[i] += part[i]: chunk by chunk, so every element's order of additions is fixed.
template <typename T>
void accumulate(T* into, const T* part, int64_t count, int threads) {
  parallel_region(count < (int64_t(1) << 22) ? 1 : threads, [&](int tid, int nt) {  // bandwidth-bound
    int64_t begin, end;
    split_range(count, tid, nt, &begin, &end);
    for (int64_t i = begin; i < end; ++i) into[i] += part[i];
  });
}

// x (batch, pixels, channels) as (batch, channels, pixels), a block of pixels at a time (the
// channels are the de-interleave factor).
// A channels-last weight gradient that the engine runs (too few channels or too large a weight
// for the pixel reduction) reads its x this way: the engine's images are x's channels, whose frame rows would
// otherwise gather every element a channel count apart (measured: gan_decoder's weight
// gradient 1.3x slower channels last than first before this copy).
constexpr int64_t kTransposePixels = 64;

// Uninitialized on purpose: every element is written.
template <typename T>
std::unique_ptr<T[]> channels_first_copy(const T* x, int64_t batch, int64_t channels, int64_t pixels, int threads) {
  std::unique_ptr<T[]> out(new T[static_cast<size_t>(checked_mul(checked_mul(batch, channels, "x"), pixels, "x"))]);
  const int64_t blocks = ceil_div(pixels, kTransposePixels);
  const int nt = batch * channels * pixels < (int64_t(1) << 20) ? 1 : threads;
  std::vector<T*> rows(static_cast<size_t>(checked_mul(nt, channels, "x")));  // per thread: each channel's block
  parallel_region(nt, [&](int tid, int count) {
    int64_t begin, end;
    split_range(batch * blocks, tid, count, &begin, &end);
    T** channel_rows = rows.data() + tid * channels;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / blocks, p0 = job % blocks * kTransposePixels;
      for (int64_t c = 0; c < channels; ++c) channel_rows[c] = out.get() + (n * channels + c) * pixels + p0;
      deinterleave_rows(x + (n * pixels + p0) * channels, channel_rows, std::min(kTransposePixels, pixels - p0), channels);
    }
  });
  return out;
}

// Channels last, the weight gradient is a sum over pixels of grad_y as it is and x's phases, with
// no frame (measured against the engine's reduction on a channels-first copy of x, 1 thread,
// AVX-512: nnunet_up3d 2.9-3.1x, sr_64ch 1.3-1.45x). Channels first, the engine's stays: its
// frame reads strided pixels whole.
template <typename T>
void weight_grad_by_pixels(const PixelReductionPlan& plan, const T* x, const T* grad_y, T* grad_weight) {
  const ConvShape& s = plan.shape;
  std::vector<T> sums(static_cast<size_t>(checked_mul(plan.broadcast_channels * plan.vector_channels,
                                                      s.groups * volume(s.kernel), "grad_weight")),
                      T(0));
  execute_pixel_reduction(plan, x, grad_y, sums.data());
  store_weight_grad(plan, sums.data(), grad_weight);
}

}  // namespace

template <typename T>
void conv_weight_grad(const ConvShape& s, const T* x, const T* grad_y, T* grad_weight, int threads) {
  const int64_t cg_in = s.in_channels / s.groups, cg_out = s.out_channels / s.groups;
  const int64_t per_group = checked_mul(checked_mul(cg_out, cg_in, "grad_weight"), volume(s.kernel), "grad_weight");
  if (s.batch > 0 && per_group > 0)
    if (const auto plan = plan_pixel_reduction<T>(s, threads)) return weight_grad_by_pixels(*plan, x, grad_y, grad_weight);
  std::fill(grad_weight, grad_weight + per_group * s.groups, T(0));
  if (s.batch == 0 || per_group == 0) return;
  std::unique_ptr<T[]> x_first;
  if (s.channels_last) {
    x_first = channels_first_copy(x, s.batch, s.in_channels, volume(s.in), threads);
    x = x_first.get();
  }
  const TensorStrides xs = layout_strides(s.in_channels, s.in, false);
  const TensorStrides gy = layout_strides(s.out_channels, s.out, s.channels_last);
  const Epilogue<T> none{Activation::kNone, T(0)};
  std::vector<T> part(static_cast<size_t>(per_group));
  for (const Chunk& c : reduction_chunks(s, xs, gy)) {
    // The plan does not depend on the group; only where its data lives does.
    const ConvPlan plan = plan_conv(describe_weight_grad(c.shape, xs, gy), tile_shapes(kernels_for<T>()), threads);
    for (int64_t g = 0; g < s.groups; ++g) {
      const T* group_x = x + c.x_offset + g * cg_in * xs.c;
      const T* group_grad_y = grad_y + c.grad_y_offset + g * cg_out * gy.c;
      if (plan.by_definition) {  // taps far apart (a huge dilation): no frame
        execute_by_definition(plan, group_x, group_grad_y, static_cast<const T*>(nullptr), part.data(), none);
      } else {
        execute_conv(plan, *pack_weights<T>(plan, group_grad_y, nullptr, plan.threads), group_x, part.data(), none);
      }
      accumulate(grad_weight + g * per_group, part.data(), per_group, plan.threads);
    }
  }
}

// Partial sums per channel: element (n, pixel i) goes to lane i % kLanes, images outer, pixels
// inner, whatever the layout; the lanes are added in order at the end. A fixed order that never
// depends on the thread count, with independent adds. float32 is summed in double.
constexpr int64_t kLanes = 8;

template <typename T>
void bias_grad(int64_t batch, int64_t channels, int64_t pixels, bool channels_last, const T* grad_y, T* grad_bias,
               int threads) {
  std::vector<double> lanes(static_cast<size_t>(checked_mul(channels, kLanes, "grad_bias")), 0.0);
  // Bandwidth-bound: one thread reads ~16M elements in a few ms; more only pay beyond that.
  const int nt = batch * channels * pixels < (int64_t(1) << 24) ? 1 : threads;
  parallel_region(nt, [&](int tid, int count) {
    int64_t begin, end;
    split_range(channels, tid, count, &begin, &end);
    for (int64_t n = 0; n < batch; ++n) {
      const T* image = grad_y + n * channels * pixels;
      if (channels_last) {  // one pass over the image for this thread's channels
        for (int64_t i = 0; i < pixels; ++i)
          for (int64_t c = begin; c < end; ++c) lanes[size_t(c * kLanes + i % kLanes)] += image[i * channels + c];
        continue;
      }
      for (int64_t c = begin; c < end; ++c) {
        double* sum = lanes.data() + c * kLanes;
        const T* row = image + c * pixels;
        int64_t i = 0;
        for (; i + kLanes <= pixels; i += kLanes)
          for (int64_t l = 0; l < kLanes; ++l) sum[l] += row[i + l];
        for (; i < pixels; ++i) sum[i % kLanes] += row[i];
      }
    }
    for (int64_t c = begin; c < end; ++c) {
      double total = 0;
      for (int64_t l = 0; l < kLanes; ++l) total += lanes[size_t(c * kLanes + l)];
      grad_bias[c] = static_cast<T>(total);
    }
  });
}

template void conv_weight_grad(const ConvShape&, const float*, const float*, float*, int);
template void conv_weight_grad(const ConvShape&, const double*, const double*, double*, int);
template void bias_grad(int64_t, int64_t, int64_t, bool, const float*, float*, int);
template void bias_grad(int64_t, int64_t, int64_t, bool, const double*, double*, int);

}  // namespace spx
