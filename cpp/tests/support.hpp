// Helpers shared by the C++ tests: seeded test data, temporary folders, the golden files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "smic/coding_dictionary.hpp"

namespace smic_test {

/// n x dim rows of unit norm with Gaussian entries, from a fixed seed (the same on every run).
std::vector<float> unit_rows(std::size_t n, std::size_t dim, uint64_t seed);

/// Sparse signals over `atoms` (n_atoms x dim): each row a combination of exactly `k` distinct
/// atoms with coefficients of magnitude in [0.5, 1.5] and random signs, no noise. `support`
/// receives the atoms of each row (n x k, ascending).
std::vector<float> sparse_signals(const std::vector<float>& atoms, std::size_t n_atoms,
                                  std::size_t dim, std::size_t n, std::size_t k, uint64_t seed,
                                  std::vector<int32_t>* support);

/// A small fitted dictionary (K x dim, float16 atoms, tables fitted on `n_fit` unit rows).
std::shared_ptr<const smic::CodingDictionary> small_dictionary(std::size_t n_atoms = 24,
                                                               std::size_t dim = 16,
                                                               uint64_t seed = 1,
                                                               std::size_t n_fit = 300);

/// A fresh folder under the system's temporary directory, removed with its content when the
/// object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// tests/golden/<name>.
std::string golden_path(const std::string& name);
/// The bytes of a file (throws std::runtime_error naming it when it cannot be read).
std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

/// A float32 array of an uncompressed .npz (numpy.savez): its values and shape. Throws
/// std::runtime_error when the entry is missing or not a little-endian C-order float32 array.
struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<float> values;
};
NpyArray read_npz_float32(const std::string& path, const std::string& entry);

}  // namespace smic_test
