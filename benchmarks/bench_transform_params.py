"""Learning choices of the transform-coded layer on held-out items: marginal bits at each cosine
for variants of `learn_transform`'s keyword arguments, all on the same split and atoms as
bench_transform.py (K = 1024, 8 atoms, ratio step 1/8, rd_lambda 1e-3), one run.

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python \\
        bench_transform_params.py --real /tmp/minilm.npy "{}" "{'n_classes': 64}" "{'quantiser': 'trellis'}"

Each variant is a Python dict literal of keyword arguments. Without --real: bench_transform.py's
clustered synthetic set (--n items, d = 768). Bits are read from the files'
ITEM + RESD bytes at bench_transform.py's 11 steps, linearly between points.
"""
from __future__ import annotations

import argparse
import ast
import tempfile
import time
from pathlib import Path

import numpy as np
import threadpoolctl

from _common import clustered, parse_args
from bench_transform import LEVELS, STEPS, bits_at, coded, eight_atoms, holdout_split
from smic_fast.coding.transform import learn_transform


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["{}"], metavar="KWARGS",
                        help="learn_transform keyword arguments as a dict literal (default: {})")
    parser.add_argument("--real", metavar="PATH.npy", help="real embeddings; without it, a clustered synthetic set")
    parser.add_argument("--n", type=int, default=20000, help="items of the clustered set used without --real")
    parser.add_argument("--atoms", type=int, default=1024, help="K of the atoms the layer refines (default 1024)")
    args = parse_args(parser, argv, quick={"n": 2000, "atoms": 64})
    variants = [ast.literal_eval(v) for v in args.variants]
    threadpoolctl.threadpool_limits(1)
    data = np.load(args.real) if args.real else clustered(np.random.default_rng(0), args.n, 768)
    test, train = holdout_split(data)
    plain = eight_atoms(train, args.atoms)
    print("| variant | " + " | ".join(f"{level:g}" for level in LEVELS) + " |")
    print("|---" * (len(LEVELS) + 1) + "|")
    for kw in variants:
        start = time.perf_counter()
        d = learn_transform(plain, train, **kw)
        with tempfile.TemporaryDirectory() as tmp:
            points = [coded(d, test, s, Path(tmp)) for s in STEPS]
        row = [bits_at(points, level) for level in LEVELS]
        print(f"| {kw} | " + " | ".join("–" if v is None else f"{v:.1f}" for v in row) +
              f" |  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
