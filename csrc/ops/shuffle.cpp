// pixel_shuffle / pixel_unshuffle and zero insertion: pure data movement, generic over the
// element size (a float32 moves as a uint32, a float64 as a uint64; bits are never changed).
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

template <typename E>
void shuffle_rows(const ShuffleArgs& a, const E* src, E* dst) {
  const int64_t r2 = a.rh * a.rw, C = a.channels, H = a.h, W = a.w;
  // The native code is written from the shuffle's direction; unshuffle swaps the roles.
  E* hi = a.to_low ? const_cast<E*>(src) : dst;
  E* lo = a.to_low ? dst : const_cast<E*>(src);
  // A "row" is one high-resolution row: (b, c, y) for NCHW, (b, y) for NHWC.
  const int64_t rows = a.nhwc ? a.batch * H * a.rh : a.batch * C * H * a.rh;
  const int threads = rows * W * a.rw * (a.nhwc ? C : 1) < kSerialElements ? 1 : a.threads;
  auto lo_channel = [&](int64_t c, int64_t i, int64_t j) { return a.dcr ? (i * a.rw + j) * C + c : c * r2 + i * a.rw + j; };
  parallel_region(threads, [&](int tid, int count) {
    int64_t begin, end;
    split_range(rows, tid, count, &begin, &end);
    std::vector<E*> lo_rows(static_cast<size_t>(a.rw));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t y = row % (H * a.rh), h = y / a.rh, i = y % a.rh;
      if (!a.nhwc) {
        const int64_t bc = row / (H * a.rh), b = bc / C, c = bc % C;
        for (int64_t j = 0; j < a.rw; ++j) lo_rows[static_cast<size_t>(j)] = lo + ((b * C * r2 + lo_channel(c, i, j)) * H + h) * W;
        interleave_rows(hi + row * W * a.rw, lo_rows.data(), W, a.rw, a.to_low);
        continue;
      }
      const int64_t b = row / (H * a.rh);
      const int64_t step = a.dcr ? 1 : r2;  // distance between consecutive c on the low side
      for (int64_t x = 0; x < W; ++x) {
        E* lo_px = lo + ((b * H + h) * W + x) * C * r2;
        for (int64_t j = 0; j < a.rw; ++j) {
          E* hi_px = hi + (row * W * a.rw + x * a.rw + j) * C;
          E* lo_c = lo_px + lo_channel(0, i, j);
          for (int64_t c = 0; c < C; ++c) {
            if (a.to_low)
              lo_c[c * step] = hi_px[c];
            else
              hi_px[c] = lo_c[c * step];
          }
        }
      }
    }
  });
}

template <typename E>
void zero_insert_rows(int64_t batch, int64_t h, int64_t w, int64_t sh, int64_t sw, const E* src, E* dst,
                      int threads) {
  const int64_t out_w = w * sw, rows = batch * h * sh;
  if (rows * out_w < kSerialElements) threads = 1;
  parallel_region(threads, [&](int tid, int count) {
    int64_t begin, end;
    split_range(rows, tid, count, &begin, &end);
    for (int64_t row = begin; row < end; ++row) {
      E* out = dst + row * out_w;
      std::memset(out, 0, sizeof(E) * static_cast<size_t>(out_w));
      if (row % sh) continue;
      const E* in = src + (row / sh) * w;  // (b*h*sh + i*sh) / sh = b*h + i
      for (int64_t j = 0; j < w; ++j) out[j * sw] = in[j];
    }
  });
}

}  // namespace

void pixel_shuffle(const ShuffleArgs& a, const void* src, void* dst, size_t element_size) {
  if (element_size == 8)
    shuffle_rows(a, static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst));
  else
    shuffle_rows(a, static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst));
}

void zero_insert(int64_t batch, int64_t h, int64_t w, int64_t sh, int64_t sw, const void* src, void* dst,
                 size_t element_size, int threads) {
  if (element_size == 8)
    zero_insert_rows(batch, h, w, sh, sw, static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), threads);
  else
    zero_insert_rows(batch, h, w, sh, sw, static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), threads);
}

}  // namespace spx
