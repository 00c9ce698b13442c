"""The encoding stage shared by ``compress``, ``append`` and ``dictionary fit``: photos in,
CLIP embeddings, ids, pixel counts and the list of skipped files out."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._shared import EXIT_USAGE, CliError, positive_int, progress_bar

DEFAULT_MODEL = "default"


def add_encoder_flags(p: argparse.ArgumentParser, model_default: str | None = DEFAULT_MODEL, *,
                      npy: bool = False) -> None:
    """--model, --int8, --glob, --batch-size, --providers. With `npy` (the command also takes
    .npy embeddings) --model defaults to None: photos then use `model_default`, and a .npy
    input records --model only when it is given."""
    shown = model_default or "the collection's own model"
    npy_help = ("; with .npy inputs, the name recorded as the model that made them (default: none)"
                if npy else "")
    p.add_argument("--model", default=None if npy else model_default, metavar="NAME|PATH.onnx",
                   help="CLIP image tower: a pairing (default, small, kandinsky, fast, tiny) or open_clip "
                        f"architecture exported with `smic export-clip`, or an .onnx file (default: {shown})"
                        + npy_help)
    p.add_argument("--int8", action="store_true",
                   help="with a model name: use its int8 export (`smic export-clip --precision int8`), "
                        "about 1.6x faster on a CPU, cosine ~0.9997 to fp32 (default: fp32)")
    p.add_argument("--glob", default=None, metavar="PATTERN",
                   help="in folders, take only file names matching PATTERN, e.g. '*.jpg' (default: every "
                        "file that is not hidden)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per model call (default: 32)")
    p.add_argument("--providers", default="auto",
                   help="ONNX Runtime providers: auto, cpu, cuda, tensorrt or a comma-separated list (default: auto)")


@dataclass
class EncodedPhotos:
    embeddings: np.ndarray
    ids: list[str]
    pixels: list[int]
    skipped: list[dict[str, str]] = field(default_factory=list)
    model: str = ""
    provider: str = ""
    paths: list[str] = field(default_factory=list)  # each embedding's file (eval's grid shows them)

    @property
    def pixels_or_none(self) -> list[int] | None:
        """Pixel counts when every image has one (else bits per pixel are not reported)."""
        return self.pixels if all(p > 0 for p in self.pixels) else None


def model_label(requested: str, metadata: dict[str, str]) -> str:
    """The name recorded in a collection's header: the pairing or architecture that was asked
    for, or, for an .onnx path, what its export metadata says (its pairing where one fits)."""
    from ..clip_models import PAIRINGS

    if not (requested.endswith(".onnx") or os.sep in requested or os.path.exists(requested)):
        return requested
    arch, tag = metadata.get("arch"), metadata.get("pretrained") or None
    for pairing in PAIRINGS.values():
        if arch == pairing.arch and tag == pairing.pretrained:
            return pairing.name
    if arch:
        return f"{arch}/{tag}" if tag else arch
    return Path(requested).stem


def _providers(text: str) -> str | list[str]:
    return text if "," not in text else [p.strip() for p in text.split(",") if p.strip()]


def encode_photos(inputs: list[str], args: argparse.Namespace, model: str) -> EncodedPhotos:
    """Find, decode and encode the photos of `inputs` with a progress bar; unreadable files are
    reported in ``skipped``. Raises CliError when there is nothing to encode."""
    from ..clip_models import ModelNotFoundError
    from ..clip_onnx import ClipEncoder
    from ..photos import find_photos, pixel_count

    try:
        photos = find_photos(inputs, args.glob)
    except FileNotFoundError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if not photos:
        raise CliError(f"no files found in {', '.join(inputs)}" + (f" matching {args.glob!r}" if args.glob else ""))
    try:
        encoder = ClipEncoder(model, providers=_providers(args.providers), batch_size=args.batch_size,
                              int8=getattr(args, "int8", False))
    except ModelNotFoundError as exc:
        raise CliError(str(exc)) from None
    id_of = {p.path: p.id for p in photos}
    parts: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[dict[str, str]] = []
    with progress_bar(len(photos), "encoding images", args.quiet, unit="img") as bar:
        for batch_names, embeddings, batch_skipped in encoder.iter_encode(p.path for p in photos):
            names += batch_names
            parts.append(embeddings)
            skipped += [{"path": s.path, "id": id_of.get(s.path, s.path), "reason": s.reason} for s in batch_skipped]
            bar.update(len(batch_names) + len(batch_skipped))
    if not names:
        raise CliError(f"none of the {len(photos)} input files could be read: "
                       + "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5]))
    return EncodedPhotos(
        embeddings=np.concatenate(parts), ids=[id_of[n] for n in names],
        pixels=[pixel_count(n) or 0 for n in names], skipped=skipped,
        model=model_label(model, encoder.metadata), provider=encoder.provider, paths=list(names))
