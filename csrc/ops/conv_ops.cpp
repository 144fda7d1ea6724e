// conv2d, transposed convolution (direct and polyphase) and the fused sub-pixel layer, each
// described as a ConvProblem for the shared engine.
#include <algorithm>
#include <cmath>
#include <vector>

#include "conv_engine.h"
#include "ops.h"

namespace spx {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

ConvProblem base_problem(const ConvArgs& a) {
  ConvProblem p;
  p.batch = a.x.n;
  p.in_channels = a.x.c;
  p.in_h = a.x.h;
  p.in_w = a.x.w;
  p.groups = a.groups;
  p.x = layout_strides(a.x.c, a.x.h, a.x.w, a.nhwc);
  p.y = layout_strides(a.y.c, a.y.h, a.y.w, a.nhwc);
  p.stride_h = p.stride_w = 1;
  return p;
}

// Block of a group's output channels [c0, c0 + count) stored as themselves.
Block channel_block(const ConvProblem& p, size_t phase, int64_t group, int64_t c0, int64_t count) {
  Block b{phase, group, c0, 1, {}};
  for (int64_t co = 0; co < count; ++co) b.out_offsets.push_back((c0 + co) * p.y.c);
  return b;
}

// A correlation's frame and single tap set; the output grid is the caller's.
void correlation_frame(const ConvArgs& a, int64_t rows, int64_t cols, ConvProblem* p, std::vector<Tap>* taps) {
  p->stride_h = a.stride_h;
  p->stride_w = a.stride_w;
  p->frame.pad_top = a.pad_top;
  p->frame.pad_left = a.pad_left;
  p->frame.step_h = p->frame.step_w = 1;
  p->frame.rows = (rows - 1) * a.stride_h + a.dilation_h * (a.kh - 1) + 1;
  p->frame.cols = (cols - 1) * a.stride_w + a.dilation_w * (a.kw - 1) + 1;
  for (int64_t kh = 0; kh < a.kh; ++kh)
    for (int64_t kw = 0; kw < a.kw; ++kw) taps->push_back({kh * a.dilation_h, kw * a.dilation_w, kh, kw});
}

Phase make_phase(int64_t rows, int64_t cols, int64_t row0, int64_t col0, int64_t row_step, int64_t col_step,
                 std::vector<Tap> taps) {
  Phase ph;
  ph.rows = rows;
  ph.cols = cols;
  ph.out_row0 = row0;
  ph.out_col0 = col0;
  ph.out_row_step = row_step;
  ph.out_col_step = col_step;
  ph.taps = std::move(taps);
  return ph;
}

// Weights of a correlation, (C_out, C_in/groups, kh, kw), indexed by block source channel.
template <typename T>
void run_correlation(const ConvProblem& p, const ConvArgs& a, const T* x, const T* w, const T* bias, T* y) {
  const int64_t cg_in = a.x.c / a.groups, kk = a.kh * a.kw, kw = a.kw;
  run_conv<T>(
      p, x, y,
      [=](const Block& b, int64_t co, int64_t c, const Tap& t) {
        return w[((b.source0 + co * b.source_step) * cg_in + c) * kk + t.kh * kw + t.kw];
      },
      [=](const Block& b, int64_t co) { return bias ? bias[b.source0 + co * b.source_step] : T(0); }, a.threads);
}

// One axis of the polyphase decomposition (see shared design notes): output index
// o = n*s + r reads input n + e for every tap k with r + crop - k*d == e*s.
struct AxisPhases {
  int64_t pad = 0;         // frame position of input index 0
  int64_t frame_len = 0;
  std::vector<int64_t> count;                          // outputs per phase
  std::vector<std::vector<std::pair<int64_t, int64_t>>> taps;  // (k, e) per phase
};

AxisPhases polyphase_axis(int64_t in, int64_t k, int64_t s, int64_t d, int64_t crop, int64_t out) {
  AxisPhases ax;
  // Phases r >= out have no output pixel: a huge stride on a small output costs nothing.
  const int64_t phases = std::min(s, out);
  ax.count.resize(static_cast<size_t>(phases));
  ax.taps.resize(static_cast<size_t>(phases));
  int64_t lowest = 0;
  for (int64_t r = 0; r < phases; ++r) {
    const int64_t count = out > r ? (out - r + s - 1) / s : 0;
    ax.count[static_cast<size_t>(r)] = count;
    if (count == 0) continue;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int64_t num = r + crop - kk * d;
      const int64_t e = floor_div(num, s);
      // Skip taps that are not on this phase, and taps that only ever read outside the input.
      if (e * s != num || e + count - 1 < 0 || e > in - 1) continue;
      ax.taps[static_cast<size_t>(r)].push_back({kk, e});
      lowest = std::min(lowest, e);
    }
  }
  ax.pad = -lowest;
  ax.frame_len = ax.pad + in;
  for (int64_t r = 0; r < phases; ++r)
    for (const auto& t : ax.taps[static_cast<size_t>(r)])
      ax.frame_len = std::max(ax.frame_len, ax.pad + t.second + ax.count[static_cast<size_t>(r)]);
  return ax;
}

}  // namespace

