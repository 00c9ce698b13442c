"""What a diffusers generator folder holds, read from its JSON configs only (no torch, no weights).

A generator is a saved diffusers pipeline conditioned on CLIP image embeddings:

* ``unclip``: Stable unCLIP, ``StableUnCLIPImg2ImgPipeline``; the embedding dimension is
  ``image_normalizer/config.json: embedding_dim`` (the UNet's class-embedding projection takes
  twice that: the embedding and its noise-level encoding).
* ``kandinsky``: the Kandinsky 2.2 decoder, ``KandinskyV22Pipeline``; the dimension is
  ``unet/config.json: encoder_hid_dim`` (its image projection).

:func:`read_generator_info` checks that the folder has every component the family needs (its
config and its weights file) and :func:`check_compatibility` that a collection's CLIP model goes
with the generator, both before any weights are loaded, so a wrong pairing or a half-copied
folder fails in milliseconds with a message that names the file or the two models.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..encode.clip_models import PAIRINGS, ModelNotFoundError, Pairing

__all__ = [
    "FAMILIES",
    "GeneratorError",
    "GeneratorInfo",
    "GeneratorMismatchError",
    "check_compatibility",
    "clip_pairing",
    "default_generator",
    "read_generator_info",
    "resolve_generator",
]


class GeneratorError(ValueError):
    """A generator folder is broken: a config is unreadable, of the wrong type or inconsistent."""


class GeneratorMismatchError(ValueError):
    """The collection's CLIP model does not go with the generator (dimension or family)."""


@dataclass(frozen=True)
class _Family:
    name: str
    title: str
    pipeline_classes: tuple[str, ...]
    components: tuple[str, ...]  # needed ones: each has a config and (models) a weights file
    schedulers: tuple[str, ...]  # components whose config is scheduler_config.json
    usual_size: int  # image side when the UNet config gives no sample_size


FAMILIES: dict[str, _Family] = {
    f.name: f for f in (
        _Family("unclip", "Stable unCLIP", ("StableUnCLIPImg2ImgPipeline",),
                ("unet", "vae", "scheduler", "image_normalizer", "image_noising_scheduler"),
                ("scheduler", "image_noising_scheduler"), 768),  # Stable Diffusion 2.1 unCLIP's training size
        _Family("kandinsky", "Kandinsky 2.2 decoder", ("KandinskyV22Pipeline",),
                ("unet", "scheduler", "movq"), ("scheduler",), 512),  # KandinskyV22Pipeline's own default
    )
}

# Known hub generators and their family (the family of a pairing's generator).
KNOWN_GENERATORS: dict[str, str] = {
    "stabilityai/stable-diffusion-2-1-unclip": "unclip",
    "stabilityai/stable-diffusion-2-1-unclip-small": "unclip",
    "kandinsky-community/kandinsky-2-2-decoder": "kandinsky",
}

_NOT_DECODERS = {
    "KandinskyV22PriorPipeline": "it is the Kandinsky 2.2 prior (text -> image embedding); image embeddings "
                                 "are decoded by kandinsky-community/kandinsky-2-2-decoder (KandinskyV22Pipeline)",
    "StableUnCLIPPipeline": "it is Stable unCLIP with a text prior; use the image-variation pipeline "
                            "(StableUnCLIPImg2ImgPipeline, e.g. stabilityai/stable-diffusion-2-1-unclip)",
}

_WEIGHT_NAMES = ("diffusion_pytorch_model", "model", "pytorch_model")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")


