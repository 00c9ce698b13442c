// Binding of the container (sections, CRCs, atomic writes) and the residual refinement
// sections: bytes in and out, the GIL released around parsing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "format_binding.hpp"

namespace py = pybind11;
using namespace smic_py;

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
}
