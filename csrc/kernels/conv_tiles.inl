// Convolution tile microkernels, compiled once per instruction set.
//
// Included by conv_tiles_<isa>.cpp after defining SPX_ISA_<ISA> and SPX_TABLE_GETTER.
// Only the table getter has external linkage; everything else is in an anonymous namespace.
#include "microkernels.h"
#include "simd.h"

namespace {

// Register tile shapes: MR broadcast rows x NV vectors of accumulators. With 16 vector
// registers 12 accumulators leave room for the operands; AVX-512 has 32.
// kChanvecStridedMR: pixels of the strided chanvec tile (0: none; with 16 registers the
// pointer per pixel costs nothing the operands need).
#if defined(SPX_ISA_AVX512)
enum { kRowvecMR = 8, kRowvecNV = 2, kChanvecMR = 8, kChanvecNV = 2, kChanvecStridedMR = 14 };
#else
enum { kRowvecMR = 4, kRowvecNV = 3, kChanvecMR = 6, kChanvecNV = 2, kChanvecStridedMR = 0 };
#endif
enum { kRowvec1NV = 4 };
// The pixel-reduction tile reads its broadcasts from one pointer and its vectors from another,
// so AVX-512 fits the same 14 x 2 accumulators as the strided chanvec tile; 6 x 2 elsewhere.
#if defined(SPX_ISA_AVX512)
enum { kPixelReductionMR = 14, kPixelReductionNV = 2 };
#else
enum { kPixelReductionMR = 6, kPixelReductionNV = 2 };
#endif

// Activations with a vector form, applied to the accumulators in registers. Returns false for
// those applied per element after the tile is spilled (tanh, sigmoid). max/min take the
// accumulator second so that NaN propagates (x86 max/min return the second operand then).
template <class V, int N>
SPX_ALWAYS_INLINE bool activate_registers(typename V::vec* acc, const spx::Epilogue<typename V::scalar>& e) {
  typedef typename V::vec Vec;
  const Vec zero = V::splat(0);
  switch (e.activation) {
    case spx::Activation::kNone: return true;
    case spx::Activation::kRelu:
      SPX_UNROLL for (int i = 0; i < N; ++i) acc[i] = V::max(zero, acc[i]);
      return true;
    case spx::Activation::kRelu6: {
      const Vec six = V::splat(6);
      SPX_UNROLL for (int i = 0; i < N; ++i) acc[i] = V::min(six, V::max(zero, acc[i]));
      return true;
    }
    case spx::Activation::kLeakyRelu: {
      // max(0, a) + slope * min(0, a): one of the two terms is exactly zero.
      const Vec slope = V::splat(e.negative_slope);
      SPX_UNROLL for (int i = 0; i < N; ++i) acc[i] = V::fma(slope, V::min(zero, acc[i]), V::max(zero, acc[i]));
      return true;
    }
    default: return false;
  }
}

inline float tanh_of(float v) { return tanhf(v); }
inline double tanh_of(double v) { return tanh(v); }
inline float exp_of(float v) { return expf(v); }
inline double exp_of(double v) { return exp(v); }

template <typename T>
void activate_elements(T* p, size_t n, spx::Activation activation) {
  if (activation == spx::Activation::kTanh) {
    for (size_t i = 0; i < n; ++i) p[i] = tanh_of(p[i]);
  } else {
    for (size_t i = 0; i < n; ++i) p[i] = T(1) / (T(1) + exp_of(-p[i]));
  }
}

// Y is the output's storage type: the compute type, or a half type stored with one rounding.
template <typename A, typename B>
struct SameType {
  enum { value = 0 };
};
template <typename A>
struct SameType<A, A> {
  enum { value = 1 };
};

// A spilled (and activated) tile in the output's storage type: the tile itself for outputs of
// the compute type, else converted into `scratch` with vector stores (one rounding each).
template <class V, typename Y, int N>
const Y* tile_as(const typename V::scalar* tile, Y* scratch) {
  if constexpr (SameType<typename V::scalar, Y>::value) {
    return tile;
  } else {
    for (int i = 0; i < N; i += V::lanes) V::store(scratch + i, V::load(tile + i));
    return scratch;
  }
}

template <class V, typename Y, int MR, int NV>
void rowvec_tile(const spx::RowvecArgs<typename V::scalar, Y>& a) {
  typedef typename V::scalar T;
  typedef typename V::vec Vec;
  const int L = V::lanes;
  Vec acc[MR][NV];
  SPX_UNROLL for (int i = 0; i < MR; ++i) {
    const Vec b = V::splat(a.bias[i]);
    SPX_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = b;
  }
  const T* w = a.w;
  for (size_t kk = 0; kk < a.k; ++kk, w += MR) {
    const T* xp = a.x + a.x_offsets[kk];
    Vec xv[NV];
    SPX_UNROLL for (int v = 0; v < NV; ++v) xv[v] = V::load(xp + v * L);
    SPX_UNROLL for (int i = 0; i < MR; ++i) {
      const Vec wi = V::splat(w[i]);
      SPX_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(wi, xv[v], acc[i][v]);
    }
  }
  const size_t nr = static_cast<size_t>(NV * L);
  const bool activated = activate_registers<V, MR * NV>(&acc[0][0], a.epilogue);
  if (activated && a.y_pixel_stride == 1 && a.nr_valid == nr) {
    for (size_t i = 0; i < a.mr_valid; ++i) {
      Y* yi = a.y + a.y_channel_offsets[i];
      SPX_UNROLL for (int v = 0; v < NV; ++v) V::store(yi + v * L, acc[i][v]);
    }
    return;
  }
  T tile[MR][NV * V::lanes];
  SPX_UNROLL for (int i = 0; i < MR; ++i) {
    SPX_UNROLL for (int v = 0; v < NV; ++v) V::store(&tile[i][v * L], acc[i][v]);
  }
  if (!activated) activate_elements(&tile[0][0], MR * nr, a.epilogue.activation);
  Y scratch[MR * NV * V::lanes];
  const Y* stored = tile_as<V, Y, MR * NV * V::lanes>(&tile[0][0], scratch);
  for (size_t i = 0; i < a.mr_valid; ++i) {
    Y* yi = a.y + a.y_channel_offsets[i];
    for (size_t j = 0; j < a.nr_valid; ++j) yi[static_cast<ptrdiff_t>(j) * a.y_pixel_stride] = stored[i * nr + j];
  }
}

template <class V, int MR, int NV>
SPX_ALWAYS_INLINE void chanvec_init(typename V::vec (&acc)[MR][NV], const typename V::scalar* bias) {
  SPX_UNROLL for (int v = 0; v < NV; ++v) {
    const typename V::vec b = V::load(bias + v * V::lanes);
    SPX_UNROLL for (int i = 0; i < MR; ++i) acc[i][v] = b;
  }
}

// Activates and stores the first a.mr_valid pixels of a chanvec tile; pixel i's base in y is
// y_pixel_offsets[i].
template <class V, typename Y, int MR, int NV>
SPX_ALWAYS_INLINE void chanvec_store(typename V::vec (&acc)[MR][NV], const spx::ChanvecArgs<typename V::scalar, Y>& a,
                                     const ptrdiff_t* y_pixel_offsets) {
  typedef typename V::scalar T;
  const int L = V::lanes;
  const size_t nr = static_cast<size_t>(NV * L);
  const bool activated = activate_registers<V, MR * NV>(&acc[0][0], a.epilogue);
  if (activated && a.y_channels_contiguous && a.nr_valid == nr) {
    for (size_t i = 0; i < a.mr_valid; ++i) {
      Y* yi = a.y + a.y_channel_offsets[0] + y_pixel_offsets[i];
      SPX_UNROLL for (int v = 0; v < NV; ++v) V::store(yi + v * L, acc[i][v]);
    }
    return;
  }
  T tile[MR][NV * V::lanes];
  SPX_UNROLL for (int i = 0; i < MR; ++i) {
    SPX_UNROLL for (int v = 0; v < NV; ++v) V::store(&tile[i][v * L], acc[i][v]);
  }
  if (!activated) activate_elements(&tile[0][0], MR * nr, a.epilogue.activation);
  Y scratch[MR * NV * V::lanes];
  const Y* stored = tile_as<V, Y, MR * NV * V::lanes>(&tile[0][0], scratch);
  // Channel by channel: each channel's pixels are near each other in y, the channels may not be.
  for (size_t j = 0; j < a.nr_valid; ++j) {
    Y* yj = a.y + a.y_channel_offsets[j];
    for (size_t i = 0; i < a.mr_valid; ++i) yj[y_pixel_offsets[i]] = stored[i * nr + j];
  }
}

// One reduction step of a chanvec tile: NV weight vectors times each pixel's input at `at`.
template <class V, int MR, int NV>
SPX_ALWAYS_INLINE void chanvec_step(typename V::vec (&acc)[MR][NV], const typename V::scalar* w,
                                    const typename V::scalar* const (&xpix)[MR], ptrdiff_t at) {
  typename V::vec wv[NV];
  SPX_UNROLL for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * V::lanes);
  SPX_UNROLL for (int i = 0; i < MR; ++i) {
    const typename V::vec xi = V::splat(xpix[i][at]);
    SPX_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(xi, wv[v], acc[i][v]);
  }
}

