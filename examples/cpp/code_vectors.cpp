// Sparse-code a few vectors over a dictionary learned from them, quantize the coefficients and
// range-code indices and levels; decode and check everything comes back. Prints one summary
// line and exits 0 on success, 1 on any mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "smic/ksvd.hpp"
#include "smic/omp.hpp"
#include "smic/quantizer.hpp"
#include "smic/range_coder.hpp"

int main() {
  const std::size_t n = 400, dim = 32, n_atoms = 24, sparsity = 2;
  std::mt19937 gen(7);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * dim);
  for (auto& v : x) v = normal(gen);

  smic::KsvdOptions options;
  options.n_atoms = n_atoms;
  options.n_nonzero = sparsity;
  options.n_iter = 5;
  const smic::KsvdResult learned = smic::learn_dictionary(x.data(), n, dim, options);

  std::vector<std::int32_t> indices(n * sparsity);
  std::vector<float> coefs(n * sparsity);
  smic::batch_omp(x.data(), n, learned.atoms.data(), n_atoms, dim, sparsity, -1.0,
                  indices.data(), coefs.data());

  const smic::ScalarQuantizer quantizer{0.05, 0.5, 0.0};
  std::vector<std::int32_t> levels(coefs.size());
  quantizer.quantize(coefs.data(), coefs.size(), levels.data());
  std::int32_t lowest = 0, highest = 0;
  for (std::int32_t q : levels) {
    lowest = std::min(lowest, q);
    highest = std::max(highest, q);
  }
  std::vector<std::int32_t> level_symbols(levels.size());
  for (std::size_t i = 0; i < levels.size(); ++i) level_symbols[i] = levels[i] - lowest;

  std::vector<std::uint64_t> index_counts(n_atoms, 0), level_counts(highest - lowest + 1, 0);
  for (std::int32_t k : indices) ++index_counts[static_cast<std::size_t>(k)];
  for (std::int32_t s : level_symbols) ++level_counts[static_cast<std::size_t>(s)];
  const auto index_freqs = smic::frequencies_from_counts(index_counts.data(), index_counts.size());
  const auto level_freqs = smic::frequencies_from_counts(level_counts.data(), level_counts.size());
  const smic::StaticModel index_model(index_freqs.data(), index_freqs.size());
  const smic::StaticModel level_model(level_freqs.data(), level_freqs.size());
  const auto index_bytes = smic::encode_static(indices.data(), indices.size(), index_model);
  const auto level_bytes = smic::encode_static(level_symbols.data(), level_symbols.size(), level_model);

  std::vector<std::int32_t> got_indices(indices.size()), got_levels(level_symbols.size());
  smic::decode_static(index_bytes.data(), index_bytes.size(), index_model, got_indices.data(),
                      got_indices.size());
  smic::decode_static(level_bytes.data(), level_bytes.size(), level_model, got_levels.data(),
                      got_levels.size());
  if (got_indices != indices || got_levels != level_symbols) {
    std::puts("MISMATCH");
    return 1;
  }
  std::printf("coded %zu vectors: %zu index bytes, %zu level bytes, %.2f bits per vector\n", n,
              index_bytes.size(), level_bytes.size(),
              8.0 * double(index_bytes.size() + level_bytes.size()) / double(n));
  return 0;
}
