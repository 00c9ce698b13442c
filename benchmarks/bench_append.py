"""Appends that cost what they add (issue 19): 10,000 single-item appends to a 100,000-item
collection (d = 768, shared dictionary), time per append as the file grows, and bits per item
before and after `repack`. For comparison, the copying append (the whole file rewritten, what
every append did before) on the same file, for a few hundred appends.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_append.py \\
        --folder /tmp/smic-scale     # reuses bench_scale.py's data and dictionary when there
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from _common import QUICK_FOLDER, parse_args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=100_000, help="items in the collection to start with")
    parser.add_argument("--appends", type=int, default=10_000)
    parser.add_argument("--copying", type=int, default=300, help="appends timed with the copying writer")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/smic-scale"))
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--shared-k", type=int, default=1024)
    parser.add_argument("--train", type=int, default=20_000, help="items the shared dictionary learns from")
    args = parse_args(parser, argv, quick={
        "base": 2000, "appends": 1000, "copying": 20, "folder": QUICK_FOLDER, "d": 128, "shared_k": 64,
        "train": 2000})
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import machine
    from bench_scale import generate

    import smic_fast as smic
    from smic_fast import _core

    args.folder.mkdir(parents=True, exist_ok=True)
    npy = args.folder / f"E_{args.base + args.appends}x{args.d}.npy"
    existing = sorted(args.folder.glob(f"E_*x{args.d}.npy"))
    big = [p for p in existing if int(p.name.split("_")[1].split("x")[0]) >= args.base + args.appends]
    npy = big[0] if big else npy
    if not npy.exists():
        generate(npy, args.base + args.appends, args.d)
    shared = args.folder / f"shared_{args.shared_k}.smicd"
    if not shared.exists():
        train = args.folder / f"train_{args.train}x{args.d}.npy"
        if not train.exists():
            generate(train, args.train, args.d, seed=1)
        smic.Dictionary.fit(np.load(train), n_atoms=args.shared_k).save(shared)
    D = smic.Dictionary.load(shared)
    E = np.load(npy, mmap_mode="r")
    path = args.folder / "append.smic"
    smic.compress(E[: args.base], path, dictionary=D)
    base_bytes = path.stat().st_size
    print(f"# {args.appends:,} single-item appends to a {args.base:,}-item collection, d={args.d}, shared "
          f"dictionary K={D.n_atoms}; each append fsyncs twice (fdatasync); {machine()}")

    # the copying writer, on a copy of the same file
    copy = args.folder / "append_copying.smic"
    shutil.copy(path, copy)
    times = []
    for i in range(args.copying):
        row = np.ascontiguousarray(E[args.base + i: args.base + i + 1], dtype=np.float32)
        start = time.perf_counter()
        _core.append_collection(str(copy), row, None, None, False, 0, D._core, 0)
        times.append(time.perf_counter() - start)
    copy.unlink()
    copying = 1000 * np.array(times)
    copying_ms = np.median(copying)

    col = smic.open(path, dictionary=D)
    times = []
    start_all = time.perf_counter()
    for i in range(args.appends):
        row = np.ascontiguousarray(E[args.base + i: args.base + i + 1], dtype=np.float32)
        start = time.perf_counter()
        col.append(row)
        times.append(time.perf_counter() - start)
    total = time.perf_counter() - start_all
    times_ms = 1000 * np.array(times)
    after = col.info()
    appended_bits = 8 * (after["file_bytes"] - base_bytes) / args.appends
    decoded = col.embeddings()
    ids = col.ids
    start = time.perf_counter()
    packed = col.repack()
    repack_s = time.perf_counter() - start
    assert np.array_equal(col.embeddings(), decoded) and col.ids == ids  # every item decodes the same
    fresh = args.folder / "fresh.smic"
    smic.compress(E[: args.base + args.appends], fresh, dictionary=D)
    one_batch = smic.open(fresh, dictionary=D).info()
    print("| appends | median ms/append | mean | first 1,000: median / mean | last 1,000: median / mean | p99 ms | total s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.appends:,} in place | {np.median(times_ms):.2f} | {times_ms.mean():.2f} | "
          f"{np.median(times_ms[:1000]):.2f} / {times_ms[:1000].mean():.2f} | "
          f"{np.median(times_ms[-1000:]):.2f} / {times_ms[-1000:].mean():.2f} | {np.percentile(times_ms, 99):.2f} | "
          f"{total:.1f} |")
    print(f"| {args.copying:,} copying (before) | {copying_ms:.2f} | {np.mean(copying):.2f} | | | | |")
    print()
    print("| file | items | bits/item | marginal bits/item |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| after {args.appends:,} appends (each appended item: {appended_bits:.0f} bits) | {after['items']:,} | "
          f"{after['bits_per_item']:.1f} | {after['marginal_bits_per_item']:.1f} |")
    print(f"| after repack ({repack_s:.1f} s) | {packed['items']:,} | {packed['bits_per_item']:.1f} | "
          f"{packed['marginal_bits_per_item']:.1f} |")
    print(f"| one compress of the same items | {one_batch['items']:,} | {one_batch['bits_per_item']:.1f} | "
          f"{one_batch['marginal_bits_per_item']:.1f} |")
    fresh.unlink()


if __name__ == "__main__":
    main()
