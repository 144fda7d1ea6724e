#include "reference.h"

#include <cmath>
#include <limits>
#include <random>

#include "../../csrc/engine/execute.h"
#include "../../csrc/kernels/dispatch.h"
#include "check.h"

namespace spx_test {
namespace {

using spx::Extent;
using spx::kMaxRank;

Extent padded_extent(const std::vector<int64_t>& v, size_t rank, int64_t fill) {
  Extent e{fill, fill, fill};
  if (v.empty()) return e;
  for (size_t a = 0; a < rank; ++a) e[kMaxRank - rank + a] = v[a];
  return e;
}

template <class Fn>
void for_each_position(const Extent& size, Fn&& fn) {
  for (int64_t a = 0; a < size[0]; ++a)
    for (int64_t b = 0; b < size[1]; ++b)
      for (int64_t c = 0; c < size[2]; ++c) fn(Extent{a, b, c});
}

int64_t kernel_flat(const spx::ConvShape& s, const Extent& k) { return (k[0] * s.kernel[1] + k[1]) * s.kernel[2] + k[2]; }

// Output channel `co` of the convolution at output position o (of the conv's own grid).
template <typename T>
double conv_at(const spx::ConvShape& s, int64_t conv_channels, const T* x, const T* w, const T* bias, int64_t n,
               int64_t co, const Extent& o) {
  const int64_t cg_in = s.in_channels / s.groups, group = co / (conv_channels / s.groups);
  double sum = bias ? double(bias[co]) : 0.0;
  for (int64_t c = 0; c < cg_in; ++c)
    for_each_position(s.kernel, [&](const Extent& k) {
      Extent p;
      bool inside = true;
      for (size_t a = 0; a < kMaxRank; ++a) {
        p[a] = o[a] * s.stride[a] + k[a] * s.dilation[a] - s.pad_begin[a];
        inside = inside && p[a] >= 0 && p[a] < s.in[a];
      }
      const double xv = inside ? double(x[tensor_offset(s.in_channels, s.in, s.channels_last, n, group * cg_in + c, p)]) : 0.0;
      sum += double(w[(co * cg_in + c) * spx::volume(s.kernel) + kernel_flat(s, k)]) * xv;
    });
  return sum;
}

template <typename T>
double conv_transpose_at(const spx::ConvShape& s, const T* x, const T* w, const T* bias, int64_t n, int64_t co,
                         const Extent& o) {
  const int64_t cg_in = s.in_channels / s.groups, cg_out = s.out_channels / s.groups, group = co / cg_out;
  double sum = bias ? double(bias[co]) : 0.0;
  for (int64_t ci = group * cg_in; ci < (group + 1) * cg_in; ++ci)
    for_each_position(s.kernel, [&](const Extent& k) {
      Extent i;
      for (size_t a = 0; a < kMaxRank; ++a) {  // o = i * stride + k * dilation - crop
        const int64_t num = o[a] + s.pad_begin[a] - k[a] * s.dilation[a];
        if (num < 0 || num % s.stride[a] != 0 || num / s.stride[a] >= s.in[a]) return;
        i[a] = num / s.stride[a];
      }
      sum += double(x[tensor_offset(s.in_channels, s.in, s.channels_last, n, ci, i)]) *
             double(w[(ci * cg_out + co % cg_out) * spx::volume(s.kernel) + kernel_flat(s, k)]);
    });
  return sum;
}

template <typename T>
void reference_subpixel(const ConvCase& c, const T* x, const T* w, const T* bias, std::vector<double>* y) {
  const spx::ConvShape& s = c.shape;
  const int64_t R = spx::volume(c.factor), C = s.out_channels;
  Extent grid;
  for (size_t a = 0; a < kMaxRank; ++a) grid[a] = s.out[a] / c.factor[a];
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t cc = 0; cc < C * R; ++cc)
      for_each_position(grid, [&](const Extent& o) {
        // pixel_shuffle: CRD reads conv channel c*R + rho, DCR rho*C + c.
        const int64_t ch = c.dcr ? cc % C : cc / R, rho = c.dcr ? cc / C : cc % R;
        const Extent sub{rho / (c.factor[1] * c.factor[2]), (rho / c.factor[2]) % c.factor[1], rho % c.factor[2]};
        Extent p;
        for (size_t a = 0; a < kMaxRank; ++a) p[a] = o[a] * c.factor[a] + sub[a];
        (*y)[size_t(tensor_offset(C, s.out, s.channels_last, n, ch, p))] = conv_at(s, C * R, x, w, bias, n, cc, o);
      });
}

}  // namespace

