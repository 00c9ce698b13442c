"""``smic eval PHOTOS_or_embeddings.npy --out report/``: rate–fidelity curves of smic-fast's
settings against the SMIC paper's layout, a scalar baseline and FAISS PQ, k-means and (on request)
residual quantisation, OPQ, LSQ and RaBitQ, as an HTML report with
PNG plots, results.json and results.csv (needs the ``[eval]`` extra: faiss-cpu, matplotlib).
With ``--holdout 0.2`` every method learns on 80% of the items and the report leads with the
marginal bits of the other 20% (and the Gaussian bounds of the training part).
With ``--generator`` the report also shows photos beside their regenerations (``_eval_grid.py``)."""
from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._extras import require
from ._eval_grid import add_grid_flags, check_generator, load_generator, make_grid
from ._photos import add_encoder_flags, encode_photos
from ._shared import (EXIT_CODES_HELP, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, CliError, add_output_flags, add_renamed, emit,
                      load_embeddings, positive_int)

NAME = "eval"
HELP = "sweep codec settings and baselines over photos or embeddings; write a rate-fidelity report"
EPILOG = EXIT_CODES_HELP
_METHODS = ("smic", "smic-shared", "smic-1", "paper", "scalar", "pq", "kmeans", "rq", "opq", "lsq", "rabitq")
_DEFAULT_METHODS = _METHODS[:7]  # the FAISS rq, opq, lsq, rabitq only on request (minutes of training)
_FAISS_NAMES = {"pq": "PQ", "kmeans": "k-means", "rq": "residual quantisation", "opq": "OPQ", "lsq": "LSQ",
                "rabitq": "RaBitQ"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="PHOTOS|EMBEDDINGS.npy",
                   help="image files and folders (encoded with --model), or one .npy of (N, d) embeddings")
    p.add_argument("-o", "--output", dest="out", required=True, metavar="FOLDER",
                   help="report folder: index.html, PNG plots, results.json, results.csv")
    add_renamed(p, "--out", "--output", "out")
    add_encoder_flags(p)
    p.add_argument("--quick", action="store_true", help="a few points per method (seconds; for a first look)")
    p.add_argument("--atoms", type=positive_int, action="append", default=None, metavar="K",
                   help="dictionary size to sweep (repeat for several; default: the default K for N, "
                        "about 3*sqrt(N), half of it, and twice it where N is at least 16 times K)")
    p.add_argument("--methods", default=",".join(_DEFAULT_METHODS),
                   help=f"comma-separated subset of {','.join(_METHODS)} (default: all but the FAISS peers rq, "
                        "opq, lsq and rabitq; rq's, opq's and lsq's training takes minutes)")
    p.add_argument("--holdout", type=_fraction, default=None, metavar="FRACTION",
                   help="hold out this fraction of the items (e.g. 0.2; a permutation seeded by --seed): every "
                        "method learns its dictionary, tables or codebooks on the rest and codes the held-out "
                        "items too; the report leads with their marginal bits, beside the Gaussian and "
                        "Gaussian-mixture bounds of the training part, then the in-collection view (the "
                        "training part, total bits with its model). Not with --train")
    p.add_argument("--train", default=None, metavar="EMBEDDINGS.npy",
                   help="embeddings to learn the shared dictionary on (default: the collection itself; "
                        "not with --holdout)")
    p.add_argument("--pixels", default=None, metavar="N|PIXELS.npy",
                   help="with embeddings: each item's pixel count (one number for all, or a .npy of N), "
                        "for bits per pixel")
    p.add_argument("--queries", type=positive_int, default=None,
                   help="query items for recall@10 (default: 256, 64 with --quick)")
    p.add_argument("--iterations", type=positive_int, default=None, help="K-SVD iterations (default: 10, 4 quick)")
    p.add_argument("--learn", choices=("rate", "sparsity"), default="rate",
                   help="what smic's atoms are learned for: each setting's own codes (rate, default) or "
                        "n_nonzero atoms per item once per K (sparsity, the sweep of earlier releases)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of dictionary learning, PQ, queries, the --holdout split and the grid's noise "
                        "(default: 0)")
    add_grid_flags(p)
    add_output_flags(p)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # nan fails too
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (e.g. 0.2), got {text!r}")
    return value


