#include "execute.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "../kernels/dispatch.h"
#include "activation.h"
#include "../ops/errors.h"
#include "../ops/interleave.h"
#include "../ops/parallel.h"

namespace spx {
namespace {

// n contiguous input elements into the frame, widened to the compute type (half precision by
// the dispatched ISA's conversion kernel).
void copy_run(const float* src, float* dst, int64_t n) { std::memcpy(dst, src, sizeof(float) * size_t(n)); }
void copy_run(const double* src, double* dst, int64_t n) { std::memcpy(dst, src, sizeof(double) * size_t(n)); }
void copy_run(const Float16* src, float* dst, int64_t n) { kernels().widen_f16(src, 1, dst, size_t(n)); }
void copy_run(const BFloat16* src, float* dst, int64_t n) { kernels().widen_bf16(src, 1, dst, size_t(n)); }
void widen_strided(const Float16* src, int64_t stride, float* dst, int64_t n) {
  kernels().widen_f16(src, static_cast<ptrdiff_t>(stride), dst, size_t(n));
}
void widen_strided(const BFloat16* src, int64_t stride, float* dst, int64_t n) {
  kernels().widen_bf16(src, static_cast<ptrdiff_t>(stride), dst, size_t(n));
}

// put(j, value) for the n input elements src[j * stride] in the compute type: half precision
// converted a chunk at a time by the conversion kernel, the compute types read as they are.
template <typename S, typename Put>
void for_each_input(const S* src, int64_t stride, int64_t n, Put put) {
  if constexpr (std::is_same<S, compute_t<S>>::value) {
    for (int64_t j = 0; j < n; ++j) put(j, src[j * stride]);
  } else {
    constexpr int64_t kChunk = 256;
    float chunk[kChunk];
    for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
      const int64_t m = std::min(kChunk, n - j0);
      widen_strided(src + j0 * stride, stride, chunk, m);
      for (int64_t j = 0; j < m; ++j) put(j0 + j, chunk[j]);
    }
  }
}

// Pixels a chanvec tile may hold (the largest MR of any instruction set's table).
constexpr size_t kMaxTilePixels = 32;

// Columns per block when a channel-major input is transposed into a channels-last frame.
constexpr int64_t kTransposeColumns = 16;

// Column phases whose frame rows are de-interleaved by vector code (the stride of a rowvec frame).
constexpr int64_t kMaxFramePhases = 16;

// A rowvec frame row from n input elements src[j * xs] at frame columns pad + j * step, each
// column c stored in its phase's segment: dst[(c % S) * cols_per_phase + c / S]. A dense
// row of the compute type is de-interleaved by the pixel shuffle's vector code; otherwise the
// phase and index advance per element (a division per element cost strided convolutions
// 40% of their time).
template <typename S, typename T>
void place_phase_columns(const FrameLayout& fl, const S* src, int64_t xs, int64_t n, int64_t pad, int64_t step, T* dst) {
  const int64_t phases = fl.col_phases, per_phase = fl.cols_per_phase;
  int64_t j = 0;
  if constexpr (std::is_same<S, T>::value) {
    if (xs == 1 && step == 1 && phases > 1 && phases <= kMaxFramePhases) {
      const int64_t head = std::min(n, (phases - pad % phases) % phases);
      for (; j < head; ++j) dst[((pad + j) % phases) * per_phase + (pad + j) / phases] = src[j];
      const int64_t groups = (n - j) / phases, first = (pad + j) / phases;
      T* rows[kMaxFramePhases];
      if (groups > 0) {
        for (int64_t q = 0; q < phases; ++q) rows[q] = dst + q * per_phase + first;
        deinterleave_rows(src + j, rows, groups, phases);
        j += groups * phases;
      }
    }
  }
  int64_t phase = (pad + j * step) % phases, index = (pad + j * step) / phases;
  const int64_t phase_step = step % phases, index_step = step / phases;
  for_each_input(src + j * xs, xs, n - j, [&](int64_t, T v) {
    dst[phase * per_phase + index] = v;
    phase += phase_step;
    index += index_step;
    if (phase >= phases) phase -= phases, ++index;
  });
}

// Input row (fd, fh) of the frame, or nullptr when that frame row is padding.
template <typename S>
const S* input_row(const ConvProblem& p, const S* x_image, int64_t frame_row) {
  const InputFrame& f = p.frame;
  const int64_t rd = frame_row / f.size[1] - f.pad[0], rh = frame_row % f.size[1] - f.pad[1];
  if (rd < 0 || rh < 0 || rd % f.step[0] || rh % f.step[1] || rd / f.step[0] >= p.in[0] || rh / f.step[1] >= p.in[1])
    return nullptr;
  return x_image + (rd / f.step[0]) * p.x.spatial[0] + (rh / f.step[1]) * p.x.spatial[1];
}

// Frame rows [begin, end): a zero-padded (and zero-inserted) copy of the input in the
// family's layout, in the compute type. Rows are (n, fd, fh) for chanvec and (n, c, fd, fh)
// for rowvec.
template <typename S, typename T = compute_t<S>>
void build_frame(const ConvPlan& plan, const S* x, T* frame, int64_t begin, int64_t end) {
  const ConvProblem& p = plan.problem;
  const FrameLayout& fl = plan.frame;
  const InputFrame& f = p.frame;
  const int64_t rows_per_plane = f.size[0] * f.size[1], xs = p.x.spatial[2];
  // Input columns [skip, last) land inside the frame (which may start after the input does and
  // end before it does); the first at frame column pad.
  // (Written so that a huge step cannot overflow: pad = f.pad + skip * step, in [0, step).)
  const int64_t skip = f.pad[2] < 0 ? (-f.pad[2] - 1) / f.step[2] + 1 : 0;
  const int64_t pad = f.pad[2] < 0 ? (f.pad[2] % f.step[2] + f.step[2]) % f.step[2] : f.pad[2];
  const int64_t last = f.size[2] > pad ? std::min<int64_t>(p.in[2], skip + (f.size[2] - pad - 1) / f.step[2] + 1) : 0;
  const int64_t in_cols = std::max<int64_t>(0, last - skip);
  const bool chanvec = plan.family == Family::kChanvec;
  // Chanvec: two columns in the frame bound the step by the (checked) row length; one needs
  // none. (Rowvec frames place columns by phase and never use it.)
  const int64_t d_step = chanvec && in_cols > 1 ? f.step[2] * p.in_channels : p.in_channels;
  // A pixel's channels are contiguous in x (always so for one channel: the weight gradients'
  // frames have one image per channel).
  const bool pixel_contiguous = p.x.c == 1 || p.in_channels == 1;
  // Whether a row's input is one run of the frame row: then only the padding around it is
  // zeroed (rather than the whole row before the copy: a second pass over the frame).
  const bool one_run = in_cols > 0 && (chanvec ? pixel_contiguous && d_step == p.in_channels && xs == p.in_channels
                               : fl.col_phases == 1 && f.step[2] == 1 && xs == 1);
  const int64_t run_first = !one_run ? 0 : chanvec ? pad * p.in_channels : pad;
  const int64_t run_len = !one_run ? 0 : chanvec ? in_cols * p.in_channels : in_cols;
  for (int64_t r = begin; r < end; ++r) {
    T* dst = frame + r * fl.row_len;
    const int64_t plane_index = r / rows_per_plane;
    const S* image = chanvec ? x + plane_index * p.x.n
                             : x + (plane_index / p.in_channels) * p.x.n + (plane_index % p.in_channels) * p.x.c;
    const S* src = input_row(p, image, r % rows_per_plane);
    if (src && one_run) {
      std::memset(dst, 0, sizeof(T) * static_cast<size_t>(run_first));
      copy_run(src + skip * xs, dst + run_first, run_len);
      std::memset(dst + run_first + run_len, 0, sizeof(T) * static_cast<size_t>(fl.row_len - run_first - run_len));
      continue;
    }
    std::memset(dst, 0, sizeof(T) * static_cast<size_t>(fl.row_len));
    if (!src) continue;
    src += skip * xs;
    if (chanvec) {
      T* d = dst + pad * p.in_channels;
      if (pixel_contiguous) {
        for (int64_t j = 0; j < in_cols; ++j) copy_run(src + j * xs, d + j * d_step, p.in_channels);
      } else {  // channel-major input: each channel's row read contiguously, a block of
        // columns at a time so that the frame pixels being filled stay in the L1 cache
        for (int64_t j0 = 0; j0 < in_cols; j0 += kTransposeColumns) {
          const int64_t m = std::min(kTransposeColumns, in_cols - j0);
          T* dj = d + j0 * d_step;
          for (int64_t c = 0; c < p.in_channels; ++c)
            for_each_input(src + c * p.x.c + j0 * xs, xs, m, [&](int64_t j, T v) { dj[j * d_step + c] = v; });
        }
      }
    } else {
      place_phase_columns(fl, src, xs, in_cols, pad, f.step[2], dst);
    }
  }
}

// Values of the outputs no input reaches (PaddingOutputs), per block and channel: the bias
// plus, for correlations, every packed weight times zero (NaN for a non-finite one), activated.
template <typename T>
std::vector<T> padding_values(const ConvPlan& plan, const PackedWeights<T>& packed, const Epilogue<T>& epilogue) {
  const ConvProblem& p = plan.problem;
  const int64_t tile_ch = plan.pack.tile_channels;
  const int64_t panel = p.in_channels_per_group() * static_cast<int64_t>(p.phases[0].taps.size()) * tile_ch;
  std::vector<T> values;
  for (size_t b = 0; b < p.blocks.size(); ++b)
    for (int64_t j = 0; j < static_cast<int64_t>(p.blocks[b].out_offsets.size()); ++j) {
      const int64_t tile = j / tile_ch, lane = j % tile_ch;
      T v = packed.bias[static_cast<size_t>((plan.pack.tiles_first[b] + tile) * tile_ch + lane)];
      const T* w = packed.weights.data() + plan.pack.weights_first[b] + tile * panel + lane;
      if (!p.structural_zeros)
        for (int64_t q = 0; q < panel; q += tile_ch) v += w[q] * T(0);
      values.push_back(activate(v, epilogue));
    }
  return values;
}

// Rows [begin, end) of (image, rows of the untrimmed phase grid) of every channel: the padding
// values (the engine then overwrites the outputs that reach the input).
template <typename S, typename T>
void fill_padding_outputs(const ConvPlan& plan, const std::vector<T>& values, S* y, int64_t begin, int64_t end) {
  const ConvProblem& p = plan.problem;
  const PaddingOutputs& g = plan.padding_outputs;
  const int64_t grid_rows = g.count[0] * g.count[1];
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / grid_rows, i0 = (r % grid_rows) / g.count[1], i1 = r % g.count[1];
    S* row = y + n * p.y.n + (g.first[0] + i0 * g.step[0]) * p.y.spatial[0] + (g.first[1] + i1 * g.step[1]) * p.y.spatial[1] +
             g.first[2] * p.y.spatial[2];
    const int64_t col_step = g.step[2] * p.y.spatial[2];
    size_t v = 0;
    for (const Block& blk : p.blocks)
      for (int64_t offset : blk.out_offsets) {
        for (int64_t i2 = 0; i2 < g.count[2]; ++i2) narrow_to(row + offset + i2 * col_step, values[v]);
        ++v;
      }
  }
}

