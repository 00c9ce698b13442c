"""Generate python/smic_fast/_core.pyi, the type stub of the compiled module smic_fast._core.

    python tools/stubgen.py            # write the stub into python/smic_fast/ (make stubs)
    python tools/stubgen.py --check    # exit 1 with a diff when the committed stub is stale

Runs pybind11-stubgen on the *installed* smic_fast._core of this interpreter, so build and
install first (make stubs does both). The stub is generated, never edited by hand: the
signatures come from the binding (src/register_*.cpp); change those and regenerate.
tests/test_stubs.py runs --check and mypy.stubtest on every `make test`.
"""
from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "python" / "smic_fast" / "_core.pyi"
# --exit-code: an annotation pybind11-stubgen cannot express fails the generation instead of
# leaving `...` in the stub.
STUBGEN_ARGS = ["smic_fast._core", "--exit-code"]


def generate() -> str:
    """The stub text pybind11-stubgen writes for the installed smic_fast._core."""
    with tempfile.TemporaryDirectory() as out:
        # Run outside the checkout, so the installed package is the one imported.
        result = subprocess.run([sys.executable, "-m", "pybind11_stubgen", *STUBGEN_ARGS, "-o", out],
                                cwd=out, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"pybind11-stubgen failed:\n{result.stdout}{result.stderr}")
        return (Path(out) / "smic_fast" / "_core.pyi").read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed stub instead of writing it; exit 1 on a difference")
    args = parser.parse_args(argv)
    fresh = generate()
    if not args.check:
        COMMITTED.write_text(fresh)
        print(f"wrote {COMMITTED.relative_to(ROOT)} ({len(fresh.splitlines())} lines)")
        return 0
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    if committed == fresh:
        print(f"{COMMITTED.relative_to(ROOT)} matches a fresh generation")
        return 0
    sys.stdout.writelines(difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True),
                                               "committed _core.pyi", "fresh pybind11-stubgen"))
    print("\nthe committed stub is stale: run `make stubs` and commit python/smic_fast/_core.pyi")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
