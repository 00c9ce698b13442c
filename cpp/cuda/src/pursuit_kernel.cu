// The per-signal part of batch OMP on the GPU: one warp per signal.
//
// Mirrors `pursue` in cpp/src/omp.cpp step for step, so that supports match the CPU oracle:
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
// support (coalesced loads, L2-resident for K <= ~4096), so the only per-signal buffer in global
// memory is the row of correlations that SGEMM wrote.
//
// Lane l holds entries l and l + 32 of the small vectors (gamma, rhs, w): n_nonzero <= 64.
// The packed lower-triangular Cholesky factor, the float copy of gamma and the support live in
// the warp's slice of shared memory.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels.hpp"

namespace smic::cuda::detail {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;
constexpr int kMaxWarpsPerBlock = 8;
constexpr std::size_t kSharedBudget = 48 * 1024;  // default per-block limit, no opt-in needed

__device__ __forceinline__ int tri(int i, int j) { return i * (i + 1) / 2 + j; }

// Sum over the warp; every lane gets the same value (a + b == b + a at each butterfly level).
__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ double slot_value(const double (&y)[2], int slot) {
  return slot == 0 ? y[0] : y[1];
}

__device__ __forceinline__ void set_slot(double (&y)[2], int slot, double v) {
  if (slot == 0)
    y[0] = v;
  else
    y[1] = v;
}

// y <- L^-1 y on the first t entries (column-oriented: the same operations, in the same order,
// as the CPU's row-oriented forward_substitute).
__device__ void forward_solve(const double* chol, int t, double (&y)[2], int lane) {
  for (int j = 0; j < t; ++j) {
    const int owner = j & (kWarpSize - 1), slot = j >> 5;
    double yj = slot_value(y, slot);
    if (lane == owner) {
      yj /= chol[tri(j, j)];
      set_slot(y, slot, yj);
    }
    yj = __shfl_sync(kFullMask, yj, owner);
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int i = lane + kWarpSize * q;
      if (i > j && i < t) y[q] -= chol[tri(i, j)] * yj;
    }
  }
}

// y <- L^-T y on the first t entries.
__device__ void backward_solve(const double* chol, int t, double (&y)[2], int lane) {
  for (int i = t - 1; i >= 0; --i) {
    const int owner = i & (kWarpSize - 1), slot = i >> 5;
    double yi = slot_value(y, slot);
    if (lane == owner) {
      yi /= chol[tri(i, i)];
      set_slot(y, slot, yi);
    }
    yi = __shfl_sync(kFullMask, yi, owner);
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int j = lane + kWarpSize * q;
      if (j < i) y[q] -= chol[tri(i, j)] * yi;
    }
  }
}

__host__ __device__ constexpr std::size_t shared_doubles_per_warp(std::size_t s) {
  // packed factor + (s floats of gamma + s int32 of support) = s doubles
  return s * (s + 1) / 2 + s;
}

__global__ void pursuit_kernel(const float* __restrict__ signals, float* corr,
                               const float* __restrict__ gram, int m, int n_atoms, int dim,
                               int n_nonzero, double tol, std::int32_t* __restrict__ indices,
                               float* __restrict__ coefs) {
  extern __shared__ double shared[];
  const int lane = threadIdx.x & (kWarpSize - 1);
  const int warp = threadIdx.x / kWarpSize;
  const int row = blockIdx.x * (blockDim.x / kWarpSize) + warp;
  if (row >= m) return;  // uniform over the warp

  const int s = n_nonzero;
  const std::size_t K = static_cast<std::size_t>(n_atoms);
  double* chol = shared + static_cast<std::size_t>(warp) * shared_doubles_per_warp(s);
  float* gamma_f = reinterpret_cast<float*>(chol + s * (s + 1) / 2);
  int* support = reinterpret_cast<int*>(gamma_f + s);

  const float* x = signals + static_cast<std::size_t>(row) * dim;
  float* alpha0 = corr + static_cast<std::size_t>(row) * K;

  double norm_sq = 0.0;
  for (int i = lane; i < dim; i += kWarpSize) norm_sq += double(x[i]) * x[i];
  norm_sq = warp_sum(norm_sq);

  double gamma[2] = {0.0, 0.0}, rhs[2] = {0.0, 0.0};
  int t = 0;
  if (!(tol >= 0.0 && norm_sq <= tol)) {
    const double negligible = 1e-6 * sqrt(norm_sq);
    for (; t < s; ++t) {
      // Atom of largest |alpha_j|; each lane scans j = lane, lane + 32, ... in ascending order
      // and keeps its first maximum, then the warp keeps the lowest index among equal maxima.
      float best_abs = -1.0f;
      int best = 0x7fffffff;
      for (int j = lane; j < n_atoms; j += kWarpSize) {
        float a = alpha0[j];
        if (t > 0) {
          if (isnan(a)) {
            a = 0.0f;  // a chosen atom
          } else {
            for (int i = 0; i < t; ++i)
              a = fmaf(-gamma_f[i], gram[static_cast<std::size_t>(support[i]) * K + j], a);
          }
        }
        const float v = fabsf(a);
        if (v > best_abs) {
          best_abs = v;
          best = j;
        }
      }
      for (int offset = 16; offset > 0; offset >>= 1) {
        const float other_abs = __shfl_xor_sync(kFullMask, best_abs, offset);
        const int other = __shfl_xor_sync(kFullMask, best, offset);
        if (other_abs > best_abs || (other_abs == best_abs && other < best)) {
          best_abs = other_abs;
          best = other;
        }
      }
      __syncwarp();  // every lane is done reading gamma_f / support of this step
      if (!(double(best_abs) > negligible)) break;  // residual (numerically) orthogonal to D

      const double g_jj = gram[static_cast<std::size_t>(best) * K + best];
      if (t == 0) {
        if (lane == 0) chol[0] = sqrt(g_jj);
      } else {
        double w[2];
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int i = lane + kWarpSize * q;
          w[q] = i < t ? double(gram[static_cast<std::size_t>(best) * K + support[i]]) : 0.0;
        }
        forward_solve(chol, t, w, lane);
        const double w_sq = warp_sum(w[0] * w[0] + w[1] * w[1]);
        const double diag = g_jj - w_sq;
        if (!(diag > 1e-7)) break;  // new atom is (numerically) in the span of the support
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int i = lane + kWarpSize * q;
          if (i < t) chol[tri(t, i)] = w[q];
        }
        if (lane == 0) chol[tri(t, t)] = sqrt(diag);
      }
      const float alpha0_best = alpha0[best];
      __syncwarp();  // all lanes read alpha0[best] before it is marked
      if (lane == 0) {
        support[t] = best;
        alpha0[best] = __int_as_float(0x7fc00000);  // quiet NaN: "chosen"
      }
      if ((t & (kWarpSize - 1)) == lane) set_slot(rhs, t >> 5, double(alpha0_best));
      __syncwarp();  // factor row t, support[t] and the mark are visible to the warp

      gamma[0] = rhs[0];
      gamma[1] = rhs[1];
      forward_solve(chol, t + 1, gamma, lane);
      backward_solve(chol, t + 1, gamma, lane);
      if (t + 1 == s) {
        ++t;
        break;
      }
      if (tol >= 0.0) {
        // ||x - D_I gamma||^2 = ||x||^2 - gamma . alpha0_I, since G_II gamma = alpha0_I.
        const double explained = warp_sum(gamma[0] * rhs[0] + gamma[1] * rhs[1]);
        if (norm_sq - explained <= tol) {
          ++t;
          break;
        }
      }
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        const int i = lane + kWarpSize * q;
        if (i <= t) gamma_f[i] = static_cast<float>(gamma[q]);
      }
      __syncwarp();
    }
  }
  __syncwarp();
  std::int32_t* out_i = indices + static_cast<std::size_t>(row) * s;
  float* out_c = coefs + static_cast<std::size_t>(row) * s;
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    const int i = lane + kWarpSize * q;
    if (i < s) {
      out_i[i] = i < t ? support[i] : -1;
      out_c[i] = i < t ? static_cast<float>(gamma[q]) : 0.0f;
    }
  }
}

