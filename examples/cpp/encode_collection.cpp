// Encode embeddings with a shared .smicd dictionary from C++ and write a .smic collection:
// what a C++ service does with embeddings it computed itself. No Python involved.
//
//   encode_collection dictionary.smicd embeddings.f32 dim out.smic
//
// embeddings.f32 holds n x dim little-endian float32 values, row-major. The program prints
// one line per item, "id<TAB>hex bytes": the item coded alone (the bytes Python's
// Dictionary.encode gives), checks each decodes to what the collection gives for it, and
// writes all items as out.smic with the dictionary embedded and ids "item-0", "item-1", ...
// Exit status 0 on success, 1 on an error (its message goes to stderr).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/collection.hpp"
#include "smic/error.hpp"

namespace {

std::vector<float> read_floats(const std::string& path, std::size_t dim) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) throw smic::IoError("cannot open " + path);
  const auto size = static_cast<std::size_t>(file.tellg());
  if (size % (dim * sizeof(float)) != 0) {
    throw smic::InvalidArgument(path + ": " + std::to_string(size) +
                                " bytes is not a whole number of rows of " +
                                std::to_string(dim) + " float32");
  }
  std::vector<float> values(size / sizeof(float));
  file.seekg(0);
  file.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(size));
  if (!file) throw smic::IoError("cannot read " + path);
  return values;  // this example assumes a little-endian machine, as x86 and ARM are
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s dictionary.smicd embeddings.f32 dim out.smic\n", argv[0]);
    return 2;
  }
  try {
    // Loaded once, immutable: any number of threads may encode with it at the same time.
    const std::shared_ptr<const smic::CodingDictionary> dictionary =
        smic::CodingDictionary::load(argv[1]);
    const std::size_t dim = std::strtoull(argv[3], nullptr, 10);
    if (dim != dictionary->dim()) {
      throw smic::InvalidArgument("dim " + std::string(argv[3]) + " but the dictionary has " +
                                  std::to_string(dictionary->dim()));
    }
    const std::vector<float> embeddings = read_floats(argv[2], dim);
    const std::size_t n = embeddings.size() / dim;

    std::vector<std::string> ids;
    std::vector<float> decoded(dim);
    for (std::size_t i = 0; i < n; ++i) {
      ids.push_back("item-" + std::to_string(i));
      // One item: its bytes, then back to the unit-norm embedding a reader gets.
      const std::vector<uint8_t> bytes = dictionary->encode_one(&embeddings[i * dim]);
      dictionary->decode_one(bytes.data(), bytes.size(), decoded.data());
      std::printf("%s\t", ids.back().c_str());
      for (uint8_t byte : bytes) std::printf("%02x", byte);
      std::printf("\n");
    }

    smic::WriteOptions options;
    options.embed_dictionary = true;  // the file stands alone (false: readers need the .smicd)
    options.model = "example";
    smic::CollectionWriter::write(argv[4], embeddings.data(), n, dim, *dictionary, ids, {},
                                  options);

    // Read it back: each item decodes to what its bytes alone decode to.
    const smic::Collection collection = smic::Collection::open(argv[4]);
    for (std::size_t i = 0; i < n; ++i) {
      const std::vector<uint8_t> bytes = dictionary->encode_one(&embeddings[i * dim]);
      dictionary->decode_one(bytes.data(), bytes.size(), decoded.data());
      if (collection.item(i) != decoded) {
        std::fprintf(stderr, "item %zu: the collection and the item's bytes disagree\n", i);
        return 1;
      }
    }
    std::fprintf(stderr, "wrote %zu items, %llu bytes, to %s\n", n,
                 static_cast<unsigned long long>(collection.file_bytes()), argv[4]);
    return 0;
  } catch (const std::exception& error) {  // smic::FormatError, IoError, InvalidArgument, ...
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
