"""Shared fixtures.

Two tiny CLIP models, both 32-d with 64-pixel images (``tests/data/tiny.json``):

* ``tiny_clip_home``: built with the ``onnx`` package alone (:mod:`tiny_onnx`), for every test
  that only *uses* a model (CLI, encoder, search, labels, service). It needs no torch, so these
  tests run against the installed wheel too, and it takes a second to build.
* ``exported_tiny_home`` / ``smic_home``: open_clip's tiny random model exported with torch, for
  the tests of the export itself and of the ONNX graph against PyTorch (the oracle tests); they
  skip without the ``[export]`` extra.

To check what runs where users run, hide packages as if they were not installed
(``tests/without/sitecustomize.py``)::

    PYTHONPATH=tests/without SMIC_TEST_WITHOUT=torch,torchvision,open_clip .venv/bin/python -m pytest tests -rs
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

TINY_CONFIG = Path(__file__).parent / "data" / "tiny.json"


def pytest_report_header(config) -> list[str]:
    hidden = os.environ.get("SMIC_TEST_WITHOUT", "")
    return [f"hidden as if not installed (SMIC_TEST_WITHOUT): {hidden}"] if hidden else []


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tiny_clip_home(tmp_path_factory) -> Path:
    """A cache ($SMIC_HOME layout) holding the tiny model's image tower, text tower and
    tokenizer merges, written with onnx alone (:func:`tiny_onnx.write_tiny_home`: seeded random
    weights, the exporters' file names and metadata). Skips only without onnx."""
    pytest.importorskip("onnx")
    from tiny_onnx import write_tiny_home

    home = tmp_path_factory.getbasetemp() / "tiny_onnx_home"
    write_tiny_home(home)
    return home


@pytest.fixture(scope="session")
def smic_home(tmp_path_factory) -> Path:
    """The cache folder ($SMIC_HOME layout) that the export tests share, with the tiny model's
    open_clip config registered (nothing exported yet). Skips without open_clip."""
    pytest.importorskip("open_clip")
    from smic_fast.encode.clip_models import register_model_config

    register_model_config(TINY_CONFIG)
    return tmp_path_factory.getbasetemp() / "smic_home"


@pytest.fixture(scope="session")
def exported_tiny_home(smic_home) -> Path:
    """`smic_home` with open_clip's tiny random model's image and text towers exported (once per
    session), for the oracle tests that compare them with PyTorch. Skips when the [export]
    extra (torch, open_clip) is missing."""
    pytest.importorskip("torch")
    from smic_fast.encode.clip_export import export_clip
    from smic_fast.encode.text_tower import export_text_tower

    export_clip("tiny", cache=smic_home)
    export_text_tower("tiny", cache=smic_home)
    return smic_home
