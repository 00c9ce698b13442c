"""``smic search photos.smic --text "a dog on a beach" | --image query.jpg | --like ID``: the
collection's nearest items to a text, a picture or one of its own items, scored on the stored
codes without decoding the collection (see :mod:`smic_fast.query.search`)."""
from __future__ import annotations

import argparse
import json

from ._shared import EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE, CliError, positive_int

NAME = "search"
HELP = "find the items of a .smic file nearest to a text, an image or one of its items (no decoding)"
EPILOG = EXIT_CODES_HELP


def add_query_model_flags(p: argparse.ArgumentParser) -> None:
    """--model, --cache-dir, --dictionary (shared with smic arith)."""
    p.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="the CLIP model for --text / --image: a pairing or architecture exported with `smic export-text` "
                        "(texts) and `smic export-clip` (images), or a text.onnx / image .onnx path (default: the model "
                        "recorded in the collection)")
    p.add_argument("--cache-dir", default=None, help="cache of exported models (overrides $SMIC_HOME)")
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="the shared dictionary, for a collection coded with one")


def add_search_flags(p: argparse.ArgumentParser) -> None:
    """--top, --nprobe, --rerank, --threads (shared with smic arith --search)."""
    p.add_argument("--top", type=positive_int, default=10, metavar="K", help="results to print (default: 10)")
    p.add_argument("--nprobe", type=positive_int, default=None, metavar="N",
                   help="scan only the N lists (items grouped by a k-means over the codes) whose centroids score highest: "
                        "faster, approximate (default: every item, exact)")
    p.add_argument("--rerank", type=positive_int, default=None, metavar="R",
                   help="for a collection with a refinement layer (--residual-step): re-score the R best candidates "
                        "with their refined embeddings (default: the atoms' scores)")
    p.add_argument("--threads", type=positive_int, default=None, help="search threads (default: all cores)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", metavar="PHOTOS.smic")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", metavar="TEXT", help="a text query, through the collection model's text tower")
    query.add_argument("--image", metavar="PATH", help="an image query, through the collection model's image tower")
    query.add_argument("--like", metavar="ID", help="the items nearest to this item of the collection (itself first)")
    add_search_flags(p)
    add_query_model_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def open_collection(args: argparse.Namespace):
    from ..store.opener import open as open_collection
    return open_collection(args.collection, dictionary=args.dictionary)


def run_search(collection, vector, args: argparse.Namespace):
    """The search of the --top/--nprobe/--rerank/--threads flags, usage errors as CliError."""
    try:
        return collection.search(vector, k=args.top, nprobe=args.nprobe, rerank=args.rerank, n_threads=args.threads)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def result_rows(result) -> list[dict]:
    return result.to_dicts()[0]


def print_results(rows: list[dict], title: str) -> None:
    print(title)
    width = max([len("id")] + [len(r["id"]) for r in rows])
    print(f"  {'rank':>4}  {'score':>8}  {'id':<{width}}")
    for rank, r in enumerate(rows, 1):
        print(f"  {rank:>4}  {r['score']:>8.4f}  {r['id']:<{width}}")


def query_vector(args: argparse.Namespace, collection):
    """The query embedding of --text, --image or --like."""
    from ..query.semantics import resolve_term

    cache = {"model": args.model, "cache_dir": args.cache_dir}
    if args.like is not None:
        if collection._core.find(args.like) is None:
            raise CliError(f"no item {args.like!r} in {args.collection} ({len(collection)} items)", EXIT_USAGE)
        return collection[args.like], {"like": args.like}
    if args.text is not None:
        if not args.text.strip():
            raise CliError("--text is empty", EXIT_USAGE)
        ref, query = "text:" + args.text, {"text": args.text}
    else:
        ref, query = "image:" + args.image, {"image": args.image}
    try:
        vector = resolve_term(ref, collection, cache)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if len(vector) != collection.dim:
        raise CliError(f"the model {cache.get('model') or collection.header.get('model')} gives dimension {len(vector)}, "
                       f"the collection has {collection.dim}: pass the --model that made it", EXIT_USAGE)
    return vector, query


def run(args: argparse.Namespace) -> int:
    from ..query.search import index_info

    collection = open_collection(args)
    vector, query = query_vector(args, collection)
    result = run_search(collection, vector, args)
    rows = result_rows(result)
    if args.json:
        print(json.dumps({"command": "search", "collection": args.collection, "query": query, "top": args.top,
                          "nprobe": args.nprobe, "rerank": args.rerank, "results": rows,
                          "index": index_info(collection)}, indent=1))
        return EXIT_OK
    what = next(f"{k} {v!r}" for k, v in query.items())
    print_results(rows, f"{len(rows)} nearest items of {args.collection} to {what}"
                  + (f" (nprobe {args.nprobe})" if args.nprobe else ""))
    return EXIT_OK
