// Binding of the range coder: strict numpy in and out (exact dtypes, C-contiguous; the Python
// wrapper smic_fast.coding.range_coder does the conversions). Inputs are validated with the GIL held;
// the GIL is released for the coding loops, which touch only the validated buffers (kept alive
// by the py::array / py::bytes references held in this frame) and no Python object.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smic/range_coder.hpp"
#include "validate.hpp"

namespace py = pybind11;

namespace {

smic::StaticModel static_model(const py::array& freqs) {
  smic_py::require_array<uint32_t>(freqs, 1, "freqs");
  return smic::StaticModel(static_cast<const uint32_t*>(freqs.data()),
                           static_cast<std::size_t>(freqs.shape(0)));
}

const int32_t* symbols_data(const py::array& symbols) {
  smic_py::require_array<int32_t>(symbols, 1, "symbols");
  return static_cast<const int32_t*>(symbols.data());
}

py::array_t<int32_t> new_output(py::ssize_t count) {
  if (count < 0) throw py::value_error("count must be >= 0, got " + std::to_string(count));
  return py::array_t<int32_t>(count);
}

py::bytes to_bytes(const std::vector<uint8_t>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

}  // namespace

void register_range_coder(py::module_& m) {
  m.def(
      "range_encode_static",
      [](const py::array& symbols, const py::array& freqs) {
        const int32_t* s = symbols_data(symbols);
        const auto n = static_cast<std::size_t>(symbols.shape(0));
        const smic::StaticModel model = static_model(freqs);
        std::vector<uint8_t> out;
        {
          py::gil_scoped_release release;
          out = smic::encode_static(s, n, model);
        }
        return to_bytes(out);
      },
      py::arg("symbols"), py::arg("freqs"),
      "Range-code int32 `symbols` with the static uint32 frequency table `freqs`.");

  m.def(
      "range_decode_static",
      [](const py::bytes& data, const py::array& freqs, py::ssize_t count) {
        const smic::StaticModel model = static_model(freqs);
        py::array_t<int32_t> out = new_output(count);
        const std::string_view view = data;
        int32_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          smic::decode_static(reinterpret_cast<const uint8_t*>(view.data()), view.size(), model, o,
                              static_cast<std::size_t>(count));
        }
        return out;
      },
      py::arg("data"), py::arg("freqs"), py::arg("count"),
      "Decode `count` symbols coded by range_encode_static with the same `freqs`.");

  m.def(
      "range_encode_adaptive",
      [](const py::array& symbols, uint32_t alphabet_size, uint32_t increment, uint32_t limit) {
        const int32_t* s = symbols_data(symbols);
        const auto n = static_cast<std::size_t>(symbols.shape(0));
        smic::AdaptiveModel::validate(alphabet_size, increment, limit);
        std::vector<uint8_t> out;
        {
          py::gil_scoped_release release;
          out = smic::encode_adaptive(s, n, alphabet_size, increment, limit);
        }
        return to_bytes(out);
      },
      py::arg("symbols"), py::arg("alphabet_size"), py::arg("increment"), py::arg("limit"),
      "Range-code int32 `symbols` with an adaptive model.");

  m.def(
      "range_decode_adaptive",
      [](const py::bytes& data, py::ssize_t count, uint32_t alphabet_size, uint32_t increment,
         uint32_t limit) {
        smic::AdaptiveModel::validate(alphabet_size, increment, limit);
        py::array_t<int32_t> out = new_output(count);
        const std::string_view view = data;
        int32_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          smic::decode_adaptive(reinterpret_cast<const uint8_t*>(view.data()), view.size(),
                                alphabet_size, increment, limit, o,
                                static_cast<std::size_t>(count));
        }
        return out;
      },
      py::arg("data"), py::arg("count"), py::arg("alphabet_size"), py::arg("increment"),
      py::arg("limit"), "Decode `count` symbols coded by range_encode_adaptive.");

  m.def(
      "frequencies_from_counts",
      [](const py::array& counts, int total_bits) {
        smic_py::require_array<uint64_t>(counts, 1, "counts");
        if (total_bits < -1 || total_bits > 31)
          throw py::value_error("total_bits must be in [0, 31] (or -1 for none), got " +
                                std::to_string(total_bits));
        std::vector<uint32_t> q;
        {
          py::gil_scoped_release release;
          q = smic::frequencies_from_counts(static_cast<const uint64_t*>(counts.data()),
                                            static_cast<std::size_t>(counts.shape(0)), total_bits);
        }
        py::array_t<uint32_t> out(static_cast<py::ssize_t>(q.size()));
        std::copy(q.begin(), q.end(), out.mutable_data());
        return out;
      },
      py::arg("counts"), py::arg("total_bits") = -1,
      "uint32 frequency table from uint64 counts (total_bits = -1: rescale only past 2^31).");
}
