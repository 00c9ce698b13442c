// Binding of the transform-coded refinement layer (transform.hpp): the model's learned arrays
// in, levels, bits and context counts out; the GIL released around the per-item loops.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "smic/transform.hpp"
#include "validate.hpp"

namespace py = pybind11;
using smic::TransformModel;
// pybind11 holders cannot point to const (see register_format.cpp).
using TransformHolder = std::shared_ptr<TransformModel>;

namespace {

template <class T>
std::vector<T> to_vector(const py::array& a) {
  const auto* p = static_cast<const T*>(a.data());
  return std::vector<T>(p, p + a.size());
}

// (n, dim) int32 levels and (n,) uint32 classes of one model; returns n.
std::size_t check_levels(const TransformModel& t, const py::array& levels, const py::array& classes) {
  smic_py::require_array<int32_t>(levels, 2, "levels");
  smic_py::require_array<uint32_t>(classes, 1, "classes");
  if (static_cast<std::size_t>(levels.shape(1)) != t.dim() || levels.shape(0) != classes.shape(0))
    throw py::value_error("levels must be (n, " + std::to_string(t.dim()) + ") and classes (n,), got " +
                          smic_py::shape_string(levels) + " and " + smic_py::shape_string(classes));
  const auto* c = static_cast<const uint32_t*>(classes.data());
  for (py::ssize_t i = 0; i < classes.shape(0); ++i)
    if (c[i] >= t.n_classes())
      throw py::value_error("classes must be < n_classes = " + std::to_string(t.n_classes()));
  return static_cast<std::size_t>(classes.shape(0));
}

smic::TransformQuantiser quantiser_of(const std::string& name) {
  if (name == "greedy") return smic::TransformQuantiser::kGreedy;
  if (name == "trellis") return smic::TransformQuantiser::kTrellis;
  if (name == "dependent") return smic::TransformQuantiser::kDependent;
  throw py::value_error("quantiser must be 'greedy', 'trellis' or 'dependent', got '" + name + "'");
}

const char* quantiser_name(smic::TransformQuantiser q) {
  switch (q) {
    case smic::TransformQuantiser::kTrellis: return "trellis";
    case smic::TransformQuantiser::kDependent: return "dependent";
    default: return "greedy";
  }
}

template <class T>
py::array_t<T> array_of(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace

void register_transform(py::module_& m) {
  m.attr("TRANSFORM_CONTEXTS") = smic::kTransformContexts;
  m.attr("TRANSFORM_ESCAPE") = smic::kTransformEscape;
  m.attr("TRANSFORM_GAINS") = smic::kTransformGains;
  m.attr("TRANSFORM_TARGET_MIN_COSINE") = smic::kTransformTargetMinCosine;
  py::class_<TransformModel, TransformHolder>(m, "TransformModel", R"doc(
The learned parts of a transform-coded refinement layer (C++; see smic_fast.coding.transform): each
class's mean and principal axes of the residual after the atoms, the spread along each axis as
round(4 log2 sigma), the class of every atom, the dead-zone rounding, the reconstruction bias and
the context tables' counts. Immutable.
)doc")
      .def(py::init([](const py::array& atom_class, const py::array& mean, const py::array& basis,
                       const py::array& scale, double rounding, double bias, const py::array& counts,
                       const py::array& gain_counts, double rdo, const std::string& quantiser) {
             smic_py::require_array<uint16_t>(atom_class, 1, "atom_class");
             smic_py::require_array<float>(mean, 2, "mean");
             smic_py::require_array<float>(basis, 3, "basis");
             smic_py::require_array<int16_t>(scale, 2, "scale");
             smic_py::require_array<uint64_t>(counts, 2, "counts");
             smic_py::require_array<uint64_t>(gain_counts, 1, "gain_counts");
             const auto c = basis.shape(0), r = basis.shape(1), d = basis.shape(2);
             if (mean.shape(0) != c || mean.shape(1) != d || scale.shape(0) != c || scale.shape(1) != r)
               throw py::value_error("mean must be (n_classes, dim) and scale (n_classes, rank) for basis " +
                                     smic_py::shape_string(basis) + ", got " + smic_py::shape_string(mean) +
                                     " and " + smic_py::shape_string(scale));
             const smic::TransformQuantiser chosen = quantiser_of(quantiser);
             return std::make_shared<TransformModel>(
                 static_cast<std::size_t>(d), static_cast<std::size_t>(r), static_cast<std::size_t>(c),
                 to_vector<uint16_t>(atom_class), static_cast<const float*>(mean.data()),
                 static_cast<const float*>(basis.data()), to_vector<int16_t>(scale), rounding, bias,
                 to_vector<uint64_t>(counts), to_vector<uint64_t>(gain_counts), rdo,
                 chosen);
           }),
           py::arg("atom_class"), py::arg("mean"), py::arg("basis"), py::arg("scale"),
           py::arg("rounding"), py::arg("bias"), py::arg("counts"), py::arg("gain_counts"),
           py::arg("rdo") = 0.0, py::arg("quantiser") = "greedy")
      .def_property_readonly("dim", &TransformModel::dim)
      .def_property_readonly("rank", &TransformModel::rank)
      .def_property_readonly("n_classes", &TransformModel::n_classes)
      .def_property_readonly("n_atoms", &TransformModel::n_atoms)
      .def_property_readonly("rounding", &TransformModel::rounding)
      .def_property_readonly("bias", &TransformModel::bias)
      .def_property_readonly("rdo", &TransformModel::rdo)
      .def_property_readonly("quantiser", [](const TransformModel& t) { return quantiser_name(t.quantiser()); },
                             "How levels are chosen: 'greedy' (level by level), 'trellis' (the whole item, gain "
                             "included) or 'dependent' (dependent quantisation: two interleaved quantisers and a "
                             "Viterbi search; it also changes how levels reconstruct).")
      .def_property_readonly("atom_class", [](const TransformModel& t) { return array_of(t.atom_class(), {static_cast<py::ssize_t>(t.n_atoms())}); })
      .def_property_readonly("mean", [](const TransformModel& t) {
        return array_of(t.mean(), {static_cast<py::ssize_t>(t.n_classes()), static_cast<py::ssize_t>(t.dim())});
      })
      .def_property_readonly("basis", [](const TransformModel& t) {
        return array_of(t.basis(), {static_cast<py::ssize_t>(t.n_classes()), static_cast<py::ssize_t>(t.rank()),
                                    static_cast<py::ssize_t>(t.dim())});
      }, "The stored (float16) axes as float32, (n_classes, rank, dim).")
      .def_property_readonly("scale", [](const TransformModel& t) {
        return array_of(t.scale(), {static_cast<py::ssize_t>(t.n_classes()), static_cast<py::ssize_t>(t.rank())});
      })
      .def_property_readonly("counts", [](const TransformModel& t) {
        return array_of(t.counts(), {static_cast<py::ssize_t>(TransformModel::n_contexts(t.quantiser())),
                                     static_cast<py::ssize_t>(smic::kTransformEscape + 1)});
      })
      .def_property_readonly("gain_counts", [](const TransformModel& t) {
        return array_of(t.gain_counts(), {static_cast<py::ssize_t>(smic::kTransformGains)});
      })
      .def("to_bytes", [](const TransformModel& t) {
        const std::vector<uint8_t> b = t.to_bytes();
        return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
      }, "The XFRM payload.")
      .def_static("from_bytes", [](const py::bytes& data, const std::string& quantiser) {
        const smic::TransformQuantiser chosen = quantiser_of(quantiser);
        const std::string s = data;
        return std::const_pointer_cast<TransformModel>(
            TransformModel::parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "<transform>", chosen));
      }, py::arg("data"), py::arg("quantiser") = "greedy",
      "Parse an XFRM payload of a transform with this quantiser (its XQNT section; FormatError when damaged).")
      .def_static("step_index", &TransformModel::step_index, py::arg("step"),
                  "round(-4 log2 step): where a step places the contexts.")
      .def(
          "levels",
          [](const TransformModel& t, const py::array& unit, const py::array& decoded,
             const py::array& classes, double step) {
            smic_py::require_array<float>(unit, 2, "unit");
            smic_py::require_array<float>(decoded, 2, "decoded");
            smic_py::require_array<uint32_t>(classes, 1, "classes");
            if (static_cast<std::size_t>(unit.shape(1)) != t.dim() || unit.shape(0) != decoded.shape(0) ||
                unit.shape(1) != decoded.shape(1) || unit.shape(0) != classes.shape(0))
              throw py::value_error("unit and decoded must be (n, " + std::to_string(t.dim()) +
                                    ") and classes (n,)");
            if (!(step > 0)) throw py::value_error("step must be positive");
            const auto* c = static_cast<const uint32_t*>(classes.data());
            for (py::ssize_t i = 0; i < classes.shape(0); ++i)
              if (c[i] >= t.n_classes()) throw py::value_error("classes must be < n_classes");
            const auto n = static_cast<std::size_t>(unit.shape(0));
            py::array_t<int32_t> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(t.dim())});
            int32_t* o = out.mutable_data();
            const auto* u = static_cast<const float*>(unit.data());
            const auto* x = static_cast<const float*>(decoded.data());
            {
              py::gil_scoped_release release;  // inputs validated above and held by the caller
              t.levels(u, x, c, n, step, o);
            }
            return out;
          },
          py::arg("unit"), py::arg("decoded"), py::arg("classes"), py::arg("step"),
          "(n, dim) int32 levels of the residuals unit / cos - decoded in each item's class "
          "(smic_fast.coding.transform.aimed_residuals).")
      .def(
          "refine",
          [](const TransformModel& t, const py::array& decoded, const py::array& levels,
             const py::array& classes, double step) {
            const std::size_t n = check_levels(t, levels, classes);
            smic_py::require_array<float>(decoded, 2, "decoded");
            if (decoded.shape(0) != levels.shape(0) || decoded.shape(1) != levels.shape(1))
              throw py::value_error("decoded must have the shape of levels");
            if (!(step > 0)) throw py::value_error("step must be positive");
            py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(t.dim())});
            float* o = out.mutable_data();
            std::copy_n(static_cast<const float*>(decoded.data()), n * t.dim(), o);
            const auto* q = static_cast<const int32_t*>(levels.data());
            const auto* c = static_cast<const uint32_t*>(classes.data());
            {
              py::gil_scoped_release release;
              t.refine(o, q, c, n, step);
            }
            return out;
          },
          py::arg("decoded"), py::arg("levels"), py::arg("classes"), py::arg("step"),
          "decoded plus the levels' reconstruction, rows renormalised (a new array).")
      .def(
          "bits",
          [](const TransformModel& t, const py::array& levels, const py::array& classes, double step) {
            const std::size_t n = check_levels(t, levels, classes);
            py::array_t<double> out(static_cast<py::ssize_t>(n));
            double* o = out.mutable_data();
            const auto* q = static_cast<const int32_t*>(levels.data());
            const auto* c = static_cast<const uint32_t*>(classes.data());
            const int32_t index = TransformModel::step_index(step);
            {
              py::gil_scoped_release release;
              t.bits(q, c, n, index, o);
            }
            return out;
          },
          py::arg("levels"), py::arg("classes"), py::arg("step"),
          "Ideal code length in bits of each item's levels under the model's tables.")
      .def(
          "encode",
          [](const TransformModel& t, const py::array& levels, const py::array& classes, double step) {
            const std::size_t n = check_levels(t, levels, classes);
            const auto* q = static_cast<const int32_t*>(levels.data());
            const auto* c = static_cast<const uint32_t*>(classes.data());
            const int32_t index = TransformModel::step_index(step);
            std::vector<uint8_t> bytes;
            {
              py::gil_scoped_release release;
              smic::RangeEncoder enc;
              t.encode(enc, q, c, n, index);
              bytes = enc.finish();
            }
            return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          },
          py::arg("levels"), py::arg("classes"), py::arg("step"),
          "One range-coded stream of the items' levels (a RESD chunk's bytes).")
      .def(
          "decode",
          [](const TransformModel& t, const py::bytes& data, const py::array& classes, double step) {
            smic_py::require_array<uint32_t>(classes, 1, "classes");
            const auto* c = static_cast<const uint32_t*>(classes.data());
            const auto n = static_cast<std::size_t>(classes.shape(0));
            for (std::size_t i = 0; i < n; ++i)
              if (c[i] >= t.n_classes()) throw py::value_error("classes must be < n_classes");
            const std::string s = data;
            py::array_t<int32_t> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(t.dim())});
            int32_t* o = out.mutable_data();
            const int32_t index = TransformModel::step_index(step);
            {
              py::gil_scoped_release release;  // s is a copy owned by this frame
              smic::RangeDecoder dec(reinterpret_cast<const uint8_t*>(s.data()), s.size());
              t.decode(dec, c, n, index, o);
              dec.finish();
            }
            return out;
          },
          py::arg("data"), py::arg("classes"), py::arg("step"),
          "Levels (n, dim) of a stream made by encode (DecodeError when damaged).")
      .def(
          "count_contexts",
          [](const TransformModel& t, const py::array& levels, const py::array& classes, double step) {
            const std::size_t n = check_levels(t, levels, classes);
            const std::size_t n_tables = TransformModel::n_contexts(t.quantiser());
            std::vector<uint64_t> counts(n_tables * (smic::kTransformEscape + 1), 0);
            std::vector<uint64_t> gains(smic::kTransformGains, 0);
            const auto* q = static_cast<const int32_t*>(levels.data());
            const auto* c = static_cast<const uint32_t*>(classes.data());
            {
              py::gil_scoped_release release;
              t.count_contexts(q, c, n, TransformModel::step_index(step), counts.data(), gains.data());
            }
            return py::make_tuple(array_of(counts, {static_cast<py::ssize_t>(n_tables),
                                                    static_cast<py::ssize_t>(smic::kTransformEscape + 1)}),
                                  array_of(gains, {static_cast<py::ssize_t>(smic::kTransformGains)}));
          },
          py::arg("levels"), py::arg("classes"), py::arg("step"),
          "(context counts, gain counts) of the levels: what a model's tables are fitted to.");
}