// Offsets of output row i of a phase: from y[n] and from the frame of image/plane 0.
int64_t output_row(const ConvProblem& p, const Phase& ph, int64_t i) {
  const int64_t id = i / ph.count[1], ih = i % ph.count[1];
  return (ph.out_first[0] + id * ph.out_step[0]) * p.y.spatial[0] + (ph.out_first[1] + ih * ph.out_step[1]) * p.y.spatial[1] +
         ph.out_first[2] * p.y.spatial[2];
}
int64_t frame_row(const ConvPlan& plan, const Phase& ph, int64_t i) {
  const ConvProblem& p = plan.problem;
  const int64_t id = i / ph.count[1], ih = i % ph.count[1];
  return (id * p.stride[0] * p.frame.size[1] + ih * p.stride[1]) * plan.frame.row_len;
}

// Everything one thread's tasks share: outputs and row buffers are stored as S, the frame and
// the weights are in S's compute type T.
template <typename S, typename T = compute_t<S>>
struct TaskContext {
  const ConvPlan& plan;
  const PackedWeights<T>& packed;
  const ConvKernels<T, S>& kernels;
  const T* frame;
  S* y;
  Epilogue<T> epilogue;
  S* buffer;                               // this thread's row buffers
  std::vector<ptrdiff_t> buffer_offsets;   // per tile channel, into the buffer
  std::vector<S*> sibling_rows;
  const std::atomic<bool>* stop;           // polled between rows (see stop_flag)
  bool streaming;                          // interleaved rows go out with non-temporal stores
};

