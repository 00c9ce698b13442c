"""Which files a command compresses, and the item id each one gets.

Inputs are files and folders. Folders are walked recursively (hidden files and folders
skipped); ``glob`` keeps only names that match it (``"*.jpg"``). Files named explicitly are
always taken. Ids are paths relative to the inputs' common root, with ``/`` separators, and
the list is sorted by id so the result never depends on directory order.
"""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from PIL import Image

__all__ = ["PhotoInput", "find_photos", "pixel_count"]


class PhotoInput(NamedTuple):
    path: str  # as found on disk
    id: str  # relative to the inputs' root, "/"-separated


def _walk(folder: Path, glob: str | None) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or (glob is not None and not fnmatch.fnmatch(name, glob)):
                continue
            yield Path(root) / name


def find_photos(inputs: Sequence[str | os.PathLike], glob: str | None = None) -> list[PhotoInput]:
    """Files of `inputs` (files and folders, recursive) with their ids, sorted by id.

    A file reached twice is listed once. Raises FileNotFoundError naming an input that does
    not exist."""
    if not inputs:
        raise ValueError("no inputs given")
    paths: list[Path] = []
    roots: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            roots.append(p.absolute())
            paths.extend(_walk(p, glob))
        elif p.exists() or p.is_symlink():
            roots.append(p.absolute().parent)
            paths.append(p)
        else:
            raise FileNotFoundError(f"input {os.fspath(item)!r} does not exist")
    root = Path(os.path.commonpath([str(r) for r in roots]))
    found: dict[str, PhotoInput] = {}
    for p in paths:
        item_id = Path(os.path.relpath(p.absolute(), root)).as_posix()
        found[item_id] = PhotoInput(os.fspath(p), item_id)
    return [found[k] for k in sorted(found)]


def pixel_count(path: str | os.PathLike) -> int | None:
    """Width x height read from the image header (no decoding); None if unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
        return int(width * height) if width > 0 and height > 0 else None
    except Exception:  # reported elsewhere: the encoder skips such files with a reason
        return None
