"""Missing optional modules (the extras of pyproject.toml). A command that needs one says which
extra to install in one line, exits 1 and does so before any work; a command that needs none
runs without any. Each case runs `smic` in a subprocess where some modules are unimportable
(``sys.modules[name] = None``: ``import name`` then fails as for an uninstalled module) and
where the first step of the command's work is replaced by a function that stops the process
with "WORK STARTED", so a check that comes too late fails the test."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import smic_fast as smic
from smic_fast._extras import EXTRAS, MissingExtraError, require

TINY = Path(__file__).parent / "data" / "tiny.json"
# Every optional module smic_fast imports, with the ones they import in turn.
ALL_OPTIONAL = sorted({*(m for mods in EXTRAS.values() for m in mods), "torchvision", "accelerate", "sklearn",
                       "skimage", "safetensors", "huggingface_hub"})

WRAPPER = """
import importlib, sys
blocked, forbidden = sys.argv[1], sys.argv[2]
for name in filter(None, blocked.split(",")):
    sys.modules[name] = None
def work_started(*args, **kwargs):
    raise SystemExit("WORK STARTED before the extras were checked")
for target in filter(None, forbidden.split(",")):
    module, attr = target.split(":")
    setattr(importlib.import_module(module), attr, work_started)
from smic_fast.cli import main
sys.exit(main(sys.argv[3:]))
"""


def smic_without(blocked, *args, forbid=(), env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`smic ARGS` with the `blocked` modules unimportable and the `forbid` functions
    ("module:attribute") stopping the process."""
    command = [sys.executable, "-c", WRAPPER, ",".join(blocked), ",".join(forbid), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ))


