"""``smic repack photos.smic``: merge a collection's batches (one per append) into one."""
from __future__ import annotations

import argparse

from ._shared import EXIT_OK, Stages, add_output_flags, emit, seconds_rows

NAME = "repack"
HELP = "rewrite a .smic file with its batches merged into one (after many small appends)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="PATH.smic", help="the collection to repack (rewritten atomically)")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")
    add_output_flags(p, force=False)


def run(args: argparse.Namespace) -> int:
    import smic_fast as smic

    stages = Stages()
    with stages.stage("open"):
        collection = smic.open(args.collection, dictionary=args.dictionary)
        before = collection.info()
        batches = len(collection._batch_sizes())
    with stages.stage("repack"):
        after = collection.repack()
    summary = {"command": "repack", "collection": str(args.collection), "items": after["items"],
               "batches_before": batches, "file_bytes_before": before["file_bytes"],
               "file_bytes": after["file_bytes"], "bits_per_item_before": before["bits_per_item"],
               "bits_per_item": after["bits_per_item"],
               "marginal_bits_per_item_before": before["marginal_bits_per_item"],
               "marginal_bits_per_item": after["marginal_bits_per_item"],
               "seconds": {**stages.seconds, "total": stages.total()}}
    emit(summary, [
        ("items", after["items"]), ("batches merged", batches),
        ("file size", f"{before['file_bytes']:,} -> {after['file_bytes']:,} bytes"),
        ("bits per item", f"{before['bits_per_item']:.2f} -> {after['bits_per_item']:.2f}"),
        ("marginal bits per item", f"{before['marginal_bits_per_item']:.2f} -> {after['marginal_bits_per_item']:.2f}"),
        *seconds_rows(stages.seconds),
    ], args.json, title=f"repacked {args.collection}")
    return EXIT_OK
