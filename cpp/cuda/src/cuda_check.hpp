// Internal: turn CUDA runtime and cuBLAS status codes into smic::cuda exceptions that name the
// failed call, so a failure reaches Python as a message rather than a crash.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "smic/cuda/omp_cuda.hpp"

namespace smic::cuda::detail {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* call) {
  cudaGetLastError();  // clear the sticky-free error so later calls can proceed
  const std::string what = std::string(call) + " failed: " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")";
  if (err == cudaErrorMemoryAllocation) throw OutOfMemory(what);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
      err == cudaErrorInitializationError || err == cudaErrorStubLibrary ||
      err == cudaErrorCompatNotSupportedOnDevice)
    throw Unavailable(what);
  throw Error(what);
}

inline void check(cudaError_t err, const char* call) {
  if (err != cudaSuccess) throw_cuda(err, call);
}

inline void check(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const std::string what = std::string(call) + " failed: cuBLAS status " +
                           cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")";
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfMemory(what);
  if (status == CUBLAS_STATUS_NOT_INITIALIZED) throw Unavailable(what);
  throw Error(what);
}

}  // namespace smic::cuda::detail

#define SMIC_CUDA_CHECK(call) ::smic::cuda::detail::check((call), #call)

namespace smic::cuda::detail {

/// Device memory owned by one object (cudaMalloc / cudaFree), move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) {
    if (bytes > 0) SMIC_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_) { other.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      if (ptr_ != nullptr) cudaFree(ptr_);
      ptr_ = other.ptr_;
      other.ptr_ = nullptr;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  /// Give up ownership: the caller frees the returned pointer with cudaFree.
  void* release() {
    void* p = ptr_;
    ptr_ = nullptr;
    return p;
  }

  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

}  // namespace smic::cuda::detail
