// Search in the compressed domain: cosine top-k over a collection's item codes, without
// rebuilding its (N, d) embeddings.
//
// Each item is a weighted sum of at most s_max atoms, renormalised. Its cosine with a unit
// query q is therefore
//
//     cos(x_i, q) = (sum_j w_ij <a_ij, q>) / ||sum_j w_ij a_ij||
//
// The K inner products <a, q> are one product of the queries with the atoms (gemm); each item
// then costs s_max table lookups, a multiply-add each, and one multiply by its inverse norm,
// computed once when the index is built (from the atoms' Gram matrix). This is FAISS's
// asymmetric distance computation with the dictionary as the codebook.
//
// The index is also an inverted file (IVF): items are stored grouped in lists, and with nprobe
// a query scans only the nprobe lists whose coarse centroid scores highest, as FAISS's IndexIVF
// does. The default partition (Partition::kKMeans) is a spherical k-means over the decoded
// (atoms-only) embeddings, run in the code domain: a centroid is a combination of atoms, so an
// item's products with every centroid are T rows of the K x n_lists table D C^T, not d-long
// dot products. The centroids (n_lists x d floats) are kept for the queries' coarse products.
// Partition::kLeadAtom keeps the earlier partition: one list per atom, items grouped by their
// largest atom, probed by the query's (sign-aware) product with that atom; it inherits the
// atoms' popularity and is kept for comparison. nprobe = 0 or >= n_lists scans every list and
// equals the exhaustive search. Items with no atom (a zero reconstruction, cosine 0 with
// everything) sit in one extra list that every search scans. The partition only chooses which
// items a query scans: every score is the item's exact cosine, whatever the partition.
//
// With a refinement layer (RESD), scores are those of the atoms alone; rerank = R re-scores
// the R best candidates of each query with their refined embeddings (decoded from the file,
// one chunk at a time) and returns the best k of those.
//
// Results are exact top-k under a total order (higher score first, then lower position), and
// every score is computed by the same operations whatever the number of threads, so results
// do not depend on it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "smic/collection.hpp"

namespace smic {

/// What one search returns: n_queries rows of k (position, score), best first. Rows with
/// fewer than k candidates (nprobe lists holding fewer items) end with position -1 and score
/// -infinity.
struct SearchResult {
  std::size_t n_queries = 0, k = 0;
  std::vector<int64_t> positions;  ///< n_queries x k item positions
  std::vector<float> scores;       ///< n_queries x k cosines
};

struct SearchOptions {
  std::size_t k = 10;       ///< results per query, >= 1
  std::size_t nprobe = 0;   ///< lists scanned per query; 0 (or >= K): every list
  std::size_t rerank = 0;   ///< re-score this many candidates with refined embeddings (RESD)
  int n_threads = 0;        ///< 0: all
};

/// How the index groups items into lists (what nprobe prunes).
enum class Partition {
  kKMeans,    ///< spherical k-means over the decoded embeddings (the default)
  kLeadAtom,  ///< one list per atom, by each item's largest atom (the earlier partition)
};

struct IndexOptions {
  Partition partition = Partition::kKMeans;
  std::size_t n_lists = 0;      ///< kKMeans: lists; 0: about sqrt(N) (at least 1, at most N)
  std::size_t iterations = 10;  ///< kKMeans: k-means iterations over the training items
  std::size_t train_items = 0;  ///< kKMeans: items k-means learns from; 0: min(N, 256 n_lists)
  std::uint64_t seed = 0x5eed;  ///< kKMeans: chooses the training items and the first centroids
  /// The largest K for which inverse norms come from the K x K Gram matrix (above it, from each
  /// item's reconstruction, to spare K^2 floats).
  std::size_t gram_limit = 4096;
};

/// The in-memory search index of one collection. Immutable once built: any number of threads
/// may search it at once. The collection must outlive the index (rerank decodes from it), and
/// an append to the collection (Collection::adopt_append) invalidates it: build a new one.
class SearchIndex {
 public:
  /// Decode every item's code (chunks in parallel) and build the lists. `gram_limit`: the
  /// largest K for which inverse norms come from the K x K Gram matrix (above it, from each
  /// item's reconstruction, to spare K^2 floats). Throws FormatError for corrupt items.
  explicit SearchIndex(const Collection& collection, int n_threads = 0,
                       std::size_t gram_limit = 4096);
  /// The same with a chosen partition (IndexOptions); the index does not depend on n_threads.
  /// Throws InvalidArgument for n_lists > N or iterations == 0 with kKMeans.
  SearchIndex(const Collection& collection, const IndexOptions& options, int n_threads = 0);

