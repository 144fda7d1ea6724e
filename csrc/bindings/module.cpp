// The private extension module `subpixel_ext._core`.
//
// Thin by design: the Python layer validates arguments, resolves dtypes and allocates the
// output. Entry points here take exactly-typed C-contiguous arrays (4-D for convolutions),
// re-check only what memory safety depends on, and release the GIL around native work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <chrono>
#include <string>

#include "../kernels/dispatch.h"
#include "../ops/errors.h"
#include "../ops/ops.h"
#include "../ops/parallel.h"

namespace py = pybind11;

namespace {

using Pair = std::array<int64_t, 2>;

void require(bool ok, const std::string& message) {
  if (!ok) throw py::value_error(message);
}

template <typename T>
bool has_type(const py::array& a) {
  // check_ compares dtypes exactly (byte order included) and requires C order.
  return py::array_t<T, py::array::c_style>::check_(a);
}

spx::Dims dims4(const py::array& a, bool nhwc, const char* name) {
  require(a.ndim() == 4, std::string(name) + " must be 4-D");
  const auto* s = a.shape();
  return nhwc ? spx::Dims{s[0], s[3], s[1], s[2]} : spx::Dims{s[0], s[1], s[2], s[3]};
}

// Shared checks and argument block of the three convolution entry points. `w_out_axis` is the
// weight axis holding output channels (0 for conv2d, 1 for transposed, per group).
spx::ConvArgs conv_args(const py::array& x, const py::array& w, const py::object& bias, py::array y,
                        Pair stride, Pair dilation, Pair pad, int64_t groups, bool nhwc, int threads,
                        int64_t out_channels) {
  spx::ConvArgs a;
  a.x = dims4(x, nhwc, "x");
  a.y = dims4(y, nhwc, "out");
  require(w.ndim() == 4, "weight must be 4-D");
  require(groups >= 1 && a.x.c % groups == 0 && out_channels % groups == 0, "groups must divide the channels");
  require(stride[0] >= 1 && stride[1] >= 1 && dilation[0] >= 1 && dilation[1] >= 1, "stride and dilation must be >= 1");
  require(pad[0] >= 0 && pad[1] >= 0, "padding must be >= 0");
  require(a.x.n == a.y.n, "x and out must have the same batch size");
  require(a.x.h >= 1 && a.x.w >= 1 && a.y.h >= 1 && a.y.w >= 1, "spatial sizes must be >= 1");
  if (!bias.is_none()) {
    const py::array b = bias.cast<py::array>();
    require(b.ndim() == 1 && b.shape(0) == out_channels, "bias must have one entry per output channel");
  }
  a.kh = w.shape(2);
  a.kw = w.shape(3);
  require(a.kh >= 1 && a.kw >= 1, "kernel must be non-empty");
  a.stride_h = stride[0];
  a.stride_w = stride[1];
  a.dilation_h = dilation[0];
  a.dilation_w = dilation[1];
  a.pad_top = pad[0];
  a.pad_left = pad[1];
  a.groups = groups;
  a.nhwc = nhwc;
  a.threads = spx::resolve_threads(threads);
  return a;
}

// Whether two arrays' byte ranges intersect (numpy.may_share_memory's bounds test).
bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

template <typename T>
const T* data_of(const py::object& maybe) {
  return maybe.is_none() ? nullptr : static_cast<const T*>(maybe.cast<py::array>().data());
}

// Calls fn<float> or fn<double> after checking every array has that exact type.
template <class Fn>
void with_dtype(const py::array& x, const py::array& w, const py::object& bias, py::array y, Fn&& fn) {
  auto all_of = [&](auto tag) {
    using T = decltype(tag);
    return has_type<T>(x) && has_type<T>(w) && has_type<T>(y) && y.writeable() &&
           (bias.is_none() || has_type<T>(bias.cast<py::array>()));
  };
  if (all_of(float())) {
    py::gil_scoped_release nogil;
    fn(float());
  } else if (all_of(double())) {
    py::gil_scoped_release nogil;
    fn(double());
  } else {
    throw py::type_error("x, weight, bias and out must all be C-contiguous float32 or all float64 (out writeable)");
  }
}

// One convolution call's parameters, bound once by the Python layer's plan cache so that a
// repeated call converts only its four arrays.
struct ConvCall {
  enum class Kind { kConv2d, kTransposed, kSubpixel };
  Kind kind;
  Pair stride, dilation, pad;
  int64_t groups;
  bool nhwc;
  int threads;
  spx::TransposedMethod method;
  Pair factor;
  bool dcr;

