"""One version: the SMIC_VERSION_* macros of cpp/include/smic/smic.h are the only place it is
written. The wheel's metadata (pyproject.toml reads them), smic_fast.__version__ (from the
compiled core), `smic --version`, the installed header, the CMake package's version file and
the C library's smic_version_string() all say the same."""
from __future__ import annotations

import ctypes
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import smic_fast

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(smic_fast.__file__).parent


def header_version(header: Path) -> str:
    text = header.read_text()
    parts = [re.search(rf"^#define SMIC_VERSION_{part} (\d+)$", text, re.M) for part in ("MAJOR", "MINOR", "PATCH")]
    assert all(parts), f"SMIC_VERSION_* macros not found in {header}"
    return ".".join(match.group(1) for match in parts)


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    source = project["tool"]["scikit-build"]["metadata"]["version"]
    assert source["input"] == "cpp/include/smic/smic.h"
    # No other file of the package spells a version out.
    for path in (ROOT / "python" / "smic_fast").rglob("*.py"):
        assert not re.search(r"""__version__\s*(:\s*str\s*)?=\s*["']""", path.read_text()), path


def test_every_version_agrees():
    expected = header_version(ROOT / "cpp" / "include" / "smic" / "smic.h")
    assert re.fullmatch(r"\d+\.\d+\.\d+", expected)
    versions = {
        "wheel metadata": importlib.metadata.version("smic-fast"),
        "smic_fast.__version__": smic_fast.__version__,
        "installed smic/smic.h": header_version(PACKAGE / "include" / "smic" / "smic.h"),
    }
    cli = subprocess.run([sys.executable, "-m", "smic_fast", "--version"], capture_output=True, text=True,
                         timeout=120)
    versions["smic --version"] = cli.stdout.strip().removeprefix("smic-fast ")
    config = (PACKAGE / "lib" / "cmake" / "smic" / "smicConfigVersion.cmake").read_text()
    versions["smicConfigVersion.cmake"] = re.search(r'set\(PACKAGE_VERSION "([^"]+)"\)', config).group(1)
    library = ctypes.CDLL(str(PACKAGE / "lib" / "libsmic_c.so"))
    library.smic_version_string.restype = ctypes.c_char_p
    versions["libsmic_c smic_version_string()"] = library.smic_version_string().decode()
    assert versions == dict.fromkeys(versions, expected)
