"""``smic compress PHOTOS... -o photos.smic``: photos to CLIP embeddings to one .smic file;
``smic compress 'shards/{00000..00059}.tar' -o out.smic``: webdataset tar shards;
``smic compress CLIP_RETRIEVAL_FOLDER -o out.smic``: clip-retrieval embeddings (img_emb/ +
metadata/), coded as they are; ``smic compress E.npy [MORE.npy ...] -o out.smic``: embeddings a
user already has, memory-mapped and coded a batch at a time. ``--ray`` (``--ray-address A``) runs the first
three on a Ray cluster into the sharded collection ``out.smic.d/`` (smic_fast.distributed)."""
from __future__ import annotations

import argparse
import os
import time

from ._npy import clip_retrieval_embeddings, npy_inputs, open_embeddings
from ._photos import DEFAULT_MODEL, EncodedPhotos, add_encoder_flags, encode_photos, encode_tars
from ._shared import (EXIT_CODES_HELP, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, CliError, Stages, add_output_flags,
                      add_renamed, check_output, emit, positive_float, positive_int, progress_bar, seconds_rows)

NAME = "compress"
HELP = ("compress photos (files, folders, webdataset tars) or embeddings (.npy, clip-retrieval folders) into one "
        ".smic file, or on Ray (--ray) into a sharded one")