def assert_names_extra(result: subprocess.CompletedProcess, command: str, extra: str, module: str) -> None:
    """One line that names `module` (blocked) and `extra`, exit 1. Where another module of the
    extra is not installed either (torch, without the [export] extra), the check may meet that
    one first: then the line names a module that is missing."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    missing = {module, *(m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None)}
    assert lines[0].startswith(f"smic {command}: ") and any(m in lines[0] for m in missing), lines[0]
    assert lines[0].endswith(f"pip install 'smic-fast[{extra}]'"), lines[0]
    assert result.stdout == ""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("extras")
    E = np.random.default_rng(3).standard_normal((40, 16)).astype(np.float32)
    np.save(root / "e.npy", E)
    smic.compress(E, root / "c.smic", n_atoms=8, n_nonzero=2)
    return {"root": root, "embeddings": root / "e.npy", "collection": root / "c.smic"}


# ------------------------------------------------------------------------------ each command's extra
EVAL_CASES = [  # (blocked module, extra arguments)
    ("matplotlib", ()),
    ("faiss", ()),  # the default methods include FAISS PQ
    ("diffusers", ("--generator", "no-such-folder")),
    ("transformers", ("--generator", "no-such-folder")),
]


@pytest.mark.parametrize("module, more", EVAL_CASES)
def test_eval_names_its_extra_before_the_sweep(files, tmp_path, module, more):
    extra = "eval" if module in EXTRAS["eval"] else "generate"
    result = smic_without([module], "eval", files["embeddings"], "--output", tmp_path / "report", "--quick", *more,
                          forbid=["smic_fast.evaluation:run_sweep"])
    assert_names_extra(result, "eval", extra, module)
    assert not (tmp_path / "report").exists() and not list(tmp_path.glob(".smic-eval-*"))


def test_eval_without_faiss_runs_the_other_methods(files, tmp_path):
    result = smic_without(["faiss"], "eval", files["embeddings"], "--output", tmp_path / "report", "--quick",
                          "--methods", "smic,scalar", "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "index.html").is_file() and json.loads(result.stdout)["points"] > 0


@pytest.mark.parametrize("command", ["export-clip", "export-text"])
@pytest.mark.parametrize("module", ["torch", "open_clip", "onnx", "onnxscript"])
def test_export_names_its_extra_before_loading_the_model(tmp_path, command, module):
    result = smic_without([module], command, "--model", "tiny", "--model-config", TINY, "-o", tmp_path / "m.onnx",
                          "--cache-dir", tmp_path / "cache", forbid=["smic_fast.encode.clip_export:load_open_clip_model"])
    assert_names_extra(result, command, "export", module)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("module", EXTRAS["generate"])
def test_decompress_images_names_its_extra_before_decoding(files, tmp_path, module):
    out = tmp_path / "e.npy"
    result = smic_without([module], "decompress", files["collection"], "--embeddings", out, "--images",
                          tmp_path / "images", "--generator", tmp_path / "no-such-folder", forbid=["smic_fast:open"])
    assert_names_extra(result, "decompress", "generate", module)
    assert not out.exists() and not (tmp_path / "images").exists()


@pytest.mark.parametrize("module", EXTRAS["ray"])
def test_compress_ray_names_its_extra_before_planning(files, tmp_path, module):
    result = smic_without([module], "compress", files["root"], "-o", tmp_path / "x.smic", "--ray",
                          forbid=["smic_fast.distributed:plan_shards"])
    assert_names_extra(result, "compress", "ray", module)
    assert not (tmp_path / "x.smic.d").exists()


# ------------------------------------------------------------------------------ commands needing no extra
def test_core_commands_need_no_extra(files, tmp_path):
    collection, embeddings = files["collection"], tmp_path / "d.npy"
    for args in (("info", collection), ("decompress", collection, "--embeddings", embeddings),
                 ("explain", collection, "0", "--position"),
                 ("dictionary", "fit", files["embeddings"], "-o", tmp_path / "d.smicd", "--atoms", "8")):
        result = smic_without(ALL_OPTIONAL, *args)
        assert result.returncode == 0, (args, result.stderr)
    np.testing.assert_array_equal(np.load(embeddings), smic.open(collection).embeddings())
    assert smic.Dictionary.load(tmp_path / "d.smicd").n_atoms == 8


def test_photos_and_atom_labels_need_no_extra(tiny_clip_home, tmp_path):
    """compress, append, atoms and explain --labels run ONNX Runtime only (the towers exported
    beforehand)."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(13):
        Image.fromarray(rng.integers(0, 255, (48 + i, 64, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    (photos / "p12.png").rename(tmp_path / "later.png")
    (tmp_path / "labels.txt").write_text("a cat\na dog\nthe sea\na rocket\n", encoding="utf-8")
    env = {**os.environ, "SMIC_HOME": str(tiny_clip_home)}
    out = tmp_path / "p.smic"
    result = smic_without(ALL_OPTIONAL, "compress", photos, "-o", out, "--model", "tiny", "--atoms", "4", env=env)
    assert result.returncode == 0, result.stderr
    assert len(smic.open(out)) == 12
    result = smic_without(ALL_OPTIONAL, "append", out, tmp_path / "later.png", env=env)
    assert result.returncode == 0, result.stderr
    assert len(smic.open(out)) == 13
    result = smic_without(ALL_OPTIONAL, "atoms", out, "--labels", tmp_path / "labels.txt", "--model", "tiny",
                          "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["atoms"]) == smic.open(out).dictionary.n_atoms
    result = smic_without(ALL_OPTIONAL, "explain", out, "p3.png", "--labels", tmp_path / "labels.txt", "--model",
                          "tiny", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "p3.png"


def test_doctor_lists_each_package_once(tmp_path):
    env = {**os.environ, "SMIC_HOME": str(tmp_path)}
    result = smic_without(ALL_OPTIONAL, "doctor", env=env)
    assert result.returncode == 0, result.stderr
    keys = [line.strip().split("  ")[0] for line in result.stdout.splitlines()[1:]]
    assert keys.count("onnxruntime") == 1 and len(keys) == len(set(keys)), keys
    report = json.loads(smic_without([], "doctor", "--json", env=env).stdout)
    assert "onnxruntime" not in report["packages"] and report["onnxruntime"]["onnxruntime"]


# ------------------------------------------------------------------------------ the check itself
def test_require_names_module_reason_and_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingExtraError) as info:
        require("eval", "the baseline", ("faiss",))
    message = str(info.value)
    assert info.value.extra == "eval" and info.value.name == "faiss" and "\n" not in message
    assert message.startswith("faiss is needed for the baseline (") and message.endswith("'smic-fast[eval]'")
    assert isinstance(info.value, ImportError)  # callers catching ImportError still do
    require("eval", "numpy", ("numpy",))  # present: no error
    with pytest.raises(ValueError, match="unknown extra"):
        require("gpu", "anything")


def test_extras_match_pyproject():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(declared)
    names = {"open_clip": "open_clip_torch", "faiss": "faiss-cpu"}  # import name -> distribution
    for extra, modules in EXTRAS.items():
        distributions = " ".join(declared[extra])
        for module in modules:
            assert names.get(module, module) in distributions, (extra, module)
