// Pixel shuffles and zero insertion: data movement for any element size.
#include <pybind11/stl.h>

#include <vector>

#include "../ops/errors.h"
#include "../ops/ops.h"
#include "../ops/parallel.h"
#include "common.h"
#include "register.h"

namespace spx_bind {
namespace {

void check_pair(const py::array& src, const py::array& dst) {
  require(src.dtype().is(dst.dtype()) || src.dtype().equal(dst.dtype()), "src and out must have the same dtype");
  require(src.flags() & py::array::c_style && dst.flags() & py::array::c_style, "src and out must be C-contiguous");
  require(dst.writeable(), "out is read-only");
  require(is_aligned(src) && is_aligned(dst), "src and out must be aligned for their dtype");
  require(!overlaps(src, dst), "out overlaps the input");
  require(spx::movable_element_size(static_cast<size_t>(src.itemsize())), "elements must have 1, 2, 4, 8, 16 or 32 bytes");
}

void pixel_shuffle(const py::array& src, py::array dst, int64_t batch, int64_t channels, const std::vector<int64_t>& low,
                   const std::vector<int64_t>& factor, bool dcr, bool channels_last, bool to_low, int threads) {
  const spx::Extent lo = to_extent(low, low.size(), 1, "low"), r = to_extent(factor, low.size(), 1, "factor");
  require(batch >= 0 && channels >= 0, "invalid shuffle sizes");
  int64_t total = spx::checked_mul(batch, channels, "shuffle");
  for (size_t a = 0; a < spx::kMaxRank; ++a) {
    require(lo[a] >= 0 && r[a] >= 1, "invalid shuffle sizes");
    total = spx::checked_mul(spx::checked_mul(total, lo[a], "shuffle"), r[a], "shuffle");
  }
  require(src.size() == total && dst.size() == total, "src/out sizes do not match the shuffle");
  check_pair(src, dst);
  const spx::ShuffleArgs a{batch, channels, lo, r, dcr, channels_last, to_low, spx::resolve_threads(threads)};
  const size_t element_size = static_cast<size_t>(src.itemsize());
  py::gil_scoped_release nogil;
  spx::pixel_shuffle(a, src.data(), dst.mutable_data(), element_size);
}

void zero_insert(const py::array& src, py::array dst, const std::vector<int64_t>& stride, int threads) {
  const size_t rank = stride.size();
  require(src.ndim() == static_cast<py::ssize_t>(rank + 1) && dst.ndim() == src.ndim(),
          "zero_insert takes (batch, *spatial) arrays");
  const spx::Extent s = to_extent(stride, rank, 1, "stride");
  std::vector<int64_t> sizes;
  for (size_t a = 0; a < rank; ++a) {
    const py::ssize_t axis = static_cast<py::ssize_t>(a + 1);
    require(stride[a] >= 1, "stride must be >= 1");
    require(dst.shape(axis) == spx::checked_mul(src.shape(axis), stride[a], "out"), "out shape does not match the stride");
    sizes.push_back(src.shape(axis));
  }
  require(dst.shape(0) == src.shape(0), "out shape does not match the stride");
  check_pair(src, dst);
  const spx::Extent size = to_extent(sizes, rank, 1, "size");
  const size_t element_size = static_cast<size_t>(src.itemsize());
  const int nt = spx::resolve_threads(threads);
  const int64_t batch = src.shape(0);
  py::gil_scoped_release nogil;
  spx::zero_insert(batch, size, s, src.data(), dst.mutable_data(), element_size, nt);
}

}  // namespace

void register_shuffle(py::module_& m) {
  m.def("pixel_shuffle", &pixel_shuffle, py::arg("src"), py::arg("out"), py::arg("batch"), py::arg("channels"),
        py::arg("low"), py::arg("factor"), py::arg("dcr"), py::arg("channels_last"), py::arg("to_low"),
        py::arg("threads"),
        "Moves elements between (batch, C*prod(factor), *low) and (batch, C, *(low*factor)); any element size.");
  m.def("zero_insert", &zero_insert, py::arg("src"), py::arg("out"), py::arg("stride"), py::arg("threads"),
        "(batch, *spatial) -> (batch, *(spatial*stride)), zeros between the input elements.");
}

}  // namespace spx_bind
