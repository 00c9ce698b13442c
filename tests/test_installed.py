"""The suite tests the package as installed (pip install . under make test, the repaired wheel
under make test-wheel), never the checkout's python/ directory; what is installed is the
package and nothing else. With SMIC_TEST_WHEEL=<path of a .whl> (make test-wheel), the
installed distribution must be that wheel: a manylinux tag and libgomp grafted in."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import smic_fast

ROOT = Path(__file__).resolve().parents[1]
DIST = importlib.metadata.distribution("smic-fast")
WHEEL = os.environ.get("SMIC_TEST_WHEEL")


def test_smic_fast_is_imported_from_the_installed_package_not_the_checkout():
    origin = Path(importlib.util.find_spec("smic_fast").origin).resolve()
    assert not origin.is_relative_to(ROOT / "python"), f"smic_fast imported from the checkout: {origin}"
    site = {Path(sysconfig.get_path(key)).resolve() for key in ("purelib", "platlib")}
    assert origin.parent.parent in site, (origin, site)
    assert origin.parent == Path(smic_fast.__file__).resolve().parent
    assert origin.parent == Path(str(DIST.locate_file("smic_fast"))).resolve()
    on_path = {Path(entry or ".").resolve() for entry in sys.path}
    assert (ROOT / "python").resolve() not in on_path


def installed_files() -> list[str]:
    """RECORD of the installed distribution, less the .pyc files pip compiles at install."""
    return [str(f) for f in DIST.files if not re.search(r"/__pycache__/[^/]+\.pyc$", str(f))]


def test_the_installed_files_are_the_package_only():
    files = installed_files()
    allowed = re.compile(r"^(smic_fast/|smic_fast\.libs/|smic_fast-[^/]+\.dist-info/|\.\./\.\./\.\./bin/smic$)")
    assert [f for f in files if not allowed.match(f)] == []
    bad = re.compile(r"(^|/)(tests?|benchmarks|examples|build|_skbuild|__pycache__)/|\.(cpp|cu|o|pyc)$|"
                     r"(^|/)CMakeLists\.txt$|CMakeCache|\.ninja")
    assert [f for f in files if bad.search(f)] == []
    # What the wheel is for: the module, its stub, the C/C++ package.
    names = set(files)
    for needed in ("smic_fast/py.typed", "smic_fast/_core.pyi", "smic_fast/include/smic/smic.h",
                   "smic_fast/lib/cmake/smic/smicConfig.cmake", "smic_fast/lib/libsmic_core.a"):
        assert needed in names, needed
    assert any(re.fullmatch(r"smic_fast/_core\.cpython-[^/]+\.so", f) for f in names)


@pytest.mark.skipif(not WHEEL, reason="make test-wheel sets SMIC_TEST_WHEEL to the repaired wheel")
def test_the_installed_distribution_is_the_repaired_wheel():
    wheel = Path(WHEEL)
    tag = re.fullmatch(r"smic_fast-([^-]+)-cp\d+-cp\d+-(manylinux_2_\d+_x86_64(\.[\w.]+)?)\.whl", wheel.name)
    assert tag, f"not a manylinux wheel: {wheel.name}"
    assert tag.group(1) == DIST.version
    assert "linux_x86_64" not in wheel.name.replace("manylinux_", "")
    installed_tags = {line.split(": ", 1)[1] for line in DIST.read_text("WHEEL").splitlines()
                      if line.startswith("Tag: ")}
    assert installed_tags and all(re.fullmatch(r"cp\d+-cp\d+-manylinux_2_\d+_x86_64", t) for t in installed_tags)
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {name for name in archive.namelist() if not name.endswith("/")}  # no folders
    installed = {f for f in installed_files() if not f.startswith("../")}
    dist_info = f"smic_fast-{DIST.version}.dist-info/"
    assert {f for f in in_wheel if not f.startswith(dist_info)} == \
        {f for f in installed if not f.startswith(dist_info)}
    grafted = [f for f in in_wheel if f.startswith("smic_fast.libs/")]
    assert any(Path(f).name.startswith("libgomp") for f in grafted), grafted
