// Batch OMP (smic/omp.hpp) against a Gram-Schmidt reference in double precision, exact support
// recovery where theory guarantees it, stopping rules, thread-count invariance, and K-SVD.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "smic/ksvd.hpp"
#include "smic/error.hpp"
#include "smic/omp.hpp"
#include "support.hpp"

namespace {

struct Codes {
  std::vector<int32_t> indices;
  std::vector<float> coefs;
};

// OMP from its definition: residual kept explicitly, the chosen atoms orthonormalised by
// modified Gram-Schmidt, coefficients by least squares (back substitution of the QR factor).
Codes reference_omp(const std::vector<float>& x, std::size_t n, const std::vector<float>& d,
                    std::size_t k_atoms, std::size_t dim, std::size_t s) {
  Codes out{std::vector<int32_t>(n * s, -1), std::vector<float>(n * s, 0.0f)};
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> r(x.begin() + static_cast<std::ptrdiff_t>(i * dim),
                          x.begin() + static_cast<std::ptrdiff_t>((i + 1) * dim));
    const std::vector<double> xi = r;
    std::vector<std::vector<double>> q;  // orthonormal basis of the chosen atoms
    std::vector<std::vector<double>> rmat;  // R of the QR factorisation, column by column
    std::vector<int32_t> support;
    for (std::size_t t = 0; t < s; ++t) {
      double best = -1;
      int32_t arg = -1;
      for (std::size_t j = 0; j < k_atoms; ++j) {
        if (std::find(support.begin(), support.end(), static_cast<int32_t>(j)) != support.end()) continue;
        double c = 0;
        for (std::size_t m = 0; m < dim; ++m) c += d[j * dim + m] * r[m];
        if (std::fabs(c) > best) {
          best = std::fabs(c);
          arg = static_cast<int32_t>(j);
        }
      }
      std::vector<double> v(d.begin() + arg * static_cast<std::ptrdiff_t>(dim),
                            d.begin() + (arg + 1) * static_cast<std::ptrdiff_t>(dim));
      std::vector<double> col;
      for (const auto& qb : q) {
        double p = 0;
        for (std::size_t m = 0; m < dim; ++m) p += qb[m] * v[m];
        for (std::size_t m = 0; m < dim; ++m) v[m] -= p * qb[m];
        col.push_back(p);
      }
      double norm = 0;
      for (double vm : v) norm += vm * vm;
      norm = std::sqrt(norm);
      col.push_back(norm);
      for (double& vm : v) vm /= norm;
      q.push_back(v);
      rmat.push_back(col);
      support.push_back(arg);
      double p = 0;
      for (std::size_t m = 0; m < dim; ++m) p += v[m] * r[m];
      for (std::size_t m = 0; m < dim; ++m) r[m] -= p * v[m];
    }
    // Least squares: R gamma = Q^T x.
    const std::size_t t = support.size();
    std::vector<double> qtx(t), gamma(t);
    for (std::size_t a = 0; a < t; ++a)
      for (std::size_t m = 0; m < dim; ++m) qtx[a] += q[a][m] * xi[m];
    for (std::size_t a = t; a-- > 0;) {
      double v = qtx[a];
      for (std::size_t b = a + 1; b < t; ++b) v -= rmat[b][a] * gamma[b];
      gamma[a] = v / rmat[a][a];
    }
    for (std::size_t a = 0; a < t; ++a) {
      out.indices[i * s + a] = support[a];
      out.coefs[i * s + a] = static_cast<float>(gamma[a]);
    }
  }
  return out;
}

Codes core_omp(const std::vector<float>& x, std::size_t n, const std::vector<float>& d,
               std::size_t k_atoms, std::size_t dim, std::size_t s, double tol = -1, int threads = 1) {
  Codes out{std::vector<int32_t>(n * s), std::vector<float>(n * s)};
  smic::batch_omp(x.data(), n, d.data(), k_atoms, dim, s, tol, out.indices.data(), out.coefs.data(), threads);
  return out;
}

// Identity and a normalised Sylvester Hadamard matrix: mutual coherence 1 / sqrt(dim).
std::vector<float> identity_hadamard(std::size_t dim) {
  std::vector<float> d(2 * dim * dim, 0.0f);
  for (std::size_t i = 0; i < dim; ++i) d[i * dim + i] = 1.0f;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  for (std::size_t i = 0; i < dim; ++i)
    for (std::size_t j = 0; j < dim; ++j)
      d[(dim + i) * dim + j] = (__builtin_popcountll(i & j) % 2 ? -scale : scale);
  return d;
}

}  // namespace

