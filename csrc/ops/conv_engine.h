// The one convolution engine behind conv2d, both transposed-convolution methods and the fused
// sub-pixel layer.
//
// A problem is a set of "phases" (output pixels on a regular grid that share one set of
// taps) times channel "blocks" (a group's output channels, each with its own place in the
// output). Every phase is a correlation of the zero-padded input "frame" with its taps:
//
//   y[n, out_offsets[co] + (out_row0 + i*out_row_step, out_col0 + j*out_col_step)]
//     = bias(co) + sum over input channels c of the block's group and taps t of
//       weight(co, c, t) * frame[n, c, i*stride_h + t.dh, j*stride_w + t.dw]
//
// The operators (conv_ops.cpp) only describe their problem in these terms; the engine picks
// the microkernel family, lays out the frame for it, packs the weights into the kernel's
// panel order and runs the tiles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "../kernels/dispatch.h"
#include "errors.h"
#include "interleave.h"
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
  int64_t group;                     // input-channel group read
  int64_t source0, source_step;      // weight/bias channel of local channel co: source0 + co*source_step
  std::vector<int64_t> out_offsets;  // per local channel: element offset of its pixel (0, 0) in y[n]
};

// Element strides of a tensor addressed as (n, c, h, w), whatever its memory layout.
struct Strides {
  int64_t n, c, h, w;
};

inline Strides layout_strides(int64_t c, int64_t h, int64_t w, bool nhwc) {
  return nhwc ? Strides{h * w * c, 1, w * c, c} : Strides{c * h * w, h * w, w, 1};
}

// Where the input lands in the zero-padded work buffer.
struct InputFrame {
  int64_t pad_top, pad_left;  // frame position of x[0, 0]
  int64_t step_h, step_w;     // frame distance between neighbouring input pixels (zero insertion)
  int64_t rows, cols;
};

