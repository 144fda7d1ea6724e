// The transposed convolution's scatter form: the definition itself. Used for tiny problems
// and to add back the terms of non-finite weights and inputs exactly where they belong.
#include <cmath>

#include "describe.h"

namespace spx {
namespace {

struct Scatter {
  const ConvShape& s;
  TensorStrides xs, ys;
  int64_t cg_in, cg_out, taps;
  explicit Scatter(const ConvShape& shape)
      : s(shape),
        xs(layout_strides(shape.in_channels, shape.in, shape.channels_last)),
        ys(layout_strides(shape.out_channels, shape.out, shape.channels_last)),
        cg_in(shape.in_channels / shape.groups),
        cg_out(shape.out_channels / shape.groups),
        taps(volume(shape.kernel)) {}

  // Element offset (in y[n], channel 0) that input pixel i reaches through kernel element k,
  // or -1 when that lands outside the output window.
  int64_t target(const Extent& i, const Extent& k) const {
    int64_t offset = 0;
    for (size_t a = 0; a < kMaxRank; ++a) {
      const int64_t o = output_index(i, k[a], a);
      if (o < 0 || o >= s.out[a]) return -1;
      offset += o * ys.spatial[a];
    }
    return offset;
  }
  int64_t output_index(const Extent& i, int64_t k, size_t a) const {
    return i[a] * s.stride[a] + k * s.dilation[a] - s.pad_begin[a];
  }
  int64_t x_offset(int64_t n, int64_t c, const Extent& i) const {
    return n * xs.n + c * xs.c + i[0] * xs.spatial[0] + i[1] * xs.spatial[1] + i[2] * xs.spatial[2];
  }
  // y[n, every output channel of input channel ci's group, every output x reaches] += x * w[ci, :, k]
  template <typename T>
  void add_all_taps(T xv, const T* w, int64_t n, int64_t ci, const Extent& i, T* y) const {
    T* out = y + n * ys.n + (ci / cg_in) * cg_out * ys.c;
    const T* wp = w + ci * cg_out * taps;
    for (int64_t k0 = 0; k0 < s.kernel[0]; ++k0) {
      const int64_t o0 = output_index(i, k0, 0);
      if (o0 < 0 || o0 >= s.out[0]) continue;
      for (int64_t k1 = 0; k1 < s.kernel[1]; ++k1) {
        const int64_t o1 = output_index(i, k1, 1);
        if (o1 < 0 || o1 >= s.out[1]) continue;
        for (int64_t k2 = 0; k2 < s.kernel[2]; ++k2) {
          const int64_t o2 = output_index(i, k2, 2);
          if (o2 < 0 || o2 >= s.out[2]) continue;
          T* o = out + o0 * ys.spatial[0] + o1 * ys.spatial[1] + o2 * ys.spatial[2];
          const T* wk = wp + (k0 * s.kernel[1] + k1) * s.kernel[2] + k2;
          for (int64_t co = 0; co < cg_out; ++co) o[co * ys.c] += xv * wk[co * taps];
        }
      }
    }
  }
};

template <class Fn>
void for_each_pixel(const Extent& size, Fn&& fn) {
  for (int64_t a = 0; a < size[0]; ++a)
    for (int64_t b = 0; b < size[1]; ++b)
      for (int64_t c = 0; c < size[2]; ++c) fn(Extent{a, b, c});
}

}  // namespace

template <typename T>
void scatter_transposed(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  const Scatter sc(s);
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t c = 0; c < s.out_channels; ++c)
      for_each_pixel(s.out, [&](const Extent& o) {
        y[n * sc.ys.n + c * sc.ys.c + o[0] * sc.ys.spatial[0] + o[1] * sc.ys.spatial[1] + o[2] * sc.ys.spatial[2]] =
            bias ? bias[c] : T(0);
      });
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t ci = 0; ci < s.in_channels; ++ci)
      for_each_pixel(s.in, [&](const Extent& i) {
        sc.add_all_taps(x[sc.x_offset(n, ci, i)], w, n, ci, i, y);
      });
}

// With X = Xf + Xn and W = Wf + Wn (finite parts, non-finite entries), y holds Xf * Wf.
// Added here: Xn * W, then Xf * Wn. Every such term is non-finite, and IEEE sums of
// non-finite values do not depend on the order.
template <typename T>
void add_nonfinite_terms(const ConvShape& s, const T* x, const T* w, T* y) {
  const Scatter sc(s);
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t ci = 0; ci < s.in_channels; ++ci)
      for_each_pixel(s.in, [&](const Extent& i) {
        const T xv = x[sc.x_offset(n, ci, i)];
        if (!std::isfinite(xv)) sc.add_all_taps(xv, w, n, ci, i, y);
      });
  for (int64_t ci = 0; ci < s.in_channels; ++ci)
    for (int64_t co = 0; co < sc.cg_out; ++co)
      for_each_kernel_element(s, [&](const Extent& k) {
        const T wv = w[(ci * sc.cg_out + co) * sc.taps + kernel_index(s, k)];
        if (std::isfinite(wv)) return;
        const int64_t channel = (ci / sc.cg_in) * sc.cg_out + co;
        for (int64_t n = 0; n < s.batch; ++n)
          for_each_pixel(s.in, [&](const Extent& i) {
            const T xv = x[sc.x_offset(n, ci, i)];
            const int64_t to = std::isfinite(xv) ? sc.target(i, k) : -1;
            if (to >= 0) y[n * sc.ys.n + channel * sc.ys.c + to] += xv * wv;
          });
      });
}

template void scatter_transposed(const ConvShape&, const float*, const float*, const float*, float*);
template void scatter_transposed(const ConvShape&, const double*, const double*, const double*, double*);
template void add_nonfinite_terms(const ConvShape&, const float*, const float*, float*);
template void add_nonfinite_terms(const ConvShape&, const double*, const double*, double*);

}  // namespace spx
