// Interleaving rows: hi[x*rw + j] = lo[j][x] (and back), the data movement of a pixel shuffle
// along one axis. A compile-time factor lets the compiler turn it into vector shuffles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define SPX_SSE2 1
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
#if defined(SPX_SSE2)
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
#if defined(SPX_SSE2)
  _mm_sfence();
#endif
}

template <typename E, int RW>
void interleave_fixed_scalar(E* hi, E* const* lo, int64_t w, bool to_low) {
  if (to_low) {
    for (int64_t x = 0; x < w; ++x)
      for (int j = 0; j < RW; ++j) lo[j][x] = hi[x * RW + j];
  } else {
    for (int64_t x = 0; x < w; ++x)
      for (int j = 0; j < RW; ++j) hi[x * RW + j] = lo[j][x];
  }
}

#if defined(SPX_SSE2)
// 16 bytes of 1-, 2-, 4- or 8-byte elements: the low / high halves of a and b interleaved,
// and back (even / odd elements of the 32 bytes lo:hi). Bits are moved, never converted.
template <size_t Bytes, bool High>
inline __m128i unpack(__m128i a, __m128i b) {
  if constexpr (Bytes == 1) return High ? _mm_unpackhi_epi8(a, b) : _mm_unpacklo_epi8(a, b);
  else if constexpr (Bytes == 2) return High ? _mm_unpackhi_epi16(a, b) : _mm_unpacklo_epi16(a, b);
  else if constexpr (Bytes == 4) return High ? _mm_unpackhi_epi32(a, b) : _mm_unpacklo_epi32(a, b);
  else return High ? _mm_unpackhi_epi64(a, b) : _mm_unpacklo_epi64(a, b);
}
template <size_t Bytes>
inline void split_even_odd(__m128i lo, __m128i hi, __m128i* even, __m128i* odd) {
  if constexpr (Bytes == 1) {  // narrow the 16-bit pairs: their low bytes, then their high bytes
    const __m128i low_bytes = _mm_set1_epi16(0x00FF);
    *even = _mm_packus_epi16(_mm_and_si128(lo, low_bytes), _mm_and_si128(hi, low_bytes));
    *odd = _mm_packus_epi16(_mm_srli_epi16(lo, 8), _mm_srli_epi16(hi, 8));
  } else if constexpr (Bytes == 2) {  // sign-extended halves narrow back exactly
    *even = _mm_packs_epi32(_mm_srai_epi32(_mm_slli_epi32(lo, 16), 16), _mm_srai_epi32(_mm_slli_epi32(hi, 16), 16));
    *odd = _mm_packs_epi32(_mm_srai_epi32(lo, 16), _mm_srai_epi32(hi, 16));
  } else if constexpr (Bytes == 4) {
    const __m128 l = _mm_castsi128_ps(lo), h = _mm_castsi128_ps(hi);
    *even = _mm_castps_si128(_mm_shuffle_ps(l, h, _MM_SHUFFLE(2, 0, 2, 0)));
    *odd = _mm_castps_si128(_mm_shuffle_ps(l, h, _MM_SHUFFLE(3, 1, 3, 1)));
  } else {
    *even = unpack<8, false>(lo, hi);
    *odd = unpack<8, true>(lo, hi);
  }
}

inline __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline void store16(void* p, __m128i v) { _mm_storeu_si128(static_cast<__m128i*>(p), v); }

// interleave_fixed for RW = 2 or 4, 16 bytes of each row at a time; returns the groups done.
// Streamed: hi is 16-byte aligned and written by non-temporal stores.
template <typename E, int RW, bool Streamed = false>
int64_t interleave_vectors(E* hi, E* const* lo, int64_t w, bool to_low) {
  constexpr int64_t V = 16 / sizeof(E);
  constexpr size_t B = sizeof(E);
  auto put = [](E* p, __m128i v) {
    if constexpr (Streamed) _mm_stream_si128(reinterpret_cast<__m128i*>(p), v);
    else store16(p, v);
  };
  int64_t x = 0;
  for (; x + V <= w; x += V) {
    E* h = hi + x * RW;
    if constexpr (RW == 2) {
      if (to_low) {
        __m128i a, b;
        split_even_odd<B>(load16(h), load16(h + V), &a, &b);
        store16(lo[0] + x, a), store16(lo[1] + x, b);
      } else {
        const __m128i a = load16(lo[0] + x), b = load16(lo[1] + x);
        put(h, unpack<B, false>(a, b)), put(h + V, unpack<B, true>(a, b));
      }
    } else if (to_low) {  // even elements are rows 0 and 2 interleaved, odd ones rows 1 and 3
      __m128i e0, o0, e1, o1, r[4];
      split_even_odd<B>(load16(h), load16(h + V), &e0, &o0);
      split_even_odd<B>(load16(h + 2 * V), load16(h + 3 * V), &e1, &o1);
      split_even_odd<B>(e0, e1, &r[0], &r[2]);
      split_even_odd<B>(o0, o1, &r[1], &r[3]);
      for (int j = 0; j < 4; ++j) store16(lo[j] + x, r[j]);
    } else {
      const __m128i a = load16(lo[0] + x), b = load16(lo[1] + x), c = load16(lo[2] + x), d = load16(lo[3] + x);
      const __m128i ac0 = unpack<B, false>(a, c), ac1 = unpack<B, true>(a, c);
      const __m128i bd0 = unpack<B, false>(b, d), bd1 = unpack<B, true>(b, d);
      put(h, unpack<B, false>(ac0, bd0)), put(h + V, unpack<B, true>(ac0, bd0));
      put(h + 2 * V, unpack<B, false>(ac1, bd1)), put(h + 3 * V, unpack<B, true>(ac1, bd1));
    }
  }
  return x;
}

