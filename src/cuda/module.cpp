// smic_fast._cuda: batch OMP on a CUDA GPU (optional module, built with -DSMIC_CUDA=ON).
// Inputs are numpy arrays (copied to the device chunk by chunk, results copied back) or DLPack
// capsules of CUDA tensors (used in place; results are DeviceArray objects that export
// themselves with __dlpack__). Arguments are validated with the GIL held; the GIL is released
// for the GPU work, which only touches buffers kept alive by the caller's references.
//
// STATUS: compiled, never run on a GPU (see docs/cuda.md).
#include <cuda_runtime_api.h>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <vector>
#include <optional>
#include <string>

#include "../ksvd_binding.hpp"
#include "../validate.hpp"
#include "dlpack_arrays.hpp"
#include "smic/cuda/omp_cuda.hpp"
#include "smic/ksvd.hpp"
#include "kernels/gemm.hpp"
#include "../../cpp/cuda/src/pursuit_emulation.hpp"

namespace py = pybind11;
using smic_py::DeviceArray;
using smic_py::DeviceMatrix;

namespace {

/// A CUDA stream owned by Python: the wrapper passes `handle` to x.__dlpack__(stream=...)
/// so the producer orders its pending work before ours.
class Stream {
 public:
  explicit Stream(int device) : device_(device) {
    check_device(device);
    set_device(device_);
    const cudaError_t err = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw smic::cuda::Error(std::string("cudaStreamCreate failed: ") + cudaGetErrorString(err));
    }
  }
  ~Stream() {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }
  std::uintptr_t handle() const { return reinterpret_cast<std::uintptr_t>(stream_); }

  static void check_device(int device) {
    std::string why;
    const int count = smic::cuda::device_count(&why);
    if (count == 0) throw smic::cuda::Unavailable("no CUDA device: " + why);
    if (device < 0 || device >= count)
      throw py::value_error("CUDA device " + std::to_string(device) + " does not exist (" +
                            std::to_string(count) + " device(s))");
  }
  static void set_device(int device) {
    const cudaError_t err = cudaSetDevice(device);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw smic::cuda::Unavailable(std::string("cudaSetDevice failed: ") +
                                    cudaGetErrorString(err));
    }
  }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
};

// One argument: a host numpy matrix or a borrowed device matrix.
struct Operand {
  bool on_device = false;
  py::array host;
  DeviceMatrix device;
  const float* data() const {
    return on_device ? device.data : static_cast<const float*>(host.data());
  }
  std::size_t rows() const { return on_device ? device.rows : host.shape(0); }
  std::size_t cols() const { return on_device ? device.cols : host.shape(1); }
};

Operand operand(const py::object& value, const char* name, int stream_device) {
  Operand op;
  if (py::isinstance<py::capsule>(value)) {
    op.on_device = true;
    op.device = smic_py::borrow_device_matrix(value.cast<py::capsule>(), name);
    if (op.device.device != stream_device)
      throw py::value_error(std::string(name) + " is on cuda:" +
                            std::to_string(op.device.device) + " but the work runs on cuda:" +
                            std::to_string(stream_device));
  } else {
    op.host = value.cast<py::array>();
    smic_py::require_array<float>(op.host, 2, name);
  }
  return op;
}

py::tuple omp(const py::object& x_value, const py::object& d_value, long long n_nonzero,
              double tol, const Stream& stream, std::size_t memory_limit,
              std::size_t max_chunk_rows) {
  Stream::set_device(stream.device());
  const Operand x = operand(x_value, "X", stream.device());
  const Operand d = operand(d_value, "D", stream.device());
  if (d.rows() == 0) throw py::value_error("D must have at least one atom (K = 0)");
  if (d.cols() == 0) throw py::value_error("D must have at least one column (d = 0)");
  if (x.cols() != d.cols())
    throw py::value_error("X has " + std::to_string(x.cols()) + " columns but D has d = " +
                          std::to_string(d.cols()));
  if (n_nonzero < 1) throw py::value_error("n_nonzero must be >= 1, got " + std::to_string(n_nonzero));
  const std::size_t n = x.rows(), s = static_cast<std::size_t>(n_nonzero);
  smic::cuda::EncodeOptions options;
  options.memory_limit = memory_limit;
  options.max_chunk_rows = max_chunk_rows;

  const auto d_where = d.on_device ? smic::cuda::Memory::device : smic::cuda::Memory::host;
  const auto x_where = x.on_device ? smic::cuda::Memory::device : smic::cuda::Memory::host;
  py::object indices, coefs;
  std::int32_t* ip = nullptr;
  float* cp = nullptr;
  if (x.on_device) {
    auto i_arr = std::make_unique<DeviceArray>(n, s, DeviceArray::Kind::int32, stream.device());
    auto c_arr = std::make_unique<DeviceArray>(n, s, DeviceArray::Kind::float32, stream.device());
    ip = static_cast<std::int32_t*>(i_arr->data());
    cp = static_cast<float*>(c_arr->data());
    indices = py::cast(std::move(i_arr));
    coefs = py::cast(std::move(c_arr));
  } else {
    py::array_t<std::int32_t> i_arr({n, s});
    py::array_t<float> c_arr({n, s});
    ip = i_arr.mutable_data();
    cp = c_arr.mutable_data();
    indices = i_arr;
    coefs = c_arr;
  }
  smic::cuda::EncodeStats stats;
  {
    py::gil_scoped_release release;
    const smic::cuda::OmpCudaCoder coder(d.data(), d_where, d.rows(), d.cols(), stream.get());
    stats = coder.encode(x.data(), x_where, n, s, tol, ip, cp, x_where, options);
  }
  return py::make_tuple(indices, coefs, stats.chunk_rows, stats.chunks);
}

