// The convolution operators: one bound class per operation over the shared ConvOperator.
#include <pybind11/stl.h>

#include <algorithm>
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

// Runs op on arrays already checked; the GIL is released unless the call is tiny.
template <typename T>
void run_op(const spx::ConvOperator<T>& op, const spx::ConvShape& shape, const py::array& x, py::array& out,
            int threads) {
  const T* xp = static_cast<const T*>(x.data());
  T* yp = static_cast<T*>(out.mutable_data());
  if (shape.batch == 0 || shape.out_channels == 0) return;  // nothing to compute
  if (op.runs_as_scatter(shape)) return op.run(shape, xp, yp, threads);  // too short to share the GIL
  // About a millisecond of work or more can be interrupted with Ctrl-C.
  const double macs = double(out.size()) * double(shape.in_channels / shape.groups) * double(spx::volume(shape.kernel));
  InterruptibleCall interrupt(macs > 2e7);
  {
    py::gil_scoped_release nogil;
    op.run(shape, xp, yp, threads);
  }
  interrupt.raise_if_interrupted();
}

// Holds the weight and bias arrays (the operator reads them in place) and the operator.
class BoundOperator {
 public:
  BoundOperator(spx::OpParams params, py::array weight, py::object bias, spx::Activation activation, double slope)
      : weight_(std::move(weight)), bias_(std::move(bias)), rank_(static_cast<size_t>(weight_.ndim() - 2)),
        activation_(activation), slope_(slope) {
    params.kernel = {1, 1, 1};
    for (size_t a = 0; a < rank_; ++a) params.kernel[spx::kMaxRank - rank_ + a] = weight_.shape(static_cast<py::ssize_t>(a + 2));
    for (int64_t k : params.kernel) require(k >= 1, "weight must have a kernel of size >= 1");
    require(params.in_channels >= 0 && params.out_channels >= 0 && params.groups >= 1 &&
                params.in_channels % params.groups == 0,
            "weight does not match groups");
    const bool has_bias = !bias_.is_none();
    if (has_bias) require(py::isinstance<py::array>(bias_), "bias must be an array or None");
    if (make<float>(params, has_bias, activation, slope) || make<double>(params, has_bias, activation, slope) ||
        make<spx::Float16>(params, has_bias, activation, slope) || make<spx::BFloat16>(params, has_bias, activation, slope))
      return;
    throw py::type_error(
        "weight and bias must be C-contiguous, aligned float16, bfloat16, float32 or float64 of the same dtype");
  }

  void call(const py::array& x, py::array out, const Ints& pad_begin, int threads) const {
    const spx::ConvShape shape = checked_shape(array_dims(x, rank_, channels_last(), "x"),
                                               array_dims(out, rank_, channels_last(), "out"), pad_begin);
    require(!overlaps(out, x) && !overlaps_inputs(out), "out overlaps an input array");
    require(out.writeable(), "out is read-only");
    require(out.flags() & py::array::c_style, "out must be C-contiguous and native-endian");
    if (!run_typed(shape, x, out, threads)) throw py::type_error("x and out must be C-contiguous, aligned arrays of the weight's dtype");
  }

  // The engine shape of a call with arrays of these shapes (batched or not), validated.
  spx::ConvShape bind(const std::vector<py::ssize_t>& x_shape, const std::vector<py::ssize_t>& out_shape,
                      const Ints& pad_begin) const {
    return checked_shape(shape_dims(x_shape, "x"), shape_dims(out_shape, "out"), pad_begin);
  }

