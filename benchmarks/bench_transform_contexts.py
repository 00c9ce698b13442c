"""Where the transform-coded layer's bits go on items it never saw, and what richer context
models of its levels could save: the diagnosis behind issue 28's 0.70x-RQ goal.

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python \\
        bench_transform_contexts.py --real /tmp/minilm.npy [--step 0.05]

The split, atoms and layer of bench_transform_params.py (K = 1024, 8 atoms, ratio step 1/8,
rd_lambda 1e-3, `learn_transform` with greedy levels). At one residual step:

1. The bits of one item, training items against held-out ones: atoms (ITEM section), the
   layer's gain, level magnitudes and signs (ideal code lengths under the learned tables), and
   where the non-zero levels sit (axes by decreasing spread).
2. Ideal code lengths of the held-out magnitudes under context models richer than today's
   (bucket of the axis's spread x previous magnitude): the tables counted on the training
   items' levels (with +1/2 per cell), read on the held-out ones. The last row counts them on
   the held-out levels themselves: no table learned on other items can do better on these
   contexts.
"""
from __future__ import annotations

import argparse

import numpy as np
import threadpoolctl

from _common import clustered, parse_args
from bench_transform import eight_atoms, holdout_split
from smic_fast import _core
from smic_fast.coding.transform import learn_transform

ESCAPE = _core.TRANSFORM_ESCAPE
BUCKETS = _core.TRANSFORM_CONTEXTS // 3
BUCKET_LOW = -16  # smic/transform.hpp's kTransformBucketLow
BANDS = ((0, 50), (50, 150), (150, None))


def context_features(levels: np.ndarray, classes: np.ndarray, scale: np.ndarray, step: float) -> dict:
    """Per coded coefficient: its magnitude symbol and the candidate context variables."""
    n, rank = len(levels), scale.shape[1]
    t = int(round(-4 * np.log2(step)))
    magnitude = np.abs(levels[:, :rank])
    bucket = scale[classes].astype(np.int64) + (t + levels[:, -1])[:, None] - BUCKET_LOW
    coded = bucket >= 0  # axes below step / 16 are never coded
    previous = np.zeros_like(magnitude)
    previous[:, 1:] = np.minimum(magnitude[:, :-1], 2)
    before_previous = np.zeros_like(magnitude)
    before_previous[:, 2:] = np.minimum(magnitude[:, :-2], 2)
    nonzero = np.cumsum(magnitude > 0, axis=1)
    recent = np.zeros_like(magnitude)  # non-zero levels among the previous 8 coefficients
    recent[:, 1:] = nonzero[:, :-1]
    recent[:, 9:] -= nonzero[:, :-9]
    return {"symbol": np.minimum(magnitude, ESCAPE)[coded], "bucket": np.clip(bucket, 0, BUCKETS - 1)[coded],
            "previous": previous[coded], "before_previous": before_previous[coded],
            "recent": np.minimum(recent, 4)[coded], "class": np.repeat(classes[:, None], rank, 1)[coded]}


def ideal_bits(fit: dict, read: dict, variables: list[tuple[str, int]], n_items: int) -> float:
    """Bits per item of `read`'s symbols under tables counted on `fit`'s, +1/2 per cell."""
    def context(features: dict) -> np.ndarray:
        c = np.zeros(len(features["symbol"]), dtype=np.int64)
        for name, size in variables:
            c = c * size + features[name]
        return c
    fit_context, read_context = context(fit), context(read)
    n_contexts = int(max(fit_context.max(initial=0), read_context.max(initial=0))) + 1
    counts = np.zeros((n_contexts, ESCAPE + 1))
    np.add.at(counts, (fit_context, fit["symbol"]), 1)
    p = (counts + 0.5) / (counts + 0.5).sum(axis=1, keepdims=True)
    return float(-np.log2(p[read_context, read["symbol"]]).sum() / n_items)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", metavar="PATH.npy", help="real embeddings; without it, a clustered synthetic set")
    parser.add_argument("--n", type=int, default=20000, help="items of the clustered set used without --real")
    parser.add_argument("--atoms", type=int, default=1024, help="K of the atoms the layer refines (default 1024)")
    parser.add_argument("--step", type=float, default=0.05, help="residual step (default 0.05: cosine ~0.95)")
    args = parse_args(parser, argv, quick={"n": 2000, "atoms": 64})
    threadpoolctl.threadpool_limits(1)
    data = np.load(args.real) if args.real else clustered(np.random.default_rng(0), args.n, 768)
    test, train = holdout_split(data)
    # the greedy layer's levels: their contexts are the ones this diagnosis reads (dependent
    # quantisation, the default since, adds the quantiser to every context)
    dictionary = learn_transform(eight_atoms(train, args.atoms), train, quantiser="greedy")
    layer = dictionary._core.transform
    scale = np.asarray(layer.scale)
    gain_bits = -np.log2((np.asarray(layer.gain_counts, dtype=np.float64) + 1) /
                         (np.asarray(layer.gain_counts, dtype=np.float64) + 1).sum())

    print(f"step {args.step}: bits per item (ideal code lengths under the learned tables)\n")
    print("| items | cosine | atoms | gain | magnitudes | signs | layer | non-zero levels by axis band "
          + " / ".join(f"{a}-{b or scale.shape[1]}" for a, b in BANDS) + " |")
    print("|---|---|---|---|---|---|---|---|")
    features = {}
    for name, items in (("training", train), ("held out", test)):
        symbols = dictionary.items_symbols(items)
        decoded = dictionary.reconstruct(symbols)
        classes = dictionary._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
        levels = layer.levels(items, decoded, classes, args.step)
        layer_bits = layer.bits(levels, classes, args.step)
        refined = layer.refine(decoded, levels, classes, args.step)
        atom_bytes, _ = dictionary.encode_items(symbols, 1 << 30)
        signs = np.count_nonzero(levels[:, :-1]) / len(items)
        gains = float(np.mean(gain_bits[levels[:, -1] + _core.TRANSFORM_GAINS // 2]))
        bands = [np.count_nonzero(levels[:, a:b if b else scale.shape[1]]) / len(items) for a, b in BANDS]
        print(f"| {name} | {np.mean(np.sum(items * refined, axis=1)):.4f} | {8 * len(atom_bytes) / len(items):.1f} | "
              f"{gains:.1f} | {layer_bits.mean() - gains - signs:.1f} | {signs:.1f} | {layer_bits.mean():.1f} | "
              + " / ".join(f"{v:.1f}" for v in bands) + " |")
        features[name] = (context_features(levels, classes, scale, args.step), len(items))

    fit, _ = features["training"]
    read, n_read = features["held out"]
    today = [("bucket", BUCKETS), ("previous", 3)]
    print("\nheld-out magnitude bits per item under context models (tables counted on the training levels)\n")
    print("| contexts | bits | vs today |")
    print("|---|---|---|")
    base = ideal_bits(fit, read, today, n_read)
    for label, variables, source in (
            ("bucket only", [("bucket", BUCKETS)], fit),
            ("bucket x previous (today)", today, fit),
            ("+ the magnitude before it", today + [("before_previous", 3)], fit),
            ("+ non-zero levels among the previous 8", today + [("recent", 5)], fit),
            ("+ class", today + [("class", int(read["class"].max()) + 1)], fit),
            ("today's contexts, counted on the held-out levels", today, read)):
        bits = ideal_bits(source, read, variables, n_read)
        print(f"| {label} | {bits:.1f} | {100 * (bits / base - 1):+.1f}% |")


if __name__ == "__main__":
    main()
