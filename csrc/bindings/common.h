// Helpers shared by the binding units: checks that raise Python exceptions, exact dtype
// tests and the per-axis conversion to the engine's fixed three axes.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "../engine/problem.h"
#include "../engine/storage.h"

namespace spx_bind {

namespace py = pybind11;

inline void require(bool ok, const char* message) {
  if (!ok) throw py::value_error(message);
}

// As require(), naming the argument; the message is only built on failure.
inline void require_named(bool ok, const char* name, const char* what) {
  if (!ok) throw py::value_error(std::string(name) + " " + what);
}

// Whether the array's data address suits its dtype (numpy's ALIGNED flag): native code reads
// and writes whole elements. The Python layer copies misaligned inputs and refuses such outputs.
inline bool is_aligned(const py::array& a) { return (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0; }

// Exactly T, C order, native byte order and aligned: what native code may read in place.
template <typename T>
bool has_type(const py::array& a) {
  // check_ compares dtypes exactly (byte order included) and requires C order.
  return py::array_t<T, py::array::c_style>::check_(a) && is_aligned(a);
}

// float16 and bfloat16 (ml_dtypes') have no pybind11 type: by NumPy type number and by name.
inline bool is_native_c_order(const py::array& a) {
  const char order = a.dtype().byteorder();
  return (a.flags() & py::array::c_style) && (order == '=' || order == '|') && is_aligned(a);
}
template <>
inline bool has_type<spx::Float16>(const py::array& a) {
  constexpr int kNpyHalf = 23;  // NPY_HALF
  return a.dtype().num() == kNpyHalf && is_native_c_order(a);
}
template <>
inline bool has_type<spx::BFloat16>(const py::array& a) {
  const py::dtype d = a.dtype();
  return d.kind() == 'V' && d.itemsize() == 2 && is_native_c_order(a) && py::str(d.attr("name")).cast<std::string>() == "bfloat16";
}


// Whether two arrays' byte ranges intersect (numpy.may_share_memory's bounds test).
inline bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// `rank` per-axis values as the engine's three axes, `fill` on the leading unused ones.
inline spx::Extent to_extent(const std::vector<int64_t>& values, size_t rank, int64_t fill, const char* name) {
  require(rank >= 1 && rank <= spx::kMaxRank, "rank must be 1, 2 or 3");
  require_named(values.size() == rank, name, "must have one entry per spatial axis");
  spx::Extent e{fill, fill, fill};
  for (size_t a = 0; a < rank; ++a) e[spx::kMaxRank - rank + a] = values[a];
  return e;
}

// Batch, channels and spatial sizes of an (N, C, *spatial) or (N, *spatial, C) array.
struct ArrayDims {
  int64_t batch, channels;
  spx::Extent spatial;
};

// `shape` has rank + 2 entries.
inline ArrayDims dims_of_shape(const py::ssize_t* shape, size_t rank, bool channels_last) {
  ArrayDims d{shape[0], channels_last ? shape[rank + 1] : shape[1], {1, 1, 1}};
  for (size_t i = 0; i < rank; ++i) d.spatial[spx::kMaxRank - rank + i] = shape[i + (channels_last ? 1 : 2)];
  return d;
}

inline ArrayDims array_dims(const py::array& a, size_t rank, bool channels_last, const char* name) {
  require_named(a.ndim() == static_cast<py::ssize_t>(rank + 2), name, "must have rank + 2 dimensions");
  return dims_of_shape(a.shape(), rank, channels_last);
}

}  // namespace spx_bind
