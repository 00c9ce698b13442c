"""Rate and fidelity of items the dictionary was not learned on, beside the collection's own.

``smic eval`` and ``bench_rate.py`` code a collection with atoms learned on that collection
(what ``compress`` does: the dictionary travels in the file, and the total rate counts it).
Their marginal bits at a large K relative to N partly measure memorisation: 4096 atoms for
15,000 items fit the items themselves. This script learns each setting on 80% of a set and
codes both parts with the same dictionary and tables: a gain that holds on the held-out 20%
is one that new items of the collection (``append``) or a shared dictionary would see.

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python \\
        bench_rate_holdout.py --real /tmp/minilm.npy

Settings: one atom per item at K = 128, 256, 1024, 4096 with rd_lambda 0 (gain-shape
k-means) and 0.05 (entropy-constrained); 8 atoms (step 1/8, rd_lambda 4e-4) at the default K
for the training set and at 4 times it. Atoms learned for the rate (``learn_for_rate``), 10
iterations, seed 0; one-atom files in 4096-item chunks, the others in the default 256.
``--setting K:atoms:step:rd_lambda`` (repeatable) measures those settings instead.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import clustered, machine, parse_args
from bench_rate import LEVELS, PRE_ISSUE_SMIC, _cell, _saving
from bench_settings import parse_setting
from smic_fast.coding.codec import CodingParams
from smic_fast.store.collection import compress
from smic_fast.store.opener import open as open_collection
from smic_fast.coding.dictionary import Dictionary, default_n_atoms, normalize_embeddings
from smic_fast.evaluation import SweepConfig, run_sweep
from smic_fast.evaluation.baselines import rq_codec
from smic_fast.evaluation.sweep import Point, default_sizes, rate_at_fidelity
from smic_fast.learn.ksvd import learn_for_rate


def settings(n_train: int) -> list[tuple[int, CodingParams]]:
    k = default_n_atoms(n_train)
    one = [(size, CodingParams(s_max=1, step=0.25, rd_lambda=lam)) for size in (128, 256, 1024, 4096)
           for lam in (0.0, 0.05) if size <= n_train]
    return one + [(size, CodingParams(s_max=8, step=0.125, rd_lambda=4e-4)) for size in (k, 4 * k)
                  if size <= n_train]


def coded(dictionary: Dictionary, unit: np.ndarray, folder: Path, chunk: int | None) -> tuple[float, float]:
    path = folder / "part.smic"
    path.unlink(missing_ok=True)
    info = compress(unit, path, dictionary=dictionary, chunk_size=chunk)
    reconstruction = open_collection(path, dictionary=dictionary).embeddings()
    cosine = float(np.mean(np.sum(unit.astype(np.float64) * reconstruction, axis=1)))
    return 8.0 * info["section_bytes"]["items"] / len(unit), cosine


def measure(name: str, e: np.ndarray, chosen: list[tuple[int, CodingParams]] | None = None) -> None:
    unit, _ = normalize_embeddings(e)
    order = np.random.default_rng(0).permutation(len(unit))
    n_test = len(unit) // 5
    test, train = unit[order[:n_test]], unit[order[n_test:]]
    print(f"\n## {name}: learned on {len(train)} items, {len(test)} held out; {machine()}\n")
    print("| K | atoms | rd_lambda | own items: marginal bits, cosine | held out: marginal bits, cosine |")
    print("|---|---|---|---|---|")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k, params in chosen or settings(len(train)):
            atoms = learn_for_rate(train, k, params, n_iter=10, seed=0)
            dictionary = Dictionary.from_atoms(atoms, train, n_nonzero=params.s_max, step=params.step,
                                               rd_lambda=params.rd_lambda)
            chunk = 4096 if params.s_max == 1 else None
            own = coded(dictionary, train, Path(tmp), chunk)
            held = coded(dictionary, test, Path(tmp), chunk)
            print(f"| {k} | {params.s_max} | {params.rd_lambda:g} | {own[0]:.2f}, {own[1]:.4f} | "
                  f"{held[0]:.2f}, {held[1]:.4f} |", flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s")


def rq_point(test: np.ndarray, train: np.ndarray, m: int, nbits: int) -> Point:
    """The rq method's point for held-out rows: codebooks learned on `train`, `test` coded."""
    coded = rq_codec(test, m, nbits, beam=SweepConfig().rq_beam, train=train, train_size=len(train))
    n, d = test.shape
    cosine = np.sum(test.astype(np.float64) * coded.reconstruction, axis=1)
    return Point("rq", {"M": m, "nbits": nbits}, n, d, 8.0 * (coded.item_bytes + coded.fixed_bytes) / n,
                 8.0 * coded.item_bytes / n, float(cosine.mean()), float(np.percentile(cosine, 5)), 0.0,
                 coded.encode_s, coded.decode_s, coded.fit_s, coded.item_bytes + coded.fixed_bytes,
                 coded.item_bytes)


