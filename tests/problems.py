"""Seeded random problems of the shape SMIC sees (unit-norm rows)."""
from __future__ import annotations

import numpy as np


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """n random unit-norm float32 rows of dimension d."""
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted_collection(rng: np.random.Generator, n: int, n_atoms: int, dim: int, k: int,
                       noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Signals that are sums of k atoms of a hidden dictionary, plus a little noise."""
    atoms = unit_rows(rng, n_atoms, dim).astype(np.float64)
    support = np.argsort(rng.random((n, n_atoms)), axis=1)[:, :k]
    weights = rng.standard_normal((n, k)) + np.sign(rng.standard_normal((n, k)))
    x = np.einsum("nk,nkd->nd", weights, atoms[support]) + noise * rng.standard_normal((n, dim))
    return x.astype(np.float32), atoms.astype(np.float32)


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
    """Unit rows mixing 1-4 Zipf-popular concepts plus isotropic noise: the shape of
    benchmarks/_common.clustered (a photo archive's subjects), small enough for a test."""
    concepts = unit_rows(rng, n_concepts, dim).astype(np.float64)
    popularity = 1.0 / np.arange(1, n_concepts + 1) ** 0.8
    popularity /= popularity.sum()
    counts = np.minimum(rng.geometric(0.5, n), 4)
    x = np.zeros((n, dim))
    for i, k in enumerate(counts):
        picked = rng.choice(n_concepts, size=k, replace=False, p=popularity)
        x[i] = rng.uniform(0.3, 1.0, k) @ concepts[picked]
    x += noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
