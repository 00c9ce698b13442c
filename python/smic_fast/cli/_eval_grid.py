"""``smic eval --generator``: the regenerations grid's flags and the steps ``cli/eval.py`` runs.

The generator is checked in two steps so that a bad one fails before the (long) sweep and
before any report folder exists: :func:`check_generator` (flags, the [generate] extra, the
folder's JSON: no embeddings needed) right after the command line is read, then
:func:`load_generator` (dimension and family against the collection, then the weights) once
the embeddings are known. :func:`make_grid` runs after the sweep (evaluation/grid.py).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from .generate_flags import add_generator_flags
from ._shared import EXIT_FAILURE, EXIT_USAGE, CliError, positive_float, positive_int

__all__ = ["add_grid_flags", "check_generator", "load_generator", "make_grid"]


def add_grid_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "regenerations grid (needs the [generate] extra: torch, diffusers, transformers)",
        "With --generator, the report also shows a few photos beside the generator's pictures of their "
        "original embeddings and of their embeddings decoded at a low, a middle and a high rate of the "
        "sweep (its 'smic' points), each with the same per-item noise (--seed). With a .npy of embeddings "
        "there are no photos: only the regenerations are drawn.")
    add_generator_flags(g, default_help="none: no grid")
    g.add_argument("--grid-items", type=positive_int, default=None, metavar="N",
                   help="photos in the grid, evenly spaced over the collection (default: 4)")
    g.add_argument("--grid-rates", type=_rates, default=None, metavar="BITS[,BITS...]",
                   help="rates to draw, in total bits per item, comma-separated: the 'smic' point nearest "
                        "each (default: the lowest, middle and highest rate of the sweep)")


def _rates(text: str) -> list[float]:
    """argparse type: comma-separated positive numbers (as --methods is comma-separated)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected bits per item such as 10,40,200, got {text!r}")
    return [positive_float(part) for part in parts]


def check_generator(args: argparse.Namespace, methods: tuple[str, ...]):
    """Before anything is encoded or swept: the grid's flags, torch and diffusers, and the
    generator folder's files. Returns its GeneratorInfo (None without --generator)."""
    if args.generator is None:
        if args.grid_rates is not None or args.grid_items is not None:
            raise CliError("--grid-items and --grid-rates need --generator", EXIT_USAGE)
        return None
    if "smic" not in methods:
        raise CliError("--generator draws the 'smic' points of the sweep: keep 'smic' in --methods", EXIT_USAGE)
    if args.embedding_norm is not None and not (np.isfinite(args.embedding_norm) and args.embedding_norm > 0):
        raise CliError(f"--embedding-norm must be a positive number, got {args.embedding_norm}", EXIT_USAGE)
    from ..generate.configs import read_generator_info, resolve_generator
    from ..generate.pipelines import import_torch

    try:
        import_torch()
        folder = resolve_generator(args.generator, allow_download=args.download)
    except ImportError as error:
        raise CliError(f"--generator: {error}", EXIT_FAILURE) from None
    return read_generator_info(folder, name=args.generator)  # ModelNotFoundError: 1, GeneratorError: 2


def load_generator(args: argparse.Namespace, info, model: str | None, dim: int):
    """The generator, loaded once the collection's model and dimension are known: a generator
    for another dimension (or, for a known pairing, another family) is refused before its
    weights are read; bad --steps/--guidance/--size are refused before the sweep."""
    from ..generate import Generator, check_compatibility

    check_compatibility(model, dim, info)  # GeneratorMismatchError (a ValueError): exit 2
    try:
        generator = Generator.from_pretrained(info.path, device=args.device, dtype=args.dtype, model=model, dim=dim)
    except ImportError as error:
        raise CliError(str(error), EXIT_FAILURE) from None
    generator.settings(args.steps, args.guidance, args.size)  # ValueError: exit 2
    return generator


def make_grid(args: argparse.Namespace, sweep, embeddings: np.ndarray, generator, config, *,
              photos: list[str] | None, ids: list[str] | None, pixels: list[int] | None,
              clip_model: str | None) -> tuple[Any | None, str | None]:
    """(grid, None), or (None, reason) when generating failed: the report is still written."""
    from ..evaluation.grid import regeneration_grid
    from ..generate.writer import kandinsky_negative

    notes: list[str] = []
    if args.size is None and generator.info.size_note:  # the folder gives no size: say which one is used
        notes.append(generator.info.size_note)
        if not args.quiet:
            print(f"smic eval: {generator.info.size_note}", file=sys.stderr)
    if generator.family == "kandinsky" and clip_model is not None:
        # Kandinsky's negative embedding is the CLIP tower's output for a zero image (as its prior makes it)
        generator.negative_embedding = kandinsky_negative(generator, None, None, clip_model, generator.dim, notes)
    try:
        grid = regeneration_grid(
            sweep, embeddings, generator, config=config, photos=photos, ids=ids, items=args.grid_items or 4,
            rates=3 if args.grid_rates is None else args.grid_rates, pixels=pixels, seed=args.seed,
            steps=args.steps, guidance=args.guidance, size=args.size,
            norm="auto" if args.embedding_norm is None else args.embedding_norm, progress=not args.quiet)
    except Exception as error:  # a model failure (out of memory, ...) must not throw the sweep away
        reason = f"the regenerations grid failed: {type(error).__name__}: {error}"
        if not args.quiet:
            print(f"smic eval: {reason}; the report is written without it", file=sys.stderr)
        return None, reason
    grid.notes[:0] = [*generator.notes, *notes]
    return grid, None
