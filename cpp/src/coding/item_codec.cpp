// Item codec: models, validation, chunked encode / decode and ideal code lengths.
#include "smic/item_codec.hpp"

#include <algorithm>
#include <optional>
#include <cmath>
#include <string>

#include "kernels/parallel.hpp"

namespace smic {

namespace {

constexpr uint32_t kMaxSMax = uint32_t{1} << 16;
constexpr uint32_t kMaxAtoms = uint32_t{1} << 30;  // keeps the first alphabet 2K <= 2^31

StaticModel make_model(FrequencyTable t, const char* name) {
  require(t.size >= 1, std::string(name) + " frequency table must not be empty");
  try {
    return StaticModel(t.data, t.size);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string(name) + " frequency table: " + e.what());
  }
}

std::vector<double> symbol_bits(const StaticModel& m) {  // -log2(freq / total) per symbol
  const uint32_t* c = m.cumulative();
  const double log_total = std::log2(static_cast<double>(m.total()));
  std::vector<double> bits(m.size());
  for (std::size_t s = 0; s < m.size(); ++s)
    bits[s] = log_total - std::log2(static_cast<double>(c[s + 1] - c[s]));
  return bits;
}

std::string cell(const char* name, std::size_t i, std::size_t j) {
  return std::string(name) + "[" + std::to_string(i) + ", " + std::to_string(j) + "]";
}

[[noreturn]] void throw_outside(const std::string& what, int32_t v, uint64_t bound) {
  throw InvalidArgument(what + " = " + std::to_string(v) + " is outside [0, " +
                        std::to_string(bound) + ")");
}

// ---- per-item coding (inputs validated; decoders check what corrupt data can break) -------

void encode_sorted_item(const ItemModels& m, RangeEncoder& enc, uint32_t count, uint32_t first,
                        const int32_t* index, const int32_t* level) {
  m.count().encode_unchecked(enc, count);
  if (count == 0) return;
  m.first().encode_unchecked(enc, first);
  uint32_t b = 0;  // lower bound: previous atom + 1
  for (uint32_t j = 0; j + 1 < count; ++j) {
    const uint32_t* c = m.rest_model(count - 1 - j).cumulative();
    const uint32_t c_end = c[m.n_atoms()], base = c[b];
    const auto s = static_cast<uint32_t>(index[j]);
    // Conditional on s >= b: the interval of s within [C[b], C[K]), shifted to start at 0.
    enc.encode_unchecked(c[s] - base, c[s + 1] - c[s], c_end - base);
    m.level().encode_unchecked(enc, static_cast<uint32_t>(level[j]));
    b = s + 1;
  }
}

void decode_sorted_item(const ItemModels& m, RangeDecoder& dec, int32_t* count, int32_t* first,
                        int32_t* index, int32_t* level) {
  const std::size_t width = m.row_width();
  const uint32_t k = m.count().decode(dec);  // < s_max + 1 by the alphabet
  *count = static_cast<int32_t>(k);
  if (k == 0) {
    *first = -1;
    std::fill(index, index + width, -1);
    std::fill(level, level + width, -1);
    return;
  }
  *first = static_cast<int32_t>(m.first().decode(dec));
  const uint32_t n_atoms = m.n_atoms();
  uint32_t b = 0;  // lower bound: previous atom + 1
  for (uint32_t j = 0; j + 1 < k; ++j) {
    // An encoder never codes an atom after atom K - 1: only corrupt data gets here.
    if (b >= n_atoms) throw DecodeError("an item's atoms run past the last atom");
    const StaticModel& model = m.rest_model(k - 1 - j);
    const uint32_t* c = model.cumulative();
    const uint32_t c_end = c[n_atoms], base = c[b];
    const uint32_t v = dec.decode_target_unchecked(c_end - base);  // < c_end - base: checked
    const uint32_t s = model.lookup(v + base);                      // >= b since C increases
    dec.consume_unchecked(c[s] - base, c[s + 1] - c[s]);
    index[j] = static_cast<int32_t>(s);
    level[j] = static_cast<int32_t>(m.level().decode(dec));
    b = s + 1;
  }
  const std::size_t used = k - 1;
  std::fill(index + used, index + width, -1);
  std::fill(level + used, level + width, -1);
}

void encode_paper_item(const ItemModels& m, RangeEncoder& enc, const int32_t* index,
                       const int32_t* level) {
  for (std::size_t j = 0; j < m.row_width(); ++j) {
    m.index().encode_unchecked(enc, static_cast<uint32_t>(index[j]));
    m.level().encode_unchecked(enc, static_cast<uint32_t>(level[j]));
  }
}

void decode_paper_item(const ItemModels& m, RangeDecoder& dec, int32_t* index, int32_t* level) {
  for (std::size_t j = 0; j < m.row_width(); ++j) {
    index[j] = static_cast<int32_t>(m.index().decode(dec));
    level[j] = static_cast<int32_t>(m.level().decode(dec));
  }
}

// Threads for a call on `items` items: starting a parallel region costs far more than coding a
// few thousand items (and much more on a loaded machine), so small calls stay on one thread.
int threads_for(std::size_t items, int n_threads) {
  constexpr std::size_t kItemsPerThread = 16384;
  const auto most = static_cast<std::size_t>(detail::resolve_threads(n_threads));
  return static_cast<int>(std::max<std::size_t>(1, std::min(most, items / kItemsPerThread)));
}

// Fewest bits any item can take under the models (for a cheap plausibility check of how many
// items a chunk of a given size can hold). The conditional index code may cost 0 bits. It
// scans the tables (K entries): ItemModels keeps the result, computed once.
double min_item_bits(const ItemModels& m) {
  const auto min_of = [](const std::vector<double>& v) {
    return *std::min_element(v.begin(), v.end());
  };
  const double level = min_of(m.level_bits());
  if (m.layout() == ItemLayout::kPaper) {
    const auto& lf = m.index_log2_freq();
    const double index = m.index_log2_tail()[0] - *std::max_element(lf.begin(), lf.end());
    return static_cast<double>(m.s_max()) * (index + level);
  }
  double best = m.count_bits()[0];
  const double first = min_of(m.first_bits());
  for (uint32_t k = 1; k <= m.s_max(); ++k)
    best = std::min(best, m.count_bits()[k] + first + static_cast<double>(k - 1) * level);
  return best;
}

}  // namespace

