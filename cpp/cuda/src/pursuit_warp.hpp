// The per-signal part of batch OMP on the GPU, written once for two warps:
//  - DeviceWarp (pursuit_kernel.cu): the 32 lanes of a CUDA warp, __shfl_sync / __syncwarp;
//  - HostWarp (pursuit_emulation.cpp): 32 host threads with a barrier, so the same code runs
//    without a GPU and is checked against the CPU core (tests/test_cuda.py). The emulation
//    also checks that every shuffle and sync is reached by all lanes, as full-mask warp
//    intrinsics require.
//
// Mirrors `pursue` in cpp/src/coding/omp.cpp step for step, so that supports match the CPU oracle:
//  - correlations of the residual: alpha_j = alpha0_j - sum_{i<t} gamma_i G[I_i, j] in float,
//    accumulated in the same order (i ascending, one fused multiply-add each, as the CPU's AVX2
//    path); the chosen atoms' own correlations count as 0 (the CPU clears them; here they are
//    marked NaN in alpha0, which is our scratch copy: inputs are checked finite, so NaN is free);
//  - the atom of largest |alpha_j|, ties to the lowest index (numpy.argmax, the CPU's rule);
//  - stop when that magnitude is <= 1e-6 ||x||, when the new Cholesky diagonal is <= 1e-7
//    (atom in the span of the support), at n_nonzero atoms, or when tol >= 0 and the squared
//    residual ||x||^2 - gamma . alpha0_I is <= tol;
//  - Cholesky factor and coefficients in double; coefficients stored as float.
// alpha is never stored: each lane recomputes its entries from alpha0 and the Gram rows of the
// support (coalesced loads), so the only per-signal buffer in global memory is the row of
// correlations that SGEMM wrote.
//
// Lane l holds entries l and l + 32 of the small vectors (gamma, rhs, w): n_nonzero <= 64.
// The packed lower-triangular Cholesky factor, the float copy of gamma and the support live in
// the warp's slice of shared memory (`chol`, `gamma_f`, `support`).
#pragma once
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#ifdef __CUDACC__
#define SMIC_WARP_FN __device__ __forceinline__
#define SMIC_HOST_DEVICE __host__ __device__
#else
#define SMIC_WARP_FN inline
#define SMIC_HOST_DEVICE
#endif