EPILOG = EXIT_CODES_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files and folders (walked recursively; ids are paths relative to their common "
                        "root); webdataset .tar shards or brace patterns such as 'shards/{00000..00059}.tar' "
                        "(ids are the samples' keys); a clip-retrieval folder (img_emb/img_emb_N.npy + "
                        "metadata/metadata_N.parquet, ids from image_path, coded without re-encoding); or .npy "
                        "files of (N, d) float16/float32 embeddings, memory-mapped and stacked in order (one "
                        "kind per call)")
    p.add_argument("-o", "--output", required=True, metavar="PATH.smic", help="the collection file to write")
    add_npy_flags(p)
    add_encoder_flags(p, npy=True)
    p.add_argument("--dictionary", default=None, metavar="FILE.smicd",
                   help="code with this shared dictionary (the file stores only its hash); default: learn "
                        "one on the collection and store it in the file")
    p.add_argument("--atoms", type=positive_int, default=None, metavar="K",
                   help="dictionary size (default: about 3*sqrt(N), a power of two in 8..1024; at most 128 with --quality low)")
    p.add_argument("--sparsity", type=positive_int, default=None, metavar="N",
                   help="most atoms per item (default: from --quality)")
    p.add_argument("--quality", choices=("low", "medium", "high"), default="medium",
                   help="rate-distortion preset: sparsity, quantizer step, the price of a bit, the largest K "
                        "and what the atoms are learned for; low: one atom of at most 128, about 8 bits per "
                        "item or less (default: medium)")
    p.add_argument("--learn", choices=("rate", "sparsity"), default=None,
                   help="what the dictionary is learned for: the codes this quality writes (rate) or --sparsity atoms "
                        "per item (sparsity, earlier releases' learning); default: from --quality (rate for low and "
                        "medium, sparsity for high)")
    p.add_argument("--step", type=positive_float, default=None,
                   help="quantizer step of the coefficient ratios (default: from --quality)")
    p.add_argument("--residual-step", type=_residual_step, default=None, metavar="STEP",
                   help="add a refinement layer: each item's residual after its atoms, quantised with STEP "
                        "(1e-4..1; e.g. 0.02) and range-coded, for cosines above what atoms reach (~0.97), "
                        "at hundreds of bits per item (default: none, a few bits per item)")
    p.add_argument("--transform", action="store_true",
                   help="with --residual-step and a dictionary learned here: learn a transform-coded refinement "
                        "layer with it (per-class principal axes; format version 4). The file carries the "
                        "transform (~4.7 MB at d = 384): it pays in large collections; `smic dictionary fit "
                        "--transform` shares one instead (default: one table for every dimension)")
    add_coding_flags(p)
    p.add_argument("--iterations", type=positive_int, default=10, help="K-SVD iterations (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="dictionary learning seed (default: 0)")
    p.add_argument("--sample", type=positive_int, default=None, metavar="N",
                   help="learn the dictionary on at most N items, a uniform sample drawn with --seed "
                        "(default: 50000)")
    p.add_argument("--chunk-size", type=positive_int, default=None, metavar="N",
                   help="items per independently decodable chunk: smaller reads one item faster, larger codes a "
                        "little tighter (default: 256)")
    p.add_argument("--index-model", choices=("auto", "order0", "remaining"), default="auto",
                   help="how each item's other atoms are coded: remaining (the table of the smallest atom still to "
                        "code, format version 3), order0 (one table, what earlier versions wrote) or auto, the "
                        "smaller file (default: auto)")
    add_ray_flags(p)
    add_output_flags(p)


def add_coding_flags(p: argparse.ArgumentParser) -> None:
    """--atom-precision, --rd-lambda, --layout, --paper-bits: how a learned dictionary codes and
    is stored (shared with smic dictionary fit)."""
    p.add_argument("--atom-precision", dest="precision", choices=("float16", "int8"), default="float16",
                   help="how a learned dictionary's atoms are stored (default: float16)")
    add_renamed(p, "--precision", "--atom-precision", "precision", choices=("float16", "int8"))
    p.add_argument("--rd-lambda", type=positive_float, default=None, metavar="L",
                   help="the price of a bit in cosine: each item keeps an atom only if it buys more than L bits' "
                        "worth of fidelity (default: from --quality)")
    p.add_argument("--layout", choices=("smic", "paper"), default="smic",
                   help="smic: range-coded atoms and coefficients; paper: the SMIC paper's fixed-length code, as a "
                        "baseline (default: smic)")
    p.add_argument("--paper-bits", type=positive_int, default=8, metavar="B",
                   help="--layout paper: bits per coefficient (default: 8)")


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    """--ray, --ray-address, --workers, --shard-size: a distributed run (pip install 'smic-fast[ray]')."""
    g = p.add_argument_group("distributed run (pip install 'smic-fast[ray]')")
    g.add_argument("--ray", action="store_true",
                   help="run on Ray: a local cluster on this machine, or the one --ray-address names. Writes "
                        "OUT.smic.d/ (shards, dictionary.smicd, manifest.json, errors.jsonl), which every smic "
                        "command reads as one collection; started again, a run resumes, skipping the shards "
                        "already written; `smic merge` packs it into OUT.smic")
    g.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="the Ray cluster to run on, as ray.init takes it (auto, ray://HOST:10001); implies --ray")
    g.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="--ray: encoding actors (default: one per GPU, else the cluster's CPUs less one)")
    g.add_argument("--shard-size", type=positive_int, default=None, metavar="N",
                   help="--ray: photos per shard, the unit of work and of resuming (default: 10000; a tar "
                        "or a clip-retrieval part is one shard)")


def add_npy_flags(p: argparse.ArgumentParser) -> None:
    """--ids, for .npy inputs."""
    p.add_argument("--ids", default=None, metavar="IDS.json|IDS.txt",
                   help=".npy inputs: item ids, a JSON list or one per line, as many as rows in all the files "
                        "(default: each E.npy's sibling E.ids.json as `smic decompress` writes it, else "
                        "positions 0..N-1)")


def _residual_step(text: str) -> float:
    """argparse type: a refinement step in [1e-4, 1]."""
    from ..store.collection import check_residual_step

    try:
        return check_residual_step(positive_float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("residual_step", "the step")) from None


def _learning_progress(bar, marks: list[float]):
    """K-SVD progress: one bar step per iteration; `marks` gets the time of each."""
    def report(iteration: int, error: float) -> None:
        marks.append(time.perf_counter())
        bar.update(1)
        bar.set_postfix(error=f"{error:.4g}")
    return report


