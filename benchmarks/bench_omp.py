"""Batch OMP against scikit-learn and SPAMS, with numpy's float32 GEMM as the floor.

Every timing is the whole job from X and D to sparse codes (each method computes its own
correlations and Gram matrix). The GEMM floor is timed beside ours for every row (alternating
runs, best of --repeat each, every call after 0.3 s of idle). Run with the machine's OpenBLAS tuning variables unset:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_omp.py
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

import smic_fast
from _common import best_time, cpu_model, machine, optional, parse_args, unit_rows


SETTLE = 0.3  # seconds of idle before each timed call (see main)


def settled_time(fn) -> float:
    """Wall time of one call of fn, made after a pause of SETTLE seconds."""
    time.sleep(SETTLE)
    return best_time(fn, repeat=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="signals")
    parser.add_argument("--d", type=int, default=768, help="dimension")
    parser.add_argument("--k", type=int, default=1024, help="atoms")
    parser.add_argument("--sparsity", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=5,
                        help="best of this many alternating runs of the GEMM and ours")
    parser.add_argument("--sklearn-n", type=int, default=2000,
                        help="signals given to scikit-learn (its per-signal Python loop is slow; "
                             "its time is scaled to --n)")
    args = parse_args(parser, argv, quick={
        "n": 2000, "d": 128, "k": 256, "sparsity": [4], "threads": [1], "sklearn_n": 200})
    spams = optional("spams")  # SPAMS's column is left out without it
    from sklearn.linear_model import orthogonal_mp_gram

    rng = np.random.default_rng(0)
    x, d = unit_rows(rng, args.n, args.d), unit_rows(rng, args.k, args.d)
    x_f, d_f = np.asfortranarray(x.T), np.asfortranarray(d.T)  # SPAMS wants columns
    x_sk = x[: args.sklearn_n]
    print(f"# batch OMP, N={args.n} d={args.d} K={args.k}; {cpu_model()}, "
          f"SMIC_KERNELS={os.environ.get('SMIC_KERNELS', '(unset: widest)')}; {machine()}")
    print("| n_nonzero | threads | GEMM D@X.T s | smic-fast s | SPAMS s | sklearn s (scaled) "
          "| SPAMS / ours | sklearn / ours | ours / GEMM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            for s in args.sparsity:
                # The floor and ours alternate, so the ratio compares times taken under the
                # same load (this machine is shared).
                # Each timed call starts after a pause: a library's idle worker threads keep
                # spinning for a while after its call (OpenBLAS's for about 0.1 s), and on two
                # cores they take one from whatever is timed next (measured: ours at 1 atom and
                # 2 threads read 1.56x the GEMM straight after it, 1.08x after 0.3 s).
                gemm, ours = float("inf"), float("inf")
                for _ in range(args.repeat):
                    gemm = min(gemm, settled_time(lambda: d @ x.T))
                    ours = min(ours, settled_time(lambda: smic_fast.omp(x, d, s, n_threads=threads)))
                peer = (min(settled_time(lambda: spams.omp(x_f, d_f, L=s, numThreads=threads)) for _ in range(3))
                        if spams else float("nan"))

                def sklearn_job():
                    gram = d @ d.T
                    orthogonal_mp_gram(gram, d @ x_sk.T, n_nonzero_coefs=s, copy_Gram=False)

                sk = settled_time(sklearn_job) * args.n / len(x_sk)
                print(f"| {s} | {threads} | {gemm:.3f} | {ours:.3f} | {peer:.3f} | {sk:.2f} | "
                      f"{peer / ours:.2f}x | {sk / ours:.1f}x | {ours / gemm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
