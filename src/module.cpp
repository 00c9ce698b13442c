// smic_fast._core: a thin numpy binding of the C++ core. One register_* function per module
// of the core; each validates its inputs with the GIL held and releases it for the work.
#include <pybind11/pybind11.h>

#include "smic/error.hpp"

namespace py = pybind11;

void register_omp(py::module_& m);
void register_ksvd(py::module_& m);
void register_quantizer(py::module_& m);
void register_range_coder(py::module_& m);
void register_item_codec(py::module_& m);
void register_item_choice(py::module_& m);
void register_transform(py::module_& m);
void register_format(py::module_& m);
void register_coding_dictionary(py::module_& m);
void register_collection(py::module_& m);
void register_search(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "smic_fast C++ core (batch OMP, K-SVD, quantizer, range coder)";
#ifdef SMIC_VERSION
  m.attr("__version__") = SMIC_VERSION;
#endif
  // InvalidArgument derives from std::invalid_argument, which pybind11 maps to ValueError.
  auto decode_error = py::register_exception<smic::DecodeError>(m, "DecodeError", PyExc_ValueError);
  // Registered after their bases, so they are matched first.
  auto format_error = py::register_exception<smic::FormatError>(m, "FormatError", decode_error.ptr());
  py::register_exception<smic::DictionaryMismatchError>(m, "DictionaryMismatchError",
                                                        format_error.ptr());
  // IoError becomes OSError(errno, message): Python picks FileNotFoundError etc. from errno.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const smic::IoError& e) {
      PyObject* args = Py_BuildValue("(is)", e.error_number(), e.what());
      PyErr_SetObject(PyExc_OSError, args);
      Py_XDECREF(args);
    }
  });
  register_omp(m);
  register_quantizer(m);
  register_range_coder(m);
  register_item_codec(m);
  register_item_choice(m);
  register_transform(m);
  register_format(m);
  register_ksvd(m);
  register_coding_dictionary(m);
  register_collection(m);
  register_search(m);
}
