"""Dictionary learning by approximate K-SVD over batch OMP (C++ core)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, overload

import numpy as np

from .. import _core
from .._validation import as_count, as_float32_matrix, as_threads
from ..coding.codec import CodingParams
from .device import GPU_MAX_NONZERO, gpu_device_index, is_gpu_array, resolve_device

__all__ = ["learn_dictionary", "learn_for_rate"]

ProgressCallback = Callable[[int, float], "bool | None"]


# The result's type follows return_errors, so a typed caller gets an array, not a union.
@overload
def learn_dictionary(
    X: np.ndarray, n_atoms: int, n_nonzero: int, n_iter: int = 10, seed: int = 0, *,
    n_threads: int | None = None, max_coherence: float = 0.99, min_usage: float = 0.25,
    progress: ProgressCallback | None = None, return_errors: Literal[False] = False, device: str = "cpu",
) -> np.ndarray: ...
@overload
def learn_dictionary(
    X: np.ndarray, n_atoms: int, n_nonzero: int, n_iter: int = 10, seed: int = 0, *,
    n_threads: int | None = None, max_coherence: float = 0.99, min_usage: float = 0.25,
    progress: ProgressCallback | None = None, return_errors: Literal[True], device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]: ...
def learn_dictionary(
    X: np.ndarray, n_atoms: int, n_nonzero: int, n_iter: int = 10, seed: int = 0, *,
    n_threads: int | None = None, max_coherence: float = 0.99, min_usage: float = 0.25,
    progress: ProgressCallback | None = None, return_errors: bool = False, device: str = "cpu",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Learn a (n_atoms, d) dictionary for sparse coding of the rows of X with K-SVD.

    Each iteration codes every row with batch OMP (``n_nonzero`` atoms) and refits each atom
    with a rank-1 update on the rows that use it (approximate K-SVD, Rubinstein et al. 2008).
    Atoms are initialised from distinct random rows of X; atoms that fall unused or rarely
    used, or whose correlation with another atom exceeds ``max_coherence``, are replaced by
    the rows that are worst represented (this re-seeding is what lets K-SVD escape the poor
    local optima of a random start). The result depends only on the data and ``seed``, not on the
    number of threads.

    Args:
        X: (N, d) training signals, N >= n_atoms. float64/non-contiguous input is converted.
        n_atoms: dictionary size K.
        n_nonzero: atoms per signal during learning (use the sparsity you will code with).
        n_iter: K-SVD iterations (coding + atom update); 0 returns the initial dictionary.
        seed: seed of the initial choice of rows.
        n_threads: OpenMP threads; None uses all cores.
        max_coherence: atoms more correlated than this with an earlier atom are replaced.
        min_usage: atoms used by fewer rows than this fraction of the mean usage are
            replaced between iterations (not after the last one); 0 replaces unused atoms only.
        progress: called after each iteration as ``progress(iteration, mean_sq_error)``;
            returning False stops early. Ctrl-C also stops it (KeyboardInterrupt is raised).
        return_errors: also return the mean squared residual after each iteration.
        device: "cpu" (default), "cuda" or "auto" (see :func:`smic_fast.omp`). On the GPU
            (experimental, docs/cuda.md), each iteration's sparse coding runs there and the
            atom refits stay on the CPU, so X is needed on the host: a CUDA array X is copied
            there once, and D is returned as the same kind of array on X's device. The GPU
            codes may differ from the CPU's on near ties, so the dictionary may differ too.

    Returns:
        D, float32 with unit-norm rows; with ``return_errors``, ``(D, errors)``.
    """
    capable = not isinstance(n_nonzero, (int, np.integer)) or int(n_nonzero) <= GPU_MAX_NONZERO
    where = resolve_device(device, X, gpu_capable=capable)
    like = X if where == "cuda" and is_gpu_array(X) else None
    if like is not None:
        from .gpu import to_host

        X = to_host(X)
    X = as_float32_matrix(X, "X")
    n_atoms = as_count(n_atoms, "n_atoms", minimum=1)
    n_nonzero = as_count(n_nonzero, "n_nonzero", minimum=1)
    n_iter = as_count(n_iter, "n_iter", minimum=0)
    seed = as_count(seed, "seed", minimum=0)
    if n_atoms > X.shape[0]:
        raise ValueError(f"n_atoms ({n_atoms}) must be <= the number of rows of X ({X.shape[0]})")
    if n_nonzero > min(n_atoms, X.shape[1]):
        raise ValueError(
            f"n_nonzero ({n_nonzero}) must be <= min(n_atoms, d) = {min(n_atoms, X.shape[1])}"
        )
    if not 0.0 < max_coherence <= 1.0:
        raise ValueError(f"max_coherence must be in (0, 1], got {max_coherence}")
    if not 0.0 <= min_usage < 1.0:
        raise ValueError(f"min_usage must be in [0, 1), got {min_usage}")
    if where == "cuda":
        from .gpu import learn_dictionary_cuda, to_device_like

        D, errors, _replaced = learn_dictionary_cuda(
            X, n_atoms, n_nonzero, n_iter, seed, as_threads(n_threads), float(max_coherence),
            progress, float(min_usage), device_index=gpu_device_index(like),
        )
        if like is not None:
            D = to_device_like(D, like)
    else:
        D, errors, _replaced = _core.learn_dictionary(
            X, n_atoms, n_nonzero, n_iter, seed, as_threads(n_threads), float(max_coherence),
            progress, 1, float(min_usage),
        )
    if return_errors:
        return D, np.asarray(errors, dtype=np.float64)
    return D