def measure_frontier(name: str, e: np.ndarray, with_rq: bool = False) -> None:
    """Held-out marginal bits of the default sweep's smic settings at each cosine of
    bench_rate.py, before and after issue 14: each setting's atoms and tables learned on 80%
    of the set (``run_sweep``'s ``smic-shared``), the other 20% coded with them."""
    unit, _ = normalize_embeddings(e)
    order = np.random.default_rng(0).permutation(len(unit))
    n_test = len(unit) // 5
    test, train = unit[order[:n_test]], unit[order[n_test:]]
    sizes = tuple(default_sizes(len(train)))
    pre_issue_sizes = tuple(k for k in sizes if k <= default_n_atoms(len(train)))  # no twice the default
    start = time.perf_counter()
    before = run_sweep(test, SweepConfig(n_atoms=pre_issue_sizes, smic=PRE_ISSUE_SMIC, learn="sparsity",
                                         methods=("smic-shared",)), train=train, progress=False).points
    after = run_sweep(test, SweepConfig(n_atoms=sizes, methods=("smic-shared",)), train=train,
                      progress=False).points
    rq = [rq_point(test, train, m, nbits) for m, nbits in SweepConfig().rq] if with_rq else []
    rows = {
        "pre-issue sweep (before)": before,
        f"default sweep (after), K = {', '.join(map(str, sizes))}": after,
        "default sweep without twice the default K": [p for p in after if p.settings["K"] in pre_issue_sizes],
        **({"FAISS residual quantisation (learned on the same 80%)": rq} if rq else {}),
    }
    print(f"\n## {name}: smic learned on {len(train)} items, marginal bits of the {len(test)} held out "
          f"for a mean cosine of at least; {time.perf_counter() - start:.0f} s; {machine()}\n")
    print("| settings | " + " | ".join(f"{lvl:g}" for lvl in LEVELS) + " |")
    print("|---" * (len(LEVELS) + 1) + "|")
    table = {label: [rate_at_fidelity(points, lvl, "marginal_bits_per_item") for lvl in LEVELS]
             for label, points in rows.items()}
    for label, row in table.items():
        print(f"| {label} | " + " | ".join(_cell(v) for v in row) + " |")
    first, second = list(table.values())[:2]
    print("| saving, after vs before | " + " | ".join(_saving(b, a) for b, a in zip(first, second)) + " |",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="items of the clustered collection")
    parser.add_argument("--real", action="append", default=[], metavar="PATH.npy")
    parser.add_argument("--no-clustered", action="store_true")
    parser.add_argument("--setting", action="append", type=parse_setting, default=[],
                        metavar="K:atoms:step:rd_lambda", help="these settings instead of the defaults")
    parser.add_argument("--rq", action="store_true",
                        help="with --frontier: FAISS residual quantisation learned on the same items, too "
                             "(minutes)")
    parser.add_argument("--frontier", action="store_true",
                        help="held-out marginal bits of the default sweep's smic settings at bench_rate.py's "
                             "cosines, before and after issue 14, instead of the per-setting table")
    args = parse_args(parser, argv, quick={"n": 2000, "setting": [(64, 4, 0.125, 0.0)]})
    chosen = [(k, CodingParams(s_max=atoms, step=step, rd_lambda=rd_lambda))
              for k, atoms, step, rd_lambda in args.setting] or None
    if args.frontier:
        sets = [] if args.no_clustered else [("clustered (200 concepts)",
                                               clustered(np.random.default_rng(0), args.n, 512, 200))]
        for name, e in sets + [(Path(path).name, np.load(path).astype(np.float32)) for path in args.real]:
            measure_frontier(name, e, args.rq)
        return
    if not args.no_clustered:
        measure("clustered (200 concepts)", clustered(np.random.default_rng(0), args.n, 512, 200), chosen)
    for path in args.real:
        measure(Path(path).name, np.load(path).astype(np.float32), chosen)


if __name__ == "__main__":
    main()
