"""Latency of coding one new embedding against a loaded dictionary (Dictionary.encode: OMP,
quantization, range coding, everything precomputed) and of decoding one item (Dictionary.decode,
col[i]), measured from Python beside numpy's float32 D @ x of the same shape (the floor), and
throughput of batch coding. K=1024 atoms, d=1024 by default.

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
    coded = [dictionary.encode(e) for e in new[: args.items]]
    decode_times = _timed(dictionary.decode, coded)
    atoms = np.ascontiguousarray(dictionary.atoms)
    floor = _timed(lambda x: atoms @ x, list(new[: args.items]))
    folder = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    smic.compress(new[: args.batch], folder / "batch.smic", dictionary=dictionary)
    batch = time.perf_counter() - start
    col = smic.open(folder / "batch.smic", dictionary=dictionary)
    item_times = _timed(col.__getitem__, list(range(0, args.batch, max(1, args.batch // args.items))))
    print(f"# one new item, K={args.k} d={args.d}; {machine()}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| Dictionary.encode p50 | {np.percentile(times, 50):.0f} µs |")
    print(f"| Dictionary.encode p99 | {np.percentile(times, 99):.0f} µs |")
    print(f"| Dictionary.encode mean | {times.mean():.0f} µs |")
    for name, t in (("numpy D @ x (floor)", floor), ("Dictionary.decode", decode_times), ("col[i]", item_times)):
        print(f"| {name} p50 / p99 / p99.9 | {np.percentile(t, 50):.0f} / {np.percentile(t, 99):.0f} / "
              f"{np.percentile(t, 99.9):.0f} µs |")
    print(f"| batch compress of {args.batch} items (file written) | {batch:.2f} s = "
          f"{args.batch / batch:.0f} items/s |")


def _timed(call, inputs) -> np.ndarray:
    """Microseconds of call(x) for each input (after 20 warm-up calls)."""
    for x in inputs[:20]:
        call(x)
    out = np.empty(len(inputs))
    for i, x in enumerate(inputs):
        start = time.perf_counter()
        call(x)
        out[i] = time.perf_counter() - start
    return out * 1e6


if __name__ == "__main__":
    main()
