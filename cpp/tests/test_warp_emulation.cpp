// The CUDA pursuit kernel's warp code (cpp/cuda/src/pursuit_warp.hpp) run on the host by its
// emulation (pursuit_emulation.cpp: 32 cooperative fibers per warp), compiled by the plain C++
// compiler, against the CPU core's batch OMP: the same atoms and the same coefficient bits,
// with the correlations and Gram matrix from the core's float32 product (what
// smic_fast._cuda.emulate_omp does; tests/test_cuda.py checks the same through Python where the
// CUDA module is built). So every build checks the GPU kernel's logic, without nvcc or a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "pursuit_emulation.hpp"
#include "kernels/gemm.hpp"
#include "smic/omp.hpp"
#include "support.hpp"

namespace {

struct Codes {
  std::vector<int32_t> indices;
  std::vector<float> coefs;
};

Codes emulated(const std::vector<float>& x, std::size_t n, const std::vector<float>& d, std::size_t k,
               std::size_t dim, std::size_t s, double tol) {
  std::vector<float> corr(n * k), gram(k * k);
  smic::gemm_nt(d.data(), k, dim, d.data(), k, dim, dim, gram.data(), k, 1);
  if (n > 0) smic::gemm_nt(x.data(), n, dim, d.data(), k, dim, dim, corr.data(), k, 1);
  Codes out{std::vector<int32_t>(n * s, 7), std::vector<float>(n * s, 7.0f)};
  smic::cuda::detail::emulate_pursuit(x.data(), corr.data(), gram.data(), n, k, dim, s, tol,
                                      out.indices.data(), out.coefs.data());
  return out;
}

Codes cpu(const std::vector<float>& x, std::size_t n, const std::vector<float>& d, std::size_t k,
          std::size_t dim, std::size_t s, double tol) {
  Codes out{std::vector<int32_t>(n * s), std::vector<float>(n * s)};
  smic::batch_omp(x.data(), n, d.data(), k, dim, s, tol, out.indices.data(), out.coefs.data(), 1);
  return out;
}

}  // namespace

TEST_CASE("the warp code gives the CPU's codes: one and two lane slots, tol stops") {
  struct Case {
    std::size_t s, dim, k, n;
    double tol;
  };
  // As tests/test_cuda.py: k = 1, 4, 8, 16 with tol, 40 and 64 (entries in both lane slots).
  for (const Case c : {Case{1, 48, 100, 150, -1}, Case{4, 48, 100, 80, -1}, Case{8, 64, 300, 40, -1},
                       Case{16, 64, 256, 30, 0.2}, Case{40, 64, 128, 6, -1}, Case{64, 128, 256, 4, -1}}) {
    CAPTURE(c.s);
    const auto x = smic_test::unit_rows(c.n, c.dim, 100 + c.s);
    const auto d = smic_test::unit_rows(c.k, c.dim, 200 + c.s);
    const auto emu = emulated(x, c.n, d, c.k, c.dim, c.s, c.tol);
    const auto ref = cpu(x, c.n, d, c.k, c.dim, c.s, c.tol);
    CHECK(emu.indices == ref.indices);
    CHECK(emu.coefs == ref.coefs);
    if (c.tol >= 0) {  // the tol rule did stop some signals early, and not all equally
      std::size_t lo = c.s, hi = 0;
      for (std::size_t i = 0; i < c.n; ++i) {
        std::size_t used = 0;
        for (std::size_t a = 0; a < c.s; ++a) used += emu.indices[i * c.s + a] >= 0;
        lo = std::min(lo, used);
        hi = std::max(hi, used);
      }
      CHECK(lo < hi);
      CHECK(hi <= c.s);
    }
  }
}

TEST_CASE("edge cases: fewer atoms than lanes, a repeated atom, zero signals, planted supports") {
  const auto small = smic_test::unit_rows(5, 8, 301);
  const auto y = smic_test::unit_rows(20, 8, 302);
  auto emu = emulated(y, 20, small, 5, 8, 5, -1);
  auto ref = cpu(y, 20, small, 5, 8, 5, -1);
  CHECK(emu.indices == ref.indices);
  CHECK(emu.coefs == ref.coefs);

  auto dup = small;  // a repeated atom: the pursuit stops at linear dependence
  dup.insert(dup.end(), small.begin(), small.begin() + 8);
  emu = emulated(y, 20, dup, 6, 8, 6, -1);
  ref = cpu(y, 20, dup, 6, 8, 6, -1);
  CHECK(emu.indices == ref.indices);
  CHECK(emu.coefs == ref.coefs);
  bool stopped = false;
  for (int32_t i : emu.indices) stopped = stopped || i == -1;
  CHECK(stopped);

  const std::vector<float> zeros(3 * 8, 0.0f);
  emu = emulated(zeros, 3, small, 5, 8, 3, -1);
  for (int32_t i : emu.indices) CHECK(i == -1);
  for (float c : emu.coefs) CHECK(c == 0.0f);

  const auto atoms = smic_test::unit_rows(32, 64, 303);
  std::vector<int32_t> truth;
  const auto x = smic_test::sparse_signals(atoms, 32, 64, 30, 4, 304, &truth);
  emu = emulated(x, 30, atoms, 32, 64, 4, -1);
  ref = cpu(x, 30, atoms, 32, 64, 4, -1);
  CHECK(emu.indices == ref.indices);
  CHECK(emu.coefs == ref.coefs);
}

TEST_CASE("no signals: nothing written") {
  const auto d = smic_test::unit_rows(8, 8, 305);
  const std::vector<float> none;
  const auto emu = emulated(none, 0, d, 8, 8, 2, -1);
  CHECK(emu.indices.empty());
}
