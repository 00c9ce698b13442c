// Binding of K-SVD dictionary learning, with a progress callback that may stop it.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "smic/dictionary.hpp"
#include "ksvd_binding.hpp"
#include "validate.hpp"

namespace py = pybind11;

void register_dictionary(py::module_& m) {
  m.def(
      "learn_dictionary",
      [](const py::array& x, long long n_atoms, long long n_nonzero, long long n_iter,
         unsigned long long seed, int n_threads, double max_coherence, py::object progress,
         long long power_iterations, double min_usage_fraction) {
        smic_py::require_array<float>(x, 2, "X");
        if (n_atoms < 1) throw py::value_error("n_atoms must be >= 1, got " + std::to_string(n_atoms));
        if (n_nonzero < 1)
          throw py::value_error("n_nonzero must be >= 1, got " + std::to_string(n_nonzero));
        if (n_iter < 0) throw py::value_error("n_iter must be >= 0, got " + std::to_string(n_iter));
        smic::KsvdOptions opt;
        opt.n_atoms = static_cast<std::size_t>(n_atoms);
        opt.n_nonzero = static_cast<std::size_t>(n_nonzero);
        opt.n_iter = static_cast<std::size_t>(n_iter);
        opt.seed = seed;
        opt.n_threads = n_threads;
        opt.max_coherence = max_coherence;
        if (power_iterations < 1)
          throw py::value_error("power_iterations must be >= 1, got " + std::to_string(power_iterations));
        opt.power_iterations = static_cast<std::size_t>(power_iterations);
        opt.min_usage_fraction = min_usage_fraction;
        const float* xp = static_cast<const float*>(x.data());
        const auto n = static_cast<std::size_t>(x.shape(0));
        const auto dim = static_cast<std::size_t>(x.shape(1));
        return smic_py::run_ksvd(xp, n, dim, opt, progress);  // GIL released, progress in Python
      },
      py::arg("X"), py::arg("n_atoms"), py::arg("n_nonzero"), py::arg("n_iter"),
      py::arg("seed") = 0, py::arg("n_threads") = 0, py::arg("max_coherence") = 0.99,
      py::arg("progress") = py::none(), py::arg("power_iterations") = 1,
      py::arg("min_usage_fraction") = 0.25,
      "Approximate K-SVD; returns (D, mean squared error per iteration, replaced atoms).");
}
