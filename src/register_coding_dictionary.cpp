// Binding of smic::CodingDictionary (smic/coding_dictionary.hpp): the coding dictionary, its
// tables and one-item coding; the GIL released around coding and decoding.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "format_binding.hpp"

namespace py = pybind11;
using namespace smic_py;

void register_coding_dictionary(py::module_& m) {
  py::class_<CodingDictionary, Holder>(m, "CodingDictionary", R"doc(
A coding dictionary (C++): atoms, coding parameters and frequency tables; loads and saves the
.smicd format. Immutable; smic_fast.Dictionary is the documented Python API over it.
)doc")
      .def(py::init([](const py::array& atoms, const py::dict& params, const std::string& precision,
                       const py::dict& counts) {
             std::size_t k = 0, d = 0;
             const float* a = matrix(atoms, "atoms", k, d);
             return std::make_shared<CodingDictionary>(a, k, d, params_from(params),
                                                       precision_from(precision), counts_from(counts));
           }),
           py::arg("atoms"), py::arg("params"), py::arg("precision"), py::arg("counts"))
      .def_property_readonly(
          "transform",
          [](const CodingDictionary& d) -> std::optional<std::shared_ptr<smic::TransformModel>> {
            if (!d.transform_ptr()) return std::nullopt;
            return std::const_pointer_cast<smic::TransformModel>(d.transform_ptr());
          },
          "The transform of a transform-coded refinement layer, or None.")
      .def(
          "with_transform",
          [](const CodingDictionary& d, std::optional<std::shared_ptr<smic::TransformModel>> t) {
            return held(d.with_transform(t.value_or(nullptr)));
          },
          py::arg("transform"), "This dictionary with a transform (None: without one); a new hash.")
      .def(
          "classes",
          [](const CodingDictionary& d, const py::array& counts, const py::array& first,
             const py::array& rest_index, const py::array& rest_level) {
            if (!d.transform()) throw py::value_error("the dictionary has no transform");
            const ItemCodes c = codes_from(d, counts, first, rest_index, rest_level);
            return to_array(d.transform()->classes(c));
          },
          "The transform class (uint32) of each item: its first atom's class.")
      .def_static(
          "load",
          [](const std::string& path) {
            py::gil_scoped_release release;
            return held(CodingDictionary::load(path));
          },
          py::arg("path"), "Read a .smicd file (FormatError if damaged or not a dictionary).")
      .def_static(
          "from_bytes",
          [](const py::buffer& data, const std::string& name) {
            py::buffer_info info;
            const auto [p, n] = buffer_of(data, info);
            py::gil_scoped_release release;
            return held(CodingDictionary::from_bytes(p, n, name));
          },
          py::arg("data"), py::arg("name") = "<dictionary>")
      .def_static(
          "with_tables",
          [](const py::array& atoms, const py::array& unit, const py::dict& params,
             const std::string& precision, int n_threads) {
            std::size_t k = 0, d = 0, n = 0, d2 = 0;
            const float* a = matrix(atoms, "atoms", k, d);
            const float* u = matrix(unit, "embeddings", n, d2);
            if (d2 != d) throw py::value_error("atoms and embeddings differ in dimension");
            const smic::CodingParams p = params_from(params);
            const smic::AtomPrecision prec = precision_from(precision);
            ItemCodes codes;
            DictPtr out;
            {
              py::gil_scoped_release release;
              out = CodingDictionary::with_tables(a, k, u, n, d, p, prec, n_threads, &codes);
            }
            return py::make_tuple(held(out), codes_tuple(codes));
          },
          py::arg("atoms"), py::arg("unit"), py::arg("params"), py::arg("precision"),
          py::arg("n_threads") = 0,
          "Fit the tables of `atoms` on unit embeddings -> (dictionary, training item symbols).")
      .def_property_readonly("n_atoms", &CodingDictionary::n_atoms)
      .def_property_readonly("dim", &CodingDictionary::dim)
      .def_property_readonly("params", [](const CodingDictionary& d) { return params_dict(d.params()); })
      .def_property_readonly("precision", &CodingDictionary::precision_name)
      .def_property_readonly("flat", &CodingDictionary::flat)
      .def_property_readonly("hash", &CodingDictionary::hash_hex)
      .def_property_readonly("atoms", [](const CodingDictionary& d) {
        return to_array(d.atoms(), d.n_atoms(), d.dim());
      })
      .def_property_readonly("table_counts", [](const CodingDictionary& d) {
        py::dict out;
        out["count"] = to_array(d.table_counts().count);
        out["first"] = to_array(d.table_counts().first);
        out["index"] = to_array(d.table_counts().index);
        out["level"] = to_array(d.table_counts().level);
        return out;
      })
      .def_property_readonly("models", [](const CodingDictionary& d) -> const smic::ItemModels& { return d.models(); },
                             py::return_value_policy::reference_internal,
                             "The item codec's models (ItemModels), e.g. for item_bits.")
      .def("to_bytes", [](const CodingDictionary& d) { return as_bytes(d.to_bytes()); })
      .def("save", [](const CodingDictionary& d, const std::string& path) {
        py::gil_scoped_release release;
        d.save(path);
      })
      .def(
          "choose",
          [](const CodingDictionary& d, const py::array& unit, int n_threads) {
            std::size_t n = 0, dim = 0;
            const float* u = matrix(unit, "unit", n, dim);
            if (dim != d.dim()) throw py::value_error("embeddings must have " + std::to_string(d.dim()) + " columns");
            ItemCodes codes;
            std::vector<double> cosine;
            {
              py::gil_scoped_release release;
              codes = d.choose(u, n, n_threads, &cosine);
            }
            py::object cos = cosine.empty() && n > 0 ? py::object(py::none()) : py::object(to_array(cosine));
            return py::make_tuple(codes_tuple(codes), cos);
          },
          py::arg("unit"), py::arg("n_threads") = 0,
          "Symbols of unit embeddings -> ((counts, first, rest_index, rest_level), cosine or None).")
      .def(
          "reconstruct",
          [](const CodingDictionary& d, const py::array& counts, const py::array& first,
             const py::array& rest_index, const py::array& rest_level) {
            const ItemCodes c = codes_from(d, counts, first, rest_index, rest_level);
            py::array_t<float> out({static_cast<py::ssize_t>(c.n), static_cast<py::ssize_t>(d.dim())});
            float* o = out.mutable_data();
            {
              py::gil_scoped_release release;
              d.reconstruct(c, o);
            }
            return out;
          },
          "Unit-norm float32 (n, d) embeddings of item symbols.")
      .def(
          "encode_items",
          [](const CodingDictionary& d, const py::array& counts, const py::array& first,
             const py::array& rest_index, const py::array& rest_level, std::size_t chunk_size) {
            const ItemCodes c = codes_from(d, counts, first, rest_index, rest_level);
            smic::EncodedItems e;
            {
              py::gil_scoped_release release;
              e = d.encode_items(c, chunk_size);
            }
            return py::make_tuple(as_bytes(e.data), to_array(e.offsets));
          })
      .def(
          "decode_items",
          [](const CodingDictionary& d, const py::buffer& data, const py::array& offsets,
             std::size_t n_items, std::size_t chunk_size, std::size_t start,
             std::optional<std::size_t> stop) {
            py::buffer_info info;
            const auto [p, size] = buffer_of(data, info);
            smic_py::require_array<uint64_t>(offsets, 1, "offsets");
            const std::size_t end = stop.value_or(n_items);
            if (start > end || end > n_items) throw py::value_error("need 0 <= start <= stop <= n_items");
            ItemCodes c;
            {
              py::gil_scoped_release release;
              c = d.decode_items(p, size, static_cast<const uint64_t*>(offsets.data()),
                                 static_cast<std::size_t>(offsets.size()), n_items, chunk_size,
                                 start, end, 1);
            }
            return codes_tuple(c);
          },
          py::arg("data"), py::arg("offsets"), py::arg("n_items"), py::arg("chunk_size"),
          py::arg("start") = 0, py::arg("stop") = py::none())
      .def(
          "encode_one",
          [](const CodingDictionary& d, const py::array& x, double residual_step) {
            smic_py::require_array<float>(x, 1, "embedding");
            if (static_cast<std::size_t>(x.size()) != d.dim())
              throw py::value_error("embedding must have " + std::to_string(d.dim()) + " values");
            const auto bytes = d.encode_one(static_cast<const float*>(x.data()), residual_step);
            return as_bytes(bytes);
          },
          py::arg("embedding"), py::arg("residual_step") = 0.0,
          "Bytes of one embedding (what the batch path writes for it as a chunk of one), refined "
          "by the dictionary's transform layer at residual_step when it is above 0.")
      .def(
          "decode_one",
          [](const CodingDictionary& d, const py::buffer& data, double residual_step) {
            py::buffer_info info;
            const auto [p, size] = buffer_of(data, info);
            py::array_t<float> out(static_cast<py::ssize_t>(d.dim()));
            d.decode_one(p, size, out.mutable_data(), residual_step);
            return out;
          },
          py::arg("data"), py::arg("residual_step") = 0.0,
          "The unit-norm (d,) embedding of encode_one's bytes (at the step they were coded with).")
      .def_property_readonly("encode_bound", [](const CodingDictionary& d) { return d.encode_bound(); })
      .def("encode_bound_at", &CodingDictionary::encode_bound, py::arg("residual_step"),
           "The most bytes encode_one can produce at residual_step.");

}
