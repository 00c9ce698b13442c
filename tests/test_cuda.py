"""The optional GPU path (smic_fast._cuda, issue 8): device selection and its errors everywhere;
on a machine with the module and a CUDA device, the GPU codes against the CPU core as oracle.

The GPU tests skip with the reason smic_fast.cuda_status() gives ("no smic_fast._cuda module:
built without SMIC_CUDA ..." or "... no usable CUDA device ..."). They have never run: no GPU
was available when they were written (docs/cuda.md says how to run them).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import smic_fast
from smic_fast import CudaUnavailableError, cuda_status
from smic_fast.learn.device import GPU_MAX_NONZERO

from problems import planted_collection, unit_rows

ROOT = Path(__file__).resolve().parents[1]
GPU_USABLE, GPU_REASON = cuda_status()
needs_gpu = pytest.mark.skipif(not GPU_USABLE, reason=GPU_REASON)
no_gpu = pytest.mark.skipif(GPU_USABLE, reason="a CUDA device is present: 'auto' uses it")


class FakeGpuArray:
    """Looks like a CUDA tensor to DLPack detection (device type 2 = kDLCUDA)."""

    shape = (4, 8)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 0)


def _fake_cuda_module(count: int, why: str) -> types.ModuleType:
    module = types.ModuleType("smic_fast._cuda")
    module.device_status = lambda: (count, why)  # type: ignore[attr-defined]
    return module


# --- everywhere: argument checks, fallbacks, error messages ------------------------------------

@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:0", None, 0])
def test_unknown_device_names_the_valid_ones(rng, device):
    x, d = unit_rows(rng, 5, 8), unit_rows(rng, 6, 8)
    with pytest.raises(ValueError, match=r"device must be one of 'cpu', 'cuda', 'auto'"):
        smic_fast.omp(x, d, 2, device=device)
    with pytest.raises(ValueError, match=r"device must be one of 'cpu', 'cuda', 'auto'"):
        smic_fast.learn_dictionary(x, 3, 2, n_iter=1, device=device)


@no_gpu
def test_auto_without_gpu_gives_the_cpu_result_exactly(rng):
    x, d = unit_rows(rng, 300, 32), unit_rows(rng, 64, 32)
    for tol in (None, 0.3):
        ref = smic_fast.omp(x, d, 5, tol)
        got = smic_fast.omp(x, d, 5, tol, device="auto")
        assert isinstance(got[0], np.ndarray)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    ref_d = smic_fast.learn_dictionary(x, 16, 3, n_iter=2)
    np.testing.assert_array_equal(smic_fast.learn_dictionary(x, 16, 3, n_iter=2, device="auto"), ref_d)


@no_gpu
def test_cuda_without_gpu_raises_the_reason(rng):
    x, d = unit_rows(rng, 10, 16), unit_rows(rng, 20, 16)
    with pytest.raises(CudaUnavailableError) as info:
        smic_fast.omp(x, d, 2, device="cuda")
    assert GPU_REASON in str(info.value)
    with pytest.raises(CudaUnavailableError):
        smic_fast.learn_dictionary(x, 8, 2, n_iter=1, device="cuda")


def test_status_tells_what_is_missing():
    """The real reason on this machine, whichever of the three it is."""
    assert GPU_USABLE or GPU_REASON.startswith((
        "no smic_fast._cuda module: built without SMIC_CUDA",
        "smic_fast._cuda is built but cannot be loaded",
        "smic_fast._cuda is built but there is no usable CUDA device",
    ))
    try:
        import smic_fast._cuda  # noqa: F401
    except ModuleNotFoundError:
        assert GPU_REASON.startswith("no smic_fast._cuda module: built without SMIC_CUDA")


def test_module_not_built_says_how_to_build(rng, monkeypatch):
    monkeypatch.delattr(smic_fast, "_cuda", raising=False)
    monkeypatch.setitem(sys.modules, "smic_fast._cuda", None)  # import raises ModuleNotFoundError
    usable, why = cuda_status()
    assert not usable
    assert why.startswith("no smic_fast._cuda module: built without SMIC_CUDA")
    assert "cmake.define.SMIC_CUDA=ON" in why and "docs/cuda.md" in why
    x, d = unit_rows(rng, 10, 16), unit_rows(rng, 20, 16)
    with pytest.raises(CudaUnavailableError, match="built without SMIC_CUDA"):
        smic_fast.omp(x, d, 2, device="cuda")
    ref = smic_fast.omp(x, d, 2)
    np.testing.assert_array_equal(smic_fast.omp(x, d, 2, device="auto")[0], ref[0])


def test_module_that_cannot_load_says_which_library(monkeypatch):
    from smic_fast.learn import device as device_module

    def fail(name):
        raise ImportError("libcublas.so.13: cannot open shared object file", name=name)

    monkeypatch.setattr(device_module.importlib, "import_module", fail)
    usable, why = cuda_status()
    assert not usable
    assert why.startswith("smic_fast._cuda is built but cannot be loaded") and "libcublas" in why
    assert "nvidia-cublas" in why


def test_module_without_device_says_so(rng, monkeypatch):
    fake = _fake_cuda_module(0, "cudaGetDeviceCount failed: cudaErrorNoDevice")
    monkeypatch.setitem(sys.modules, "smic_fast._cuda", fake)
    monkeypatch.setattr(smic_fast, "_cuda", fake, raising=False)
    usable, why = cuda_status()
    assert not usable
    assert "built but there is no usable CUDA device" in why and "cudaErrorNoDevice" in why
    x, d = unit_rows(rng, 10, 16), unit_rows(rng, 20, 16)
    with pytest.raises(CudaUnavailableError, match="no usable CUDA device.*cudaErrorNoDevice"):
        smic_fast.omp(x, d, 2, device="cuda")
    np.testing.assert_array_equal(smic_fast.omp(x, d, 2, device="auto")[1], smic_fast.omp(x, d, 2)[1])


def test_gpu_arrays_are_not_moved_to_the_cpu_silently(rng, monkeypatch):
    d = unit_rows(rng, 20, 8)
    with pytest.raises(ValueError, match="on a CUDA device; pass device='cuda'"):
        smic_fast.omp(FakeGpuArray(), d, 2)
    # 'auto' with a GPU input and no usable GPU: an error, not a CPU fallback.
    monkeypatch.setitem(sys.modules, "smic_fast._cuda", None)
    monkeypatch.delattr(smic_fast, "_cuda", raising=False)
    with pytest.raises(CudaUnavailableError):
        smic_fast.omp(FakeGpuArray(), d, 2, device="auto")
    with pytest.raises(CudaUnavailableError):
        smic_fast.learn_dictionary(FakeGpuArray(), 3, 2, device="auto")


def test_auto_keeps_large_sparsity_on_the_cpu(rng, monkeypatch):
    """n_nonzero above the GPU kernel's limit runs on the CPU under 'auto' even with a GPU."""
    from smic_fast.learn import device as device_module

    monkeypatch.setattr(device_module, "cuda_status", lambda: (True, "1 CUDA device(s)"))
    x, d = unit_rows(rng, 20, 96), unit_rows(rng, 128, 96)
    k = GPU_MAX_NONZERO + 1
    ref = smic_fast.omp(x, d, k)
    got = smic_fast.omp(x, d, k, device="auto")
    np.testing.assert_array_equal(got[0], ref[0])


