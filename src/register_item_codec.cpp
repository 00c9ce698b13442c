// Binding of the item codec: one ItemModels object holds the four static models, built once
// and reused, so coding a single item costs a method call plus a few array checks. Inputs are
// validated with the GIL held (dtype, shape, contiguity here; values in the core before any
// coding); the GIL is then released for the loops, which touch only buffers kept alive by this
// frame (py::array references, a py::buffer_info export of the data) and no Python object.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "smic/item_codec.hpp"
#include "validate.hpp"

namespace py = pybind11;

namespace {

using Layout = smic::ItemLayout;

smic::FrequencyTable table(const py::array& a, const char* name) {
  smic_py::require_array<uint32_t>(a, 1, name);
  return {static_cast<const uint32_t*>(a.data()), static_cast<std::size_t>(a.shape(0))};
}

// count / first tables: required for the sorted layout; None or empty for the paper layout.
smic::FrequencyTable optional_table(const py::object& o, const char* name, bool paper) {
  if (o.is_none()) {
    if (!paper) throw py::value_error(std::string(name) + " is required unless paper=True");
    return {};
  }
  if (!py::isinstance<py::array>(o))
    throw py::value_error(std::string(name) + " must be a numpy array of dtype uint32" +
                          (paper ? " or None" : ""));
  const smic::FrequencyTable t = table(o.cast<py::array>(), name);
  if (paper && t.size != 0)
    throw py::value_error(std::string(name) +
                          " is unused in the paper layout; pass None or an empty array");
  return t;
}

std::unique_ptr<smic::ItemModels> make_models(const py::object& count_freqs,
                                              const py::object& first_freqs,
                                              const py::array& index_freqs,
                                              const py::array& level_freqs, long long s_max,
                                              bool paper) {
  if (s_max < 1 || s_max > (1 << 16))
    throw py::value_error("s_max must be in [1, 65536], got " + std::to_string(s_max));
  return std::make_unique<smic::ItemModels>(
      optional_table(count_freqs, "count_freqs", paper),
      optional_table(first_freqs, "first_freqs", paper), table(index_freqs, "index_freqs"),
      table(level_freqs, "level_freqs"), static_cast<uint32_t>(s_max),
      paper ? Layout::kPaper : Layout::kSorted);
}

void require_layout(const smic::ItemModels& m, bool paper, const char* method) {
  if ((m.layout() == Layout::kPaper) != paper)
    throw py::value_error(std::string("ItemModels was built with paper=") +
                          (paper ? "False" : "True") + "; " + method + " is for paper=" +
                          (paper ? "True" : "False") + (paper ? " (use encode/decode/item_bits)"
                                                              : " (use the *_paper methods)"));
}

void require_shape(const py::array& a, py::ssize_t rows, py::ssize_t cols, const char* name) {
  const bool ok = a.shape(0) == rows && (a.ndim() == 1 || a.shape(1) == cols);
  if (!ok)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) +
                          (a.ndim() == 1 ? ",)" : ", " + std::to_string(cols) + ")") + ", got " +
                          smic_py::shape_string(a));
}

const int32_t* int_data(const py::array& a) { return static_cast<const int32_t*>(a.data()); }

// Checked views of the sorted layout's four arrays; n = len(counts).
smic::ItemColumns<const int32_t> sorted_columns(const smic::ItemModels& m, const py::array& counts,
                                                const py::array& first,
                                                const py::array& rest_index,
                                                const py::array& rest_level, std::size_t& n) {
  smic_py::require_array<int32_t>(counts, 1, "counts");
  smic_py::require_array<int32_t>(first, 1, "first");
  smic_py::require_array<int32_t>(rest_index, 2, "rest_index");
  smic_py::require_array<int32_t>(rest_level, 2, "rest_level");
  const py::ssize_t rows = counts.shape(0), w = static_cast<py::ssize_t>(m.row_width());
  require_shape(first, rows, 0, "first");
  require_shape(rest_index, rows, w, "rest_index");
  require_shape(rest_level, rows, w, "rest_level");
  n = static_cast<std::size_t>(rows);
  return {int_data(counts), int_data(first), int_data(rest_index), int_data(rest_level)};
}

