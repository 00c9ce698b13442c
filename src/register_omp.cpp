// Binding of batch OMP and of the product kernel it rests on.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>

#include "smic/error.hpp"
#include "kernels/gemm.hpp"
#include "smic/omp.hpp"
#include "validate.hpp"

namespace py = pybind11;
using smic_py::require_array;

namespace {

std::size_t checked_n_nonzero(long long n_nonzero) {
  if (n_nonzero < 1) throw py::value_error("n_nonzero must be >= 1, got " + std::to_string(n_nonzero));
  return static_cast<std::size_t>(n_nonzero);
}

// Validated with the GIL held; `encode` only reads numpy buffers kept alive by the caller's
// references, so releasing the GIL for it is safe.
py::tuple encode_batch(const smic::OmpCoder& coder, const py::array& x, long long n_nonzero,
                       double tol, int n_threads) {
  require_array<float>(x, 2, "X");
  if (static_cast<std::size_t>(x.shape(1)) != coder.dim())
    throw py::value_error("X has " + std::to_string(x.shape(1)) + " columns but D has d = " +
                          std::to_string(coder.dim()));
  const std::size_t n = static_cast<std::size_t>(x.shape(0));
  const std::size_t s = checked_n_nonzero(n_nonzero);
  py::array_t<std::int32_t> indices({n, s});
  py::array_t<float> coefs({n, s});
  const float* xp = static_cast<const float*>(x.data());
  std::int32_t* ip = indices.mutable_data();
  float* cp = coefs.mutable_data();
  {
    py::gil_scoped_release release;
    coder.encode(xp, n, s, tol, ip, cp, n_threads);
  }
  return py::make_tuple(indices, coefs);
}

std::unique_ptr<smic::OmpCoder> make_coder(const py::array& d, int n_threads) {
  require_array<float>(d, 2, "D");
  if (d.shape(0) == 0) throw py::value_error("D must have at least one atom (K = 0)");
  if (d.shape(1) == 0) throw py::value_error("D must have at least one column (d = 0)");
  const float* dp = static_cast<const float*>(d.data());
  const auto k = static_cast<std::size_t>(d.shape(0)), dim = static_cast<std::size_t>(d.shape(1));
  py::gil_scoped_release release;
  return std::make_unique<smic::OmpCoder>(dp, k, dim, n_threads);
}

}  // namespace

void register_omp(py::module_& m) {
  py::class_<smic::OmpCoder>(m, "OmpCoder",
                             "A dictionary prepared for batch OMP (packed atoms, Gram matrix).")
      .def(py::init(&make_coder), py::arg("D"), py::arg("n_threads") = 0)
      .def_property_readonly("n_atoms", &smic::OmpCoder::n_atoms)
      .def_property_readonly("dim", &smic::OmpCoder::dim)
      .def("encode", &encode_batch, py::arg("X"), py::arg("n_nonzero"), py::arg("tol") = -1.0,
           py::arg("n_threads") = 0,
           "Code the rows of X; tol < 0 means no residual threshold. Returns (indices, coefs).");

  m.def(
      "omp",
      [](const py::array& x, const py::array& d, long long n_nonzero, double tol, int n_threads) {
        require_array<float>(x, 2, "X");
        const auto coder = make_coder(d, n_threads);
        return encode_batch(*coder, x, n_nonzero, tol, n_threads);
      },
      py::arg("X"), py::arg("D"), py::arg("n_nonzero"), py::arg("tol") = -1.0,
      py::arg("n_threads") = 0, "Batch OMP of the rows of X over the rows of D (strict types).");

  m.def(
      "gemm_nt",
      [](const py::array& a, const py::array& b, int n_threads) {
        require_array<float>(a, 2, "A");
        require_array<float>(b, 2, "B");
        if (a.shape(1) != b.shape(1)) throw py::value_error("A and B must have equal columns");
        const auto m_rows = static_cast<std::size_t>(a.shape(0));
        const auto n_rows = static_cast<std::size_t>(b.shape(0));
        const auto depth = static_cast<std::size_t>(a.shape(1));
        py::array_t<float> c({m_rows, n_rows});
        const float* ap = static_cast<const float*>(a.data());
        const float* bp = static_cast<const float*>(b.data());
        float* cp = c.mutable_data();
        {
          py::gil_scoped_release release;
          smic::gemm_nt(ap, m_rows, depth, bp, n_rows, depth, depth, cp, n_rows, n_threads);
        }
        return c;
      },
      py::arg("A"), py::arg("B"), py::arg("n_threads") = 0, "A @ B.T in float32 (internal).");
  m.def("gemm_kernel", &smic::gemm_kernel_name, "Name of the product kernel in use.");
  m.def(
      "set_gemm_kernel",
      [](const std::string& name) {
        if (!smic::set_gemm_kernel(name.c_str())) {
          std::string choices = "'auto', 'generic'";
          for (const char* family : {"avx2", "avx512"})
            if (smic::gemm_kernel_available(family)) choices += std::string(", '") + family + "'";
          throw py::value_error("kernel '" + name + "' is not available here; choose from " +
                                choices);
        }
      },
      py::arg("name"),
      "Select the product kernel: 'auto', 'avx512', 'avx2' or 'generic' (for tests).");
  m.def(
      "set_atom_screening",
      [](const std::string& mode) {
        if (!smic::set_atom_screening(mode.c_str()))
          throw py::value_error("atom screening mode '" + mode + "' is not one of 'auto', 'on', 'off'");
      },
      py::arg("mode"),
      "How one-item pursuits find their atoms (for tests and benchmarks; the codes are the "
      "same): 'auto' screens the atoms with an int8 product and proven bounds when the CPU "
      "has AVX-512 VNNI and the dictionary is large, 'on' always (plain C++ where VNNI is "
      "missing), 'off' computes every correlation.");
  m.def("atom_screening", &smic::atom_screening_enabled,
        "True when a one-item pursuit screens its atoms now (see set_atom_screening).");
}
