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
