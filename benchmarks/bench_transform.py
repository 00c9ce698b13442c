"""The transform-coded refinement layer on items it was never learned on: marginal bits at each
cosine against the one-table residual, FAISS residual quantisation and the Gaussian and
Gaussian-mixture bounds of the training part, then the layer's own speed on one core.

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python \\
        bench_transform.py --real /tmp/minilm.npy [--atoms K] [--base STEP:RD_LAMBDA] [--rq 16,24,32,40,48,56,64]

Protocol (issue 28): a seeded 80/20 split; atoms (K = --atoms, 8 per item, ratio step and
rd_lambda from --base, default 1/16 and 0: the sweep's finest setting), coding tables, the
transform (greedy levels, and dependent quantisation, the default) and RQ's codebooks learned
on the 80%; the 20% coded with them, rates read from the
files' bytes (ITEM + RESD sections), cosines from the files decoded. Speed: the layer alone
(levels, range coding, decoding, reconstruction) on the held-out items at the step nearest
cosine 0.95, one thread, best of 5.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import best_time, clustered, machine, parse_args
from smic_fast.coding.codec import CodingParams
from smic_fast.store.collection import compress
from smic_fast.store.opener import open as open_collection
from smic_fast.coding.dictionary import Dictionary, normalize_embeddings
from smic_fast.evaluation.bounds import covariance_eigenvalues, distortion_of_cosine, kmeans_classes
from smic_fast.evaluation.bounds import gaussian_rd_bound, mixture_rd_bound, reverse_water_filling
from smic_fast.learn.ksvd import learn_for_rate
from smic_fast.coding.transform import learn_transform

LEVELS = (0.8, 0.85, 0.9, 0.95, 0.97, 0.99)
#: Residual steps of each curve: dense where the curve bends (0.2-0.035), since reading
#: linearly between points overstates the bits of a convex curve.
STEPS = (0.2, 0.16, 0.14, 0.12, 0.1, 0.085, 0.07, 0.06, 0.05, 0.042, 0.035, 0.03, 0.025, 0.021, 0.018, 0.015,
         0.012, 0.008, 0.005)
#: The row of the default transform (dependent quantisation, learn_transform's default).
OURS = "transform-coded, dependent quantisation (format 4, the default)"


def bits_at(points: list[tuple[float, float]], level: float) -> float | None:
    """Bits on the lower convex-free frontier at a cosine (linear between the two points around it)."""
    points = sorted(points, key=lambda p: p[1])
    best = None
    for (b0, c0), (b1, c1) in zip(points, points[1:]):
        if c0 <= level <= c1:
            b = b0 + (b1 - b0) * (level - c0) / (c1 - c0) if c1 > c0 else min(b0, b1)
            best = b if best is None else min(best, b)
    return best


def holdout_split(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(held out, training): the unit rows split 20/80 by a permutation seeded 0."""
    unit, _ = normalize_embeddings(embeddings)
    order = np.random.default_rng(0).permutation(len(unit))
    n_test = len(unit) // 5
    return unit[order[:n_test]], unit[order[n_test:]]


def eight_atoms(train: np.ndarray, k: int, base: tuple[float, float] = (0.125, 0.001)) -> Dictionary:
    """The atoms a refinement layer refines: K = k learned for the rate on `train`, 8 per item,
    ratio step and rd_lambda `base`."""
    params = CodingParams(s_max=8, step=base[0], rd_lambda=base[1])
    atoms = learn_for_rate(train, k, params, n_iter=10, seed=0)
    return Dictionary.from_atoms(atoms, train, n_nonzero=8, step=base[0], rd_lambda=base[1])


def coded(dictionary: Dictionary, items: np.ndarray, step: float, folder: Path) -> tuple[float, float]:
    path = folder / "held_out.smic"
    path.unlink(missing_ok=True)
    info = compress(items, path, dictionary=dictionary, residual_step=step)
    decoded = open_collection(path, dictionary=dictionary).embeddings()
    sections = info["section_bytes"]
    return (8.0 * (sections["items"] + sections["residual"]) / len(items),
            float(np.mean(np.sum(items.astype(np.float64) * decoded, axis=1))))


