"""The GPU paths of :func:`smic_fast.omp` and :func:`smic_fast.learn_dictionary`, through the
optional extension ``smic_fast._cuda`` (imported here only, on first use).

Called with ``device="cuda"`` (or ``"auto"`` on a GPU machine). Batch OMP mirrors the CPU
core's selection and stopping rules, so codes match it up to float rounding; K-SVD codes on
the GPU and refits atoms with the CPU core (docs/cuda.md). Status: compiled, never run on a GPU.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_count, as_float32_matrix
from .device import CudaUnavailableError, gpu_device_index, is_gpu_array, same_kind

__all__ = ["learn_dictionary_cuda", "omp_cuda", "to_host", "to_device_like"]


def _operand(value: Any, name: str, stream: Any) -> Any:
    """A DLPack capsule for a GPU array (ordered after its producer's pending work on our
    stream), or a C-contiguous float32 numpy array for anything else."""
    if is_gpu_array(value):
        return value.__dlpack__(stream=stream.handle)
    return as_float32_matrix(value, name)


def _stream(*arrays: Any) -> Any:
    from .. import _cuda  # type: ignore[attr-defined]

    try:
        return _cuda.Stream(gpu_device_index(*arrays))
    except _cuda.DeviceUnavailable as error:
        raise CudaUnavailableError(f"device='cuda' cannot use the GPU: {error}") from error


def to_host(X: Any) -> np.ndarray:
    """A numpy copy of a float32 C-contiguous CUDA matrix (any DLPack producer)."""
    from .. import _cuda  # type: ignore[attr-defined]

    stream = _stream(X)
    return _cuda.to_host(X.__dlpack__(stream=stream.handle), stream)


def to_device_like(array: np.ndarray, like: Any) -> Any:
    """A copy of a numpy float32 matrix on the GPU of ``like``, as ``like``'s kind of array."""
    from .. import _cuda  # type: ignore[attr-defined]

    stream = _stream(like)
    return same_kind(_cuda.to_device(np.ascontiguousarray(array, dtype=np.float32), stream), like)


def learn_dictionary_cuda(
    X: np.ndarray, n_atoms: int, n_nonzero: int, n_iter: int, seed: int, n_threads: int,
    max_coherence: float, progress: Any, min_usage: float, *, device_index: int = 0,
    memory_limit: int | None = None,
) -> tuple[np.ndarray, list[float], int]:
    """K-SVD of the core with each iteration's sparse coding on the GPU (arguments already
    checked by :func:`smic_fast.learn_dictionary`; X a float32 numpy matrix). Returns the
    core's ``(D, errors, replaced)``."""
    from .. import _cuda  # type: ignore[attr-defined]

    limit = 0 if memory_limit is None else as_count(memory_limit, "memory_limit", minimum=1)
    try:
        stream = _cuda.Stream(device_index)
        return _cuda.learn_dictionary(
            X, n_atoms, n_nonzero, n_iter, seed, n_threads, max_coherence, progress, min_usage,
            stream, limit,
        )
    except _cuda.DeviceUnavailable as error:
        raise CudaUnavailableError(f"device='cuda' cannot use the GPU: {error}") from error


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in getattr(value, "shape", ()))


def omp_cuda(
    X: Any, D: Any, n_nonzero: int, tol: float, *, memory_limit: int | None = None,
    max_chunk_rows: int | None = None, return_stats: bool = False,
) -> Any:
    """Batch OMP of the rows of X over the rows of D on the GPU; see :func:`smic_fast.omp`.

    ``tol`` is the core's convention (< 0: no threshold). ``memory_limit`` caps the bytes of
    per-chunk work buffers (None: 90% of free device memory) and ``max_chunk_rows`` the rows per
    chunk; the batch is processed in as many chunks as needed. With ``return_stats``, also
    returns ``{"chunk_rows": ..., "chunks": ...}``.
    """
    from .. import _cuda  # type: ignore[attr-defined]

    n_nonzero = as_count(n_nonzero, "n_nonzero", minimum=1)
    if n_nonzero > _cuda.MAX_NONZERO:
        raise ValueError(
            f"n_nonzero ({n_nonzero}) must be <= {_cuda.MAX_NONZERO} on the GPU; use device='cpu'"
        )
    x_shape, d_shape = _shape(X), _shape(D)
    if len(d_shape) == 2 and n_nonzero > min(d_shape):
        raise ValueError(
            f"n_nonzero ({n_nonzero}) must be <= min(K, d) = {min(d_shape)} for D of shape {d_shape}"
        )
    if len(x_shape) == 2 and len(d_shape) == 2 and x_shape[1] != d_shape[1]:
        raise ValueError(f"X must have {d_shape[1]} columns, got shape {x_shape}")
    limit = 0 if memory_limit is None else as_count(memory_limit, "memory_limit", minimum=1)
    rows = 0 if max_chunk_rows is None else as_count(max_chunk_rows, "max_chunk_rows", minimum=1)
    try:
        stream = _cuda.Stream(gpu_device_index(X, D))
        indices, coefs, chunk_rows, chunks = _cuda.omp(
            _operand(X, "X", stream), _operand(D, "D", stream), n_nonzero, float(tol), stream,
            limit, rows,
        )
    except _cuda.DeviceUnavailable as error:
        raise CudaUnavailableError(f"device='cuda' cannot use the GPU: {error}") from error
    if is_gpu_array(X):
        indices, coefs = same_kind(indices, X), same_kind(coefs, X)
    if return_stats:
        return indices, coefs, {"chunk_rows": int(chunk_rows), "chunks": int(chunks)}
    return indices, coefs
