// Binding of smic::SearchIndex (smic/search.hpp): search a collection's codes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "smic/search.hpp"
#include "validate.hpp"

namespace py = pybind11;

void register_search(py::module_& m) {
  py::class_<smic::SearchIndex>(m, "SearchIndex",
                                "In-memory search index of a collection's codes; see smic_fast.query.search.")
      .def(py::init([](const smic::Collection& collection, int n_threads, std::size_t gram_limit,
                       const std::string& partition, std::size_t n_lists, std::size_t iterations,
                       std::size_t train_items, std::uint64_t seed) {
             if (n_threads < 0) throw py::value_error("n_threads must be >= 0");
             smic::IndexOptions options;
             if (partition == "kmeans") {
               options.partition = smic::Partition::kKMeans;
             } else if (partition == "lead_atom") {
               options.partition = smic::Partition::kLeadAtom;
             } else {
               throw py::value_error("partition must be 'kmeans' or 'lead_atom', not '" + partition + "'");
             }
             if (iterations < 1) throw py::value_error("iterations must be >= 1");
             if (n_lists > collection.size())
               throw py::value_error("n_lists (" + std::to_string(n_lists) + ") must be at most the number of items (" +
                                     std::to_string(collection.size()) + ")");
             options.n_lists = n_lists;
             options.iterations = iterations;
             options.train_items = train_items;
             options.seed = seed;
             options.gram_limit = gram_limit;
             py::gil_scoped_release release;  // the collection is immutable; the index owns its arrays
             return new smic::SearchIndex(collection, options, n_threads);
           }),
           py::arg("collection"), py::arg("n_threads") = 0, py::arg("gram_limit") = 4096,
           py::arg("partition") = "kmeans", py::arg("n_lists") = 0, py::arg("iterations") = 10,
           py::arg("train_items") = 0, py::arg("seed") = 0x5eed,
           py::keep_alive<1, 2>(),  // rerank decodes from the collection: it lives as long
           "Build the index. partition: 'kmeans' (lists by a spherical k-means over the decoded "
           "embeddings, n_lists of them, 0: about sqrt(N)) or 'lead_atom' (one list per atom, by each "
           "item's largest atom); iterations, train_items (0: up to 256 per list) and seed steer the k-means.")
      .def_property_readonly("partition", [](const smic::SearchIndex& index) {
        return std::string(index.partition() == smic::Partition::kKMeans ? "kmeans" : "lead_atom");
      })
      .def_property_readonly("centroids", [](const smic::SearchIndex& index) {
        const std::vector<float>& c = index.centroids();
        const auto rows = static_cast<py::ssize_t>(index.dim() ? c.size() / index.dim() : 0);
        py::array_t<float> out({rows, static_cast<py::ssize_t>(index.dim())});
        std::copy(c.begin(), c.end(), out.mutable_data());
        return out;
      }, "The k-means centroids (n_lists, d) float32 unit rows (no rows for 'lead_atom').")
      .def("__len__", &smic::SearchIndex::size)
      .def_property_readonly("dim", &smic::SearchIndex::dim)
      .def_property_readonly("n_lists", &smic::SearchIndex::n_lists)
      .def_property_readonly("terms", &smic::SearchIndex::terms)
      .def_property_readonly("memory_bytes", &smic::SearchIndex::memory_bytes)
      .def_property_readonly("list_sizes", &smic::SearchIndex::list_sizes)
      .def(
          "search",
          [](const smic::SearchIndex& index, const py::array& queries, std::size_t k, std::size_t nprobe,
             std::size_t rerank, int n_threads) {
            smic_py::require_array<float>(queries, 2, "queries");
            if (static_cast<std::size_t>(queries.shape(1)) != index.dim())
              throw py::value_error("queries have dimension " + std::to_string(queries.shape(1)) +
                                    ", the collection " + std::to_string(index.dim()));
            if (k < 1) throw py::value_error("k must be >= 1");
            if (n_threads < 0) throw py::value_error("n_threads must be >= 0");
            const std::size_t n = static_cast<std::size_t>(queries.shape(0));
            // The caller passes an array it does not share (the Python wrapper's own copy), so
            // reading it without the GIL is safe.
            const float* q = static_cast<const float*>(queries.data());
            smic::SearchResult result;
            {
              py::gil_scoped_release release;
              result = index.search(q, n, smic::SearchOptions{k, nprobe, rerank, n_threads});
            }
            const auto rows = static_cast<py::ssize_t>(result.n_queries);
            const auto cols = static_cast<py::ssize_t>(result.k);
            py::array_t<int64_t> positions({rows, cols});
            py::array_t<float> scores({rows, cols});
            std::copy(result.positions.begin(), result.positions.end(), positions.mutable_data());
            std::copy(result.scores.begin(), result.scores.end(), scores.mutable_data());
            return py::make_tuple(positions, scores);
          },
          py::arg("queries"), py::arg("k"), py::arg("nprobe") = 0, py::arg("rerank") = 0,
          py::arg("n_threads") = 0,
          "(positions (q, k) int64, scores (q, k) float32) of (q, d) float32 queries.")
      .def(
          "scores",
          [](const smic::SearchIndex& index, const py::array& query) {
            smic_py::require_array<float>(query, 1, "query");
            if (static_cast<std::size_t>(query.shape(0)) != index.dim())
              throw py::value_error("the query has dimension " + std::to_string(query.shape(0)) +
                                    ", the collection " + std::to_string(index.dim()));
            const float* q = static_cast<const float*>(query.data());
            std::vector<float> out;
            {
              py::gil_scoped_release release;
              out = index.scores(q);
            }
            py::array_t<float> array(static_cast<py::ssize_t>(out.size()));
            std::copy(out.begin(), out.end(), array.mutable_data());
            return array;
          },
          py::arg("query"), "Atoms-only cosine (N,) float32 of every item with one (d,) query.");
}
