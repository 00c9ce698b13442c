// smic_fast._core: a thin numpy binding of the C++ core. One register_* function per module
// of the core; each validates its inputs with the GIL held and releases it for the work.
#include <pybind11/pybind11.h>

#include "smic/error.hpp"

namespace py = pybind11;

void register_omp(py::module_& m);
void register_dictionary(py::module_& m);
void register_quantizer(py::module_& m);
void register_range_coder(py::module_& m);
void register_item_codec(py::module_& m);
void register_item_choice(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "smic_fast C++ core (batch OMP, K-SVD, quantizer, range coder)";
#ifdef SMIC_VERSION
  m.attr("__version__") = SMIC_VERSION;
#endif
  // InvalidArgument derives from std::invalid_argument, which pybind11 maps to ValueError.
  py::register_exception<smic::DecodeError>(m, "DecodeError", PyExc_ValueError);
  register_omp(m);
  register_dictionary(m);
  register_quantizer(m);
  register_range_coder(m);
  register_item_codec(m);
  register_item_choice(m);
}
