"""Bits per item of smic-fast's coding against the SMIC paper's fixed-length coding, at equal
mean cosine similarity, on a clustered synthetic collection (20,000 x 768 by default).

Both codes use the same learned dictionary (K atoms). The paper layout sweeps the number of
atoms and the bits per coefficient; smic-fast sweeps its rate-distortion knob. For each paper
point, the smic-fast rate at the same mean cosine is interpolated on its curve.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_paper_mode.py
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import smic_fast as smic
from _common import clustered, machine, parse_args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=512, help="atoms")
    parser.add_argument("--iter", type=int, default=10, help="K-SVD iterations")
    args = parse_args(parser, argv, quick={"n": 2000, "d": 128, "k": 64, "iter": 2})
    rng = np.random.default_rng(0)
    e = clustered(rng, args.n, args.d)
    print(f"# smic vs paper layout, N={args.n} d={args.d} K={args.k}; {machine()}")
    folder = Path(tempfile.mkdtemp())
    base = smic.Dictionary.fit(e, n_atoms=args.k, n_nonzero=8, n_iter=args.iter)
    atoms = base.atoms

    def run(**kw) -> tuple[float, float]:
        d = smic.Dictionary.from_atoms(atoms, e, **kw)
        info = smic.compress(e, folder / "x.smic", dictionary=d)
        return info["marginal_bits_per_item"], info["cosine_mean"]

    paper = []
    for s in (1, 2, 3, 4, 6, 8):
        for bits in (4, 6, 8):
            paper.append((s, bits, *run(layout="paper", n_nonzero=s, paper_bits=bits)))
    ours = []
    for step in (0.25, 0.125, 0.0625):
        for lam in (3e-2, 1e-2, 4e-3, 1.5e-3, 6e-4, 2e-4, 0.0):
            ours.append((step, lam, *run(n_nonzero=8, step=step, rd_lambda=lam)))
    # smic-fast's lower convex hull: the fewest bits for each fidelity
    pts = sorted((b, c) for _, _, b, c in ours)
    hull = []
    for b, c in pts:
        if not hull or c > hull[-1][1]:
            hull.append((b, c))
    print("| paper atoms | paper bits/coef | paper bits/item | paper mean cos | smic bits/item at equal cos | saving |")
    print("|---|---|---|---|---|---|")
    for s, bits, b, c in sorted(paper, key=lambda r: r[3]):
        hb = np.array([h[0] for h in hull])
        hc = np.array([h[1] for h in hull])
        if c < hc[0] or c > hc[-1]:
            print(f"| {s} | {bits} | {b:.1f} | {c:.4f} | (outside smic's range) | |")
            continue
        ours_bits = float(np.interp(c, hc, hb))
        print(f"| {s} | {bits} | {b:.1f} | {c:.4f} | {ours_bits:.1f} | {1 - ours_bits / b:.0%} |")
    print("\nsmic-fast curve (step, rd_lambda, bits/item, mean cos):")
    for step, lam, b, c in ours:
        print(f"  {step:<7} {lam:<7} {b:7.2f} {c:.4f}")


if __name__ == "__main__":
    main()
