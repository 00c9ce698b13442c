"""``smic encode --server URL FILES``: code images or .npy embeddings with a running
``smic serve`` (the [serve] extra)."""
from __future__ import annotations

import argparse
import base64
import json
import sys

from ._shared import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, CliError

NAME = "encode"
HELP = "code images or .npy embeddings with a running smic serve (prints each item's code and bits)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="FILE", help="image files, or .npy files of (N, d) embeddings")
    p.add_argument("--server", required=True, metavar="URL", help="the service, e.g. http://127.0.0.1:8000")
    p.add_argument("--token-file", metavar="FILE", default=None, help="bearer token for a server started with one")
    p.add_argument("--collection", default=None,
                   help="code with this served collection's dictionary (default: the server's --dictionary)")
    p.add_argument("--append", action="store_true", help="append to --collection (durable) instead of only coding")
    p.add_argument("--batch", type=int, default=32, help="items per request (default 32)")
    p.add_argument("--json", action="store_true", help="one JSON object per item instead of a table")


def run(args: argparse.Namespace) -> int:
    from .._extras import require

    require("serve", "smic encode --server", ("httpx",))
    from pathlib import Path

    import numpy as np

    from ..client import Client, ServeError

    if args.append and args.collection is None:
        raise CliError("--append needs --collection", EXIT_USAGE)
    if args.batch < 1:
        raise CliError("--batch must be >= 1", EXIT_USAGE)
    token = Path(args.token_file).read_text(encoding="utf-8").strip() if args.token_file else None
    npy = [p for p in args.inputs if p.endswith(".npy")]
    if npy and len(npy) != len(args.inputs):
        raise CliError("give image files or .npy files, not both", EXIT_USAGE)
    failed = 0
    with Client(args.server, token=token) as client:
        work: list[tuple[list[str], dict]] = []
        if npy:
            for path in npy:
                rows = np.load(path, mmap_mode="r")
                if rows.ndim != 2:
                    raise CliError(f"{path}: expected an (N, d) array, got shape {rows.shape}", EXIT_USAGE)
                for start in range(0, len(rows), args.batch):
                    part = np.asarray(rows[start:start + args.batch], dtype=np.float32)
                    work.append(([f"{path}:{start + i}" for i in range(len(part))], {"embeddings": part}))
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
                row = {"input": name, "code": base64.b64encode(item.code).decode("ascii"), "bits": item.bits}
                if item.cosine is not None:
                    row["cosine"] = round(item.cosine, 6)
                if item.id is not None:
                    row["id"] = item.id
                print(json.dumps(row) if args.json else "\t".join(str(v) for v in row.values()))
    total = sum(len(n) for n, _ in work)
    return EXIT_FAILURE if failed == total and total else EXIT_PARTIAL if failed else EXIT_OK
