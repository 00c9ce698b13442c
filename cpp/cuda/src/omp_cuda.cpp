// Host side of batch OMP on the GPU: cuBLAS products, input checks, chunking of the batch.
//
// Per chunk of m signals: corr (m x K) = X_chunk D^T with one SGEMM, then the pursuit kernel
// (one warp per signal) reads corr and the Gram matrix and writes the codes. The chunk size is
// chosen so the per-chunk buffers fit the memory budget; an allocation that still fails is
// retried with half as many rows, down to one row, before OutOfMemory is thrown.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "kernels.hpp"
#include "smic/cuda/omp_cuda.hpp"
#include "smic/error.hpp"
#include "smic/omp.hpp"

namespace smic::cuda {
namespace {

using detail::DeviceBuffer;

cublasHandle_t handle_of(void* p) { return static_cast<cublasHandle_t>(p); }

std::string mib(std::size_t bytes) {
  return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

// Throw InvalidArgument naming `what` if a device array holds NaN or infinity.
void require_finite_on_device(const float* values, std::size_t n, std::size_t columns,
                              const char* what, cudaStream_t stream) {
  DeviceBuffer flag(sizeof(unsigned long long));
  const unsigned long long none = ~0ull;
  SMIC_CUDA_CHECK(cudaMemcpyAsync(flag.as<void>(), &none, sizeof none, cudaMemcpyHostToDevice,
                                  stream));
  SMIC_CUDA_CHECK(detail::launch_first_nonfinite(values, n, flag.as<unsigned long long>(), stream));
  unsigned long long first = none;
  SMIC_CUDA_CHECK(cudaMemcpyAsync(&first, flag.as<void>(), sizeof first, cudaMemcpyDeviceToHost,
                                  stream));
  SMIC_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (first != none)
    throw InvalidArgument(std::string(what) + " contains NaN or infinity (first at row " +
                          std::to_string(first / columns) + ")");
}

// C (rows x K, row-major) = A (rows x d, row-major) . D^T, D K x d row-major.
// Column-major view: C^T (K x rows) = D (as d x K, transposed) . A^T (d x rows).
void correlations(cublasHandle_t handle, const float* atoms, std::size_t n_atoms,
                  std::size_t dim, const float* a, std::size_t rows, float* c) {
  const float one = 1.0f, zero = 0.0f;
  SMIC_CUDA_CHECK(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n_atoms),
                              static_cast<int>(rows), static_cast<int>(dim), &one, atoms,
                              static_cast<int>(dim), a, static_cast<int>(dim), &zero, c,
                              static_cast<int>(n_atoms)));
}

}  // namespace

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (why != nullptr)
      *why = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + " (" +
             cudaGetErrorString(err) + ")";
    return 0;
  }
  if (count == 0 && why != nullptr) *why = "the CUDA driver reports no device";
  return count;
}