// ---- ItemModels ---------------------------------------------------------------------------

ItemModels::ItemModels(FrequencyTable count, FrequencyTable first, FrequencyTable index,
                       FrequencyTable level, uint32_t s_max, ItemLayout layout)
    : layout_(layout), s_max_(s_max) {
  require(layout == ItemLayout::kSorted || layout == ItemLayout::kPaper, "unknown item layout");
  require(s_max >= 1 && s_max <= kMaxSMax,
          "s_max must be in [1, 2^16], got " + std::to_string(s_max));
  require(index.size >= 1 && index.size <= kMaxAtoms,
          "index frequency table must have 1 to 2^30 entries (one per atom), got " +
              std::to_string(index.size));
  n_atoms_ = static_cast<uint32_t>(index.size);
  const uint32_t one = 1;
  if (layout == ItemLayout::kSorted) {
    require(count.size == std::size_t{s_max} + 1,
            "count frequency table must have s_max + 1 = " + std::to_string(s_max + 1) +
                " entries, got " + std::to_string(count.size));
    require(first.size == 2 * index.size,
            "first frequency table must have 2K = " + std::to_string(2 * index.size) +
                " entries (K = index table size), got " + std::to_string(first.size));
    models_.push_back(make_model(count, "count"));
    models_.push_back(make_model(first, "first"));
  } else {
    models_.emplace_back(&one, 1);  // unused placeholders
    models_.emplace_back(&one, 1);
  }
  models_.push_back(make_model(index, "index"));
  models_.push_back(make_model(level, "level"));
  n_levels_ = static_cast<uint32_t>(level.size);

  if (layout == ItemLayout::kSorted) {
    count_bits_ = symbol_bits(this->count());
    first_bits_ = symbol_bits(this->first());
  }
  level_bits_ = symbol_bits(this->level());
  const uint32_t* c = this->index().cumulative();
  index_log2_freq_.resize(n_atoms_);
  index_log2_tail_.resize(n_atoms_);
  for (uint32_t s = 0; s < n_atoms_; ++s) {
    index_log2_freq_[s] = std::log2(static_cast<double>(c[s + 1] - c[s]));
    index_log2_tail_[s] = std::log2(static_cast<double>(c[n_atoms_] - c[s]));
  }
  min_item_bits_ = smic::min_item_bits(*this);
}