// The same for evenly spaced pixels: pixel i's input at base[i / 4] + (i % 4) * s1 + at_bytes.
template <class V, int MR, int NV>
SPX_ALWAYS_INLINE void chanvec_strided_step(typename V::vec (&acc)[MR][NV], const typename V::scalar* w,
                                            const char* const (&base)[4], ptrdiff_t s1, ptrdiff_t at_bytes) {
  typedef typename V::scalar T;
  typename V::vec wv[NV];
  SPX_UNROLL for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * V::lanes);
  SPX_UNROLL for (int i = 0; i < MR; ++i) {
    const char* at = base[i / 4] + at_bytes + (i % 4) * s1;
    const typename V::vec xi = V::splat(*reinterpret_cast<const T*>(at));
    SPX_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(xi, wv[v], acc[i][v]);
  }
}

template <class V, typename Y, int MR, int NV>
void chanvec_tile(const spx::ChanvecArgs<typename V::scalar, Y>& a) {
  typedef typename V::scalar T;
  typedef typename V::vec Vec;
  const int L = V::lanes;
  Vec acc[MR][NV];
  chanvec_init<V, MR, NV>(acc, a.bias);
  // Pixels past mr_valid recompute pixel 0 so that every read stays inside the input.
  const T* xpix[MR];
  SPX_UNROLL for (int i = 0; i < MR; ++i) {
    xpix[i] = a.x + a.x_pixel_offsets[static_cast<size_t>(i) < a.mr_valid ? i : 0];
  }
  const T* w = a.w;
  if (a.channels == 1) {  // one input channel per step: no inner loop of one iteration per tap
    for (size_t t = 0; t < a.taps; ++t, w += NV * L) chanvec_step<V, MR, NV>(acc, w, xpix, a.tap_offsets[t]);
  } else {
    for (size_t t = 0; t < a.taps; ++t) {
      const ptrdiff_t off = a.tap_offsets[t];
      for (size_t c = 0; c < a.channels; ++c, w += NV * L)
        chanvec_step<V, MR, NV>(acc, w, xpix, off + static_cast<ptrdiff_t>(c));
    }
  }
  chanvec_store<V, Y, MR, NV>(acc, a, a.y_pixel_offsets);
}

