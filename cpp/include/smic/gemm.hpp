// Single-precision matrix products used by the core (the floor every OMP pays).
//
// Layout convention: every matrix is row-major and a "vector" is a row. The one product the
// core needs is C = A * B^T, i.e. C[i][j] = <A_i, B_j>, with the contraction dimension
// contiguous in both operands (signals x atoms from signals and atoms).
#pragma once
#include <cstddef>
#include <vector>

namespace smic {

/// B packed once into the micro-panel layout of the active kernel, so that many products
/// against the same B (one per block of signals, in several threads) skip re-packing it.
class PackedB {
 public:
  PackedB() = default;
  /// Pack `rows` x `depth` row-major matrix `b` (row stride `ldb`).
  PackedB(const float* b, std::size_t rows, std::size_t depth, std::size_t ldb);

  std::size_t rows() const { return rows_; }
  std::size_t depth() const { return depth_; }
  const float* panel(std::size_t depth_block, std::size_t col_panel) const;

 private:
  std::size_t rows_ = 0, depth_ = 0, n_panels_ = 0;
  std::vector<float> data_;
};

/// C (m x B.rows(), row stride ldc) = A (m x B.depth(), row stride lda) * B^T.
/// Single-threaded; call it from several threads on disjoint row blocks of A and C.
/// m <= 5 takes a row kernel (GEMV for one row) that reads B once without padding A to the
/// micro-tile; it sums in the micro-kernel's order, so a row's result is bit-identical
/// whatever m, blocking or thread count (for a given kernel: "avx2" and "generic" differ by
/// float rounding, the former fusing multiply-adds).
void gemm_nt_packed(const float* a, std::size_t m, std::size_t lda, const PackedB& b, float* c,
                    std::size_t ldc);

/// C = A * B^T for A (m x k) and B (n x k); parallel over row blocks with OpenMP.
void gemm_nt(const float* a, std::size_t m, std::size_t lda, const float* b, std::size_t n,
             std::size_t ldb, std::size_t k, float* c, std::size_t ldc, int n_threads = 0);

/// Name of the kernel in use: "avx2" or "generic".
const char* gemm_kernel_name();
/// Select the kernel: "auto" (best the CPU supports), "avx2" or "generic". Returns false if
/// the request cannot be honoured on this CPU. Not thread-safe; meant for tests and benchmarks.
bool set_gemm_kernel(const char* name);

}  // namespace smic
