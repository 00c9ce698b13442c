// Binding of the rate-distortion choice of item symbols (smic layout), the whole per-item path
// from an embedding to its symbols in one call: OMP, quantized candidates, their bits and cost.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "smic/item_choice.hpp"
#include "smic/item_codec.hpp"
#include "smic/omp.hpp"
#include "validate.hpp"

namespace py = pybind11;

namespace {

py::tuple choose(const smic::OmpCoder& coder, const py::array& x, long long s_max, double step,
                 double rounding, double rd_lambda, const smic::ItemModels* models,
                 int n_threads) {
  smic_py::require_array<float>(x, 2, "X");
  if (static_cast<std::size_t>(x.shape(1)) != coder.dim())
    throw py::value_error("X has " + std::to_string(x.shape(1)) + " columns but the coder has d = " +
                          std::to_string(coder.dim()));
  if (s_max < 1) throw py::value_error("s_max must be >= 1, got " + std::to_string(s_max));
  smic::ItemChoiceParams params;
  params.s_max = static_cast<std::size_t>(s_max);
  params.step = step;
  params.rounding = rounding;
  params.rd_lambda = rd_lambda;
  smic::validate_item_choice(coder, params, models);  // InvalidArgument -> ValueError
  const auto n = static_cast<py::ssize_t>(x.shape(0));
  const auto width = static_cast<py::ssize_t>(s_max - 1);
  py::array_t<std::int32_t> counts(n), first(n), rest_index({n, width}), rest_level({n, width});
  py::array_t<double> cosine(n);
  const smic::ItemChoiceOutput out{counts.mutable_data(), first.mutable_data(),
                                   rest_index.mutable_data(), rest_level.mutable_data(),
                                   cosine.mutable_data()};
  const float* xp = static_cast<const float*>(x.data());
  {
    // Safe without the GIL: the work reads X, the coder and the models, kept alive by the
    // caller's references, and writes only the arrays created above.
    py::gil_scoped_release release;
    smic::choose_items(coder, xp, static_cast<std::size_t>(n), params, models, out, n_threads);
  }
  return py::make_tuple(std::move(counts), std::move(first), std::move(rest_index),
                        std::move(rest_level), std::move(cosine));
}

}  // namespace

void register_item_choice(py::module_& m) {
  m.def("choose_items", &choose, py::arg("coder"), py::arg("X"), py::arg("s_max"),
        py::arg("step"), py::arg("rounding"), py::arg("rd_lambda"), py::arg("models").none(true),
        py::arg("n_threads") = 0,
        R"doc(Rate-distortion choice of the item symbols of unit-norm embeddings (smic layout).

choose_items(coder: OmpCoder, X, s_max, step, rounding, rd_lambda, models: ItemModels | None,
             n_threads=0) -> (counts, first, rest_index, rest_level, cosine)

X: (n, d) float32, C-contiguous, finite, rows of unit norm (zero rows allowed), d = coder.dim.
Each item is OMP-coded with up to s_max atoms (1 <= s_max <= min(K, d)); each prefix of k atoms
is quantized (ratio quantizer with step in (0, 1] and rounding in [0, 1)) and priced as
(1 - cosine) + rd_lambda * bits, with bits from `models` (sorted layout, K atoms, this s_max,
2 * floor(1 / step + rounding) + 1 level symbols) or flat models if None; the cheapest prefix
wins, ties to the fewest atoms. Same result as smic_fast.coding.codec.choose_items up to float
rounding at decision boundaries.

Returns counts (n,) int32, first (n,) int32, rest_index and rest_level (n, s_max - 1) int32
(unused slots -1) and the cosine of each reconstruction (n,) float64. An all-zero row gets
count 1, first 0 and cosine 0. The result of a row does not depend on the other rows or on
n_threads (0 = all cores; a call of at most 72 rows runs on the calling thread).
Raises ValueError naming the bad argument.
)doc");
}
