// Batch OMP on a CUDA GPU: the GPU counterpart of smic::OmpCoder (cpp/include/smic/omp.hpp),
// built only with -DSMIC_CUDA=ON. Correlations D x and the Gram matrix D D^T come from cuBLAS
// SGEMM; the greedy selection and the progressive Cholesky factorisation run in a custom kernel,
// one warp per signal. Selection, tie-breaking (lowest index), stopping rules and the layout of
// the results (index -1 / coefficient 0 in unused slots) mirror the CPU path, which is the
// oracle of the tests (docs/cuda.md).
//
// STATUS: compiled, never run on a GPU yet (no GPU was available when it was written).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace smic::cuda {

/// A CUDA runtime or cuBLAS call failed (the message names the call and the error).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// No usable device: no GPU, no driver, or a driver too old for this build.
class Unavailable : public Error {
 public:
  using Error::Error;
};

/// Device memory ran out even for the smallest chunk of work (the message says how much).
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

/// Most atoms per signal of the GPU path: the kernel keeps two support slots per lane.
constexpr std::size_t kMaxNonzero = 64;

/// Number of CUDA devices, or 0 with the reason in *why (never throws).
int device_count(std::string* why);

/// Where a pointer lives, for the arguments of OmpCudaCoder.
enum class Memory { host, device };

struct EncodeOptions {
  /// Bytes of device memory the per-chunk work buffers may take (correlations, and staging of
  /// host inputs/outputs); 0: 90% of the free device memory. The Gram matrix is not counted.
  std::size_t memory_limit = 0;
  /// Most signals per chunk; 0: as many as memory_limit allows.
  std::size_t max_chunk_rows = 0;
};

/// What an encode call did (for tests and benchmarks).
struct EncodeStats {
  std::size_t chunk_rows = 0;  ///< signals per chunk actually used
  std::size_t chunks = 0;      ///< chunks processed
};

/// A dictionary on the GPU with its Gram matrix: build once, code many batches.
/// All work is queued on `stream`; every public call returns after the stream is synchronised,
/// so results are ready for any other stream.
class OmpCudaCoder {
 public:
  /// `atoms`: n_atoms x dim, row-major float32, unit-norm rows (checked to 1e-3, as on the CPU),
  /// in host or device memory (device memory must be on the current device and stay alive
  /// while the coder is used: it is borrowed, not copied).
  OmpCudaCoder(const float* atoms, Memory where, std::size_t n_atoms, std::size_t dim,
               cudaStream_t stream);
  ~OmpCudaCoder();
  OmpCudaCoder(const OmpCudaCoder&) = delete;
  OmpCudaCoder& operator=(const OmpCudaCoder&) = delete;

  std::size_t n_atoms() const { return n_atoms_; }
  std::size_t dim() const { return dim_; }

  /// Code n signals (n x dim, row-major) with at most n_nonzero <= min(kMaxNonzero, K, d) atoms;
  /// tol >= 0 stops a signal once its squared residual norm is <= tol (tol < 0: never).
  /// Writes n x n_nonzero indices (int32) and coefficients (float32) to `indices`/`coefs`,
  /// which live in `out_where` memory. Throws smic::InvalidArgument for bad arguments (NaN or
  /// inf in X included), OutOfMemory when not even one signal fits, Error for CUDA failures.
  EncodeStats encode(const float* signals, Memory x_where, std::size_t n, std::size_t n_nonzero,
                     double tol, std::int32_t* indices, float* coefs, Memory out_where,
                     const EncodeOptions& options = {}) const;

 private:
  std::size_t n_atoms_, dim_;
  cudaStream_t stream_;
  void* cublas_ = nullptr;       // cublasHandle_t, kept opaque so this header needs no cuBLAS
  float* atoms_owned_ = nullptr;  // device copy of host atoms
  const float* atoms_ = nullptr;  // device atoms (owned copy or borrowed)
  float* gram_ = nullptr;         // n_atoms x n_atoms, device
};

}  // namespace smic::cuda
