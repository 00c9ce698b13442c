// Internal: the GPU pursuit (pursuit_warp.hpp) run on the host, for tests without a GPU.
#pragma once
#include <cstddef>
#include <cstdint>

namespace smic::cuda::detail {

/// Code m signals with the warp code of the GPU kernel, each "warp" being 32 cooperative
/// fibers (ucontext, round-robin at every shuffle and sync) on the calling thread. `corr`
/// (m x K, D x of each signal) is scratch, `gram` is K x K. Throws std::runtime_error if the
/// lanes ever reach different shuffles/syncs (what would be undefined behaviour on a GPU).
void emulate_pursuit(const float* signals, float* corr, const float* gram, std::size_t m,
                     std::size_t n_atoms, std::size_t dim, std::size_t n_nonzero, double tol,
                     std::int32_t* indices, float* coefs);

}  // namespace smic::cuda::detail
