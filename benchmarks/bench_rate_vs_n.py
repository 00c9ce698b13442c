"""Total and marginal bits per item against collection size, for a collection that carries its
own dictionary and for one that refers to a shared dictionary (trained once on other items of
the same distribution), with the mean cosine similarity at each point. Rates are counted from
the bytes of the written .smic files.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_rate_vs_n.py
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import smic_fast as smic
from _common import clustered, machine, parse_args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--shared-k", type=int, default=1024, help="atoms of the shared dictionary")
    parser.add_argument("--train", type=int, default=20000, help="items the shared dictionary learns from")
    parser.add_argument("--quality", default="medium")
    args = parse_args(parser, argv, quick={"sizes": [500, 2000], "d": 128, "shared_k": 64, "train": 2000})
    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    # One population: the shared dictionary trains on the first items, collections use the rest.
    population = clustered(rng, args.train + max(args.sizes), args.d)
    train, pool = population[: args.train], population[args.train :]
    start = time.perf_counter()
    shared = smic.Dictionary.fit(train, n_atoms=args.shared_k, quality=args.quality)
    shared.save(folder / "shared.smicd")
    shared_bytes = (folder / "shared.smicd").stat().st_size
    print(f"# rate vs N, d={args.d}, quality={args.quality}; shared dictionary K={args.shared_k} "
          f"({shared_bytes / 1024:.0f} KiB, trained on {args.train} items in "
          f"{time.perf_counter() - start:.0f} s); {machine()}")
    print("| N | dictionary | K | total bits/item | marginal bits/item | dictionary share | mean cos | 5th pct cos | time s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        e = pool[:n]
        for label, kwargs in (("own, float16", {"quality": args.quality}),
                              ("own, int8", {"quality": args.quality, "precision": "int8"}),
                              ("shared", {"dictionary": shared})):
            start = time.perf_counter()
            info = smic.compress(e, folder / "x.smic", **kwargs)
            secs = time.perf_counter() - start
            print(f"| {n} | {label} | {info['n_atoms']} | {info['bits_per_item']:.1f} | "
                  f"{info['marginal_bits_per_item']:.2f} | {info['dictionary_share']:.1%} | "
                  f"{info['cosine_mean']:.4f} | {info['cosine_p5']:.4f} | {secs:.1f} |", flush=True)


if __name__ == "__main__":
    main()
