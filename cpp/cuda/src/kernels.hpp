// Internal: host-side launchers of the kernels in pursuit_kernel.cu and check_kernels.cu.
// Plain C++ declarations, so omp_cuda.cpp is compiled by the host compiler, not by nvcc.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace smic::cuda::detail {

/// Shared memory one warp of the pursuit kernel needs for n_nonzero atoms (bytes).
std::size_t pursuit_shared_bytes_per_warp(std::size_t n_nonzero);

/// Greedy selection + progressive Cholesky for m signals, one warp each.
/// `corr` (m x K, row-major) holds D x of each signal on entry and is used as scratch
/// (chosen atoms are marked NaN in it). `gram` is K x K. Outputs m x n_nonzero.
cudaError_t launch_pursuit(const float* signals, float* corr, const float* gram, std::size_t m,
                           std::size_t n_atoms, std::size_t dim, std::size_t n_nonzero,
                           double tol, std::int32_t* indices, float* coefs, cudaStream_t stream);

/// Writes to *first (device memory, preset to ~0ull by the caller) the smallest flat index i
/// < n with values[i] not finite; leaves it unchanged when all are finite.
cudaError_t launch_first_nonfinite(const float* values, std::size_t n,
                                   unsigned long long* first, cudaStream_t stream);

/// diag[k] = gram[k * K + k], for the unit-norm check of the atoms.
cudaError_t launch_copy_diagonal(const float* gram, std::size_t n_atoms, float* diag,
                                 cudaStream_t stream);

}  // namespace smic::cuda::detail
