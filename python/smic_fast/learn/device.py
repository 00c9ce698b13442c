"""Where sparse coding runs: ``device="cpu"|"cuda"|"auto"`` for :func:`smic_fast.omp` and
:func:`smic_fast.learn_dictionary`.

The GPU path lives in the optional extension ``smic_fast._cuda`` (built only with
``-DSMIC_CUDA=ON``, see docs/cuda.md). This module imports it lazily, on the first call that
asks for a GPU, so ``import smic_fast`` never loads CUDA libraries, torch or CuPy.

GPU arrays (torch tensors, CuPy arrays, anything with ``__dlpack__`` on a CUDA device) are
used in place, without a copy, and results come back as the same kind of array on the same
device; numpy arrays are copied to the device and results come back as numpy arrays.

Status: the GPU path is compiled but has never run on a GPU (experimental, off by default).
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

__all__ = ["DEVICES", "GPU_MAX_NONZERO", "CudaUnavailableError", "cuda_status", "is_gpu_array", "resolve_device"]

DEVICES = ("cpu", "cuda", "auto")

# The extension sits at the package's root (smic_fast._cuda), beside _core.
CUDA_MODULE = __package__.split(".")[0] + "._cuda"
# Most atoms per signal of the GPU kernel (smic_fast._cuda.MAX_NONZERO; a test keeps them equal).
GPU_MAX_NONZERO = 64

BUILD_HINT = (
    "rebuild with `pip install --no-build-isolation "
    "--config-settings=cmake.define.SMIC_CUDA=ON .` on a machine with nvcc and cuBLAS "
    "(see docs/cuda.md)"
)

# DLPack device types that CUDA kernels can read: kDLCUDA and kDLCUDAManaged.
_CUDA_DLPACK_DEVICES = (2, 13)


class CudaUnavailableError(RuntimeError):
    """``device="cuda"`` was asked for but cannot be used; the message says why and what to do."""


def cuda_status() -> tuple[bool, str]:
    """``(usable, reason)``: whether batch OMP can run on a GPU here, and if not, why.

    Never raises. The reason distinguishes a build without the CUDA module, a module that
    cannot load (missing cuBLAS/CUDA runtime libraries) and a machine without device or driver.
    """
    try:
        # import_module, not `from . import _cuda`: a missing module must raise
        # ModuleNotFoundError naming it, to tell "not built" from "built but not loadable".
        _cuda = importlib.import_module(CUDA_MODULE)
    except ModuleNotFoundError as error:
        if error.name != CUDA_MODULE:
            return False, f"smic_fast._cuda cannot be loaded: {error}"
        return False, f"no smic_fast._cuda module: built without SMIC_CUDA; {BUILD_HINT}"
    except ImportError as error:  # the .so exists but a library it needs does not load
        return False, (f"smic_fast._cuda is built but cannot be loaded ({error}); install the "
                       "CUDA runtime and cuBLAS it was built against (e.g. pip install "
                       "nvidia-cublas nvidia-cuda-runtime)")
    count, why = _cuda.device_status()
    if count == 0:
        return False, f"smic_fast._cuda is built but there is no usable CUDA device: {why}"
    return True, f"{count} CUDA device(s)"


def is_gpu_array(value: object) -> bool:
    """True for an array on a CUDA device that exports itself with DLPack (torch, CuPy, ...)."""
    if isinstance(value, np.ndarray) or not hasattr(value, "__dlpack_device__"):
        return False
    try:
        device_type, _ = value.__dlpack_device__()
    except Exception:  # a foreign object whose hook fails is simply not a GPU array
        return False
    return int(device_type) in _CUDA_DLPACK_DEVICES


def check_device(device: object) -> str:
    """Return ``device`` if it is one of :data:`DEVICES`, else raise ValueError listing them."""
    if not isinstance(device, str) or device not in DEVICES:
        valid = ", ".join(repr(d) for d in DEVICES)
        raise ValueError(f"device must be one of {valid}, got {device!r}")
    return device


def resolve_device(device: object, *arrays: object, gpu_capable: bool = True) -> str:
    """The device a call runs on: ``"cpu"`` or ``"cuda"``.

    ``"auto"`` picks the GPU when ``smic_fast._cuda`` loads and reports a device (and the call
    is one the GPU path supports: ``gpu_capable``), else the CPU, silently. ``"cuda"`` raises
    :class:`CudaUnavailableError` saying why when the GPU cannot be used. Inputs already on a
    GPU need a GPU: with ``"cpu"`` they raise ValueError rather than being copied silently.
    """
    device = check_device(device)
    on_gpu = [a for a in arrays if is_gpu_array(a)]
    if device == "cpu":
        if on_gpu:
            raise ValueError(
                "an input is on a CUDA device; pass device='cuda' (or 'auto'), or move it to "
                "the host first (e.g. tensor.cpu().numpy())"
            )
        return "cpu"
    usable, why = cuda_status()
    if device == "auto" and not on_gpu and not (usable and gpu_capable):
        return "cpu"
    if not usable:
        raise CudaUnavailableError(f"device={device!r} cannot use the GPU: {why}")
    return "cuda"


def same_kind(result: Any, like: object) -> Any:
    """Wrap a ``_cuda.DeviceArray`` as the array type of ``like`` (``torch.from_dlpack``,
    ``cupy.from_dlpack``, ...: the ``from_dlpack`` of the library that made ``like``), without
    a copy. Libraries without a top-level ``from_dlpack`` get the DeviceArray itself, which any
    DLPack consumer accepts once."""
    library = sys.modules.get(type(like).__module__.partition(".")[0])
    from_dlpack = getattr(library, "from_dlpack", None)
    return from_dlpack(result) if callable(from_dlpack) else result


def gpu_device_index(*arrays: object) -> int:
    """CUDA device of the first GPU array among ``arrays`` (0 when all are host arrays)."""
    for array in arrays:
        if is_gpu_array(array):
            return int(array.__dlpack_device__()[1])  # type: ignore[attr-defined]
    return 0
