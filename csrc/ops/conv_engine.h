// The one convolution engine behind conv2d, both transposed-convolution methods and the fused
// sub-pixel layer.
//
// A problem is a set of "phases" (sets of output pixels on a regular grid that share one
// sub-kernel) times channel "blocks" (a group's run of consecutive output channels). Every
// phase is a correlation of the zero-padded input "frame" with its taps:
//
//   y[n, out_channel0 + co, out_row0 + i*out_row_step, out_col0 + j*out_col_step]
//     = bias(co) + sum over input channels c of the block's group and taps t of
//       weight(co, c, t) * frame[n, c, i*stride_h + t.dh, j*stride_w + t.dw]
//
// The operators (conv_ops.cpp) only describe their problem in these terms; the engine lays
// out the frame, packs the weights into the microkernels' panel order and runs the tiles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "../kernels/dispatch.h"
#include "errors.h"
#include "parallel.h"

namespace spx {

struct Tap {
  int64_t dh, dw;  // frame offset read by output pixel (0, 0)
  int64_t kh, kw;  // kernel element it multiplies
};

struct Phase {
  int64_t rows, cols;
  int64_t out_row0, out_col0, out_row_step, out_col_step;
  std::vector<Tap> taps;
};

struct Block {
  size_t phase;
  int64_t group;         // input-channel group read
  int64_t channels;      // output channels computed
  int64_t out_channel0;  // first output channel written
  int64_t source0;       // weight/bias channel of local channel co: source0 + co * source_step
  int64_t source_step;
};

// Where the input lands in the zero-padded work buffer.
struct InputFrame {
  int64_t pad_top, pad_left;  // frame position of x[0, 0]
  int64_t step_h, step_w;     // frame distance between neighbouring input pixels (zero insertion)
  int64_t rows, cols;
};

struct ConvProblem {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, out_h, out_w;
  int64_t groups;
  int64_t stride_h, stride_w;  // frame distance between neighbouring output pixels of a phase
  bool nhwc;
  InputFrame frame;
  std::vector<Phase> phases;
  std::vector<Block> blocks;
};

template <typename T>
const ConvKernels<T>& kernels_for();
template <>
inline const ConvKernels<float>& kernels_for<float>() { return kernels().f32; }
template <>
inline const ConvKernels<double>& kernels_for<double>() { return kernels().f64; }

// Below this many multiply-adds a call runs on one thread: waking the pool costs more.
constexpr int64_t kSerialMacs = int64_t(1) << 16;

template <typename T, class WeightAt, class BiasAt>
void run_conv(const ConvProblem& p, const T* x, T* y, const WeightAt& weight_at,
              const BiasAt& bias_at, int threads) {
  const ConvKernels<T>& ck = kernels_for<T>();
  const bool nhwc = p.nhwc;
  const int64_t cg_in = p.in_channels / p.groups;
  const InputFrame& f = p.frame;

  // Frame layout. NCHW stores each frame row's columns de-interleaved by stride_w, so a tile
  // of consecutive output pixels reads consecutive memory for every tap.
  const int64_t col_phases = nhwc ? 1 : p.stride_w;
  const int64_t cols_per_phase = (f.cols + col_phases - 1) / col_phases;
  const int64_t row_len = nhwc ? checked_mul(f.cols, p.in_channels, "frame row")
                               : checked_mul(col_phases, cols_per_phase, "frame row");
  const int64_t plane = checked_mul(f.rows, row_len, "frame plane");
  const int64_t frame_len = checked_mul(nhwc ? p.batch : checked_mul(p.batch, p.in_channels, "frame"),
                                        plane, "frame");
  // Row tiles read up to a tile width past the last valid pixel.
  const int64_t slack = static_cast<int64_t>(ck.rowvec_nr);

  // Per phase: reduction offsets; per block: packed weights and bias.
  const size_t mr = nhwc ? ck.chanvec_mr : ck.rowvec_mr;
  const size_t nr = nhwc ? ck.chanvec_nr : ck.rowvec_nr;
  const int64_t tile_channels = static_cast<int64_t>(nhwc ? nr : mr);
  std::vector<std::vector<ptrdiff_t>> offsets(p.phases.size());
  for (size_t ph = 0; ph < p.phases.size(); ++ph) {
    const std::vector<Tap>& taps = p.phases[ph].taps;
    std::vector<ptrdiff_t>& off = offsets[ph];
    if (nhwc) {
      for (const Tap& t : taps) off.push_back(static_cast<ptrdiff_t>((t.dh * f.cols + t.dw) * p.in_channels));
    } else {
      for (int64_t c = 0; c < cg_in; ++c)
        for (const Tap& t : taps)
          off.push_back(static_cast<ptrdiff_t>(c * plane + t.dh * row_len + (t.dw % col_phases) * cols_per_phase +
                                               t.dw / col_phases));
    }
  }
  std::vector<int64_t> weight_at_block(p.blocks.size() + 1, 0), bias_at_block(p.blocks.size() + 1, 0);
  std::vector<int64_t> first_task(p.blocks.size() + 1, 0);
  int64_t macs = 0;
  for (size_t b = 0; b < p.blocks.size(); ++b) {
    const Block& blk = p.blocks[b];
    const Phase& ph = p.phases[blk.phase];
    const int64_t tiles = (blk.channels + tile_channels - 1) / tile_channels;
    const int64_t k = checked_mul(cg_in, static_cast<int64_t>(ph.taps.size()), "reduction");
    weight_at_block[b + 1] = checked_add(weight_at_block[b], checked_mul(checked_mul(tiles, k, "weights"), tile_channels, "weights"), "weights");
    bias_at_block[b + 1] = bias_at_block[b] + tiles * tile_channels;
    first_task[b + 1] = first_task[b] + ph.rows;
    macs = checked_add(macs, checked_mul(checked_mul(ph.rows * ph.cols, blk.channels, "work"), k, "work"), "work");
  }
  const int64_t rows_per_image = first_task.back();
  const int64_t tasks = checked_mul(p.batch, rows_per_image, "work");
  macs = checked_mul(macs, p.batch, "work");

  // Uninitialized on purpose: every element is written in the region below.
  std::unique_ptr<T[]> frame(new T[static_cast<size_t>(checked_add(frame_len, slack, "frame"))]);
  std::unique_ptr<T[]> packed_w(new T[static_cast<size_t>(weight_at_block.back())]);
  std::unique_ptr<T[]> packed_b(new T[static_cast<size_t>(bias_at_block.back())]);
  const int nt = macs < kSerialMacs ? 1 : threads;
  // Input columns that land inside the frame (the frame may end before the input does).
  const int64_t in_cols =
      f.cols > f.pad_left ? std::min<int64_t>(p.in_w, (f.cols - f.pad_left + f.step_w - 1) / f.step_w) : 0;

  parallel_region(nt, [&](int tid, int count) {
    int64_t begin, end;
    // 1. Frame: zero-padded (and zero-inserted) copy of the input.
    if (nhwc) {
      split_range(p.batch * f.rows, tid, count, &begin, &end);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t n = r / f.rows, fr = r % f.rows, ir = fr - f.pad_top;
        T* dst = frame.get() + r * row_len;
        std::memset(dst, 0, sizeof(T) * static_cast<size_t>(row_len));
        if (ir < 0 || ir % f.step_h || ir / f.step_h >= p.in_h) continue;
        const T* src = x + ((n * p.in_h + ir / f.step_h) * p.in_w) * p.in_channels;
        if (f.step_w == 1) {
          std::memcpy(dst + f.pad_left * p.in_channels, src, sizeof(T) * static_cast<size_t>(in_cols * p.in_channels));
        } else {
          for (int64_t j = 0; j < in_cols; ++j)
            std::memcpy(dst + (f.pad_left + j * f.step_w) * p.in_channels, src + j * p.in_channels,
                        sizeof(T) * static_cast<size_t>(p.in_channels));
        }
      }
    } else {
      split_range(p.batch * p.in_channels * f.rows, tid, count, &begin, &end);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t pl = r / f.rows, fr = r % f.rows, ir = fr - f.pad_top;
        T* dst = frame.get() + r * row_len;
        std::memset(dst, 0, sizeof(T) * static_cast<size_t>(row_len));
        if (ir < 0 || ir % f.step_h || ir / f.step_h >= p.in_h) continue;
        const T* src = x + (pl * p.in_h + ir / f.step_h) * p.in_w;
        if (col_phases == 1 && f.step_w == 1) {
          std::memcpy(dst + f.pad_left, src, sizeof(T) * static_cast<size_t>(in_cols));
        } else {
          for (int64_t j = 0; j < in_cols; ++j) {
            const int64_t col = f.pad_left + j * f.step_w;
            dst[(col % col_phases) * cols_per_phase + col / col_phases] = src[j];
          }
        }
      }
    }
    if (tid == 0) std::memset(frame.get() + frame_len, 0, sizeof(T) * static_cast<size_t>(slack));

    // 2. Weights and bias in the microkernel's panel order, zero beyond the block's channels.
    split_range(static_cast<int64_t>(p.blocks.size()), tid, count, &begin, &end);
    for (int64_t b = begin; b < end; ++b) {
      const Block& blk = p.blocks[static_cast<size_t>(b)];
      const std::vector<Tap>& taps = p.phases[blk.phase].taps;
      const int64_t ntaps = static_cast<int64_t>(taps.size());
      const int64_t tiles = (blk.channels + tile_channels - 1) / tile_channels;
      T* w = packed_w.get() + weight_at_block[static_cast<size_t>(b)];
      T* bias = packed_b.get() + bias_at_block[static_cast<size_t>(b)];
      for (int64_t tile = 0; tile < tiles; ++tile) {
        for (int64_t lane = 0; lane < tile_channels; ++lane) {
          const int64_t co = tile * tile_channels + lane;
          *bias++ = co < blk.channels ? bias_at(blk, co) : T(0);
        }
        // rowvec panel: [c][tap][lane]; chanvec panel: [tap][c][lane].
        for (int64_t outer = 0; outer < (nhwc ? ntaps : cg_in); ++outer)
          for (int64_t inner = 0; inner < (nhwc ? cg_in : ntaps); ++inner) {
            const int64_t c = nhwc ? inner : outer;
            const Tap& t = taps[static_cast<size_t>(nhwc ? outer : inner)];
            for (int64_t lane = 0; lane < tile_channels; ++lane) {
              const int64_t co = tile * tile_channels + lane;
              *w++ = co < blk.channels ? weight_at(blk, co, c, t) : T(0);
            }
          }
      }
    }
    region_barrier();

    // 3. Tiles. A task is one output row of one block of one image.
    split_range(tasks, tid, count, &begin, &end);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / rows_per_image, in_image = task % rows_per_image;
      const size_t b = static_cast<size_t>(std::upper_bound(first_task.begin(), first_task.end(), in_image) -
                                           first_task.begin() - 1);
      const Block& blk = p.blocks[b];
      const Phase& ph = p.phases[blk.phase];
      const int64_t i = in_image - first_task[b];
      const int64_t out_row = ph.out_row0 + i * ph.out_row_step;
      const T* w = packed_w.get() + weight_at_block[b];
      const T* bias = packed_b.get() + bias_at_block[b];
      const int64_t tiles = (blk.channels + tile_channels - 1) / tile_channels;
      if (nhwc) {
        ChanvecArgs<T> a;
        a.taps = ph.taps.size();
        a.channels = static_cast<size_t>(cg_in);
        a.x_pixel_stride = static_cast<ptrdiff_t>(p.stride_w * p.in_channels);
        a.tap_offsets = offsets[blk.phase].data();
        a.y_pixel_stride = static_cast<ptrdiff_t>(ph.out_col_step * p.out_channels);
        const T* x_row = frame.get() + (n * f.rows + i * p.stride_h) * row_len + blk.group * cg_in;
        T* y_row = y + ((n * p.out_h + out_row) * p.out_w + ph.out_col0) * p.out_channels + blk.out_channel0;
        const int64_t panel = static_cast<int64_t>(a.taps) * cg_in * tile_channels;
        for (int64_t tile = 0; tile < tiles; ++tile) {
          a.nr_valid = static_cast<size_t>(std::min<int64_t>(tile_channels, blk.channels - tile * tile_channels));
          a.w = w + tile * panel;
          a.bias = bias + tile * tile_channels;
          for (int64_t j0 = 0; j0 < ph.cols; j0 += static_cast<int64_t>(mr)) {
            a.mr_valid = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(mr), ph.cols - j0));
            a.x = x_row + j0 * p.stride_w * p.in_channels;
            a.y = y_row + j0 * ph.out_col_step * p.out_channels + tile * tile_channels;
            ck.chanvec(a);
          }
        }
      } else {
        RowvecArgs<T> a;
        a.k = offsets[blk.phase].size();
        a.x_offsets = offsets[blk.phase].data();
        a.y_channel_stride = static_cast<ptrdiff_t>(p.out_h * p.out_w);
        a.y_pixel_stride = static_cast<ptrdiff_t>(ph.out_col_step);
        const T* x_row = frame.get() + (n * p.in_channels + blk.group * cg_in) * plane + i * p.stride_h * row_len;
        T* y_row = y + ((n * p.out_channels + blk.out_channel0) * p.out_h + out_row) * p.out_w + ph.out_col0;
        const int64_t panel = static_cast<int64_t>(a.k) * tile_channels;
        for (int64_t tile = 0; tile < tiles; ++tile) {
          a.mr_valid = static_cast<size_t>(std::min<int64_t>(tile_channels, blk.channels - tile * tile_channels));
          a.w = w + tile * panel;
          a.bias = bias + tile * tile_channels;
          T* y_tile = y_row + tile * tile_channels * p.out_h * p.out_w;
          for (int64_t j0 = 0; j0 < ph.cols; j0 += static_cast<int64_t>(nr)) {
            a.nr_valid = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(nr), ph.cols - j0));
            a.x = x_row + j0;
            a.y = y_tile + j0 * ph.out_col_step;
            ck.rowvec(a);
          }
        }
      }
    }
  });
}

}  // namespace spx