TEST_CASE("batch OMP picks the atoms and coefficients of a Gram-Schmidt OMP") {
  struct Shape {
    std::size_t n, k, dim, s;
  };
  for (const Shape sh : {Shape{200, 40, 24, 1}, Shape{200, 40, 24, 4}, Shape{100, 120, 32, 8},
                         Shape{60, 10, 10, 6}}) {
    CAPTURE(sh.k);
    CAPTURE(sh.s);
    const auto d = smic_test::unit_rows(sh.k, sh.dim, 21 + sh.s);
    const auto x = smic_test::unit_rows(sh.n, sh.dim, 22 + sh.s);
    const auto ref = reference_omp(x, sh.n, d, sh.k, sh.dim, sh.s);
    const auto got = core_omp(x, sh.n, d, sh.k, sh.dim, sh.s);
    std::size_t same = 0;
    for (std::size_t i = 0; i < sh.n; ++i) {
      bool ok = true;
      for (std::size_t a = 0; a < sh.s; ++a) {
        ok = ok && got.indices[i * sh.s + a] == ref.indices[i * sh.s + a] &&
             std::fabs(got.coefs[i * sh.s + a] - ref.coefs[i * sh.s + a]) < 2e-3;
      }
      same += ok;
    }
    // Float32 correlations against double: a near tie may go the other way, rarely.
    CHECK(same >= sh.n * 98 / 100);
  }
}

TEST_CASE("exact support recovery of noiseless sparse signals (mutual coherence bound)") {
  // Tropp: OMP recovers every k-sparse signal exactly when (2k - 1) mu < 1; mu = 1/8 here, k = 4.
  const std::size_t dim = 64, k_atoms = 128, k = 4, n = 300;
  const auto d = identity_hadamard(dim);
  std::vector<int32_t> truth;
  const auto x = smic_test::sparse_signals(d, k_atoms, dim, n, k, 31, &truth);
  const auto got = core_omp(x, n, d, k_atoms, dim, k);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<int32_t> found(got.indices.begin() + static_cast<std::ptrdiff_t>(i * k),
                               got.indices.begin() + static_cast<std::ptrdiff_t>((i + 1) * k));
    std::sort(found.begin(), found.end());
    CAPTURE(i);
    CHECK(found == std::vector<int32_t>(truth.begin() + static_cast<std::ptrdiff_t>(i * k),
                                        truth.begin() + static_cast<std::ptrdiff_t>((i + 1) * k)));
  }
  // And the coefficients rebuild the signal.
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t m = 0; m < dim; ++m) {
      double v = 0;
      for (std::size_t a = 0; a < k; ++a)
        v += double(got.coefs[i * k + a]) * d[static_cast<std::size_t>(got.indices[i * k + a]) * dim + m];
      worst = std::max(worst, std::fabs(v - x[i * dim + m]));
    }
  }
  CHECK(worst < 1e-4);
  // Asked for more atoms than the signal has, OMP stops (or adds nothing): no fifth atom with
  // a non-negligible coefficient.
  const auto more = core_omp(x, n, d, k_atoms, dim, k + 2);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t a = k; a < k + 2; ++a) CHECK(std::fabs(more.coefs[i * (k + 2) + a]) < 1e-3);
}

TEST_CASE("tol stops early, slots left are -1 and 0, zero signals take no atom") {
  const std::size_t dim = 32, k_atoms = 64, n = 50, s = 8;
  const auto d = smic_test::unit_rows(k_atoms, dim, 41);
  auto x = smic_test::unit_rows(n, dim, 42);
  for (std::size_t m = 0; m < dim; ++m) x[m] = 0.0f;  // row 0: zero
  const auto got = core_omp(x, n, d, k_atoms, dim, s, 0.3);
  std::size_t min_used = s, max_used = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t used = 0;
    for (std::size_t a = 0; a < s; ++a) {
      if (got.indices[i * s + a] >= 0) {
        CHECK(used == a);  // used slots come first
        ++used;
      } else {
        CHECK(got.coefs[i * s + a] == 0.0f);
      }
    }
    if (i > 0) {
      min_used = std::min(min_used, used);
      max_used = std::max(max_used, used);
      // Residual energy within tol once stopped before s.
      if (used < s) {
        std::vector<double> r(x.begin() + static_cast<std::ptrdiff_t>(i * dim),
                              x.begin() + static_cast<std::ptrdiff_t>((i + 1) * dim));
        for (std::size_t a = 0; a < used; ++a)
          for (std::size_t m = 0; m < dim; ++m)
            r[m] -= double(got.coefs[i * s + a]) * d[static_cast<std::size_t>(got.indices[i * s + a]) * dim + m];
        double e = 0;
        for (double v : r) e += v * v;
        CHECK(e <= 0.3 + 1e-4);
      }
    } else {
      CHECK(used == 0);
    }
  }
  CHECK(min_used < max_used);
}