def test_import_loads_no_gpu_library():
    code = (
        "import sys, smic_fast\n"
        "bad = [m for m in ('torch', 'cupy', 'smic_fast._cuda') if m in sys.modules]\n"
        "maps = open('/proc/self/maps').read() if sys.platform.startswith('linux') else ''\n"
        "bad += [lib for lib in ('libcudart', 'libcublas', 'libcuda.so') if lib in maps]\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _cmake() -> str:
    local = Path(sys.executable).parent / "cmake"
    found = str(local) if local.exists() else shutil.which("cmake")
    assert found, "cmake is needed (pip install '.[test]' provides it)"
    return found


def _configure(tmp_path: Path, *defines: str) -> tuple[str, str]:
    """CMake cache and output of configuring the project (core only, no Python module)."""
    build = tmp_path / "build"
    # LD_PRELOAD (make sanitize preloads ASan into Python) must not reach cmake: nvcc's probe
    # fails under it and CMake then reports no CUDA compiler.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKBUILD") and k != "LD_PRELOAD"}
    run = subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(build), "-DSMIC_BUILD_PYTHON=OFF",
                          f"-DPython_EXECUTABLE={sys.executable}", *defines], check=True,
                         capture_output=True, text=True, env=env, timeout=300)
    return (build / "CMakeCache.txt").read_text(), run.stdout + run.stderr