// The same for MR evenly spaced pixels (a run of one output row): their addresses come from
// four bases and two strides instead of a pointer each, which leaves the registers for a
// wider tile (each weight vector loaded feeds more FMAs). Same reduction order as chanvec_tile.
template <class V, typename Y, int MR, int NV>
void chanvec_strided_tile(const spx::ChanvecArgs<typename V::scalar, Y>& a) {
  typedef typename V::scalar T;
  typedef typename V::vec Vec;
  static_assert(MR <= 16, "four bases of four pixels");
  const int L = V::lanes;
  Vec acc[MR][NV];
  chanvec_init<V, MR, NV>(acc, a.bias);
  const ptrdiff_t s1 = a.x_pixel_stride * static_cast<ptrdiff_t>(sizeof(T));
  const ptrdiff_t size = static_cast<ptrdiff_t>(sizeof(T));
  const T* w = a.w;
  const char* base[4];
  if (a.channels == 1) {  // one input channel per step: the bases stay, the steps move
    SPX_UNROLL for (int g = 0; g < 4; ++g) base[g] = reinterpret_cast<const char*>(a.x) + g * 4 * s1;
    for (size_t t = 0; t < a.taps; ++t, w += NV * L) chanvec_strided_step<V, MR, NV>(acc, w, base, s1, a.tap_offsets[t] * size);
  } else {
    for (size_t t = 0; t < a.taps; ++t) {
      SPX_UNROLL for (int g = 0; g < 4; ++g) base[g] = reinterpret_cast<const char*>(a.x + a.tap_offsets[t]) + g * 4 * s1;
      for (size_t c = 0; c < a.channels; ++c, w += NV * L)
        chanvec_strided_step<V, MR, NV>(acc, w, base, s1, static_cast<ptrdiff_t>(c) * size);
    }
  }
  ptrdiff_t y_pixel_offsets[MR];
  SPX_UNROLL for (int i = 0; i < MR; ++i) y_pixel_offsets[i] = i * a.y_pixel_stride;
  chanvec_store<V, Y, MR, NV>(acc, a, y_pixel_offsets);
}

