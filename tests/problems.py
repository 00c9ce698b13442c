"""Seeded random problems of the shape SMIC sees, from smic_fast.evaluation.synthetic (the one
home of the generators the tests, benchmarks and examples share)."""
from __future__ import annotations

import numpy as np

from smic_fast.evaluation.synthetic import clustered, planted, unit_rows

__all__ = ["clustered_collection", "planted_collection", "unit_rows", "vector_kernel_families"]


def planted_collection(rng: np.random.Generator, n: int, n_atoms: int, dim: int, k: int,
                       noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Signals that are sums of k atoms of a hidden dictionary (weights away from zero, so the
    support is recoverable), plus a little noise; not normalised."""
    return planted(rng, n, n_atoms, dim, k, noise, normalise=False, away_from_zero=True)


def vector_kernel_families() -> list[str]:
    """The product kernel families besides "generic" that this CPU runs ("avx2", "avx512")."""
    from smic_fast import _core

    found = []
    try:
        for name in ("avx2", "avx512"):
            try:
                _core.set_gemm_kernel(name)
            except ValueError:
                continue
            found.append(name)
    finally:
        _core.set_gemm_kernel("auto")
    return found


def clustered_collection(rng: np.random.Generator, n: int, dim: int, n_concepts: int,
                         noise: float = 0.15) -> np.ndarray:
    """The benchmarks' clustered collection (smic_fast.evaluation.synthetic.clustered), sized
    for a test."""
    return clustered(rng, n, dim, n_concepts, noise)