// The GPU kernel's warp code run on the host (32 fibers per warp), with the correlations and
// Gram matrix from the core's float32 product: lets tests check the kernel logic without a GPU.
void emulate_codes(const float* xp, std::size_t n, const float* dp, std::size_t k,
                   std::size_t dim, std::size_t s, double tol, std::int32_t* ip, float* cp) {
  std::vector<float> corr(n * k), gram(k * k);
  smic::gemm_nt(dp, k, dim, dp, k, dim, dim, gram.data(), k, 1);
  if (n > 0) smic::gemm_nt(xp, n, dim, dp, k, dim, dim, corr.data(), k, 1);
  smic::cuda::detail::emulate_pursuit(xp, corr.data(), gram.data(), n, k, dim, s, tol, ip, cp);
}

py::tuple emulate_omp(const py::array& x, const py::array& d, long long n_nonzero, double tol) {
  smic_py::require_array<float>(x, 2, "X");
  smic_py::require_array<float>(d, 2, "D");
  const auto n = static_cast<std::size_t>(x.shape(0)), dim = static_cast<std::size_t>(x.shape(1));
  const auto k = static_cast<std::size_t>(d.shape(0));
  if (static_cast<std::size_t>(d.shape(1)) != dim) throw py::value_error("X and D differ in d");
  if (k == 0 || dim == 0) throw py::value_error("empty D");
  if (n_nonzero < 1 || static_cast<std::size_t>(n_nonzero) > std::min({k, dim, smic::cuda::kMaxNonzero}))
    throw py::value_error("n_nonzero out of range");
  const auto s = static_cast<std::size_t>(n_nonzero);
  py::array_t<std::int32_t> indices({n, s});
  py::array_t<float> coefs({n, s});
  const float* xp = static_cast<const float*>(x.data());
  const float* dp = static_cast<const float*>(d.data());
  std::int32_t* ip = indices.mutable_data();
  float* cp = coefs.mutable_data();
  {
    py::gil_scoped_release release;
    emulate_codes(xp, n, dp, k, dim, s, tol, ip, cp);
  }
  return py::make_tuple(indices, coefs);
}

// K-SVD with the sparse coding of each iteration on the GPU and the atom updates on the CPU
// (smic::learn_dictionary with KsvdOptions::sparse_coder). X stays on the host: the refits
// read it there; each iteration uploads it chunk by chunk.
py::tuple learn_dictionary(const py::array& x, long long n_atoms, long long n_nonzero,
                           long long n_iter, unsigned long long seed, int n_threads,
                           double max_coherence, py::object progress, double min_usage_fraction,
                           const Stream* stream, std::size_t memory_limit) {
  smic::KsvdOptions opt = smic_py::ksvd_options(x, n_atoms, n_nonzero, n_iter, seed, n_threads,
                                                max_coherence, min_usage_fraction);
  if (opt.n_nonzero > smic::cuda::kMaxNonzero)
    throw py::value_error("n_nonzero must be in [1, " + std::to_string(smic::cuda::kMaxNonzero) +
                          "] on the GPU, got " + std::to_string(n_nonzero));
  if (stream != nullptr) Stream::set_device(stream->device());
  const float* xp = static_cast<const float*>(x.data());
  const auto n = static_cast<std::size_t>(x.shape(0));
  const auto dim = static_cast<std::size_t>(x.shape(1));
  smic::cuda::EncodeOptions encode_options;
  encode_options.memory_limit = memory_limit;
  if (stream != nullptr) {
    opt.sparse_coder = [&](const float* atoms, std::int32_t* indices, float* coefs) {
      const smic::cuda::OmpCudaCoder coder(atoms, smic::cuda::Memory::host, opt.n_atoms, dim,
                                           stream->get());
      coder.encode(xp, smic::cuda::Memory::host, n, opt.n_nonzero, -1.0, indices, coefs,
                   smic::cuda::Memory::host, encode_options);
    };
  } else {
    // No stream: the warp code emulated on the host (tests of this path without a GPU).
    opt.sparse_coder = [&](const float* atoms, std::int32_t* indices, float* coefs) {
      emulate_codes(xp, n, atoms, opt.n_atoms, dim, opt.n_nonzero, -1.0, indices, coefs);
    };
  }
  return smic_py::run_ksvd(xp, n, dim, opt, progress);  // as in the CPU binding
}

