"""Typed users: `mypy --strict` passes on examples/ and on tests/typed_usage/public_api.py (a short
typed use of the public API whose assert_type lines pin the result types), reading smic_fast
from the installed package through its py.typed marker, as a user's project would; the typed
usage also runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TYPED_USAGE = ROOT / "tests" / "typed_usage" / "public_api.py"


def _mypy(tmp_path: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy comes with the [test] extra")
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
               "--config-file", str(ROOT / "pyproject.toml"), *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)


@pytest.mark.slow
def test_mypy_strict_passes_on_examples_and_the_typed_usage(tmp_path):
    result = _mypy(tmp_path, ROOT / "examples", TYPED_USAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in" in result.stdout


@pytest.mark.slow
def test_mypy_strict_catches_a_wrong_result_type(tmp_path):
    """The check has teeth: the same typed usage with one pinned type changed fails."""
    wrong = tmp_path / "wrong_usage.py"
    text = TYPED_USAGE.read_text()
    assert "assert_type(coded, bytes)" in text
    wrong.write_text(text.replace("assert_type(coded, bytes)", "assert_type(coded, str)"))
    result = _mypy(tmp_path, wrong)
    assert result.returncode == 1, result.stdout
    assert 'Expression is of type "bytes", not "str"' in result.stdout


def test_the_typed_usage_runs(tmp_path):
    result = subprocess.run([sys.executable, str(TYPED_USAGE)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the typed public API ran" in result.stdout