def active_dimensions(train: np.ndarray, cosine: float, n_classes: int = 32) -> float:
    """Eigenvalues above the mixture bound's water level at `cosine`, weighted by class share."""
    labels = kmeans_classes(train.astype(np.float64), n_classes, seed=0)
    counts = np.bincount(labels)
    p = counts / counts.sum()
    eigenvalues = [covariance_eigenvalues(train[labels == c].astype(np.float64)) for c in range(len(counts))]
    weights = [np.full(len(e), pc) for e, pc in zip(eigenvalues, p)]
    lam, w = np.concatenate(eigenvalues), np.concatenate(weights)
    theta, _ = reverse_water_filling(lam, distortion_of_cosine(cosine), w)
    return float(np.sum(w[lam > theta[0]]))


def rq_points(train: np.ndarray, test: np.ndarray, stages: list[int]) -> list[tuple[float, float]]:
    from smic_fast.evaluation.baselines import rq_codec

    points = []
    for m in stages:
        start = time.perf_counter()
        c = rq_codec(test, m, 8, beam=8, train=train, train_size=len(train))
        cosine = float(np.mean(np.sum(test.astype(np.float64) * c.reconstruction, axis=1)))
        points.append((8.0 * c.item_bytes / len(test), cosine))
        print(f"  RQ {m} stages: {points[-1][0]:.1f} bits, cosine {cosine:.4f} ({time.perf_counter() - start:.0f} s)",
              flush=True)
    return points


def speed(dictionary: Dictionary, test: np.ndarray, step: float) -> dict[str, float]:
    t = dictionary._core.transform
    symbols = dictionary.items_symbols(test)
    decoded = dictionary.reconstruct(symbols)
    classes = dictionary._core.classes(symbols.counts, symbols.first, symbols.rest_index, symbols.rest_level)
    levels = t.levels(test, decoded, classes, step)
    data = t.encode(levels, classes, step)
    n = len(test)
    times = {
        "levels (transform + quantise)": best_time(lambda: t.levels(test, decoded, classes, step), 5),
        "range-code the levels": best_time(lambda: t.encode(levels, classes, step), 5),
        "decode the levels": best_time(lambda: t.decode(data, classes, step), 5),
        "reconstruct (inverse transform)": best_time(lambda: t.refine(decoded, levels, classes, step), 5),
    }
    rates = {name: n / seconds for name, seconds in times.items()}
    rates["encode (levels + coding)"] = n / (times["levels (transform + quantise)"] + times["range-code the levels"])
    rates["decode (decoding + reconstruction)"] = n / (times["decode the levels"] +
                                                       times["reconstruct (inverse transform)"])
    return rates


def single_item_latency(dictionary: Dictionary, test: np.ndarray, step: float) -> dict[str, float]:
    """Median microseconds of one Dictionary.encode / decode call from Python, atoms only and
    with the layer (its levels in the same bytes), over 500 held-out items."""
    items = [np.ascontiguousarray(x) for x in test[:500]]
    out = {}
    for label, s in (("atoms only", None), ("with the layer", step)):
        codes = [dictionary.encode(x, residual_step=s) for x in items]
        for verb, call, inputs in (("encode", lambda x: dictionary.encode(x, residual_step=s), items),
                                   ("decode", lambda b: dictionary.decode(b, residual_step=s), codes)):
            times = []
            for value in inputs:
                start = time.perf_counter()
                call(value)
                times.append(time.perf_counter() - start)
            out[f"one item, {verb}, {label}"] = 1e6 * float(np.median(times))
        out[f"one item, bytes, {label}"] = float(np.mean([len(c) for c in codes]))
    return out


