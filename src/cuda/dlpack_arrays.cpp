#include "dlpack_arrays.hpp"

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "dlpack.hpp"

namespace smic_py {
namespace {

constexpr const char* kCapsuleName = "dltensor";
constexpr const char* kUsedCapsuleName = "used_dltensor";

// What a capsule we export owns: the managed tensor, its shape and the device memory.
struct Export {
  dlpack::ManagedTensor managed{};
  std::int64_t shape[2] = {0, 0};
};

void delete_export(dlpack::ManagedTensor* self) {
  auto* exported = static_cast<Export*>(self->manager_ctx);
  if (exported->managed.dl_tensor.data != nullptr) cudaFree(exported->managed.dl_tensor.data);
  delete exported;
}

// Destructor of an exported capsule that no consumer took (name still "dltensor").
void capsule_destructor(PyObject* capsule) {
  if (PyCapsule_IsValid(capsule, kUsedCapsuleName)) return;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  auto* managed = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (managed == nullptr) {
    PyErr_WriteUnraisable(capsule);
  } else if (managed->deleter != nullptr) {
    managed->deleter(managed);
  }
  PyErr_Restore(type, value, traceback);
}

std::string device_name(const dlpack::Device& device) {
  switch (device.device_type) {
    case dlpack::kCPU: return "cpu";
    case dlpack::kCUDA: return "cuda:" + std::to_string(device.device_id);
    case dlpack::kCUDAHost: return "cuda_host";
    case dlpack::kCUDAManaged: return "cuda_managed:" + std::to_string(device.device_id);
    default: return "DLPack device type " + std::to_string(device.device_type);
  }
}

}  // namespace

DeviceMatrix borrow_device_matrix(const py::capsule& capsule, const char* name) {
  const std::string who(name);
  if (!PyCapsule_IsValid(capsule.ptr(), kCapsuleName))
    throw py::value_error(who + ": expected an unused DLPack capsule named 'dltensor' "
                                "(from x.__dlpack__())");
  const auto* managed =
      static_cast<const dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), kCapsuleName));
  if (managed == nullptr) throw py::error_already_set();
  const dlpack::Tensor& t = managed->dl_tensor;
  if (t.device.device_type != dlpack::kCUDA && t.device.device_type != dlpack::kCUDAManaged)
    throw py::value_error(who + " must be on a CUDA device, got " + device_name(t.device));
  if (t.dtype.code != dlpack::kFloat || t.dtype.bits != 32 || t.dtype.lanes != 1)
    throw py::value_error(who + " must have dtype float32 on the GPU (DLPack code " +
                          std::to_string(t.dtype.code) + ", bits " + std::to_string(t.dtype.bits) +
                          ", lanes " + std::to_string(t.dtype.lanes) + ")");
  if (t.ndim != 2)
    throw py::value_error(who + " must be 2-dimensional (n, d), got " + std::to_string(t.ndim) +
                          " dimensions");
  if (t.shape[0] < 0 || t.shape[1] < 0) throw py::value_error(who + " has a negative dimension");
  const auto rows = static_cast<std::size_t>(t.shape[0]);
  const auto cols = static_cast<std::size_t>(t.shape[1]);
  // C-contiguous: strides (cols, 1); a dimension of extent 1 may carry any stride.
  if (t.strides != nullptr && rows > 0 && cols > 0) {
    const bool col_ok = cols == 1 || t.strides[1] == 1;
    const bool row_ok = rows == 1 || t.strides[0] == static_cast<std::int64_t>(cols);
    if (!col_ok || !row_ok)
      throw py::value_error(who + " must be C-contiguous on the GPU (call .contiguous())");
  }
  if (t.byte_offset % alignof(float) != 0)
    throw py::value_error(who + " is not aligned to 4 bytes");
  DeviceMatrix view;
  view.data = reinterpret_cast<const float*>(static_cast<const char*>(t.data) + t.byte_offset);
  view.rows = rows;
  view.cols = cols;
  view.device = t.device.device_id;
  return view;
}

