"""``smic info photos.smic``: what a collection holds and its rates, from the bytes on disk."""
from __future__ import annotations

import argparse

from ._shared import EXIT_OK, add_output_flags, emit

NAME = "info"
HELP = "show a .smic file's items, model, dictionary and rates"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="PATH.smic")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")
    add_output_flags(p, force=False)


def run(args: argparse.Namespace) -> int:
    import smic_fast as smic

    info = smic.open(args.collection, dictionary=args.dictionary).info()
    emit(info, [
        ("items", info["items"]), ("model", info["model"]), ("dimension", info["dim"]),
        ("atoms", info["n_atoms"]), ("most atoms per item", info["n_nonzero"]), ("layout", info["layout"]),
        ("residual step", info["residual_step"] if info["residual_step"] is not None else "none (atoms only)"),
        ("residual coding", info["residual_coding"] or "none"),
        ("dictionary", ("shared " if info["shared_dictionary"] else "embedded ") + info["precision"]),
        ("file size", f"{info['file_bytes']:,} bytes"), ("bits per item", info["bits_per_item"]),
        ("marginal bits per item", info["marginal_bits_per_item"]),
        ("bits per pixel", info.get("bits_per_pixel")),
        ("marginal bits per pixel", info.get("marginal_bits_per_pixel")),
        ("dictionary share", f"{100 * info['dictionary_share']:.1f}% of the file"),
        ("index model", info["index_model"]),
        ("format version", info["format_version"]),
    ], args.json, title=str(args.collection))
    return EXIT_OK