__global__ void first_nonfinite_kernel(const float* __restrict__ values, std::size_t n,
                                       unsigned long long* first) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    if (!isfinite(values[i])) atomicMin(first, static_cast<unsigned long long>(i));
}

__global__ void copy_diagonal_kernel(const float* __restrict__ gram, std::size_t n_atoms,
                                     float* __restrict__ diag) {
  const std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < n_atoms) diag[k] = gram[k * n_atoms + k];
}

int warps_per_block(std::size_t n_nonzero) {
  const std::size_t per_warp = pursuit_shared_bytes_per_warp(n_nonzero);
  std::size_t warps = kSharedBudget / per_warp;
  if (warps > static_cast<std::size_t>(kMaxWarpsPerBlock)) warps = kMaxWarpsPerBlock;
  return warps < 1 ? 1 : static_cast<int>(warps);
}

}  // namespace

std::size_t pursuit_shared_bytes_per_warp(std::size_t n_nonzero) {
  return shared_doubles_per_warp(n_nonzero) * sizeof(double);
}

cudaError_t launch_pursuit(const float* signals, float* corr, const float* gram, std::size_t m,
                           std::size_t n_atoms, std::size_t dim, std::size_t n_nonzero,
                           double tol, std::int32_t* indices, float* coefs, cudaStream_t stream) {
  if (m == 0) return cudaSuccess;
  const int warps = warps_per_block(n_nonzero);
  const std::size_t blocks = (m + warps - 1) / warps;
  const std::size_t shared_bytes = static_cast<std::size_t>(warps) *
                                   pursuit_shared_bytes_per_warp(n_nonzero);
  pursuit_kernel<<<static_cast<unsigned>(blocks), warps * kWarpSize, shared_bytes, stream>>>(
      signals, corr, gram, static_cast<int>(m), static_cast<int>(n_atoms), static_cast<int>(dim),
      static_cast<int>(n_nonzero), tol, indices, coefs);
  return cudaGetLastError();
}

cudaError_t launch_first_nonfinite(const float* values, std::size_t n,
                                   unsigned long long* first, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  constexpr unsigned kThreads = 256;
  const std::size_t wanted = (n + kThreads - 1) / kThreads;
  const unsigned blocks = static_cast<unsigned>(wanted < 4096 ? wanted : 4096);
  first_nonfinite_kernel<<<blocks, kThreads, 0, stream>>>(values, n, first);
  return cudaGetLastError();
}

cudaError_t launch_copy_diagonal(const float* gram, std::size_t n_atoms, float* diag,
                                 cudaStream_t stream) {
  constexpr unsigned kThreads = 256;
  const unsigned blocks = static_cast<unsigned>((n_atoms + kThreads - 1) / kThreads);
  copy_diagonal_kernel<<<blocks, kThreads, 0, stream>>>(gram, n_atoms, diag);
  return cudaGetLastError();
}

}  // namespace smic::cuda::detail
