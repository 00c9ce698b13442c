// Blocked single-precision C = A * B^T (Goto-style packing, one micro-kernel per CPU family).
#include "kernels/gemm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#if defined(SMIC_HAVE_AVX2_KERNEL)
#include <immintrin.h>
#endif

#include "format/bytes.hpp"
#include "kernels/cpu.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/parallel.hpp"
#include "smic/error.hpp"

namespace smic {
namespace detail {

void micro_kernel_generic(std::size_t kc, const float* a, const float* b, float* c,
                          std::size_t ldc, std::size_t mr, std::size_t nr, bool accumulate) {
  float tile[kMR][kNR] = {};
  for (std::size_t k = 0; k < kc; ++k, a += kMR, b += kNR)
    for (std::size_t r = 0; r < kMR; ++r)
      for (std::size_t j = 0; j < kNR; ++j) tile[r][j] = std::fma(a[r], b[j], tile[r][j]);
  for (std::size_t r = 0; r < mr; ++r)
    for (std::size_t j = 0; j < nr; ++j)
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r][j] : tile[r][j];
}

namespace {

// R rows of A against each 16-atom panel: the micro-kernel's loop for those rows, unpadded.
template <std::size_t R>
void row_kernel_generic_rows(std::size_t kc, const float* a, std::size_t lda,
                             const float* panels, std::size_t n_panels, std::size_t n, float* c,
                             std::size_t ldc, bool accumulate) {
  for (std::size_t jp = 0; jp < n_panels; ++jp) {
    const float* b = panels + jp * kc * kNR;
    float tile[R][kNR] = {};
    for (std::size_t k = 0; k < kc; ++k, b += kNR)
      for (std::size_t r = 0; r < R; ++r) {
        const float ar = a[r * lda + k];
        for (std::size_t j = 0; j < kNR; ++j) tile[r][j] = std::fma(ar, b[j], tile[r][j]);
      }
    const std::size_t nr = std::min(kNR, n - jp * kNR);
    for (std::size_t r = 0; r < R; ++r) {
      float* crow = c + r * ldc + jp * kNR;
      for (std::size_t j = 0; j < nr; ++j)
        crow[j] = accumulate ? crow[j] + tile[r][j] : tile[r][j];
    }
  }
}

}  // namespace

void row_kernel_generic(std::size_t kc, const float* a, std::size_t m, std::size_t lda,
                        const float* panels, std::size_t n_panels, std::size_t n, float* c,
                        std::size_t ldc, bool accumulate) {
  switch (m) {
    case 1: return row_kernel_generic_rows<1>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    case 2: return row_kernel_generic_rows<2>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    case 3: return row_kernel_generic_rows<3>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    case 4: return row_kernel_generic_rows<4>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    default: return row_kernel_generic_rows<5>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
  }
}
static_assert(kSmallRows == 5, "row_kernel_generic dispatches 1 to 5 rows");

namespace {

struct Kernels {
  MicroKernel micro;
  RowKernel row;
  HalfRowKernel half_row;  // nullptr: the family reads float32 panels only
  std::size_t half_group;  // panels the one-row kernel carries per pass
};
constexpr Kernels kGeneric{micro_kernel_generic, row_kernel_generic, nullptr, 4};
#if defined(SMIC_HAVE_AVX2_KERNEL)
constexpr Kernels kAvx2{micro_kernel_avx2, row_kernel_avx2, half_row_kernel_avx2, 4};
#endif
#if defined(SMIC_HAVE_AVX512_KERNEL)
// AVX2's kernels but the one-row float16 product, which is bound by the FMA chains in flight.
constexpr Kernels kAvx512{micro_kernel_avx2, row_kernel_avx2, half_row_kernel_avx512, 8};
#endif

Kernels best_kernels() {
#if defined(SMIC_HAVE_AVX512_KERNEL)
  if (use_avx512_kernels()) return kAvx512;
#endif
#if defined(SMIC_HAVE_AVX2_KERNEL)
  if (use_avx2_kernels()) return kAvx2;
#endif
  return kGeneric;
}

Kernels g_kernels = best_kernels();

}  // namespace

std::size_t half_group_width() { return g_kernels.half_group; }

namespace {

// Pack rows [0, m) x depth [p0, p0 + kc) of A into MR-row micro-panels, k-major, zero-padded.
void pack_a(const float* a, std::size_t m, std::size_t lda, std::size_t p0, std::size_t kc,
            float* out) {
  for (std::size_t i0 = 0; i0 < m; i0 += kMR) {
    const std::size_t mr = std::min(kMR, m - i0);
    for (std::size_t r = 0; r < kMR; ++r) {
      if (r < mr) {
        const float* row = a + (i0 + r) * lda + p0;
        for (std::size_t k = 0; k < kc; ++k) out[k * kMR + r] = row[k];
      } else {
        for (std::size_t k = 0; k < kc; ++k) out[k * kMR + r] = 0.0f;
      }
    }
    out += kc * kMR;
  }
}

}  // namespace
}  // namespace detail

using namespace detail;