smic::ItemColumns<const int32_t> paper_columns(const smic::ItemModels& m, const py::array& index,
                                               const py::array& level, std::size_t& n) {
  smic_py::require_array<int32_t>(index, 2, "index");
  smic_py::require_array<int32_t>(level, 2, "level");
  const py::ssize_t rows = index.shape(0), w = static_cast<py::ssize_t>(m.row_width());
  require_shape(index, rows, w, "index");
  require_shape(level, rows, w, "level");
  n = static_cast<std::size_t>(rows);
  return {nullptr, nullptr, int_data(index), int_data(level)};
}

std::size_t positive_chunk_size(long long chunk_size) {
  if (chunk_size < 1)
    throw py::value_error("chunk_size must be >= 1, got " + std::to_string(chunk_size));
  return static_cast<std::size_t>(chunk_size);
}

py::tuple encode(const smic::ItemModels& m, const smic::ItemColumns<const int32_t>& items,
                 std::size_t n, long long chunk_size, int n_threads) {
  const std::size_t cs = positive_chunk_size(chunk_size);
  smic::EncodedItems enc;
  {
    py::gil_scoped_release release;
    enc = smic::encode_items(m, items, n, cs, n_threads);
  }
  py::bytes data(reinterpret_cast<const char*>(enc.data.data()), enc.data.size());
  py::array_t<uint64_t> offsets(static_cast<py::ssize_t>(enc.offsets.size()));
  std::copy(enc.offsets.begin(), enc.offsets.end(), offsets.mutable_data());
  return py::make_tuple(std::move(data), std::move(offsets));
}

// Decode [start, stop) into freshly allocated arrays; returns them in layout order.
py::tuple decode(const smic::ItemModels& m, const py::buffer& data, const py::array& offsets,
                 long long n_items, long long chunk_size, long long start,
                 std::optional<long long> stop_arg, int n_threads) {
  const bool paper = m.layout() == Layout::kPaper;
  // The export keeps the buffer alive and unresizable (bytearray) while the GIL is released.
  const py::buffer_info info = data.request();
  if (info.ndim != 1 || info.itemsize != 1 || (info.size > 1 && info.strides[0] != 1))
    throw py::value_error("data must be a contiguous buffer of bytes (bytes, bytearray, "
                          "memoryview or 1-D uint8 array)");
  smic_py::require_array<uint64_t>(offsets, 1, "offsets");
  if (n_items < 0) throw py::value_error("n_items must be >= 0, got " + std::to_string(n_items));
  const std::size_t cs = positive_chunk_size(chunk_size);
  const long long stop = stop_arg.value_or(n_items);
  if (start < 0 || start > stop || stop > n_items)
    throw py::value_error("need 0 <= start <= stop <= n_items, got start = " +
                          std::to_string(start) + ", stop = " + std::to_string(stop) +
                          ", n_items = " + std::to_string(n_items));
  const py::ssize_t rows = static_cast<py::ssize_t>(stop - start);
  const py::ssize_t w = static_cast<py::ssize_t>(m.row_width());
  py::array_t<int32_t> index({rows, w}), level({rows, w});
  py::array_t<int32_t> counts(paper ? 0 : rows), first(paper ? 0 : rows);
  const smic::ItemColumns<int32_t> out{counts.mutable_data(), first.mutable_data(),
                                       index.mutable_data(), level.mutable_data()};
  const auto* bytes = static_cast<const uint8_t*>(info.ptr);
  const auto* offs = static_cast<const uint64_t*>(offsets.data());
  {
    py::gil_scoped_release release;
    smic::decode_items(m, bytes, static_cast<std::size_t>(info.size), offs,
                       static_cast<std::size_t>(offsets.shape(0)),
                       static_cast<std::size_t>(n_items), cs, static_cast<std::size_t>(start),
                       static_cast<std::size_t>(stop), out, n_threads);
  }
  if (paper) return py::make_tuple(std::move(index), std::move(level));
  return py::make_tuple(std::move(counts), std::move(first), std::move(index), std::move(level));
}

