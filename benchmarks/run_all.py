"""Run every benchmark script here (bench_*.py), one process each, in name order; `--quick` runs
each in its CI-sized mode (seconds each). A script that cannot run on this machine (no CUDA GPU,
no external data) prints `SKIPPED <script>: reason` and is reported as skipped; a failure does
not stop the others, and the exit status is 1 if any failed. What `make bench` and
`make bench-quick` run:

    cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../.venv/bin/python run_all.py \\
        [--quick] [bench_omp ...]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each script's CI-sized mode")
    parser.add_argument("--list", action="store_true", help="print the scripts and exit")
    parser.add_argument("only", nargs="*", metavar="NAME", help="run only these (bench_omp or bench_omp.py)")
    args = parser.parse_args(argv)
    chosen = scripts()
    if args.only:
        wanted = {name.removesuffix(".py") for name in args.only}
        unknown = wanted - {p.stem for p in chosen}
        if unknown:
            parser.error(f"no such script: {', '.join(sorted(unknown))} (see --list)")
        chosen = [p for p in chosen if p.stem in wanted]
    if args.list:
        print("\n".join(p.name for p in chosen))
        return 0
    rows = []
    for path in chosen:
        command = [sys.executable, path.name] + (["--quick"] if args.quick else [])
        print(f"\n=== {' '.join(['python', *command[1:]])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        skipped = None
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith(f"SKIPPED {path.name}:"):
                skipped = line.split(":", 1)[1].strip()
        code = proc.wait()
        seconds = time.perf_counter() - start
        status = "failed (exit %d)" % code if code else ("skipped: " + skipped if skipped else "ok")
        rows.append((path.name, status, seconds))
    print("\n| script | result | seconds |\n|---|---|---|")
    for name, status, seconds in rows:
        print(f"| {name} | {status} | {seconds:.1f} |")
    failed = [name for name, status, _ in rows if status.startswith("failed")]
    if failed:
        print(f"\n{len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