// Copies between a DLPack CUDA matrix and numpy, for the K-SVD path (its CPU half needs X).
py::array_t<float> to_host(const py::capsule& capsule, const Stream& stream) {
  const DeviceMatrix m = smic_py::borrow_device_matrix(capsule, "X");
  Stream::set_device(m.device);
  py::array_t<float> out({m.rows, m.cols});
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    const cudaError_t err = cudaMemcpyAsync(dst, m.data, m.rows * m.cols * sizeof(float),
                                            cudaMemcpyDeviceToHost, stream.get());
    const cudaError_t sync = err == cudaSuccess ? cudaStreamSynchronize(stream.get()) : err;
    if (sync != cudaSuccess) {
      cudaGetLastError();
      throw smic::cuda::Error(std::string("copy to host failed: ") + cudaGetErrorString(sync));
    }
  }
  return out;
}

std::unique_ptr<DeviceArray> to_device(const py::array& host, const Stream& stream) {
  smic_py::require_array<float>(host, 2, "array");
  Stream::set_device(stream.device());
  const auto rows = static_cast<std::size_t>(host.shape(0));
  const auto cols = static_cast<std::size_t>(host.shape(1));
  auto out = std::make_unique<DeviceArray>(rows, cols, DeviceArray::Kind::float32, stream.device());
  const void* src = host.data();
  void* dst = out->data();
  {
    py::gil_scoped_release release;
    const cudaError_t err = cudaMemcpyAsync(dst, src, rows * cols * sizeof(float),
                                            cudaMemcpyHostToDevice, stream.get());
    const cudaError_t sync = err == cudaSuccess ? cudaStreamSynchronize(stream.get()) : err;
    if (sync != cudaSuccess) {
      cudaGetLastError();
      throw smic::cuda::Error(std::string("copy to device failed: ") + cudaGetErrorString(sync));
    }
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "smic_fast CUDA batch OMP (experimental, untested on hardware; docs/cuda.md)";
  // Derived classes after their base: pybind11 tries the most recently registered first.
  auto error = py::register_exception<smic::cuda::Error>(m, "CudaError", PyExc_RuntimeError);
  py::register_exception<smic::cuda::Unavailable>(m, "DeviceUnavailable", error.ptr());
  py::register_exception<smic::cuda::OutOfMemory>(m, "OutOfDeviceMemory", PyExc_MemoryError);
  m.attr("MAX_NONZERO") = smic::cuda::kMaxNonzero;

  m.def(
      "device_status",
      []() {
        std::string why;
        const int count = smic::cuda::device_count(&why);
        return py::make_tuple(count, why);
      },
      "(number of CUDA devices, reason when 0). Never raises.");

  py::class_<Stream>(m, "Stream", "A CUDA stream on one device, for DLPack hand-offs.")
      .def(py::init<int>(), py::arg("device") = 0)
      .def_property_readonly("handle", &Stream::handle)
      .def_property_readonly("device", &Stream::device);

  smic_py::register_dlpack_arrays(m);

  m.def("omp", &omp, py::arg("X"), py::arg("D"), py::arg("n_nonzero"), py::arg("tol"),
        py::arg("stream"), py::arg("memory_limit") = 0, py::arg("max_chunk_rows") = 0,
        "Batch OMP on the GPU. X, D: float32 C-contiguous numpy arrays or DLPack capsules of "
        "CUDA tensors. Returns (indices, coefs, chunk_rows, chunks); indices/coefs are numpy "
        "arrays when X is one, DeviceArray objects otherwise.");
  m.def("learn_dictionary", &learn_dictionary, py::arg("X"), py::arg("n_atoms"),
        py::arg("n_nonzero"), py::arg("n_iter"), py::arg("seed"), py::arg("n_threads"),
        py::arg("max_coherence"), py::arg("progress"), py::arg("min_usage_fraction"),
        py::arg("stream"), py::arg("memory_limit") = 0,
        "K-SVD with GPU sparse coding (stream=None: the kernel's warp code emulated on the "
        "host, for tests); returns (D, mean squared error per iteration, replaced).");
  m.def("emulate_omp", &emulate_omp, py::arg("X"), py::arg("D"), py::arg("n_nonzero"),
        py::arg("tol") = -1.0,
        "Batch OMP through the GPU kernel's warp code emulated on the host (for tests).");
  m.def("to_host", &to_host, py::arg("capsule"), py::arg("stream"),
        "Copy a DLPack CUDA float32 matrix to a new numpy array.");
  m.def("to_device", &to_device, py::arg("array"), py::arg("stream"),
        "Copy a float32 numpy matrix to a new DeviceArray on the stream's device.");
}
