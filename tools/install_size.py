"""What an install of smic-fast weighs: each installed distribution and its size on disk.

    <venv>/bin/python tools/install_size.py

Run with the interpreter of a virtual environment that holds `pip install smic-fast` and
nothing else (make test-wheel does, for README "Install"). pip and setuptools, which every
fresh venv has, are left out of the total.
"""
from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

VENV_TOOLS = {"pip", "setuptools", "wheel"}


def size_of(dist: md.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def main() -> int:
    rows = sorted(((size_of(d), d.metadata["Name"], d.version) for d in md.distributions()
                   if d.metadata["Name"].lower() not in VENV_TOOLS), reverse=True)
    total = sum(size for size, _, _ in rows)
    print(f"pip install smic-fast: {len(rows)} distributions, {total / 2**20:.1f} MiB installed")
    for size, name, version in rows:
        print(f"  {size / 2**20:7.1f} MiB  {name} {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