template <typename T>
void conv2d(const ConvArgs& a, const T* x, const T* w, const T* bias, T* y) {
  ConvProblem p = base_problem(a);
  std::vector<Tap> taps;
  correlation_frame(a, a.y.h, a.y.w, &p, &taps);
  p.phases.push_back(make_phase(a.y.h, a.y.w, 0, 0, 1, 1, std::move(taps)));
  const int64_t cg_out = a.y.c / a.groups;
  for (int64_t g = 0; g < a.groups; ++g) p.blocks.push_back(channel_block(p, 0, g, g * cg_out, cg_out));
  run_correlation(p, a, x, w, bias, y);
}

template <typename T>
void subpixel_conv2d(const ConvArgs& a, int64_t rh, int64_t rw, bool dcr, const T* x, const T* w, const T* bias,
                     T* y) {
  ConvProblem p = base_problem(a);
  const int64_t rows = a.y.h / rh, cols = a.y.w / rw, r2 = rh * rw;
  std::vector<Tap> taps;
  correlation_frame(a, rows, cols, &p, &taps);
  // One phase on the convolution's grid; each conv channel's output offset carries both its
  // shuffled channel and its sub-pixel position: CRD cc = c*r2 + rho, DCR cc = rho*C + c.
  p.phases.push_back(make_phase(rows, cols, 0, 0, rh, rw, std::move(taps)));
  const int64_t channels = a.y.c, cg_conv = channels * r2 / a.groups;
  for (int64_t g = 0; g < a.groups; ++g) {
    Block b{0, g, g * cg_conv, 1, {}};
    for (int64_t cc = g * cg_conv; cc < (g + 1) * cg_conv; ++cc) {
      const int64_t c = dcr ? cc % channels : cc / r2, rho = dcr ? cc / channels : cc % r2;
      b.out_offsets.push_back(c * p.y.c + (rho / rw) * p.y.h + (rho % rw) * p.y.w);
    }
    p.blocks.push_back(std::move(b));
  }
  run_correlation(p, a, x, w, bias, y);
}

// Below this many multiply-adds the polyphase method runs as a plain scatter: the same
// useful products (never one on an inserted zero) without the engine's set-up, which would
// dominate a call this small.
constexpr int64_t kScatterMacs = 4096;

// The definition itself: every input pixel adds x * w[k] to the output pixels it reaches.
template <typename T>
void scatter_transposed(const ConvArgs& a, const T* x, const T* w, const T* bias, T* y) {
  const Strides xs = layout_strides(a.x.c, a.x.h, a.x.w, a.nhwc), ys = layout_strides(a.y.c, a.y.h, a.y.w, a.nhwc);
  const int64_t cg_in = a.x.c / a.groups, cg_out = a.y.c / a.groups, kk = a.kh * a.kw;
  for (int64_t n = 0; n < a.y.n; ++n)
    for (int64_t c = 0; c < a.y.c; ++c)
      for (int64_t h = 0; h < a.y.h; ++h)
        for (int64_t v = 0; v < a.y.w; ++v) y[n * ys.n + c * ys.c + h * ys.h + v * ys.w] = bias ? bias[c] : T(0);
  for (int64_t n = 0; n < a.x.n; ++n)
    for (int64_t ci = 0; ci < a.x.c; ++ci) {
      const int64_t g = ci / cg_in;
      for (int64_t i = 0; i < a.x.h; ++i)
        for (int64_t j = 0; j < a.x.w; ++j) {
          const T xv = x[n * xs.n + ci * xs.c + i * xs.h + j * xs.w];
          for (int64_t kh = 0; kh < a.kh; ++kh) {
            const int64_t oh = i * a.stride_h + kh * a.dilation_h - a.pad_top;
            if (oh < 0 || oh >= a.y.h) continue;
            for (int64_t kw = 0; kw < a.kw; ++kw) {
              const int64_t ow = j * a.stride_w + kw * a.dilation_w - a.pad_left;
              if (ow < 0 || ow >= a.y.w) continue;
              T* out = y + n * ys.n + oh * ys.h + ow * ys.w + g * cg_out * ys.c;
              const T* wp = w + (ci * cg_out) * kk + kh * a.kw + kw;
              for (int64_t co = 0; co < cg_out; ++co) out[co * ys.c] += xv * wp[co * kk];
            }
          }
        }
    }
}

