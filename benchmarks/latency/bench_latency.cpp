// Latency of one item from C++ (smic::CodingDictionary, smic::Collection) and through the C
// ABI (smic.h), on the calling thread:
//
//   bench_latency dictionary.smicd items.f32 dim collection.smic
//
// items.f32: n x dim float32 rows to encode one at a time; collection.smic: a collection coded
// with that dictionary (shared), for item reads (warm: chunks already read once, whose decoder
// checkpoints are kept; cold: the first read of each chunk of a freshly opened collection). Prints "name p50 p99 p99.9" in microseconds,
// one line per measure, then "batch items_per_second". The C ABI's bytes are checked to equal
// the C++ ones, and so are the bytes of an encode without atom screening (exit 1 otherwise).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/collection.hpp"
#include "smic/omp.hpp"
#include "smic/smic.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::vector<float> out(static_cast<std::size_t>(in.tellg()) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(float)));
  return out;
}

void report(const char* name, std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))]; };
  std::printf("%s %.2f %.2f %.2f\n", name, at(0.5), at(0.99), at(0.999));
}

template <class F>
std::vector<double> timed(std::size_t n, F&& call) {
  for (std::size_t i = 0; i < std::min<std::size_t>(n, 20); ++i) call(i);  // warm up
  std::vector<double> us(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto start = Clock::now();
    call(i);
    us[i] = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  }
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bench_latency dictionary.smicd items.f32 dim collection.smic\n");
    return 2;
  }
  try {
    const auto dictionary = smic::CodingDictionary::load(argv[1]);
    const std::vector<float> items = read_floats(argv[2]);
    const std::size_t dim = std::stoul(argv[3]);
    const std::size_t n = items.size() / dim;
    const auto collection = smic::Collection::open(argv[4], dictionary);
    (void)dictionary->coder();

    std::vector<std::vector<uint8_t>> coded(n);
    report("cpp_encode", timed(n, [&](std::size_t i) { coded[i] = dictionary->encode_one(&items[i * dim]); }));
    {  // the same items with every correlation computed (no atom screening): same bytes
      smic::set_atom_screening("off");
      bool same_full = true;
      report("cpp_encode_full", timed(n, [&](std::size_t i) {
        same_full = same_full && dictionary->encode_one(&items[i * dim]) == coded[i];
      }));
      smic::set_atom_screening("auto");
      if (!same_full) {
        std::fprintf(stderr, "encoding without atom screening gave other bytes\n");
        return 1;
      }
    }
    std::vector<float> out(dim);
    report("cpp_decode", timed(n, [&](std::size_t i) { dictionary->decode_one(coded[i].data(), coded[i].size(), out.data()); }));
    const std::size_t m = collection.size();
    report("cpp_item", timed(n, [&](std::size_t i) { collection.decode((i * 7919) % m, (i * 7919) % m + 1, out.data()); }));
    {  // the first read of each chunk of a freshly opened collection: the chunk decodes in full
      const auto fresh = smic::Collection::open(argv[4], dictionary);
      const std::size_t chunk = fresh.chunk_size(), n_chunks = (m + chunk - 1) / chunk;
      std::vector<double> us(n_chunks);
      for (std::size_t c = 0; c < n_chunks; ++c) {
        const std::size_t i = std::min(m - 1, c * chunk + (c * 7919) % chunk);
        const auto start = Clock::now();
        fresh.decode(i, i + 1, out.data());
        us[c] = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      }
      report("cpp_item_cold", us);
    }

    smic_dictionary* d = nullptr;
    smic_encoder* encoder = nullptr;
    if (smic_dictionary_load(argv[1], &d) != SMIC_OK || smic_encoder_new(d, &encoder) != SMIC_OK) {
      std::fprintf(stderr, "C ABI: %s\n", smic_last_error());
      return 1;
    }
    std::size_t bound = 0;
    smic_encode_bound(d, &bound);
    std::vector<uint8_t> buffer(bound);
    bool same = true;
    report("c_encode", timed(n, [&](std::size_t i) {
      std::size_t written = 0;
      smic_encode(encoder, &items[i * dim], buffer.data(), buffer.size(), &written);
      same = same && written == coded[i].size() && std::memcmp(buffer.data(), coded[i].data(), written) == 0;
    }));
    report("c_decode", timed(n, [&](std::size_t i) { smic_decode(d, coded[i].data(), coded[i].size(), out.data()); }));
    smic_encoder_free(encoder);
    smic_dictionary_free(d);
    if (!same) {
      std::fprintf(stderr, "the C ABI's bytes differ from the C++ ones\n");
      return 1;
    }
    const auto start = Clock::now();
    smic::WriteOptions options;
    options.embed_dictionary = false;
    options.n_threads = 1;
    smic::CollectionWriter::write_bytes(items.data(), n, dim, *dictionary, {}, {}, options, nullptr);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("batch %.0f\n", static_cast<double>(n) / seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_latency: %s\n", e.what());
    return 1;
  }
  return 0;
}
