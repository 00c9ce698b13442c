"""``smic dictionary fit|info``: a dictionary shared by many collections (a .smicd file)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._npy import npy_inputs, open_embeddings
from .compress import add_coding_flags
from ._photos import DEFAULT_MODEL, add_encoder_flags, encode_photos
from ._shared import (EXIT_CODES_HELP, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, CliError, Stages, add_output_flags,
                      check_output, emit, load_embeddings, positive_float, positive_int, progress_bar, seconds_rows)

NAME = "dictionary"
HELP = "learn a shared dictionary (fit) or describe one (info)"
EPILOG = EXIT_CODES_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dictionary_command", metavar="fit|info", required=True)
    fit = sub.add_parser("fit", help="learn a dictionary from photos or .npy embeddings",
                         description="Learn a dictionary from photos (encoded with --model) or from "
                                     ".npy files of (N, d) embeddings.", epilog=EXIT_CODES_HELP)
    fit.add_argument("inputs", nargs="+", metavar="PHOTOS_or_EMBEDDINGS.npy",
                     help="image files and folders, or .npy files of embeddings (not both)")
    fit.add_argument("-o", "--output", required=True, metavar="FILE.smicd")
    add_encoder_flags(fit, npy=True)
    fit.add_argument("--atoms", type=positive_int, default=None, metavar="K",
                     help="dictionary size (default: about 3*sqrt(N), a power of two in 8..1024; at most 128 with --quality low)")
    fit.add_argument("--sparsity", type=positive_int, default=None, metavar="N", help="most atoms per item")
    fit.add_argument("--quality", choices=("low", "medium", "high"), default="medium",
                     help="rate-distortion preset: sparsity, step, price of a bit, largest K, learning "
                          "(default: medium)")
    fit.add_argument("--learn", choices=("rate", "sparsity"), default=None,
                     help="what the dictionary is learned for: the codes this quality writes (rate) or --sparsity atoms "
                          "per item (sparsity, earlier releases' learning); default: from --quality (rate for low and "
                          "medium, sparsity for high)")
    fit.add_argument("--step", type=positive_float, default=None, help="quantizer step of coefficient ratios")
    add_coding_flags(fit)
    fit.add_argument("--iterations", type=positive_int, default=10, help="K-SVD iterations (default: 10)")
    fit.add_argument("--seed", type=int, default=0, help="seed of K-SVD and of the sample (default: 0)")
    fit.add_argument("--sample", type=positive_int, default=None, metavar="N",
                     help="learn on at most N items, a uniform sample drawn with --seed (default: 50000)")
    fit.add_argument("--transform", action="store_true",
                     help="also learn a transform-coded refinement layer on the same items (format version 4): "
                          "collections compressed with this dictionary and --residual-step code each item's "
                          "residual in its class's principal axes (about a third fewer bits than the one-table "
                          "refinement at cosine 0.95 on held-out sentence embeddings; BENCHMARKS.md)")
    fit.add_argument("--transform-classes", type=positive_int, default=None, metavar="C",
                     help="classes of the transform, groups of atoms with axes of their own (default: 16)")
    fit.add_argument("--transform-quantiser", choices=("dependent", "greedy", "trellis"), default=None,
                     help="how the transform's levels are chosen: dependent quantisation (the default; about "
                          "5-8%% fewer bits, read only by smic-fast builds that know it) or greedy / trellis "
                          "(readable by every build with the transform layer)")
    add_output_flags(fit)
    info = sub.add_parser("info", help="describe a .smicd file")
    info.add_argument("dictionary", metavar="FILE.smicd")
    add_output_flags(info, force=False)


def _fit(args: argparse.Namespace) -> int:
    import smic_fast as smic
    from ..coding.dictionary import LEARN_SAMPLE

    out = check_output(args.output, args.force)
    stages = Stages()
    npy = npy_inputs(args.inputs)
    skipped: list[dict[str, str]] = []
    with stages.stage("check embeddings" if npy else "encode images"):
        if npy:  # memory-mapped: only the learning sample is read into memory
            embeddings = open_embeddings(args.inputs).blocks
        else:
            photos = encode_photos(args.inputs, args, args.model or DEFAULT_MODEL)
            embeddings, skipped = [photos.embeddings], photos.skipped
    n_items = sum(len(e) for e in embeddings)
    sample = args.sample or LEARN_SAMPLE
    for flag, value in (("--transform-classes", args.transform_classes),
                        ("--transform-quantiser", args.transform_quantiser)):
        if value is not None and not args.transform:
            raise CliError(f"{flag} needs --transform", EXIT_USAGE)
    with stages.stage("learn dictionary"):
        with progress_bar(args.iterations, "learning dictionary", args.quiet) as bar:
            dictionary = smic.Dictionary.fit(
                embeddings, args.atoms, args.sparsity, quality=args.quality, step=args.step,
                precision=args.precision, n_iter=args.iterations, seed=args.seed, rd_lambda=args.rd_lambda,
                layout=args.layout, paper_bits=args.paper_bits,
                progress=lambda i, e: bar.update(1), sample_size=sample, learn=args.learn)
    if args.transform:
        from ..coding.dictionary import gather_rows, learning_sample
        from ..coding.transform import learn_transform

        with stages.stage("learn transform"):
            rows = gather_rows(embeddings, learning_sample(n_items, sample, args.seed))
            try:
                dictionary = learn_transform(dictionary, rows, n_classes=args.transform_classes,
                                             quantiser=args.transform_quantiser or "dependent")
            except ValueError as error:
                raise CliError(f"cannot learn the transform: {error}", EXIT_USAGE) from None
    dictionary.save(out)
    summary = {"command": "dictionary fit", "output": str(out), "items": n_items,
               "trained_on": min(n_items, sample), "skipped": skipped, **_describe(dictionary, out),
               "seconds": {**stages.seconds, "total": stages.total()}}
    emit(summary, [("items", f"{n_items:,} embeddings"),
                   ("trained on", f"{summary['trained_on']:,} embeddings"), ("inputs skipped", len(skipped)),
                   *_rows(summary), *seconds_rows(stages.seconds)], args.json, title=f"wrote {out}")
    return EXIT_PARTIAL if skipped else EXIT_OK


def _describe(dictionary, path: Path) -> dict:
    params = dictionary.params
    transform = dictionary._core.transform
    return {"n_atoms": dictionary.n_atoms, "dim": dictionary.dim, "precision": dictionary.precision,
            "layout": params.layout, "n_nonzero": params.s_max, "step": params.step,
            "hash": dictionary.hash, "file_bytes": Path(path).stat().st_size,
            "transform": None if transform is None else {"classes": transform.n_classes, "rank": transform.rank,
                                                           "quantiser": transform.quantiser}}


def _rows(d: dict) -> list[tuple[str, object]]:
    return [("atoms", d["n_atoms"]), ("dimension", d["dim"]), ("precision", d["precision"]),
            ("layout", d["layout"]), ("most atoms per item", d["n_nonzero"]), ("quantizer step", d["step"]),
            ("transform", "none" if d["transform"] is None else
             f"{d['transform']['classes']} classes, {d['transform']['rank']} axes each, "
             f"{d['transform']['quantiser']} quantiser"),
            ("file size", f"{d['file_bytes']:,} bytes"), ("hash (sha256)", d["hash"])]


def _info(args: argparse.Namespace) -> int:
    import smic_fast as smic

    dictionary = smic.Dictionary.load(args.dictionary)
    summary = {"command": "dictionary info", "path": str(args.dictionary), **_describe(dictionary, args.dictionary)}
    emit(summary, _rows(summary), args.json, title=str(args.dictionary))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    return _fit(args) if args.dictionary_command == "fit" else _info(args)