TEST_CASE("the same codes whatever the thread count, and argument errors") {
  const std::size_t dim = 48, k_atoms = 100, n = 257, s = 5;
  const auto d = smic_test::unit_rows(k_atoms, dim, 51);
  const auto x = smic_test::unit_rows(n, dim, 52);
  const auto one = core_omp(x, n, d, k_atoms, dim, s, -1, 1);
  const auto two = core_omp(x, n, d, k_atoms, dim, s, -1, 2);
  CHECK(one.indices == two.indices);
  CHECK(one.coefs == two.coefs);
  // One signal at a time gives the batch's bits (the row kernel vs the blocked product).
  const smic::OmpCoder coder(d.data(), k_atoms, dim, 1);
  std::vector<int32_t> idx(s);
  std::vector<float> coef(s);
  for (std::size_t i : {0, 100, 256}) {
    coder.encode(&x[i * dim], 1, s, -1, idx.data(), coef.data(), 1);
    CHECK(std::equal(idx.begin(), idx.end(), one.indices.begin() + static_cast<std::ptrdiff_t>(i * s)));
    CHECK(std::equal(coef.begin(), coef.end(), one.coefs.begin() + static_cast<std::ptrdiff_t>(i * s)));
  }
  std::vector<int32_t> bi(n * (dim + 1));
  std::vector<float> bc(n * (dim + 1));
  CHECK_THROWS_AS(coder.encode(x.data(), n, 0, -1, bi.data(), bc.data()), smic::InvalidArgument);
  CHECK_THROWS_AS(coder.encode(x.data(), n, dim + 1, -1, bi.data(), bc.data()), smic::InvalidArgument);
  CHECK_THROWS_AS(coder.encode(x.data(), n, 2, std::nan(""), bi.data(), bc.data()), smic::InvalidArgument);
  auto bad_x = x;
  bad_x[7] = INFINITY;
  CHECK_THROWS_AS(coder.encode(bad_x.data(), n, 2, -1, bi.data(), bc.data()), smic::InvalidArgument);
  auto not_unit = d;
  for (std::size_t m = 0; m < dim; ++m) not_unit[m] *= 1.01f;  // atom 0: norm 1.01
  CHECK_THROWS_AS(smic::OmpCoder(not_unit.data(), k_atoms, dim), smic::InvalidArgument);
}

TEST_CASE("K-SVD lowers the error, recovers planted atoms and is thread-count deterministic") {
  const std::size_t dim = 24, k_atoms = 16, n = 600;
  const auto planted = smic_test::unit_rows(k_atoms, dim, 61);
  auto x = smic_test::sparse_signals(planted, k_atoms, dim, n, 2, 62, nullptr);
  smic::KsvdOptions opt;
  opt.n_atoms = k_atoms;
  opt.n_nonzero = 2;
  opt.n_iter = 15;
  opt.seed = 3;
  opt.n_threads = 1;
  const auto a = smic::learn_dictionary(x.data(), n, dim, opt);
  opt.n_threads = 2;
  const auto b = smic::learn_dictionary(x.data(), n, dim, opt);
  CHECK(a.atoms == b.atoms);
  CHECK(a.mean_sq_error == b.mean_sq_error);
  REQUIRE(a.mean_sq_error.size() == 15);
  CHECK(a.mean_sq_error.back() < a.mean_sq_error.front());
  // Most planted atoms are found (|cos| > 0.95 with some learned atom).
  std::size_t found = 0;
  for (std::size_t p = 0; p < k_atoms; ++p) {
    double best = 0;
    for (std::size_t q = 0; q < k_atoms; ++q) {
      double c = 0;
      for (std::size_t m = 0; m < dim; ++m) c += double(planted[p * dim + m]) * a.atoms[q * dim + m];
      best = std::max(best, std::fabs(c));
    }
    found += best > 0.95;
  }
  CHECK(found >= k_atoms * 3 / 4);
  // Early stop from the progress callback.
  std::size_t calls = 0;
  const auto stopped = smic::learn_dictionary(x.data(), n, dim, opt, [&](std::size_t, double) {
    return ++calls < 3;
  });
  CHECK(stopped.mean_sq_error.size() == 3);
  opt.n_atoms = n + 1;
  CHECK_THROWS_AS(smic::learn_dictionary(x.data(), n, dim, opt), smic::InvalidArgument);
}