// Whether rows of `cols` pixels take strided runs of wide_mr: its tiles cost about 0.95 of a
// pointer tile's per pixel (measured), but the pixels left over may fill a last pointer tile
// only partly (a 1-D weight gradient's rows of 16: 14 + 2 would pay for 14 + 8).
bool strided_runs_pay(const ConvPlan& plan, size_t wide_mr, int64_t cols, int64_t rows) {
  if (wide_mr == 0) return false;
  const int64_t mr = static_cast<int64_t>(plan.mr), wide = static_cast<int64_t>(wide_mr);
  const int64_t left = rows * (cols % wide), runs = rows * (cols / wide);
  const double with_runs = 0.95 * double(runs * wide) + double(ceil_div(left, mr) * mr);
  return with_runs < double(ceil_div(rows * cols, mr) * mr);
}

// Rows [i0, i1) of block b, channel tile `tile`, with the chanvec kernels: runs of a row's
// pixels through the strided kernel where the table has one, the other pixels in order, MR at
// a time (a pointer tile may span rows, so rows narrower than MR fill whole tiles).
template <typename S, typename T>
void chanvec_rows(TaskContext<S, T>& cx, int64_t n, size_t b, int64_t tile, int64_t i0, int64_t i1) {
  const ConvPlan& plan = cx.plan;
  const ConvProblem& p = plan.problem;
  const Block& blk = p.blocks[b];
  const Phase& ph = p.phases[blk.phase];
  const int64_t tile_ch = plan.pack.tile_channels, cg_in = p.in_channels_per_group();
  const int64_t channels = static_cast<int64_t>(blk.out_offsets.size());
  ChanvecArgs<T, S> a;
  a.taps = plan.reduction_offsets[blk.phase].size();
  a.channels = static_cast<size_t>(plan.chanvec_channels);
  a.tap_offsets = plan.reduction_offsets[blk.phase].data();
  a.y_channels_contiguous = plan.contiguous_channels[b] != 0;
  a.nr_valid = static_cast<size_t>(std::min(tile_ch, channels - tile * tile_ch));
  a.w = cx.packed.weights.data() + plan.pack.weights_first[b] + tile * static_cast<int64_t>(ph.taps.size()) * cg_in * tile_ch;
  a.bias = cx.packed.bias.data() + (plan.pack.tiles_first[b] + tile) * tile_ch;
  a.y_channel_offsets = plan.out_offsets[b].data() + tile * tile_ch;
  a.epilogue = cx.epilogue;
  a.x = cx.frame + n * plan.frame.plane + blk.group * cg_in;
  a.y = cx.y + n * p.y.n;
  const int64_t x_step = p.stride[2] * p.in_channels, y_step = ph.out_step[2] * p.y.spatial[2];
  ptrdiff_t x_offsets[kMaxTilePixels], y_offsets[kMaxTilePixels];
  a.x_pixel_offsets = x_offsets;
  a.y_pixel_offsets = y_offsets;
  // Each row's runs of wide_mr pixels go to the strided kernel, the rest fill pointer tiles,
  // unless the pointer tiles alone waste fewer pixels.
  const int64_t wide_mr = strided_runs_pay(plan, cx.kernels.chanvec_strided_mr, ph.cols(), i1 - i0)
                              ? static_cast<int64_t>(cx.kernels.chanvec_strided_mr) : 0;
  ChanvecArgs<T, S> run = a;
  run.mr_valid = static_cast<size_t>(wide_mr);
  run.x_pixel_stride = static_cast<ptrdiff_t>(x_step);
  run.y_pixel_stride = static_cast<ptrdiff_t>(y_step);
  size_t filled = 0;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t x_row = frame_row(plan, ph, i), y_row = output_row(p, ph, i);
    int64_t j = 0;
    for (; wide_mr > 0 && j + wide_mr <= ph.cols(); j += wide_mr) {
      run.x = a.x + x_row + j * x_step;
      run.y = a.y + y_row + j * y_step;
      cx.kernels.chanvec_strided(run);
    }
    for (; j < ph.cols(); ++j) {
      x_offsets[filled] = static_cast<ptrdiff_t>(x_row + j * x_step);
      y_offsets[filled] = static_cast<ptrdiff_t>(y_row + j * y_step);
      if (++filled == plan.mr) {
        a.mr_valid = filled;
        cx.kernels.chanvec(a);
        filled = 0;
      }
    }
  }
  if (filled) {
    a.mr_valid = filled;
    cx.kernels.chanvec(a);
  }
}