  // fn(operator) with the operator of the weight's dtype.
  template <class Fn>
  decltype(auto) with_operator(Fn&& fn) const {
    if (f32_) return fn(*f32_);
    if (f64_) return fn(*f64_);
    if (f16_) return fn(*f16_);
    return fn(*bf16_);
  }
  bool channels_last() const { return params().channels_last; }
  py::dtype dtype() const { return weight_.dtype(); }
  const spx::OpParams& params() const {
    return with_operator([](const auto& op) -> const spx::OpParams& { return op.params(); });
  }
  spx::Activation activation() const { return activation_; }
  double negative_slope() const { return slope_; }
  std::vector<py::ssize_t> weight_shape() const { return {weight_.shape(), weight_.shape() + weight_.ndim()}; }
  std::vector<py::ssize_t> bias_shape() const {
    if (bias_.is_none()) return {};
    const auto b = bias_.cast<py::array>();
    return {b.shape(), b.shape() + b.ndim()};
  }
  bool overlaps_inputs(const py::array& out) const {
    return overlaps(out, weight_) || (!bias_.is_none() && overlaps(out, bias_.cast<py::array>()));
  }
  // A new result array of the operator's dtype.
  py::array new_array(const std::vector<py::ssize_t>& shape) const { return py::array(weight_.dtype(), shape); }
  // Runs when x and out have the operator's dtype (and C order); false otherwise.
  bool run_typed(const spx::ConvShape& shape, const py::array& x, py::array& out, int threads) const {
    const int nt = spx::resolve_threads(threads);
    if (f32_ && has_type<float>(x) && has_type<float>(out)) return run_op(*f32_, shape, x, out, nt), true;
    if (f64_ && has_type<double>(x) && has_type<double>(out)) return run_op(*f64_, shape, x, out, nt), true;
    if (f16_ && has_type<spx::Float16>(x) && has_type<spx::Float16>(out)) return run_op(*f16_, shape, x, out, nt), true;
    if (bf16_ && has_type<spx::BFloat16>(x) && has_type<spx::BFloat16>(out)) return run_op(*bf16_, shape, x, out, nt), true;
    return false;
  }

 private:
  ArrayDims shape_dims(std::vector<py::ssize_t> shape, const char* name) const {
    if (shape.size() == rank_ + 1) shape.insert(shape.begin(), 1);  // unbatched: one batch of C-order data
    require_named(shape.size() == rank_ + 2, name, "must have rank + 2 dimensions");
    return dims_of_shape(shape.data(), rank_, channels_last());
  }
  spx::ConvShape checked_shape(const ArrayDims& xd, const ArrayDims& yd, const Ints& pad_begin) const {
    const spx::OpParams& p = params();
    require(xd.channels == p.in_channels, "x does not have the weight's input channels");
    require(yd.channels == p.out_channels, "out does not have the operation's output channels");
    require(xd.batch == yd.batch, "x and out must have the same batch size");
    for (size_t a = 0; a < spx::kMaxRank; ++a) {
      require(xd.spatial[a] >= 1 && yd.spatial[a] >= 1, "spatial sizes must be >= 1");
      require(yd.spatial[a] % p.factor[a] == 0, "out spatial size must be a multiple of the factor");
    }
    const spx::Extent pad = to_extent(pad_begin, rank_, 0, "pad_begin");
    for (int64_t v : pad) require(v >= 0, "pad_begin must be >= 0");
    return with_operator([&](const auto& op) { return op.shape(xd.batch, xd.spatial, yd.spatial, pad); });
  }


  template <typename T>
  bool make(const spx::OpParams& params, bool has_bias, spx::Activation activation, double slope) {
    if (!has_type<T>(weight_) || (has_bias && !has_type<T>(bias_.cast<py::array>()))) return false;
    const T* bias = has_bias ? static_cast<const T*>(bias_.cast<py::array>().data()) : nullptr;
    if (has_bias) require(bias_.cast<py::array>().size() == params.out_channels * spx::volume(params.factor),
                          "bias must have one entry per output channel");
    typedef spx::compute_t<T> C;
    auto op = std::make_unique<spx::ConvOperator<T>>(params, static_cast<const T*>(weight_.data()), bias,
                                                     spx::Epilogue<C>{activation, static_cast<C>(slope)});
    if constexpr (std::is_same<T, float>::value) f32_ = std::move(op);
    else if constexpr (std::is_same<T, double>::value) f64_ = std::move(op);
    else if constexpr (std::is_same<T, spx::Float16>::value) f16_ = std::move(op);
    else bf16_ = std::move(op);
    return true;
  }

  py::array weight_;
  py::object bias_;
  size_t rank_;
  spx::Activation activation_;
  double slope_;
  std::unique_ptr<spx::ConvOperator<float>> f32_;
  std::unique_ptr<spx::ConvOperator<double>> f64_;
  std::unique_ptr<spx::ConvOperator<spx::Float16>> f16_;
  std::unique_ptr<spx::ConvOperator<spx::BFloat16>> bf16_;
};

bool is_exact_ndarray(const py::handle& h) {
  return Py_TYPE(h.ptr()) == reinterpret_cast<PyTypeObject*>(py::detail::npy_api::get().PyArray_Type_);
}