PackedB::PackedB(const float* b, std::size_t rows, std::size_t depth, std::size_t ldb,
                 const float* row_scale)
    : rows_(rows), depth_(depth), n_panels_((rows + kNR - 1) / kNR) {
  if (row_scale) scale_.assign(row_scale, row_scale + rows);
  data_.assign(n_panels_ * kNR * depth, 0.0f);
  for (std::size_t p0 = 0; p0 < depth; p0 += kKC) {
    const std::size_t kc = std::min(kKC, depth - p0);
    for (std::size_t jp = 0; jp < n_panels_; ++jp) {
      float* out = data_.data() + p0 * n_panels_ * kNR + jp * kc * kNR;
      const std::size_t nr = std::min(kNR, rows - jp * kNR);
      for (std::size_t j = 0; j < nr; ++j) {
        const float* row = b + (jp * kNR + j) * ldb + p0;
        for (std::size_t k = 0; k < kc; ++k) out[k * kNR + j] = row[k];
      }
    }
  }
  // The float16 copy, kept only if it loses nothing (padding zeros convert exactly); its
  // groups of panels interleaved by depth (see HalfRowKernel).
  half_group_ = half_group_width();
  std::vector<std::uint16_t, HugePageAllocator<std::uint16_t>> half(data_.size());
  for (std::size_t pb = 0, p0 = 0; p0 < depth; ++pb, p0 += kKC) {
    const std::size_t kc = std::min(kKC, depth - p0);
    for (std::size_t g0 = 0; g0 < n_panels_; g0 += half_group_) {
      const std::size_t width = std::min(half_group_, n_panels_ - g0);
      std::uint16_t* group = half.data() + offset(pb, g0);
      for (std::size_t p = 0; p < width; ++p) {
        const float* panel_values = panel(pb, g0 + p);
        for (std::size_t k = 0; k < kc; ++k)
          for (std::size_t j = 0; j < kNR; ++j) {
            const float value = panel_values[k * kNR + j];
            const std::uint16_t h = float_to_half(value);
            const float back = half_to_float(h);
            if (std::memcmp(&back, &value, sizeof(float)) != 0) return;
            group[k * width * kNR + p * kNR + j] = h;
          }
      }
    }
  }
  half_ = std::move(half);
}

std::size_t PackedB::offset(std::size_t depth_block, std::size_t col_panel) const {
  const std::size_t p0 = depth_block * kKC;
  const std::size_t kc = std::min(kKC, depth_ - p0);
  return p0 * n_panels_ * kNR + col_panel * kc * kNR;
}

const float* PackedB::panel(std::size_t depth_block, std::size_t col_panel) const {
  return data_.data() + offset(depth_block, col_panel);
}

const std::uint16_t* PackedB::half_block(std::size_t depth_block) const {
  return half_.data() + offset(depth_block, 0);
}

namespace {

// c[i][j] *= scale[j]: the factored B's row scale, once per entry after all depth blocks.
void scale_columns(float* c, std::size_t m, std::size_t ldc, std::size_t n, const float* scale) {
  for (std::size_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    for (std::size_t j = 0; j < n; ++j) row[j] *= scale[j];
  }
}

// c[j] = ((sums[0][j] + sums[1][j]) + sums[2][j]) + ...: the depth blocks' sums in block order.
void add_blocks_generic(const float* sums, std::size_t n_blocks, std::size_t stride,
                        std::size_t n, float* c) {
  for (std::size_t j = 0; j < n; ++j) c[j] = sums[j];
  for (std::size_t pb = 1; pb < n_blocks; ++pb)
    for (std::size_t j = 0; j < n; ++j) c[j] += sums[pb * stride + j];
}

#if defined(SMIC_HAVE_AVX2_KERNEL)
__attribute__((target("avx2"))) void add_blocks_avx2(const float* sums, std::size_t n_blocks,
                                                     std::size_t stride, std::size_t n, float* c) {
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_loadu_ps(sums + j);
    for (std::size_t pb = 1; pb < n_blocks; ++pb)
      acc = _mm256_add_ps(acc, _mm256_loadu_ps(sums + pb * stride + j));
    _mm256_storeu_ps(c + j, acc);
  }
  add_blocks_generic(sums + j, n_blocks, stride, n - j, c + j);
}
#endif

void add_blocks(const float* sums, std::size_t n_blocks, std::size_t stride, std::size_t n,
                float* c) {
#if defined(SMIC_HAVE_AVX2_KERNEL)
  if (g_kernels.half_row) return add_blocks_avx2(sums, n_blocks, stride, n, c);
#endif
  add_blocks_generic(sums, n_blocks, stride, n, c);
}

