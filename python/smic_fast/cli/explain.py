"""``smic explain photos.smic ID``: the atoms of one item with their weights and, with
``--labels``, the text labels nearest to each atom: what the bits of that image say."""
from __future__ import annotations

import argparse
import json

from ._shared import EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE, CliError
from .atoms import add_label_flags, name_atoms

NAME = "explain"
HELP = "print the atoms of one item of a .smic file with their weights and labels"
EPILOG = EXIT_CODES_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="PHOTOS.smic")
    p.add_argument("item", metavar="ID", help="the item's id (or its position, with --position)")
    p.add_argument("--position", action="store_true", help="ID is a position 0..N-1 (negative from the end)")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")
    add_label_flags(p, required=False)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from ..query.atoms import explain_item
    from ..store.opener import open as open_collection

    collection = open_collection(args.collection, dictionary=args.dictionary)
    key: int | str = args.item
    if args.position:
        try:
            key = int(args.item)
        except ValueError:
            raise CliError(f"--position: {args.item!r} is not an integer", EXIT_USAGE) from None
    model = args.model or collection.header.get("model") or "default"
    named = name_atoms(collection.dictionary.atoms, args, model=model)[1] if args.labels else None
    try:
        result = explain_item(collection, key, named)
    except KeyError:
        close = [i for i in collection.ids if args.item.lower() in i.lower()][:5]
        raise CliError(f"no item {args.item!r} in {args.collection} ({len(collection)} items"
                       + (f"; similar ids: {', '.join(close)}" if close else "") + ")", EXIT_USAGE) from None
    except IndexError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.json:
        print(json.dumps({"command": "explain", **result}, indent=1))
        return EXIT_OK
    print(f"{result['id']} (item {result['position']}): {len(result['atoms'])} atoms of {result['n_atoms']}")
    for entry in result["atoms"]:
        labels = ", ".join(f"{label} ({score:.3f})" for label, score in zip(entry.get("labels", []),
                                                                              entry.get("scores", [])))
        print(f"  {entry['weight']:+8.4f} x atom {entry['atom']:>5}" + (f"  {labels}" if labels else ""))
    return EXIT_OK
