// Binding of the dead-zone scalar quantizer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "smic/quantizer.hpp"
#include "validate.hpp"

namespace py = pybind11;

void register_quantizer(py::module_& m) {
  m.def(
      "quantize",
      [](const py::array& values, double step, double rounding) {
        smic_py::require_array<float>(values, values.ndim(), "values");
        const smic::ScalarQuantizer quantizer{step, rounding, 0.0};
        quantizer.validate();
        py::array_t<std::int32_t> out(std::vector<py::ssize_t>(values.shape(), values.shape() + values.ndim()));
        const float* in = static_cast<const float*>(values.data());
        std::int32_t* q = out.mutable_data();
        const auto n = static_cast<std::size_t>(values.size());
        {
          py::gil_scoped_release release;
          quantizer.quantize(in, n, q);
        }
        return out;
      },
      py::arg("values"), py::arg("step"), py::arg("rounding") = 0.5,
      "q = sign(x) * floor(|x| / step + rounding) (float32 in, int32 out).");
  m.def(
      "dequantize",
      [](const py::array& q, double step, double bias) {
        smic_py::require_array<std::int32_t>(q, q.ndim(), "q");
        const smic::ScalarQuantizer quantizer{step, 0.5, bias};
        quantizer.validate();
        py::array_t<float> out(std::vector<py::ssize_t>(q.shape(), q.shape() + q.ndim()));
        const std::int32_t* in = static_cast<const std::int32_t*>(q.data());
        float* x = out.mutable_data();
        const auto n = static_cast<std::size_t>(q.size());
        {
          py::gil_scoped_release release;
          quantizer.dequantize(in, n, x);
        }
        return out;
      },
      py::arg("q"), py::arg("step"), py::arg("bias") = 0.0,
      "x = sign(q) * (|q| - bias) * step (int32 in, float32 out).");
}
