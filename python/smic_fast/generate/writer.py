"""Regenerate a collection's items as PNG files: ``smic decompress --images OUT_DIR``.

:func:`write_images` decodes the items' embeddings, generates their pictures in batches and
writes one PNG per item, named after its id, inside the output folder (never outside it), each
written atomically (temporary file + rename, so no half-written PNG is left). An item whose
generation or write fails is reported and the others are still written. With ``check=True``
every picture is re-encoded with the collection's CLIP model and compared with the embedding
it was generated from (the paper's semantic measure).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..encode.clip_models import ModelNotFoundError
from .configs import check_compatibility, default_generator
from .pipelines import Generator
from .seeds import item_seeds

__all__ = ["ImagesReport", "ItemFailure", "image_names", "write_images", "zero_image_embedding"]

log = logging.getLogger("smic_fast.generate")

_UNSAFE = re.compile(r'[\x00-\x1f<>:"|?*\\]')


@dataclass(frozen=True)
class ItemFailure:
    id: str
    reason: str


@dataclass
class ImagesReport:
    """What :func:`write_images` did. ``written`` maps item id -> PNG path; cosines are per
    written item (None without ``check``; ``cos_original`` only when originals were given)."""

    out_dir: str
    generator: str
    family: str
    device: str
    dtype: str
    seed: int
    steps: int
    guidance: float
    size: tuple[int, int]
    written: dict[str, str] = field(default_factory=dict)
    failed: list[ItemFailure] = field(default_factory=list)
    cos_reconstructed: dict[str, float] | None = None
    cos_original: dict[str, float] | None = None
    embedding_norm: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def _mean(values: dict[str, float] | None) -> float | None:
        return float(np.mean(list(values.values()))) if values else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-item results."""
        items = []
        for item_id, path in self.written.items():
            entry: dict[str, Any] = {"id": item_id, "path": path}
            if self.cos_reconstructed is not None:
                entry["cos_reconstructed"] = self.cos_reconstructed.get(item_id)
            if self.cos_original is not None:
                entry["cos_original"] = self.cos_original.get(item_id)
            items.append(entry)
        return {
            "out_dir": self.out_dir, "generator": self.generator, "family": self.family, "device": self.device,
            "dtype": self.dtype, "seed": self.seed, "steps": self.steps, "guidance": self.guidance,
            "size": list(self.size), "embedding_norm": self.embedding_norm, "written": len(self.written), "failed": len(self.failed),
            "seconds": round(self.seconds, 3),
            "images_per_second": len(self.written) / self.seconds if self.seconds > 0 else None,
            "cos_reconstructed_mean": self._mean(self.cos_reconstructed),
            "cos_original_mean": self._mean(self.cos_original),
            "items": items, "failures": [{"id": f.id, "reason": f.reason} for f in self.failed],
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------ file names
def _safe_parts(item_id: str) -> list[str]:
    """An id as relative path parts that stay inside the output folder."""
    parts = []
    for part in PurePosixPath(item_id.replace("\\", "/")).parts:
        if part in ("/", "", "."):
            continue
        part = "_" if part == ".." else _UNSAFE.sub("_", part).strip(" ")
        parts.append(part or "_")
    return parts or ["_"]


def image_names(ids: Sequence[str]) -> dict[str, str]:
    """Relative PNG path (posix) of each id: its extension replaced by ``.png``
    ("sub/dir/a.jpg" -> "sub/dir/a.png"). Ids that would share a name keep their full name
    ("a.jpg" -> "a.jpg.png"), then get a number. Computed over all of a collection's ids, so an
    item's name does not depend on which items are regenerated."""
    first: dict[str, str] = {}
    for item_id in ids:
        parts = _safe_parts(item_id)
        stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1].lstrip(".") else parts[-1]
        first[item_id] = "/".join([*parts[:-1], f"{stem}.png"])
    counts: dict[str, int] = {}
    for name in first.values():
        counts[name.lower()] = counts.get(name.lower(), 0) + 1  # case-insensitive file systems
    names: dict[str, str] = {}
    taken: set[str] = set()
    for item_id, name in first.items():
        if counts[name.lower()] > 1:
            name = "/".join(_safe_parts(item_id)) + ".png"
        candidate, n = name, 1
        while candidate.lower() in taken:
            candidate = f"{name[:-4]}~{n}.png"
            n += 1
        taken.add(candidate.lower())
        names[item_id] = candidate
    return names


def _inside(out_dir: Path, relative: str) -> Path:
    target = out_dir / relative
    resolved_root = out_dir.resolve()
    resolved = target.parent.resolve() / target.name
    if resolved_root != resolved and resolved_root not in resolved.parents:
        raise ValueError(f"{relative!r} would be written outside {out_dir} (a link in the way?)")
    return target