// One output row of block b with a rowvec kernel, into y or (buffered) into sibling row `sib`.
template <typename S, typename T>
void rowvec_row(TaskContext<S, T>& cx, int64_t n, size_t b, int64_t tile, int64_t i, int64_t sib, bool buffered) {
  const ConvPlan& plan = cx.plan;
  const ConvProblem& p = plan.problem;
  const Block& blk = p.blocks[b];
  const Phase& ph = p.phases[blk.phase];
  const int64_t tile_ch = plan.pack.tile_channels;
  const int64_t channels = static_cast<int64_t>(blk.out_offsets.size());
  RowvecArgs<T, S> a;
  a.k = plan.reduction_offsets[blk.phase].size();
  a.x_offsets = plan.reduction_offsets[blk.phase].data();
  a.mr_valid = static_cast<size_t>(std::min(tile_ch, channels - tile * tile_ch));
  a.w = cx.packed.weights.data() + plan.pack.weights_first[b] + tile * static_cast<int64_t>(a.k) * tile_ch;
  a.bias = cx.packed.bias.data() + (plan.pack.tiles_first[b] + tile) * tile_ch;
  a.y_channel_offsets = buffered ? cx.buffer_offsets.data() : plan.out_offsets[b].data() + tile * tile_ch;
  a.y_pixel_stride = buffered ? 1 : static_cast<ptrdiff_t>(ph.out_step[2] * p.y.spatial[2]);
  a.epilogue = cx.epilogue;
  S* y_base = buffered ? cx.buffer + sib * plan.buffer_row : cx.y + n * p.y.n + output_row(p, ph, i);
  const T* x_row = cx.frame + (n * p.in_channels + blk.group * p.in_channels_per_group()) * plan.frame.plane +
                   frame_row(plan, ph, i);
  void (*const kernel)(const RowvecArgs<T, S>&) = plan.family == Family::kRowvec1 ? cx.kernels.rowvec1 : cx.kernels.rowvec;
  const int64_t nr = static_cast<int64_t>(plan.nr);
  for (int64_t j0 = 0; j0 < ph.cols(); j0 += nr) {
    a.nr_valid = static_cast<size_t>(std::min(nr, ph.cols() - j0));
    a.x = x_row + j0;
    a.y = y_base + j0 * a.y_pixel_stride;
    kernel(a);
  }
}

