// The DLPack ABI, legacy "dltensor" capsule (DLPack v0.8, https://github.com/dmlc/dlpack,
// include/dlpack/dlpack.h, Apache-2.0): only the structs this module reads and writes. The
// layout is frozen by the standard (every producer and consumer relies on it), so these few
// declarations are spelled out rather than vendoring the whole header; the static_asserts pin
// the sizes of the x86-64/aarch64 ABI.
#pragma once
#include <cstdint>

namespace smic_py::dlpack {

enum DeviceType : std::int32_t { kCPU = 1, kCUDA = 2, kCUDAHost = 3, kCUDAManaged = 13 };
enum DataTypeCode : std::uint8_t { kInt = 0, kUInt = 1, kFloat = 2 };

struct Device {
  std::int32_t device_type;
  std::int32_t device_id;
};

struct DataType {
  std::uint8_t code;
  std::uint8_t bits;
  std::uint16_t lanes;
};

struct Tensor {
  void* data;
  Device device;
  std::int32_t ndim;
  DataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements; nullptr means C-contiguous
  std::uint64_t byte_offset;
};

struct ManagedTensor {
  Tensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(ManagedTensor* self);
};

static_assert(sizeof(Device) == 8 && sizeof(DataType) == 4, "DLPack ABI");
static_assert(sizeof(Tensor) == 48 && sizeof(ManagedTensor) == 64, "DLPack ABI (64-bit)");

}  // namespace smic_py::dlpack
