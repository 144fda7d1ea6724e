// Runs the registered test cases whose name starts with the first argument (all without one).
//   spx_engine_tests [prefix]      exit status 1 when a check failed
//   spx_engine_tests --supported-simd   prints the SIMD levels this build and CPU can run
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../../csrc/kernels/dispatch.h"
#include "check.h"

namespace {

// A run asked for a level (SUBPIXEL_EXT_SIMD) must really use it, or the run tests nothing new.
bool simd_request_honoured() {
  const spx::SimdInfo s = spx::simd_info();
  std::cout << "simd: active " << s.active << " (requested '" << s.requested << "', supported " << s.supported
            << ")\n";
  const std::string requested = s.requested, supported = std::string(",") + s.supported + ",";
  if (requested.empty() || supported.find("," + requested + ",") == std::string::npos) return true;
  if (requested == s.active) return true;
  std::cerr << "SUBPIXEL_EXT_SIMD=" << requested << " is supported but " << s.active << " is active\n";
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--supported-simd") == 0) {
    std::cout << spx::simd_info().supported << "\n";
    return 0;
  }
  const std::string prefix = argc > 1 ? argv[1] : "";
  int failed = simd_request_honoured() ? 0 : 1, ran = 0;
  for (const spx_test::TestCase& t : spx_test::registry()) {
    if (t.name.compare(0, prefix.size(), prefix) != 0) continue;
    const auto start = std::chrono::steady_clock::now();
    spx_test::failures() = 0;
    t.run();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ++ran;
    const int f = spx_test::failures();
    std::cout << (f ? "FAIL " : "ok   ") << t.name << " (" << static_cast<int>(ms) << " ms)";
    if (f) std::cout << ": " << f << " failed checks";
    std::cout << "\n";
    failed += f ? 1 : 0;
  }
  std::cout << ran << " test cases, " << failed << " failed\n";
  return failed || ran == 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
