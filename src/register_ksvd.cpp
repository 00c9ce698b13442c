// Binding of K-SVD dictionary learning (smic/ksvd.hpp): plain, and learning for the rate (the
// coder's own choice in the loop), each with a progress callback that may stop it.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "smic/ksvd.hpp"
#include "format_binding.hpp"
#include "ksvd_binding.hpp"
#include "validate.hpp"

namespace py = pybind11;

void register_ksvd(py::module_& m) {
  m.def(
      "learn_dictionary",
      [](const py::array& x, long long n_atoms, long long n_nonzero, long long n_iter,
         unsigned long long seed, int n_threads, double max_coherence, py::object progress,
         long long power_iterations, double min_usage_fraction) {
        smic::KsvdOptions opt = smic_py::ksvd_options(x, n_atoms, n_nonzero, n_iter, seed, n_threads,
                                                      max_coherence, min_usage_fraction);
        if (power_iterations < 1)
          throw py::value_error("power_iterations must be >= 1, got " + std::to_string(power_iterations));
        opt.power_iterations = static_cast<std::size_t>(power_iterations);
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
  m.def(
      "learn_for_rate",
      [](const py::array& x, long long n_atoms, const py::dict& params, const std::string& precision,
         long long n_iter, unsigned long long seed, int n_threads, double max_coherence,
         py::object progress, double min_usage_fraction, long long sparsity_iterations) {
        const smic::CodingParams p = smic_py::params_from(params);
        if (sparsity_iterations < -1)
          throw py::value_error("sparsity_iterations must be >= 0 (or -1: half of n_iter), got " +
                                std::to_string(sparsity_iterations));
        const smic::AtomPrecision prec = smic_py::precision_from(precision);
        smic::KsvdOptions opt = smic_py::ksvd_options(x, n_atoms, p.s_max, n_iter, seed, n_threads,
                                                      max_coherence, min_usage_fraction);
        const float* xp = static_cast<const float*>(x.data());
        const auto n = static_cast<std::size_t>(x.shape(0));
        const auto dim = static_cast<std::size_t>(x.shape(1));
        return smic_py::run_ksvd(xp, n, dim, opt, progress, [&](const smic::KsvdProgress& cb) {
          const std::size_t warm = sparsity_iterations < 0 ? opt.n_iter / 2
                                                           : static_cast<std::size_t>(sparsity_iterations);
          return smic::learn_for_rate(xp, n, dim, p, prec, opt, warm, cb);  // GIL released
        });
      },
      py::arg("X"), py::arg("n_atoms"), py::arg("params"), py::arg("precision") = "float16",
      py::arg("n_iter") = 10, py::arg("seed") = 0, py::arg("n_threads") = 0,
      py::arg("max_coherence") = 0.99, py::arg("progress") = py::none(),
      py::arg("min_usage_fraction") = 0.25, py::arg("sparsity_iterations") = -1,
      "K-SVD coding its unit-norm training rows with s_max atoms for sparsity_iterations "
      "iterations (-1: half of n_iter), then with the coder's own rate-distortion choice "
      "(smic layout); returns (D, mean squared error per iteration, replaced atoms).");
}