ItemModels ItemModels::derive_remaining() const {
  require(layout_ == ItemLayout::kSorted, "the remaining-atoms index model needs the smic layout");
  ItemModels out = *this;
  out.index_model_ = IndexModel::kRemaining;
  out.remaining_.clear();
  const uint32_t k = n_atoms_;
  const uint32_t* c = index().cumulative();
  const uint64_t t0 = c[k];  // T(0), >= K >= 1
  constexpr unsigned kBits = 30;
  // t(s) = floor(T(s) 2^30 / T(0)) <= 2^30: products of two stay below 2^61.
  std::vector<uint64_t> t(std::size_t{k} + 1, 0), u(std::size_t{k} + 1, 0);
  for (uint32_t s = 0; s < k; ++s) t[s] = ((uint64_t{c[k] - c[s]}) << kBits) / t0;
  u = t;
  const uint32_t last = std::min(s_max_ - 1, kMaxRemainingTables + 1);
  std::vector<uint64_t> counts(k);
  for (uint32_t r = 2; r <= last; ++r) {
    for (uint32_t s = 0; s < k; ++s) u[s] = (u[s] * t[s]) >> kBits;  // non-increasing in s
    for (uint32_t s = 0; s < k; ++s) counts[s] = u[s] - u[s + 1];
    // Sum u_r(0) <= 2^30 plus at most K <= 2^30 zeros made 1: within 2^31 as they are.
    const std::vector<uint32_t> freqs = frequencies_from_counts(counts.data(), k);
    out.remaining_.emplace_back(freqs.data(), freqs.size());
  }
  return out;
}

// ---- validation ---------------------------------------------------------------------------

std::size_t item_chunk_count(std::size_t n, std::size_t chunk_size) {
  require(chunk_size >= 1, "chunk_size must be >= 1");
  return n / chunk_size + (n % chunk_size != 0 ? 1 : 0);
}

void validate_items(const ItemModels& m, const ItemColumns<const int32_t>& items,
                    std::size_t n) {
  const std::size_t w = m.row_width();
  const uint32_t n_atoms = m.n_atoms(), n_levels = m.n_levels();
  const bool paper = m.layout() == ItemLayout::kPaper;
  const char* index_name = paper ? "index" : "rest_index";
  const char* level_name = paper ? "level" : "rest_level";
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t used = w;
    if (!paper) {
      const int32_t k = items.counts[i];
      if (k < 0 || static_cast<uint32_t>(k) > m.s_max())
        throw_outside("counts[" + std::to_string(i) + "]", k, uint64_t{m.s_max()} + 1);
      if (k == 0) continue;
      const int32_t f = items.first[i];
      if (f < 0 || static_cast<uint64_t>(f) >= 2 * uint64_t{n_atoms})
        throw_outside("first[" + std::to_string(i) + "]", f, 2 * uint64_t{n_atoms});
      used = static_cast<std::size_t>(k) - 1;
    }
    const int32_t* index = items.index + i * w;
    const int32_t* level = items.level + i * w;
    for (std::size_t j = 0; j < used; ++j) {
      if (index[j] < 0 || static_cast<uint32_t>(index[j]) >= n_atoms)
        throw_outside(cell(index_name, i, j), index[j], n_atoms);
      if (!paper && j > 0 && index[j] <= index[j - 1])
        throw InvalidArgument(cell(index_name, i, j) + " = " + std::to_string(index[j]) +
                              " is not greater than " + cell(index_name, i, j - 1) + " = " +
                              std::to_string(index[j - 1]) + " (item " + std::to_string(i) +
                              ": its other atoms must be strictly ascending)");
      if (level[j] < 0 || static_cast<uint32_t>(level[j]) >= n_levels)
        throw_outside(cell(level_name, i, j), level[j], n_levels);
    }
  }
}

