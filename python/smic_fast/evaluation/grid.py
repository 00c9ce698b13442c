"""The report's picture: a few photos beside what a generator rebuilds from their embeddings,
uncompressed and decoded at two or three rates of the sweep (``smic eval --generator``).

    from smic_fast.evaluation import regeneration_grid, run_sweep, write_report
    sweep = run_sweep(E, config)
    grid = regeneration_grid(sweep, E, generator, config=config, photos=paths, ids=ids)
    sweep.meta["grid"] = grid.to_dict()
    write_report(sweep, "report/", grid=grid.columns())

Columns, left to right: the original photos (when their files are given), the generator's
pictures of the original (uncompressed) embeddings, then its pictures of the embeddings decoded
at each chosen rate, lowest first. The uncompressed column separates what the codec loses from
what the generator loses. Every column uses the same per-item seeds (:mod:`..generate.seeds`:
from the base seed and the item's id), so across a row only the embedding changes.

The chosen rates are points of the sweep's ``smic`` method (our default mode, own dictionary).
Their reconstructions are made again from the same settings, dictionary learning included
(deterministic: same input, same seed), and the recoded item bytes are checked against the
point's: what is drawn is what was measured. Needs the ``[generate]`` extra (torch, diffusers).
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..coding.dictionary import normalize_embeddings
from .sweep import Point, Sweep, SweepConfig

__all__ = ["GridColumn", "RegenerationGrid", "grid_items", "grid_points", "regeneration_grid"]


@dataclass
class GridColumn:
    """One column of the grid: a title and one picture per chosen item.

    ``kind`` is "original" (the photos), "uncompressed" (generated from the original
    embeddings) or "smic" (generated from a decoded point); for the last two ``item_cosines``
    are the cosines of the embeddings generated from to the originals, and for "smic" the
    rates and ``cosine_mean`` are the sweep point's (over the whole collection)."""

    kind: str
    title: str
    images: list = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    bits_per_item: float | None = None
    marginal_bits_per_item: float | None = None
    cosine_mean: float | None = None
    item_cosines: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "settings": dict(self.settings),
                "bits_per_item": self.bits_per_item, "marginal_bits_per_item": self.marginal_bits_per_item,
                "cosine_mean": self.cosine_mean, "item_cosines": list(self.item_cosines)}