def _pixels(text: str | None, n: int) -> list[int] | None:
    if text is None:
        return None
    if text.isdigit():
        if int(text) < 1:
            raise CliError("--pixels must be >= 1", EXIT_USAGE)
        return [int(text)] * n
    values = np.load(text, allow_pickle=False) if Path(text).is_file() else None
    if values is None or values.shape != (n,) or values.dtype.kind not in "iu" or (values <= 0).any():
        raise CliError(f"--pixels {text}: expected a number or a .npy of {n} positive integers", EXIT_USAGE)
    return [int(v) for v in values]


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CliError(f"output {out} exists and is not a folder", EXIT_USAGE)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CliError(f"output folder {out} is not empty; pass --force to write into it", EXIT_USAGE)
    parent = out.absolute().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {out}: folder {parent} does not exist or is not writable")


def _peer_label(entry: dict) -> str:
    """'kmeans k=16 (4.00 bits, cos 0.4630; nearest smic-1 K=16 ...: 4.08 bits)'."""
    settings = " ".join(f"{k}={v}" for k, v in entry["settings"].items())
    text = f"{entry['method']} {settings} ({entry['bits']:.2f} bits, cos {entry['cosine']:.4f}"
    near = entry["nearest"]
    if near is not None:
        text += f"; nearest {near['method']} " + " ".join(f"{k}={v}" for k, v in near["settings"].items()) + \
            f": {near['bits']:.2f} bits"
    return text + ")"


