// What the file-format bindings share (register_format, register_coding_dictionary,
// register_collection, register_ksvd): strings as Python str with surrogatepass, numpy arrays
// in and out, coding parameters and item codes as dicts and tuples.
#pragma once
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
inline Holder held(DictPtr p) { return std::const_pointer_cast<CodingDictionary>(std::move(p)); }

namespace smic_py {


// ---- strings: UTF-8 with surrogatepass both ways -------------------------------------------

inline std::string to_utf8(const py::handle& s, const char* what) {
  if (!PyUnicode_Check(s.ptr())) throw py::value_error(std::string(what) + " must be strings");
  PyObject* bytes = PyUnicode_AsEncodedString(s.ptr(), "utf-8", "surrogatepass");
  if (!bytes) throw py::error_already_set();
  std::string out(PyBytes_AS_STRING(bytes), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes)));
  Py_DECREF(bytes);
  return out;
}

inline py::str from_utf8(const std::string& s) {
  PyObject* u = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogatepass");
  if (!u) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(u);
}

inline std::vector<std::string> strings(const py::object& list, const char* what) {
  std::vector<std::string> out;
  if (list.is_none()) return out;
  for (const auto& item : list) out.push_back(to_utf8(item, what));
  return out;
}

inline std::vector<int64_t> pixel_counts(const py::object& list) {
  std::vector<int64_t> out;
  if (list.is_none()) return out;
  for (const auto& item : list) out.push_back(item.cast<int64_t>());
  return out;
}

// ---- arrays --------------------------------------------------------------------------------

inline const float* matrix(const py::array& a, const char* name, std::size_t& rows, std::size_t& cols) {
  smic_py::require_array<float>(a, 2, name);
  rows = static_cast<std::size_t>(a.shape(0));
  cols = static_cast<std::size_t>(a.shape(1));
  return static_cast<const float*>(a.data());
}

template <class T>
inline py::array_t<T> to_array(const std::vector<T>& v, std::size_t rows, std::size_t cols) {
  py::array_t<T> out({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

template <class T>
inline py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

inline py::tuple codes_tuple(const ItemCodes& c) {
  return py::make_tuple(to_array(c.counts), to_array(c.first), to_array(c.rest_index, c.n, c.width),
                        to_array(c.rest_level, c.n, c.width));
}

inline ItemCodes codes_from(const CodingDictionary& d, const py::array& counts, const py::array& first,
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
inline std::optional<ItemCodes> given_codes(const smic::CodingDictionary& dictionary, const py::object& codes) {
  if (codes.is_none()) return std::nullopt;
  const auto t = codes.cast<py::tuple>();
  return codes_from(dictionary, t[0], t[1], t[2], t[3]);
}

// "auto" (nullopt: the writer picks the smaller), "order0" or "remaining".
inline std::optional<smic::IndexModel> index_model_from(const std::string& name) {
  if (name == "auto") return std::nullopt;
  if (name == "order0") return smic::IndexModel::kOrder0;
  if (name == "remaining") return smic::IndexModel::kRemaining;
  throw py::value_error("index_model must be one of 'auto', 'order0', 'remaining', got '" + name + "'");
}

inline const char* index_model_name(smic::IndexModel m) {
  return m == smic::IndexModel::kRemaining ? "remaining" : "order0";
}

inline smic::WriteOptions write_options(std::optional<std::string> model, std::size_t chunk_size,
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

inline smic::CodingParams params_from(const py::dict& p) {
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

inline py::dict params_dict(const smic::CodingParams& p) {
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

inline smic::AtomPrecision precision_from(const std::string& name) {
  if (name == "float16") return smic::AtomPrecision::kFloat16;
  if (name == "int8") return smic::AtomPrecision::kInt8;
  throw py::value_error("precision must be one of ('float16', 'int8'), got '" + name + "'");
}

inline smic::TableCounts counts_from(const py::dict& d) {
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

inline py::bytes as_bytes(const std::vector<uint8_t>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

inline std::pair<const uint8_t*, std::size_t> buffer_of(const py::buffer& b, py::buffer_info& info) {
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
inline std::vector<smic::RowBlock> row_blocks(const py::list& arrays, std::size_t& rows, std::size_t& dim) {
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

inline smic::Magic magic_from(const py::bytes& b) {
  const std::string s = b;
  if (s.size() != 8) throw py::value_error("magic must be 8 bytes");
  smic::Magic m;
  std::copy(s.begin(), s.end(), m.begin());
  return m;
}


}  // namespace smic_py
