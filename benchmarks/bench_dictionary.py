"""Dictionary learning: smic-fast's K-SVD against scikit-learn's MiniBatchDictionaryLearning
and SPAMS' trainDL (mode 3: L0-constrained, OMP coding), on the same learnable data.

Every dictionary is scored the same way: mean squared residual of coding the training data
with batch OMP at the target sparsity. The peers run with the budget given on the command line;
smic-fast runs until its error first reaches the best peer's and reports that time.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_dictionary.py
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import smic_fast
from _common import machine, optional, parse_args, planted


def omp_error(x: np.ndarray, d: np.ndarray, k: int) -> float:
    d = (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)
    indices, coefs = smic_fast.omp(x, d, k)
    residual = x.astype(np.float64) - smic_fast.reconstruct(indices, coefs, d)
    return float(np.mean(np.sum(residual**2, axis=1)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--sparsity", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ksvd-max-iter", type=int, default=60)
    parser.add_argument("--sklearn-epochs", type=int, default=2)
    parser.add_argument("--spams-iter", type=int, default=1000, help="trainDL iterations (batches)")
    args = parse_args(parser, argv, quick={
        "n": 2000, "d": 128, "k": 128, "ksvd_max_iter": 5, "sklearn_epochs": 1, "spams_iter": 50, "threads": 1})
    spams = optional("spams")  # SPAMS's row is left out without it
    from sklearn.decomposition import MiniBatchDictionaryLearning

    rng = np.random.default_rng(0)
    x = planted(rng, args.n, args.k, args.d, args.sparsity)
    s, t = args.sparsity, args.threads
    print(f"# dictionary learning, N={args.n} d={args.d} K={args.k} sparsity={s} threads={t}; {machine()}")
    rows = []
    with threadpool_limits(limits=t):
        if spams:
            start = time.perf_counter()
            d_spams = spams.trainDL(np.asfortranarray(x.T), K=args.k, lambda1=s, mode=3,
                                    iter=args.spams_iter, batchsize=256, numThreads=t, verbose=False)
            rows.append((f"SPAMS trainDL (mode 3, {args.spams_iter} iter, batch 256)",
                         time.perf_counter() - start, omp_error(x, np.ascontiguousarray(d_spams.T), s)))

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mbdl = MiniBatchDictionaryLearning(
                n_components=args.k, transform_algorithm="omp", transform_n_nonzero_coefs=s,
                batch_size=256, max_iter=args.sklearn_epochs, random_state=0).fit(x)
        rows.append((f"sklearn MiniBatchDictionaryLearning ({args.sklearn_epochs} epochs)",
                     time.perf_counter() - start, omp_error(x, mbdl.components_, s)))

        # smic-fast runs until its error reaches the best peer's (or --ksvd-max-iter).
        target = min(err for _, _, err in rows)
        errors: list[float] = []
        start = time.perf_counter()
        d_ours = smic_fast.learn_dictionary(
            x, args.k, s, n_iter=args.ksvd_max_iter, n_threads=t,
            progress=lambda i, e: errors.append(e) or e > target,
        )
        ours = (f"smic-fast K-SVD ({len(errors)} iter, stops at the best peer's error)",
                time.perf_counter() - start, omp_error(x, d_ours, s))

    print("| method | time s | OMP error (mean ||x - Dc||²) | time / smic-fast |")
    print("|---|---|---|---|")
    for name, secs, err in [ours, *rows]:
        print(f"| {name} | {secs:.2f} | {err:.4f} | {secs / ours[1]:.2f} |")


if __name__ == "__main__":
    main()