// One row against the float16 copy of B: one pass over half the bytes. Each depth block's sums
// go to their own buffer and are added in block order at the end, as the other kernels add
// them, so the pass may run in either direction: it alternates, and starts each time where the
// previous one ended, on the part of B still in the L2 cache (B is larger than the cache:
// 2 MB at K = d = 1024; a pass in one direction would find none of it there).
void half_row_product(const float* a, const PackedB& b, std::size_t n_panels, float* c) {
  const std::size_t n = b.rows(), depth = b.depth();
  const std::size_t n_blocks = (depth + kKC - 1) / kKC;
  thread_local std::vector<float> sums;
  thread_local bool backwards = false;
  if (n_blocks == 1) {
    g_kernels.half_row(depth, a, b.half_block(0), n_panels, b.half_group(), n, c, false, false);
    return;
  }
  const std::size_t stride = n_panels * kNR;
  if (sums.size() < n_blocks * stride) sums.resize(n_blocks * stride);
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const std::size_t pb = backwards ? n_blocks - 1 - i : i;
    const std::size_t p0 = pb * kKC;
    g_kernels.half_row(std::min(kKC, depth - p0), a + p0, b.half_block(pb), n_panels,
                       b.half_group(), n, sums.data() + pb * stride, false, backwards);
  }
  backwards = !backwards;
  add_blocks(sums.data(), n_blocks, stride, n, c);
}

// The product without the row scale.
void product_unscaled(const float* a, std::size_t m, std::size_t lda, const PackedB& b, float* c,
                      std::size_t ldc) {
  const std::size_t n = b.rows(), depth = b.depth();
  if (m == 0 || n == 0) return;
  if (depth == 0) {
    for (std::size_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  const std::size_t n_panels = (n + kNR - 1) / kNR;
  if (m == 1 && b.has_half() && g_kernels.half_row) {
    half_row_product(a, b, n_panels, c);
    return;
  }
  if (m <= kSmallRows) {  // one pass over B, rows unpadded (memory-bound GEMV for m == 1)
    const RowKernel row = g_kernels.row;
    for (std::size_t p0 = 0, pb = 0; p0 < depth; p0 += kKC, ++pb)
      row(std::min(kKC, depth - p0), a + p0, m, lda, b.panel(pb, 0), n_panels, n, c, ldc, p0 > 0);
    return;
  }
  const MicroKernel kernel = g_kernels.micro;
  thread_local std::vector<float> a_packed;
  a_packed.resize(kMC * kKC);
  for (std::size_t i0 = 0; i0 < m; i0 += kMC) {
    const std::size_t mc = std::min(kMC, m - i0);
    for (std::size_t p0 = 0, pb = 0; p0 < depth; p0 += kKC, ++pb) {
      const std::size_t kc = std::min(kKC, depth - p0);
      pack_a(a + i0 * lda, mc, lda, p0, kc, a_packed.data());
      for (std::size_t jp = 0; jp < n_panels; ++jp) {
        const float* bp = b.panel(pb, jp);
        const std::size_t nr = std::min(kNR, n - jp * kNR);
        for (std::size_t ir = 0; ir < mc; ir += kMR) {
          kernel(kc, a_packed.data() + ir * kc, bp, c + (i0 + ir) * ldc + jp * kNR, ldc,
                 std::min(kMR, mc - ir), nr, p0 > 0);
        }
      }
    }
  }
}

}  // namespace

void gemm_nt_packed(const float* a, std::size_t m, std::size_t lda, const PackedB& b, float* c,
                    std::size_t ldc) {
  product_unscaled(a, m, lda, b, c, ldc);
  if (b.row_scale() && b.depth() > 0) scale_columns(c, m, ldc, b.rows(), b.row_scale());
}

void gemm_nt(const float* a, std::size_t m, std::size_t lda, const float* b, std::size_t n,
             std::size_t ldb, std::size_t k, float* c, std::size_t ldc, int n_threads) {
  const PackedB packed(b, n, k, ldb);
  const std::size_t n_blocks = (m + kMC - 1) / kMC;
  parallel_for(n_blocks, n_threads, [&](std::size_t blk) {
    const std::size_t i0 = blk * kMC;
    gemm_nt_packed(a + i0 * lda, std::min(kMC, m - i0), lda, packed, c + i0 * ldc, ldc);
  });
}

const char* gemm_kernel_name() {
#if defined(SMIC_HAVE_AVX512_KERNEL)
  if (g_kernels.half_row == half_row_kernel_avx512) return "avx512";
#endif
#if defined(SMIC_HAVE_AVX2_KERNEL)
  if (g_kernels.micro == micro_kernel_avx2) return "avx2";
#endif
  return "generic";
}

bool gemm_kernel_available(const char* name) {
  const std::string want = name ? name : "auto";
  if (want == "auto" || want == "generic") return true;
#if defined(SMIC_HAVE_AVX2_KERNEL)
  if (want == "avx2") return cpu_has_avx2();
#endif
#if defined(SMIC_HAVE_AVX512_KERNEL)
  if (want == "avx512") return cpu_has_avx512();
#endif
  return false;
}

bool set_gemm_kernel(const char* name) {
  const std::string want = name ? name : "auto";
  if (!gemm_kernel_available(want.c_str())) return false;
  if (want == "auto") {
    g_kernels = best_kernels();
  } else if (want == "generic") {
    g_kernels = kGeneric;
  }
#if defined(SMIC_HAVE_AVX2_KERNEL)
  else if (want == "avx2") {
    g_kernels = kAvx2;
  }
#endif
#if defined(SMIC_HAVE_AVX512_KERNEL)
  else if (want == "avx512") {
    g_kernels = kAvx512;
  }
#endif
  return true;
}

}  // namespace smic