ConvCase make_case(const std::string& name, Op op, const Geometry& g, bool channels_last) {
  ConvCase c;
  c.name = name;
  c.op = op;
  const size_t rank = g.in.size();
  spx::ConvShape& s = c.shape;
  s.batch = g.batch;
  s.in_channels = g.in_channels;
  s.out_channels = g.out_channels;
  s.groups = g.groups;
  s.channels_last = channels_last;
  s.in = padded_extent(g.in, rank, 1);
  s.kernel = padded_extent(g.kernel, rank, 1);
  s.stride = padded_extent(g.stride, rank, 1);
  s.dilation = padded_extent(g.dilation, rank, 1);
  s.pad_begin = padded_extent(g.pad, rank, 0);
  c.factor = padded_extent(g.factor, rank, 1);
  for (size_t a = 0; a < kMaxRank; ++a) {
    const int64_t span = s.dilation[a] * (s.kernel[a] - 1) + 1;
    if (op == Op::kConvTranspose) {
      const int64_t extra = a >= kMaxRank - rank ? g.output_padding : 0;
      s.out[a] = (s.in[a] - 1) * s.stride[a] - 2 * s.pad_begin[a] + span + extra;
    } else {
      s.out[a] = ((s.in[a] + 2 * s.pad_begin[a] - span) / s.stride[a] + 1) * c.factor[a];
    }
  }
  return c;
}

std::string describe(const ConvCase& c) {
  std::string s = c.name + (c.shape.channels_last ? " [channels-last" : " [channels-first");
  if (c.op == Op::kConvTranspose) s += c.method == spx::TransposedMethod::kDirect ? ", direct" : ", polyphase";
  if (c.op == Op::kSubpixel) s += c.dcr ? ", DCR" : ", CRD";
  return s + "]";
}

spx::ConvProblem describe_problem(const ConvCase& c) {
  switch (c.op) {
    case Op::kConv: return spx::describe_conv(c.shape);
    case Op::kSubpixel: return spx::describe_subpixel(c.shape, c.factor, c.dcr);
    case Op::kConvTranspose: break;
  }
  return spx::describe_conv_transpose(c.shape, c.method);
}

int64_t bias_count(const ConvCase& c) { return c.shape.out_channels * spx::volume(c.factor); }
int64_t weight_count(const ConvCase& c) {
  const spx::ConvShape& s = c.shape;
  const int64_t taps = spx::volume(s.kernel);
  if (c.op == Op::kConvTranspose) return s.in_channels * (s.out_channels / s.groups) * taps;
  return bias_count(c) * (s.in_channels / s.groups) * taps;
}
int64_t input_count(const ConvCase& c) { return c.shape.batch * c.shape.in_channels * spx::volume(c.shape.in); }
int64_t output_count(const ConvCase& c) { return c.shape.batch * c.shape.out_channels * spx::volume(c.shape.out); }

int64_t tensor_offset(int64_t channels, const Extent& size, bool channels_last, int64_t n, int64_t c, const Extent& p) {
  const int64_t pixel = (p[0] * size[1] + p[1]) * size[2] + p[2];
  return channels_last ? (n * spx::volume(size) + pixel) * channels + c : (n * channels + c) * spx::volume(size) + pixel;
}

