"""Latency of coding one new embedding against a loaded dictionary (Dictionary.encode: OMP,
quantization, range coding, everything precomputed), measured from Python, and throughput of
batch coding. K=1024 atoms, d=1024 by default.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_single_item.py
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import smic_fast as smic
from _common import clustered, machine


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--items", type=int, default=2000, help="single-item calls timed")
    parser.add_argument("--batch", type=int, default=20000, help="items of the batch run")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    train = clustered(rng, 8000, args.d)
    dictionary = smic.Dictionary.fit(train, n_atoms=args.k, n_iter=3)
    new = clustered(rng, max(args.items, args.batch), args.d)
    for e in new[:50]:  # warm caches and lazy set-up
        dictionary.encode(e)
    times = np.empty(args.items)
    for i, e in enumerate(new[: args.items]):
        start = time.perf_counter()
        dictionary.encode(e)
        times[i] = time.perf_counter() - start
    times *= 1e6
    folder = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    smic.compress(new[: args.batch], folder / "batch.smic", dictionary=dictionary)
    batch = time.perf_counter() - start
    print(f"# one new item, K={args.k} d={args.d}; {machine()}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| Dictionary.encode p50 | {np.percentile(times, 50):.0f} µs |")
    print(f"| Dictionary.encode p99 | {np.percentile(times, 99):.0f} µs |")
    print(f"| Dictionary.encode mean | {times.mean():.0f} µs |")
    print(f"| batch compress of {args.batch} items (file written) | {batch:.2f} s = "
          f"{args.batch / batch:.0f} items/s |")


if __name__ == "__main__":
    main()
