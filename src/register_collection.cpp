// Binding of smic::Collection (smic/collection.hpp) and the writers: numpy in and out, ids as
// Python str (lone surrogates pass through, as file names need), the GIL released around coding.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "format_binding.hpp"

namespace py = pybind11;
using namespace smic_py;

void register_collection(py::module_& m) {
  py::class_<smic::Collection>(m, "Collection", "A .smic collection (C++ reader); see smic_fast.Collection.")
      .def_static(
          "open",
          // std::optional: the signature (and so _core.pyi) says `CodingDictionary | None`.
          [](const std::string& path, std::optional<Holder> shared) {
            py::gil_scoped_release release;
            return smic::Collection::open(path, shared.value_or(nullptr));
          },
          py::arg("path"), py::arg("dictionary") = py::none())
      .def("__len__", &smic::Collection::size)
      .def_property_readonly("dim", &smic::Collection::dim)
      .def_property_readonly("ids", [](const smic::Collection& c) {
        py::list out;
        for (const auto& id : c.ids()) out.append(from_utf8(id));
        return out;
      })
      .def_property_readonly("pixels", [](const smic::Collection& c) {
        py::list out;
        for (int64_t p : c.pixels()) out.append(p > 0 ? py::object(py::int_(p)) : py::object(py::none()));
        return out;
      })
      .def(
          "ids_range",
          [](const smic::Collection& c, std::size_t start, std::size_t stop) {
            if (start > stop || stop > c.size()) throw py::index_error("item range out of bounds");
            py::list out;
            for (std::size_t i = start; i < stop; ++i) out.append(from_utf8(c.ids()[i]));
            return out;
          },
          py::arg("start"), py::arg("stop"), "The ids of items [start, stop).")
      .def("find", [](const smic::Collection& c, const py::str& id) { return c.find(to_utf8(id, "id")); })
      .def_property_readonly("header_json", &smic::Collection::header_json)
      .def_property_readonly("shared_dictionary", &smic::Collection::shared_dictionary)
      .def_property_readonly("dictionary", [](const smic::Collection& c) { return held(c.dictionary_ptr()); })
      .def_property_readonly("residual_step", &smic::Collection::residual_step)
      .def_property_readonly("residual_transform", &smic::Collection::residual_transform)
      .def_property_readonly("format_version", &smic::Collection::format_version)
      .def_property_readonly(
          "index_model", [](const smic::Collection& c) { return index_model_name(c.index_model()); },
          "How the items' other atoms are coded: 'order0' or 'remaining' (format version 3).")
      .def_property_readonly("chunk_size", &smic::Collection::chunk_size)
      .def_property_readonly("file_bytes", &smic::Collection::file_bytes)
      .def_property_readonly("torn_bytes", &smic::Collection::torn_bytes)
      .def(
          "append_in_place",
          [](smic::Collection& c, const py::array& embeddings, const py::object& ids,
             const py::object& pixels, std::size_t chunk_size, int n_threads) {
            std::size_t n = 0, d = 0;
            const float* e = matrix(embeddings, "E", n, d);
            const auto id_list = strings(ids, "ids");
            const auto pixel_list = pixel_counts(pixels);
            smic::Collection::PendingAppend batch;
            {
              // Coding and the file write only read this object; taking the batch in (below)
              // changes it, so that part keeps the GIL and no Python thread reads meanwhile.
              py::gil_scoped_release release;
              batch = c.prepare_append(e, n, d, id_list, pixel_list, chunk_size, n_threads);
              c.write_append(batch);
            }
            smic::WriteResult result = std::move(batch.result);
            c.adopt_append(std::move(batch));
            return to_array(result.cosine);
          },
          py::arg("embeddings"), py::arg("ids") = py::none(), py::arg("pixels") = py::none(),
          py::arg("chunk_size") = 0, py::arg("n_threads") = 0,
          "Append a batch at the end of the file in place (time proportional to the batch) and "
          "take it into this reader; returns the new items' cosines.")
      .def_property_readonly(
          "pixel_terms",
          [](const smic::Collection& c) {
            std::size_t known = 0;
            double inverse = 0;
            for (int64_t p : c.pixels())
              if (p > 0) {
                ++known;
                inverse += 1.0 / static_cast<double>(p);
              }
            return py::make_tuple(known, inverse);
          },
          "(items with a pixel count, sum of 1 / pixels): what bits-per-pixel figures need.")
      .def_property_readonly("batch_sizes", &smic::Collection::batch_sizes)
      .def_property_readonly("section_bytes", [](const smic::Collection& c) {
        const auto& s = c.section_bytes();
        py::dict d;
        d["header"] = s.header;
        d["dictionary"] = s.dictionary;
        d["ids"] = s.ids;
        d["items"] = s.items;
        d["residual"] = s.residual;
        return d;
      })
      .def(
          "decode",
          [](const smic::Collection& c, std::size_t start, std::size_t stop) {
            if (start > stop || stop > c.size()) throw py::index_error("item range out of bounds");
            py::array_t<float> out({static_cast<py::ssize_t>(stop - start), static_cast<py::ssize_t>(c.dim())});
            float* o = out.mutable_data();
            {
              py::gil_scoped_release release;
              c.decode(start, stop, o);
            }
            return out;
          },
          py::arg("start"), py::arg("stop"), "Unit embeddings (stop - start, d) float32 of items [start, stop).")
      .def(
          "decode_into",
          [](const smic::Collection& c, std::size_t start, std::size_t stop, py::array out) {
            if (start > stop || stop > c.size()) throw py::index_error("item range out of bounds");
            smic_py::require_array<float>(out, 2, "out");
            if (static_cast<std::size_t>(out.shape(0)) != stop - start ||
                static_cast<std::size_t>(out.shape(1)) != c.dim())
              throw py::value_error("out must have shape (" + std::to_string(stop - start) + ", " +
                                    std::to_string(c.dim()) + "), got " + smic_py::shape_string(out));
            if (!out.writeable()) throw py::value_error("out must be writeable");
            auto* o = static_cast<float*>(out.mutable_data());
            py::gil_scoped_release release;  // `out` stays referenced by the caller
            c.decode(start, stop, o);
          },
          py::arg("start"), py::arg("stop"), py::arg("out"),
          "Decode items [start, stop) into out, a writeable C-contiguous (stop - start, d) float32 array.")
      .def(
          "codes",
          [](const smic::Collection& c, std::size_t start, std::size_t stop) {
            if (start > stop || stop > c.size()) throw py::index_error("item range out of bounds");
            ItemCodes codes;
            {
              py::gil_scoped_release release;
              codes = c.codes(start, stop);
            }
            return codes_tuple(codes);
          },
          py::arg("start"), py::arg("stop"), "Decoded symbols of items [start, stop).");

  m.def(
      "write_collection",
      [](const std::string& path, const py::array& embeddings, Holder dictionary,
         const py::object& ids, const py::object& pixels, std::optional<std::string> model,
         std::size_t chunk_size, std::optional<double> residual_step, const std::string& writer,
         bool embed_dictionary, int n_threads, const py::object& codes,
         const std::string& index_model) {
        if (!dictionary) throw py::value_error("dictionary is required");
        std::size_t n = 0, d = 0;
        const float* e = matrix(embeddings, "E", n, d);
        const auto id_list = strings(ids, "ids");
        const auto pixel_list = pixel_counts(pixels);
        const std::optional<ItemCodes> given = given_codes(*dictionary, codes);
        const smic::WriteOptions options = write_options(std::move(model), chunk_size, residual_step,
                                                         writer, embed_dictionary, n_threads,
                                                         index_model);
        smic::WriteResult result;
        {
          py::gil_scoped_release release;
          result = smic::CollectionWriter::write(path, e, n, d, *dictionary, id_list, pixel_list,
                                                 options, given ? &*given : nullptr);
        }
        return to_array(result.cosine);
      },
      py::arg("path"), py::arg("embeddings"), py::arg("dictionary"), py::arg("ids") = py::none(),
      py::arg("pixels") = py::none(), py::arg("model") = py::none(),
      py::arg("chunk_size") = smic::kDefaultChunkSize, py::arg("residual_step") = py::none(),
      py::arg("writer") = "smic-fast", py::arg("embed_dictionary") = true,
      py::arg("n_threads") = 0, py::arg("codes") = py::none(), py::arg("index_model") = "auto",
      "Write a new collection atomically; returns each item's reconstruction cosine. "
      "index_model: 'auto' (the smaller of the two), 'order0' or 'remaining'.");

  m.def(
      "write_collection_streaming",
      [](const std::string& path, const py::list& blocks, Holder dictionary,
         const py::object& ids, const py::object& pixels, std::optional<std::string> model,
         std::size_t chunk_size, std::optional<double> residual_step, const std::string& writer,
         bool embed_dictionary, int n_threads, const py::object& codes, std::size_t batch_items,
         const std::string& index_model, std::optional<double> mean_norm) {
        if (!dictionary) throw py::value_error("dictionary is required");
        std::size_t n = 0, d = 0;
        std::vector<smic::RowBlock> parts = row_blocks(blocks, n, d);  // sets n and d
        const smic::RowReader rows = smic::stacked_rows(std::move(parts), d);
        const auto id_list = strings(ids, "ids");
        const auto pixel_list = pixel_counts(pixels);
        const std::optional<ItemCodes> given = given_codes(*dictionary, codes);
        smic::WriteOptions options = write_options(std::move(model), chunk_size, residual_step, writer,
                                                   embed_dictionary, n_threads, index_model);
        if (mean_norm && !(std::isfinite(*mean_norm) && *mean_norm >= 0))
          throw py::value_error("mean_norm must be a finite number >= 0");
        options.mean_norm = mean_norm;
        smic::WriteResult result;
        {
          // `blocks` (held by the caller's frame) keeps every array alive while the core reads
          // their buffers without the GIL; no Python object is touched in between.
          py::gil_scoped_release release;
          result = smic::CollectionWriter::write_streaming(path, rows, n, d, *dictionary, id_list,
                                                           pixel_list, options,
                                                           given ? &*given : nullptr, batch_items);
        }
        return to_array(result.cosine);
      },
      py::arg("path"), py::arg("blocks"), py::arg("dictionary"), py::arg("ids") = py::none(),
      py::arg("pixels") = py::none(), py::arg("model") = py::none(),
      py::arg("chunk_size") = smic::kDefaultChunkSize, py::arg("residual_step") = py::none(),
      py::arg("writer") = "smic-fast", py::arg("embed_dictionary") = true,
      py::arg("n_threads") = 0, py::arg("codes") = py::none(), py::arg("batch_items") = 0,
      py::arg("index_model") = "auto", py::arg("mean_norm") = py::none(),
      "write_collection from a list of (n_i, d) float16/32/64 arrays (memory maps welcome) read "
      "batch_items rows at a time; the same bytes in memory bounded by a batch. mean_norm: the "
      "header's, instead of the rows' (a merge of shards from their codes).");

  m.def(
      "append_collection",
      [](const std::string& path, const py::array& embeddings, const py::object& ids,
         const py::object& pixels, bool replace, std::size_t chunk_size,
         std::optional<Holder> shared, int n_threads) {
        Holder dictionary = shared.value_or(nullptr);
        std::size_t n = 0, d = 0;
        const float* e = matrix(embeddings, "E", n, d);
        const auto id_list = strings(ids, "ids");
        const auto pixel_list = pixel_counts(pixels);
        smic::WriteResult result;
        {
          py::gil_scoped_release release;
          result = smic::CollectionWriter::append(path, e, n, d, id_list, pixel_list, replace,
                                                  chunk_size, std::move(dictionary), n_threads);
        }
        return to_array(result.cosine);
      },
      py::arg("path"), py::arg("embeddings"), py::arg("ids") = py::none(),
      py::arg("pixels") = py::none(), py::arg("replace") = false, py::arg("chunk_size") = 0,
      py::arg("dictionary") = py::none(), py::arg("n_threads") = 0,
      "Append a batch atomically (earlier bytes untouched unless replace); returns cosines.");

  m.def(
      "repack_collection",
      [](const std::string& path, std::optional<Holder> dictionary, int n_threads) {
        py::gil_scoped_release release;
        smic::CollectionWriter::repack(path, dictionary.value_or(nullptr), n_threads);
      },
      py::arg("path"), py::arg("dictionary") = py::none(), py::arg("n_threads") = 0,
      "Rewrite a collection atomically with its batches merged into one (items decode the same).");

  m.def(
      "refine",
      [](const py::array& decoded, const py::array& levels, double step) {
        std::size_t n = 0, d = 0;
        const float* x = matrix(decoded, "decoded", n, d);
        smic_py::require_array<int32_t>(levels, 2, "levels");
        if (static_cast<std::size_t>(levels.shape(0)) != n || static_cast<std::size_t>(levels.shape(1)) != d)
          throw py::value_error("levels must have the shape of decoded");
        smic::check_residual_step(step);
        py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(d)});
        std::copy(x, x + n * d, out.mutable_data());
        smic::refine(out.mutable_data(), static_cast<const int32_t*>(levels.data()), n, d, step);
        return out;
      },
      py::arg("decoded"), py::arg("levels"), py::arg("step"),
      "decoded + levels * step, rows renormalised (what a reader of a refined item gets).");
  m.def(
      "residual_levels",
      [](const py::array& unit, const py::array& decoded, double step) {
        std::size_t n = 0, d = 0, n2 = 0, d2 = 0;
        const float* u = matrix(unit, "unit", n, d);
        const float* x = matrix(decoded, "decoded", n2, d2);
        if (n != n2 || d != d2) throw py::value_error("unit and decoded differ in shape");
        smic::check_residual_step(step);
        return to_array(smic::residual_levels(u, x, n, d, step), n, d);
      },
      py::arg("unit"), py::arg("decoded"), py::arg("step"),
      "int32 levels of unit / cos - decoded at step (round to nearest; cos = unit . decoded, "
      "unit - decoded where cos < TRANSFORM_TARGET_MIN_COSINE).");
  m.def(
      "pack_varints",
      [](const py::array& values) {
        smic_py::require_array<uint64_t>(values, 1, "values");
        std::vector<uint8_t> out;
        const auto* v = static_cast<const uint64_t*>(values.data());
        for (py::ssize_t i = 0; i < values.size(); ++i) smic::append_varint(out, v[i]);
        return as_bytes(out);
      },
      "Unsigned LEB128 of each value: how the format stores its count tables.");
}