// Interleaves the siblings' buffered rows into output row i of the tile's channels.
template <typename S, typename T>
void interleave_siblings(TaskContext<S, T>& cx, int64_t n, size_t u, int64_t tile, int64_t i) {
  const ConvPlan& plan = cx.plan;
  const ConvProblem& p = plan.problem;
  const std::vector<size_t>& unit = plan.units.blocks[u];
  const Block& first = p.blocks[unit[0]];
  const int64_t siblings = static_cast<int64_t>(unit.size()), tile_ch = plan.pack.tile_channels;
  const int64_t valid = std::min(tile_ch, static_cast<int64_t>(first.out_offsets.size()) - tile * tile_ch);
  const int64_t full = p.phases[p.blocks[unit.back()].phase].cols();  // column groups with every sibling
  const ptrdiff_t* ooff = plan.out_offsets[unit[0]].data() + tile * tile_ch;
  const int64_t row = n * p.y.n + output_row(p, p.phases[first.phase], i);
  const bool streamed = cx.streaming && full * siblings * int64_t(sizeof(S)) >= kStreamingRowBytes;
  for (int64_t c = 0; c < valid; ++c) {
    S* out = cx.y + row + ooff[c];
    for (int64_t sib = 0; sib < siblings; ++sib)
      cx.sibling_rows[size_t(sib)] = cx.buffer + cx.buffer_offsets[size_t(c)] + sib * plan.buffer_row;
    if (streamed) interleave_rows_streaming(out, cx.sibling_rows.data(), full, siblings);
    else interleave_rows(out, cx.sibling_rows.data(), full, siblings, false);
    // Columns of the last, partial group (phases with one more column than the last).
    for (int64_t sib = 0; sib < siblings; ++sib)
      if (p.phases[p.blocks[unit[size_t(sib)]].phase].cols() > full) out[full * siblings + sib] = cx.sibling_rows[size_t(sib)][full];
  }
}