  std::size_t size() const { return n_; }
  std::size_t dim() const { return dim_; }
  /// Lists: the k-means centroids, or one per atom (K) for kLeadAtom; the extra list of
  /// empty items not counted.
  std::size_t n_lists() const { return n_lists_; }
  Partition partition() const { return partition_; }
  /// The k-means centroids, n_lists x dim unit rows (empty for kLeadAtom).
  const std::vector<float>& centroids() const { return centroids_; }
  /// Terms stored per item (the most atoms any item uses).
  std::size_t terms() const { return terms_; }
  /// Items in each list, n_lists + 1 values (the last: items with no atom).
  std::vector<std::size_t> list_sizes() const;
  /// Bytes this index holds (codes, atoms, inverse norms, positions, list offsets, centroids,
  /// weight table);
  /// the dictionary's atoms, which the collection already holds, are not counted.
  std::size_t memory_bytes() const;

  /// Top-k of n unit-normalised queries ((n x dim) floats, any non-zero norm). Throws
  /// InvalidArgument for a zero or non-finite query, k == 0, or rerank without a
  /// refinement layer.
  SearchResult search(const float* queries, std::size_t n, const SearchOptions& options) const;

  /// The atoms-only cosine of every item with one unit query (N floats, by position): what
  /// the exhaustive search ranks (for tests and for callers that want every score).
  std::vector<float> scores(const float* query) const;

 private:
  // Each term's weight divided by its item's norm, rows [begin, end) ((end - begin) x terms).
  template <class Code>
  void tile_weights(std::size_t begin, std::size_t end, float* out) const;
  void weights_of(std::size_t begin, std::size_t end, float* out) const;
  // Offer items [begin, end) to a top-k heap: with their weights from weights_of (`weights`),
  // or, when `weights` is null, computing them on the fly by the same operations.
  void scan(const float* table, const float* weights, std::size_t begin, std::size_t end,
            std::size_t k, std::vector<std::pair<float, uint32_t>>& heap) const;
  // The nprobe lists each of n queries scans (best first), from their atom products `table`.
  std::vector<std::vector<std::size_t>> probe_lists(const float* unit_queries, const float* table,
                                                    std::size_t n, std::size_t nprobe,
                                                    int n_threads) const;
  std::vector<float> atom_products(const float* queries, std::size_t n, int n_threads) const;
  void rerank(const float* unit_queries, std::size_t n, SearchResult& result, int n_threads) const;

  const Collection* collection_;
  std::size_t n_ = 0, dim_ = 0, n_atoms_ = 0, terms_ = 0, n_lists_ = 0;
  Partition partition_ = Partition::kKMeans;
  bool wide_codes_ = false;               // codes are uint16 (a weight table over 256 entries)
  std::vector<float> weights_;            // weight table: code -> weight (0: unused slot)
  // One record per item, in list order, so that a scan reads one stream: the inverse norm
  // (float, 0 for an empty item), the terms' atoms (uint16, lead first), their weight codes
  // (uint8, or uint16 when wide_codes_), padded to a multiple of 4 bytes.
  std::vector<uint8_t> records_;
  std::size_t stride_ = 0;                // bytes per record
  std::vector<uint32_t> positions_;       // n, each stored item's position in the collection
  std::vector<std::size_t> list_offsets_; // n_lists + 2: list l holds [offsets[l], offsets[l + 1])
  std::vector<uint8_t> list_signs_;       // kLeadAtom, K: bit 0 a positive lead weight, bit 1 a negative
  std::vector<float> centroids_;          // kKMeans, n_lists x dim unit rows
};

}  // namespace smic