OmpCudaCoder::OmpCudaCoder(const float* atoms, Memory where, std::size_t n_atoms,
                           std::size_t dim, cudaStream_t stream)
    : n_atoms_(n_atoms), dim_(dim), stream_(stream) {
  require(n_atoms > 0, "D must have at least one atom (K = 0)");
  require(dim > 0, "D must have at least one dimension (d = 0)");
  require(n_atoms <= static_cast<std::size_t>(INT_MAX / 2) && dim <= static_cast<std::size_t>(INT_MAX),
          "D is too large for the GPU path (K or d beyond the 32-bit range of cuBLAS)");
  // Everything allocated is owned by RAII buffers until the constructor succeeds.
  DeviceBuffer owned_atoms, gram;
  if (where == Memory::host) {
    owned_atoms = DeviceBuffer(n_atoms * dim * sizeof(float));
    SMIC_CUDA_CHECK(cudaMemcpyAsync(owned_atoms.as<void>(), atoms, n_atoms * dim * sizeof(float),
                                    cudaMemcpyHostToDevice, stream));
    atoms = owned_atoms.as<float>();
  }
  require_finite_on_device(atoms, n_atoms * dim, dim, "D", stream);
  try {
    gram = DeviceBuffer(n_atoms * n_atoms * sizeof(float));
  } catch (const OutOfMemory& e) {
    throw OutOfMemory("the Gram matrix of K = " + std::to_string(n_atoms) + " atoms needs " +
                      mib(n_atoms * n_atoms * sizeof(float)) + " of device memory: " + e.what());
  }
  cublasHandle_t handle = nullptr;
  SMIC_CUDA_CHECK(cublasCreate(&handle));
  struct HandleGuard {
    cublasHandle_t h;
    ~HandleGuard() {
      if (h != nullptr) cublasDestroy(h);
    }
  } guard{handle};
  SMIC_CUDA_CHECK(cublasSetStream(handle, stream));
  // Plain FP32 products: the CPU oracle computes in FP32, and TF32 (10-bit mantissa) would
  // move supports. CUBLAS_DEFAULT_MATH never uses TF32 for SGEMM (CUBLAS_TF32_TENSOR_OP_MATH
  // would); PEDANTIC is not needed and may pick slower kernels.
  SMIC_CUDA_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  correlations(handle, atoms, n_atoms, dim, atoms, n_atoms, gram.as<float>());

  // Unit-norm rows, checked on the Gram diagonal (to 1e-3, as OmpCoder).
  DeviceBuffer diag(n_atoms * sizeof(float));
  SMIC_CUDA_CHECK(detail::launch_copy_diagonal(gram.as<float>(), n_atoms, diag.as<float>(), stream));
  std::vector<float> host_diag(n_atoms);
  SMIC_CUDA_CHECK(cudaMemcpyAsync(host_diag.data(), diag.as<void>(), n_atoms * sizeof(float),
                                  cudaMemcpyDeviceToHost, stream));
  SMIC_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (std::size_t k = 0; k < n_atoms; ++k) {
    const double norm = std::sqrt(std::max(0.0, double(host_diag[k])));
    if (std::fabs(norm - 1.0) > 1e-3)
      throw InvalidArgument("D must have rows of unit norm: row " + std::to_string(k) +
                            " has norm " + std::to_string(norm));
  }

  // Success: hand ownership to the members (released in the destructor).
  guard.h = nullptr;
  cublas_ = handle;
  atoms_ = atoms;
  atoms_owned_ = static_cast<float*>(owned_atoms.release());
  gram_ = static_cast<float*>(gram.release());
}

OmpCudaCoder::~OmpCudaCoder() {
  if (cublas_ != nullptr) cublasDestroy(handle_of(cublas_));
  if (gram_ != nullptr) cudaFree(gram_);
  if (atoms_owned_ != nullptr) cudaFree(atoms_owned_);
}