// ---- encode / decode ----------------------------------------------------------------------

void encode_item(const ItemModels& m, RangeEncoder& enc, const ItemColumns<const int32_t>& items,
                 std::size_t i) {
  const std::size_t w = m.row_width();
  if (m.layout() == ItemLayout::kPaper)
    encode_paper_item(m, enc, items.index + i * w, items.level + i * w);
  else
    encode_sorted_item(m, enc, static_cast<uint32_t>(items.counts[i]),
                       static_cast<uint32_t>(items.first[i]), items.index + i * w, items.level + i * w);
}

void decode_item(const ItemModels& m, RangeDecoder& dec, const ItemColumns<int32_t>& out) {
  if (m.layout() == ItemLayout::kPaper)
    decode_paper_item(m, dec, out.index, out.level);
  else
    decode_sorted_item(m, dec, out.counts, out.first, out.index, out.level);
}

EncodedItems encode_items(const ItemModels& m, const ItemColumns<const int32_t>& items,
                          std::size_t n, std::size_t chunk_size, int n_threads) {
  const std::size_t n_chunks = item_chunk_count(n, chunk_size);
  validate_items(m, items, n);  // first, so the error names the first bad item
  const std::size_t w = m.row_width();
  const bool paper = m.layout() == ItemLayout::kPaper;

  std::vector<std::vector<uint8_t>> chunks(n_chunks);
  detail::parallel_for(n_chunks, threads_for(n, n_threads), [&](std::size_t c) {
    const std::size_t begin = c * chunk_size, end = begin + std::min(chunk_size, n - begin);
    RangeEncoder enc;
    enc.reserve((end - begin) * (w + 2) + 16);
    for (std::size_t i = begin; i < end; ++i) {
      if (paper)
        encode_paper_item(m, enc, items.index + i * w, items.level + i * w);
      else
        encode_sorted_item(m, enc, static_cast<uint32_t>(items.counts[i]),
                           static_cast<uint32_t>(items.first[i]), items.index + i * w,
                           items.level + i * w);
    }
    chunks[c] = enc.finish();
  });

  EncodedItems out;
  out.offsets.resize(n_chunks + 1);
  std::size_t total = 0;
  for (std::size_t c = 0; c < n_chunks; ++c) {
    out.offsets[c] = total;
    total += chunks[c].size();
  }
  out.offsets[n_chunks] = total;
  out.data.resize(total);
  for (std::size_t c = 0; c < n_chunks; ++c)
    std::copy(chunks[c].begin(), chunks[c].end(), out.data.begin() + out.offsets[c]);
  return out;
}

