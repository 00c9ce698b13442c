"""The package's house rules, checked on the installed package (issue 30):

- the layer contract of pyproject.toml ([tool.importlinter]) holds: nothing imports the command
  line, the services sit above the stores, the readers never import each other in a circle;
- every module imports alone, in a fresh interpreter (an import cycle hidden by import order
  fails here), and no library module pulls in ``smic_fast.cli`` when imported;
- no private name (``_x``) is imported from another module: what a module shares, it names
  publicly.
"""
from __future__ import annotations

import ast
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import smic_fast

PACKAGE = Path(smic_fast.__file__).parent
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
COMPILED = {"_core", "_cuda"}  # extension modules: private by name, the package's own core


def modules() -> list[str]:
    names = ["smic_fast"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="smic_fast."):
        if info.name.rsplit(".", 1)[-1] not in COMPILED and info.name != "smic_fast.__main__":  # runs the CLI
            names.append(info.name)
    return names


def test_layer_contract_holds(tmp_path):
    lint = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (the [test] extra has it)")
    result = subprocess.run([lint, str(PYPROJECT)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


_IMPORT_ALONE = """
import importlib, sys
name = sys.argv[1]
try:
    importlib.import_module(name)
except ModuleNotFoundError as exc:
    if not (exc.name or "").startswith("smic_fast"):
        print("SKIP", exc.name); sys.exit(0)   # an optional dependency this environment lacks
    raise
print("CLI" if "smic_fast.cli" in sys.modules else "OK")
"""


@pytest.mark.slow
def test_every_module_imports_alone_and_never_pulls_in_the_cli(tmp_path):
    failures, skipped = [], []
    for name in modules():
        result = subprocess.run([sys.executable, "-c", _IMPORT_ALONE, name], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        out = result.stdout.strip().splitlines()[-1:] or [""]
        if result.returncode != 0:
            failures.append(f"{name}: {result.stderr.strip().splitlines()[-1:]}")
        elif out[0].startswith("SKIP"):
            skipped.append(name)
        elif out[0] == "CLI" and not name.startswith("smic_fast.cli"):
            failures.append(f"{name} imports smic_fast.cli")
    assert not failures, "\n".join(failures)
    assert len(skipped) < len(modules()) // 4, skipped  # most modules were really tried


def _private_imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith("smic_fast"):
            continue
        for alias in node.names:
            name = alias.name
            if name.startswith("_") and not name.startswith("__") and name not in COMPILED and target != module:
                found.append(f"{module}:{node.lineno} imports {name} from {target}")
    return found


def test_no_private_name_crosses_a_module():
    crossing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if path.name == "__init__.py" else relative.parts)
        crossing += _private_imports(path, module)
    assert not crossing, "\n".join(crossing)
