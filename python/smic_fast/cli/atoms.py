"""``smic atoms DICT.smicd --labels labels.txt --model NAME``: name each atom of a dictionary by
its nearest text labels (CLIP's text tower, exported with ``smic export-text``)."""
from __future__ import annotations

import argparse
import json

from ._shared import EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE, CliError, add_renamed, positive_int

NAME = "atoms"
HELP = "name the atoms of a dictionary (.smicd, or a .smic's own) by their nearest text labels"
EPILOG = EXIT_CODES_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dictionary", metavar="DICT.smicd|PHOTOS.smic",
                   help="a dictionary file, or a collection that embeds its dictionary")
    add_label_flags(p, required=True)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_label_flags(p: argparse.ArgumentParser, required: bool) -> None:
    """--labels, --model, --label-top, --cache-dir (shared with smic explain)."""
    p.add_argument("--labels", required=required, metavar="LABELS.txt",
                   help="UTF-8 text file, one label a line (blank lines and # comments skipped)")
    p.add_argument("--model", default=None, metavar="NAME|text.onnx",
                   help="the CLIP model that made the embeddings: a pairing or architecture whose text tower was "
                        "exported with `smic export-text`, or a text.onnx path (default: the model a collection "
                        "records; for a .smicd, default)")
    p.add_argument("--label-top", dest="top", type=positive_int, default=3, metavar="N",
                   help="labels per atom (default: 3)")
    add_renamed(p, "--top", "--label-top", "top", type=positive_int)
    p.add_argument("--cache-dir", default=None, help="cache of exported models (overrides $SMIC_HOME)")


def load_dictionary(path: str, shared: str | None = None):
    """A Dictionary from a .smicd, or the dictionary of a .smic collection."""
    return load_dictionary_and_model(path, shared)[0]


def load_dictionary_and_model(path: str, shared: str | None = None):
    """(Dictionary, the model a collection records or None) from a .smicd or a .smic."""
    from ..store.collection import COLLECTION_MAGIC
    from ..coding.dictionary import Dictionary
    from ..store.manifest import find_manifest

    if find_manifest(path) is not None:  # a sharded collection (smic compress --ray)
        from ..store.opener import open as open_collection
        col = open_collection(path, dictionary=shared)
        return col.dictionary, col.header.get("model")
    with open(path, "rb") as stream:  # FileNotFoundError names the path
        magic = stream.read(len(COLLECTION_MAGIC))
    if magic == COLLECTION_MAGIC:
        from ..store.opener import open as open_collection
        col = open_collection(path, dictionary=shared)
        return col.dictionary, col.header.get("model")
    return Dictionary.load(path), None


def name_atoms(atoms, args: argparse.Namespace, model: str | None = None, top: int | None = None):
    """(labels, AtomLabels per atom) for the --labels/--model/--top flags (``model`` and ``top``
    override ``args.model`` and ``args.top``, for commands that name those flags otherwise)."""
    from ..query.atoms import label_atoms, read_labels
    from ..encode.text_tower import TextEncoder

    model = args.model if model is None else model
    top = args.top if top is None else top
    try:
        labels = read_labels(args.labels)
    except FileNotFoundError:
        raise CliError(f"labels file {args.labels} does not exist", EXIT_USAGE) from None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if not model:
        raise CliError("--labels needs the CLIP model's text tower: the collection records no model; pass --model",
                       EXIT_USAGE)
    encoder = TextEncoder(model, cache=args.cache_dir)
    if encoder.dim != atoms.shape[1]:
        raise CliError(f"the text tower of {model} gives dimension {encoder.dim}, the dictionary has "
                       f"{atoms.shape[1]}: pass the --model that made the embeddings", EXIT_USAGE)
    return labels, label_atoms(atoms, labels, encoder.encode(labels), top=top)


def run(args: argparse.Namespace) -> int:
    dictionary, recorded = load_dictionary_and_model(args.dictionary)
    labels, named = name_atoms(dictionary.atoms, args, model=args.model or recorded or "default")
    if args.json:
        print(json.dumps({"command": "atoms", "dictionary": args.dictionary, "n_atoms": dictionary.n_atoms,
                          "labels": len(labels), "atoms": [a.to_dict() for a in named]}, indent=1))
    else:
        for a in named:
            named_labels = ", ".join(f"{label} ({score:.3f})" for label, score in zip(a.labels, a.scores))
            print(f"atom {a.atom:>5}: {named_labels}")
    return EXIT_OK
