// Interleaving rows: hi[x*rw + j] = lo[j][x] (and back), the data movement of a pixel shuffle
// along one axis. A compile-time factor lets the compiler turn it into vector shuffles.
#pragma once

#include <cstdint>
#include <cstring>

namespace spx {

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

}  // namespace spx
