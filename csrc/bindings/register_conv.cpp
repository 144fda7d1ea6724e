// The convolution operators: one bound class per operation over the shared ConvOperator.
#include <pybind11/stl.h>

#include <memory>
#include <type_traits>
#include <string>
#include <vector>

#include "../ops/operator.h"
#include "../ops/parallel.h"
#include "common.h"
#include "interrupt.h"
#include "register.h"

namespace spx_bind {
namespace {

using Ints = std::vector<int64_t>;

// Holds the weight and bias arrays (the operator reads them in place) and the operator.
class BoundOperator {
 public:
  BoundOperator(spx::OpParams params, py::array weight, py::object bias, spx::Activation activation, double slope)
      : weight_(std::move(weight)), bias_(std::move(bias)), rank_(static_cast<size_t>(weight_.ndim() - 2)) {
    params.kernel = {1, 1, 1};
    for (size_t a = 0; a < rank_; ++a) params.kernel[spx::kMaxRank - rank_ + a] = weight_.shape(static_cast<py::ssize_t>(a + 2));
    for (int64_t k : params.kernel) require(k >= 1, "weight must have a kernel of size >= 1");
    require(params.in_channels >= 0 && params.out_channels >= 0 && params.groups >= 1 &&
                params.in_channels % params.groups == 0,
            "weight does not match groups");
    const bool has_bias = !bias_.is_none();
    if (has_bias) require(py::isinstance<py::array>(bias_), "bias must be an array or None");
    require(is_aligned(weight_) && (!has_bias || is_aligned(bias_.cast<py::array>())),
            "weight and bias must be aligned for their dtype");
    if (make<float>(params, has_bias, activation, slope) || make<double>(params, has_bias, activation, slope)) return;
    throw py::type_error("weight and bias must be C-contiguous float32 or float64 of the same dtype");
  }

  void call(const py::array& x, py::array out, const Ints& pad_begin, int threads) const {
    const spx::OpParams& p = f32_ ? f32_->params() : f64_->params();
    const ArrayDims xd = array_dims(x, rank_, p.channels_last, "x"), yd = array_dims(out, rank_, p.channels_last, "out");
    require(xd.channels == p.in_channels, "x does not have the weight's input channels");
    require(yd.channels == p.out_channels, "out does not have the operation's output channels");
    require(xd.batch == yd.batch, "x and out must have the same batch size");
    for (size_t a = 0; a < spx::kMaxRank; ++a) {
      require(xd.spatial[a] >= 1 && yd.spatial[a] >= 1, "spatial sizes must be >= 1");
      require(yd.spatial[a] % p.factor[a] == 0, "out spatial size must be a multiple of the factor");
    }
    require(!overlaps(out, x) && !overlaps(out, weight_) && (bias_.is_none() || !overlaps(out, bias_.cast<py::array>())),
            "out overlaps an input array");
    require(out.writeable(), "out is read-only");
    require(out.flags() & py::array::c_style, "out must be C-contiguous and native-endian");
    require(is_aligned(out) && is_aligned(x), "x and out must be aligned for their dtype");
    const spx::Extent pad = to_extent(pad_begin, rank_, 0, "pad_begin");
    for (int64_t v : pad) require(v >= 0, "pad_begin must be >= 0");
    const int nt = spx::resolve_threads(threads);
    if (f32_ && has_type<float>(x) && has_type<float>(out)) return run(*f32_, f32_->shape(xd.batch, xd.spatial, yd.spatial, pad), x, out, nt);
    if (f64_ && has_type<double>(x) && has_type<double>(out)) return run(*f64_, f64_->shape(xd.batch, xd.spatial, yd.spatial, pad), x, out, nt);
    throw py::type_error("x and out must be C-contiguous arrays of the weight's dtype");
  }

 private:
  template <typename T>
  bool make(const spx::OpParams& params, bool has_bias, spx::Activation activation, double slope) {
    if (!has_type<T>(weight_) || (has_bias && !has_type<T>(bias_.cast<py::array>()))) return false;
    const T* bias = has_bias ? static_cast<const T*>(bias_.cast<py::array>().data()) : nullptr;
    if (has_bias) require(bias_.cast<py::array>().size() == params.out_channels * spx::volume(params.factor),
                          "bias must have one entry per output channel");
    auto op = std::make_unique<spx::ConvOperator<T>>(params, static_cast<const T*>(weight_.data()), bias,
                                                     spx::Epilogue<T>{activation, static_cast<T>(slope)});
    if constexpr (std::is_same<T, float>::value) f32_ = std::move(op);
    else f64_ = std::move(op);
    return true;
  }

  template <typename T>
  static void run(const spx::ConvOperator<T>& op, const spx::ConvShape& shape, const py::array& x, py::array& out,
                  int threads) {
    const T* xp = static_cast<const T*>(x.data());
    T* yp = static_cast<T*>(out.mutable_data());
    // About a millisecond of work or more can be interrupted with Ctrl-C.
    const double macs = double(out.size()) * double(shape.in_channels / shape.groups) * double(spx::volume(shape.kernel));
    InterruptibleCall interrupt(macs > 2e7);
    {
      py::gil_scoped_release nogil;
      op.run(shape, xp, yp, threads);
    }
    interrupt.raise_if_interrupted();
  }

