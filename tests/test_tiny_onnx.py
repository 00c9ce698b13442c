"""The test model built with onnx alone (tests/tiny_onnx.py): the same cache layout, graph
interface and metadata as the tiny model the exporters write with torch (oracle: that export),
deterministic, buildable and usable with torch and open_clip hidden (tests/without)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tiny_onnx import merges_text, write_tiny_home  # noqa: E402

TESTS = Path(__file__).parent


def _signature(path: Path) -> tuple:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ([(i.name, i.type, i.shape) for i in session.get_inputs()],
            [(o.name, o.type, o.shape) for o in session.get_outputs()])


def _metadata(path: Path) -> dict[str, str]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def test_same_layout_interface_and_metadata_as_the_exporters(tiny_clip_home, exported_tiny_home):
    ours = sorted(p.relative_to(tiny_clip_home) for p in tiny_clip_home.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(exported_tiny_home) for p in (exported_tiny_home / "clip").rglob("*")
                    if p.is_file() and p.parent.name.startswith("tiny--random-seed0--opset18--fp32"))
    assert ours == theirs and len(ours) == 3, (ours, theirs)
    for name in ("model.onnx", "text.onnx"):
        mine, real = tiny_clip_home / ours[0].parent / name, exported_tiny_home / ours[0].parent / name
        assert _signature(mine) == _signature(real), name
        meta, reference = _metadata(mine), _metadata(real)
        # The exporters' PyTorch check (check_*) is the only thing a model without torch lacks.
        assert set(meta) == {k for k in reference if not k.startswith("smic.check_")}, name
        for key in set(meta) - {"smic.exporter", "smic.fuse", "smic.fused"}:
            assert meta[key] == reference[key], (name, key)


def test_deterministic_and_seeded(tmp_path):
    first = write_tiny_home(tmp_path / "a")
    again = write_tiny_home(tmp_path / "b")
    other = write_tiny_home(tmp_path / "c", seed=1)
    files = sorted(p.name for p in first.iterdir())
    assert files == ["bpe_simple_vocab_16e6.txt.gz", "model.onnx", "text.onnx"]  # no temporary left
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert (first / "model.onnx").read_bytes() != (other / "model.onnx").read_bytes()
    assert other.name == "tiny--random-seed1--opset18--fp32"
    lines = merges_text().splitlines()
    assert lines[0].startswith("#version") and len(lines) == 1 + 49152 - 258 and len(set(lines)) == len(lines)


BUILD_AND_USE = """
import importlib.util, sys
import numpy as np
from PIL import Image
for name in ("torch", "open_clip"):
    assert importlib.util.find_spec(name) is None, name
    try:
        __import__(name)
    except ModuleNotFoundError:
        pass
    else:
        raise AssertionError(name + " imported")
from tiny_onnx import write_tiny_home
import smic_fast
from smic_fast.encode.text_tower import TextEncoder
home = sys.argv[1]
write_tiny_home(home)
rng = np.random.default_rng(0)
images = [Image.fromarray(rng.integers(0, 255, (50 + 9 * i, 70, 3), dtype=np.uint8)) for i in range(4)]
E = smic_fast.ClipEncoder("tiny", cache=home).encode_images(images)
T = TextEncoder("tiny", cache=home).encode(["a cat", "a dog", "the sea"])
for X in (E, T):
    assert np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert (X @ X.T)[~np.eye(len(X), dtype=bool)].max() < 0.999
print("torch" in sys.modules, "open_clip" in sys.modules, E.shape, T.shape)
"""


def test_built_and_used_with_torch_and_open_clip_hidden(tmp_path):
    """In a subprocess where torch and open_clip are hidden as if not installed: the model is
    written, both towers load, give unit rows and tell different inputs apart."""
    path = [str(TESTS / "without"), str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path),
           "SMIC_TEST_WITHOUT": "torch,torchvision,open_clip"}
    result = subprocess.run([sys.executable, "-c", BUILD_AND_USE, str(tmp_path / "home")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "(4,", "32)", "(3,", "32)"]
