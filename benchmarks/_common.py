"""Helpers shared by the benchmark scripts: timing, synthetic data, machine description."""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls, in seconds (the least disturbed by a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted(rng: np.random.Generator, n: int, n_atoms: int, d: int, k: int, noise: float = 0.1) -> np.ndarray:
    """Unit-norm signals made of k atoms of a hidden dictionary plus noise (learnable data)."""
    atoms = unit_rows(rng, n_atoms, d).astype(np.float64)
    support = np.argsort(rng.random((n, n_atoms)), axis=1)[:, :k]
    x = np.einsum("nk,nkd->nd", rng.standard_normal((n, k)), atoms[support])
    x += noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def machine() -> str:
    from threadpoolctl import threadpool_info

    blas = [f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})"
            for i in threadpool_info() if i["user_api"] == "blas"]
    tuned = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"BLAS: {', '.join(blas) or 'none'}"
            + (f" — WARNING {tuned} set: unset them for fair peer timings" if tuned else ""))


def clustered(rng: np.random.Generator, n: int, d: int = 768, n_concepts: int = 512,
              noise: float = 0.15) -> np.ndarray:
    """A clustered synthetic collection of unit 'CLIP-like' embeddings: each item mixes 1-4
    concepts (popularity Zipf-like, as subjects in a photo archive) plus isotropic noise."""
    concepts = unit_rows(rng, n_concepts, d).astype(np.float64)
    popularity = 1.0 / np.arange(1, n_concepts + 1) ** 0.8
    popularity /= popularity.sum()
    counts = np.minimum(rng.geometric(0.5, n), 4)
    x = np.zeros((n, d))
    for i, k in enumerate(counts):
        picked = rng.choice(n_concepts, size=k, replace=False, p=popularity)
        x[i] = rng.uniform(0.3, 1.0, k) @ concepts[picked]
    x += noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
