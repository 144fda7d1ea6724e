// Helpers shared by the binding units: checks that raise Python exceptions, exact dtype
// tests and the per-axis conversion to the engine's fixed three axes.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "../engine/problem.h"

namespace spx_bind {

namespace py = pybind11;

inline void require(bool ok, const char* message) {
  if (!ok) throw py::value_error(message);
}

// As require(), naming the argument; the message is only built on failure.
inline void require_named(bool ok, const char* name, const char* what) {
  if (!ok) throw py::value_error(std::string(name) + " " + what);
}

template <typename T>
bool has_type(const py::array& a) {
  // check_ compares dtypes exactly (byte order included) and requires C order.
  return py::array_t<T, py::array::c_style>::check_(a);
}

// Whether the array's data address suits its dtype (numpy's ALIGNED flag): native code reads
// and writes whole elements. The Python layer copies misaligned inputs and refuses such outputs.
inline bool is_aligned(const py::array& a) { return (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0; }

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

inline ArrayDims array_dims(const py::array& a, size_t rank, bool channels_last, const char* name) {
  require_named(a.ndim() == static_cast<py::ssize_t>(rank + 2), name, "must have rank + 2 dimensions");
  ArrayDims d{a.shape(0), channels_last ? a.shape(a.ndim() - 1) : a.shape(1), {1, 1, 1}};
  for (size_t i = 0; i < rank; ++i) d.spatial[spx::kMaxRank - rank + i] = a.shape(static_cast<py::ssize_t>(i + (channels_last ? 1 : 2)));
  return d;
}

}  // namespace spx_bind