def save_png(image, path: Path) -> None:
    """Write atomically: a temporary file beside the target, renamed over it when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------ the job
def _select(collection, ids: Sequence[str] | None) -> list[str]:
    all_ids = collection.ids
    if ids is None:
        return all_ids
    wanted = [str(i) for i in ids]
    known = set(all_ids)
    unknown = [i for i in wanted if i not in known]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} id(s) not in {collection.path}: {shown}")
    return list(dict.fromkeys(wanted))


def _originals(original, all_ids: list[str], selected: list[str], dim: int) -> np.ndarray | None:
    if original is None:
        return None
    if isinstance(original, Mapping):
        missing = [i for i in selected if i not in original]
        if missing:
            raise ValueError(f"original embeddings lack {len(missing)} item(s), e.g. {missing[0]!r}")
        rows = np.asarray([np.asarray(original[i], np.float32) for i in selected])
    else:
        array = np.asarray(original, np.float32)
        if array.ndim != 2 or array.shape != (len(all_ids), dim):
            raise ValueError(f"original embeddings must be ({len(all_ids)}, {dim}), one row per item of the "
                             f"collection, got {array.shape}")
        position = {item_id: i for i, item_id in enumerate(all_ids)}
        rows = array[[position[i] for i in selected]]
    if rows.shape != (len(selected), dim) or not np.isfinite(rows).all():
        raise ValueError(f"original embeddings must be finite vectors of dimension {dim}")
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), np.finfo(np.float32).tiny)


def _open_encoder(encoder, model: str | None, dim: int):
    from ..encode.clip_onnx import ClipEncoder

    if encoder is None:
        if not model:
            raise ValueError("check=True needs the collection's CLIP model to re-encode the pictures, and the "
                             "collection does not record it: pass encoder= (a ClipEncoder or an .onnx path)")
        encoder = model
    if not isinstance(encoder, ClipEncoder):
        encoder = ClipEncoder(encoder)
    if encoder.dim != dim:
        raise ValueError(f"the check encoder {encoder.path} gives dimension {encoder.dim}, the collection has {dim}")
    return encoder


def write_images(collection, out_dir: str | os.PathLike, generator: Generator | str | os.PathLike | None = None, *,
                 ids: Sequence[str] | None = None, seed: int = 0, steps: int | None = None,
                 guidance: float | None = None, size: int | tuple[int, int] | None = None, batch_size: int = 4,
                 check: bool = False, encoder=None, original=None, progress: bool = True,
                 device: str = "auto", dtype: Any = "auto", allow_download: bool = False,
                 norm: float | str | None = "auto") -> ImagesReport:
    """Regenerate items of `collection` (a :class:`smic_fast.Collection`) as PNGs in `out_dir`.

    Args:
        generator: a loaded :class:`Generator`, a folder or hub id, or None for the generator
            paired with the collection's CLIP model (``default``: Stable unCLIP, ...). The
            pairing is checked (dimension, family) before any weights load.
        ids: items to regenerate (default all); names come from :func:`image_names`.
        seed: base seed; item i uses a seed derived from it and its id.
        steps, guidance, size: sampling steps, guidance scale, image side (or (width, height));
            None: the generator family's defaults and its training size.
        batch_size: items per model call (their pictures do not depend on it).
        check: re-encode each picture with `encoder` (a :class:`smic_fast.ClipEncoder`, an .onnx
            path or a model name; default the collection's model from the export cache) and report
            cos(picture, reconstructed embedding) and, with `original` ((N, d) rows in collection
            order, or a mapping id -> vector), cos(picture, original embedding).
        progress: a tqdm bar on stderr.
        device, dtype, allow_download: passed to :meth:`Generator.from_pretrained`.
            For Kandinsky, the encoder (`encoder` or the collection's model, when found) also
            gives the negative image embedding (:func:`zero_image_embedding`); else zeros.
        norm: length the (unit) embeddings are scaled to before generation, since generators are
            trained on raw CLIP embeddings: "auto" takes the collection's ``mean_norm`` when it
            was made from raw embeddings (not 1), else the generator's own estimate
            (:meth:`Generator.embedding_norm`, unCLIP), else leaves them unit (noted in the
            report); a number; or None (as stored).

    Returns:
        An :class:`ImagesReport`; an item that fails is in ``failed`` with the reason.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    model, dim = collection.header.get("model"), collection.dim
    selected = _select(collection, ids)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    originals = _originals(original, collection.ids, selected, dim)
    check_encoder = _open_encoder(encoder, model, dim) if check else None  # cheap: fail before the generator
    if isinstance(generator, Generator):
        notes = check_compatibility(model, dim, generator.info)
    else:
        if generator is None:
            generator = default_generator(model)
            if generator is None:
                raise ModelNotFoundError(
                    f"the collection's CLIP model {model!r} has no paired generator; pass one "
                    "(--generator NAME|PATH, a saved diffusers StableUnCLIPImg2ImgPipeline or KandinskyV22Pipeline)")
        generator = Generator.from_pretrained(generator, device=device, dtype=dtype, model=model, dim=dim,
                                              allow_download=allow_download)
        notes = list(generator.notes)
    names = image_names(collection.ids)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps_used, guidance_used, (width, height) = generator.settings(steps, guidance, size)
    if size is None and generator.info.size_note:  # the folder gives no size: say which one is used
        notes.append(generator.info.size_note)
        log.warning("%s", generator.info.size_note)
    norm = embedding_norm(norm, collection.header.get("mean_norm"), generator, notes)
    negative = kandinsky_negative(generator, check_encoder, encoder, model, dim, notes)
    report = ImagesReport(str(out), str(generator.info.name), generator.family, generator.device,
                          str(generator.dtype).replace("torch.", ""), int(seed), int(steps_used),
                          float(guidance_used), (width, height), notes=notes, embedding_norm=norm,
                          cos_reconstructed={} if check else None,
                          cos_original={} if check and originals is not None else None)
    seeds = item_seeds(int(seed), selected)
    bar = tqdm(total=len(selected), disable=not progress, file=sys.stderr, unit="img", desc="generating")
    try:
        for start in range(0, len(selected), batch_size):
            chunk = selected[start:start + batch_size]
            E = np.stack([collection[i] for i in chunk]).astype(np.float32)
            images = _generate(generator, E, seeds[start:start + batch_size], chunk, report,
                               steps=steps_used, guidance=guidance_used, size=(width, height), norm=norm,
                               negative=negative)
            done = [(k, im) for k, im in enumerate(images) if im is not None]
            for k, image in done:
                item_id = chunk[k]
                try:
                    target = _inside(out, names[item_id])
                    save_png(image, target)
                except (OSError, ValueError) as error:
                    report.failed.append(ItemFailure(item_id, f"could not write: {error}"))
                    log.warning("item %s: could not write: %s", item_id, error)
                    continue
                report.written[item_id] = str(target)
            if check_encoder is not None and done:
                kept = [(k, im) for k, im in done if chunk[k] in report.written]
                if kept:
                    got = check_encoder.encode_images([im for _, im in kept])
                    got = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), np.finfo(np.float32).tiny)
                    for row, (k, _) in zip(got, kept):
                        report.cos_reconstructed[chunk[k]] = float(row @ (E[k] / np.linalg.norm(E[k])))
                        if originals is not None:
                            report.cos_original[chunk[k]] = float(row @ originals[start + k])
            bar.update(len(chunk))
    finally:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


