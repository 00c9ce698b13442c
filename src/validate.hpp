// Checks applied at the binding boundary, with the GIL held, before any heavy work starts.
// Every failure is a ValueError whose message names the argument, so a caller can tell which
// input to fix. Arrays are taken as py::array (no implicit conversion): dtype and layout are
// checked, never silently copied here; the Python wrappers document the conversions they do.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace smic_py {
namespace py = pybind11;

inline std::string shape_string(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

/// Require a C-contiguous array of dtype T with `ndim` dimensions.
template <class T>
void require_array(const py::array& a, py::ssize_t ndim, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !a.dtype().equal(py::dtype::of<T>()))
    throw py::value_error(std::string(name) + " must have dtype " +
                          std::string(py::str(py::dtype::of<T>())) + ", got " +
                          std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                          "-dimensional, got shape " + shape_string(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous (use np.ascontiguousarray)");
}

}  // namespace smic_py