DeviceArray::DeviceArray(std::size_t rows, std::size_t cols, Kind kind, int device)
    : rows_(rows), cols_(cols), kind_(kind), device_(device) {
  const std::size_t bytes = rows * cols * 4;
  if (bytes > 0) {
    const cudaError_t err = cudaMalloc(&data_, bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      data_ = nullptr;
      if (err == cudaErrorMemoryAllocation)
        throw std::bad_alloc();  // MemoryError in Python
      throw std::runtime_error(std::string("cudaMalloc of the result failed: ") +
                               cudaGetErrorString(err));
    }
  }
}

DeviceArray::~DeviceArray() {
  if (data_ != nullptr) cudaFree(data_);
}

py::tuple DeviceArray::shape() const { return py::make_tuple(rows_, cols_); }

py::tuple DeviceArray::dlpack_device() const {
  return py::make_tuple(static_cast<int>(dlpack::kCUDA), device_);
}

py::capsule DeviceArray::dlpack(py::object /*stream*/, py::object /*max_version*/,
                                py::object dl_device, py::object copy) {
  if (!copy.is_none() && copy.cast<bool>())
    throw py::buffer_error("smic_fast DeviceArray cannot export a copy");
  if (!dl_device.is_none()) {
    const auto wanted = dl_device.cast<py::tuple>();
    if (wanted.size() != 2 || wanted[0].cast<int>() != dlpack::kCUDA ||
        wanted[1].cast<int>() != device_)
      throw py::buffer_error("smic_fast DeviceArray lives on cuda:" + std::to_string(device_));
  }
  if (data_ == nullptr && rows_ * cols_ > 0)
    throw py::buffer_error("this DeviceArray was already exported with __dlpack__");
  auto exported = std::make_unique<Export>();
  exported->shape[0] = static_cast<std::int64_t>(rows_);
  exported->shape[1] = static_cast<std::int64_t>(cols_);
  dlpack::Tensor& t = exported->managed.dl_tensor;
  t.data = data_;
  t.device = {dlpack::kCUDA, device_};
  t.ndim = 2;
  t.dtype = {kind_ == Kind::int32 ? dlpack::kInt : dlpack::kFloat, 32, 1};
  t.shape = exported->shape;
  t.strides = nullptr;
  t.byte_offset = 0;
  exported->managed.manager_ctx = exported.get();
  exported->managed.deleter = &delete_export;
  py::capsule capsule(&exported->managed, kCapsuleName, &capsule_destructor);
  exported.release();  // now owned by the capsule (or by the consumer that renames it)
  data_ = nullptr;
  return capsule;
}

py::dict describe_dlpack(const py::capsule& capsule) {
  if (!PyCapsule_IsValid(capsule.ptr(), kCapsuleName))
    throw py::value_error("expected an unused DLPack capsule named 'dltensor'");
  const auto* managed =
      static_cast<const dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), kCapsuleName));
  if (managed == nullptr) throw py::error_already_set();
  const dlpack::Tensor& t = managed->dl_tensor;
  py::list shape, strides;
  for (std::int32_t i = 0; i < t.ndim; ++i) {
    shape.append(t.shape[i]);
    if (t.strides != nullptr) strides.append(t.strides[i]);
  }
  py::dict out;
  out["device"] = py::make_tuple(t.device.device_type, t.device.device_id);
  out["dtype"] = py::make_tuple(t.dtype.code, t.dtype.bits, t.dtype.lanes);
  out["shape"] = py::tuple(shape);
  out["strides"] = t.strides == nullptr ? py::object(py::none()) : py::object(py::tuple(strides));
  out["byte_offset"] = t.byte_offset;
  return out;
}

void register_dlpack_arrays(py::module_& m) {
  m.def("describe_dlpack", &describe_dlpack, py::arg("capsule"),
        "The fields of a 'dltensor' capsule as this module reads them (for tests of the ABI).");
  py::class_<DeviceArray>(m, "DeviceArray",
                          "A result matrix in GPU memory; hand it to torch.from_dlpack / "
                          "cupy.from_dlpack (once).")
      .def_property_readonly("shape", &DeviceArray::shape)
      .def_property_readonly("dtype", &DeviceArray::dtype)
      .def("__dlpack_device__", &DeviceArray::dlpack_device)
      .def("__dlpack__", &DeviceArray::dlpack, py::kw_only(), py::arg("stream") = py::none(),
           py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
           py::arg("copy") = py::none());
}

}  // namespace smic_py
