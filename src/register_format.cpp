// Binding of the file format (coding_dictionary.hpp, collection.hpp, residual.hpp): numpy in
// and out, strings as Python str (lone surrogates pass through, as file names need), the GIL
// released around coding and decoding.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "smic/coding_dictionary.hpp"
#include "smic/collection.hpp"
#include "smic/residual.hpp"
#include "smic/transform.hpp"
#include "ksvd_binding.hpp"
#include "validate.hpp"

namespace py = pybind11;
using smic::CodingDictionary;
using smic::ItemCodes;
using DictPtr = std::shared_ptr<const CodingDictionary>;
// pybind11 holders cannot point to const: Python sees a mutable holder of an object whose
// every bound method is const.
using Holder = std::shared_ptr<CodingDictionary>;
Holder held(DictPtr p) { return std::const_pointer_cast<CodingDictionary>(std::move(p)); }

namespace {

// ---- strings: UTF-8 with surrogatepass both ways -------------------------------------------

std::string to_utf8(const py::handle& s, const char* what) {
  if (!PyUnicode_Check(s.ptr())) throw py::value_error(std::string(what) + " must be strings");
  PyObject* bytes = PyUnicode_AsEncodedString(s.ptr(), "utf-8", "surrogatepass");
  if (!bytes) throw py::error_already_set();
  std::string out(PyBytes_AS_STRING(bytes), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes)));
  Py_DECREF(bytes);
  return out;
}

py::str from_utf8(const std::string& s) {
  PyObject* u = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogatepass");
  if (!u) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(u);
}

std::vector<std::string> strings(const py::object& list, const char* what) {
  std::vector<std::string> out;
  if (list.is_none()) return out;
  for (const auto& item : list) out.push_back(to_utf8(item, what));
  return out;
}

std::vector<int64_t> pixel_counts(const py::object& list) {
  std::vector<int64_t> out;
  if (list.is_none()) return out;
  for (const auto& item : list) out.push_back(item.cast<int64_t>());
  return out;
}

// ---- arrays --------------------------------------------------------------------------------

const float* matrix(const py::array& a, const char* name, std::size_t& rows, std::size_t& cols) {
  smic_py::require_array<float>(a, 2, name);
  rows = static_cast<std::size_t>(a.shape(0));
  cols = static_cast<std::size_t>(a.shape(1));
  return static_cast<const float*>(a.data());
}

