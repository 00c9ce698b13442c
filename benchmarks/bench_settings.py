"""Marginal bits and mean cosine of chosen codec settings on a set: the probes behind
BENCHMARKS.md's remarks on settings the default sweep does not run.

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python bench_settings.py \\
        --real /tmp/minilm.npy --setting 512:8:0.125:1.6e-3 --setting 512:16:0.125:2e-4
    ../.venv/bin/python bench_settings.py --low 0.004,0.01,0.02,0.03,0.05     # the clustered set

``--setting K:atoms:step:rd_lambda`` codes the set as ``smic eval``'s ``smic`` method does
(atoms learned for the rate of that setting, the collection's default 256-item chunks);
``--low L,...`` compresses it with ``quality="low"`` at each rd_lambda (in the preset's
4096-item chunks and in 256-item ones). Without ``--real``: the
clustered collection of ``bench_rate.py`` (10,000 x 512, 200 concepts, seed 0).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import clustered, machine, parse_args
from smic_fast.store.collection import compress
from smic_fast.evaluation import SweepConfig, run_sweep


def settings_table(e: np.ndarray, settings: list[tuple[int, int, float, float]]) -> None:
    print("| K | atoms | step | rd_lambda | marginal bits | mean cosine |")
    print("|---|---|---|---|---|---|")
    for k, atoms, step, rd_lambda in settings:
        sweep = run_sweep(e, SweepConfig(n_atoms=(k,), smic=((step, rd_lambda, atoms),), residual=(),
                                         methods=("smic",)), progress=False)
        p = sweep.points[0]
        print(f"| {k} | {atoms} | {step:g} | {rd_lambda:g} | {p.marginal_bits_per_item:.2f} | "
              f"{p.cosine_mean:.4f} |", flush=True)


def low_table(e: np.ndarray, lambdas: list[float]) -> None:
    print("| rd_lambda | chunk | marginal bits | mean cosine |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, rd_lambda in enumerate(lambdas):
            for chunk in (None, 256):
                path = Path(tmp) / f"low{i}_{chunk}.smic"
                info = compress(e, path, quality="low", rd_lambda=rd_lambda, chunk_size=chunk)
                print(f"| {rd_lambda:g} | {chunk or 4096} | {8 * info['section_bytes']['items'] / len(e):.2f} | "
                      f"{info['cosine_mean']:.4f} |", flush=True)


def parse_setting(text: str) -> tuple[int, int, float, float]:
    try:
        k, atoms, step, rd_lambda = text.split(":")
        return int(k), int(atoms), float(step), float(rd_lambda)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K:atoms:step:rd_lambda, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=None, metavar="PATH.npy", help="embeddings (default: clustered)")
    parser.add_argument("--n", type=int, default=10000, help="items of the clustered collection")
    parser.add_argument("--setting", action="append", type=parse_setting, default=[],
                        metavar="K:atoms:step:rd_lambda",
                        help="repeat; with neither --setting nor --low: 256:4:0.125:1.5e-3 and 256:4:0.25:1.5e-3")
    parser.add_argument("--low", default=None, metavar="L0,L1,...", help="quality='low' at these rd_lambda")
    args = parse_args(parser, argv, quick={"n": 2000, "setting": [(32, 4, 0.125, 1.5e-3)]})
    e = (np.load(args.real).astype(np.float32) if args.real
         else clustered(np.random.default_rng(0), args.n, 512, 200))
    name = Path(args.real).name if args.real else "clustered (200 concepts)"
    print(f"\n## {name}: N={len(e)}, d={e.shape[1]}; {machine()}\n")
    if not args.setting and not args.low:  # what BENCHMARKS.md quotes for the clustered set
        args.setting = [parse_setting("256:4:0.125:1.5e-3"), parse_setting("256:4:0.25:1.5e-3")]
    start = time.perf_counter()
    if args.setting:
        settings_table(e, args.setting)
    if args.low:
        low_table(e, [float(v) for v in args.low.split(",")])
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
