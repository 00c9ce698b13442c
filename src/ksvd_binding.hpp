// K-SVD run from a binding, shared by the CPU module and the CUDA module.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "smic/ksvd.hpp"
#include "validate.hpp"

namespace smic_py {
namespace py = pybind11;

// KsvdOptions from a binding's arguments, checked (X a 2-D float32 array, n_atoms and n_nonzero
// >= 1, n_iter >= 0); the options each module adds (power iterations, a GPU coder) come after.
inline smic::KsvdOptions ksvd_options(const py::array& x, long long n_atoms, long long n_nonzero,
                                      long long n_iter, unsigned long long seed, int n_threads,
                                      double max_coherence, double min_usage_fraction) {
  require_array<float>(x, 2, "X");
  if (n_atoms < 1) throw py::value_error("n_atoms must be >= 1, got " + std::to_string(n_atoms));
  if (n_nonzero < 1) throw py::value_error("n_nonzero must be >= 1, got " + std::to_string(n_nonzero));
  if (n_iter < 0) throw py::value_error("n_iter must be >= 0, got " + std::to_string(n_iter));
  smic::KsvdOptions opt;
  opt.n_atoms = static_cast<std::size_t>(n_atoms);
  opt.n_nonzero = static_cast<std::size_t>(n_nonzero);
  opt.n_iter = static_cast<std::size_t>(n_iter);
  opt.seed = seed;
  opt.n_threads = n_threads;
  opt.max_coherence = max_coherence;
  opt.min_usage_fraction = min_usage_fraction;
  return opt;
}

// Learns with the GIL released. `progress` (None or a callable (iteration, mse) -> bool|None)
// runs between iterations with the GIL taken; KeyboardInterrupt or any exception stops the
// learning and is re-raised once the GIL-free work is over.
// Returns (D, mean squared error per iteration, replaced atoms).
// `learn` (default: smic::learn_dictionary) runs the learning itself with that callback.
using KsvdLearner = std::function<smic::KsvdResult(const smic::KsvdProgress&)>;
inline py::tuple run_ksvd(const float* x, std::size_t n, std::size_t dim, const smic::KsvdOptions& opt,
                          const py::object& progress, const KsvdLearner& learn = {}) {
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
    result = learn ? learn(callback) : smic::learn_dictionary(x, n, dim, opt, callback);
  }
  if (pending_error) throw *pending_error;
  py::array_t<float> atoms({opt.n_atoms, dim});
  std::copy(result.atoms.begin(), result.atoms.end(), atoms.mutable_data());
  return py::make_tuple(atoms, result.mean_sq_error, result.replaced_atoms);
}

}  // namespace smic_py
