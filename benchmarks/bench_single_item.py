"""Latency of one item against a loaded dictionary, K=1024 atoms and d=1024 by default: encoding
(OMP, rate-distortion choice, quantization, range coding) and decoding one item's bytes, and
reading one item of an open collection, each from C++, through the C ABI and from Python, side
by side with numpy's float32 ``D @ x`` of the same shape (the floor: one pass over the atoms),
all measured in one run on one thread; then batch throughput.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_single_item.py

The C++ and C figures come from benchmarks/latency/bench_latency.cpp, built here with CMake
(the venv's cmake and ninja, as the tests use).
"""
from __future__ import annotations

import argparse
import os

# One core for every column, numpy's floor included: OpenBLAS reads this when numpy loads.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import smic_fast as smic
from _common import clustered, machine, parse_args

ROOT = Path(__file__).resolve().parents[1]


def _timed(call, inputs) -> np.ndarray:
    """Microseconds of call(x) for each input (after 20 warm-up calls)."""
    for x in inputs[:20]:
        call(x)
    out = np.empty(len(inputs))
    for i, x in enumerate(inputs):
        start = time.perf_counter()
        call(x)
        out[i] = time.perf_counter() - start
    return out * 1e6


def _once(call, x) -> float:
    """Microseconds of one call(x), no warm-up (a first read)."""
    start = time.perf_counter()
    call(x)
    return (time.perf_counter() - start) * 1e6


def _quantiles(us: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(np.percentile(us, q)) for q in (50, 99, 99.9))


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _native(dictionary_path: Path, items: np.ndarray, collection_path: Path) -> dict[str, tuple]:
    """Build and run bench_latency; {measure: (p50, p99, p99.9)} and "batch": items/s."""
    cmake, ninja = _tool("cmake"), _tool("ninja")  # the venv's (as the tests use), else the PATH's
    if cmake is None:
        raise SystemExit("bench_single_item: cmake not found (pip install cmake ninja)")
    build = ROOT / "build" / ("bench-latency" if ninja else "bench-latency-make")
    generator = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []
    subprocess.run([cmake, "-S", str(ROOT / "benchmarks" / "latency"), "-B", str(build), *generator,
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "-j", "2"], check=True, capture_output=True)
    raw = dictionary_path.with_suffix(".f32")
    np.ascontiguousarray(items, dtype="<f4").tofile(raw)
    result = subprocess.run([str(build / "bench_latency"), str(dictionary_path), str(raw), str(items.shape[1]),
                             str(collection_path)], check=True, capture_output=True, text=True)
    out: dict[str, tuple] = {}
    for line in result.stdout.splitlines():
        name, *values = line.split()
        out[name] = tuple(float(v) for v in values)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--items", type=int, default=2000, help="single-item calls timed")
    parser.add_argument("--batch", type=int, default=20000, help="items of the batch run")
    args = parse_args(parser, argv, quick={"k": 128, "d": 128, "items": 200, "batch": 1000})
    rng = np.random.default_rng(0)
    train = clustered(rng, 8000, args.d)
    dictionary = smic.Dictionary.fit(train, n_atoms=args.k, n_iter=3)
    new = clustered(rng, max(args.items, args.batch), args.d)
    singles = list(new[: args.items])
    python = {"encode": _timed(dictionary.encode, singles)}
    coded = [dictionary.encode(e) for e in singles]
    python["decode"] = _timed(dictionary.decode, coded)
    atoms = np.ascontiguousarray(dictionary.atoms)
    floor = _timed(lambda x: atoms @ x, singles)
    scratch = tempfile.TemporaryDirectory()  # removed when the run ends
    folder = Path(scratch.name)
    start = time.perf_counter()
    smic.compress(new[: args.batch], folder / "batch.smic", dictionary=dictionary, n_threads=1)
    batch = time.perf_counter() - start
    col = smic.open(folder / "batch.smic", dictionary=dictionary)
    python["item"] = _timed(col.__getitem__, [(i * 7919) % args.batch for i in range(args.items)])
    fresh = smic.open(folder / "batch.smic", dictionary=dictionary)
    chunk = fresh._core.chunk_size
    firsts = [min(args.batch - 1, c * chunk + (c * 7919) % chunk) for c in range(-(-args.batch // chunk))]
    python["item_cold"] = np.array([_once(fresh.__getitem__, i) for i in firsts])
    dictionary.save(folder / "d.smicd")
    native = _native(folder / "d.smicd", new[: args.items], folder / "batch.smic")

    print(f"# one item, K={args.k} d={args.d}, one thread; {machine()}")
    print(f"numpy float32 D @ x (floor): p50 / p99 / p99.9 = "
          "{:.1f} / {:.1f} / {:.1f} µs".format(*_quantiles(floor)))
    print("| µs, p50 / p99 / p99.9 | C++ | C ABI | Python |")
    print("|---|---|---|---|")
    fmt = "{:.1f} / {:.1f} / {:.1f}".format
    for name, label in (("encode", "encode one item"), ("decode", "decode one item's bytes"),
                        ("item", "read item i of an open collection (warm chunks)"),
                        ("item_cold", "first read in a chunk (decodes the chunk)")):
        c_column = fmt(*native[f"c_{name}"]) if f"c_{name}" in native else "–"
        print(f"| {label} | {fmt(*native[f'cpp_{name}'])} | {c_column} | {fmt(*_quantiles(python[name]))} |")
    print(f"| encode one item, every correlation (atom screening off; {'screened' if smic._core.atom_screening() else 'not screened'} above) | "
          f"{fmt(*native['cpp_encode_full'])} | – | – |")
    print(f"| batch: items/s, one thread | {native['batch'][0]:.0f} (coding only) | – | "
          f"{args.batch / batch:.0f} (compress, file written) |")


if __name__ == "__main__":
    main()