// Adds the tile's sums to a.sums (only its rows from first_row and columns from first_col).
template <class V, int MR, int NV>
SPX_ALWAYS_INLINE void pixel_reduction_store(typename V::vec (&acc)[MR][NV],
                                             const spx::PixelReductionArgs<typename V::scalar>& a) {
  typedef typename V::scalar T;
  const int L = V::lanes;
  for (size_t i = a.first_row; i < static_cast<size_t>(MR); ++i) {
    T* row = a.sums + static_cast<ptrdiff_t>(i) * a.sums_row;
    if (a.first_col == 0) {
      SPX_UNROLL for (int v = 0; v < NV; ++v) V::store(row + v * L, V::add(V::load(row + v * L), acc[i][v]));
      continue;
    }
    T tile[NV * V::lanes];
    SPX_UNROLL for (int v = 0; v < NV; ++v) V::store(tile + v * L, acc[i][v]);
    for (size_t j = a.first_col; j < static_cast<size_t>(NV * L); ++j) row[j] += tile[j];
  }
}

template <class V, int MR, int NV>
void pixel_reduction_tile(const spx::PixelReductionArgs<typename V::scalar>& a) {
  typedef typename V::scalar T;
  typedef typename V::vec Vec;
  const int L = V::lanes;
  Vec acc[MR][NV];
  SPX_UNROLL for (int i = 0; i < MR; ++i) {
    SPX_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = V::splat(0);
  }
  for (size_t p0 = 0; p0 < a.counts[0]; ++p0) {
    for (size_t p1 = 0; p1 < a.counts[1]; ++p1) {
      const T* u = a.broadcast + static_cast<ptrdiff_t>(p0) * a.broadcast_strides[0] +
                   static_cast<ptrdiff_t>(p1) * a.broadcast_strides[1];
      const T* w = a.vectors + static_cast<ptrdiff_t>(p0) * a.vector_strides[0] +
                   static_cast<ptrdiff_t>(p1) * a.vector_strides[1];
      for (size_t p2 = 0; p2 < a.counts[2]; ++p2, u += a.broadcast_strides[2], w += a.vector_strides[2]) {
        Vec wv[NV];
        SPX_UNROLL for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * L);
        SPX_UNROLL for (int i = 0; i < MR; ++i) {
          const Vec ui = V::splat(u[i]);
          SPX_UNROLL for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(ui, wv[v], acc[i][v]);
        }
      }
    }
  }
  pixel_reduction_store<V, MR, NV>(acc, a);
}

