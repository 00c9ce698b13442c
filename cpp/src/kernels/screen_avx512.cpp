// The atom screen's kernels (see atom_screen.hpp), built for AVX-512 VNNI with 256-bit vectors
// (-mavx512f -mavx512vl -mavx512vnni): the int8 product runs as vpdpbusd, 32 multiply-adds per
// instruction, and the exact products of a few atoms read their rows of float16 values through
// an 8 x 8 transposition, so that each lane runs its atom's chain of fused multiply-adds in the
// order every product kernel uses. atom_screen.cpp calls them only after a CPUID check.
#include "kernels/screen_kernels.hpp"

#if defined(SMIC_HAVE_AVX512_KERNEL)
#include <immintrin.h>

#include <cmath>

namespace smic::detail {
namespace {

// Rows r[0..7] at depths k .. k + 7, transposed: v[i] holds depth k + i of the eight rows.
__attribute__((always_inline)) inline void load_transposed(const std::uint16_t* const* r,
                                                           std::size_t k, __m256* v) {
  const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[0] + k));
  const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[1] + k));
  const __m128i r2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[2] + k));
  const __m128i r3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[3] + k));
  const __m128i r4 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[4] + k));
  const __m128i r5 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[5] + k));
  const __m128i r6 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[6] + k));
  const __m128i r7 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[7] + k));
  const __m128i t0 = _mm_unpacklo_epi16(r0, r1), t1 = _mm_unpackhi_epi16(r0, r1);
  const __m128i t2 = _mm_unpacklo_epi16(r2, r3), t3 = _mm_unpackhi_epi16(r2, r3);
  const __m128i t4 = _mm_unpacklo_epi16(r4, r5), t5 = _mm_unpackhi_epi16(r4, r5);
  const __m128i t6 = _mm_unpacklo_epi16(r6, r7), t7 = _mm_unpackhi_epi16(r6, r7);
  const __m128i u0 = _mm_unpacklo_epi32(t0, t2), u1 = _mm_unpackhi_epi32(t0, t2);
  const __m128i u2 = _mm_unpacklo_epi32(t1, t3), u3 = _mm_unpackhi_epi32(t1, t3);
  const __m128i u4 = _mm_unpacklo_epi32(t4, t6), u5 = _mm_unpackhi_epi32(t4, t6);
  const __m128i u6 = _mm_unpacklo_epi32(t5, t7), u7 = _mm_unpackhi_epi32(t5, t7);
  v[0] = _mm256_cvtph_ps(_mm_unpacklo_epi64(u0, u4));
  v[1] = _mm256_cvtph_ps(_mm_unpackhi_epi64(u0, u4));
  v[2] = _mm256_cvtph_ps(_mm_unpacklo_epi64(u1, u5));
  v[3] = _mm256_cvtph_ps(_mm_unpackhi_epi64(u1, u5));
  v[4] = _mm256_cvtph_ps(_mm_unpacklo_epi64(u2, u6));
  v[5] = _mm256_cvtph_ps(_mm_unpackhi_epi64(u2, u6));
  v[6] = _mm256_cvtph_ps(_mm_unpacklo_epi64(u3, u7));
  v[7] = _mm256_cvtph_ps(_mm_unpackhi_epi64(u3, u7));
}

// Eight steps of one chain: acc = fma(x[k + i], row depth k + i, acc) for i = 0 .. 7.
__attribute__((always_inline)) inline __m256 chain_steps(const float* x,
                                                         const std::uint16_t* const* r,
                                                         std::size_t k, __m256 acc) {
  __m256 v[8];
  load_transposed(r, k, v);
  for (int i = 0; i < 8; ++i) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k + i), v[i], acc);
  return acc;
}

// NB full depth blocks b0 .. b0 + NB - 1 (kKC deep each), their chains interleaved (each is a
// dependent sequence; several in flight keep the FMA units busy). Adds each block's sum to
// *total in block order (the first block of the row initialises it).
template <int NB>
void full_blocks(const float* x, const std::uint16_t* const* r, std::size_t b0, __m256* total,
                 bool first) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const std::size_t p0 = b0 * kKC;
  for (std::size_t k = 0; k < kKC; k += 8) {
    a0 = chain_steps(x, r, p0 + k, a0);
    if constexpr (NB > 1) a1 = chain_steps(x, r, p0 + kKC + k, a1);
    if constexpr (NB > 2) a2 = chain_steps(x, r, p0 + 2 * kKC + k, a2);
    if constexpr (NB > 3) a3 = chain_steps(x, r, p0 + 3 * kKC + k, a3);
  }
  *total = first ? a0 : _mm256_add_ps(*total, a0);
  if constexpr (NB > 1) *total = _mm256_add_ps(*total, a1);
  if constexpr (NB > 2) *total = _mm256_add_ps(*total, a2);
  if constexpr (NB > 3) *total = _mm256_add_ps(*total, a3);
}

}  // namespace

