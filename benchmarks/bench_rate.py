"""Rate against fidelity before and after issue 14: marginal and total bits per item that
smic-fast needs for a mean cosine of 0.7 ... 0.95. **Before**: the smic settings of ``smic
eval``'s default sweep of earlier releases (8 atoms per item, atoms learned for sparsity once
per K, the finest setting refined by the residual layer). **After**: today's default sweep
(``SweepConfig()``: each setting learns its atoms for the codes it writes, 16- and 32-atom
settings for the high end, the same refinements), beside the one-atom low end (``smic-1``:
gain-shape k-means at rd_lambda 0, which is "before", and entropy-constrained one-atom codes
above), the SMIC paper's layout, FAISS PQ, FAISS spherical k-means and FAISS residual
quantisation (``rq``: 1 ... 24 stages of 256 centroids learned on every item, beam 8; not in ``smic eval``'s default
methods), all at their default sweep settings. A frontier of several methods reads, at each cosine, as the lowest of its
members' curves (``rate_at_fidelity``). Every rate is counted from coded bytes (``smic_fast.evaluation``).

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python bench_rate.py \\
        --real /tmp/minilm.npy          # from make_text_embeddings.py (real MiniLM embeddings)

Datasets: the clustered synthetic collection (``_common.clustered``, seed 0; by default
10,000 x 512 with 200 Zipf-popular concepts, the issue's shape at a larger N) and each
``--real`` .npy. The default sweep's K (the default for N and half of it) for the dictionary
methods; ``smic-1`` at K = 16, 32, ..., 4096 (each at rd_lambda 0 and 0.05) and k-means at
as many centroids (powers of two). ``--one-atom-lambda 0,0.05,0.1`` sweeps more one-atom prices.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from _common import clustered, machine, parse_args
from smic_fast.coding.dictionary import default_n_atoms
from smic_fast.evaluation import SweepConfig, run_sweep
from smic_fast.evaluation.sweep import default_sizes, rate_at_fidelity

LEVELS = (0.7, 0.8, 0.85, 0.9, 0.95)


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _saving(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "–"
    return f"{100 * (1 - after / before):.0f}%"


#: the smic settings of ``smic eval``'s default sweep before issue 14 (8 atoms per item, one
#: K-SVD per K learned for sparsity; its finest setting refined at SweepConfig's residual steps)
PRE_ISSUE_SMIC = ((0.25, 4e-2), (0.25, 1.5e-2), (0.25, 6e-3), (0.125, 2.5e-3), (0.125, 1e-3),
                  (0.0625, 4e-4), (0.0625, 1e-4), (0.0625, 0.0))


def measure(name: str, e: np.ndarray, n_iter: int, one_atom_lambda: tuple[float, ...] | None = None,
            sweep: str = "full") -> dict:
    start = time.perf_counter()
    # the sweep's K before issue 14: the default and half of it, without twice the default
    pre_issue_sizes = tuple(k for k in default_sizes(len(e)) if k <= default_n_atoms(len(e)))
    config = SweepConfig.quick if sweep == "quick" else SweepConfig  # quick: a few points per method
    before = run_sweep(e, config(n_atoms=pre_issue_sizes, smic=PRE_ISSUE_SMIC, learn="sparsity",
                                      methods=("smic",), n_iter=n_iter), progress=False)
    extra = {} if one_atom_lambda is None else {"one_atom_lambda": one_atom_lambda}
    after = run_sweep(e, config(methods=("smic", "smic-1", "paper", "pq", "kmeans", "rq"), n_iter=n_iter, **extra),
                      progress=False)
    seconds = time.perf_counter() - start
    # rate_at_fidelity reads each rd_lambda of the one-atom codes as its own curve over K
    points = [replace(p, method="smic-before") for p in before.points] + after.points
    one_atom = [p for p in points if p.method == "smic-1"]
    one_atom_before = [p for p in one_atom if p.settings["rd_lambda"] == 0]
    groups = {
        "smic, pre-issue sweep (before)": [p for p in points if p.method == "smic-before"],
        "smic, default sweep (after)": [p for p in points if p.method == "smic"],
        "smic after, 8-atom settings only": [p for p in points if p.method == "smic"
                                             and p.settings["n_nonzero"] == 8],
        "smic after, without twice the default K": [p for p in points if p.method == "smic"
                                                    and p.settings["K"] in pre_issue_sizes],
        "smic-1, k-means (rd_lambda 0: before)": one_atom_before,
        **{f"smic-1, entropy-constrained, rd_lambda {lam:g}": [p for p in one_atom if p.settings["rd_lambda"] == lam]
           for lam in sorted({p.settings["rd_lambda"] for p in one_atom}) if lam > 0},
        "smic frontier before (before + k-means smic-1)": [p for p in points if p.method == "smic-before"]
        + one_atom_before,
        "smic frontier after (after + smic-1)": [p for p in points if p.method == "smic"] + one_atom,
        "paper layout": [p for p in points if p.method == "paper"],
        "FAISS PQ": [p for p in points if p.method == "pq"],
        "FAISS spherical k-means": [p for p in points if p.method == "kmeans"],
        "FAISS residual quantisation": [p for p in points if p.method == "rq"],
    }
    n, d = e.shape
    print(f"\n## {name}: N={n}, d={d}, K={after.meta['n_atoms']}; {seconds:.0f} s; {machine()}")
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
        print("| saving, frontier after vs pre-issue sweep | " + " | ".join(
            _saving(b, a) for b, a in zip(table["smic, pre-issue sweep (before)"],
                                          table["smic frontier after (after + smic-1)"])) + " |")
        print("| saving, smic after vs before | " + " | ".join(
            _saving(b, a) for b, a in zip(table["smic, pre-issue sweep (before)"],
                                          table["smic, default sweep (after)"])) + " |")
        print("| saving, frontier after vs before | " + " | ".join(
            _saving(b, a) for b, a in zip(table["smic frontier before (before + k-means smic-1)"],
                                          table["smic frontier after (after + smic-1)"])) + " |")
    print("\n| method | settings | marginal bits | total bits | mean cos |")
    print("|---|---|---|---|---|")
    for p in sorted(points, key=lambda p: (p.method, p.marginal_bits_per_item)):
        if p.method in ("smic-before", "smic", "smic-1", "kmeans", "paper", "pq", "rq"):
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
    parser.add_argument("--sweep", choices=("full", "quick"), default="full",
                        help="the default sweep's settings, or SweepConfig.quick's few points per method")
    parser.add_argument("--one-atom-lambda", default=None, metavar="L0,L1,...",
                        help="rd_lambda values of the one-atom codes (default: the sweep's)")
    args = parse_args(parser, argv, quick={"n": 2000, "d": 128, "concepts": 20, "n_iter": 2, "sweep": "quick"})
    lambdas = None if args.one_atom_lambda is None else tuple(float(v) for v in args.one_atom_lambda.split(","))
    results = []
    if not args.no_clustered:
        e = clustered(np.random.default_rng(0), args.n, args.d, args.concepts)
        results.append(measure(f"clustered ({args.concepts} concepts)", e, args.n_iter, lambdas, args.sweep))
    for path in args.real:
        results.append(measure(Path(path).name, np.load(path).astype(np.float32), args.n_iter, lambdas, args.sweep))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
