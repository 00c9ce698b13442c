"""Helpers shared by the benchmark scripts: timing and the machine's description; the synthetic
data come from smic_fast.evaluation.synthetic (shared with the tests and examples)."""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np

from smic_fast.evaluation import synthetic
from smic_fast.evaluation.synthetic import clustered, unit_rows

__all__ = ["best_time", "clustered", "cpu_model", "machine", "planted", "unit_rows"]


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls, in seconds (the least disturbed by a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def planted(rng: np.random.Generator, n: int, n_atoms: int, d: int, k: int, noise: float = 0.1) -> np.ndarray:
    """Unit-norm signals made of k atoms of a hidden dictionary plus noise (learnable data)."""
    return synthetic.planted(rng, n, n_atoms, d, k, noise)[0]


def cpu_model() -> str:
    """The CPU's model name, family/model numbers and widest x86 vector extension."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = info.get("flags", "").split()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{info.get('model name', platform.machine())} (family {info.get('cpu family', '?')} "
            f"model {info.get('model', '?')}, {simd})")


def machine() -> str:
    from threadpoolctl import threadpool_info

    blas = [f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})"
            for i in threadpool_info() if i["user_api"] == "blas"]
    tuned = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"BLAS: {', '.join(blas) or 'none'}"
            + (f" — WARNING {tuned} set: unset them for fair peer timings" if tuned else ""))