def learn_for_rate(
    X: np.ndarray, n_atoms: int, params: CodingParams, *, precision: str = "float16",
    n_iter: int = 10, seed: int = 0, n_threads: int | None = None, max_coherence: float = 0.99,
    min_usage: float = 0.25, progress: ProgressCallback | None = None, return_errors: bool = False,
    sparsity_iterations: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Learn a (n_atoms, d) dictionary for the codes the coder will write with ``params``.

    K-SVD as :func:`learn_dictionary`: its first ``sparsity_iterations`` iterations (default:
    half of ``n_iter``) code every row with ``s_max`` atoms, as :func:`learn_dictionary` does,
    which spreads the atoms over the data; every later iteration codes every row with the
    coder's own rate-distortion choice (``params``: at most ``s_max`` atoms, ratio ``step``,
    ``rd_lambda``) over the atoms as ``precision`` stores them, priced by frequency tables
    fitted to the previous iteration's codes (flat at the first); each row is refitted on the
    atoms its code keeps, with the least-squares coefficients of its OMP path. Rows the coder
    codes with one atom pull that atom towards them alone, so the dictionary serves the rate
    it will be used at; at a large ``rd_lambda`` every row keeps one atom and those
    iterations are gain-shape k-means (with ``sparsity_iterations=0``, all of them). Starting
    from the sparsity-learned atoms gave a lower rate-distortion cost than either learning
    alone at every rd_lambda measured (BENCHMARKS.md). CPU only; deterministic for a given
    seed, whatever the threads.

    Args:
        X: (N, d) rows of unit norm (or zero), N >= n_atoms; see
            :func:`smic_fast.coding.dictionary.normalize_embeddings`.
        params: the coding parameters the dictionary will code with (smic layout).
        Other arguments as in :func:`learn_dictionary`.
    """
    if not isinstance(params, CodingParams):
        raise TypeError(f"params must be a CodingParams, got {type(params).__name__}")
    if params.layout != "smic":
        raise ValueError("learning for the rate needs the smic layout (the paper layout has no rate choice)")
    X = as_float32_matrix(X, "X")
    n_atoms = as_count(n_atoms, "n_atoms", minimum=1)
    n_iter = as_count(n_iter, "n_iter", minimum=0)
    seed = as_count(seed, "seed", minimum=0)
    if n_atoms > X.shape[0]:
        raise ValueError(f"n_atoms ({n_atoms}) must be <= the number of rows of X ({X.shape[0]})")
    if params.s_max > min(n_atoms, X.shape[1]):
        raise ValueError(f"n_nonzero ({params.s_max}) must be <= min(n_atoms, d) = {min(n_atoms, X.shape[1])}")
    if not 0.0 < max_coherence <= 1.0:
        raise ValueError(f"max_coherence must be in (0, 1], got {max_coherence}")
    if not 0.0 <= min_usage < 1.0:
        raise ValueError(f"min_usage must be in [0, 1), got {min_usage}")
    warm = -1 if sparsity_iterations is None else as_count(sparsity_iterations, "sparsity_iterations", minimum=0)
    D, errors, _replaced = _core.learn_for_rate(
        X, n_atoms, params.to_json(), precision, n_iter, seed, as_threads(n_threads),
        float(max_coherence), progress, float(min_usage), warm)
    if return_errors:
        return D, np.asarray(errors, dtype=np.float64)
    return D
