"""How much the Gaussian-mixture bound depends on how it is estimated: bits per item at each
cosine for 1 to 128 k-means classes, fitted on the whole training split and on half of it, with
sample covariances (`smic_fast.evaluation.bounds.mixture_rd_bound`, the reference issue 28
measures against) and with Ledoit–Wolf shrunk ones (scikit-learn).

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python \\
        bench_bounds.py --real /tmp/minilm.npy

A bound of the source cannot fall when it is estimated from fewer items; one that does
measures how well a class's sample covariance fits the items it was computed on (with about
as many items per class as dimensions, the smallest eigenvalues collapse and their axes cost
nothing). Split: bench_transform.py's (the 80% it learns on).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import clustered, optional, parse_args
from bench_transform import holdout_split
from smic_fast.evaluation.bounds import mixture_rd_bound

LEVELS = (0.9, 0.95, 0.97)


def measure(name: str, e: np.ndarray, classes: list[int]) -> None:
    _, train = holdout_split(e)
    train = train.astype(np.float64)
    halves = {"all": train, "half": train[: len(train) // 2]}
    covariance = optional("sklearn.covariance")
    print(f"\n## {name}: {len(train)} training items (half: {len(halves['half'])}), d = {e.shape[1]}\n")
    columns = [f"{label} {level:g}" for label in halves for level in LEVELS]
    print("| covariances | classes | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for c in classes:
        start = time.perf_counter()
        rows = {"sample": [mixture_rd_bound(x, LEVELS, n_classes=c) for x in halves.values()]}
        if covariance is not None:
            def shrunk(rows: np.ndarray) -> np.ndarray:
                return np.linalg.eigvalsh(covariance.ledoit_wolf(rows)[0])

            rows["Ledoit–Wolf"] = [mixture_rd_bound(x, LEVELS, n_classes=c, eigenvalues_of=shrunk)
                                   for x in halves.values()]
        for label, values in rows.items():
            cells = [f"{v:.1f}" for bits in values for v in bits]
            print(f"| {label} | {c} | " + " | ".join(cells) + f" |  ({time.perf_counter() - start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="append", default=[], metavar="PATH.npy",
                        help="real embeddings (repeat); without it, a clustered synthetic set of --n items")
    parser.add_argument("--n", type=int, default=20000, help="items of the clustered set used without --real")
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 8, 16, 32, 64, 128])
    args = parse_args(parser, argv, quick={"n": 2000, "classes": [1, 8]})
    if not args.real:
        print("# no --real embeddings given: a clustered synthetic set instead", flush=True)
        measure(f"clustered synthetic ({args.n} x 768)", clustered(np.random.default_rng(0), args.n, 768),
                args.classes)
    for path in args.real:
        measure(path, np.load(path), args.classes)


if __name__ == "__main__":
    main()
