"""``smic decompress photos.smic --embeddings out.npy``: the reconstructed embeddings back,
with their ids beside them (``out.ids.json``)."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from ._shared import EXIT_OK, EXIT_USAGE, CliError, Stages, add_output_flags, check_output, emit, seconds_rows

NAME = "decompress"
HELP = "decode a .smic file back to embeddings (.npy, ids beside it as .ids.json)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="PATH.smic")
    p.add_argument("--embeddings", default=None, metavar="OUT.npy",
                   help="write the (N, d) float32 unit embeddings here, and their ids to OUT.ids.json")
    p.add_argument("--ids", nargs="+", default=None, metavar="ID", help="only these items (default: all)")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")
    add_output_flags(p)


def ids_path(embeddings_path: str | Path) -> Path:
    """Where the ids of an embeddings file go: ``out.npy`` -> ``out.ids.json``."""
    path = Path(embeddings_path)
    return path.with_name(path.stem + ".ids.json") if path.suffix == ".npy" else path.with_name(path.name + ".ids.json")


def run(args: argparse.Namespace) -> int:
    import smic_fast as smic
    from ..container import atomic_write

    if args.embeddings is None:
        raise CliError("say what to write: --embeddings OUT.npy", EXIT_USAGE)
    out = check_output(args.embeddings, args.force)
    out_ids = check_output(ids_path(out), args.force)
    stages = Stages()
    with stages.stage("decode"):
        collection = smic.open(args.collection, dictionary=args.dictionary)
        if args.ids is None:
            ids, embeddings = collection.ids, collection.embeddings()
        else:
            unknown = [i for i in args.ids if i not in set(collection.ids)]
            if unknown:
                raise CliError(f"{len(unknown)} id(s) not in {args.collection}: {', '.join(unknown[:5])}", EXIT_USAGE)
            ids = list(args.ids)
            embeddings = np.stack([collection[i] for i in ids]) if ids else np.zeros((0, collection.dim), np.float32)
    with stages.stage("write"):
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(embeddings, dtype=np.float32))
        atomic_write(out, lambda f: f.write(buffer.getvalue()))
        atomic_write(out_ids, lambda f: f.write(json.dumps(ids, ensure_ascii=False).encode()))
    summary = {"command": "decompress", "collection": str(args.collection), "items": len(ids),
               "dim": int(collection.dim), "embeddings": str(out), "ids": str(out_ids),
               "seconds": {**stages.seconds, "total": stages.total()}}
    emit(summary, [("items", len(ids)), ("dimension", collection.dim), ("embeddings", str(out)),
                   ("ids", str(out_ids)), *seconds_rows(stages.seconds)], args.json,
         title=f"decoded {args.collection}")
    return EXIT_OK
