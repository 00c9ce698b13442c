"""``smic merge OUT.smic.d -o OUT.smic``: pack a sharded collection (``smic compress --ray``)
into one .smic file, byte for byte what one process writes with the same dictionary."""
from __future__ import annotations

import argparse

from ._shared import EXIT_OK, EXIT_USAGE, CliError, Stages, add_output_flags, check_output, emit, seconds_rows

NAME = "merge"
HELP = "pack the shards of a distributed run (OUT.smic.d/) into one .smic file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="OUT.smic.d",
                   help="the sharded collection: its folder, its manifest.json, or OUT.smic while only "
                        "OUT.smic.d/ exists")
    p.add_argument("-o", "--output", required=True, metavar="PATH.smic",
                   help="the file to write (atomically); it refers to the shards' dictionary.smicd by its hash, "
                        "like `smic compress --dictionary`, unless --embed-dictionary")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shards' dictionary (default: OUT.smic.d/dictionary.smicd)")
    p.add_argument("--embed-dictionary", action="store_true",
                   help="store the dictionary in the file, so it opens without the .smicd")
    add_output_flags(p)


def run(args: argparse.Namespace) -> int:
    import smic_fast as smic
    from ..store.manifest import Manifest, find_manifest, merge

    found = find_manifest(args.collection)
    if found is None:
        raise CliError(f"{args.collection} is not a sharded collection (no manifest.json there)", EXIT_USAGE)
    out = check_output(args.output, args.force)
    if out.resolve() == found.parent.resolve() or out.resolve().parent == found.parent.resolve():
        raise CliError(f"write the merged file outside {found.parent}", EXIT_USAGE)
    manifest = Manifest.load(found)
    stages = Stages()
    with stages.stage("merge"):
        merge(found, out, args.dictionary, embed_dictionary=args.embed_dictionary)
    with stages.stage("check"):
        info = smic.open(out, dictionary=None if args.embed_dictionary else manifest.dictionary(args.dictionary)).info()
    summary = {"command": "merge", "collection": str(found.parent), "output": str(out), "items": info["items"],
               "shards": len(manifest.shards), "shard_bytes": sum(s.bytes for s in manifest.shards),
               "file_bytes": info["file_bytes"], "bits_per_item": info["bits_per_item"],
               "shared_dictionary": info["shared_dictionary"], "dictionary_hash": info["dictionary_hash"],
               "seconds": {**stages.seconds, "total": stages.total()}}
    emit(summary, [
        ("items", info["items"]), ("shards merged", len(manifest.shards)),
        ("bytes", f"{summary['shard_bytes']:,} in shards -> {info['file_bytes']:,}"),
        ("bits per item", info["bits_per_item"]),
        ("dictionary", "embedded" if args.embed_dictionary else f"shared ({manifest.folder / 'dictionary.smicd'})"),
        *seconds_rows(stages.seconds),
    ], args.json, title=f"wrote {out}")
    return EXIT_OK
