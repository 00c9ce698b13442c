// GPU arrays crossing the Python boundary through DLPack: borrowed views of inputs (torch,
// CuPy, ... tensors on a CUDA device, taken without a copy) and owned outputs that export
// themselves with __dlpack__ so the caller's library can wrap them without a copy either.
#pragma once
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace smic_py {
namespace py = pybind11;

/// A borrowed, validated 2-D float32 C-contiguous matrix in CUDA device memory.
struct DeviceMatrix {
  const float* data = nullptr;
  std::size_t rows = 0, cols = 0;
  int device = 0;
};

/// Read a "dltensor" capsule (from x.__dlpack__()) without consuming it: the capsule and its
/// producer stay responsible for the memory, which outlives the call that uses the view.
/// Raises ValueError naming `name` unless it is a 2-D float32 C-contiguous CUDA tensor.
DeviceMatrix borrow_device_matrix(const py::capsule& capsule, const char* name);

/// An n x cols int32 or float32 matrix allocated on a CUDA device by this module.
/// __dlpack__ hands the memory to the consumer once (a second call raises).
class DeviceArray {
 public:
  enum class Kind { int32, float32 };
  DeviceArray(std::size_t rows, std::size_t cols, Kind kind, int device);
  ~DeviceArray();
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  void* data() const { return data_; }
  py::tuple shape() const;
  std::string dtype() const { return kind_ == Kind::int32 ? "int32" : "float32"; }
  py::tuple dlpack_device() const;
  /// Export as a "dltensor" capsule (the result is already synchronised: stream is unused).
  py::capsule dlpack(py::object stream, py::object max_version, py::object dl_device,
                     py::object copy);

 private:
  void* data_ = nullptr;
  std::size_t rows_, cols_;
  Kind kind_;
  int device_;
};

/// Device, dtype, shape, strides and offset of a capsule, read through our ABI declarations
/// (lets tests compare them with what numpy/torch exported, without a GPU).
py::dict describe_dlpack(const py::capsule& capsule);

void register_dlpack_arrays(py::module_& m);

}  // namespace smic_py
