"""Shared fixtures."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def smic_home(tmp_path_factory):
    """The cache folder ($SMIC_HOME layout) that the CLIP tests share, with the tiny model's
    open_clip config registered (nothing exported yet). Skips without open_clip."""
    pytest.importorskip("open_clip")
    from pathlib import Path

    from smic_fast.clip_models import register_model_config

    register_model_config(Path(__file__).parent / "data" / "tiny.json")
    return tmp_path_factory.getbasetemp() / "smic_home"


@pytest.fixture(scope="session")
def tiny_clip_home(tmp_path_factory):
    """A cache ($SMIC_HOME layout) holding the tiny random CLIP model's image and text towers
    (exported once per session; the folder is the one test_clip_encoder uses, so its export is
    reused). Skips when the [export] extra (torch, open_clip) is missing."""
    pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from pathlib import Path

    from smic_fast.clip_export import export_clip
    from smic_fast.clip_models import register_model_config
    from smic_fast.text_tower import export_text_tower

    register_model_config(Path(__file__).parent / "data" / "tiny.json")
    home = tmp_path_factory.getbasetemp() / "smic_home"
    export_clip("tiny", cache=home)
    export_text_tower("tiny", cache=home)
    return home