EncodeStats OmpCudaCoder::encode(const float* signals, Memory x_where, std::size_t n,
                                 std::size_t n_nonzero, double tol, std::int32_t* indices,
                                 float* coefs, Memory out_where,
                                 const EncodeOptions& options) const {
  check_sparsity(n_nonzero, n_atoms_, dim_, tol);  // the CPU coder's checks
  if (n_nonzero > kMaxNonzero)
    throw InvalidArgument("n_nonzero (" + std::to_string(n_nonzero) +
                          ") must be <= " + std::to_string(kMaxNonzero) + " on the GPU");
  EncodeStats stats;
  if (n == 0) return stats;

  const std::size_t row_bytes = n_atoms_ * sizeof(float) +
                                (x_where == Memory::host ? dim_ * sizeof(float) : 0) +
                                (out_where == Memory::host ? n_nonzero * 8 : 0);
  std::size_t budget = options.memory_limit;
  if (budget == 0) {
    std::size_t free_bytes = 0, total_bytes = 0;
    SMIC_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    budget = free_bytes / 10 * 9;
  }
  std::size_t rows = std::min(n, budget / row_bytes);
  if (options.max_chunk_rows > 0) rows = std::min(rows, options.max_chunk_rows);
  rows = std::min<std::size_t>(rows, INT_MAX / 2);
  if (rows == 0)
    throw OutOfMemory("one signal needs " + std::to_string(row_bytes) +
                      " bytes of device work memory (K = " + std::to_string(n_atoms_) +
                      " correlations), more than the budget of " + std::to_string(budget) +
                      " bytes");

  if (x_where == Memory::device) require_finite_on_device(signals, n * dim_, dim_, "X", stream_);

  // Allocate the chunk's buffers, halving the chunk on allocation failure.
  DeviceBuffer corr, x_stage, i_stage, c_stage;
  for (;;) {
    try {
      corr = DeviceBuffer(rows * n_atoms_ * sizeof(float));
      if (x_where == Memory::host) x_stage = DeviceBuffer(rows * dim_ * sizeof(float));
      if (out_where == Memory::host) {
        i_stage = DeviceBuffer(rows * n_nonzero * sizeof(std::int32_t));
        c_stage = DeviceBuffer(rows * n_nonzero * sizeof(float));
      }
      break;
    } catch (const OutOfMemory&) {
      corr = DeviceBuffer();
      x_stage = DeviceBuffer();
      i_stage = DeviceBuffer();
      c_stage = DeviceBuffer();
      if (rows == 1)
        throw OutOfMemory("out of device memory for even one signal (" +
                          std::to_string(row_bytes) + " bytes of work buffers)");
      rows = (rows + 1) / 2;
    }
  }
  stats.chunk_rows = rows;

  cublasHandle_t handle = handle_of(cublas_);
  for (std::size_t i0 = 0; i0 < n; i0 += rows) {
    const std::size_t m = std::min(rows, n - i0);
    const float* x = signals + i0 * dim_;
    if (x_where == Memory::host) {
      // Finite check of host input: here, chunk by chunk, before any upload is wasted.
      for (std::size_t e = 0; e < m * dim_; ++e)
        if (!std::isfinite(x[e]))
          throw InvalidArgument("X contains NaN or infinity (first at row " +
                                std::to_string(i0 + e / dim_) + ")");
      SMIC_CUDA_CHECK(cudaMemcpyAsync(x_stage.as<void>(), x, m * dim_ * sizeof(float),
                                      cudaMemcpyHostToDevice, stream_));
      x = x_stage.as<float>();
    }
    std::int32_t* out_i = out_where == Memory::host ? i_stage.as<std::int32_t>()
                                                    : indices + i0 * n_nonzero;
    float* out_c = out_where == Memory::host ? c_stage.as<float>() : coefs + i0 * n_nonzero;
    correlations(handle, atoms_, n_atoms_, dim_, x, m, corr.as<float>());
    SMIC_CUDA_CHECK(detail::launch_pursuit(x, corr.as<float>(), gram_, m, n_atoms_, dim_,
                                           n_nonzero, tol, out_i, out_c, stream_));
    if (out_where == Memory::host) {
      SMIC_CUDA_CHECK(cudaMemcpyAsync(indices + i0 * n_nonzero, out_i,
                                      m * n_nonzero * sizeof(std::int32_t),
                                      cudaMemcpyDeviceToHost, stream_));
      SMIC_CUDA_CHECK(cudaMemcpyAsync(coefs + i0 * n_nonzero, out_c,
                                      m * n_nonzero * sizeof(float), cudaMemcpyDeviceToHost,
                                      stream_));
    }
    // The staging buffers are reused by the next chunk: wait for this one (a double-buffered
    // pipeline overlapping upload and compute is future work, see docs/cuda.md).
    SMIC_CUDA_CHECK(cudaStreamSynchronize(stream_));
    ++stats.chunks;
  }
  return stats;
}

}  // namespace smic::cuda