def measure(name: str, e: np.ndarray, k: int, rq: list[int], base: tuple[float, float] = (0.0625, 0.0)) -> None:
    test, train = holdout_split(e)
    print(f"\n## {name}: learned on {len(train)} items, {len(test)} held out, d = {e.shape[1]}; {machine()}\n",
          flush=True)
    start = time.perf_counter()
    plain = eight_atoms(train, k, base)
    learned = time.perf_counter()
    greedy = learn_transform(plain, train, quantiser="greedy")
    greedy_s = time.perf_counter() - learned
    transformed = learn_transform(plain, train)  # the default: dependent quantisation
    dependent_s = time.perf_counter() - learned - greedy_s
    print(f"K = {k}, 8 atoms, ratio step {base[0]:g}, rd_lambda {base[1]:g}: "
          f"atoms and tables {learned - start:.0f} s, transform {greedy_s:.1f} s greedy, {dependent_s:.1f} s "
          f"dependent ({transformed._core.transform.n_classes} classes, rank {transformed._core.transform.rank})\n",
          flush=True)
    rows: dict[str, list[float | None]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        curves = {label: [coded(d, test, s, Path(tmp)) for s in STEPS]
                  for label, d in (("one-table residual (format 2)", plain),
                                   ("transform-coded, greedy levels (format 4)", greedy),
                                   (OURS, transformed))}
    for label, points in curves.items():
        rows[label] = [bits_at(points, level) for level in LEVELS]
    if rq:
        print("FAISS residual quantisation, beam 8, learned on the same 80%:", flush=True)
        rq_curve = rq_points(train, test, rq)
        rows["FAISS RQ (beam 8)"] = [bits_at(rq_curve, level) for level in LEVELS]
    rows["Gaussian bound (training covariance)"] = list(gaussian_rd_bound(train, LEVELS))
    rows["Gaussian-mixture bound (32 classes)"] = list(mixture_rd_bound(train, LEVELS))
    print("\nmarginal bits per held-out item at a mean cosine of\n")
    print("| | " + " | ".join(f"{level:g}" for level in LEVELS) + " |")
    print("|---" * (len(LEVELS) + 1) + "|")
    for label, row in rows.items():
        print(f"| {label} | " + " | ".join("–" if v is None else f"{v:.1f}" for v in row) + " |")
    ours = rows[OURS]
    if "FAISS RQ (beam 8)" in rows:
        print("| transform / RQ | " + " | ".join(
            "–" if a is None or b is None else f"{a / b:.2f}" for a, b in zip(ours, rows["FAISS RQ (beam 8)"])) + " |")
    at = LEVELS.index(0.95)
    dims = active_dimensions(train, 0.95)
    if ours[at] is not None:
        gap = (ours[at] - rows["Gaussian-mixture bound (32 classes)"][at]) / dims
        print(f"\nat 0.95: {dims:.0f} active dimensions (mixture bound's water level), "
              f"{gap:.3f} bits per active dimension above the mixture bound")
    best = min(curves[OURS], key=lambda p: abs(p[1] - 0.95))
    step = STEPS[curves[OURS].index(best)]
    print(f"\nspeed of the layer alone, one thread, at step {step} (cosine {best[1]:.3f}, {best[0]:.0f} bits):\n")
    for name, d in (("dependent", transformed), ("greedy", greedy)):
        for label, rate in speed(d, test, step).items():
            print(f"- {name}, {label}: {rate / 1000:.0f}k items/s")
    print()
    for label, value in single_item_latency(transformed, test, step).items():
        print(f"- {label}: {value:.1f}" + (" bytes" if "bytes" in label else " us (median, from Python)"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="append", default=[], metavar="PATH.npy",
                        help="real embeddings (repeat); without it, a clustered synthetic set of --n items")
    parser.add_argument("--n", type=int, default=20000, help="items of the clustered set used without --real")
    parser.add_argument("--atoms", type=int, default=512, help="K of the atoms both layers refine (default 512)")
    parser.add_argument("--base", default="0.0625:0", metavar="STEP:RD_LAMBDA",
                        help="ratio step and rd_lambda of the 8-atom setting both layers refine (default 0.0625:0)")
    parser.add_argument("--rq", default="", metavar="M,M,...",
                        help="FAISS RQ stage counts to measure (minutes each at 64 stages), e.g. 16,24,32,48,64")
    args = parse_args(parser, argv, quick={"n": 2000, "atoms": 64})
    import threadpoolctl

    with threadpoolctl.threadpool_limits(1, user_api="openmp"):  # the layer's speed on one core
        base = tuple(float(v) for v in args.base.split(":"))
        rq = [int(m) for m in args.rq.split(",") if m]
        if not args.real:  # no real embeddings here: the clustered set bench_eval.py uses, d = 768
            print("# no --real embeddings given: a clustered synthetic set instead (the figures quoted in "
                  "BENCHMARKS.md are on real MiniLM embeddings)", flush=True)
            measure(f"clustered synthetic ({args.n} x 768)", clustered(np.random.default_rng(0), args.n, 768),
                    args.atoms, rq, (base[0], base[1]))
        for path in args.real:
            measure(Path(path).name, np.load(path), args.atoms, rq, (base[0], base[1]))


if __name__ == "__main__":
    main()
