"""One item's encode with and without atom screening, over dictionary sizes: where screening
(an int8 product with proven bounds, exact products only for the atoms that can win) pays,
which sets the size from which smic-fast screens by itself (K x d >= 3 x 2^17).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE chrt -f 10 taskset -c 0 .venv/bin/python benchmarks/bench_atom_screen.py

Prints the median µs of ``Dictionary.encode`` (Python, one thread) per shape, screened and
full, alternating twice in one run; checks that both give the same bytes. Needs a CPU with
AVX-512 VNNI for the screened column to mean anything (elsewhere it runs plain C++ kernels).
"""
from __future__ import annotations

import argparse
import os
import time

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np

import smic_fast as smic
from smic_fast import _core
from _common import clustered, machine, parse_args

SHAPES = ((256, 512), (512, 512), (256, 1024), (512, 768), (1024, 512), (1024, 768),
          (1024, 1024), (2048, 768), (4096, 512))


def _median_us(dictionary: smic.Dictionary, items: list[np.ndarray]) -> tuple[float, list[bytes]]:
    for x in items[:20]:
        dictionary.encode(x)
    times, out = [], []
    for x in items:
        start = time.perf_counter()
        out.append(dictionary.encode(x))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600, help="items encoded per shape and mode")
    args = parse_args(parser, argv, quick={"items": 60})
    rng = np.random.default_rng(0)
    print(f"# Dictionary.encode, median µs, one thread; {machine()}")
    print("| K x d | screened | full product | full / screened |")
    print("|---|---|---|---|")
    try:
        for k, d in SHAPES:
            dictionary = smic.Dictionary.fit(clustered(rng, max(3000, 2 * k), d), n_atoms=k, n_iter=1)
            items = list(clustered(rng, args.items, d))
            figures: dict[str, list[float]] = {"on": [], "off": []}
            coded: dict[str, list[bytes]] = {}
            for _ in range(2):
                for mode in ("on", "off"):
                    _core.set_atom_screening(mode)
                    us, coded[mode] = _median_us(dictionary, items)
                    figures[mode].append(us)
            if coded["on"] != coded["off"]:
                raise SystemExit(f"K={k} d={d}: screened bytes differ from the full product's")
            on, off = min(figures["on"]), min(figures["off"])
            print(f"| {k} x {d} | {on:.1f} | {off:.1f} | {off / on:.2f} |", flush=True)
    finally:
        _core.set_atom_screening("auto")


if __name__ == "__main__":
    main()
