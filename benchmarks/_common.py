"""Helpers shared by the benchmark scripts: timing and the machine's description; the synthetic
data come from smic_fast.evaluation.synthetic (shared with the tests and examples)."""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from smic_fast.evaluation import synthetic
from smic_fast.evaluation.synthetic import clustered, unit_rows

__all__ = ["QUICK_FOLDER", "SKIP_EXIT", "best_time", "clustered", "cpu_model", "machine", "optional", "parse_args", "planted",
           "skip", "unit_rows"]

# The exit status of a script that skipped itself (no GPU, no data): run_all.py reports it as a
# skip, not a failure. 0 so that running a script by hand that has nothing to do is no error.
SKIP_EXIT = 0

# Where --quick runs keep their generated data (apart from the full runs' /tmp/smic-scale).
QUICK_FOLDER = Path(tempfile.gettempdir()) / "smic-bench-quick"


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


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None, quick: dict[str, object]) -> argparse.Namespace:
    """Parse argv with a --quick flag that swaps in the CI-sized defaults `quick` (dest -> value).

    Options given explicitly win over the quick values, so `--quick --n 500` means "quick, but
    N=500" (and `--quick --setting X` runs X alone)."""
    unknown = set(quick) - {action.dest for action in parser._actions}
    if unknown:  # checked on every run, --help included, so a renamed option cannot go unnoticed
        raise ValueError(f"quick defaults for unknown options: {sorted(unknown)}")
    shown = ", ".join(f"{_flag(parser, dest)} {_shown(value)}" for dest, value in quick.items())
    parser.add_argument("--quick", action="store_true",
                        help=f"CI-sized run, not the figures BENCHMARKS.md quotes ({shown})")
    args = parser.parse_args(argv)
    if args.quick:
        tokens = {token.split("=", 1)[0] for token in (sys.argv[1:] if argv is None else argv)}
        given = {action.dest for action in parser._actions if tokens & set(action.option_strings)}
        for dest, value in quick.items():
            if dest not in given:
                setattr(args, dest, list(value) if isinstance(value, list) else value)
    return args


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return action.option_strings[-1]
    return dest


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def skip(script: str, reason: str) -> None:
    """End a script that cannot run here (no GPU, no data), saying why: `SKIPPED <script>: reason`."""
    print(f"SKIPPED {script}: {reason}", flush=True)
    sys.exit(SKIP_EXIT)


def optional(module: str, extra: str = "bench") -> ModuleType | None:
    """The peer library `module`, or None with a line saying its column is left out and how to
    install it (the [bench] extra: make .venv/.installed-bench)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"# {module} is not installed: its column is left out (pip install 'smic-fast[{extra}]', "
              f"or make .venv/.installed-bench)", flush=True)
        return None