  ConvCall(const std::string& kind_name, Pair stride_, Pair dilation_, Pair pad_begin, int64_t groups_, bool nhwc_,
           int threads_, const std::string& method_name, Pair factor_, bool dcr_)
      : stride(stride_), dilation(dilation_), pad(pad_begin), groups(groups_), nhwc(nhwc_), threads(threads_),
        factor(factor_), dcr(dcr_) {
    if (kind_name == "conv2d") kind = Kind::kConv2d;
    else if (kind_name == "conv_transpose2d") kind = Kind::kTransposed;
    else if (kind_name == "subpixel_conv2d") kind = Kind::kSubpixel;
    else throw py::value_error("unknown convolution kind '" + kind_name + "'");
    require(method_name == "direct" || method_name == "polyphase", "method must be 'direct' or 'polyphase'");
    method = method_name == "direct" ? spx::TransposedMethod::kDirect : spx::TransposedMethod::kPolyphase;
    require(factor[0] >= 1 && factor[1] >= 1, "upscale_factor must be >= 1");
  }

  // Returns true when non-finite weights were left out (transposed convolution only).
  bool operator()(const py::array& x, const py::array& w, const py::object& bias, py::array y) const {
    require(w.ndim() == 4, "weight must be 4-D");
    const int64_t r2 = factor[0] * factor[1];
    // Output channels as counted by the weight (before the shuffle for sub-pixel).
    const int64_t out_channels = kind == Kind::kTransposed ? w.shape(1) * groups : w.shape(0);
    const spx::ConvArgs a = conv_args(x, w, bias, y, stride, dilation, pad, groups, nhwc, threads, out_channels);
    require(!overlaps(y, x) && !overlaps(y, w) && (bias.is_none() || !overlaps(y, bias.cast<py::array>())),
            "out overlaps an input array");
    if (kind == Kind::kTransposed) {
      require(w.shape(0) == a.x.c && out_channels == a.y.c, "weight does not match the channels");
    } else {
      require(w.shape(1) * groups == a.x.c, "weight does not match the input channels");
      require(out_channels == a.y.c * (kind == Kind::kSubpixel ? r2 : 1), "weight does not match the output channels");
      if (kind == Kind::kSubpixel)
        require(a.y.h % factor[0] == 0 && a.y.w % factor[1] == 0, "out spatial size must be a multiple of the factor");
    }
    bool left_out = false;
    with_dtype(x, w, bias, y, [&](auto tag) {
      using T = decltype(tag);
      const T* xp = static_cast<const T*>(x.data());
      const T* wp = static_cast<const T*>(w.data());
      T* yp = static_cast<T*>(y.mutable_data());
      switch (kind) {
        case Kind::kConv2d: spx::conv2d<T>(a, xp, wp, data_of<T>(bias), yp); break;
        case Kind::kTransposed: left_out = spx::conv_transpose2d<T>(a, method, xp, wp, data_of<T>(bias), yp); break;
        case Kind::kSubpixel: spx::subpixel_conv2d<T>(a, factor[0], factor[1], dcr, xp, wp, data_of<T>(bias), yp); break;
      }
    });
    return left_out;
  }
};

size_t element_size_of(const py::array& src, py::array dst) {
  const bool f32 = has_type<float>(src) && has_type<float>(dst), f64 = has_type<double>(src) && has_type<double>(dst);
  if (!(f32 || f64) || !dst.writeable())
    throw py::type_error("src and out must both be C-contiguous float32 or float64 (out writeable)");
  return f32 ? 4 : 8;
}

void pixel_shuffle(const py::array& src, py::array dst, int64_t batch, int64_t channels, int64_t h, int64_t w,
                   Pair factor, bool dcr, bool nhwc, bool to_low, int threads) {
  require(batch >= 0 && channels >= 0 && h >= 0 && w >= 0 && factor[0] >= 1 && factor[1] >= 1, "invalid shuffle sizes");
  int64_t total = batch;
  for (int64_t d : {channels, h, w, factor[0], factor[1]}) total = spx::checked_mul(total, d, "shuffle");
  require(src.size() == total && dst.size() == total, "src/out sizes do not match the shuffle");
  const size_t es = element_size_of(src, dst);
  const spx::ShuffleArgs a{batch, channels, h, w, factor[0], factor[1], dcr, nhwc, to_low, spx::resolve_threads(threads)};
  py::gil_scoped_release nogil;
  spx::pixel_shuffle(a, src.data(), dst.mutable_data(), es);
}

void zero_insert(const py::array& src, py::array dst, Pair stride, int threads) {
  require(stride[0] >= 1 && stride[1] >= 1, "stride must be >= 1");
  require(src.ndim() == 3 && dst.ndim() == 3, "zero_insert takes (batch, h, w) arrays");
  const int64_t b = src.shape(0), h = src.shape(1), w = src.shape(2);
  require(dst.shape(0) == b && dst.shape(1) == spx::checked_mul(h, stride[0], "out") &&
              dst.shape(2) == spx::checked_mul(w, stride[1], "out"),
          "out shape does not match the stride");
  const size_t es = element_size_of(src, dst);
  const int nt = spx::resolve_threads(threads);
  py::gil_scoped_release nogil;
  spx::zero_insert(b, h, w, stride[0], stride[1], src.data(), dst.mutable_data(), es, nt);
}

// Float32 GFLOP/s of a register-only FMA loop on `threads` threads (the machine's peak for the
// SIMD level in use), timed over at least `seconds`.
double fma_peak_gflops(int threads, double seconds) {
  require(threads >= 1 && seconds > 0, "threads must be >= 1 and seconds > 0");
  const spx::KernelTable& k = spx::kernels();
  py::gil_scoped_release nogil;
  const size_t iterations = 1u << 22;
  size_t rounds = 0;
  volatile float sink = 0.f;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    spx::parallel_region(threads, [&](int, int) { sink = sink + k.fma_loop(iterations); });
    ++rounds;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double flops = 2.0 * double(iterations) * double(rounds) * double(threads) *
                       double(k.fma_per_iteration) * double(k.fma_lanes);
  return flops / elapsed * 1e-9;
}

py::dict config() {
  const spx::SimdInfo s = spx::simd_info();
  py::dict d;
  d["version"] = SPX_VERSION;
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  d["compiler"] = std::string("msvc ") + std::to_string(_MSC_VER);
#else
  d["compiler"] = "unknown";
#endif
  d["openmp"] = spx::openmp_enabled();
  d["openmp_version"] = spx::openmp_version();
  d["simd_compiled"] = std::string(s.compiled);
  d["simd_supported"] = std::string(s.supported);
  d["simd_active"] = std::string(s.active);
  d["simd_requested"] = std::string(s.requested);
  d["simd_request_understood"] = s.request_understood;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
  m.doc() = "Native kernels of subpixel_ext (private; use the subpixel_ext package).";
  spx::install_fork_handler();
  py::register_exception<spx::SizeError>(m, "SizeError", PyExc_MemoryError);

  py::class_<ConvCall>(m, "ConvCall",
                       "A convolution's parameters; calling it with (x, weight, bias, out) computes into out. "
                       "pad_begin is the zero padding (conv2d, subpixel_conv2d) or the crop of the full output "
                       "(conv_transpose2d).")
      .def(py::init<const std::string&, Pair, Pair, Pair, int64_t, bool, int, const std::string&, Pair, bool>(),
           py::arg("kind"), py::arg("stride"), py::arg("dilation"), py::arg("pad_begin"), py::arg("groups"),
           py::arg("nhwc"), py::arg("threads"), py::arg("method") = "polyphase", py::arg("factor") = Pair{1, 1},
           py::arg("dcr") = false)
      .def("__call__", &ConvCall::operator(), py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("out"));
  m.def("pixel_shuffle", &pixel_shuffle, py::arg("src"), py::arg("out"), py::arg("batch"), py::arg("channels"),
        py::arg("h"), py::arg("w"), py::arg("factor"), py::arg("dcr"), py::arg("nhwc"), py::arg("to_low"),
        py::arg("threads"));
  m.def("zero_insert", &zero_insert, py::arg("src"), py::arg("out"), py::arg("stride"), py::arg("threads"));
  m.def("get_num_threads", [] { return spx::default_threads(); });
  m.def(
      "set_num_threads",
      [](int n) {
        require(n >= 1, "num_threads must be >= 1");
        spx::set_default_threads(n);
      },
      py::arg("n"));
  m.def("config", &config);
  m.def("fma_peak_gflops", &fma_peak_gflops, py::arg("threads") = 1, py::arg("seconds") = 0.2);
}