template <class V, typename Y>
spx::ConvKernels<typename V::scalar, Y> conv_kernels() {
  spx::ConvKernels<typename V::scalar, Y> k;
  k.lanes = V::lanes;
  k.rowvec = &rowvec_tile<V, Y, kRowvecMR, kRowvecNV>;
  k.rowvec_mr = kRowvecMR;
  k.rowvec_nr = kRowvecNV * V::lanes;
  k.rowvec1 = &rowvec_tile<V, Y, 1, kRowvec1NV>;
  k.rowvec1_nr = kRowvec1NV * V::lanes;
  k.chanvec = &chanvec_tile<V, Y, kChanvecMR, kChanvecNV>;
  k.chanvec_mr = kChanvecMR;
  k.chanvec_nr = kChanvecNV * V::lanes;
  k.chanvec_strided = nullptr;
  if constexpr (kChanvecStridedMR > 0) k.chanvec_strided = &chanvec_strided_tile<V, Y, kChanvecStridedMR, kChanvecNV>;
  k.chanvec_strided_mr = kChanvecStridedMR;
  k.pixel_reduction = &pixel_reduction_tile<V, kPixelReductionMR, kPixelReductionNV>;
  k.pixel_reduction_mr = kPixelReductionMR;
  k.pixel_reduction_nr = kPixelReductionNV * V::lanes;
  return k;
}

// n half-precision elements src[i * stride] to float32 dst[i] (the input frame's copy):
// vector conversions, strided elements gathered a vector at a time.
template <typename H>
void widen_run(const H* src, ptrdiff_t stride, float* dst, size_t n) {
  const int L = VecF32::lanes;
  size_t i = 0;
  if (stride == 1) {
    for (; i + L <= n; i += L) VecF32::store(dst + i, VecF32::load(src + i));
  } else {
    H gathered[VecF32::lanes];
    for (; i + L <= n; i += L) {
      for (int l = 0; l < L; ++l) gathered[l] = src[static_cast<ptrdiff_t>(i + l) * stride];
      VecF32::store(dst + i, VecF32::load(gathered));
    }
  }
  for (; i < n; ++i) dst[i] = widen(src[static_cast<ptrdiff_t>(i) * stride]);
}

enum { kPeakChains = 12 };  // enough independent chains to cover FMA latency x throughput

float fma_loop(size_t iterations) {
  typedef VecF32::vec Vec;
  Vec acc[kPeakChains];
  const Vec a = VecF32::splat(0.999999f), b = VecF32::splat(1e-7f);
  SPX_UNROLL for (int i = 0; i < kPeakChains; ++i) acc[i] = VecF32::splat(static_cast<float>(i));
  for (size_t it = 0; it < iterations; ++it) {
    SPX_UNROLL for (int i = 0; i < kPeakChains; ++i) acc[i] = VecF32::fma(acc[i], a, b);
  }
  float lanes[kPeakChains][VecF32::lanes];
  float sum = 0.f;
  SPX_UNROLL for (int i = 0; i < kPeakChains; ++i) VecF32::store(lanes[i], acc[i]);
  for (int i = 0; i < kPeakChains; ++i)
    for (int j = 0; j < VecF32::lanes; ++j) sum += lanes[i][j];
  return sum;
}

}  // namespace

namespace spx {

const KernelTable* SPX_TABLE_GETTER() {
  static const KernelTable table = {SPX_ISA_NAME,
                                    conv_kernels<VecF32, float>(),
                                    conv_kernels<VecF64, double>(),
                                    fma_loop,
                                    kPeakChains,
                                    VecF32::lanes,
                                    conv_kernels<VecF32, Float16>(),
                                    conv_kernels<VecF32, BFloat16>(),
                                    widen_run<Float16>,
                                    widen_run<BFloat16>};
  return &table;
}

}  // namespace spx
