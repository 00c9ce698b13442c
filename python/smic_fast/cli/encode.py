"""``smic encode FILES``: code images or .npy embeddings to single-item codes, printed one per
line. With ``--server URL`` a running ``smic serve`` codes them (the [serve] extra); with
``--dictionary FILE.smicd`` they are coded here, in this process, to the same bytes."""
from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterator

import numpy as np

from ._photos import DEFAULT_MODEL, add_encoder_flags, encode_photos
from ._shared import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, CliError, positive_int

NAME = "encode"
HELP = ("code images or .npy embeddings to single-item codes (prints each item's code and bits): with a running "
        "smic serve (--server) or here (--dictionary)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="FILE",
                   help="image files (and, with --dictionary, folders), or .npy files of (N, d) embeddings")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="URL", help="code with this service, e.g. http://127.0.0.1:8000")
    where.add_argument("--dictionary", metavar="FILE.smicd",
                       help="code here with this dictionary, no service: the bytes `Dictionary.encode` and a "
                            "server with the same dictionary give")
    p.add_argument("--token-file", metavar="FILE", default=None, help="--server: bearer token for a server started "
                                                                       "with one")
    p.add_argument("--collection", default=None,
                   help="--server: code with this served collection's dictionary (default: the server's --dictionary)")
    p.add_argument("--append", action="store_true", help="--server: append to --collection (durable) instead of "
                                                         "only coding (here: use `smic append`)")
    p.add_argument("--batch", type=positive_int, default=32, help="--server: items per request (default 32)")
    add_encoder_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="one JSON object per item instead of a table")


def _print(name: str, code: bytes, cosine: float | None, item_id: str | None, as_json: bool) -> None:
    row: dict[str, object] = {"input": name, "code": base64.b64encode(code).decode("ascii"), "bits": 8 * len(code)}
    if cosine is not None:
        row["cosine"] = round(cosine, 6)
    if item_id is not None:
        row["id"] = item_id
    print(json.dumps(row) if as_json else "\t".join(str(v) for v in row.values()))


def _npy_batches(paths: list[str], batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(names "file.npy:row", float32 rows) of each .npy, `batch` rows at a time, checked."""
    from ..sources.inputs import check_finite, map_embeddings

    for path in paths:
        try:
            rows = map_embeddings(path)
            check_finite(path, rows)
        except (OSError, ValueError) as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        for start in range(0, len(rows), batch):
            part = np.asarray(rows[start:start + batch], dtype=np.float32)
            yield [f"{path}:{start + i}" for i in range(len(part))], part


def run(args: argparse.Namespace) -> int:
    npy = [p for p in args.inputs if p.endswith(".npy")]
    if npy and len(npy) != len(args.inputs):
        raise CliError("give image files or .npy files, not both", EXIT_USAGE)
    if args.dictionary is not None:
        for flag, given in (("--append", args.append), ("--collection", args.collection is not None),
                            ("--token-file", args.token_file is not None)):
            if given:
                raise CliError(f"{flag} is for --server (coding here, use `smic append` to add to a collection)",
                               EXIT_USAGE)
        return _run_here(args, bool(npy))
    return _run_server(args, bool(npy))


def _run_here(args: argparse.Namespace, npy: bool) -> int:
    """Code in this process: the server's batch path (one choice, one range coding per batch)."""
    from ..coding.dictionary import Dictionary

    dictionary = Dictionary.load(args.dictionary)
    if npy:
        batches = list(_npy_batches(args.inputs, 4096))
        skipped = 0
    else:
        photos = encode_photos(args.inputs, args, args.model or DEFAULT_MODEL)
        batches = [(photos.ids, photos.embeddings)] if len(photos.ids) else []
        skipped = len(photos.skipped)
        for entry in photos.skipped:
            print(f"smic encode: skipped {entry.get('path')}: {entry.get('reason')}", file=sys.stderr)
    for names, rows in batches:
        if rows.shape[1] != dictionary.dim:
            raise CliError(f"{names[0]}: embeddings of dimension {rows.shape[1]}, the dictionary codes "
                           f"{dictionary.dim}", EXIT_USAGE)
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        symbols = dictionary.items_symbols(unit.astype(np.float32))
        data, offsets = dictionary.encode_items(symbols, 1)
        cosine = np.einsum("ij,ij->i", dictionary.reconstruct(symbols).astype(np.float64), unit.astype(np.float64))
        for j, name in enumerate(names):
            _print(name, bytes(data[offsets[j]:offsets[j + 1]]), float(cosine[j]), None, args.json)
    coded = sum(len(n) for n, _ in batches)
    return EXIT_FAILURE if skipped and not coded else EXIT_PARTIAL if skipped else EXIT_OK


def _run_server(args: argparse.Namespace, npy: bool) -> int:
    from pathlib import Path

    from .._extras import require

    require("serve", "smic encode --server", ("httpx",))
    from ..serve.client import Client, ServeError

    if args.append and args.collection is None:
        raise CliError("--append needs --collection", EXIT_USAGE)
    token = Path(args.token_file).read_text(encoding="utf-8").strip() if args.token_file else None
    failed = 0
    with Client(args.server, token=token) as client:
        work: list[tuple[list[str], dict]] = []
        if npy:
            work = [(names, {"embeddings": rows}) for names, rows in _npy_batches(args.inputs, args.batch)]
        else:
            for start in range(0, len(args.inputs), args.batch):
                names = args.inputs[start:start + args.batch]
                work.append((names, {"images": names}))
        for names, payload in work:
            try:
                if args.append:
                    items = client.append(args.collection, payload.get("embeddings"), images=payload.get("images"))
                else:
                    items = client.encode(payload.get("embeddings"), images=payload.get("images"),
                                          collection=args.collection, return_cosine=True)
            except (ServeError, OSError) as exc:
                print(f"smic encode: {', '.join(names[:3])}{'...' if len(names) > 3 else ''}: {exc}", file=sys.stderr)
                failed += len(names)
                continue
            for name, item in zip(names, items):
                _print(name, item.code, item.cosine, item.id, args.json)
    total = sum(len(n) for n, _ in work)
    return EXIT_FAILURE if failed == total and total else EXIT_PARTIAL if failed else EXIT_OK
