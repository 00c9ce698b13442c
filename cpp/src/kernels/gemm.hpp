// Single-precision matrix products used by the core (the floor every OMP pays).
//
// Layout convention: every matrix is row-major and a "vector" is a row. The one product the
// core needs is C = A * B^T, i.e. C[i][j] = <A_i, B_j>, with the contraction dimension
// contiguous in both operands (signals x atoms from signals and atoms).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/huge_page_allocator.hpp"

namespace smic {

/// B packed once into the micro-panel layout of the kernels, so that many products against the
/// same B (one per block of signals, in several threads) skip re-packing it.
///
/// B may be given factored, B = diag(row_scale) * R: the products then compute (A R^T) and
/// scale column j by row_scale[j] once at the end. Atoms read from a file are such a product
/// (float16 values, or int8 levels, times a per-atom factor), and R then holds only values that
/// are exactly float16: a float16 copy of the panels is kept, and a product of one row reads it
/// instead of the float32 panels, half the bytes, with bit-identical results.
class PackedB {
 public:
  PackedB() = default;
  /// Pack `rows` x `depth` row-major matrix `b` (row stride `ldb`); with `row_scale` (`rows`
  /// values), B is diag(row_scale) * b.
  PackedB(const float* b, std::size_t rows, std::size_t depth, std::size_t ldb,
          const float* row_scale = nullptr);

  std::size_t rows() const { return rows_; }
  std::size_t depth() const { return depth_; }
  const float* panel(std::size_t depth_block, std::size_t col_panel) const;
  /// Whether the float16 copy exists (every value of R is exactly a float16).
  bool has_half() const { return !half_.empty(); }
  /// The float16 copy's depth block (its panels grouped for one-row passes; internal layout).
  const std::uint16_t* half_block(std::size_t depth_block) const;
  /// Panels per group of the float16 copy (internal layout).
  std::size_t half_group() const { return half_group_; }
  /// The per-row factors, or nullptr when B was given whole.
  const float* row_scale() const { return scale_.empty() ? nullptr : scale_.data(); }

 private:
  std::size_t offset(std::size_t depth_block, std::size_t col_panel) const;

  std::size_t rows_ = 0, depth_ = 0, n_panels_ = 0, half_group_ = 1;
  std::vector<float> data_;
  std::vector<std::uint16_t, HugePageAllocator<std::uint16_t>> half_;
  std::vector<float> scale_;
};

/// C (m x B.rows(), row stride ldc) = A (m x B.depth(), row stride lda) * B^T.
/// Single-threaded; call it from several threads on disjoint row blocks of A and C.
/// m <= 5 takes a row kernel (GEMV for one row) that reads B once without padding A to the
/// micro-tile. Every entry is the same sequence of float operations whichever path computes
/// it: for each depth block of 256, a chain of fused multiply-adds over k from zero; the
/// blocks' sums added in order; then the row scale's multiply. So a row's result is
/// bit-identical whatever m, blocking, thread count or kernel ("avx2" or "generic").
void gemm_nt_packed(const float* a, std::size_t m, std::size_t lda, const PackedB& b, float* c,
                    std::size_t ldc);

/// C = A * B^T for A (m x k) and B (n x k); parallel over row blocks with OpenMP.
void gemm_nt(const float* a, std::size_t m, std::size_t lda, const float* b, std::size_t n,
             std::size_t ldb, std::size_t k, float* c, std::size_t ldc, int n_threads = 0);

/// Name of the kernel in use: "avx512" (AVX2's kernels, and AVX-512F for a one-row product
/// over a B with a float16 copy), "avx2" (AVX2 + F16C; a one-row product over a B with a
/// float16 copy reads that copy) or "generic" (plain C++, float32 panels). All give the same
/// bits.
const char* gemm_kernel_name();
/// True when set_gemm_kernel(name) would succeed on this CPU ("auto" and "generic" always).
bool gemm_kernel_available(const char* name);
/// Select the kernel: "auto" (best the CPU supports), "avx512", "avx2" or "generic". Returns
/// false if the request cannot be honoured on this CPU. Not thread-safe; meant for tests and
/// benchmarks.
bool set_gemm_kernel(const char* name);

}  // namespace smic
