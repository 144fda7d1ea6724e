// The transposed convolution's scatter form: the definition itself, for tiny problems.
#include <algorithm>
#include <array>
#include <vector>

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
  // The kernel elements [first, end) of axis a that take input index i into the output
  // window (o = i*stride + k*dilation - pad in [0, out)), and o for k = 0.
  struct TapRange {
    int64_t first, end, origin;
  };
  TapRange taps_in_window(const Extent& i, size_t a) const {
    const int64_t origin = output_index(i, 0, a), d = s.dilation[a];
    // In unsigned arithmetic: out - 1 - origin is in [0, 2**64) and may not fit an int64.
    const int64_t first = origin >= 0 ? 0 : -(origin / d) + (origin % d != 0);
    const uint64_t span = static_cast<uint64_t>(s.out[a] - 1) - static_cast<uint64_t>(origin);
    const int64_t end = origin >= s.out[a] ? 0
                        : static_cast<int64_t>(std::min<uint64_t>(static_cast<uint64_t>(s.kernel[a]),
                                                                  span / static_cast<uint64_t>(d) + 1));
    return {first, std::max(first, end), origin};
  }
  // y[n, every output channel of input channel ci's group, every output x reaches] += x * w[ci, :, k]
  template <typename T>
  void add_all_taps(T xv, const T* w, int64_t n, int64_t ci, const Extent& i, T* y) const {
    T* out = y + n * ys.n + (ci / cg_in) * cg_out * ys.c;
    const T* wp = w + ci * cg_out * taps;
    const TapRange r0 = taps_in_window(i, 0), r1 = taps_in_window(i, 1), r2 = taps_in_window(i, 2);
    // Positions are computed for taps inside the window only: outside it, tap * dilation may
    // not even fit an int64 (a huge dilation).
    if (r0.first == r0.end || r1.first == r1.end || r2.first == r2.end) return;
    // Locals: the stores through `out` could otherwise alias these members for the compiler.
    const int64_t channels = cg_out, y_channel = ys.c, w_channel = taps;
    const int64_t count2 = r2.end - r2.first;
    const int64_t y_step2 = count2 > 1 ? s.dilation[2] * ys.spatial[2] : 0;
    for (int64_t k0 = r0.first; k0 < r0.end; ++k0) {
      for (int64_t k1 = r1.first; k1 < r1.end; ++k1) {
        T* o = out + (r0.origin + k0 * s.dilation[0]) * ys.spatial[0] + (r1.origin + k1 * s.dilation[1]) * ys.spatial[1] +
               (r2.origin + r2.first * s.dilation[2]) * ys.spatial[2];
        const T* wk = wp + (k0 * s.kernel[1] + k1) * s.kernel[2] + r2.first;
        for (int64_t co = 0; co < channels; ++co, o += y_channel, wk += w_channel)
          for (int64_t j = 0; j < count2; ++j) o[j * y_step2] += xv * wk[j];
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

template void scatter_transposed(const ConvShape&, const float*, const float*, const float*, float*);
template void scatter_transposed(const ConvShape&, const double*, const double*, const double*, double*);

}  // namespace spx