// An exact numpy.ndarray of this shape (a subclass or anything else takes the general path).
bool is_array_of_shape(const py::handle& h, const std::vector<py::ssize_t>& shape) {
  if (!is_exact_ndarray(h)) return false;
  const auto a = py::reinterpret_borrow<py::array>(h);
  return a.ndim() == static_cast<py::ssize_t>(shape.size()) && std::equal(shape.begin(), shape.end(), a.shape());
}

// A call for one input shape, validated once. A repeated call only checks that it is given
// arrays of exactly those shapes and of the operator's dtype; for anything else it declines
// (returns None) and the caller takes the general path, which converts or explains.
class ShapedCall {
 protected:
  ShapedCall(const BoundOperator& op, std::vector<py::ssize_t> x_shape, std::vector<py::ssize_t> out_shape,
             const Ints& pad_begin)
      : shape_(op.bind(x_shape, out_shape, pad_begin)), x_shape_(std::move(x_shape)),
        out_shape_(std::move(out_shape)), dtype_(op.dtype()) {}

  // The result: a new array, `out` when it can be written as it is, or None to decline.
  py::object result(const py::handle& x, const py::handle& out) const {
    if (!is_array_of_shape(x, x_shape_)) return py::none();
    if (out.is_none()) return py::array(dtype_, out_shape_);
    if (!is_array_of_shape(out, out_shape_) || !py::reinterpret_borrow<py::array>(out).writeable()) return py::none();
    require(!overlaps(py::reinterpret_borrow<py::array>(out), py::reinterpret_borrow<py::array>(x)),
            "out overlaps an input array");
    return py::reinterpret_borrow<py::object>(out);
  }

  spx::ConvShape shape_;
  std::vector<py::ssize_t> x_shape_, out_shape_;
  py::dtype dtype_;  // the operator's (and result's)
};

// A layer's call: the layer's operator (its packed weights cached) bound to one input shape.
class BoundCall : ShapedCall {
 public:
  BoundCall(py::object owner, const BoundOperator& op, std::vector<py::ssize_t> x_shape,
            std::vector<py::ssize_t> out_shape, const Ints& pad_begin)
      : ShapedCall(op, std::move(x_shape), std::move(out_shape), pad_begin), owner_(std::move(owner)), op_(op) {}

  py::object call(const py::handle& x, const py::handle& out, int threads) const {
    py::object y = result(x, out);
    if (y.is_none()) return y;
    auto ya = py::reinterpret_borrow<py::array>(y);
    require(!op_.overlaps_inputs(ya), "out overlaps an input array");
    if (!op_.run_typed(shape_, py::reinterpret_borrow<py::array>(x), ya, threads)) return py::none();
    return y;
  }

 private:
  py::object owner_;  // keeps op_ (and the weights it reads) alive
  const BoundOperator& op_;
};

// A functional call: the operator's parameters (not its weights) bound to one input shape;
// each call brings its own weights, read in place by an operator made for that call.
class FunctionalCall : ShapedCall {
 public:
  FunctionalCall(const BoundOperator& op, std::vector<py::ssize_t> x_shape, std::vector<py::ssize_t> out_shape,
                 const Ints& pad_begin)
      : ShapedCall(op, std::move(x_shape), std::move(out_shape), pad_begin), params_(op.params()),
        activation_(op.activation()), slope_(op.negative_slope()), weight_shape_(op.weight_shape()),
        bias_shape_(op.bias_shape()) {}

  py::object call(const py::handle& x, const py::handle& weight, const py::handle& bias, const py::handle& out,
                  int threads) const {
    if (!is_array_of_shape(weight, weight_shape_) || bias.is_none() != bias_shape_.empty()) return py::none();
    if (!bias.is_none() && !is_array_of_shape(bias, bias_shape_)) return py::none();
    py::object y = result(x, out);
    if (y.is_none()) return y;
    auto ya = py::reinterpret_borrow<py::array>(y);
    const auto w = py::reinterpret_borrow<py::array>(weight);
    require(!overlaps(ya, w) && (bias.is_none() || !overlaps(ya, py::reinterpret_borrow<py::array>(bias))),
            "out overlaps an input array");
    const bool ran = run_with<float>(x, w, bias, ya, threads) || run_with<double>(x, w, bias, ya, threads) ||
                     run_with<spx::Float16>(x, w, bias, ya, threads) || run_with<spx::BFloat16>(x, w, bias, ya, threads);
    return ran ? y : py::none();
  }

