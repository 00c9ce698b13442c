"""``smic arith "photos.smic:beach.jpg" + "text:snow" - "text:summer" [--weight 0.5]``: semantic
arithmetic in CLIP space, shown in the collection's dictionary: the result's code, the atoms
that came and went against the first term, labelled as ``smic explain`` labels them; with
``--search`` the collection's nearest items, with ``--images OUT/`` the first term and the result
regenerated side by side with the same seed (see :mod:`smic_fast.query.semantics`)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ._shared import EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE, CliError, positive_int
from .atoms import name_atoms
from .search import add_search_flags, print_results, run_search

NAME = "arith"
HELP = "add and subtract meanings (images, texts, items) and show the result in a collection's dictionary"
EPILOG = ("terms: PHOTOS.smic:ID (an item), item:ID (an item of --collection), text:WORDS, image:PATH (or an image "
          "file's path); each may be written W*TERM to weigh it W. The first term weighs 1, the others --weight. "
          + EXIT_CODES_HELP)


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expression", nargs="*", metavar="TERM [+|- TERM ...]",
                   help='e.g. "photos.smic:beach.jpg" + "text:snow" - "text:summer" (quote each term)')
    p.add_argument("--collection", default=None, metavar="PHOTOS.smic",
                   help="the collection whose dictionary codes the result (default: the one the item terms name)")
    p.add_argument("--weight", type=_finite, default=1.0, metavar="W",
                   help="weight of every term after the first, before its sign (default: 1)")
    p.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="CLIP model for text: and image: terms (default: the collection's)")
    p.add_argument("--cache-dir", default=None, help="cache of exported models (overrides $SMIC_HOME)")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")
    p.add_argument("--labels", default=None, metavar="LABELS.txt",
                   help="name the atoms by their nearest labels (one a line), as smic explain --labels does")
    p.add_argument("--label-top", type=positive_int, default=3, metavar="N", help="labels per atom (default: 3)")
    p.add_argument("--search", action="store_true", help="also print the collection's nearest items to the result")
    add_search_flags(p)
    g = p.add_argument_group("images (needs the [generate] extra: torch, diffusers, transformers)")
    g.add_argument("--images", default=None, metavar="OUT_DIR",
                   help="regenerate the first term (original.png) and the result (result.png) in OUT_DIR, same seed")
    from .generate_flags import add_generator_flags
    add_generator_flags(g)
    g.add_argument("--seed", type=int, default=0, help="the seed of both pictures (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _collection_path(args: argparse.Namespace, terms) -> str:
    named = {t.collection for t in terms if t.collection is not None}
    if args.collection is not None:
        for path in named:
            if Path(path).resolve() != Path(args.collection).resolve():
                raise CliError(f"the item term of {path} is not from --collection {args.collection}", EXIT_USAGE)
        return args.collection
    if len(named) > 1:
        raise CliError(f"item terms name {len(named)} collections ({', '.join(sorted(named))}): use one, or "
                       "say which codes the result with --collection", EXIT_USAGE)
    if not named:
        raise CliError("no collection: name one in an item term (PHOTOS.smic:ID) or with --collection", EXIT_USAGE)
    return next(iter(named))


def _atoms_json(pairs, named) -> list[dict]:
    out = []
    for atom, weight in pairs:
        entry = {"atom": int(atom), "weight": round(float(weight), 6)}
        if named is not None:
            entry["labels"], entry["scores"] = named[atom].labels, named[atom].scores
        out.append(entry)
    return out


def _print_atoms(title: str, entries: list[dict]) -> None:
    print(title)
    if not entries:
        print("  (none)")
    for e in entries:
        labels = ", ".join(f"{label} ({score:.3f})" for label, score in zip(e.get("labels", []), e.get("scores", [])))
        print(f"  {e['weight']:+8.4f} x atom {e['atom']:>5}" + (f"  {labels}" if labels else ""))


def _images(args: argparse.Namespace, collection, first, result) -> dict:
    """original.png and result.png from the same seed; returns what was written."""
    import numpy as np

    from ..generate.configs import GeneratorMismatchError, default_generator
    from ..generate.pipelines import Generator
    from ..generate.writer import embedding_norm, save_png

    model = collection.header.get("model")
    name = args.generator or default_generator(model)
    if name is None:
        raise CliError(f"the collection's CLIP model {model!r} has no paired generator; pass --generator NAME|PATH")
    try:
        generator = Generator.from_pretrained(name, device=args.device, dtype=args.dtype, model=model,
                                              dim=collection.dim, allow_download=args.download)
    except GeneratorMismatchError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    notes = list(generator.notes)
    norm = embedding_norm("auto" if args.embedding_norm is None else args.embedding_norm,
                           collection.header.get("mean_norm"), generator, notes)
    pictures = generator.generate(np.stack([first, result]).astype(np.float32), [args.seed, args.seed],
                                  steps=args.steps, guidance=args.guidance, size=args.size, norm=norm)
    out = Path(args.images)
    paths = [out / "original.png", out / "result.png"]
    for picture, path in zip(pictures, paths):
        save_png(picture, path)
    return {"folder": str(out), "original": str(paths[0]), "result": str(paths[1]), "seed": args.seed,
            "size": list(pictures[0].size), "notes": notes}


def _cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def run(args: argparse.Namespace) -> int:
    from ..query.atoms import item_atoms
    from ..store.opener import open as open_collection
    from ..query.semantics import Term, changes, code_of, combine, parse_expression, resolve_term

    try:
        terms = parse_expression(args.expression, args.weight)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.images is not None:  # a missing extra fails before anything is computed or written
        from .._extras import require
        require("generate", "--images (generating pictures)")
        out = Path(args.images)
        if out.exists() and not out.is_dir():
            raise CliError(f"--images {out} is a file, not a folder", EXIT_USAGE)
    collection = open_collection(_collection_path(args, terms), dictionary=args.dictionary)
    cache = {"model": args.model, "cache_dir": args.cache_dir}
    try:
        vectors = [resolve_term(t.ref, collection, cache) for t in terms]
        for term, vector in zip(terms, vectors):
            if len(vector) != collection.dim:
                raise ValueError(f"{term.ref} has dimension {len(vector)}, the collection {collection.dim}: "
                                 "pass the --model that made the collection")
        result = combine([(t.weight, v) for t, v in zip(terms, vectors)], collection=collection)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    dictionary = collection.dictionary
    first: Term = terms[0]
    if first.kind == "item":  # the stored code, as smic explain shows it
        before = item_atoms(collection, first.value)
    else:
        before = code_of(vectors[0], dictionary)
    after = code_of(result, dictionary)
    diff = changes(before, after)
    named = name_atoms(dictionary.atoms, args, model=args.model or collection.header.get("model") or "",
                       top=args.label_top)[1] if args.labels else None
    summary: dict = {
        "command": "arith", "collection": str(collection.path),
        "terms": [{"weight": t.weight, "kind": t.kind, "value": t.value} for t in terms],
        "original": _atoms_json(before, named), "result": _atoms_json(after, named),
        "came": _atoms_json(diff["came"], named), "went": _atoms_json(diff["went"], named),
        "cosine_to_first": _cosine(result, vectors[0]),
    }
    if args.search:
        summary["nearest"] = run_search(collection, result, args).to_dicts()[0]
    if args.images is not None:
        summary["images"] = _images(args, collection, vectors[0], result)
    if args.json:
        print(json.dumps(summary, indent=1))
        return EXIT_OK
    expression = " ".join(f"{'+' if t.weight >= 0 else '-'} {abs(t.weight):g}*{t.ref}" for t in terms)
    print(f"{expression.removeprefix('+ ')}  (cosine to the first term {summary['cosine_to_first']:.4f})")
    _print_atoms(f"first term ({first.ref}): {len(before)} atoms", summary["original"])
    _print_atoms(f"result: {len(after)} atoms", summary["result"])
    _print_atoms("came", summary["came"])
    _print_atoms("went", summary["went"])
    if args.search:
        print_results(summary["nearest"], f"{len(summary['nearest'])} nearest items of {collection.path}")
    if args.images is not None:
        print(f"wrote {summary['images']['original']} and {summary['images']['result']} (seed {args.seed})")
    return EXIT_OK