void decode_items(const ItemModels& m, const uint8_t* data, std::size_t size,
                  const uint64_t* offsets, std::size_t n_offsets, std::size_t n_items,
                  std::size_t chunk_size, std::size_t start, std::size_t stop,
                  const ItemColumns<int32_t>& out, int n_threads) {
  const std::size_t n_chunks = item_chunk_count(n_items, chunk_size);
  if (!(start <= stop && stop <= n_items))  // (the message is built only on failure)
    throw InvalidArgument("need 0 <= start <= stop <= n_items, got start = " +
                          std::to_string(start) + ", stop = " + std::to_string(stop) +
                          ", n_items = " + std::to_string(n_items));
  // The whole offsets table is checked (cheap), so a damaged index is noticed on any access.
  if (n_offsets != n_chunks + 1)
    throw DecodeError("item codec: " + std::to_string(n_items) + " items in chunks of " +
                      std::to_string(chunk_size) + " need " + std::to_string(n_chunks + 1) +
                      " offsets, got " + std::to_string(n_offsets));
  if (offsets[0] != 0) throw DecodeError("item codec: offsets[0] must be 0");
  for (std::size_t c = 0; c < n_chunks; ++c)
    if (offsets[c + 1] < offsets[c])
      throw DecodeError("item codec: offsets decrease at chunk " + std::to_string(c));
  if (offsets[n_chunks] != size)
    throw DecodeError("item codec: the offsets end at byte " + std::to_string(offsets[n_chunks]) +
                      " but the data holds " + std::to_string(size) + " bytes");
  if (start == stop) return;

  const std::size_t w = m.row_width();
  const bool paper = m.layout() == ItemLayout::kPaper;
  const double min_bits = m.min_item_bits() * (1 - 1e-9);  // slack for rounding
  const std::size_t c_begin = start / chunk_size, c_end = (stop - 1) / chunk_size + 1;
  const std::size_t decoded = (c_end == n_chunks ? n_items : c_end * chunk_size) - c_begin * chunk_size;
  detail::parallel_for(c_end - c_begin, threads_for(decoded, n_threads), [&](std::size_t ci) {
    const std::size_t c = c_begin + ci;
    const std::size_t begin = c * chunk_size, end = begin + std::min(chunk_size, n_items - begin);
    const std::size_t bytes = static_cast<std::size_t>(offsets[c + 1] - offsets[c]);
    try {
      // A stream of B bytes codes at most 8B - 56 bits of symbols: reject a chunk that would
      // need more (also keeps a bogus huge chunk_size from spinning through empty items).
      if (static_cast<double>(end - begin) * min_bits > 8.0 * static_cast<double>(bytes))
        throw DecodeError("too few bytes for " + std::to_string(end - begin) + " items");
      RangeDecoder dec(data + offsets[c], bytes);
      std::vector<int32_t> scratch(2 * w + 2);  // rows outside [start, stop)
      for (std::size_t i = begin; i < end; ++i) {
        const bool keep = i >= start && i < stop;
        const std::size_t r = i - start;
        int32_t* index = keep ? out.index + r * w : scratch.data();
        int32_t* level = keep ? out.level + r * w : scratch.data() + w;
        if (paper) {
          decode_paper_item(m, dec, index, level);
        } else {
          int32_t* count = keep ? out.counts + r : scratch.data() + 2 * w;
          int32_t* first = keep ? out.first + r : scratch.data() + 2 * w + 1;
          decode_sorted_item(m, dec, count, first, index, level);
        }
      }
      dec.finish();
    } catch (const DecodeError& e) {
      throw DecodeError("item codec: chunk " + std::to_string(c) + " (items " +
                        std::to_string(begin) + " to " + std::to_string(end - 1) +
                        "): " + e.what());
    }
  });
}