template <class T>
py::array_t<T> to_array(const std::vector<T>& v, std::size_t rows, std::size_t cols) {
  py::array_t<T> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

py::tuple codes_tuple(const ItemCodes& c) {
  return py::make_tuple(to_array(c.counts), to_array(c.first), to_array(c.rest_index, c.n, c.width),
                        to_array(c.rest_level, c.n, c.width));
}

ItemCodes codes_from(const CodingDictionary& d, const py::array& counts, const py::array& first,
                     const py::array& rest_index, const py::array& rest_level) {
  smic_py::require_array<int32_t>(counts, 1, "counts");
  smic_py::require_array<int32_t>(first, 1, "first");
  smic_py::require_array<int32_t>(rest_index, 2, "rest_index");
  smic_py::require_array<int32_t>(rest_level, 2, "rest_level");
  ItemCodes c;
  c.n = static_cast<std::size_t>(counts.shape(0));
  c.width = d.models().row_width();
  const auto n = static_cast<py::ssize_t>(c.n), w = static_cast<py::ssize_t>(c.width);
  if (first.shape(0) != n || rest_index.shape(0) != n || rest_index.shape(1) != w ||
      rest_level.shape(0) != n || rest_level.shape(1) != w)
    throw py::value_error("item symbols must be counts, first (n,) and rest_index, rest_level (n, " +
                          std::to_string(c.width) + ")");
  auto copy = [](const py::array& a, std::vector<int32_t>& v) {
    const auto* p = static_cast<const int32_t*>(a.data());
    v.assign(p, p + a.size());
  };
  copy(counts, c.counts);
  copy(first, c.first);
  copy(rest_index, c.rest_index);
  copy(rest_level, c.rest_level);
  smic::validate_items(d.models(), c.columns(), c.n);
  return c;
}

// The arguments both collection writers share.
std::optional<ItemCodes> given_codes(const smic::CodingDictionary& dictionary, const py::object& codes) {
  if (codes.is_none()) return std::nullopt;
  const auto t = codes.cast<py::tuple>();
  return codes_from(dictionary, t[0], t[1], t[2], t[3]);
}

// "auto" (nullopt: the writer picks the smaller), "order0" or "remaining".
std::optional<smic::IndexModel> index_model_from(const std::string& name) {
  if (name == "auto") return std::nullopt;
  if (name == "order0") return smic::IndexModel::kOrder0;
  if (name == "remaining") return smic::IndexModel::kRemaining;
  throw py::value_error("index_model must be one of 'auto', 'order0', 'remaining', got '" + name + "'");
}

const char* index_model_name(smic::IndexModel m) {
  return m == smic::IndexModel::kRemaining ? "remaining" : "order0";
}

smic::WriteOptions write_options(std::optional<std::string> model, std::size_t chunk_size,
                                 std::optional<double> residual_step, const std::string& writer,
                                 bool embed_dictionary, int n_threads,
                                 const std::string& index_model) {
  smic::WriteOptions options;
  options.index_model = index_model_from(index_model);
  options.model = std::move(model);
  options.chunk_size = chunk_size;
  options.residual_step = residual_step;
  options.writer = writer;
  options.embed_dictionary = embed_dictionary;
  options.n_threads = n_threads;
  return options;
}

// ---- coding parameters as the Python dict of CodingParams.to_json() ----------------------

smic::CodingParams params_from(const py::dict& p) {
  smic::CodingParams out;
  out.s_max = p["s_max"].cast<uint32_t>();
  out.step = p["step"].cast<double>();
  out.rounding = p["rounding"].cast<double>();
  out.rd_lambda = p["rd_lambda"].cast<double>();
  const auto layout = p["layout"].cast<std::string>();
  if (layout != "smic" && layout != "paper")
    throw py::value_error("layout must be 'smic' or 'paper', got '" + layout + "'");
  out.layout = layout == "paper" ? smic::ItemLayout::kPaper : smic::ItemLayout::kSorted;
  out.paper_bits = p["paper_bits"].cast<uint32_t>();
  out.paper_range = p["paper_range"].cast<double>();
  out.validate();
  return out;
}

py::dict params_dict(const smic::CodingParams& p) {
  py::dict d;
  d["s_max"] = p.s_max;
  d["step"] = p.step;
  d["rounding"] = p.rounding;
  d["rd_lambda"] = p.rd_lambda;
  d["layout"] = p.layout == smic::ItemLayout::kPaper ? "paper" : "smic";
  d["paper_bits"] = p.paper_bits;
  d["paper_range"] = p.paper_range;
  return d;
}

smic::AtomPrecision precision_from(const std::string& name) {
  if (name == "float16") return smic::AtomPrecision::kFloat16;
  if (name == "int8") return smic::AtomPrecision::kInt8;
  throw py::value_error("precision must be one of ('float16', 'int8'), got '" + name + "'");
}

smic::TableCounts counts_from(const py::dict& d) {
  smic::TableCounts t;
  auto one = [&](const char* name, std::vector<uint64_t>& v) {
    const py::array a = d[name].cast<py::array>();
    smic_py::require_array<uint64_t>(a, 1, name);
    const auto* p = static_cast<const uint64_t*>(a.data());
    v.assign(p, p + a.size());
  };
  one("count", t.count);
  one("first", t.first);
  one("index", t.index);
  one("level", t.level);
  return t;
}

py::bytes as_bytes(const std::vector<uint8_t>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

std::pair<const uint8_t*, std::size_t> buffer_of(const py::buffer& b, py::buffer_info& info) {
  info = b.request();
  if (info.ndim != 1 || info.itemsize != 1 || (info.size > 1 && info.strides[0] != 1))
    throw py::value_error("data must be a contiguous buffer of bytes");
  return {static_cast<const uint8_t*>(info.ptr), static_cast<std::size_t>(info.size)};
}

// A parsed RESD section with its own copy of the payload (ResidualCode points into it).
struct OwnedResidual {
  std::vector<uint8_t> payload;
  smic::ResidualCode code;
};

// Input blocks of a streaming write: 2-D C-contiguous float16/32/64 arrays of `dim` columns
// (numpy memory maps included: nothing is copied). Checked with the GIL held; the caller keeps
// the arrays referenced while the core reads them without it.
std::vector<smic::RowBlock> row_blocks(const py::list& arrays, std::size_t& rows, std::size_t& dim) {
  std::vector<smic::RowBlock> out;
  rows = 0;
  dim = 0;
  for (const auto& item : arrays) {
    if (!py::isinstance<py::array>(item)) throw py::value_error("E must be numpy arrays");
    const auto a = py::reinterpret_borrow<py::array>(item);
    smic::RowType type;
    if (a.dtype().equal(py::dtype::of<float>())) {
      type = smic::RowType::kFloat32;
    } else if (a.dtype().equal(py::dtype::of<double>())) {
      type = smic::RowType::kFloat64;
    } else if (a.dtype().equal(py::dtype("float16"))) {
      type = smic::RowType::kFloat16;
    } else {
      throw py::value_error("E must have dtype float16, float32 or float64, got " +
                            std::string(py::str(a.dtype())));
    }
    if (a.ndim() != 2)
      throw py::value_error("E must be 2-dimensional, got shape " + smic_py::shape_string(a));
    if (!(a.flags() & py::array::c_style))
      throw py::value_error("E must be C-contiguous (use np.ascontiguousarray)");
    const auto cols = static_cast<std::size_t>(a.shape(1));
    if (out.empty()) dim = cols;
    if (cols != dim)
      throw py::value_error("E blocks differ in dimension: " + std::to_string(dim) + " and " +
                            std::to_string(cols));
    out.push_back({a.data(), static_cast<std::size_t>(a.shape(0)), type});
    rows += static_cast<std::size_t>(a.shape(0));
  }
  return out;
}

smic::Magic magic_from(const py::bytes& b) {
  const std::string s = b;
  if (s.size() != 8) throw py::value_error("magic must be 8 bytes");
  smic::Magic m;
  std::copy(s.begin(), s.end(), m.begin());
  return m;
}

}  // namespace

void register_format(py::module_& m) {
  m.attr("FORMAT_VERSION") = smic::kFormatVersion;
  m.def(
      "encode_container",
      [](const py::bytes& magic, int version, const std::vector<std::pair<py::bytes, py::bytes>>& sections) {
        std::vector<smic::Section> out;
        for (const auto& [tag, payload] : sections) {
          const std::string t = tag, p = payload;
          if (t.size() != 4) throw py::value_error("section tag must be 4 bytes, got " + std::string(py::repr(tag)));
          smic::Section s;
          std::copy(t.begin(), t.end(), s.tag.begin());
          s.payload.assign(p.begin(), p.end());
          out.push_back(std::move(s));
        }
        if (version < 1 || version > smic::kFormatVersion)
          throw py::value_error("version must be in [1, " + std::to_string(smic::kFormatVersion) + "]");
        return as_bytes(smic::encode_container(magic_from(magic), static_cast<uint16_t>(version), out));
      },
      py::arg("magic"), py::arg("version"), py::arg("sections"),
      "A container's bytes: preamble, then each (tag, payload) with its length and CRC32.");
  m.def(
      "parse_container",
      [](const py::buffer& data, const py::bytes& magic, const std::string& kind, const std::string& name) {
        py::buffer_info info;
        const auto [p, n] = buffer_of(data, info);
        const smic::ContainerView view = smic::parse_container(p, n, magic_from(magic), kind, name);
        py::list sections;
        for (const auto& s : view.sections)
          sections.append(py::make_tuple(py::bytes(s.tag.data(), 4),
                                         py::bytes(reinterpret_cast<const char*>(s.data), s.size)));
        return py::make_tuple(view.version, sections);
      },
      py::arg("data"), py::arg("magic"), py::arg("kind") = "smic file", py::arg("name") = "<bytes>",
      "Verify and split a container -> (version, [(tag, payload), ...]); FormatError if damaged.");
  m.def(
      "atomic_write",
      [](const std::string& path, const py::bytes& data) {
        const std::string d = data;
        py::gil_scoped_release release;
        smic::atomic_write(path, reinterpret_cast<const uint8_t*>(d.data()), d.size());
      },
      "Write bytes to path atomically (temporary file beside it, fsync, rename).");
  m.def(
      "encode_residual",
      [](const py::array& levels, double step, std::size_t chunk_size) {
        smic_py::require_array<int32_t>(levels, 2, "levels");
        return as_bytes(smic::encode_residual(static_cast<const int32_t*>(levels.data()),
                                              static_cast<std::size_t>(levels.shape(0)),
                                              static_cast<std::size_t>(levels.shape(1)), step, chunk_size));
      },
      py::arg("levels"), py::arg("step"), py::arg("chunk_size"),
      "The RESD payload of (n, d) int32 residual levels.");
  py::class_<OwnedResidual>(m, "ResidualCode", "A parsed RESD section (residual refinement).")
      .def_static(
          "parse",
          [](const py::bytes& payload, const std::string& name) {
            const std::string p = payload;
            auto owned = std::make_unique<OwnedResidual>();
            owned->payload.assign(p.begin(), p.end());
            owned->code = smic::ResidualCode::parse(owned->payload.data(), owned->payload.size(), name);
            return owned;
          },
          py::arg("payload"), py::arg("name") = "<residual>")
      .def_property_readonly("step", [](const OwnedResidual& r) { return r.code.step(); })
      .def_property_readonly("n_items", [](const OwnedResidual& r) { return r.code.n_items(); })
      .def_property_readonly("dim", [](const OwnedResidual& r) { return r.code.dim(); })
      .def_property_readonly("data_size", [](const OwnedResidual& r) { return r.code.data_size(); })
      .def(
          "levels",
          [](const OwnedResidual& r, std::size_t start, std::optional<std::size_t> stop) {
            const std::size_t end = stop.value_or(r.code.n_items());
            if (start > end || end > r.code.n_items()) throw py::value_error("range out of bounds");
            py::array_t<int32_t> out({static_cast<py::ssize_t>(end - start), static_cast<py::ssize_t>(r.code.dim())});
            r.code.levels(start, end, out.mutable_data(), "<residual>");
            return out;
          },
          py::arg("start") = 0, py::arg("stop") = py::none());
  m.def(
      "learn_for_rate",
      [](const py::array& x, long long n_atoms, const py::dict& params, const std::string& precision,
         long long n_iter, unsigned long long seed, int n_threads, double max_coherence,
         py::object progress, double min_usage_fraction, long long sparsity_iterations) {
        const smic::CodingParams p = params_from(params);
        if (sparsity_iterations < -1)
          throw py::value_error("sparsity_iterations must be >= 0 (or -1: half of n_iter), got " +
                                std::to_string(sparsity_iterations));
        const smic::AtomPrecision prec = precision_from(precision);
        smic::KsvdOptions opt = smic_py::ksvd_options(x, n_atoms, p.s_max, n_iter, seed, n_threads,
                                                      max_coherence, min_usage_fraction);
        const float* xp = static_cast<const float*>(x.data());
        const auto n = static_cast<std::size_t>(x.shape(0));
        const auto dim = static_cast<std::size_t>(x.shape(1));
        return smic_py::run_ksvd(xp, n, dim, opt, progress, [&](const smic::KsvdProgress& cb) {
          const std::size_t warm = sparsity_iterations < 0 ? opt.n_iter / 2
                                                           : static_cast<std::size_t>(sparsity_iterations);
          return smic::learn_for_rate(xp, n, dim, p, prec, opt, warm, cb);  // GIL released
        });
      },
      py::arg("X"), py::arg("n_atoms"), py::arg("params"), py::arg("precision") = "float16",
      py::arg("n_iter") = 10, py::arg("seed") = 0, py::arg("n_threads") = 0,
      py::arg("max_coherence") = 0.99, py::arg("progress") = py::none(),
      py::arg("min_usage_fraction") = 0.25, py::arg("sparsity_iterations") = -1,
      "K-SVD coding its unit-norm training rows with s_max atoms for sparsity_iterations "
      "iterations (-1: half of n_iter), then with the coder's own rate-distortion choice "
      "(smic layout); returns (D, mean squared error per iteration, replaced atoms).");
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
      "int32 levels of unit - decoded at step (round to nearest).");
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