template <typename S, typename T>
void run_task(TaskContext<S, T>& cx, int64_t task) {
  const ConvPlan& plan = cx.plan;
  const ConvProblem& p = plan.problem;
  const int64_t n0 = task / plan.tasks_per_image * plan.task_images, in_image = task % plan.tasks_per_image;
  const int64_t n1 = std::min(n0 + plan.task_images, p.batch);
  const size_t u = static_cast<size_t>(std::upper_bound(plan.first_task.begin(), plan.first_task.end(), in_image) -
                                       plan.first_task.begin() - 1);
  const std::vector<size_t>& unit = plan.units.blocks[u];
  const bool buffered = plan.units.buffered[u] != 0;
  const int64_t rows = p.phases[p.blocks[unit[0]].phase].rows(), row_chunks = (rows + plan.task_rows - 1) / plan.task_rows;
  const int64_t local = in_image - plan.first_task[u];
  const int64_t i0 = (local % row_chunks) * plan.task_rows, i1 = std::min(i0 + plan.task_rows, rows);
  const int64_t tiles = plan.pack.tiles_first[unit[0] + 1] - plan.pack.tiles_first[unit[0]];
  const int64_t t0 = (local / row_chunks) * plan.task_tiles, t1 = std::min(t0 + plan.task_tiles, tiles);
  for (int64_t b0 = i0; b0 < i1; b0 += plan.block_rows) {
    const int64_t b1 = std::min(b0 + plan.block_rows, i1);
    for (int64_t tile = t0; tile < t1; ++tile)
      for (int64_t n = n0; n < n1; ++n) {
        if (plan.family == Family::kChanvec) {
          if (cx.stop->load(std::memory_order_relaxed)) return;
          chanvec_rows(cx, n, unit[0], tile, b0, b1);
          continue;
        }
        for (int64_t i = b0; i < b1; ++i) {
          if (cx.stop->load(std::memory_order_relaxed)) return;
          for (size_t sib = 0; sib < unit.size(); ++sib) rowvec_row(cx, n, unit[sib], tile, i, int64_t(sib), buffered);
          if (buffered) interleave_siblings(cx, n, u, tile, i);
        }
      }
  }
}

}  // namespace

