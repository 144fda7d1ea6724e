// Threads, SIMD levels, the build's facts and the machine's FMA peak.
#include <chrono>
#include <string>

#include "../kernels/dispatch.h"
#include "../ops/parallel.h"
#include "common.h"
#include "register.h"

namespace spx_bind {
namespace {

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
  const double flops = 2.0 * double(iterations) * double(rounds) * double(threads) * double(k.fma_per_iteration) *
                       double(k.fma_lanes);
  return flops / elapsed * 1e-9;
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  return std::string("msvc ") + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

py::dict config() {
  const spx::SimdInfo s = spx::simd_info();
  py::dict d;
  d["version"] = SPX_VERSION;
  d["compiler"] = compiler();
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

void register_config(py::module_& m) {
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

}  // namespace spx_bind
