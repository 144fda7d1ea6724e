// Interleaving rows: hi[x*rw + j] = lo[j][x] (and back), the data movement of a pixel shuffle
// along one axis. A compile-time factor lets the compiler turn it into vector shuffles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define SPX_STREAMING_STORES 1
#endif

namespace spx {

// Convolution outputs at least this large leave the engine's interleaved rows through
// non-temporal stores when the rows are at least kStreamingRowBytes long: they would not
// stay in cache anyway, and such stores skip reading each line before overwriting it (image_1ch's
// 16 MiB in 2 KiB rows: 1.5x faster). Shorter rows keep plain stores: nnunet_up3d channels
// first (32 MiB in 256-byte rows) ran 1.5x slower streamed, and so did the pixel shuffle.
constexpr int64_t kStreamingBytes = int64_t(8) << 20, kStreamingRowBytes = 1024;

// dst[0, n) = src[0, n) through non-temporal stores (plain ones for the unaligned ends); a
// streaming_fence() must follow before anything else reads or writes dst.
template <typename E>
void stream_copy(E* dst, const E* src, int64_t n) {
  const size_t bytes = sizeof(E) * static_cast<size_t>(n);
#if defined(SPX_STREAMING_STORES)
  char* d = reinterpret_cast<char*>(dst);
  const char* s = reinterpret_cast<const char*>(src);
  const size_t head = std::min(bytes, (16 - reinterpret_cast<uintptr_t>(d) % 16) % 16);
  std::memcpy(d, s, head);
  size_t i = head;
  for (; i + 16 <= bytes; i += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
  std::memcpy(d + i, s + i, bytes - i);
#else
  std::memcpy(dst, src, bytes);
#endif
}

inline void streaming_fence() {
#if defined(SPX_STREAMING_STORES)
  _mm_sfence();
#endif
}

template <typename E, int RW>
void interleave_fixed(E* hi, E* const* lo, int64_t w, bool to_low) {
  if (to_low) {
    for (int64_t x = 0; x < w; ++x)
      for (int j = 0; j < RW; ++j) lo[j][x] = hi[x * RW + j];
  } else {
    for (int64_t x = 0; x < w; ++x)
      for (int j = 0; j < RW; ++j) hi[x * RW + j] = lo[j][x];
  }
}

// Moves `w` groups of `rw` elements between one interleaved row and rw separate rows.
template <typename E>
void interleave_rows(E* hi, E* const* lo, int64_t w, int64_t rw, bool to_low) {
  switch (rw) {
    case 1:
      if (to_low)
        std::memcpy(lo[0], hi, sizeof(E) * static_cast<size_t>(w));
      else
        std::memcpy(hi, lo[0], sizeof(E) * static_cast<size_t>(w));
      return;
    case 2: return interleave_fixed<E, 2>(hi, lo, w, to_low);
    case 3: return interleave_fixed<E, 3>(hi, lo, w, to_low);
    case 4: return interleave_fixed<E, 4>(hi, lo, w, to_low);
    default:
      for (int64_t j = 0; j < rw; ++j)
        for (int64_t x = 0; x < w; ++x) {
          if (to_low)
            lo[j][x] = hi[x * rw + j];
          else
            hi[x * rw + j] = lo[j][x];
        }
  }
}

// interleave_rows(hi, lo, w, rw, false) with hi written by non-temporal stores: a chunk at a
// time interleaved in a buffer that stays in the L1 cache, then streamed out. The caller
// fences once after all its rows (a fence per row would wait for each row to reach memory).
template <typename E>
void interleave_rows_streaming(E* hi, E* const* lo, int64_t w, int64_t rw) {
  constexpr int64_t kChunkBytes = 4096, kMaxFactor = 16;
  if (rw > kMaxFactor || rw * int64_t(sizeof(E)) > kChunkBytes) return interleave_rows(hi, lo, w, rw, false);
  alignas(16) E chunk[kChunkBytes / sizeof(E)];
  E* rows[kMaxFactor];
  const int64_t groups = kChunkBytes / int64_t(sizeof(E)) / rw;
  for (int64_t x0 = 0; x0 < w; x0 += groups) {
    const int64_t m = std::min(groups, w - x0);
    for (int64_t j = 0; j < rw; ++j) rows[j] = lo[j] + x0;
    interleave_rows(chunk, rows, m, rw, false);
    stream_copy(hi + x0 * rw, chunk, m * rw);
  }
}

}  // namespace spx
