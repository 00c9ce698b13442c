// K-SVD run from a binding, shared by the CPU module and the CUDA module.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstddef>
#include <optional>

#include "smic/dictionary.hpp"

namespace smic_py {
namespace py = pybind11;

// Learns with the GIL released. `progress` (None or a callable (iteration, mse) -> bool|None)
// runs between iterations with the GIL taken; KeyboardInterrupt or any exception stops the
// learning and is re-raised once the GIL-free work is over.
// Returns (D, mean squared error per iteration, replaced atoms).
inline py::tuple run_ksvd(const float* x, std::size_t n, std::size_t dim, const smic::KsvdOptions& opt,
                          const py::object& progress) {
  std::optional<py::error_already_set> pending_error;
  smic::KsvdProgress callback;
  if (!progress.is_none()) {
    callback = [&](std::size_t iteration, double mse) {
      py::gil_scoped_acquire acquire;
      try {
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        py::object keep_going = progress(iteration, mse);
        return keep_going.is_none() || keep_going.cast<bool>();
      } catch (py::error_already_set& e) {
        pending_error = e;
        return false;
      }
    };
  }
  smic::KsvdResult result;
  {
    py::gil_scoped_release release;
    result = smic::learn_dictionary(x, n, dim, opt, callback);
  }
  if (pending_error) throw *pending_error;
  py::array_t<float> atoms({opt.n_atoms, dim});
  std::copy(result.atoms.begin(), result.atoms.end(), atoms.mutable_data());
  return py::make_tuple(atoms, result.mean_sq_error, result.replaced_atoms);
}

}  // namespace smic_py