  py::array weight_;
  py::object bias_;
  size_t rank_;
  std::unique_ptr<spx::ConvOperator<float>> f32_;
  std::unique_ptr<spx::ConvOperator<double>> f64_;
};

spx::OpParams geometry(spx::OpKind kind, size_t rank, const Ints& stride, const Ints& dilation, int64_t groups,
                       bool channels_last) {
  spx::OpParams p;
  p.kind = kind;
  p.stride = to_extent(stride, rank, 1, "stride");
  p.dilation = to_extent(dilation, rank, 1, "dilation");
  for (size_t a = 0; a < spx::kMaxRank; ++a) {
    require(p.stride[a] >= 1 && p.dilation[a] >= 1, "stride and dilation must be >= 1");
  }
  p.groups = groups;
  p.channels_last = channels_last;
  return p;
}

size_t rank_of(const py::array& weight) {
  require(weight.ndim() >= 3 && weight.ndim() <= 5, "weight must be 3-D, 4-D or 5-D");
  return static_cast<size_t>(weight.ndim() - 2);
}

struct Conv : BoundOperator {
  Conv(py::array w, py::object bias, const Ints& stride, const Ints& dilation, int64_t groups, bool channels_last,
       spx::Activation act, double slope)
      : BoundOperator(params(w, stride, dilation, groups, channels_last), w, std::move(bias), act, slope) {}
  static spx::OpParams params(const py::array& w, const Ints& s, const Ints& d, int64_t g, bool cl) {
    spx::OpParams p = geometry(spx::OpKind::kConv, rank_of(w), s, d, g, cl);
    p.in_channels = w.shape(1) * g;
    p.out_channels = w.shape(0);
    require(p.out_channels % g == 0, "groups must divide the output channels");
    return p;
  }
};

struct ConvTranspose : BoundOperator {
  ConvTranspose(py::array w, py::object bias, const Ints& stride, const Ints& dilation, int64_t groups,
                bool channels_last, spx::TransposedMethod method, spx::Activation act, double slope)
      : BoundOperator(params(w, stride, dilation, groups, channels_last, method), w, std::move(bias), act, slope) {}
  static spx::OpParams params(const py::array& w, const Ints& s, const Ints& d, int64_t g, bool cl,
                              spx::TransposedMethod method) {
    spx::OpParams p = geometry(spx::OpKind::kConvTranspose, rank_of(w), s, d, g, cl);
    p.method = method;
    p.in_channels = w.shape(0);
    p.out_channels = w.shape(1) * g;
    return p;
  }
};

struct SubpixelConv : BoundOperator {
  SubpixelConv(py::array w, py::object bias, const Ints& factor, bool dcr, const Ints& stride, const Ints& dilation,
               int64_t groups, bool channels_last, spx::Activation act, double slope)
      : BoundOperator(params(w, factor, dcr, stride, dilation, groups, channels_last), w, std::move(bias), act, slope) {}
  static spx::OpParams params(const py::array& w, const Ints& factor, bool dcr, const Ints& s, const Ints& d,
                              int64_t g, bool cl) {
    spx::OpParams p = Conv::params(w, s, d, g, cl);
    p.kind = spx::OpKind::kSubpixel;
    p.factor = to_extent(factor, rank_of(w), 1, "factor");
    for (int64_t r : p.factor) require(r >= 1, "factor must be >= 1");
    require(p.out_channels % spx::volume(p.factor) == 0, "weight's output channels must be divisible by the factor");
    p.out_channels /= spx::volume(p.factor);
    p.dcr = dcr;
    return p;
  }
};

}  // namespace

void register_conv(py::module_& m) {
  py::enum_<spx::TransposedMethod>(m, "Method", "How a transposed convolution is computed.")
      .value("direct", spx::TransposedMethod::kDirect)
      .value("polyphase", spx::TransposedMethod::kPolyphase);
  py::enum_<spx::Activation>(m, "Activation", "Activation applied in the tiles' store.")
      .value("none", spx::Activation::kNone)
      .value("relu", spx::Activation::kRelu)
      .value("relu6", spx::Activation::kRelu6)
      .value("leaky_relu", spx::Activation::kLeakyRelu)
      .value("tanh", spx::Activation::kTanh)
      .value("sigmoid", spx::Activation::kSigmoid);
  const char* call_doc =
      "Computes into out; pad_begin is the zero padding at the start (conv) or the crop of the full output "
      "(transposed).";
  py::class_<Conv>(m, "Conv", "conv{1,2,3}d.")
      .def(py::init<py::array, py::object, const Ints&, const Ints&, int64_t, bool, spx::Activation, double>(),
           py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("dilation"), py::arg("groups"),
           py::arg("channels_last"), py::arg("activation"), py::arg("negative_slope"))
      .def("__call__", &BoundOperator::call, py::arg("x"), py::arg("out"), py::arg("pad_begin"), py::arg("threads"),
           call_doc);
  py::class_<ConvTranspose>(m, "ConvTranspose",
                                           "conv_transpose{1,2,3}d.")
      .def(py::init<py::array, py::object, const Ints&, const Ints&, int64_t, bool, spx::TransposedMethod,
                    spx::Activation, double>(),
           py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("dilation"), py::arg("groups"), py::arg("channels_last"), py::arg("method"), py::arg("activation"),
           py::arg("negative_slope"))
      .def("__call__", &BoundOperator::call, py::arg("x"), py::arg("out"), py::arg("pad_begin"), py::arg("threads"),
           call_doc);
  py::class_<SubpixelConv>(m, "SubpixelConv", "pixel_shuffle(conv(x)) in one pass.")
      .def(py::init<py::array, py::object, const Ints&, bool, const Ints&, const Ints&, int64_t, bool,
                    spx::Activation, double>(),
           py::arg("weight"), py::arg("bias"), py::arg("factor"), py::arg("dcr"), py::arg("stride"),
           py::arg("dilation"), py::arg("groups"), py::arg("channels_last"),
           py::arg("activation"), py::arg("negative_slope"))
      .def("__call__", &BoundOperator::call, py::arg("x"), py::arg("out"), py::arg("pad_begin"), py::arg("threads"),
           call_doc);
}

}  // namespace spx_bind