struct ConvProblem {
  int64_t batch, in_channels, in_h, in_w;
  int64_t groups;
  int64_t stride_h, stride_w;  // frame distance between neighbouring output pixels of a phase
  Strides x, y;
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

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline bool unit_steps(const std::vector<int64_t>& offsets) {
  for (size_t j = 1; j < offsets.size(); ++j)
    if (offsets[j] != offsets[j - 1] + 1) return false;
  return true;
}

enum class Family { kChanvec, kRowvec, kRowvec1 };

// Phases whose outputs interleave along a row (polyphase column phases r = 0..S-1 of the same
// output rows) can be computed into a row buffer with contiguous vector stores and then
// interleaved, instead of storing every element with stride S. A unit is the blocks computed
// by one task: one block, or the S sibling blocks (ordered by column phase) of one group.
struct Units {
  std::vector<std::vector<size_t>> blocks;
  std::vector<char> buffered;
  int64_t max_siblings = 1;
};

inline Units make_units(const ConvProblem& p, bool allow_buffered) {
  Units u;
  std::vector<char> used(p.blocks.size(), 0);
  for (size_t b = 0; b < p.blocks.size(); ++b) {
    if (used[b]) continue;
    const Block& blk = p.blocks[b];
    const Phase& ph = p.phases[blk.phase];
    std::vector<size_t> unit{b};
    const int64_t S = ph.out_col_step;
    if (allow_buffered && S > 1 && S <= static_cast<int64_t>(p.blocks.size()) && ph.out_col0 == 0) {
      for (int64_t r = 1; r < S; ++r) {
        for (size_t c = b + 1; c < p.blocks.size(); ++c) {
          const Block& cand = p.blocks[c];
          const Phase& cp = p.phases[cand.phase];
          if (!used[c] && cand.group == blk.group && cand.out_offsets == blk.out_offsets && cp.out_col0 == r &&
              cp.out_col_step == S && cp.out_row0 == ph.out_row0 && cp.out_row_step == ph.out_row_step &&
              cp.rows == ph.rows && (cp.cols == ph.cols || cp.cols + 1 == ph.cols)) {
            unit.push_back(c);
            break;
          }
        }
      }
    }
    const bool buffered = static_cast<int64_t>(unit.size()) == S && S > 1;
    if (!buffered) unit.resize(1);
    for (size_t c : unit) used[c] = 1;
    u.blocks.push_back(unit);
    u.buffered.push_back(buffered);
    if (buffered) u.max_siblings = std::max(u.max_siblings, S);
  }
  return u;
}

// Estimated cycles of one family: padded FMA work plus output stores (vector or scalar).
template <typename T>
double family_cost(const ConvProblem& p, const ConvKernels<T>& ck, Family family, const Units& units) {
  const bool chanvec = family == Family::kChanvec;
  const int64_t tile_ch = static_cast<int64_t>(chanvec ? ck.chanvec_nr : family == Family::kRowvec ? ck.rowvec_mr : 1);
  const int64_t tile_px =
      static_cast<int64_t>(chanvec ? ck.chanvec_mr : family == Family::kRowvec ? ck.rowvec_nr : ck.rowvec1_nr);
  const double lanes = static_cast<double>(ck.lanes), cg_in = static_cast<double>(p.in_channels / p.groups);
  // Per vector FMA; a single-row tile is bound by its loads (one per FMA) rather than FMAs.
  const double fma_cost = family == Family::kRowvec1 ? 1.0 : 0.5;
  double cost = 0;
  for (size_t u = 0; u < units.blocks.size(); ++u) {
    for (size_t b : units.blocks[u]) {
      const Block& blk = p.blocks[b];
      const Phase& ph = p.phases[blk.phase];
      const int64_t ch = static_cast<int64_t>(blk.out_offsets.size());
      const double padded = double(ceil_div(ch, tile_ch) * tile_ch) * double(ceil_div(ph.cols, tile_px) * tile_px);
      const bool vector_store = chanvec ? unit_steps(blk.out_offsets) : ph.out_col_step * p.y.w == 1;
      const double store = vector_store ? 1 / lanes : units.buffered[u] ? 3 / lanes : 2.0;
      cost += double(ph.rows) *
              (padded * cg_in * double(ph.taps.size()) * fma_cost / lanes + double(ch) * double(ph.cols) * store);
    }
  }
  return cost;
}

template <typename T, class WeightAt, class BiasAt>
void run_conv(const ConvProblem& p, const T* x, T* y, const WeightAt& weight_at, const BiasAt& bias_at,
              int threads) {
  const ConvKernels<T>& ck = kernels_for<T>();
  const Units row_units = make_units(p, p.y.w == 1), single_units = make_units(p, false);
  Family family = Family::kChanvec;
  double best = family_cost(p, ck, Family::kChanvec, single_units);
  for (Family candidate : {Family::kRowvec, Family::kRowvec1}) {
    const double cost = family_cost(p, ck, candidate, row_units);
    if (cost < best) best = cost, family = candidate;
  }
  const bool chanvec = family == Family::kChanvec;
  const Units& units = chanvec ? single_units : row_units;
  const int64_t cg_in = p.in_channels / p.groups;
  const InputFrame& f = p.frame;

  // Frame layout follows the kernel family: channels innermost for chanvec; for rowvec each
  // frame row's columns de-interleaved by stride_w, so a tile of consecutive output pixels
  // reads consecutive memory for every tap.
  const int64_t col_phases = chanvec ? 1 : p.stride_w;
  const int64_t cols_per_phase = ceil_div(f.cols, col_phases);
  const int64_t row_len = chanvec ? checked_mul(f.cols, p.in_channels, "frame row")
                                  : checked_mul(col_phases, cols_per_phase, "frame row");
  const int64_t plane = checked_mul(f.rows, row_len, "frame plane");
  const int64_t frame_len =
      checked_mul(chanvec ? p.batch : checked_mul(p.batch, p.in_channels, "frame"), plane, "frame");

  void (*const rowvec)(const RowvecArgs<T>&) = family == Family::kRowvec1 ? ck.rowvec1 : ck.rowvec;
  const size_t mr = chanvec ? ck.chanvec_mr : family == Family::kRowvec1 ? 1 : ck.rowvec_mr;
  const size_t nr = chanvec ? ck.chanvec_nr : family == Family::kRowvec1 ? ck.rowvec1_nr : ck.rowvec_nr;
  const int64_t tile_ch = static_cast<int64_t>(chanvec ? nr : mr);
  // Row tiles read up to a tile width past the last valid pixel.
  const int64_t slack = static_cast<int64_t>(std::max(ck.rowvec_nr, ck.rowvec1_nr));
  // Per phase: reduction offsets into the frame.
  std::vector<std::vector<ptrdiff_t>> offsets(p.phases.size());
  for (size_t ph = 0; ph < p.phases.size(); ++ph) {
    std::vector<ptrdiff_t>& off = offsets[ph];
    if (chanvec) {
      for (const Tap& t : p.phases[ph].taps) off.push_back(static_cast<ptrdiff_t>((t.dh * f.cols + t.dw) * p.in_channels));
    } else {
      for (int64_t c = 0; c < cg_in; ++c)
        for (const Tap& t : p.phases[ph].taps)
          off.push_back(static_cast<ptrdiff_t>(c * plane + t.dh * row_len + (t.dw % col_phases) * cols_per_phase +
                                               t.dw / col_phases));
    }
  }
  // Per block: packed weights and bias, output offsets padded to whole tiles.
  const size_t nb = p.blocks.size();
  std::vector<int64_t> weights_start(nb + 1, 0), tiles_start(nb + 1, 0);
  std::vector<std::vector<ptrdiff_t>> out_offsets(nb);
  std::vector<char> contiguous(nb);
  int64_t macs = 0, max_cols = 0;
  for (size_t b = 0; b < nb; ++b) {
    const Block& blk = p.blocks[b];
    const Phase& ph = p.phases[blk.phase];
    const int64_t channels = static_cast<int64_t>(blk.out_offsets.size());
    const int64_t tiles = ceil_div(channels, tile_ch);
    const int64_t k = checked_mul(cg_in, static_cast<int64_t>(ph.taps.size()), "reduction");
    weights_start[b + 1] =
        checked_add(weights_start[b], checked_mul(checked_mul(tiles, k, "weights"), tile_ch, "weights"), "weights");
    tiles_start[b + 1] = tiles_start[b] + tiles;
    macs = checked_add(macs, checked_mul(checked_mul(ph.rows * ph.cols, channels, "work"), k, "work"), "work");
    out_offsets[b].assign(blk.out_offsets.begin(), blk.out_offsets.end());
    out_offsets[b].resize(static_cast<size_t>(tiles * tile_ch), 0);
    contiguous[b] = unit_steps(blk.out_offsets);
    max_cols = std::max(max_cols, ph.cols);
  }
  macs = checked_mul(macs, p.batch, "work");
  const int nt = macs < kSerialMacs ? 1 : threads;
  // Tasks: a run of up to `task_rows` output rows of one unit of one image. Several rows per
  // task reuse each weight panel (which may not fit L1) over more pixels; about 16 tasks per
  // thread keep the static split balanced. Results do not depend on the split.
  int64_t all_rows = 0;
  for (size_t u = 0; u < units.blocks.size(); ++u) all_rows += p.phases[p.blocks[units.blocks[u][0]].phase].rows;
  const int64_t task_rows = std::max<int64_t>(1, p.batch * all_rows / (16 * static_cast<int64_t>(nt)));
  std::vector<int64_t> first_task(units.blocks.size() + 1, 0);
  for (size_t u = 0; u < units.blocks.size(); ++u)
    first_task[u + 1] = first_task[u] + ceil_div(p.phases[p.blocks[units.blocks[u][0]].phase].rows, task_rows);
  const int64_t tasks_per_image = first_task.back();
  const int64_t tasks = checked_mul(p.batch, tasks_per_image, "work");

  // Row buffers of buffered units, per thread: MR channels x S phases x (cols + a tile).
  const int64_t buffer_row = max_cols + static_cast<int64_t>(nr);
  const int64_t buffer_len = chanvec ? 0 : static_cast<int64_t>(mr) * units.max_siblings * buffer_row;
  // Uninitialized on purpose: every element is written before it is read.
  std::unique_ptr<T[]> frame(new T[static_cast<size_t>(checked_add(frame_len, slack, "frame"))]);
  std::unique_ptr<T[]> packed_w(new T[static_cast<size_t>(weights_start.back())]);
  std::unique_ptr<T[]> packed_b(new T[static_cast<size_t>(tiles_start.back() * tile_ch)]);
  std::unique_ptr<T[]> buffers(new T[static_cast<size_t>(checked_mul(buffer_len, nt, "row buffers"))]);
  // Input columns that land inside the frame (the frame may end before the input does).
  const int64_t in_cols = f.cols > f.pad_left ? std::min<int64_t>(p.in_w, ceil_div(f.cols - f.pad_left, f.step_w)) : 0;

  parallel_region(nt, [&](int tid, int count) {
    int64_t begin, end;
    // 1. Frame: zero-padded (and zero-inserted) copy of the input in the family's layout.
    const int64_t frame_rows = (chanvec ? p.batch : p.batch * p.in_channels) * f.rows;
    split_range(frame_rows, tid, count, &begin, &end);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t fr = r % f.rows, ir = fr - f.pad_top;
      T* dst = frame.get() + r * row_len;
      std::memset(dst, 0, sizeof(T) * static_cast<size_t>(row_len));
      if (ir < 0 || ir % f.step_h || ir / f.step_h >= p.in_h) continue;
      if (chanvec) {
        const T* src = x + (r / f.rows) * p.x.n + (ir / f.step_h) * p.x.h;
        T* d = dst + f.pad_left * p.in_channels;
        const int64_t d_step = f.step_w * p.in_channels;
        if (p.x.c == 1) {
          for (int64_t j = 0; j < in_cols; ++j)
            std::memcpy(d + j * d_step, src + j * p.x.w, sizeof(T) * static_cast<size_t>(p.in_channels));
        } else {
          // Channel-major input: read each channel's row contiguously, write it strided
          // into the (cache-resident) frame row.
          for (int64_t c = 0; c < p.in_channels; ++c) {
            const T* s = src + c * p.x.c;
            for (int64_t j = 0; j < in_cols; ++j) d[j * d_step + c] = s[j * p.x.w];
          }
        }
      } else {
        const int64_t plane_index = r / f.rows;
        const T* src = x + (plane_index / p.in_channels) * p.x.n + (plane_index % p.in_channels) * p.x.c +
                       (ir / f.step_h) * p.x.h;
        if (col_phases == 1 && f.step_w == 1 && p.x.w == 1) {
          std::memcpy(dst + f.pad_left, src, sizeof(T) * static_cast<size_t>(in_cols));
        } else {
          for (int64_t j = 0; j < in_cols; ++j) {
            const int64_t col = f.pad_left + j * f.step_w;
            dst[(col % col_phases) * cols_per_phase + col / col_phases] = src[j * p.x.w];
          }
        }
      }
    }
    if (tid == 0) std::memset(frame.get() + frame_len, 0, sizeof(T) * static_cast<size_t>(slack));

    // 2. Weights and bias in the microkernel's panel order, zero beyond the block's channels.
    split_range(static_cast<int64_t>(nb), tid, count, &begin, &end);
    for (int64_t bi = begin; bi < end; ++bi) {
      const size_t b = static_cast<size_t>(bi);
      const Block& blk = p.blocks[b];
      const std::vector<Tap>& taps = p.phases[blk.phase].taps;
      const int64_t ntaps = static_cast<int64_t>(taps.size());
      const int64_t channels = static_cast<int64_t>(blk.out_offsets.size());
      T* w = packed_w.get() + weights_start[b];
      T* bias = packed_b.get() + tiles_start[b] * tile_ch;
      for (int64_t tile = 0; tile < tiles_start[b + 1] - tiles_start[b]; ++tile) {
        for (int64_t lane = 0; lane < tile_ch; ++lane) {
          const int64_t co = tile * tile_ch + lane;
          *bias++ = co < channels ? bias_at(blk, co) : T(0);
        }
        // rowvec panel: [c][tap][lane]; chanvec panel: [tap][c][lane]. Filled in the
        // weights' own order (a channel pair's taps are adjacent in memory), not the panel's.
        for (int64_t c = 0; c < cg_in; ++c)
          for (int64_t lane = 0; lane < tile_ch; ++lane) {
            const int64_t co = tile * tile_ch + lane;
            for (int64_t t = 0; t < ntaps; ++t) {
              const int64_t at = (chanvec ? t * cg_in + c : c * ntaps + t) * tile_ch + lane;
              w[at] = co < channels ? weight_at(blk, co, c, taps[static_cast<size_t>(t)]) : T(0);
            }
          }
        w += cg_in * ntaps * tile_ch;
      }
    }
    region_barrier();

    // 3. Tiles.
    T* buffer = buffers.get() + tid * buffer_len;
    std::vector<ptrdiff_t> buffer_offsets(mr);
    std::vector<T*> sibling_rows(static_cast<size_t>(units.max_siblings));
    for (size_t i = 0; i < mr; ++i) buffer_offsets[i] = static_cast<ptrdiff_t>(i * units.max_siblings * buffer_row);
    split_range(tasks, tid, count, &begin, &end);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / tasks_per_image, in_image = task % tasks_per_image;
      const size_t u = static_cast<size_t>(std::upper_bound(first_task.begin(), first_task.end(), in_image) -
                                           first_task.begin() - 1);
      const bool buffered = units.buffered[u] != 0;
      const int64_t siblings = static_cast<int64_t>(units.blocks[u].size());
      const size_t b0 = units.blocks[u][0];
      const int64_t i0 = (in_image - first_task[u]) * task_rows;
      const int64_t i1 = std::min(i0 + task_rows, p.phases[p.blocks[b0].phase].rows);
      const int64_t channels = static_cast<int64_t>(p.blocks[b0].out_offsets.size());
      const int64_t tiles = tiles_start[b0 + 1] - tiles_start[b0];
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t valid_ch = std::min<int64_t>(tile_ch, channels - tile * tile_ch);
        for (int64_t i = i0; i < i1; ++i) {
          for (int64_t sib = 0; sib < siblings; ++sib) {
            const size_t b = units.blocks[u][static_cast<size_t>(sib)];
            const Block& blk = p.blocks[b];
            const Phase& ph = p.phases[blk.phase];
            const T* w = packed_w.get() + weights_start[b];
            const T* bias = packed_b.get() + tiles_start[b] * tile_ch + tile * tile_ch;
            const ptrdiff_t* ooff = out_offsets[b].data() + tile * tile_ch;
            const ptrdiff_t y_pixel_stride = static_cast<ptrdiff_t>(ph.out_col_step * p.y.w);
            T* y_row = y + n * p.y.n + (ph.out_row0 + i * ph.out_row_step) * p.y.h + ph.out_col0 * p.y.w;
            if (chanvec) {
              ChanvecArgs<T> a;
              a.taps = ph.taps.size();
              a.channels = static_cast<size_t>(cg_in);
              a.x_pixel_stride = static_cast<ptrdiff_t>(p.stride_w * p.in_channels);
              a.tap_offsets = offsets[blk.phase].data();
              a.y_channels_contiguous = contiguous[b] != 0;
              a.y_pixel_stride = y_pixel_stride;
              a.nr_valid = static_cast<size_t>(valid_ch);
              a.w = w + tile * static_cast<int64_t>(a.taps) * cg_in * tile_ch;
              a.bias = bias;
              a.y_channel_offsets = ooff;
              const T* x_row = frame.get() + (n * f.rows + i * p.stride_h) * row_len + blk.group * cg_in;
              for (int64_t j0 = 0; j0 < ph.cols; j0 += static_cast<int64_t>(mr)) {
                a.mr_valid = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(mr), ph.cols - j0));
                a.x = x_row + j0 * p.stride_w * p.in_channels;
                a.y = y_row + j0 * y_pixel_stride;
                ck.chanvec(a);
              }
              continue;
            }
            RowvecArgs<T> a;
            a.k = offsets[blk.phase].size();
            a.x_offsets = offsets[blk.phase].data();
            a.mr_valid = static_cast<size_t>(valid_ch);
            a.w = w + tile * static_cast<int64_t>(a.k) * tile_ch;
            a.bias = bias;
            // Buffered: sibling `sib` fills its own contiguous row per channel.
            a.y_channel_offsets = buffered ? buffer_offsets.data() : ooff;
            a.y_pixel_stride = buffered ? 1 : y_pixel_stride;
            T* y_base = buffered ? buffer + sib * buffer_row : y_row;
            const T* x_row = frame.get() + (n * p.in_channels + blk.group * cg_in) * plane + i * p.stride_h * row_len;
            for (int64_t j0 = 0; j0 < ph.cols; j0 += static_cast<int64_t>(nr)) {
              a.nr_valid = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(nr), ph.cols - j0));
              a.x = x_row + j0;
              a.y = y_base + j0 * a.y_pixel_stride;
              rowvec(a);
            }
          }
          if (!buffered) continue;
          // Interleave the siblings' rows into the output rows of the tile's channels.
          const Phase& ph0 = p.phases[p.blocks[b0].phase];
          const int64_t full = p.phases[p.blocks[units.blocks[u].back()].phase].cols;  // groups with every sibling
          const ptrdiff_t* ooff = out_offsets[b0].data() + tile * tile_ch;
          for (int64_t c = 0; c < valid_ch; ++c) {
            T* out = y + n * p.y.n + (ph0.out_row0 + i * ph0.out_row_step) * p.y.h + ooff[c];
            for (int64_t sib = 0; sib < siblings; ++sib)
              sibling_rows[static_cast<size_t>(sib)] = buffer + buffer_offsets[static_cast<size_t>(c)] + sib * buffer_row;
            interleave_rows(out, sibling_rows.data(), full, siblings, false);
            // Columns of the last, partial group (phases with one more column than the last).
            for (int64_t sib = 0; sib < siblings; ++sib)
              if (p.phases[p.blocks[units.blocks[u][static_cast<size_t>(sib)]].phase].cols > full)
                out[full * siblings + sib] = sibling_rows[static_cast<size_t>(sib)][full];
          }
        }
      }
    }
  });
}

}  // namespace spx