void decode_chunk_items(const ItemModels& m, const uint8_t* data, std::size_t size,
                        const uint64_t* offsets, std::size_t n_offsets, std::size_t n_items,
                        std::size_t chunk_size, std::size_t start, std::size_t stop,
                        const ItemColumns<int32_t>& out, ChunkCheckpoints* record,
                        std::size_t stride, const ChunkCheckpoints* resume) {
  require(chunk_size >= 1, "chunk_size must be >= 1");
  require(start < stop && stop <= n_items, "need 0 <= start < stop <= n_items");
  const std::size_t c = start / chunk_size;
  const std::size_t begin = c * chunk_size, end = begin + std::min(chunk_size, n_items - begin);
  if (stop > end)  // (the message is built only on failure: this runs for every col[i])
    throw InvalidArgument("decode_chunk_items: items " + std::to_string(start) + " to " +
                          std::to_string(stop - 1) + " span more than one chunk");
  require(record == nullptr || stride >= 1, "decode_chunk_items: stride must be >= 1");
  if (c + 1 >= n_offsets || offsets[c] > offsets[c + 1] || offsets[c + 1] > size)
    throw DecodeError("item codec: bad offsets for chunk " + std::to_string(c));
  const std::size_t bytes = static_cast<std::size_t>(offsets[c + 1] - offsets[c]);
  const std::size_t w = m.row_width();
  const bool paper = m.layout() == ItemLayout::kPaper;
  try {
    if (resume == nullptr &&
        static_cast<double>(end - begin) * m.min_item_bits() * (1 - 1e-9) > 8.0 * static_cast<double>(bytes))
      throw DecodeError("too few bytes for " + std::to_string(end - begin) + " items");
    std::size_t i = begin;
    std::optional<RangeDecoder> dec;
    if (resume != nullptr) {
      require(resume->stride >= 1 && !resume->states.empty(), "decode_chunk_items: empty checkpoints");
      const std::size_t j = std::min((start - begin) / resume->stride, resume->states.size() - 1);
      dec.emplace(data + offsets[c], bytes, resume->states[j]);
      i = begin + j * resume->stride;
    } else {
      dec.emplace(data + offsets[c], bytes);
      if (record != nullptr) {
        record->stride = stride;
        record->states.clear();
        record->states.reserve((end - begin + stride - 1) / stride);
      }
    }
    const std::size_t last = resume != nullptr ? stop : end;
    int32_t scratch[4];
    std::vector<int32_t> skipped(2 * w);  // rows outside [start, stop)
    for (; i < last; ++i) {
      if (record != nullptr && resume == nullptr && (i - begin) % stride == 0)
        record->states.push_back(dec->state());
      const bool keep = i >= start && i < stop;
      const std::size_t r = i - start;
      int32_t* index = keep ? out.index + r * w : skipped.data();
      int32_t* level = keep ? out.level + r * w : skipped.data() + w;
      if (paper) {
        decode_paper_item(m, *dec, index, level);
      } else {
        decode_sorted_item(m, *dec, keep ? out.counts + r : scratch,
                           keep ? out.first + r : scratch + 1, index, level);
      }
    }
    if (resume == nullptr) dec->finish();
  } catch (const DecodeError& e) {
    throw DecodeError("item codec: chunk " + std::to_string(c) + " (items " +
                      std::to_string(begin) + " to " + std::to_string(end - 1) + "): " + e.what());
  }
}

// ---- ideal code lengths -------------------------------------------------------------------

void item_bits(const ItemModels& m, const ItemColumns<const int32_t>& items, std::size_t n,
               double* bits, int n_threads) {
  validate_items(m, items, n);
  const std::size_t w = m.row_width();
  const bool paper = m.layout() == ItemLayout::kPaper;
  const double* lf = m.index_log2_freq().data();
  const double* lt = m.index_log2_tail().data();
  const double* lv = m.level_bits().data();
  constexpr std::size_t kBlock = 4096;
  const std::size_t n_blocks = n / kBlock + (n % kBlock != 0 ? 1 : 0);
  detail::parallel_for(n_blocks, threads_for(n, n_threads), [&](std::size_t blk) {
    const std::size_t end = std::min(n, (blk + 1) * kBlock);
    for (std::size_t i = blk * kBlock; i < end; ++i) {
      const int32_t* index = items.index + i * w;
      const int32_t* level = items.level + i * w;
      double b = 0;
      if (paper) {
        for (std::size_t j = 0; j < w; ++j) b += lt[0] - lf[index[j]] + lv[level[j]];
      } else {
        const auto k = static_cast<std::size_t>(items.counts[i]);
        b = m.count_bits()[k];
        if (k >= 1) {
          b += m.first_bits()[static_cast<std::size_t>(items.first[i])];
          std::size_t lower = 0;  // previous atom + 1
          for (std::size_t j = 0; j + 1 < k; ++j) {
            const auto s = static_cast<std::size_t>(index[j]);
            const auto r = static_cast<uint32_t>(k - 1 - j);
            if (r <= 1 || m.index_model() == IndexModel::kOrder0) {
              b += lt[lower] - lf[s];
            } else {  // a derived table: from its cumulative (same totals as the coder)
              const uint32_t* c = m.rest_model(r).cumulative();
              b += std::log2(static_cast<double>(c[m.n_atoms()] - c[lower])) -
                   std::log2(static_cast<double>(c[s + 1] - c[s]));
            }
            b += lv[level[j]];
            lower = s + 1;
          }
        }
      }
      bits[i] = b;
    }
  });
}

}  // namespace smic
