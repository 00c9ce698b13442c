"""Rate–fidelity table of `smic eval` on the clustered synthetic collection (20,000 x 768 by
default): bits per item that smic-fast (own or shared dictionary), the SMIC paper's fixed-length
layout, a scalar quantiser + range coder and FAISS PQ need for a given mean cosine similarity.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_eval.py --out /tmp/eval-report

is the same sweep as `smic eval clustered.npy --out /tmp/eval-report` (K = 512 and 256 at N = 20,000)
on the collection this script saves with --save clustered.npy.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import clustered, machine, parse_args
from smic_fast.evaluation import SweepConfig, run_sweep, write_report
from smic_fast.evaluation.sweep import comparison_table

LEVELS = (0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--atoms", type=int, action="append", default=None, help="K (repeat); default: the sweep's (default K for N and half of it)")
    parser.add_argument("--out", default=None, help="also write the HTML report there")
    parser.add_argument("--save", default=None, metavar="PATH.npy", help="save the collection")
    parser.add_argument("--sweep", choices=("full", "quick"), default="full",
                        help="smic eval's default sweep, or SweepConfig.quick's few points per method")
    args = parse_args(parser, argv, quick={"n": 2000, "d": 128, "atoms": [64], "sweep": "quick"})
    e = clustered(np.random.default_rng(0), args.n, args.d)
    if args.save:
        np.save(args.save, e)
    config = (SweepConfig.quick if args.sweep == "quick" else SweepConfig)(
        n_atoms=tuple(args.atoms) if args.atoms else None)
    start = time.perf_counter()
    sweep = run_sweep(e, config, progress=False)
    seconds = time.perf_counter() - start
    if args.out:
        write_report(sweep, args.out)
    print(f"# smic eval, clustered N={args.n} d={args.d}, K={sweep.meta['n_atoms']}: {seconds:.0f} s; {machine()}")
    for rate, title in (("bits_per_item", "total (dictionary, table or codebook included)"),
                        ("marginal_bits_per_item", "marginal (the items' own bytes)")):
        table = comparison_table(sweep.points, LEVELS, rate=rate)
        print(f"\nBits per item, {title}, for a mean cosine of at least:\n")
        print("| method | " + " | ".join(f"{lvl:g}" for lvl in LEVELS) + " |")
        print("|---" * (len(LEVELS) + 1) + "|")
        for method, row in table.items():
            print(f"| {method} | " + " | ".join(_cell(v) for v in row.values()) + " |")
    print("\n| method | settings | bits/item | marginal | mean cos | p5 cos | recall@10 | encode s | decode s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in sweep.points:
        settings = " ".join(f"{k}={v}" for k, v in p.settings.items() if k != "train")
        print(f"| {p.method} | {settings} | {p.bits_per_item:.1f} | {p.marginal_bits_per_item:.1f} | "
              f"{p.cosine_mean:.4f} | {p.cosine_p5:.3f} | {p.recall_at_10:.3f} | {p.encode_s:.2f} | {p.decode_s:.2f} |")


if __name__ == "__main__":
    main()
