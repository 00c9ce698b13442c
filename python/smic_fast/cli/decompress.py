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
from . import generate_flags as image_flags
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


def _stream_npy(collection, out: Path, out_ids: Path) -> int:
    """Write every item's embedding to ``out`` (.npy, float32) and its id to ``out_ids`` (a JSON
    list) a batch at a time: the .npy header, then each batch of
    :meth:`Collection.iter_batches` appended to temporary files beside them, fsync, rename.
    Memory stays one batch (plain writes, not a memory map, whose dirty pages would count in
    the RSS up to the whole file); a failure or Ctrl-C leaves no partial file. The bytes are
    what ``np.save(out, collection.embeddings())`` and ``json.dumps(collection.ids,
    ensure_ascii=False)`` give. Returns the number of items."""
    tmp, tmp_ids = (p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in (out, out_ids))
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (len(collection), collection.dim)}
    try:
        with open(tmp, "wb") as f, open(tmp_ids, "w", encoding="utf-8", errors="surrogatepass") as g:
            np.lib.format.write_array_header_1_0(f, header)
            g.write("[")
            first = True
            for ids, batch in collection.iter_batches():
                f.write(batch.tobytes())
                g.write(("" if first else ", ") + ", ".join(json.dumps(i, ensure_ascii=False) for i in ids))
                first = first and not ids
            g.write("]")
            for h in (f, g):
                h.flush()
                os.fsync(h.fileno())
        os.replace(tmp, out)
        os.replace(tmp_ids, out_ids)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_ids.unlink(missing_ok=True)
        raise
    return len(collection)


def _write_embeddings(args: argparse.Namespace, collection, stages: Stages) -> dict:
    from .._core import atomic_write  # temporary file, fsync, rename: no partial output

    out = check_output(args.embeddings, args.force)
    out_ids = check_output(ids_path(out), args.force)
    with stages.stage("decode and write embeddings"):
        if args.ids is None:
            n = _stream_npy(collection, out, out_ids)
        else:
            ids = list(args.ids)
            n = len(ids)
            embeddings = np.stack([collection[i] for i in ids]) if ids else np.zeros((0, collection.dim), np.float32)
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(embeddings, dtype=np.float32))
            atomic_write(str(out), buffer.getvalue())
            atomic_write(str(out_ids), json.dumps(ids, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return {"items": n, "embeddings": str(out), "ids": str(out_ids)}


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
