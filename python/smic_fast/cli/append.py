"""``smic append photos.smic MORE...``: new photos (or ``.npy`` embeddings) coded with the
collection's own dictionary."""
from __future__ import annotations

import argparse

from ._npy import npy_inputs, open_embeddings
from ._photos import EncodedPhotos, add_encoder_flags, encode_photos
from ._shared import (EXIT_CODES_HELP, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, CliError, Stages, add_output_flags,
                      emit, seconds_rows)

NAME = "append"
HELP = "add photos or .npy embeddings to a .smic file (earlier items untouched)"
EPILOG = EXIT_CODES_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="PATH.smic", help="the collection to extend (rewritten atomically)")
    p.add_argument("inputs", nargs="+", metavar="MORE",
                   help="image files and folders to add, or .npy files of (N, d) float16/float32 embeddings "
                        "(not both kinds in one call)")
    p.add_argument("--ids", default=None, metavar="IDS.json|IDS.txt",
                   help=".npy inputs: ids of the new items, a JSON list or one per line (default: each E.npy's "
                        "sibling E.ids.json, else the next positions)")
    add_encoder_flags(p, model_default=None)
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")
    p.add_argument("--replace", action="store_true",
                   help="an id already in the collection is replaced by the new photo (default: an error)")
    add_output_flags(p, force=False)


def run(args: argparse.Namespace) -> int:
    import smic_fast as smic

    stages = Stages()
    with stages.stage("open"):
        collection = smic.open(args.collection, dictionary=args.dictionary)
    npy = npy_inputs(args.inputs)
    if args.ids is not None and not npy:
        raise CliError("--ids is for .npy inputs (photos are named by their paths)", EXIT_USAGE)
    before = len(collection)
    if npy:
        with stages.stage("check embeddings"):
            given = open_embeddings(args.inputs, args.ids, dim=collection.dim)
            ids = given.ids if given.ids is not None else [str(before + i) for i in range(given.n)]
            # An append is coded in one batch (in memory): the new rows are read here.
            photos = EncodedPhotos(embeddings=given.rows(), ids=ids, pixels=[], model=args.model or "",
                                   paths=given.paths)
    else:
        model = args.model or collection.header.get("model")
        if not model:
            raise CliError(f"{args.collection} does not record its CLIP model; pass --model", EXIT_USAGE)
        with stages.stage("encode images"):
            photos = encode_photos(args.inputs, args, model)
    if photos.embeddings.shape[1] != collection.dim:
        raise CliError(f"model {photos.model} gives dimension {photos.embeddings.shape[1]} but "
                       f"{args.collection} holds dimension {collection.dim} ({collection.header.get('model')})")
    existing = set(collection.ids) & set(photos.ids)
    if existing and not args.replace:
        shown = ", ".join(sorted(existing)[:5]) + (" ..." if len(existing) > 5 else "")
        raise CliError(f"{len(existing)} id(s) already in {args.collection}: {shown}; pass --replace to "
                       "replace them", EXIT_USAGE)
    with stages.stage("code"):
        info = collection.append(photos.embeddings, ids=photos.ids,
                                 pixels=None if npy else photos.pixels_or_none, replace=args.replace)
    total = stages.total()
    summary = {
        "command": "append", "output": str(collection.path), "items_before": before,
        "items_added": len(photos.ids) - len(existing), "items_replaced": len(existing), "items": info["items"],
        "skipped": photos.skipped, "model": photos.model,
        **{k: info.get(k) for k in ("file_bytes", "bits_per_item", "marginal_bits_per_item", "bits_per_pixel",
                                    "cosine_mean", "cosine_p5")},
        "seconds": {**stages.seconds, "total": total},
        "images_per_second": (len(photos.ids) + len(photos.skipped)) / total,
    }
    emit(summary, [
        ("items added", summary["items_added"]), ("items replaced", len(existing)),
        ("inputs skipped", len(photos.skipped)), ("items now", info["items"]),
        ("file size", f"{info['file_bytes']:,} bytes"), ("bits per item", info["bits_per_item"]),
        ("marginal bits per item", info["marginal_bits_per_item"]),
        ("cosine mean (new items)", info["cosine_mean"]), ("cosine 5th percentile (new)", info["cosine_p5"]),
        *seconds_rows(stages.seconds),
        ("items per second" if npy else "images per second", summary["images_per_second"]),
    ], args.json, title=f"appended to {collection.path}")
    return EXIT_PARTIAL if photos.skipped else EXIT_OK
