"""Streaming write from C: peak memory and time of the C ABI's push writer (smic_writer_*) coding
the first N rows of a memory-mapped float32 .npy (d = 768) with a shared dictionary, against
Python's compress of the same memory map, side by side, for several N (issue 31, goal 3:
1M x 768 under 2 GB beyond the mapped input).

cpp/ is installed into build/bench-c-streaming/prefix of this checkout and
benchmarks/c/stream_write.c built against it. Each
measurement is one fresh process; from the point where the input is mapped and the dictionary
loaded, VmHWM is restarted (/proc/self/clear_refs) and *peak beyond input* = VmHWM - the RSS at
that point - the input's pages resident at the end (the C program drops each batch's pages
once the writer has copied them; Python's keep them, which the subtraction removes). The two
files must be byte-identical (checked). Data and dictionary: bench_scale.py's (same folder).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_c_streaming.py \\
        --folder /tmp/smic-scale --sizes 10000 100000 200000 1000000
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from _common import QUICK_FOLDER, parse_args

ROOT = Path(__file__).resolve().parents[1]

PYTHON_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import smic_fast as smic

    def status_kb(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    def mapped_kb(path):
        total, inside = 0, False
        for line in open("/proc/self/smaps"):
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and ":" in head[3]:
                inside = len(head) >= 6 and head[5] == path
            elif inside and head[0] == "Rss:":
                total += int(head[1])
        return total

    npy, n, dictionary, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    E = np.load(npy, mmap_mode="r")[:n]
    D = smic.Dictionary.load(dictionary)
    base = status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = time.perf_counter()
    smic.compress(E, out, dictionary=D)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "base_kb": base, "hwm_kb": status_kb("VmHWM"),
                      "input_kb": mapped_kb(npy)}))
""")


def run(command: list[str]) -> dict:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def build() -> Path:
    """cpp/ installed into build/bench-c-streaming/prefix of this checkout (like bench_single_item's
    build: a build folder shared by two checkouts would hold another source tree's CMake cache),
    stream_write.c built against the installed library."""
    base = ROOT / "build" / "bench-c-streaming"
    prefix, build_dir, program = base / "prefix", base / "cmake", base / "stream_write"
    cmake = shutil.which("cmake") or "cmake"
    for args in (["-S", str(ROOT / "cpp"), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                  f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DSMIC_INSTALL_CPP=ON"],
                 ["--build", str(build_dir), "-j", "2"], ["--install", str(build_dir)]):
        step = subprocess.run([cmake, *args], capture_output=True, text=True)
        if step.returncode != 0:
            raise SystemExit(f"cmake {' '.join(args[:2])} failed:\n{step.stdout[-3000:]}\n{step.stderr[-3000:]}")
    (libdir,) = {p.parent for p in prefix.glob("lib*/libsmic_c.so")}
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror",
                    str(ROOT / "benchmarks" / "c" / "stream_write.c"), f"-I{prefix / 'include'}", f"-L{libdir}",
                    "-lsmic_c", f"-Wl,-rpath,{libdir}", "-o", str(program)], check=True)
    return program


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 200_000])
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/smic-scale"))
    parser.add_argument("--shared-k", type=int, default=1024)
    parser.add_argument("--train", type=int, default=20_000, help="items the shared dictionary learns from")
    args = parse_args(parser, argv, quick={
        "sizes": [1000, 2000], "d": 128, "folder": QUICK_FOLDER, "shared_k": 64, "train": 2000})
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import machine
    from bench_scale import prepare

    program = build()
    npy, shared = prepare(args.folder, max(args.sizes), args.d, args.train, args.shared_k)
    print(f"# streaming write, d={args.d}, float32 memory-mapped .npy, shared dictionary K={args.shared_k}; "
          f"{machine()}")
    print("| N | writer | time (s) | peak beyond input (MB) | B/item | input resident at end (MB) | C / Python peak |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for n in args.sizes:
        c_out, py_out = args.folder / f"stream_c_{n}.smic", args.folder / f"stream_py_{n}.smic"
        c = run([str(program), str(npy), str(n), str(shared), str(c_out)])
        py = run([sys.executable, "-c", PYTHON_CHILD, str(npy), str(n), str(shared), str(py_out)])
        assert c_out.read_bytes() == py_out.read_bytes(), f"N={n}: the C and Python files differ"
        peaks = {}
        for label, r in (("C smic_writer", c), ("Python compress", py)):
            peaks[label] = max(0, r["hwm_kb"] - r["base_kb"] - r["input_kb"]) * 1024
        for label, r in (("C smic_writer", c), ("Python compress", py)):
            ratio = f"{peaks['C smic_writer'] / peaks['Python compress']:.2f}" if label.startswith("C") else ""
            print(f"| {n:,} | {label} | {r['seconds']:.1f} | {peaks[label] / 2**20:.0f} | {peaks[label] / n:.0f} | "
                  f"{r['input_kb'] / 1024:.0f} | {ratio} |", flush=True)
        c_out.unlink()
        py_out.unlink()


if __name__ == "__main__":
    main()