template <typename T>
std::vector<double> reference(const ConvCase& c, const T* x, const T* w, const T* bias) {
  const spx::ConvShape& s = c.shape;
  std::vector<double> y(size_t(output_count(c)), std::numeric_limits<double>::quiet_NaN());
  if (c.op == Op::kSubpixel) {
    reference_subpixel(c, x, w, bias, &y);
    return y;
  }
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t co = 0; co < s.out_channels; ++co)
      for_each_position(s.out, [&](const Extent& o) {
        y[size_t(tensor_offset(s.out_channels, s.out, s.channels_last, n, co, o))] =
            c.op == Op::kConv ? conv_at(s, s.out_channels, x, w, bias, n, co, o) : conv_transpose_at(s, x, w, bias, n, co, o);
      });
  return y;
}

template <typename T>
T activate(T v, spx::Activation a, T negative_slope) {
  switch (a) {
    case spx::Activation::kNone: return v;
    case spx::Activation::kRelu: return v < T(0) ? T(0) : v;
    case spx::Activation::kRelu6: return v < T(0) ? T(0) : v > T(6) ? T(6) : v;
    case spx::Activation::kLeakyRelu: return v < T(0) ? v * negative_slope : v;
    case spx::Activation::kTanh: return std::tanh(v);
    case spx::Activation::kSigmoid: return T(1) / (T(1) + std::exp(-v));
  }
  return v;
}

template <typename T>
std::vector<T> grid_values(int64_t count, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> eighths(-16, 16);
  std::vector<T> v(static_cast<size_t>(count));
  for (T& e : v) e = T(eighths(gen)) / T(8);
  return v;
}

template <typename T>
std::vector<T> random_values(int64_t count, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<T> uniform(T(-1), T(1));
  std::vector<T> v(static_cast<size_t>(count));
  for (T& e : v) e = uniform(gen);
  return v;
}

template <typename T>
const spx::ConvKernels<T>& kernels_for();
template <>
const spx::ConvKernels<float>& kernels_for<float>() { return spx::kernels().f32; }
template <>
const spx::ConvKernels<double>& kernels_for<double>() { return spx::kernels().f64; }

template <typename T>
std::vector<T> run_engine(const ConvCase& c, const T* x, const T* w, const T* bias, int threads,
                          const spx::Epilogue<T>& epilogue) {
  const spx::ConvPlan plan = spx::plan_conv(describe_problem(c), spx::tile_shapes(kernels_for<T>()), threads);
  const auto packed = spx::pack_weights(plan, w, bias, threads);
  // A value no test produces: an output the engine never writes shows up as a mismatch.
  std::vector<T> y(size_t(output_count(c)), T(1e30));
  spx::execute_conv(plan, *packed, x, y.data(), epilogue);
  return y;
}

template <typename T>
int compare(const std::vector<T>& got, const std::vector<double>& want, const std::string& what, int ulps) {
  int mismatches = 0;
  CHECK_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const T g = got[i], w = static_cast<T>(want[i]);
    bool ok = std::isnan(w) ? std::isnan(g) : g == w;
    if (!ok && ulps > 0 && std::isfinite(w))
      ok = std::fabs(g - w) <= T(ulps) * std::numeric_limits<T>::epsilon() * std::max(std::fabs(w), T(1e-30));
    if (ok) continue;
    if (++mismatches <= 5) CHECK_MSG(ok, what << ": element " << i << " is " << g << ", the reference " << w);
  }
  if (mismatches > 5) CHECK_MSG(mismatches == 0, what << ": " << mismatches << " mismatches in all");
  return mismatches;
}

#define SPX_INSTANTIATE(T)                                                                                       \
  template std::vector<double> reference(const ConvCase&, const T*, const T*, const T*);                        \
  template T activate(T, spx::Activation, T);                                                                   \
  template std::vector<T> grid_values(int64_t, unsigned);                                                       \
  template std::vector<T> random_values(int64_t, unsigned);                                                     \
  template std::vector<T> run_engine(const ConvCase&, const T*, const T*, const T*, int, const spx::Epilogue<T>&); \
  template int compare(const std::vector<T>&, const std::vector<double>&, const std::string&, int);
SPX_INSTANTIATE(float)
SPX_INSTANTIATE(double)
#undef SPX_INSTANTIATE

}  // namespace spx_test