@dataclass(frozen=True)
class GeneratorInfo:
    """A generator folder as its configs describe it.

    ``dim``: the CLIP image-embedding dimension it is conditioned on; ``default_size``: the
    image side it was trained at (UNet sample size x autoencoder scale), or the family's usual
    size when ``unet/config.json`` gives no sample size (diffusers' default, ``null``); then
    ``size_note`` says so (empty otherwise)."""

    path: Path
    family: str
    pipeline_class: str
    dim: int
    default_size: int
    name: str = ""  # what the user asked for (hub id or path)
    configs: dict[str, dict] = field(default_factory=dict, repr=False, compare=False)
    size_note: str = field(default="", compare=False)

    @property
    def title(self) -> str:
        return FAMILIES[self.family].title

    def describe(self) -> str:
        return f"{self.name or self.path} ({self.title}, image embeddings of dim {self.dim})"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ModelNotFoundError(f"generator file {path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise GeneratorError(f"{path}: unreadable JSON ({error})") from error
    if not isinstance(data, dict):
        raise GeneratorError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _positive_int(config: dict, key: str, path: Path) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GeneratorError(f"{path}: {key!r} must be a positive integer, found {value!r}")
    return value


def _sample_side(unet: dict, path: Path) -> int | None:
    """The UNet's latent side: ``sample_size`` as an integer or a square [h, w] pair; None when
    it is absent, null (diffusers' default when a UNet is built without one) or not square."""
    value = unet.get("sample_size")
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 2:
        sides = [_positive_int({"sample_size": v}, "sample_size", path) for v in value]
        return sides[0] if sides[0] == sides[1] else None
    return _positive_int(unet, "sample_size", path)


def _has_weights(folder: Path) -> bool:
    for entry in folder.iterdir() if folder.is_dir() else ():
        name = entry.name
        if name.startswith(_WEIGHT_NAMES) and name.endswith(_WEIGHT_SUFFIXES):
            return True
    return False


def read_generator_info(folder: str | os.PathLike, name: str = "") -> GeneratorInfo:
    """Describe the generator saved in `folder` from its JSON files only.

    Raises:
        ModelNotFoundError: the folder, ``model_index.json``, a needed component's config or its
            weights file is absent (the message names the path).
        GeneratorError: a config is unreadable or inconsistent, or the pipeline is not one that
            decodes image embeddings.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ModelNotFoundError(f"generator folder {root} not found (save a diffusers pipeline there, "
                                 "or pass a hub name whose files are in the Hugging Face cache)")
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelNotFoundError(f"{root} is not a diffusers pipeline folder: {index_path} is missing")
    index = _read_json(index_path)
    cls = index.get("_class_name")
    if cls in _NOT_DECODERS:
        raise GeneratorError(f"{root} holds a {cls}: {_NOT_DECODERS[cls]}")
    family = next((f for f in FAMILIES.values() if cls in f.pipeline_classes), None)
    if family is None:
        known = sorted(c for f in FAMILIES.values() for c in f.pipeline_classes)
        raise GeneratorError(f"{index_path}: pipeline {cls!r} does not decode CLIP image embeddings; "
                             f"supported: {', '.join(known)}")
    configs: dict[str, dict] = {}
    for component in family.components:
        entry = index.get(component)
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise GeneratorError(f"{index_path}: component {component!r} must be [library, class], found {entry!r}")
        sub = root / component
        config_name = "scheduler_config.json" if component in family.schedulers else "config.json"
        configs[component] = _read_json(sub / config_name)
        if component not in family.schedulers and not _has_weights(sub):
            raise ModelNotFoundError(f"generator component {component!r} has no weights file in {sub} "
                                     "(expected diffusion_pytorch_model.safetensors or .bin)")
    unet_path = root / "unet" / "config.json"
    unet = configs["unet"]
    if family.name == "unclip":
        norm_path = root / "image_normalizer" / "config.json"
        dim = _positive_int(configs["image_normalizer"], "embedding_dim", norm_path)
        projected = _positive_int(unet, "projection_class_embeddings_input_dim", unet_path)
        if projected != 2 * dim:
            raise GeneratorError(f"{unet_path}: projection_class_embeddings_input_dim {projected} should be "
                                 f"twice the image normalizer's embedding_dim {dim}")
        scale = 2 ** (len(configs["vae"].get("block_out_channels") or [0]) - 1)
    else:
        dim = _positive_int(unet, "encoder_hid_dim", unet_path)
        if unet.get("encoder_hid_dim_type") != "image_proj":
            raise GeneratorError(f"{unet_path}: encoder_hid_dim_type must be 'image_proj' for a Kandinsky 2.2 "
                                 f"decoder, found {unet.get('encoder_hid_dim_type')!r}")
        movq_blocks = configs["movq"].get("block_out_channels") or [0]
        scale = 2 ** (len(movq_blocks) - 1)
    sample = _sample_side(unet, unet_path)
    if sample is not None:
        return GeneratorInfo(root, family.name, cls, dim, sample * scale, name or str(root), configs)
    given = unet.get("sample_size")
    what = "no sample_size" if given is None else f"a sample_size that is not square ({given!r})"
    note = (f"{unet_path} gives {what}: images are {family.usual_size}x{family.usual_size}, the usual size "
            f"of {family.title} (--size to change)")
    return GeneratorInfo(root, family.name, cls, dim, family.usual_size, name or str(root), configs, note)


# ------------------------------------------------------------------------------ finding a generator
def default_generator(model: str | None) -> str | None:
    """The generator paired with a collection's CLIP model (pairing or architecture name), if any."""
    pairing = clip_pairing(model)
    return pairing.generator if pairing else None


def _looks_like_path(name: str) -> bool:
    return (os.sep in name and not _is_repo_id(name)) or name.startswith((".", "~", "/")) or os.path.exists(name)


def _is_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not os.path.exists(name)


def resolve_generator(name_or_path: str | os.PathLike, *, allow_download: bool = False) -> Path:
    """The local folder of a generator: a path as given, or a hub id found in the Hugging Face
    cache (``HF_HOME``/``HF_HUB_CACHE``). Downloads only when `allow_download` is true."""
    name = os.fspath(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(name) or not _is_repo_id(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ModelNotFoundError(f"generator folder {path} not found (pass a saved diffusers pipeline "
                                     "folder or a hub id such as stabilityai/stable-diffusion-2-1-unclip)")
        return path
    try:
        if allow_download:
            from diffusers import DiffusionPipeline

            return Path(DiffusionPipeline.download(name))
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except ImportError as error:
        raise ImportError(f"loading generator {name} needs diffusers ({error}); "
                          "install 'smic-fast[generate]'") from error
    except Exception as error:  # huggingface_hub raises several kinds (LocalEntryNotFound, network)
        how = ("the download failed" if allow_download else
               "it is not in the Hugging Face cache and downloads are off")
        raise ModelNotFoundError(
            f"generator {name}: {how} ({type(error).__name__}: {error}). Download it where a hub is "
            f"reachable (`huggingface-cli download {name}`, then set HF_HOME to that cache), pass a local "
            "folder, or allow the download (--download / allow_download=True)") from error


# ------------------------------------------------------------------------------ compatibility
def clip_pairing(model: str | None) -> Pairing | None:
    """The pairing of a collection's ``model`` header: a pairing name or an open_clip architecture."""
    if not model:
        return None
    if model in PAIRINGS:
        return PAIRINGS[model]
    arch = model.split("/")[0]
    return next((p for p in PAIRINGS.values() if p.arch == arch), None)


def check_compatibility(model: str | None, dim: int, info: GeneratorInfo) -> list[str]:
    """Refuse a generator that cannot decode the collection's embeddings.

    `model` and `dim` are the collection header's ``model`` and ``dim``. The dimensions must be
    equal; when the model is a pairing whose generator is known (default, small: Stable unCLIP;
    kandinsky: Kandinsky 2.2), the generator must be of that family too. Returns notes (e.g.
    that the collection names no model, so only the dimension was checked).

    Raises:
        GeneratorMismatchError: naming the collection's model and the generator.
    """
    pairing = clip_pairing(model)
    what = f"CLIP model {model!r}" if model else "CLIP model (not recorded)"
    if pairing is not None:
        what += f" ({pairing.arch}, dim {dim})"
    else:
        what += f" (dim {dim})"
    if dim != info.dim:
        hint = f"; its generator is {pairing.generator}" if pairing and pairing.generator else ""
        raise GeneratorMismatchError(
            f"the collection's {what} does not match generator {info.describe()}: embedding dimensions "
            f"differ{hint}")
    notes: list[str] = []
    if pairing is None:
        notes.append(f"the collection's CLIP model {model!r} is not a known pairing: only the dimension was checked"
                     if model else "the collection does not record its CLIP model: only the dimension was checked")
        return notes
    expected = KNOWN_GENERATORS.get(pairing.generator or "")
    if expected is not None and expected != info.family:
        raise GeneratorMismatchError(
            f"the collection's {what} goes with {FAMILIES[expected].title} ({pairing.generator}), not with "
            f"generator {info.describe()}")
    return notes