def zero_image_embedding(encoder) -> np.ndarray:
    """Kandinsky 2.2's negative image embedding, as its prior makes it: the CLIP image tower's
    raw (not normalised) output for an all-zero preprocessed image."""
    session = encoder.session
    size = encoder.preprocess.image_size
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, size, size), np.float32)})[0]
    return np.asarray(out, np.float32).reshape(-1)


def kandinsky_negative(generator: Generator, check_encoder, encoder, model, dim: int,
                        notes: list[str]) -> np.ndarray | None:
    if generator.family != "kandinsky" or generator.negative_embedding is not None:
        return None
    source = check_encoder
    if source is None:
        try:
            source = _open_encoder(encoder, model, dim)
        except (ModelNotFoundError, ValueError, ImportError) as error:
            notes.append(f"negative image embedding: zeros (no CLIP encoder to make the prior's: {error})")
            return None
    notes.append("negative image embedding: the CLIP tower's output for a zero image, as Kandinsky's prior makes it")
    return zero_image_embedding(source)


def embedding_norm(norm, mean_norm, generator: Generator, notes: list[str]) -> float | None:
    if norm is None:
        return None
    if not isinstance(norm, str):
        if isinstance(norm, bool) or not isinstance(norm, (int, float)) or not np.isfinite(norm) or norm <= 0:
            raise ValueError(f"norm must be 'auto', a positive number or None, got {norm!r}")
        return float(norm)
    if norm != "auto":
        raise ValueError(f"norm must be 'auto', a positive number or None, got {norm!r}")
    if isinstance(mean_norm, (int, float)) and np.isfinite(mean_norm) and mean_norm > 0 \
            and abs(mean_norm - 1.0) > 1e-3:
        return float(mean_norm)
    estimate = generator.embedding_norm()
    if estimate is not None:
        notes.append(f"embeddings scaled to length {estimate:.4g}, the generator's typical CLIP embedding length "
                     "(the collection was made from unit vectors)")
        return estimate
    notes.append("the collection holds unit vectors and the generator does not say what length it expects: "
                 "embeddings passed as unit vectors (pass norm= to scale them)")
    return None


def _generate(generator: Generator, E: np.ndarray, seeds: list[int], chunk: list[str], report: ImagesReport,
              **options) -> list:
    """Pictures of one batch; if the batch fails, each item alone, so one bad item costs only itself."""
    try:
        return generator.generate(E, seeds, **options)
    except Exception as error:  # a model failure (out of memory, NaN...) must not stop the others
        if len(chunk) == 1:
            report.failed.append(ItemFailure(chunk[0], f"{type(error).__name__}: {error}"))
            log.warning("item %s failed: %s", chunk[0], error)
            return [None]
        log.warning("a batch of %d failed (%s); retrying its items one by one", len(chunk), error)
    return [_generate(generator, E[k:k + 1], seeds[k:k + 1], chunk[k:k + 1], report, **options)[0]
            for k in range(len(chunk))]
