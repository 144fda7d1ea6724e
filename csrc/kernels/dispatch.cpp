#include "dispatch.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#endif

namespace spx {
namespace {

struct Level {
  const char* name;
  const KernelTable* (*table)();
  bool (*cpu_has)();
};

bool always() { return true; }

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#if defined(_MSC_VER) && !defined(__clang__)
// cpuid bits plus the OS having enabled the register state (xgetbv). The AVX2 unit also
// converts float16 with F16C, so that level needs it too.
bool cpu_has_avx2() {
  int r[4];
  __cpuid(r, 1);
  const bool fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, f16c = (r[2] >> 29) & 1;
  if (!(fma && osxsave && avx && f16c)) return false;
  if ((_xgetbv(0) & 0x6) != 0x6) return false;
  __cpuidex(r, 7, 0);
  return (r[1] >> 5) & 1;
}
bool cpu_has_avx512() {
  if (!cpu_has_avx2()) return false;
  int r[4];
  __cpuidex(r, 7, 0);
  return ((r[1] >> 16) & 1) && (_xgetbv(0) & 0xE6) == 0xE6;
}
#else
// GCC and Clang check both the cpuid bits and the OS-enabled register state. The AVX2 unit
// also converts float16 with F16C, so that level needs it too.
bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
bool cpu_has_avx512() { return cpu_has_avx2() && __builtin_cpu_supports("avx512f"); }
#endif
#endif

// Ordered from baseline to best; only the levels this build compiled.
const Level kLevels[] = {
#if defined(SPX_HAVE_SSE2)
    {"baseline", kernel_table_sse2, always},
#elif defined(SPX_HAVE_NEON)
    {"baseline", kernel_table_neon, always},
#else
    {"baseline", kernel_table_scalar, always},
#endif
#if defined(SPX_HAVE_AVX2)
    {"avx2", kernel_table_avx2, cpu_has_avx2},
#endif
#if defined(SPX_HAVE_AVX512)
    {"avx512", kernel_table_avx512, cpu_has_avx512},
#endif
};
const int kLevelCount = sizeof(kLevels) / sizeof(kLevels[0]);

struct Selection {
  const KernelTable* table;
  const char* active;
  std::string compiled, supported, requested;
  bool understood;

  Selection() : table(nullptr), active(nullptr), understood(true) {
    const char* env = std::getenv("SUBPIXEL_EXT_SIMD");
    requested = env ? env : "";
    std::string level = requested;  // compared in lower case, reported as given
    for (char& c : level) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    int cap = kLevelCount - 1;
    if (!level.empty() && level != "auto") {
      // Known names beyond what was compiled clamp to the best compiled level.
      static const char* const known[] = {"baseline", "avx2", "avx512"};
      int rank = -1;
      for (int i = 0; i < 3; ++i)
        if (level == known[i]) rank = i;
      if (rank < 0) {
        understood = false;
      } else {
        cap = 0;
        for (int i = 0; i < kLevelCount; ++i)
          for (int r = 0; r <= rank; ++r)
            if (std::strcmp(kLevels[i].name, known[r]) == 0) cap = i;
      }
    }
    for (int i = 0; i < kLevelCount; ++i) {
      compiled += (i ? "," : "");
      compiled += kLevels[i].name;
      if (kLevels[i].cpu_has()) {
        supported += (supported.empty() ? "" : ",");
        supported += kLevels[i].name;
        if (i <= cap) {
          table = kLevels[i].table();
          active = kLevels[i].name;
        }
      }
    }
  }
};

const Selection& selection() {
  static const Selection s;
  return s;
}

}  // namespace

const KernelTable& kernels() { return *selection().table; }

SimdInfo simd_info() {
  const Selection& s = selection();
  return {s.active, s.compiled.c_str(), s.supported.c_str(), s.requested.c_str(), s.understood};
}

}  // namespace spx