def run(args: argparse.Namespace) -> int:
    import smic_fast as smic
    from ..coding.dictionary import LEARN_SAMPLE

    from ..sources.inputs import classify

    npy_inputs(args.inputs)  # photos and .npy mixed: the message that says why not
    try:
        kind = classify(args.inputs)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.ray or args.ray_address is not None:
        return _run_ray(args, kind)
    if args.workers is not None or args.shard_size is not None:
        raise CliError("--workers and --shard-size are for a distributed run (--ray)", EXIT_USAGE)
    npy = kind in ("npy", "embeddings")  # embeddings given, not encoded here
    if args.ids is not None and kind != "npy":
        raise CliError("--ids is for .npy inputs (photos are named by their paths, tar samples by their keys, "
                       "clip-retrieval rows by their image_path)", EXIT_USAGE)
    if args.transform and (args.residual_step is None or args.dictionary is not None):
        raise CliError("--transform learns a refinement layer with the dictionary learned here: give --residual-step "
                       "and no --dictionary (a shared dictionary codes with the transform it carries)", EXIT_USAGE)
    out = check_output(args.output, args.force)
    stages = Stages()
    dictionary = None
    if args.dictionary is not None:
        with stages.stage("load dictionary"):
            dictionary = smic.Dictionary.load(args.dictionary)
    if npy:
        with stages.stage("check embeddings"):
            given = (open_embeddings(args.inputs, args.ids, dim=None) if kind == "npy"
                     else clip_retrieval_embeddings(args.inputs))
        photos = EncodedPhotos(embeddings=given.blocks, ids=given.ids, pixels=[], model=args.model, provider="none",
                               paths=given.paths)
        n_items, dim, label = given.n, given.dim, f"{', '.join(given.paths)[:200]}"
    else:
        with stages.stage("encode images"):
            encode = encode_tars if kind == "webdataset" else encode_photos
            photos = encode(args.inputs, args, args.model or DEFAULT_MODEL)
        n_items, dim, label = len(photos.ids), photos.embeddings.shape[1], f"model {photos.model}"
    if dictionary is not None and dictionary.dim != dim:
        raise CliError(f"the dictionary {args.dictionary} has dimension {dictionary.dim} but {label} gives {dim}")
    marks: list[float] = []
    start = time.perf_counter()
    with progress_bar(None if dictionary else args.iterations, "learning dictionary",
                      args.quiet or dictionary is not None) as bar:
        info = smic.compress(
            photos.embeddings, out, n_atoms=args.atoms, n_nonzero=args.sparsity, ids=photos.ids,
            pixels=None if npy else photos.pixels_or_none, dictionary=dictionary, quality=args.quality,
            step=args.step, precision=args.precision, n_iter=args.iterations, seed=args.seed, model=photos.model,
            progress=_learning_progress(bar, marks), residual_step=args.residual_step,
            sample_size=args.sample or LEARN_SAMPLE, learn=args.learn, transform=args.transform,
            rd_lambda=args.rd_lambda, layout=args.layout, paper_bits=args.paper_bits,
            chunk_size=args.chunk_size, index_model=args.index_model)
    end = time.perf_counter()
    learned = (marks[-1] if marks else start) - start  # until K-SVD's last iteration
    if dictionary is None:
        stages.seconds["learn dictionary"] = learned
    stages.seconds["code and write"] = end - start - learned
    total = stages.total()
    summary = {
        "command": "compress", "output": str(out), "items": info["items"], "skipped": photos.skipped,
        "model": photos.model, "provider": photos.provider,
        **{k: info.get(k) for k in ("file_bytes", "bits_per_item", "marginal_bits_per_item", "bits_per_pixel",
                                    "marginal_bits_per_pixel", "cosine_mean", "cosine_p5", "n_atoms",
                                    "n_nonzero", "shared_dictionary", "dictionary_share", "dim",
                                    "residual_step")},
        "seconds": {**stages.seconds, "total": total},
        "images_per_second": (info["items"] + len(photos.skipped)) / total,
    }
    if npy:
        summary.update(inputs=given.paths, ids=given.ids_source)
        del summary["images_per_second"], summary["provider"]
        summary["items_per_second"] = info["items"] / total
    emit(summary, [
        ("items written", info["items"]), ("inputs skipped", len(photos.skipped)),
        ("file size", f"{info['file_bytes']:,} bytes"),
        ("model", f"{photos.model} ({photos.provider})" if not npy else photos.model),
        ("atoms", info["n_atoms"]), ("residual step", info["residual_step"]),
        ("bits per item", info["bits_per_item"]),
        ("marginal bits per item", info["marginal_bits_per_item"]),
        ("bits per pixel", info.get("bits_per_pixel")), ("cosine mean", info["cosine_mean"]),
        ("cosine 5th percentile", info["cosine_p5"]), *seconds_rows(stages.seconds),
        ("images per second" if not npy else "items per second",
         summary.get("images_per_second", summary.get("items_per_second"))),
    ], args.json, title=f"wrote {out}")
    return EXIT_PARTIAL if photos.skipped else EXIT_OK