void screen_levels_avx512(const std::uint8_t* xu, const std::int8_t* levels, std::size_t n_blocks,
                          std::size_t quads, std::int32_t* out, bool backwards) {
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const std::size_t blk = backwards ? n_blocks - 1 - i : i;
    const std::int8_t* p = levels + blk * quads * 256;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
            a7 = a0;
    for (std::size_t q = 0; q < quads; ++q, p += 256) {
      std::int32_t quad;
      __builtin_memcpy(&quad, xu + 4 * q, 4);
      const __m256i xv = _mm256_set1_epi32(quad);
      a0 = _mm256_dpbusd_epi32(a0, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      a1 = _mm256_dpbusd_epi32(a1, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
      a2 = _mm256_dpbusd_epi32(a2, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64)));
      a3 = _mm256_dpbusd_epi32(a3, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 96)));
      a4 = _mm256_dpbusd_epi32(a4, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 128)));
      a5 = _mm256_dpbusd_epi32(a5, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 160)));
      a6 = _mm256_dpbusd_epi32(a6, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 192)));
      a7 = _mm256_dpbusd_epi32(a7, xv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 224)));
    }
    __m256i* o = reinterpret_cast<__m256i*>(out + blk * 64);
    _mm256_storeu_si256(o, a0);
    _mm256_storeu_si256(o + 1, a1);
    _mm256_storeu_si256(o + 2, a2);
    _mm256_storeu_si256(o + 3, a3);
    _mm256_storeu_si256(o + 4, a4);
    _mm256_storeu_si256(o + 5, a5);
    _mm256_storeu_si256(o + 6, a6);
    _mm256_storeu_si256(o + 7, a7);
  }
}

float quantize_row_avx512(const float* x, std::size_t dim, std::uint8_t* xu, float* w_sq) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 top = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 8 <= dim; j += 8) top = _mm256_max_ps(top, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, top);
  float max_abs = 0.0f;
  for (float v : lanes) max_abs = std::fmax(max_abs, v);
  for (std::size_t i = j; i < dim; ++i) max_abs = std::fmax(max_abs, std::fabs(x[i]));
  if (!(max_abs > 0.0f)) {
    for (std::size_t i = 0; i < dim; ++i) xu[i] = 128;
    *w_sq = 0.0f;
    return 0.0f;
  }
  const float tau = max_abs / 127.0f, inv = 127.0f / max_abs;
  const __m256 tau_v = _mm256_set1_ps(tau), inv_v = _mm256_set1_ps(inv);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127), bias = _mm256_set1_epi32(128);
  __m256 sq = _mm256_setzero_ps();
  for (j = 0; j + 8 <= dim; j += 8) {
    const __m256 xv = _mm256_loadu_ps(x + j);
    __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(xv, inv_v));
    v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
    const __m256 w = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(v), tau_v, xv);
    sq = _mm256_fmadd_ps(w, w, sq);
    // (the zero-masked form: GCC 12 warns that the plain one reads an undefined register)
    _mm_storel_epi64(reinterpret_cast<__m128i*>(xu + j),
                     _mm256_maskz_cvtepi32_epi8(0xff, _mm256_add_epi32(v, bias)));
  }
  _mm256_store_ps(lanes, sq);
  float total = 0.0f;
  for (float v : lanes) total += v;
  for (; j < dim; ++j) {
    const float v = std::fmin(std::fmax(std::nearbyint(x[j] * inv), -127.0f), 127.0f);
    const float w = std::fma(-v, tau, x[j]);
    total = std::fma(w, w, total);
    xu[j] = static_cast<std::uint8_t>(static_cast<int>(v) + 128);
  }
  *w_sq = total;
  return tau;
}

void exact_rows_avx512(const float* x, const std::uint16_t* const* rows, std::size_t dim,
                       float* out) {
  const std::size_t full = dim / kKC;
  __m256 total = _mm256_setzero_ps();
  std::size_t b = 0;
  for (; b + 4 <= full; b += 4) full_blocks<4>(x, rows, b, &total, b == 0);
  switch (full - b) {
    case 3: full_blocks<3>(x, rows, b, &total, b == 0); break;
    case 2: full_blocks<2>(x, rows, b, &total, b == 0); break;
    case 1: full_blocks<1>(x, rows, b, &total, b == 0); break;
    default: break;
  }
  const std::size_t p0 = full * kKC, kc = dim - p0;
  if (kc == 0) {
    _mm256_storeu_ps(out, total);
    return;
  }
  // The last, shorter block: eight depths at a time, then each lane's remaining depths.
  __m256 acc = _mm256_setzero_ps();
  std::size_t k = 0;
  for (; k + 8 <= kc; k += 8) acc = chain_steps(x, rows, p0 + k, acc);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  for (int l = 0; l < 8; ++l)
    for (std::size_t i = k; i < kc; ++i)
      lanes[l] = std::fma(x[p0 + i], _cvtsh_ss(rows[l][p0 + i]), lanes[l]);
  acc = _mm256_load_ps(lanes);
  _mm256_storeu_ps(out, full == 0 ? acc : _mm256_add_ps(total, acc));
}

}  // namespace smic::detail
#endif
