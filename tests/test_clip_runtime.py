"""clip_onnx.runtime_info(): what `smic doctor` reports about ONNX Runtime. It must agree
with onnxruntime itself, flag onnxruntime + onnxruntime-gpu installed together, and never
raise, even when onnxruntime cannot be imported."""
from __future__ import annotations

import sys
from importlib import metadata

import pytest

ort = pytest.importorskip("onnxruntime")

from smic_fast.encode import clip_onnx  # noqa: E402
from smic_fast.encode.clip_onnx import runtime_info  # noqa: E402


def test_agrees_with_onnxruntime():
    info = runtime_info()
    assert info["onnxruntime"] == ort.__version__
    assert info["providers"] == ort.get_available_providers()
    assert "CPUExecutionProvider" in info["providers"]
    assert info["device"] == ort.get_device()
    assert info["gpu"] == ("CUDAExecutionProvider" in info["providers"]
                           or "TensorrtExecutionProvider" in info["providers"])
    # The distribution that provides the import is listed with its installed version.
    assert info["distributions"], info
    assert ort.__version__ in info["distributions"].values()


def test_both_distributions_installed_is_a_problem(monkeypatch):
    real = metadata.version

    def fake_version(name):
        if name == "onnxruntime-gpu":
            return "1.32.0"
        return real(name)

    monkeypatch.setattr(metadata, "version", fake_version)
    info = runtime_info()
    assert info["distributions"]["onnxruntime-gpu"] == "1.32.0"
    assert "onnxruntime" in info["distributions"]
    [problem] = info["problems"]
    assert "onnxruntime-gpu" in problem and "pip uninstall -y onnxruntime" in problem


def test_single_distribution_has_no_problem():
    info = runtime_info()
    if len(info["distributions"]) == 1:
        assert info["problems"] == []


def test_never_raises_without_onnxruntime(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` -> ImportError
    info = runtime_info()
    assert info["onnxruntime"] is None and info["providers"] == [] and info["gpu"] is False
    assert any("does not import" in p for p in info["problems"])


def test_never_raises_when_onnxruntime_is_broken(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(ort, "get_available_providers", broken)
    info = runtime_info()
    assert any("driver exploded" in p for p in info["problems"])
    assert info["gpu"] is False


def test_exported():
    assert "runtime_info" in clip_onnx.__all__
