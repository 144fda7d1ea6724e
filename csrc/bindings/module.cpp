// The private extension module `subpixel_ext._core`: one registration unit per concept.
//
// Thin by design: the Python layer validates arguments, resolves dtypes and allocates the
// output. Entry points take exactly-typed C-contiguous arrays, re-check only what memory
// safety depends on, and release the GIL around native work.
#include <pybind11/pybind11.h>

#include "../ops/errors.h"
#include "../ops/parallel.h"
#include "register.h"

PYBIND11_MODULE(_core, m, pybind11::mod_gil_not_used()) {
  m.doc() = "Native kernels of subpixel_ext (private; use the subpixel_ext package).";
  spx::install_fork_handler();
  pybind11::register_exception<spx::SizeError>(m, "SizeError", PyExc_MemoryError);
  spx_bind::register_conv(m);
  spx_bind::register_shuffle(m);
  spx_bind::register_config(m);
  spx_bind::register_backward(m);
}