// x itself when it is the frame, element for element: a chanvec frame without padding or
// inserted zeros (a kernel == stride or 1x1 convolution channels last, an unpadded one), in
// the compute type. Chanvec tiles read no slack past the frame. Null otherwise.
template <typename S>
const compute_t<S>* input_as_frame(const ConvPlan& plan, const S* x) {
  if constexpr (!std::is_same<S, compute_t<S>>::value) {
    return nullptr;
  } else {
    const ConvProblem& p = plan.problem;
    const FrameLayout& fl = plan.frame;
    if (plan.family != Family::kChanvec || (p.x.c != 1 && p.in_channels > 1)) return nullptr;
    // Frame strides of (n, depth, height, width), each to match x's where the axis has more than one.
    const int64_t frame_strides[] = {fl.plane, p.in[1] * fl.row_len, fl.row_len, p.in_channels};
    const int64_t x_strides[] = {p.x.n, p.x.spatial[0], p.x.spatial[1], p.x.spatial[2]};
    const int64_t sizes[] = {p.batch, p.in[0], p.in[1], p.in[2]};
    for (size_t a = 0; a < kMaxRank; ++a)
      if (p.frame.pad[a] != 0 || p.frame.size[a] != p.in[a] || (p.frame.step[a] != 1 && p.in[a] > 1)) return nullptr;
    for (size_t a = 0; a < 4; ++a)
      if (sizes[a] > 1 && frame_strides[a] != x_strides[a]) return nullptr;
    return x;
  }
}

template <typename S>
void execute_conv(const ConvPlan& plan, const PackedWeights<compute_t<S>>& packed, const S* x, S* y,
                  const Epilogue<compute_t<S>>& epilogue) {
  typedef compute_t<S> T;
  const T* in_place = input_as_frame(plan, x);
  // Uninitialized on purpose: every element is written before it is read.
  std::unique_ptr<T[]> frame(in_place ? nullptr : new T[static_cast<size_t>(plan.frame.elements)]);
  const T* frame_data = in_place ? in_place : frame.get();
  std::unique_ptr<S[]> buffers(new S[static_cast<size_t>(plan.buffer_len * plan.threads)]);
  const ConvKernels<T, S>& kernels = kernels_for<S>();
  const int64_t frame_end = plan.frame.rows * plan.frame.row_len;
  const PaddingOutputs& padding = plan.padding_outputs;
  const bool streaming = double(plan.problem.batch) * double(plan.problem.y.n) * sizeof(S) >= double(kStreamingBytes);
  const std::vector<T> padding_value = padding.fill ? padding_values(plan, packed, epilogue) : std::vector<T>();
  const int64_t padding_rows = padding.fill ? plan.problem.batch * padding.count[0] * padding.count[1] : 0;
  std::vector<TaskContext<S>> contexts;
  for (int t = 0; t < plan.threads; ++t) {
    contexts.push_back({plan, packed, kernels, frame_data, y, epilogue, buffers.get() + t * plan.buffer_len, {}, {},
                        &stop_flag(), streaming});
    contexts.back().sibling_rows.resize(static_cast<size_t>(plan.units.max_siblings));
    for (size_t i = 0; i < plan.mr; ++i)
      contexts.back().buffer_offsets.push_back(static_cast<ptrdiff_t>(int64_t(i) * plan.units.max_siblings * plan.buffer_row));
  }
  parallel_region(plan.threads, [&](int tid, int count) {
    int64_t begin, end;
    if (!in_place) {
      split_range(plan.frame.rows, tid, count, &begin, &end);
      build_frame(plan, x, frame.get(), begin, end);
      if (tid == 0) std::memset(frame.get() + frame_end, 0, sizeof(T) * static_cast<size_t>(plan.frame.elements - frame_end));
    }
    split_range(padding_rows, tid, count, &begin, &end);
    fill_padding_outputs(plan, padding_value, y, begin, end);
    region_barrier();
    split_range(plan.tasks, tid, count, &begin, &end);
    for (int64_t task = begin; task < end; ++task) run_task(contexts[static_cast<size_t>(tid)], task);
    if (streaming) streaming_fence();
  });
}

