"""Rate against fidelity before and after learning the dictionary for the rate (issue 14):
marginal and total bits per item that smic-fast needs for a mean cosine of 0.7 ... 0.95, with
atoms learned for sparsity (one K-SVD with 8 atoms per item, the sweep of earlier releases)
and for the rate (each (step, rd_lambda) setting learns its atoms with the coder's own choice),
beside the one-atom low end (``smic-1``), the SMIC paper's layout, FAISS PQ and FAISS
spherical k-means. Every rate is counted from coded bytes (``smic_fast.evaluation``).

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python bench_rate.py \\
        --real /tmp/minilm.npy          # from make_text_embeddings.py (real MiniLM embeddings)

Datasets: the clustered synthetic collection (``_common.clustered``, seed 0; by default
10,000 x 512 with 200 Zipf-popular concepts, the issue's shape at a larger N) and each
``--real`` .npy. The default sweep's K (the default for N and half of it) for the dictionary
methods; ``smic-1`` at K = 16, 32, ..., 4096 (powers of two); k-means at 16, 64, 256, 1024, 4096 centroids.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from _common import clustered, machine
from smic_fast.evaluation import SweepConfig, run_sweep
from smic_fast.evaluation.sweep import rate_at_fidelity

LEVELS = (0.7, 0.8, 0.85, 0.9, 0.95)


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _saving(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "–"
    return f"{100 * (1 - after / before):.0f}%"


def measure(name: str, e: np.ndarray, n_iter: int) -> dict:
    base = SweepConfig(residual=(), n_iter=n_iter)
    start = time.perf_counter()
    before = run_sweep(e, replace(base, learn="sparsity", methods=("smic", "smic-1", "paper", "pq", "kmeans")),
                       progress=False)
    after = run_sweep(e, replace(base, learn="rate", methods=("smic",)), progress=False)
    seconds = time.perf_counter() - start
    points = before.points + [replace(p, method="smic-rate") for p in after.points]
    groups = {
        "smic, learned for sparsity (before)": [p for p in points if p.method == "smic"],
        "smic, learned for the rate (after)": [p for p in points if p.method == "smic-rate"],
        "smic-1 (one atom, small K)": [p for p in points if p.method == "smic-1"],
        "smic frontier before (smic + smic-1)": [p for p in points if p.method in ("smic", "smic-1")],
        "smic frontier after (smic-rate + smic-1)": [p for p in points if p.method in ("smic-rate", "smic-1")],
        "paper layout": [p for p in points if p.method == "paper"],
        "FAISS PQ": [p for p in points if p.method == "pq"],
        "FAISS spherical k-means": [p for p in points if p.method == "kmeans"],
    }
    n, d = e.shape
    print(f"\n## {name}: N={n}, d={d}, K={before.meta['n_atoms']}; {seconds:.0f} s; {machine()}")
    tables = {}
    for rate, title in (("marginal_bits_per_item", "marginal (the items' own bytes)"),
                        ("bits_per_item", "total (dictionary or codebook included)")):
        table = {label: [rate_at_fidelity(ps, lvl, rate) for lvl in LEVELS] for label, ps in groups.items()}
        tables[rate] = table
        print(f"\nBits per item, {title}, for a mean cosine of at least:\n")
        print("| method | " + " | ".join(f"{lvl:g}" for lvl in LEVELS) + " |")
        print("|---" * (len(LEVELS) + 1) + "|")
        for label, row in table.items():
            print(f"| {label} | " + " | ".join(_cell(v) for v in row) + " |")
        print("| saving, frontier after vs before | " + " | ".join(
            _saving(b, a) for b, a in zip(table["smic frontier before (smic + smic-1)"],
                                          table["smic frontier after (smic-rate + smic-1)"])) + " |")
        print("| saving, smic after vs before | " + " | ".join(
            _saving(b, a) for b, a in zip(table["smic, learned for sparsity (before)"],
                                          table["smic, learned for the rate (after)"])) + " |")
    print("\n| method | settings | marginal bits | total bits | mean cos |")
    print("|---|---|---|---|---|")
    for p in sorted(points, key=lambda p: (p.method, p.marginal_bits_per_item)):
        if p.method in ("smic", "smic-rate", "smic-1", "kmeans"):
            settings = " ".join(f"{k}={v}" for k, v in p.settings.items())
            print(f"| {p.method} | {settings} | {p.marginal_bits_per_item:.2f} | {p.bits_per_item:.1f} | "
                  f"{p.cosine_mean:.4f} |")
    return {"name": name, "items": n, "dim": d, "seconds": seconds, "levels": LEVELS, "tables": tables,
            "points": [p.to_dict() for p in points]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="items of the clustered collection")
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--concepts", type=int, default=200)
    parser.add_argument("--real", action="append", default=[], metavar="PATH.npy",
                        help="real embeddings to measure too (repeat)")
    parser.add_argument("--no-clustered", action="store_true")
    parser.add_argument("--n-iter", type=int, default=10, help="K-SVD iterations")
    parser.add_argument("--json", default=None, help="write every point there")
    args = parser.parse_args(argv)
    results = []
    if not args.no_clustered:
        e = clustered(np.random.default_rng(0), args.n, args.d, args.concepts)
        results.append(measure(f"clustered ({args.concepts} concepts)", e, args.n_iter))
    for path in args.real:
        results.append(measure(Path(path).name, np.load(path).astype(np.float32), args.n_iter))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
