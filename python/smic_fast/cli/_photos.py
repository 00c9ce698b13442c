"""The encoding stage shared by ``compress``, ``append`` and ``dictionary fit``: photos in,
CLIP embeddings, ids, pixel counts and the list of skipped files out."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from ..encode.clip_models import model_label
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


def _providers(text: str) -> str | list[str]:
    return text if "," not in text else [p.strip() for p in text.split(",") if p.strip()]


def encode_photos(inputs: list[str], args: argparse.Namespace, model: str) -> EncodedPhotos:
    """Find, decode and encode the photos of `inputs` with a progress bar; unreadable files are
    reported in ``skipped``. Raises CliError when there is nothing to encode."""
    from ..encode.clip_models import ModelNotFoundError
    from ..encode.clip_onnx import ClipEncoder
    from ..sources.photos import find_photos, pixel_count

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


def encode_tars(inputs: list[str], args: argparse.Namespace, model: str) -> EncodedPhotos:
    """:func:`encode_photos` for webdataset tar shards (files or brace patterns): each sample's
    first image member, id = its webdataset key. A damaged tar is reported in ``skipped`` (found
    by a scan of its headers before any image is read) and skipped whole; a bad image alone."""
    from ..encode.clip_models import ModelNotFoundError
    from ..encode.clip_onnx import ClipEncoder
    from ..sources.inputs import read_tar, scan_tar, tar_paths

    try:
        tars = tar_paths(inputs)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        encoder = ClipEncoder(model, providers=_providers(args.providers), batch_size=args.batch_size,
                              int8=getattr(args, "int8", False))
    except ModelNotFoundError as exc:
        raise CliError(str(exc)) from None
    scans = [scan_tar(t) for t in tars]
    parts: list[np.ndarray] = []
    ids: list[str] = []
    pixels: list[int] = []
    skipped: list[dict[str, str]] = []
    with progress_bar(sum(len(s.samples) for s in scans), "encoding images", args.quiet, unit="img") as bar:
        for scan in scans:
            if scan.error:
                skipped.append({"path": scan.path, "id": "", "reason": scan.error})
            skipped += [{"path": f"{scan.path}#{key}", "id": key, "reason": "no image member in the sample"}
                        for key in scan.without_image]
            member = dict(scan.samples)
            blobs: list[tuple[str, bytes]] = []
            for key, data, reason in read_tar(scan):
                if data is None:
                    skipped.append({"path": f"{scan.path}#{member[key]}", "id": key, "reason": str(reason)})
                else:
                    blobs.append((key, data))
            for start in range(0, len(blobs), 4 * args.batch_size):  # bounded memory per call
                names, embeddings, bad, counts = encoder.encode_blobs(blobs[start:start + 4 * args.batch_size])
                ids += names
                pixels += counts
                parts.append(embeddings)
                skipped += [{"path": f"{scan.path}#{member[s.path]}", "id": s.path, "reason": s.reason} for s in bad]
                bar.update(len(names) + len(bad))
    if not ids:
        raise CliError(f"no image of {len(tars)} tar(s) could be read: "
                       + "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5]))
    return EncodedPhotos(embeddings=np.concatenate(parts), ids=ids, pixels=pixels, skipped=skipped,
                         model=model_label(model, encoder.metadata), provider=encoder.provider,
                         paths=[f"{i}" for i in ids])
