// The batch OMP kernel (one warp per signal, body in pursuit_warp.hpp) and two small checking
// kernels, with their host-side launchers.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels.hpp"
#include "pursuit_warp.hpp"

namespace smic::cuda::detail {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxWarpsPerBlock = 8;
constexpr std::size_t kSharedBudget = 48 * 1024;  // default per-block limit, no opt-in needed

// The lanes of one CUDA warp, all active (full-mask intrinsics).
struct DeviceWarp {
  int lane_;
  __device__ int lane() const { return lane_; }
  __device__ double shfl(double v, int src) const { return __shfl_sync(kFullMask, v, src); }
  __device__ double shfl_xor(double v, int mask) const { return __shfl_xor_sync(kFullMask, v, mask); }
  __device__ float shfl_xor(float v, int mask) const { return __shfl_xor_sync(kFullMask, v, mask); }
  __device__ int shfl_xor(int v, int mask) const { return __shfl_xor_sync(kFullMask, v, mask); }
  __device__ void sync() const { __syncwarp(); }
};

__global__ void pursuit_kernel(const float* __restrict__ signals, float* corr,
                               const float* __restrict__ gram, int m, int n_atoms, int dim,
                               int n_nonzero, double tol, std::int32_t* __restrict__ indices,
                               float* __restrict__ coefs) {
  extern __shared__ double shared[];
  const int warp_in_block = threadIdx.x / kWarpSize;
  const int row = blockIdx.x * (blockDim.x / kWarpSize) + warp_in_block;
  if (row >= m) return;  // uniform over the warp
  const int s = n_nonzero;
  double* chol = shared + static_cast<std::size_t>(warp_in_block) * shared_doubles_per_warp(s);
  float* gamma_f = reinterpret_cast<float*>(chol + s * (s + 1) / 2);
  int* support = reinterpret_cast<int*>(gamma_f + s);
  DeviceWarp warp{static_cast<int>(threadIdx.x) & (kWarpSize - 1)};
  pursue_signal(warp, signals + static_cast<std::size_t>(row) * dim,
                corr + static_cast<std::size_t>(row) * n_atoms, gram, n_atoms, dim, s, tol, chol,
                gamma_f, support, indices + static_cast<std::size_t>(row) * s,
                coefs + static_cast<std::size_t>(row) * s);
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