@dataclass
class RegenerationGrid:
    """What :func:`regeneration_grid` made: the columns and how they were generated."""

    columns_: list[GridColumn]
    rows: list[int]
    ids: list[str]
    generator: str
    family: str
    seed: int
    steps: int
    guidance: float
    size: tuple[int, int]
    embedding_norm: float | None
    notes: list[str] = field(default_factory=list)

    def columns(self) -> list[tuple[str, list]]:
        """(title, images) pairs, as :func:`write_report` takes them (``grid=``)."""
        return [(c.title, c.images) for c in self.columns_]

    @property
    def rates(self) -> list[float]:
        """Total bits per item of the decoded columns, left to right (increasing)."""
        return [c.bits_per_item for c in self.columns_ if c.kind == "smic"]

    def caption(self) -> str:
        shown = "the original photos, then " if any(c.kind == "original" for c in self.columns_) else ""
        return (f"{len(self.rows)} items (rows); columns: {shown}{self.generator}'s pictures ({self.family}, "
                f"{self.steps} steps, guidance {self.guidance:g}, seed {self.seed}, the same noise in every column) "
                "of the original embeddings and of the embeddings decoded at each rate (bits per item: total, the "
                "dictionary's share included, and marginal, the items' own bytes; mean cosine over the whole "
                "collection; as in the sweep).")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (``results.json``'s ``meta.grid``); no pictures."""
        return {"items": list(self.ids), "rows": list(self.rows), "generator": self.generator,
                "family": self.family, "seed": self.seed, "steps": self.steps, "guidance": self.guidance,
                "size": list(self.size), "embedding_norm": self.embedding_norm, "rates": self.rates,
                "columns": [c.to_dict() for c in self.columns_], "caption": self.caption(),
                "notes": list(self.notes)}


def grid_items(n: int, count: int) -> list[int]:
    """`count` rows of an `n`-item collection, evenly spaced from the first to the last
    (deterministic; all of them when `count` >= `n`)."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"the grid needs a positive number of items, got {count!r}")
    if n < 1:
        raise ValueError("the collection is empty")
    if count >= n:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, int(count))})


def grid_points(points: Sequence[Point], rates: int | Sequence[float] = 3) -> list[Point]:
    """The sweep's own-dictionary points (method ``smic``) to draw, by increasing total bits per item.

    `rates`: a count (2 or 3 usual): the lowest, the highest and points evenly spaced between
    (by rank); or target rates in bits per item: the point nearest each (in log rate), each point once.
    """
    ours = sorted((p for p in points if p.method == "smic" and np.isfinite(p.bits_per_item)),
                  key=lambda p: p.bits_per_item)
    if not ours:
        raise ValueError("the sweep has no 'smic' points to draw (keep 'smic' in the methods)")
    if isinstance(rates, (int, np.integer)) and not isinstance(rates, bool):
        if rates < 1:
            raise ValueError(f"the grid needs at least one rate, got {rates}")
        picked = {int(round(x)) for x in np.linspace(0, len(ours) - 1, min(int(rates), len(ours)))}
    else:
        targets = [float(r) for r in rates]
        if not targets or not all(np.isfinite(r) and r > 0 for r in targets):
            raise ValueError(f"grid rates must be positive bits per item, got {list(rates)!r}")
        logs = np.log([p.bits_per_item for p in ours])
        picked = {int(np.argmin(np.abs(logs - np.log(r)))) for r in targets}
    return [ours[i] for i in sorted(picked)]


def _recode(unit: np.ndarray, points: Sequence[Point], config: SweepConfig, pixels: Sequence[int] | None,
            n_threads: int | None) -> list[tuple[np.ndarray, int]]:
    """Reconstruction and item bytes of each point, coded again as the sweep codes it (a
    refined point's dictionary tables are fitted again from the same settings: deterministic,
    so the same as the ones the sweep reuses from its finest atoms-only point)."""
    from .sweep import code_collection, learn_atoms, learn_atoms_for_rate

    atoms_of: dict[tuple, np.ndarray] = {}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in points:
            k, s = int(p.settings["K"]), int(p.settings["n_nonzero"])
            step, rd_lambda = p.settings["step"], p.settings["rd_lambda"]
            # learn="rate": each setting's own atoms (a refined point's are its setting's)
            key = (k, s, step, rd_lambda) if config.learn == "rate" else (k, s)
            if key not in atoms_of:
                atoms_of[key] = (learn_atoms_for_rate(unit, k, s, step, rd_lambda, config, n_threads)
                                 if config.learn == "rate" else learn_atoms(unit, k, s, config, n_threads))
            refine = {"residual_step": p.settings["residual_step"]} if "residual_step" in p.settings else {}
            if p.settings.get("residual_coding") == "transform":
                refine["transform"] = True  # learned again on the same items: the same transform
            coded = code_collection(unit, atoms_of[key], Path(tmp), config,
                                     None if pixels is None else list(pixels), n_threads, n_nonzero=s,
                                     step=p.settings["step"], rd_lambda=p.settings["rd_lambda"], **refine)
            out.append((np.asarray(coded["reconstruction"], np.float32), int(coded["item_bytes"])))
    return out


def _config_of(sweep: Sweep) -> SweepConfig:
    """The coding settings the sweep used (from its meta), where no config is passed."""
    recorded = sweep.meta.get("config") or {}
    keep = {k: recorded[k] for k in ("n_nonzero", "precision", "n_iter", "seed", "learn") if k in recorded}
    if recorded and "learn" not in recorded:
        keep["learn"] = "sparsity"  # a sweep of an earlier release learned once per K
    return replace(SweepConfig(), **keep)


def _thumbnail(source, size: tuple[int, int], notes: list[str]):
    """A photo (path or PIL image) centre-cropped and resized to the generated pictures' size;
    a grey square, noted, when it cannot be read."""
    from PIL import Image, ImageOps

    from ..encode.images import ImageLoadError, load_image, to_rgb

    try:
        image = to_rgb(source) if isinstance(source, Image.Image) else load_image(source)
    except ImageLoadError as error:
        notes.append(f"original {error}: drawn grey")
        return Image.new("RGB", size, (128, 128, 128))
    return ImageOps.fit(image, size, method=Image.Resampling.BICUBIC)


def _cosines(unit_rows: np.ndarray, rows: np.ndarray) -> list[float]:
    rows = rows.astype(np.float64)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)
    return [round(float(c), 6) for c in np.sum(unit_rows.astype(np.float64) * rows, axis=1)]


def regeneration_grid(
    sweep: Sweep, E: np.ndarray, generator, *, config: SweepConfig | None = None,
    photos: Sequence[str | os.PathLike | Any] | None = None, ids: Sequence[str] | None = None,
    items: int = 4, rates: int | Sequence[float] = 3, pixels: Sequence[int] | None = None,
    seed: int = 0, steps: int | None = None, guidance: float | None = None,
    size: int | tuple[int, int] | None = None, norm: float | str | None = "auto", batch_size: int = 4,
    progress: bool = True, n_threads: int | None = None,
) -> RegenerationGrid:
    """Regenerate a few items of the collection `E` from their original embeddings and from
    their embeddings decoded at two or three of the sweep's rates.

    Args:
        sweep: :func:`run_sweep`'s result on `E` (its ``smic`` points are the candidate rates).
        E: the (N, d) embeddings the sweep was run on.
        generator: a loaded :class:`smic_fast.generate.Generator` of dimension d.
        config: the sweep's config (default: rebuilt from ``sweep.meta["config"]``); its coding
            settings (precision, K-SVD iterations, seed) recode the chosen points.
        photos: one image (file path or PIL image) per row of `E`, for the originals column;
            None: no originals column (embeddings only).
        ids: one id per row (default the row numbers): item i's noise comes from `seed` and ids[i].
        items: how many items (rows of the grid), evenly spaced over the collection.
        rates: how many rates, or target bits per item (:func:`grid_points`).
        pixels: each item's pixel count, as given to :func:`run_sweep` (the recoded file matches).
        seed, steps, guidance, size, batch_size: generation settings (:meth:`Generator.images`).
        norm: length the unit embeddings are scaled to before generation: "auto" (the mean
            length of `E` when it is not unit, else the generator's estimate, else unit), a number, None.
        progress: a tqdm bar on stderr.

    Raises:
        ValueError: shapes that do not match, a generator of another dimension, no ``smic`` points.
    """
    from tqdm.auto import tqdm

    from ..generate.writer import embedding_norm

    raw = np.asarray(E, dtype=np.float32)
    unit, lengths = normalize_embeddings(raw)
    n, d = unit.shape
    if sweep.meta.get("items") not in (None, n) or sweep.meta.get("dim") not in (None, d):
        raise ValueError(f"the sweep was run on {sweep.meta.get('items')} x {sweep.meta.get('dim')} embeddings, "
                         f"E is {n} x {d}")
    if generator.dim != d:
        raise ValueError(f"generator {generator.info.describe()} takes embeddings of dimension {generator.dim}, "
                         f"the collection's have {d}")
    if photos is not None and len(photos) != n:
        raise ValueError(f"{len(photos)} photos for {n} embeddings")
    ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} embeddings")
    steps, guidance, (width, height) = generator.settings(steps, guidance, size)
    config = config or _config_of(sweep)
    rows = grid_items(n, items)
    chosen = grid_points(sweep.points, rates)
    notes: list[str] = []
    length = embedding_norm(norm, float(np.mean(lengths)), generator, notes)
    row_ids = [ids[r] for r in rows]
    columns: list[GridColumn] = []
    if photos is not None:
        columns.append(GridColumn("original", "original", [_thumbnail(photos[r], (width, height), notes)
                                                           for r in rows]))
    sources = [("uncompressed", f"uncompressed (float32)\n{32 * d} bits/item", unit[rows], None)]
    for point, (reconstruction, item_bytes) in zip(chosen, _recode(unit, chosen, config, pixels, n_threads)):
        if item_bytes != point.item_bytes:
            notes.append(f"{point.label}: recoded to {item_bytes} item bytes, the sweep measured "
                         f"{point.item_bytes}; the pictures are of the recoded embeddings")
        title = f"smic {point.bits_per_item:.3g} bits/item\n({point.marginal_bits_per_item:.3g} marginal)"
        sources.append(("smic", title, reconstruction[rows], point))
    bar = tqdm(total=len(sources) * len(rows), disable=not progress, file=sys.stderr, unit="img",
               desc="regenerating")
    try:
        for kind, title, embeddings, point in sources:
            cosines = _cosines(unit[rows], embeddings)
            mean = float(np.mean(cosines)) if point is None else point.cosine_mean
            pictures = []
            for image in generator.images(embeddings, seed=seed, ids=row_ids, steps=steps, guidance=guidance,
                                          size=(width, height), batch_size=batch_size, norm=length):
                pictures.append(image)
                bar.update()
            column = GridColumn(kind, f"{title}, cos {mean:.3f}" if point is not None else f"{title}, cos 1",
                                pictures, item_cosines=cosines, cosine_mean=mean)
            if point is not None:
                column.settings = dict(point.settings)
                column.bits_per_item, column.marginal_bits_per_item = point.bits_per_item, point.marginal_bits_per_item
            columns.append(column)
    finally:
        bar.close()
    return RegenerationGrid(columns, rows, row_ids, str(generator.info.name), generator.family, int(seed), steps,
                            guidance, (width, height), length, notes)