namespace smic::cuda::detail {

constexpr int kWarpSize = 32;

/// Doubles of shared memory one warp needs: packed factor + (s floats + s int32) = s doubles.
SMIC_HOST_DEVICE constexpr std::size_t shared_doubles_per_warp(std::size_t s) { return s * (s + 1) / 2 + s; }

SMIC_WARP_FN float quiet_nan() {
#ifdef __CUDA_ARCH__
  return __int_as_float(0x7fc00000);
#else
  return std::numeric_limits<float>::quiet_NaN();
#endif
}

SMIC_WARP_FN int tri(int i, int j) { return i * (i + 1) / 2 + j; }

SMIC_WARP_FN double slot_value(const double (&y)[2], int slot) { return slot == 0 ? y[0] : y[1]; }

SMIC_WARP_FN void set_slot(double (&y)[2], int slot, double v) {
  if (slot == 0)
    y[0] = v;
  else
    y[1] = v;
}

// Sum over the warp; every lane gets the same value (a + b == b + a at each butterfly level).
template <class Warp>
SMIC_WARP_FN double warp_sum(Warp& warp, double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += warp.shfl_xor(v, offset);
  return v;
}

// y <- L^-1 y on the first t entries (column-oriented: the same operations, in the same order,
// as the CPU's row-oriented forward_substitute).
template <class Warp>
SMIC_WARP_FN void forward_solve(Warp& warp, const double* chol, int t, double (&y)[2]) {
  const int lane = warp.lane();
  for (int j = 0; j < t; ++j) {
    const int owner = j & (kWarpSize - 1), slot = j >> 5;
    double yj = slot_value(y, slot);
    if (lane == owner) {
      yj /= chol[tri(j, j)];
      set_slot(y, slot, yj);
    }
    yj = warp.shfl(yj, owner);
    for (int q = 0; q < 2; ++q) {
      const int i = lane + kWarpSize * q;
      if (i > j && i < t) y[q] -= chol[tri(i, j)] * yj;
    }
  }
}

// y <- L^-T y on the first t entries.
template <class Warp>
SMIC_WARP_FN void backward_solve(Warp& warp, const double* chol, int t, double (&y)[2]) {
  const int lane = warp.lane();
  for (int i = t - 1; i >= 0; --i) {
    const int owner = i & (kWarpSize - 1), slot = i >> 5;
    double yi = slot_value(y, slot);
    if (lane == owner) {
      yi /= chol[tri(i, i)];
      set_slot(y, slot, yi);
    }
    yi = warp.shfl(yi, owner);
    for (int q = 0; q < 2; ++q) {
      const int j = lane + kWarpSize * q;
      if (j < i) y[q] -= chol[tri(i, j)] * yi;
    }
  }
}

/// Code one signal. `alpha0` (K floats, D x) is scratch: chosen atoms are marked NaN in it.
/// `chol`, `gamma_f`, `support`: the warp's shared scratch (s(s+1)/2 doubles, s floats, s ints).
/// Writes s indices and coefficients to out_i / out_c.
template <class Warp>
SMIC_WARP_FN void pursue_signal(Warp& warp, const float* x, float* alpha0, const float* gram,
                                int n_atoms, int dim, int s, double tol, double* chol,
                                float* gamma_f, int* support, std::int32_t* out_i, float* out_c) {
  const int lane = warp.lane();
  const std::size_t K = static_cast<std::size_t>(n_atoms);

  double norm_sq = 0.0;
  for (int i = lane; i < dim; i += kWarpSize) norm_sq += double(x[i]) * x[i];
  norm_sq = warp_sum(warp, norm_sq);

  double gamma[2] = {0.0, 0.0}, rhs[2] = {0.0, 0.0};
  int t = 0;
  if (!(tol >= 0.0 && norm_sq <= tol)) {
    const double negligible = 1e-6 * std::sqrt(norm_sq);
    for (; t < s; ++t) {
      // Atom of largest |alpha_j|; each lane scans j = lane, lane + 32, ... in ascending order
      // and keeps its first maximum, then the warp keeps the lowest index among equal maxima.
      float best_abs = -1.0f;
      int best = INT_MAX;
      for (int j = lane; j < n_atoms; j += kWarpSize) {
        float a = alpha0[j];
        if (t > 0) {
          if (std::isnan(a)) {
            a = 0.0f;  // a chosen atom
          } else {
            for (int i = 0; i < t; ++i)
              a = std::fma(-gamma_f[i], gram[static_cast<std::size_t>(support[i]) * K + j], a);
          }
        }
        const float v = std::fabs(a);
        if (v > best_abs) {
          best_abs = v;
          best = j;
        }
      }
      for (int offset = 16; offset > 0; offset >>= 1) {
        const float other_abs = warp.shfl_xor(best_abs, offset);
        const int other = warp.shfl_xor(best, offset);
        if (other_abs > best_abs || (other_abs == best_abs && other < best)) {
          best_abs = other_abs;
          best = other;
        }
      }
      warp.sync();  // every lane is done reading gamma_f / support of this step
      if (!(double(best_abs) > negligible)) break;  // residual (numerically) orthogonal to D

      const double g_jj = gram[static_cast<std::size_t>(best) * K + best];
      if (t == 0) {
        if (lane == 0) chol[0] = std::sqrt(g_jj);
      } else {
        double w[2];
        for (int q = 0; q < 2; ++q) {
          const int i = lane + kWarpSize * q;
          w[q] = i < t ? double(gram[static_cast<std::size_t>(best) * K + support[i]]) : 0.0;
        }
        forward_solve(warp, chol, t, w);
        const double w_sq = warp_sum(warp, w[0] * w[0] + w[1] * w[1]);
        const double diag = g_jj - w_sq;
        if (!(diag > 1e-7)) break;  // new atom is (numerically) in the span of the support
        for (int q = 0; q < 2; ++q) {
          const int i = lane + kWarpSize * q;
          if (i < t) chol[tri(t, i)] = w[q];
        }
        if (lane == 0) chol[tri(t, t)] = std::sqrt(diag);
      }
      const float alpha0_best = alpha0[best];
      warp.sync();  // all lanes read alpha0[best] before it is marked
      if (lane == 0) {
        support[t] = best;
        alpha0[best] = quiet_nan();  // "chosen"
      }
      if ((t & (kWarpSize - 1)) == lane) set_slot(rhs, t >> 5, double(alpha0_best));
      warp.sync();  // factor row t, support[t] and the mark are visible to the warp

      gamma[0] = rhs[0];
      gamma[1] = rhs[1];
      forward_solve(warp, chol, t + 1, gamma);
      backward_solve(warp, chol, t + 1, gamma);
      if (t + 1 == s) {
        ++t;
        break;
      }
      if (tol >= 0.0) {
        // ||x - D_I gamma||^2 = ||x||^2 - gamma . alpha0_I, since G_II gamma = alpha0_I.
        const double explained = warp_sum(warp, gamma[0] * rhs[0] + gamma[1] * rhs[1]);
        if (norm_sq - explained <= tol) {
          ++t;
          break;
        }
      }
      for (int q = 0; q < 2; ++q) {
        const int i = lane + kWarpSize * q;
        if (i <= t) gamma_f[i] = static_cast<float>(gamma[q]);
      }
      warp.sync();
    }
  }
  warp.sync();
  for (int q = 0; q < 2; ++q) {
    const int i = lane + kWarpSize * q;
    if (i < s) {
      out_i[i] = i < t ? support[i] : -1;
      out_c[i] = i < t ? static_cast<float>(gamma[q]) : 0.0f;
    }
  }
}

}  // namespace smic::cuda::detail
