"""Registry of CLIP model pairings, where exported ONNX models are cached, and the errors of
the encoder.

A pairing names an open_clip architecture, the pretrained tag whose weights (and whose
preprocessing) go with it, the embedding dimension, and the diffusers generator that was
trained on that CLIP's image embeddings (see DESIGN.md). Architectures not listed here can
still be used by their open_clip name (``ViT-B-16``) with an explicit tag or checkpoint.

The ``tiny`` pairing is a random-weight model for tests: its architecture is not built into
open_clip but registered from a small JSON config (``tests/data/tiny.json``) with
:func:`register_model_config`, so export and encoding run offline in seconds.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PAIRINGS",
    "ModelNotFoundError",
    "Pairing",
    "cache_dir",
    "export_dir",
    "get_pairing",
    "model_label",
    "register_model_config",
]


class ModelNotFoundError(FileNotFoundError):
    """Weights or an exported ONNX model are not on this machine (and could not be fetched).

    The message names the file that is needed and the flag or path that supplies it."""


@dataclass(frozen=True)
class Pairing:
    name: str
    arch: str  # open_clip architecture
    pretrained: str | None  # open_clip pretrained tag; None: random weights (tests only)
    dim: int
    generator: str | None  # diffusers model id, None: embeddings only


PAIRINGS: dict[str, Pairing] = {
    p.name: p
    for p in (
        Pairing("default", "ViT-H-14", "laion2b_s32b_b79k", 1024, "stabilityai/stable-diffusion-2-1-unclip"),
        Pairing("small", "ViT-L-14", "openai", 768, "stabilityai/stable-diffusion-2-1-unclip-small"),
        Pairing("kandinsky", "ViT-bigG-14", "laion2b_s39b_b160k", 1280,
                "kandinsky-community/kandinsky-2-2-decoder"),  # the decoder takes image embeddings
        Pairing("fast", "ViT-B-32", "openai", 512, None),
        Pairing("tiny", "tiny", None, 32, None),
    )
}


def get_pairing(name: str) -> Pairing | None:
    """The pairing called `name` ("default", "small", "kandinsky", "fast", "tiny"), or None."""
    return PAIRINGS.get(name)


def register_model_config(path: str | os.PathLike) -> list[str]:
    """Register open_clip model configs from a JSON file (its stem becomes the architecture
    name) or a folder of them; returns the architecture names it added. Needs open_clip."""
    from .._extras import require

    require("export", "registering an open_clip model config (--model-config)", ("open_clip",))
    import open_clip

    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f"model config {p} not found (pass an existing JSON file to --model-config)")
    names = [p.stem] if p.is_file() else sorted(f.stem for f in p.glob("*.json"))
    open_clip.add_model_config(p)
    return names


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where smic keeps exported models: `override`, else ``$SMIC_HOME``, else ~/.cache/smic."""
    if override is not None:
        return Path(override).expanduser()
    return Path(os.environ.get("SMIC_HOME") or Path.home() / ".cache" / "smic").expanduser()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def export_dir(arch: str, weights: str, opset: int, precision: str = "fp32",
               cache: str | os.PathLike | None = None) -> Path:
    """The cache folder of one export: ``<cache>/clip/<arch>--<weights>--opset<N>--<precision>``.

    `weights` is the pretrained tag, ``random-seed<N>`` or ``ckpt-<sha256 prefix>``."""
    key = f"{_slug(arch)}--{_slug(weights)}--opset{int(opset)}--{_slug(precision)}"
    return cache_dir(cache) / "clip" / key


def model_label(requested: str, metadata: dict[str, str]) -> str:
    """The name recorded in a collection's header: the pairing or architecture that was asked
    for, or, for an .onnx path, what its export metadata says (its pairing where one fits)."""
    if not (requested.endswith(".onnx") or os.sep in requested or os.path.exists(requested)):
        return requested
    arch, tag = metadata.get("arch"), metadata.get("pretrained") or None
    for pairing in PAIRINGS.values():
        if arch == pairing.arch and tag == pairing.pretrained:
            return pairing.name
    if arch:
        return f"{arch}/{tag}" if tag else arch
    return Path(requested).stem