def run(args: argparse.Namespace) -> int:
    from ..evaluation import SweepConfig, run_sweep, write_report
    from ..evaluation.report import bound_at
    from ..evaluation.sweep import comparison_table, holdout_split, peer_points_beaten

    out = Path(args.out)
    _prepare_out(out, args.force)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in _METHODS]
    if unknown or not methods:
        raise CliError(f"--methods: unknown {unknown or 'empty list'}; choose among {','.join(_METHODS)}", EXIT_USAGE)
    if args.holdout is not None and args.train:
        raise CliError("--holdout and --train are exclusive: --holdout learns every model on part of the input, "
                       "--train learns the shared dictionary on other embeddings", EXIT_USAGE)
    require("eval", "the report's plots", ("matplotlib",))  # a missing extra fails before any work
    for method, name in _FAISS_NAMES.items():
        if method in methods:
            require("eval", f"the FAISS {name} baseline (--methods {method})", ("faiss",))
    if "rabitq" in methods:
        import faiss
        if not hasattr(faiss, "IndexRaBitQ"):
            raise CliError(f"--methods rabitq needs FAISS 1.11 or later (IndexRaBitQ); this is {faiss.__version__}",
                           EXIT_USAGE)
    generator_info = check_generator(args, methods)  # a bad generator fails before any work
    skipped: list[dict[str, str]] = []
    photo_paths = ids = clip_model = None
    if len(args.inputs) == 1 and args.inputs[0].endswith(".npy"):
        embeddings = load_embeddings(args.inputs[0], min_rows=2)
        pixels = _pixels(args.pixels, len(embeddings))
        source = args.inputs[0]
    else:
        if args.pixels is not None:
            raise CliError("--pixels is for embeddings; with photos the pixel counts come from the images", EXIT_USAGE)
        photos = encode_photos(args.inputs, args, args.model)
        if len(photos.embeddings) < 2:
            raise CliError("an evaluation needs at least 2 readable photos")
        embeddings, pixels, skipped = photos.embeddings, photos.pixels_or_none, photos.skipped
        source = f"{len(embeddings)} photos encoded with {photos.model}"
        photo_paths, ids, clip_model = photos.paths, photos.ids, args.model
    train = load_embeddings(args.train, "training embeddings", min_rows=2) if args.train else None
    if train is not None and train.shape[1] != embeddings.shape[1]:
        raise CliError(f"--train has dimension {train.shape[1]}, the collection {embeddings.shape[1]}", EXIT_USAGE)
    overrides = {"methods": methods, "seed": args.seed, "learn": args.learn}
    if args.atoms:
        overrides["n_atoms"] = tuple(args.atoms)
    if args.queries:
        overrides["queries"] = args.queries
    if args.iterations:
        overrides["n_iter"] = args.iterations
    config = SweepConfig.quick(**overrides) if args.quick else SweepConfig(**overrides)
    collection = embeddings  # what the in-collection points coded: the training part with --holdout
    if args.holdout is not None:
        try:
            train_rows, _ = holdout_split(len(embeddings), args.holdout, args.seed)
        except ValueError as error:
            raise CliError(f"--holdout: {error}", EXIT_USAGE) from None
        collection = embeddings[train_rows]
        photo_paths = None if photo_paths is None else [photo_paths[i] for i in train_rows]
        ids = None if ids is None else [ids[i] for i in train_rows]
    generator = None if generator_info is None else load_generator(
        args, generator_info, None if photo_paths is None else photos.model, embeddings.shape[1])
    sweep = run_sweep(embeddings, config, pixels=pixels, train=train, holdout=args.holdout, progress=not args.quiet)
    sweep.meta["source"] = source
    sweep.meta["skipped"] = skipped
    grid = grid_failure = None
    if generator is not None:
        grid_pixels = pixels if pixels is None or args.holdout is None else [pixels[i] for i in train_rows]
        grid, grid_failure = make_grid(args, sweep, collection, generator, config, photos=photo_paths, ids=ids,
                                       pixels=grid_pixels, clip_model=clip_model)
        sweep.meta["grid"] = grid.to_dict() if grid is not None else {"error": grid_failure}
    # Write into a fresh folder beside the output, then move the files: a failure leaves no
    # half-written report.
    with tempfile.TemporaryDirectory(dir=out.absolute().parent, prefix=".smic-eval-") as tmp:
        files = write_report(sweep, tmp, grid=None if grid is None else grid.columns())
        out.mkdir(exist_ok=True)
        written = {}
        for name, path in files.items():
            target = out / path.name
            shutil.move(str(path), target)
            written[name] = str(target)
    table = comparison_table(sweep.points)
    summary = {"command": "eval", "output": str(out), "items": sweep.meta["items"], "dim": sweep.meta["dim"],
               "points": len(sweep.points), "seconds": sweep.meta["seconds"], "files": written,
               "bits_per_item_at_cosine": table, "skipped": skipped}
    if generator is not None:
        summary["grid"] = sweep.meta["grid"]
    levels = list(next(iter(table.values()), {}).keys())
    lines = [("items", sweep.meta["items"]), ("points", len(sweep.points)), ("seconds", sweep.meta["seconds"]),
             ("report", str(out / "index.html"))]
    if sweep.held_out:
        held = comparison_table(sweep.held_out, rate="marginal_bits_per_item")
        bounds = sweep.meta["bounds"]
        for key in ("gaussian", "mixture"):
            held[f"{key} bound"] = {lvl: bound_at(bounds, key, float(lvl)) for lvl in levels}
        summary["holdout"] = {k: v for k, v in sweep.meta["holdout"].items() if k != "held_out_rows"}
        summary["held_out_marginal_bits_per_item_at_cosine"] = held
        lines[0] = ("items", f"{sweep.meta['items']} learned on, {sweep.meta['holdout']['held_out_items']} held out")
        lines += [(f"held out: marginal bits/item at cos {'/'.join(levels)}: {m}",
                   " / ".join("-" if v is None else f"{v:.1f}" for v in row.values())) for m, row in held.items()]
        peers = peer_points_beaten(sweep.held_out)
        summary["held_out_peer_points"] = peers
        if peers:
            missed = [p for p in peers if p["beaten_by"] is None]
            lines.append(("held out: peer points matched or beaten by a smic point at no more bits",
                          f"{len(peers) - len(missed)} of {len(peers)}"
                          + "".join(f"; not {_peer_label(p)}" for p in missed)))
    prefix = "in collection: total " if sweep.held_out else ""
    rows = lines + [(f"{prefix}bits/item at cos {'/'.join(levels)}: {m}",
                     " / ".join("-" if v is None else f"{v:.1f}" for v in row.values())) for m, row in table.items()]
    if grid is not None:
        rows.append(("regenerations", f"{len(grid.rows)} items at "
                     + ", ".join(f"{r:.1f}" for r in grid.rates) + " bits/item"))
    emit(summary, rows, args.json, title=f"wrote {out}")
    return EXIT_PARTIAL if skipped or grid_failure else EXIT_OK
