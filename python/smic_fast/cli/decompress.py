"""``smic decompress photos.smic --embeddings out.npy --images OUT_DIR``: the reconstructed
embeddings back, with their ids beside them (``out.ids.json``), and/or regenerated pictures
(one PNG per item, from a diffusers generator; see :mod:`smic_fast.generate`)."""
from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import numpy as np

from .._extras import require
from ..generate import cli_options as image_flags
from ._npy import ids_path
from ._shared import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, CliError, Stages, add_output_flags, check_output, emit, seconds_rows

NAME = "decompress"
HELP = "decode a .smic file back to embeddings (.npy, ids beside it as .ids.json) and/or images (PNGs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="PATH.smic")
    p.add_argument("--embeddings", default=None, metavar="OUT.npy",
                   help="write the (N, d) float32 unit embeddings here, and their ids to OUT.ids.json")
    p.add_argument("--ids", nargs="+", default=None, metavar="ID", help="only these items (default: all)")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")
    add_output_flags(p)
    image_flags.add_arguments(p)


def _stream_npy(collection, out: Path) -> None:
    """Write every item's embedding to ``out`` (.npy, float32) a batch at a time: the .npy
    header, then each batch of :meth:`Collection.iter_batches` appended to a temporary file
    beside ``out``, fsync, rename. Memory stays one batch (plain writes, not a memory map, whose
    dirty pages would count in the RSS up to the whole file); a failure or Ctrl-C leaves no
    partial file. The bytes are what ``np.save`` writes for ``collection.embeddings()``."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (len(collection), collection.dim)}
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            for _, batch in collection.iter_batches():
                f.write(batch.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_embeddings(args: argparse.Namespace, collection, stages: Stages) -> dict:
    from .._core import atomic_write  # temporary file, fsync, rename: no partial output

    out = check_output(args.embeddings, args.force)
    out_ids = check_output(ids_path(out), args.force)
    with stages.stage("decode and write embeddings"):
        if args.ids is None:
            ids = collection.ids
            _stream_npy(collection, out)
        else:
            ids = list(args.ids)
            embeddings = np.stack([collection[i] for i in ids]) if ids else np.zeros((0, collection.dim), np.float32)
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(embeddings, dtype=np.float32))
            atomic_write(str(out), buffer.getvalue())
        atomic_write(str(out_ids), json.dumps(ids, ensure_ascii=False).encode())
    return {"items": len(ids), "embeddings": str(out), "ids": str(out_ids)}


def run(args: argparse.Namespace) -> int:
    import smic_fast as smic

    if args.embeddings is None and args.images is None:
        raise CliError("say what to write: --embeddings OUT.npy and/or --images OUT_DIR", EXIT_USAGE)
    if args.images is not None:  # a missing extra fails before anything is decoded or written
        require("generate", "--images (generating pictures)")
    if args.embeddings is not None:  # refuse an existing output before any long work
        check_output(args.embeddings, args.force)
        check_output(ids_path(args.embeddings), args.force)
    stages = Stages()
    with stages.stage("open"):
        collection = smic.open(args.collection, dictionary=args.dictionary)
    if args.ids is not None:
        known = set(collection.ids)
        unknown = [i for i in args.ids if i not in known]
        if unknown:
            raise CliError(f"{len(unknown)} id(s) not in {args.collection}: {', '.join(unknown[:5])}", EXIT_USAGE)
    summary: dict = {"command": "decompress", "collection": str(args.collection), "dim": int(collection.dim)}
    rows: list = [("dimension", collection.dim)]
    code = EXIT_OK
    if args.embeddings is not None:
        written = _write_embeddings(args, collection, stages)
        summary.update(written)
        rows += [("items", written["items"]), ("embeddings", written["embeddings"]), ("ids", written["ids"])]
    if args.images is not None:
        with stages.stage("generate images"):
            code, report = image_flags.run(args, collection, progress=not args.quiet)
        if report is None:
            return code
        summary["images"] = report
        rows += [("images written", report["written"]), ("images failed", report["failed"]),
                 ("images folder", args.images),
                 ("cosine picture vs reconstructed", report.get("cos_reconstructed_mean")),
                 ("cosine picture vs original", report.get("cos_original_mean"))]
    summary["seconds"] = {**stages.seconds, "total": stages.total()}
    emit(summary, [*rows, *seconds_rows(stages.seconds)], args.json, title=f"decoded {args.collection}")
    return code
