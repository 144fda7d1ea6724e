// The weight and bias gradients (the input gradients run the forward operators).
#include <pybind11/stl.h>

#include <vector>

#include "../ops/backward.h"
#include "../ops/parallel.h"
#include "common.h"
#include "register.h"

namespace spx_bind {
namespace {

using Ints = std::vector<int64_t>;

void require_output(const py::array& out, std::initializer_list<const py::array*> inputs) {
  require(out.writeable(), "out is read-only");
  require(out.flags() & py::array::c_style, "out must be C-contiguous and native-endian");
  for (const py::array* a : inputs) require(!overlaps(out, *a), "out overlaps an input array");
}

// The convolution's geometry from x (N, C_in, *in), grad_y (N, C_out, *out) and grad_weight
// (C_out, C_in/groups, *kernel), all in the same layout but grad_weight.
spx::ConvShape weight_grad_shape(const py::array& x, const py::array& gy, const py::array& gw, const Ints& stride,
                                 const Ints& dilation, const Ints& pad_begin, int64_t groups, bool channels_last) {
  require(gw.ndim() >= 3 && gw.ndim() <= 5, "grad_weight must be 3-D, 4-D or 5-D");
  const size_t rank = static_cast<size_t>(gw.ndim() - 2);
  const ArrayDims xd = array_dims(x, rank, channels_last, "x"), yd = array_dims(gy, rank, channels_last, "grad_y");
  require(groups >= 1 && xd.channels % groups == 0 && yd.channels % groups == 0, "groups must divide the channels");
  require(xd.batch == yd.batch, "x and grad_y must have the same batch size");
  require(gw.shape(0) == yd.channels && gw.shape(1) * groups == xd.channels,
          "grad_weight must be (grad_y channels, x channels / groups, *kernel)");
  spx::ConvShape s;
  s.batch = xd.batch;
  s.in_channels = xd.channels;
  s.out_channels = yd.channels;
  s.in = xd.spatial;
  s.out = yd.spatial;
  s.kernel = {1, 1, 1};
  for (size_t a = 0; a < rank; ++a) s.kernel[spx::kMaxRank - rank + a] = gw.shape(static_cast<py::ssize_t>(a + 2));
  s.stride = to_extent(stride, rank, 1, "stride");
  s.dilation = to_extent(dilation, rank, 1, "dilation");
  s.pad_begin = to_extent(pad_begin, rank, 0, "pad_begin");
  s.groups = groups;
  s.channels_last = channels_last;
  for (size_t a = 0; a < spx::kMaxRank; ++a) {
    require(s.in[a] >= 1 && s.out[a] >= 1 && s.kernel[a] >= 1, "spatial and kernel sizes must be >= 1");
    require(s.stride[a] >= 1 && s.dilation[a] >= 1 && s.pad_begin[a] >= 0,
            "stride and dilation must be >= 1, pad_begin >= 0");
  }
  return s;
}

template <typename T>
bool run_weight_grad(const spx::ConvShape& s, const py::array& x, const py::array& gy, py::array& gw, int threads) {
  if (!has_type<T>(x) || !has_type<T>(gy) || !has_type<T>(gw)) return false;
  const T* xp = static_cast<const T*>(x.data());
  const T* gp = static_cast<const T*>(gy.data());
  T* out = static_cast<T*>(gw.mutable_data());
  py::gil_scoped_release nogil;
  spx::conv_weight_grad(s, xp, gp, out, threads);
  return true;
}

void weight_grad(const py::array& x, const py::array& gy, py::array gw, const Ints& stride, const Ints& dilation,
                 const Ints& pad_begin, int64_t groups, bool channels_last, int threads) {
  const spx::ConvShape s = weight_grad_shape(x, gy, gw, stride, dilation, pad_begin, groups, channels_last);
  require_output(gw, {&x, &gy});
  const int nt = spx::resolve_threads(threads);
  if (run_weight_grad<float>(s, x, gy, gw, nt) || run_weight_grad<double>(s, x, gy, gw, nt)) return;
  throw py::type_error("x, grad_y and grad_weight must be C-contiguous float32 or float64 of one dtype");
}

template <typename T>
bool run_bias_grad(const py::array& gy, py::array& gb, int64_t pixels, bool channels_last, int threads) {
  if (!has_type<T>(gy) || !has_type<T>(gb)) return false;
  const T* gp = static_cast<const T*>(gy.data());
  T* out = static_cast<T*>(gb.mutable_data());
  const int64_t batch = gy.shape(0), channels = gb.shape(0);
  py::gil_scoped_release nogil;
  spx::bias_grad(batch, channels, pixels, channels_last, gp, out, threads);
  return true;
}

void bias_grad(const py::array& gy, py::array gb, bool channels_last, int threads) {
  require(gy.ndim() >= 3 && gy.ndim() <= 5, "grad_y must be 3-D, 4-D or 5-D");
  require(gb.ndim() == 1, "grad_bias must be 1-D");
  const ArrayDims yd = array_dims(gy, static_cast<size_t>(gy.ndim() - 2), channels_last, "grad_y");
  require(gb.shape(0) == yd.channels, "grad_bias must have one entry per grad_y channel");
  require_output(gb, {&gy});
  const int nt = spx::resolve_threads(threads);
  const int64_t pixels = spx::volume(yd.spatial);
  if (run_bias_grad<float>(gy, gb, pixels, channels_last, nt) || run_bias_grad<double>(gy, gb, pixels, channels_last, nt))
    return;
  throw py::type_error("grad_y and grad_bias must be C-contiguous float32 or float64 of one dtype");
}

}  // namespace

void register_backward(py::module_& m) {
  m.def("conv_weight_grad", &weight_grad, py::arg("x"), py::arg("grad_y"), py::arg("grad_weight"),
        py::arg("stride"), py::arg("dilation"), py::arg("pad_begin"), py::arg("groups"), py::arg("channels_last"),
        py::arg("threads"),
        "grad_weight = the weight gradient of grad_y = conv(x, w) with that stride, dilation and zero padding at "
        "the start (deterministic for any thread count).");
  m.def("bias_grad", &bias_grad, py::arg("grad_y"), py::arg("grad_bias"), py::arg("channels_last"),
        py::arg("threads"), "grad_bias = grad_y summed over the batch and the pixels, per channel.");
}

}  // namespace spx_bind