def test_cmake_cuda_option_is_off_by_default(tmp_path):
    cache, output = _configure(tmp_path)
    assert "SMIC_CUDA:BOOL=OFF" in cache
    assert "CMAKE_CUDA_COMPILER" not in cache  # CUDA was not even looked for
    assert "smic: CUDA" not in output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on PATH")
def test_cmake_cuda_option_on_finds_nvcc(tmp_path):
    cache, output = _configure(tmp_path, "-DSMIC_CUDA=ON")
    assert "SMIC_CUDA:BOOL=ON" in cache
    assert "CMAKE_CUDA_COMPILER:" in cache
    # Either the GPU library is configured (A100 + H100 code by default) or cuBLAS is missing
    # and the warning says how to provide it; never a failed configure.
    assert "architectures 80;90, cuBLAS" in output or "SMIC_CUBLAS_ROOT" in output


# --- with the module built (no device needed) -------------------------------------------------

def _cuda_module():
    try:
        from smic_fast import _cuda
    except ImportError:
        pytest.skip(GPU_REASON)  # "no smic_fast._cuda module: built without SMIC_CUDA; ..."
    return _cuda


def test_dlpack_abi_reads_what_numpy_and_torch_export():
    """Our DLPack struct declarations read real producers' capsules field by field."""
    _cuda = _cuda_module()
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, 1:4]  # strided view
    info = _cuda.describe_dlpack(a.__dlpack__())
    assert info["device"] == (1, 0) and info["dtype"] == (2, 32, 1)
    assert info["shape"] == (4, 3) and info["strides"] == (6, 1)
    torch = pytest.importorskip("torch")
    t = torch.zeros((5, 7), dtype=torch.int32)
    info = _cuda.describe_dlpack(t.__dlpack__())
    assert info["device"] == (1, 0) and info["dtype"] == (0, 32, 1) and info["shape"] == (5, 7)
    assert info["strides"] in (None, (7, 1))
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
    other = new_capsule(id(a), b"not_a_dltensor", None)
    with pytest.raises(ValueError, match="unused DLPack capsule named 'dltensor'"):
        _cuda.describe_dlpack(other)


@pytest.mark.parametrize("n_nonzero,dim,n_atoms,n,tol", [
    (1, 48, 100, 150, None), (4, 48, 100, 80, None), (8, 64, 300, 40, None),
    (16, 64, 256, 30, 0.2), (40, 64, 128, 6, None), (64, 128, 256, 4, None),
])
def test_kernel_warp_code_emulated_on_the_host_matches_the_cpu(rng, n_nonzero, dim, n_atoms, n, tol):
    """The GPU kernel's per-signal code (pursuit_warp.hpp), run by 32 host fibers per warp,
    gives the CPU core's codes: selection, tie-breaking, Cholesky solves in both lane slots
    (n_nonzero > 32), tol stops, and warp-uniform control flow at every shuffle and sync."""
    _cuda = _cuda_module()
    x, d = unit_rows(rng, n, dim), unit_rows(rng, n_atoms, dim)
    emu = _cuda.emulate_omp(x, d, n_nonzero, -1.0 if tol is None else tol)
    cpu = smic_fast.omp(x, d, n_nonzero, tol)
    assert _agreement(emu, cpu) == 1.0
    if tol is not None:
        used = (emu[0] >= 0).sum(axis=1)
        assert used.min() < used.max() <= n_nonzero


def test_kernel_warp_code_emulated_edge_cases(rng):
    _cuda = _cuda_module()
    small = unit_rows(rng, 5, 8)  # fewer atoms than lanes
    y = unit_rows(rng, 20, 8)
    assert _agreement(_cuda.emulate_omp(y, small, 5), smic_fast.omp(y, small, 5)) == 1.0
    dup = np.vstack([small, small[:1]])  # a repeated atom: stop at linear dependence
    emu = _cuda.emulate_omp(y, dup, 6)
    assert _agreement(emu, smic_fast.omp(y, dup, 6)) == 1.0
    assert (emu[0] == -1).any()
    zeros = np.zeros((3, 8), np.float32)  # nothing to explain
    idx, coef = _cuda.emulate_omp(zeros, small, 3)
    assert (idx == -1).all() and (coef == 0).all()
    x, dd = planted_collection(rng, 30, 64, 32, 4, noise=0.0)
    assert _agreement(_cuda.emulate_omp(x, dd, 4), smic_fast.omp(x, dd, 4)) == 1.0


