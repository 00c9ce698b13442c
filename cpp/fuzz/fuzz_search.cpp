// libFuzzer target: open a collection from arbitrary bytes, build its search index and search
// it (exhaustive, with nprobe, reranked when it has a refinement layer); only smic exceptions
// may come out, and every score found is the cosine with the decoded item.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "smic/collection.hpp"
#include "smic/search.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const auto col = smic::Collection::from_bytes(std::vector<uint8_t>(data, data + size), nullptr, "<fuzz>");
    if (col.size() == 0 || col.size() > 4096) return 0;
    const smic::SearchIndex index(col, 1);
    const std::size_t d = col.dim();
    std::vector<float> query(d);
    for (std::size_t j = 0; j < d; ++j) query[j] = std::sin(0.7f * static_cast<float>(j) + 0.3f);
    const std::vector<float> decoded = col.embeddings();
    double norm = 0;
    for (float v : query) norm += static_cast<double>(v) * v;
    norm = std::sqrt(norm);
    const bool refined = col.residual_step().has_value();
    for (const std::size_t nprobe : {std::size_t{0}, std::size_t{2}}) {
      const smic::SearchResult r =
          index.search(query.data(), 1, {5, nprobe, refined ? col.size() : 0, 1});
      for (std::size_t j = 0; j < r.k; ++j) {
        if (r.positions[j] < 0) continue;
        const float* x = decoded.data() + static_cast<std::size_t>(r.positions[j]) * d;
        double dot = 0;
        for (std::size_t i = 0; i < d; ++i) dot += static_cast<double>(x[i]) * query[i];
        if (std::fabs(dot / norm - r.scores[j]) > 1e-3) __builtin_trap();
      }
    }
  } catch (const std::exception&) {
  }
  return 0;
}