// lo[j][x] = hi[x*rw + j] for 4-byte elements and the rows j < rw rounded down to a multiple of
// 4 (returned): 4x4 blocks transposed in registers, four rows and four groups at a time.
template <typename E>
int64_t deinterleave_blocks_of_4(const E* hi, E* const* lo, int64_t w, int64_t rw) {
  static_assert(sizeof(E) == 4, "4x4 blocks of 4-byte elements");
  int64_t j = 0;
  for (; j + 4 <= rw; j += 4) {
    int64_t x = 0;
    for (; x + 4 <= w; x += 4) {
      const E* h = hi + x * rw + j;
      const __m128i r0 = load16(h), r1 = load16(h + rw), r2 = load16(h + 2 * rw), r3 = load16(h + 3 * rw);
      const __m128i a0 = unpack<4, false>(r0, r1), a1 = unpack<4, true>(r0, r1);
      const __m128i b0 = unpack<4, false>(r2, r3), b1 = unpack<4, true>(r2, r3);
      store16(lo[j] + x, unpack<8, false>(a0, b0)), store16(lo[j + 1] + x, unpack<8, true>(a0, b0));
      store16(lo[j + 2] + x, unpack<8, false>(a1, b1)), store16(lo[j + 3] + x, unpack<8, true>(a1, b1));
    }
    for (; x < w; ++x)
      for (int64_t l = 0; l < 4; ++l) lo[j + l][x] = hi[x * rw + j + l];
  }
  return j;
}
#endif

// Factors above this are channel counts (a channels-last tensor read as channels first), not
// shuffle factors or column phases: their 4-byte de-interleave goes by 4x4 register blocks.
constexpr int64_t kMaxScalarFactor = 16;

template <typename E, int RW>
constexpr bool has_vector_interleave() {
#if defined(SPX_SSE2)
  return (RW == 2 || RW == 4) && (sizeof(E) == 1 || sizeof(E) == 2 || sizeof(E) == 4 || sizeof(E) == 8);
#else
  return false;
#endif
}

template <typename E, int RW, bool Streamed = false>
void interleave_fixed(E* hi, E* const* lo, int64_t w, bool to_low) {
#if defined(SPX_SSE2)
  if constexpr (has_vector_interleave<E, RW>()) {
    const int64_t done = interleave_vectors<E, RW, Streamed>(hi, lo, w, to_low);
    E* rest[RW];
    for (int j = 0; j < RW; ++j) rest[j] = lo[j] + done;
    return interleave_fixed_scalar<E, RW>(hi + done * RW, rest, w - done, to_low);
  }
#endif
  interleave_fixed_scalar<E, RW>(hi, lo, w, to_low);
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
    default: {
      int64_t j = 0;
#if defined(SPX_SSE2)
      if constexpr (sizeof(E) == 4)
        if (to_low && rw > kMaxScalarFactor) j = deinterleave_blocks_of_4(hi, lo, w, rw);
#endif
      for (; j < rw; ++j)
        for (int64_t x = 0; x < w; ++x) {
          if (to_low)
            lo[j][x] = hi[x * rw + j];
          else
            hi[x * rw + j] = lo[j][x];
        }
    }
  }
}

// lo[j][x] = hi[x*rw + j]: interleave_rows in the reading direction, which leaves hi as it is.
template <typename E>
void deinterleave_rows(const E* hi, E* const* lo, int64_t w, int64_t rw) {
  interleave_rows(const_cast<E*>(hi), lo, w, rw, true);
}

// interleave_rows(hi, lo, w, rw, false) with hi written by non-temporal stores: a chunk at a
// time interleaved in a buffer that stays in the L1 cache, then streamed out. The caller
// fences once after all its rows (a fence per row would wait for each row to reach memory).
template <typename E>
void interleave_rows_streaming(E* hi, E* const* lo, int64_t w, int64_t rw) {
  if (reinterpret_cast<uintptr_t>(hi) % 16 == 0) {  // factors 2 and 4 go straight out of the registers
    if (rw == 2 && has_vector_interleave<E, 2>()) return interleave_fixed<E, 2, true>(hi, lo, w, false);
    if (rw == 4 && has_vector_interleave<E, 4>()) return interleave_fixed<E, 4, true>(hi, lo, w, false);
  }
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
