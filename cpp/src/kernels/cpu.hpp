// Internal: which instruction sets the kernels picked at run time may use.
#pragma once

namespace smic::detail {

/// True when the CPU has AVX2, FMA and F16C (the "avx2" kernels' needs).
bool cpu_has_avx2();

/// True when the CPU has AVX-512F on top of cpu_has_avx2(), and the OS saves its registers.
bool cpu_has_avx512();

/// True when SMIC_KERNELS=portable was set when the library loaded: every kernel chosen at run
/// time then takes its plain x86-64 version (the results are bit-identical either way; this is
/// for checking that, and for ruling the vector code out when chasing a problem).
bool kernels_forced_portable();

/// True when SMIC_KERNELS=avx2 was set when the library loaded: no AVX-512 kernel runs (again
/// bit-identical results; for comparing the families on one machine).
bool kernels_capped_at_avx2();

/// cpu_has_avx2() and not kernels_forced_portable(): what the dispatchers pick by default.
inline bool use_avx2_kernels() { return cpu_has_avx2() && !kernels_forced_portable(); }

/// The AVX-512 kernels by default: the CPU has them and SMIC_KERNELS asks for neither
/// portable nor avx2.
inline bool use_avx512_kernels() {
  return cpu_has_avx512() && use_avx2_kernels() && !kernels_capped_at_avx2();
}

}  // namespace smic::detail
