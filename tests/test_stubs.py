"""Type information of the compiled module: python/smic_fast/_core.pyi is what pybind11-stubgen
writes for the installed smic_fast._core (make stubs), the package ships it with py.typed, and
mypy.stubtest finds no difference between the stub and the module."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import smic_fast

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(smic_fast.__file__).parent
COMMITTED = ROOT / "python" / "smic_fast" / "_core.pyi"


def test_the_installed_package_ships_the_committed_stub_and_py_typed():
    assert (PACKAGE / "py.typed").is_file(), "py.typed missing: mypy would ignore smic_fast's types"
    assert (PACKAGE / "_core.pyi").read_text() == COMMITTED.read_text()


def test_committed_stub_matches_a_fresh_generation(tmp_path):
    pytest.importorskip("pybind11_stubgen", reason="pybind11-stubgen comes with the [test] extra")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "stubgen.py"), "--check"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubtest_finds_no_difference_between_stub_and_module(tmp_path):
    pytest.importorskip("mypy", reason="mypy comes with the [test] extra")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "smic_fast._core",
         "--allowlist", str(ROOT / "tests" / "stubtest_allowlist.txt")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 1 module" in result.stdout


def test_stub_describes_the_module_precisely():
    """The stub is worth having only if it is specific: the classes and functions of the
    module are there with argument names, and optional dictionaries say `| None`."""
    stub = COMMITTED.read_text()
    public = [name for name in dir(smic_fast._core) if not name.startswith("_")]
    missing = [name for name in public
               if f"def {name}(" not in stub and f"class {name}" not in stub and f"{name}: " not in stub]
    assert not missing, missing
    assert "def open(path: str, dictionary: CodingDictionary | None = None) -> Collection" in stub
    assert "def omp(" in stub and "n_nonzero:" in stub
