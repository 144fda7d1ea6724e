// pixel_shuffle / pixel_unshuffle and zero insertion in any rank: pure data movement,
// generic over the element size (bits are copied, never converted).
#include <cstdint>
#include <cstring>
#include <vector>

#include "interleave.h"
#include "ops.h"
#include "parallel.h"

namespace spx {
namespace {

// Below this many elements one thread moves the data faster than waking the pool.
constexpr int64_t kSerialElements = int64_t(1) << 16;

struct Bytes16 {
  uint64_t lo, hi;
};
struct Bytes32 {  // complex long double
  Bytes16 lo, hi;
};

// Channel of the low-resolution side holding channel c's sub-pixel position `sub`.
int64_t low_channel(const ShuffleArgs& a, int64_t c, int64_t sub) {
  return a.dcr ? sub * a.channels + c : c * volume(a.factor) + sub;
}

template <typename E>
void shuffle_rows(const ShuffleArgs& a, const E* src, E* dst) {
  const int64_t R = volume(a.factor), C = a.channels, W = a.low[2], rw = a.factor[2];
  const int64_t hi_d = a.low[0] * a.factor[0], hi_h = a.low[1] * a.factor[1];
  // The native code is written from the shuffle's direction; unshuffle swaps the roles.
  E* hi = a.to_low ? const_cast<E*>(src) : dst;
  E* lo = a.to_low ? dst : const_cast<E*>(src);
  // A "row" is one high-resolution row: (b, c, zd, zh) channels first, (b, zd, zh) channels last.
  const int64_t rows = a.batch * (a.channels_last ? 1 : C) * hi_d * hi_h;
  const int threads = rows * W * rw * (a.channels_last ? C : 1) < kSerialElements ? 1 : a.threads;
  const bool streamed = !a.to_low && !a.channels_last && rows * W * rw * int64_t(sizeof(E)) >= kStreamingBytes &&
                        W * rw * int64_t(sizeof(E)) >= kStreamingRowBytes;
  parallel_region(threads, [&](int tid, int count) {
    int64_t begin, end;
    split_range(rows, tid, count, &begin, &end);
    std::vector<E*> lo_rows(static_cast<size_t>(rw));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t zh = row % hi_h, zd = (row / hi_h) % hi_d, outer = row / (hi_h * hi_d);
      const int64_t d = zd / a.factor[0], h = zh / a.factor[1];
      const int64_t sub0 = ((zd % a.factor[0]) * a.factor[1] + zh % a.factor[1]) * rw;  // sub-pixel of j = 0
      const int64_t low_pixel = (d * a.low[1] + h) * W;
      if (!a.channels_last) {
        const int64_t b = outer / C, c = outer % C;
        for (int64_t j = 0; j < rw; ++j)
          lo_rows[size_t(j)] = lo + (b * C * R + low_channel(a, c, sub0 + j)) * volume(a.low) + low_pixel;
        if (streamed) interleave_rows_streaming(hi + row * W * rw, lo_rows.data(), W, rw);
        else interleave_rows(hi + row * W * rw, lo_rows.data(), W, rw, a.to_low);
        continue;
      }
      const int64_t step = a.dcr ? 1 : R;  // distance between consecutive c on the low side
      for (int64_t x = 0; x < W; ++x) {
        E* lo_px = lo + (outer * volume(a.low) + low_pixel + x) * C * R;
        for (int64_t j = 0; j < rw; ++j) {
          E* hi_px = hi + (row * W * rw + x * rw + j) * C;
          E* lo_c = lo_px + low_channel(a, 0, sub0 + j);
          for (int64_t c = 0; c < C; ++c) {
            if (a.to_low)
              lo_c[c * step] = hi_px[c];
            else
              hi_px[c] = lo_c[c * step];
          }
        }
      }
    }
    if (streamed) streaming_fence();
  });
}

template <typename E>
void zero_insert_rows(int64_t batch, const Extent& size, const Extent& s, const E* src, E* dst, int threads) {
  const int64_t out_w = size[2] * s[2], out_h = size[1] * s[1], out_d = size[0] * s[0];
  const int64_t rows = batch * out_d * out_h;
  if (rows * out_w < kSerialElements) threads = 1;
  parallel_region(threads, [&](int tid, int count) {
    int64_t begin, end;
    split_range(rows, tid, count, &begin, &end);
    for (int64_t row = begin; row < end; ++row) {
      E* out = dst + row * out_w;
      std::memset(out, 0, sizeof(E) * static_cast<size_t>(out_w));
      const int64_t zh = row % out_h, zd = (row / out_h) % out_d, b = row / (out_h * out_d);
      if (zh % s[1] || zd % s[0]) continue;
      const E* in = src + ((b * size[0] + zd / s[0]) * size[1] + zh / s[1]) * size[2];
      for (int64_t j = 0; j < size[2]; ++j) out[j * s[2]] = in[j];
    }
  });
}

// Calls fn(E()) with an unsigned type of the element size (one of kElementSizes).
template <class Fn>
void with_element(size_t size, Fn&& fn) {
  switch (size) {
    case 1: return fn(uint8_t());
    case 2: return fn(uint16_t());
    case 4: return fn(uint32_t());
    case 8: return fn(uint64_t());
    case 16: return fn(Bytes16());
    default: return fn(Bytes32());
  }
}

}  // namespace

void pixel_shuffle(const ShuffleArgs& a, const void* src, void* dst, size_t element_size) {
  with_element(element_size, [&](auto tag) {
    using E = decltype(tag);
    shuffle_rows(a, static_cast<const E*>(src), static_cast<E*>(dst));
  });
}

void zero_insert(int64_t batch, const Extent& size, const Extent& stride, const void* src, void* dst,
                 size_t element_size, int threads) {
  with_element(element_size, [&](auto tag) {
    using E = decltype(tag);
    zero_insert_rows(batch, size, stride, static_cast<const E*>(src), static_cast<E*>(dst), threads);
  });
}

}  // namespace spx