def test_ksvd_with_the_emulated_kernel_equals_the_cpu_ksvd(rng):
    """The K-SVD path of the module (core K-SVD, coding through KsvdOptions::sparse_coder)
    with the warp code emulated on the host gives the CPU's dictionary bit for bit."""
    _cuda = _cuda_module()
    from smic_fast import _core

    x, _ = planted_collection(rng, 300, 40, 24, 3, noise=0.05)
    emulated = _cuda.learn_dictionary(x, 40, 3, 3, 7, 1, 0.99, None, 0.25, None)
    cpu = _core.learn_dictionary(x, 40, 3, 3, 7, 1, 0.99, None, 1, 0.25)
    np.testing.assert_array_equal(emulated[0], cpu[0])
    assert list(emulated[1]) == list(cpu[1]) and emulated[2] == cpu[2]


# --- on a GPU: the CPU core is the oracle -------------------------------------------------------

def _agreement(gpu: tuple, cpu: tuple, atol: float = 1e-4) -> float:
    """Fraction of rows with the same atoms in the same order and coefficients within atol."""
    gi, gc = (np.asarray(a) for a in gpu)
    ci, cc = cpu
    same = (gi == ci).all(axis=1) & (np.abs(gc - cc).max(axis=1) <= atol)
    return float(np.mean(same))


@needs_gpu
def test_module_limit_matches_python_constant():
    from smic_fast import _cuda

    assert _cuda.MAX_NONZERO == GPU_MAX_NONZERO


@needs_gpu
@pytest.mark.parametrize("n_nonzero,dim,n_atoms", [(1, 96, 300), (4, 96, 300), (8, 128, 1024),
                                                   (32, 128, 512), (64, 128, 512)])
def test_gpu_matches_cpu_on_random_problems(rng, n_nonzero, dim, n_atoms):
    x, d = unit_rows(rng, 3000, dim), unit_rows(rng, n_atoms, dim)
    gpu = smic_fast.omp(x, d, n_nonzero, device="cuda")
    assert gpu[0].dtype == np.int32 and gpu[1].dtype == np.float32
    assert gpu[0].shape == gpu[1].shape == (3000, n_nonzero)
    assert _agreement(gpu, smic_fast.omp(x, d, n_nonzero)) >= 0.999


@needs_gpu
def test_gpu_tol_stops_like_the_cpu(rng):
    x, d = unit_rows(rng, 2000, 64), unit_rows(rng, 256, 64)
    gpu = smic_fast.omp(x, d, 32, tol=0.2, device="cuda")
    cpu = smic_fast.omp(x, d, 32, tol=0.2)
    assert _agreement(gpu, cpu) >= 0.999
    used = (gpu[0] >= 0).sum(axis=1)
    assert used.min() < used.max()
    for row_idx, row_coef, k in zip(gpu[0], gpu[1], used):
        assert (row_idx[k:] == -1).all() and (row_coef[k:] == 0).all()


@needs_gpu
def test_gpu_planted_supports_and_edge_cases(rng):
    x, d = planted_collection(rng, 500, 200, 64, 5, noise=0.0)
    gpu, cpu = smic_fast.omp(x, d, 5, device="cuda"), smic_fast.omp(x, d, 5)
    assert _agreement(gpu, cpu) >= 0.999
    # Zero signals: nothing selected. Fewer atoms than lanes (K = 5 < 32).
    zeros = np.zeros((3, 8), np.float32)
    small = unit_rows(rng, 5, 8)
    idx, coef = smic_fast.omp(zeros, small, 3, device="cuda")
    assert (idx == -1).all() and (coef == 0).all()
    y = unit_rows(rng, 50, 8)
    assert _agreement(smic_fast.omp(y, small, 5, device="cuda"), smic_fast.omp(y, small, 5)) == 1.0
    # A repeated atom: the pursuit stops at linear dependence, as on the CPU.
    dup = np.vstack([small, small[:1]])
    assert _agreement(smic_fast.omp(y, dup, 6, device="cuda"), smic_fast.omp(y, dup, 6)) == 1.0
    # An empty batch.
    idx, coef = smic_fast.omp(np.zeros((0, 8), np.float32), small, 2, device="cuda")
    assert idx.shape == coef.shape == (0, 2)