py::array_t<double> bits(const smic::ItemModels& m, const smic::ItemColumns<const int32_t>& items,
                         std::size_t n, int n_threads) {
  py::array_t<double> out(static_cast<py::ssize_t>(n));
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    smic::item_bits(m, items, n, o, n_threads);
  }
  return out;
}

}  // namespace

void register_item_codec(py::module_& m) {
  py::class_<smic::ItemModels>(m, "ItemModels", R"doc(
Static models of the item codec, built once and reused (immutable; safe to share across threads).

ItemModels(count_freqs, first_freqs, index_freqs, level_freqs, s_max, paper=False)

All tables are 1-D C-contiguous uint32 arrays, every entry >= 1, each summing to <= 2^31.
K = len(index_freqs) (number of atoms), L = len(level_freqs) (number of level symbols).

paper=False (SMIC's sorted layout): len(count_freqs) == s_max + 1, len(first_freqs) == 2K.
  Per item: count k in [0, s_max]; if k >= 1 the "first" symbol 2 * atom + sign of the atom of
  largest |coefficient|; then the k - 1 other atoms strictly ascending, each coded conditionally
  on exceeding the previous one, each followed by its level symbol.
  Use encode / decode / item_bits.
paper=True (the paper's baseline): every item has exactly s_max atoms, coded in the given order
  as index then level, unconditionally. count_freqs and first_freqs are unused: pass None or
  empty arrays. Use encode_paper / decode_paper / item_bits_paper.

Items are coded in independent chunks of chunk_size items (random access: decoding one item
decodes only its chunk). n_threads: 0 = all available, else that many (chunks in parallel).
Bad arguments raise ValueError naming the argument; corrupt data raises DecodeError.
)doc")
      .def(py::init(&make_models), py::arg("count_freqs"), py::arg("first_freqs"),
           py::arg("index_freqs"), py::arg("level_freqs"), py::arg("s_max"),
           py::arg("paper") = false)
      .def_property_readonly("s_max", &smic::ItemModels::s_max, "Most atoms per item.")
      .def_property_readonly("n_atoms", &smic::ItemModels::n_atoms, "K, the index alphabet.")
      .def_property_readonly("n_levels", &smic::ItemModels::n_levels, "L, the level alphabet.")
      .def_property_readonly(
          "paper", [](const smic::ItemModels& self) { return self.layout() == Layout::kPaper; },
          "True for the paper layout.")
      .def(
          "derive_remaining",
          [](const smic::ItemModels& self) {
            require_layout(self, false, "derive_remaining");
            return self.derive_remaining();
          },
          "These models with the remaining-atoms index model (format version 3): each other atom "
          "coded with the table of the smallest of the atoms still to code, derived from the "
          "index table (docs/format.md).")
      .def_property_readonly(
          "index_model",
          [](const smic::ItemModels& self) {
            return self.index_model() == smic::IndexModel::kRemaining ? "remaining" : "order0";
          },
          "'order0' or 'remaining' (see derive_remaining).")
      .def("__repr__",
           [](const smic::ItemModels& self) {
             return "ItemModels(s_max=" + std::to_string(self.s_max()) +
                    ", n_atoms=" + std::to_string(self.n_atoms()) +
                    ", n_levels=" + std::to_string(self.n_levels()) +
                    (self.layout() == Layout::kPaper ? ", paper=True)" : ", paper=False)");
           })
      .def(
          "encode",
          [](const smic::ItemModels& self, const py::array& counts, const py::array& first,
             const py::array& rest_index, const py::array& rest_level, long long chunk_size,
             int n_threads) {
            require_layout(self, false, "encode");
            std::size_t n = 0;
            const auto items = sorted_columns(self, counts, first, rest_index, rest_level, n);
            return encode(self, items, n, chunk_size, n_threads);
          },
          py::arg("counts"), py::arg("first"), py::arg("rest_index"), py::arg("rest_level"),
          py::arg("chunk_size"), py::arg("n_threads") = 0,
          R"doc(Encode n items (sorted layout) -> (data: bytes, offsets: uint64 (n_chunks + 1,)).

counts (n,) int32 in [0, s_max]; first (n,) int32 in [0, 2K) (ignored where count == 0);
rest_index, rest_level (n, s_max - 1) int32: row i's first counts[i] - 1 slots hold the other
atoms, strictly ascending in [0, K), and their level symbols in [0, L); later slots are ignored.
Chunk c holds items [c * chunk_size, (c + 1) * chunk_size) as data[offsets[c]:offsets[c + 1]].
)doc")
      .def(
          "decode",
          [](const smic::ItemModels& self, const py::buffer& data, const py::array& offsets,
             long long n_items, long long chunk_size, long long start,
             std::optional<long long> stop, int n_threads) {
            require_layout(self, false, "decode");
            return decode(self, data, offsets, n_items, chunk_size, start, stop, n_threads);
          },
          py::arg("data"), py::arg("offsets"), py::arg("n_items"), py::arg("chunk_size"),
          py::arg("start") = 0, py::arg("stop") = py::none(), py::arg("n_threads") = 0,
          R"doc(Decode items [start, stop) (stop=None: n_items) -> (counts, first, rest_index, rest_level).

data: bytes-like (bytes, bytearray, memoryview, 1-D uint8 array) holding all chunks, exactly
offsets[-1] bytes; offsets: uint64 (n_chunks + 1,) from encode; n_items, chunk_size as encoded.
Only the chunks overlapping [start, stop) are decoded (each in full, with an exact end check).
Unused rest slots and first of an empty item are -1. Raises DecodeError for bad offsets or a
truncated / corrupt chunk, ValueError for a range outside [0, n_items] or bad argument types.
)doc")
      .def(
          "item_bits",
          [](const smic::ItemModels& self, const py::array& counts, const py::array& first,
             const py::array& rest_index, const py::array& rest_level, int n_threads) {
            require_layout(self, false, "item_bits");
            std::size_t n = 0;
            const auto items = sorted_columns(self, counts, first, rest_index, rest_level, n);
            return bits(self, items, n, n_threads);
          },
          py::arg("counts"), py::arg("first"), py::arg("rest_index"), py::arg("rest_level"),
          py::arg("n_threads") = 0,
          R"doc(Ideal code length in bits of each item (float64 (n,)), arguments as encode.

Sum of -log2(freq / total) over the item's coded symbols with the coder's conditional totals.
A chunk's coded size in bits is the sum over its items plus 56 to 64 bits of flush.
)doc")
      .def(
          "encode_paper",
          [](const smic::ItemModels& self, const py::array& index, const py::array& level,
             long long chunk_size, int n_threads) {
            require_layout(self, true, "encode_paper");
            std::size_t n = 0;
            const auto items = paper_columns(self, index, level, n);
            return encode(self, items, n, chunk_size, n_threads);
          },
          py::arg("index"), py::arg("level"), py::arg("chunk_size"), py::arg("n_threads") = 0,
          R"doc(Encode n items (paper layout) -> (data: bytes, offsets: uint64 (n_chunks + 1,)).

index (n, s_max) int32 in [0, K) and level (n, s_max) int32 in [0, L), coded in the given order.
)doc")
      .def(
          "decode_paper",
          [](const smic::ItemModels& self, const py::buffer& data, const py::array& offsets,
             long long n_items, long long chunk_size, long long start,
             std::optional<long long> stop, int n_threads) {
            require_layout(self, true, "decode_paper");
            return decode(self, data, offsets, n_items, chunk_size, start, stop, n_threads);
          },
          py::arg("data"), py::arg("offsets"), py::arg("n_items"), py::arg("chunk_size"),
          py::arg("start") = 0, py::arg("stop") = py::none(), py::arg("n_threads") = 0,
          "Decode items [start, stop) of the paper layout -> (index, level), each (stop - start, "
          "s_max) int32. Arguments and errors as decode.")
      .def(
          "item_bits_paper",
          [](const smic::ItemModels& self, const py::array& index, const py::array& level,
             int n_threads) {
            require_layout(self, true, "item_bits_paper");
            std::size_t n = 0;
            const auto items = paper_columns(self, index, level, n);
            return bits(self, items, n, n_threads);
          },
          py::arg("index"), py::arg("level"), py::arg("n_threads") = 0,
          "Ideal code length in bits of each item (float64 (n,)), arguments as encode_paper.");
}