def _run_ray(args: argparse.Namespace, kind: str) -> int:
    """--ray: smic_fast.distributed.compress into OUT.smic.d/, resuming a run of the same plan."""
    from .. import distributed
    from .._extras import require

    require("ray", "a distributed run (--ray)")
    if kind == "npy" or args.ids is not None:
        raise CliError("--ray takes photos, webdataset tars or a clip-retrieval folder; .npy embeddings are "
                       "compressed in one process (drop --ray)", EXIT_USAGE)
    unsupported = [flag for flag, given in (("--rd-lambda", args.rd_lambda is not None), ("--layout", args.layout != "smic"),
                                            ("--index-model", args.index_model != "auto")) if given]
    if unsupported:
        raise CliError(f"{', '.join(unsupported)}: not available with --ray yet (shards use the defaults)", EXIT_USAGE)
    if args.residual_step is not None or args.transform:
        raise CliError("--residual-step and --transform are not available with --ray (shards are merged from "
                       "their codes)", EXIT_USAGE)
    if args.output.endswith(".d"):
        raise CliError("-o names the collection (OUT.smic); its shards go to OUT.smic.d/", EXIT_USAGE)
    from ..store.manifest import shard_folder

    if os.path.exists(args.output):
        raise CliError(f"{args.output} exists: a distributed run writes {shard_folder(args.output)}/ and leaves "
                       f"{args.output} to `smic merge` (remove it or pick another -o)", EXIT_USAGE)
    bar = progress_bar(None, "shards", args.quiet)
    with bar:
        def progress(done: int, planned: int) -> None:
            bar.total = planned
            bar.n = done
            bar.refresh()

        try:
            summary = distributed.compress(
                args.inputs, args.output, address=args.ray_address,
                model=args.model or DEFAULT_MODEL, dictionary=args.dictionary, workers=args.workers,
                shard_size=args.shard_size or distributed.DEFAULT_SHARD_SIZE, batch_size=args.batch_size,
                providers=args.providers, int8=args.int8, glob=args.glob, n_atoms=args.atoms,
                n_nonzero=args.sparsity, quality=args.quality, step=args.step, precision=args.precision,
                n_iter=args.iterations, seed=args.seed, sample_size=args.sample, chunk_size=args.chunk_size,
                force=args.force,
                progress=progress)
        except FileExistsError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    emit(summary, [
        ("items written", summary["items"]), ("inputs skipped", len(summary["skipped"])),
        ("shards", f"{summary['shards']} ({summary['shards_resumed']} already written)"),
        ("shard bytes", f"{summary['shard_bytes']:,}"), ("model", summary["model"]),
        ("workers", summary["workers"]), ("errors file", summary["errors_file"]),
        *seconds_rows({k: v for k, v in summary["seconds"].items() if k != "total"}),
        ("images per second", summary["images_per_second"]),
    ], args.json, title=f"wrote {summary['manifest']}")
    return EXIT_PARTIAL if summary["skipped"] else EXIT_OK