@needs_gpu
def test_gpu_bad_inputs_raise_value_errors(rng):
    x, d = unit_rows(rng, 10, 16), unit_rows(rng, 70, 16)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        smic_fast.omp(bad, d, 2, device="cuda")
    with pytest.raises(ValueError, match="unit norm"):
        smic_fast.omp(x, d * 2, 2, device="cuda")
    with pytest.raises(ValueError, match=r"n_nonzero \(17\) must be <= min\(K, d\)"):
        smic_fast.omp(x, d, 17, device="cuda")
    with pytest.raises(ValueError, match="columns"):
        smic_fast.omp(x[:, :8], d, 2, device="cuda")


@needs_gpu
def test_gpu_chunking_under_a_small_memory_cap(rng):
    from smic_fast.learn.gpu import omp_cuda

    x, d = unit_rows(rng, 1000, 64), unit_rows(rng, 256, 64)
    per_row = 256 * 4 + 64 * 4 + 8 * 8  # correlations + X staging + output staging
    idx, coef, stats = omp_cuda(x, d, 8, -1.0, memory_limit=37 * per_row, return_stats=True)
    assert stats["chunk_rows"] == 37 and stats["chunks"] == -(-1000 // 37)
    assert _agreement((idx, coef), smic_fast.omp(x, d, 8)) >= 0.999
    with pytest.raises(MemoryError, match="one signal needs"):
        omp_cuda(x, d, 8, -1.0, memory_limit=per_row - 1)


@needs_gpu
def test_torch_cuda_tensors_round_trip_without_leaving_the_device(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    x, d = unit_rows(rng, 2000, 64), unit_rows(rng, 256, 64)
    tx, td = torch.from_numpy(x).cuda(), torch.from_numpy(d).cuda()
    idx, coef = smic_fast.omp(tx, td, 8, device="cuda")
    assert isinstance(idx, torch.Tensor) and isinstance(coef, torch.Tensor)
    assert idx.is_cuda and coef.is_cuda and idx.device == tx.device
    assert idx.dtype == torch.int32 and coef.dtype == torch.float32
    assert tuple(idx.shape) == (2000, 8)
    host = (idx.cpu().numpy(), coef.cpu().numpy())
    assert _agreement(host, smic_fast.omp(x, d, 8)) >= 0.999
    # 'auto' with GPU tensors stays on the GPU; numpy D with a GPU X works too.
    idx2, _ = smic_fast.omp(tx, d, 8, device="auto")
    assert isinstance(idx2, torch.Tensor) and idx2.is_cuda
    with pytest.raises(ValueError, match="C-contiguous"):
        smic_fast.omp(tx.t().contiguous().t(), td, 8, device="cuda")
    with pytest.raises(ValueError, match="float32"):
        smic_fast.omp(tx.double(), td, 8, device="cuda")
    # A dictionary learned from a GPU tensor comes back as one.
    D = smic_fast.learn_dictionary(tx, 32, 4, n_iter=2, device="cuda")
    assert isinstance(D, torch.Tensor) and D.is_cuda and tuple(D.shape) == (32, 64)


@needs_gpu
def test_gpu_learn_dictionary_reaches_the_cpu_error(rng):
    x, _ = planted_collection(rng, 4000, 96, 48, 4, noise=0.05)
    _, cpu_errors = smic_fast.learn_dictionary(x, 96, 4, n_iter=10, return_errors=True)
    D, gpu_errors = smic_fast.learn_dictionary(x, 96, 4, n_iter=10, return_errors=True,
                                               device="cuda")
    assert D.shape == (96, 48) and np.allclose(np.linalg.norm(D, axis=1), 1, atol=1e-4)
    assert gpu_errors[-1] <= cpu_errors[-1] * 1.05
