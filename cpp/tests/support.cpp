#include "support.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>

namespace smic_test {

std::vector<float> unit_rows(std::size_t n, std::size_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<float> rows(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0;
    std::vector<double> row(dim);
    for (auto& v : row) {
      v = normal(rng);
      norm += v * v;
    }
    norm = std::sqrt(norm);
    for (std::size_t j = 0; j < dim; ++j) rows[i * dim + j] = static_cast<float>(row[j] / norm);
  }
  return rows;
}

std::vector<float> sparse_signals(const std::vector<float>& atoms, std::size_t n_atoms,
                                  std::size_t dim, std::size_t n, std::size_t k, uint64_t seed,
                                  std::vector<int32_t>* support) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> magnitude(0.5, 1.5);
  std::vector<int32_t> all(n_atoms);
  std::vector<float> x(n * dim, 0.0f);
  if (support) support->assign(n * k, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t a = 0; a < n_atoms; ++a) all[a] = static_cast<int32_t>(a);
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int32_t> chosen(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k));
    std::sort(chosen.begin(), chosen.end());
    std::vector<double> row(dim, 0.0);
    for (const int32_t a : chosen) {
      const double c = magnitude(rng) * ((rng() & 1) ? 1.0 : -1.0);
      for (std::size_t j = 0; j < dim; ++j) row[j] += c * atoms[static_cast<std::size_t>(a) * dim + j];
    }
    for (std::size_t j = 0; j < dim; ++j) x[i * dim + j] = static_cast<float>(row[j]);
    if (support) std::copy(chosen.begin(), chosen.end(), support->begin() + static_cast<std::ptrdiff_t>(i * k));
  }
  return x;
}

std::shared_ptr<const smic::CodingDictionary> small_dictionary(std::size_t n_atoms, std::size_t dim,
                                                               uint64_t seed, std::size_t n_fit) {
  const std::vector<float> atoms = unit_rows(n_atoms, dim, seed);
  const std::vector<float> fit = unit_rows(n_fit, dim, seed + 1000);
  smic::CodingParams params;
  return smic::CodingDictionary::with_tables(atoms.data(), n_atoms, fit.data(), n_fit, dim, params,
                                             smic::AtomPrecision::kFloat16, 1);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/smic_cpp_test_XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = buffer.data();
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string golden_path(const std::string& name) { return std::string(SMIC_GOLDEN_DIR) + "/" + name; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

namespace {

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24; }
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

// The .npy payload of a stored (method 0) zip entry named `entry`, found by walking the local
// file headers (numpy.savez writes sizes in them: no data descriptors).
std::vector<uint8_t> stored_zip_entry(const std::vector<uint8_t>& zip, const std::string& entry,
                                      const std::string& path) {
  std::size_t pos = 0;
  while (pos + 30 <= zip.size() && le32(&zip[pos]) == 0x04034b50u) {
    const uint16_t method = le16(&zip[pos + 8]);
    uint64_t size = le32(&zip[pos + 18]);
    const uint16_t name_len = le16(&zip[pos + 26]), extra_len = le16(&zip[pos + 28]);
    if (pos + 30 + name_len + extra_len > zip.size()) break;
    const std::string name(reinterpret_cast<const char*>(&zip[pos + 30]), name_len);
    if (size == 0xFFFFFFFFu && extra_len >= 20 && le16(&zip[pos + 30 + name_len]) == 1) {
      const uint8_t* z = &zip[pos + 30 + name_len + 4];  // zip64: uncompressed size first
      size = le32(z) | uint64_t{le32(z + 4)} << 32;
    }
    const std::size_t data = pos + 30 + name_len + extra_len;
    if (data + size > zip.size()) break;
    if (name == entry) {
      if (method != 0) throw std::runtime_error(path + ": " + entry + " is compressed");
      return std::vector<uint8_t>(zip.begin() + static_cast<std::ptrdiff_t>(data),
                                  zip.begin() + static_cast<std::ptrdiff_t>(data + size));
    }
    pos = data + size;
  }
  throw std::runtime_error(path + ": no stored entry " + entry);
}

}  // namespace

NpyArray read_npz_float32(const std::string& path, const std::string& entry) {
  const std::vector<uint8_t> npy = stored_zip_entry(read_bytes(path), entry + ".npy", path);
  if (npy.size() < 10 || std::memcmp(npy.data(), "\x93NUMPY", 6) != 0)
    throw std::runtime_error(path + ": " + entry + " is not .npy");
  const std::size_t header_len = npy[6] == 1 ? le16(&npy[8]) : le32(&npy[8]);
  const std::size_t start = npy[6] == 1 ? 10 : 12;
  if (start + header_len > npy.size()) throw std::runtime_error(path + ": short .npy header");
  const std::string header(reinterpret_cast<const char*>(&npy[start]), header_len);
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path + ": " + entry + " is not C-order float32: " + header);
  NpyArray out;
  const std::size_t open = header.find("'shape': (");
  if (open == std::string::npos) throw std::runtime_error(path + ": no shape");
  std::size_t p = open + 10, count = 1;
  while (p < header.size() && header[p] != ')') {
    if (header[p] >= '0' && header[p] <= '9') {
      std::size_t v = 0;
      while (header[p] >= '0' && header[p] <= '9') v = v * 10 + static_cast<std::size_t>(header[p++] - '0');
      out.shape.push_back(v);
      count *= v;
    } else {
      ++p;
    }
  }
  if (start + header_len + count * 4 != npy.size())
    throw std::runtime_error(path + ": " + entry + " size does not match its shape");
  out.values.resize(count);
  std::memcpy(out.values.data(), &npy[start + header_len], count * 4);  // little-endian host
  return out;
}

}  // namespace smic_test
