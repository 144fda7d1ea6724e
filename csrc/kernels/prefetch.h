// A hint to fetch the cache line at p into the L1 cache ahead of its use (no-op where the
// compiler has no such builtin).
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define SPX_PREFETCH(p) __builtin_prefetch(p)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define SPX_PREFETCH(p) _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0)
#else
#define SPX_PREFETCH(p)
#endif