template <typename T>
bool conv_transpose2d(const ConvArgs& a, TransposedMethod method, const T* x, const T* w, const T* bias, T* y) {
  const int64_t cg_out = a.y.c / a.groups;
  if (method == TransposedMethod::kPolyphase &&
      a.x.n * a.x.c * a.x.h * a.x.w <= kScatterMacs / std::max<int64_t>(1, cg_out * a.kh * a.kw)) {
    scatter_transposed(a, x, w, bias, y);
    return false;  // the scatter form is the definition, non-finite weights included
  }
  ConvProblem p = base_problem(a);
  if (method == TransposedMethod::kDirect) {
    // The definition: zero-insert by the stride, then correlate with the flipped kernel.
    const int64_t keh = a.dilation_h * (a.kh - 1) + 1, kew = a.dilation_w * (a.kw - 1) + 1;
    p.frame.step_h = a.stride_h;
    p.frame.step_w = a.stride_w;
    p.frame.pad_top = std::max<int64_t>(0, keh - 1 - a.pad_top);
    p.frame.pad_left = std::max<int64_t>(0, kew - 1 - a.pad_left);
    const int64_t org_h = a.pad_top - (keh - 1) + p.frame.pad_top, org_w = a.pad_left - (kew - 1) + p.frame.pad_left;
    p.frame.rows = std::max(p.frame.pad_top + (a.x.h - 1) * a.stride_h + 1, org_h + a.y.h + keh - 1);
    p.frame.cols = std::max(p.frame.pad_left + (a.x.w - 1) * a.stride_w + 1, org_w + a.y.w + kew - 1);
    std::vector<Tap> taps;
    for (int64_t i = 0; i < a.kh; ++i)
      for (int64_t j = 0; j < a.kw; ++j)
        taps.push_back({org_h + i * a.dilation_h, org_w + j * a.dilation_w, a.kh - 1 - i, a.kw - 1 - j});
    p.phases.push_back(make_phase(a.y.h, a.y.w, 0, 0, 1, 1, std::move(taps)));
    for (int64_t g = 0; g < a.groups; ++g) p.blocks.push_back(channel_block(p, 0, g, g * cg_out, cg_out));
  } else {
    // One sub-kernel per output phase on the low-resolution input.
    const AxisPhases ah = polyphase_axis(a.x.h, a.kh, a.stride_h, a.dilation_h, a.pad_top, a.y.h);
    const AxisPhases aw = polyphase_axis(a.x.w, a.kw, a.stride_w, a.dilation_w, a.pad_left, a.y.w);
    p.frame.step_h = p.frame.step_w = 1;
    p.frame.pad_top = ah.pad;
    p.frame.pad_left = aw.pad;
    p.frame.rows = ah.frame_len;
    p.frame.cols = aw.frame_len;
    for (int64_t rh = 0; rh < static_cast<int64_t>(ah.count.size()); ++rh) {
      for (int64_t rw = 0; rw < static_cast<int64_t>(aw.count.size()); ++rw) {
        const size_t ih = static_cast<size_t>(rh), iw = static_cast<size_t>(rw);
        if (ah.count[ih] == 0 || aw.count[iw] == 0) continue;
        std::vector<Tap> taps;
        for (const auto& th : ah.taps[ih])
          for (const auto& tw : aw.taps[iw]) taps.push_back({th.second + ah.pad, tw.second + aw.pad, th.first, tw.first});
        p.phases.push_back(make_phase(ah.count[ih], aw.count[iw], rh, rw, a.stride_h, a.stride_w, std::move(taps)));
        for (int64_t g = 0; g < a.groups; ++g) p.blocks.push_back(channel_block(p, p.phases.size() - 1, g, g * cg_out, cg_out));
      }
    }
  }
  const int64_t cg_in = a.x.c / a.groups, kk = a.kh * a.kw, kw = a.kw;
  // The definition (the scatter form) never multiplies a weight by padding or by an inserted
  // zero, but both methods here do. For finite weights the products are zero; non-finite ones
  // are left out here and added back by the caller from their scatter contributions.
  // v - v is 0 for finite v and NaN otherwise: a branch-free test the compiler vectorizes.
  int nonfinite = 0;
  for (int64_t i = 0, n = a.x.c * cg_out * kk; i < n; ++i) nonfinite |= (w[i] - w[i]) != T(0);
  run_conv<T>(
      p, x, y,
      [=](const Block& b, int64_t co, int64_t c, const Tap& t) {
        const T v = w[((b.group * cg_in + c) * cg_out + co) * kk + t.kh * kw + t.kw];
        return std::isfinite(v) ? v : T(0);
      },
      [=](const Block& b, int64_t co) { return bias ? bias[b.source0 + co] : T(0); }, a.threads);
  return nonfinite != 0;
}

template void conv2d<float>(const ConvArgs&, const float*, const float*, const float*, float*);
template void conv2d<double>(const ConvArgs&, const double*, const double*, const double*, double*);
template void subpixel_conv2d<float>(const ConvArgs&, int64_t, int64_t, bool, const float*, const float*,
                                     const float*, float*);
template void subpixel_conv2d<double>(const ConvArgs&, int64_t, int64_t, bool, const double*, const double*,
                                      const double*, double*);
template bool conv_transpose2d<float>(const ConvArgs&, TransposedMethod, const float*, const float*, const float*,
                                      float*);
template bool conv_transpose2d<double>(const ConvArgs&, TransposedMethod, const double*, const double*,
                                       const double*, double*);

}  // namespace spx