 private:
  template <typename T>
  bool run_with(const py::handle& x, const py::array& w, const py::handle& bias, py::array& y, int threads) const {
    const auto xa = py::reinterpret_borrow<py::array>(x);
    if (!has_type<T>(xa) || !has_type<T>(w) || !has_type<T>(y)) return false;
    if (!bias.is_none() && !has_type<T>(py::reinterpret_borrow<py::array>(bias))) return false;
    const T* b = bias.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(bias).data());
    typedef spx::compute_t<T> C;
    const spx::ConvOperator<T> op(params_, static_cast<const T*>(w.data()), b,
                                  spx::Epilogue<C>{activation_, static_cast<C>(slope_)});
    run_op(op, shape_, xa, y, spx::resolve_threads(threads));
    return true;
  }

  spx::OpParams params_;
  spx::Activation activation_;
  double slope_;
  std::vector<py::ssize_t> weight_shape_, bias_shape_;  // bias_shape_ empty: no bias
};

template <class Op>
void def_call_methods(py::class_<Op>& cls, const char* call_doc) {
  cls.def("__call__", &BoundOperator::call, py::arg("x"), py::arg("out"), py::arg("pad_begin"), py::arg("threads"),
          call_doc)
      .def(
          "bind",
          [](py::object self, std::vector<py::ssize_t> x_shape, std::vector<py::ssize_t> out_shape,
             const Ints& pad_begin) {
            const Op& op = self.cast<const Op&>();
            return BoundCall(std::move(self), op, std::move(x_shape), std::move(out_shape), pad_begin);
          },
          py::arg("x_shape"), py::arg("out_shape"), py::arg("pad_begin"),
          "The call for arrays of these shapes (batched or not), validated once: __call__(x, out, threads) "
          "computes, or returns None for arrays it does not take as they are.")
      .def(
          "functional",
          [](const Op& op, std::vector<py::ssize_t> x_shape, std::vector<py::ssize_t> out_shape,
             const Ints& pad_begin) { return FunctionalCall(op, std::move(x_shape), std::move(out_shape), pad_begin); },
          py::arg("x_shape"), py::arg("out_shape"), py::arg("pad_begin"),
          "As bind, without the weights: __call__(x, weight, bias, out, threads) computes with the weights it is "
          "given (of this operator's shapes), or returns None.");
}

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
  py::class_<BoundCall>(m, "BoundCall", "A layer's call for one input shape (see bind).")
      .def("__call__", &BoundCall::call, py::arg("x"), py::arg("out"), py::arg("threads"));
  py::class_<FunctionalCall>(m, "FunctionalCall", "A functional call for one input shape (see functional).")
      .def("__call__", &FunctionalCall::call, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("out"),
           py::arg("threads"));
  py::class_<Conv> conv(m, "Conv", "conv{1,2,3}d.");
  conv.def(py::init<py::array, py::object, const Ints&, const Ints&, int64_t, bool, spx::Activation, double>(),
           py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("dilation"), py::arg("groups"),
           py::arg("channels_last"), py::arg("activation"), py::arg("negative_slope"));
  def_call_methods(conv, call_doc);
  py::class_<ConvTranspose> conv_transpose(m, "ConvTranspose", "conv_transpose{1,2,3}d.");
  conv_transpose.def(py::init<py::array, py::object, const Ints&, const Ints&, int64_t, bool, spx::TransposedMethod,
                              spx::Activation, double>(),
                     py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("dilation"), py::arg("groups"),
                     py::arg("channels_last"), py::arg("method"), py::arg("activation"), py::arg("negative_slope"));
  def_call_methods(conv_transpose, call_doc);
  py::class_<SubpixelConv> subpixel(m, "SubpixelConv", "pixel_shuffle(conv(x)) in one pass.");
  subpixel.def(py::init<py::array, py::object, const Ints&, bool, const Ints&, const Ints&, int64_t, bool,
                        spx::Activation, double>(),
               py::arg("weight"), py::arg("bias"), py::arg("factor"), py::arg("dcr"), py::arg("stride"),
               py::arg("dilation"), py::arg("groups"), py::arg("channels_last"), py::arg("activation"),
               py::arg("negative_slope"));
  def_call_methods(subpixel, call_doc);
}

}  // namespace spx_bind