namespace {

// Element offset in x[n, c] of the input pixel read at the frame position of output index
// `out` (in the untrimmed grid, `box_first` the box's first) and tap t; -1 for padding.
int64_t definition_read(const ConvProblem& p, const PaddingOutputs& grid, const Extent& out, const Extent& box_first,
                        const Tap& t) {
  int64_t offset = 0;
  for (size_t a = 0; a < kMaxRank; ++a) {
    int64_t f;  // frame distance from input pixel 0; an overflow is far outside the input
    if (mul_overflows(out[a] - box_first[a], grid.stride[a], &f) || add_overflows(f, t.offset[a], &f) ||
        sub_overflows(f, p.frame.pad[a], &f))
      return -1;
    if (f < 0 || f % p.frame.step[a] != 0 || f / p.frame.step[a] >= p.in[a]) return -1;
    offset += f / p.frame.step[a] * p.x.spatial[a];
  }
  return offset;
}

template <typename T>
T definition_sum(const ConvProblem& p, const PaddingOutputs& grid, const Block& blk, int64_t j, const T* x_image,
                 const T* weight, const T* bias, const Extent& out, const Extent& box_first) {
  T sum = bias ? bias[blk.bias_first + j * blk.bias_step] : T(0);
  const int64_t cg_in = p.in_channels_per_group();
  for (int64_t c = 0; c < cg_in; ++c)
    for (const Tap& t : p.phases[blk.phase].taps) {
      const T w = weight[blk.weight_first + j * blk.weight_channel_step + c * p.weight_input_step + t.weight_offset];
      const int64_t read = definition_read(p, grid, out, box_first, t);
      if (read >= 0) sum += w * x_image[(blk.group * cg_in + c) * p.x.c + read];
      else if (!p.structural_zeros) sum += w * T(0);  // correlations multiply their padding
    }
  return sum;
}

}  // namespace

template <typename T>
void execute_by_definition(const ConvPlan& plan, const T* x, const T* weight, const T* bias, T* y,
                           const Epilogue<T>& epilogue) {
  const ConvProblem& p = plan.problem;
  const Phase& ph = p.phases[0];
  const PaddingOutputs grid = plan.padding_outputs.fill
                                  ? plan.padding_outputs
                                  : PaddingOutputs{false, ph.count, ph.out_first, ph.out_step, p.stride};
  Extent box_first;
  for (size_t a = 0; a < kMaxRank; ++a) box_first[a] = (ph.out_first[a] - grid.first[a]) / grid.step[a];
  const int64_t grid_rows = grid.count[0] * grid.count[1];
  parallel_region(plan.threads, [&](int tid, int count) {
    int64_t begin, end;
    split_range(p.batch * grid_rows, tid, count, &begin, &end);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / grid_rows;
      Extent out{(r % grid_rows) / grid.count[1], r % grid.count[1], 0};
      T* row = y + n * p.y.n + (grid.first[0] + out[0] * grid.step[0]) * p.y.spatial[0] +
               (grid.first[1] + out[1] * grid.step[1]) * p.y.spatial[1];
      for (const Block& blk : p.blocks)
        for (int64_t j = 0; j < static_cast<int64_t>(blk.out_offsets.size()); ++j)
          for (out[2] = 0; out[2] < grid.count[2]; ++out[2])
            row[blk.out_offsets[size_t(j)] + (grid.first[2] + out[2] * grid.step[2]) * p.y.spatial[2]] =
                activate(definition_sum(p, grid, blk, j, x + n * p.x.n, weight, bias, out, box_first), epilogue);
    }
  });
}

template void execute_by_definition(const ConvPlan&, const float*, const float*, const float*, float*,
                                    const Epilogue<float>&);
template void execute_by_definition(const ConvPlan&, const double*, const double*, const double*, double*,
                                    const Epilogue<double>&);
template void execute_conv(const ConvPlan&, const PackedWeights<float>&, const float*, float*, const Epilogue<float>&);
template void execute_conv(const ConvPlan&, const PackedWeights<double>&, const double*, double*, const Epilogue<double>&);
template void execute_conv(const ConvPlan&, const PackedWeights<float>&, const Float16*, Float16*, const Epilogue<float>&);
template void execute_conv(const ConvPlan&, const PackedWeights<float>&, const BFloat16*, BFloat16*, const Epilogue<float>&);

}  // namespace spx
