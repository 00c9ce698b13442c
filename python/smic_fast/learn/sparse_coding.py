"""Sparse coding of embeddings over a dictionary with batch OMP (C++ core)."""
from __future__ import annotations

import numpy as np

from .. import _core
from .._validation import as_count, as_float32_matrix, as_threads
from .device import GPU_MAX_NONZERO, resolve_device

__all__ = ["omp", "OmpCoder", "reconstruct"]


def _check_sparsity(n_nonzero: int, n_atoms: int, dim: int) -> int:
    n_nonzero = as_count(n_nonzero, "n_nonzero", minimum=1)
    if n_nonzero > n_atoms:
        raise ValueError(f"n_nonzero ({n_nonzero}) must be <= the number of atoms K ({n_atoms})")
    if n_nonzero > dim:
        raise ValueError(f"n_nonzero ({n_nonzero}) must be <= the dimension d ({dim})")
    return n_nonzero


def _check_tol(tol: float | None) -> float:
    if tol is None:
        return -1.0
    tol = float(tol)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0 or None, got {tol}")
    return tol


class OmpCoder:
    """A dictionary prepared once for many OMP calls (packed atoms, Gram matrix).

    Use it when the same dictionary codes many batches, or one item at a time with low
    latency: construction pays the O(K² d) Gram matrix, `encode` does not.
    """

    def __init__(self, D: np.ndarray, *, n_threads: int | None = None) -> None:
        D = as_float32_matrix(D, "D")
        if D.shape[0] == 0:
            raise ValueError("D must have at least one atom (K = 0)")
        self._coder = _core.OmpCoder(D, as_threads(n_threads))
        self.n_atoms: int = D.shape[0]
        self.dim: int = D.shape[1]

    def encode(
        self, X: np.ndarray, n_nonzero: int, *, tol: float | None = None,
        n_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Code the rows of X; see :func:`omp` for arguments and results."""
        X = as_float32_matrix(X, "X", columns=self.dim)
        n_nonzero = _check_sparsity(n_nonzero, self.n_atoms, self.dim)
        return self._coder.encode(X, n_nonzero, _check_tol(tol), as_threads(n_threads))


def omp(
    X: np.ndarray, D: np.ndarray, n_nonzero: int, tol: float | None = None, *,
    n_threads: int | None = None, device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Batch orthogonal matching pursuit of each row of X over the atoms (rows) of D.

    Args:
        X: (N, d) signals. float32; float64 or non-contiguous input is converted (a copy).
        D: (K, d) dictionary with unit-norm rows (checked to 1e-3), same conversions as X.
        n_nonzero: maximum atoms per signal, 1 <= n_nonzero <= min(K, d).
        tol: stop a signal early once its squared residual norm ||x - D^T c||² <= tol
            (scikit-learn's meaning of ``tol``). None: always use n_nonzero atoms unless the
            residual becomes orthogonal to D or the next atom is linearly dependent.
        n_threads: OpenMP threads; None uses all cores (CPU only).
        device: "cpu" (default: the C++ core), "cuda" (the optional GPU module
            ``smic_fast._cuda``; experimental, see docs/cuda.md) or "auto" (the GPU when that
            module loads and sees a device and n_nonzero <= 64, else the CPU). On the GPU, X and
            D may also be float32 C-contiguous CUDA arrays with ``__dlpack__`` (torch, CuPy),
            used without a copy; results are then the same kind of array on the same device.

    Returns:
        (indices, coefs): (N, n_nonzero) int32 and float32, in order of selection. An unused
        slot has index -1 and coefficient 0, so that
        ``X[i] ≈ sum_j coefs[i, j] * D[indices[i, j]]`` over the slots with index >= 0.

    Raises:
        ValueError: wrong dtype or shape, NaN or inf, D rows not unit norm, K = 0,
            n_nonzero out of range, tol negative, unknown device, GPU input with device="cpu".
        smic_fast.CudaUnavailableError: device="cuda" and no usable GPU module or device
            (the message says which, and how to build the module).
    """
    if resolve_device(device, X, D, gpu_capable=_gpu_capable(n_nonzero)) == "cuda":
        from .gpu import omp_cuda

        return omp_cuda(X, D, n_nonzero, _check_tol(tol))
    return OmpCoder(D, n_threads=n_threads).encode(X, n_nonzero, tol=tol, n_threads=n_threads)


def _gpu_capable(n_nonzero: object) -> bool:
    """Whether the GPU path supports this sparsity (bad values are reported by the checks)."""
    return not isinstance(n_nonzero, (int, np.integer)) or int(n_nonzero) <= GPU_MAX_NONZERO


def reconstruct(indices: np.ndarray, coefs: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Rebuild signals from OMP output: sum of coefficient-weighted atoms per row."""
    D = np.asarray(D, dtype=np.float32)
    used = indices >= 0
    return np.einsum("nk,nkd->nd", np.where(used, coefs, 0.0), D[np.where(used, indices, 0)])
