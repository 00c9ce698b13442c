"""The image flags of ``smic decompress`` and what they do, for the CLI module to reuse.

    add_arguments(parser)                  # --images, --generator, --steps, --seed, --size, --ids, --check, ...
    code, summary = run(args, collection)  # writes the PNGs; summary is the report's to_dict()

Kept here so that ``cli/decompress.py`` only adds ``add_arguments(p)`` and calls :func:`run`
when ``args.images`` is set. Exit codes follow ``smic_fast.cli``: 0 all written, 3 written but some
items failed, 2 bad usage or a generator that does not go with the collection, 1 a model or
file is missing (nothing written).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_arguments", "add_generator_flags", "run"]


def add_generator_flags(g, *, default_help: str = "the generator paired with the collection's CLIP model") -> None:
    """The flags that choose and drive a generator: --generator, --steps, --guidance, --size,
    --device, --dtype, --download, --embedding-norm. Shared by ``smic decompress --images`` and
    ``smic eval --generator`` (which has its own --seed and --batch-size)."""
    g.add_argument("--generator", metavar="NAME|PATH", default=None,
                   help="a saved diffusers pipeline folder or a hub id in the Hugging Face cache "
                        f"(default: {default_help})")
    g.add_argument("--steps", type=int, default=None, help="denoising steps (default: the generator's, 20 or 50)")
    g.add_argument("--guidance", type=float, default=None, help="guidance scale (default: 10 unCLIP, 4 Kandinsky)")
    from ..generate.configs import FAMILIES

    usual = ", ".join(f"{f.usual_size} {f.title}" for f in FAMILIES.values())
    g.add_argument("--size", type=int, default=None,
                   help="image side in pixels (default: the generator's training size; when its unet config gives "
                        f"no sample_size, its family's usual one: {usual})")
    g.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:N, mps")
    g.add_argument("--dtype", default="auto", choices=("auto", "fp16", "bf16", "fp32"),
                   help="auto: fp16 on a GPU, fp32 on CPU")
    g.add_argument("--download", action=argparse.BooleanOptionalAction, default=False,
                   help="allow downloading a hub generator (default: --no-download, local files and caches only)")
    g.add_argument("--embedding-norm", type=float, default=None, metavar="LENGTH",
                   help="scale the unit embeddings to this length before generation (default: the "
                        "collection's mean norm when it kept one, else the generator's own estimate)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("images (needs the [generate] extra: torch, diffusers, transformers)")
    g.add_argument("--images", metavar="OUT_DIR", default=None,
                   help="regenerate the items as PNG files in OUT_DIR, one per item, named after its id")
    add_generator_flags(g)
    g.add_argument("--seed", type=int, default=0, help="base seed; each item's seed derives from it and its id")
    g.add_argument("--batch-size", type=int, default=4, help="items per model call (default: %(default)s)")
    g.add_argument("--check", action="store_true",
                   help="re-encode each picture with the collection's CLIP model and report its cosine to the "
                        "reconstructed (and, with --original, the original) embedding")
    g.add_argument("--check-model", metavar="NAME|PATH.onnx", default=None,
                   help="CLIP model for --check (default: the collection's, from the export cache)")
    g.add_argument("--original", metavar="PATH.npy", default=None,
                   help="the original (N, d) embeddings, in item order, for cos(picture, original)")


def run(args: argparse.Namespace, collection, *, progress: bool = True) -> tuple[int, dict[str, Any] | None]:
    """Write the images asked for by `args`; returns (exit code, report dict or None).
    Errors are printed to stderr as ``smic decompress: ...``."""
    from ..encode.clip_models import ModelNotFoundError
    from ._shared import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

    def fail(code: int, message: str) -> tuple[int, None]:
        print(f"smic decompress: {message}", file=sys.stderr)
        return code, None

    try:
        import numpy as np

        from ..generate.configs import GeneratorMismatchError
        from ..generate.writer import write_images

        original = None
        if args.original is not None:
            original = np.load(args.original, allow_pickle=False)
        report = write_images(
            collection, args.images, args.generator, ids=args.ids, seed=args.seed, steps=args.steps,
            guidance=args.guidance, size=args.size, batch_size=args.batch_size, check=args.check,
            encoder=args.check_model, original=original, progress=progress, device=args.device,
            dtype=args.dtype, allow_download=args.download,
            norm="auto" if args.embedding_norm is None else args.embedding_norm)
    except ModelNotFoundError as error:  # before FileNotFoundError/OSError: it is one
        return fail(EXIT_FAILURE, str(error))
    except GeneratorMismatchError as error:
        return fail(EXIT_USAGE, str(error))
    except ImportError as error:
        return fail(EXIT_FAILURE, str(error))
    except (ValueError, OSError) as error:  # GeneratorError, bad flags, unreadable --original
        return fail(EXIT_USAGE, str(error))
    summary = report.to_dict()
    line = f"{summary['written']} image(s) written to {report.out_dir}"
    if report.failed:
        line += f", {len(report.failed)} failed"
    if summary["cos_reconstructed_mean"] is not None:
        line += f"; mean cosine to the reconstructed embedding {summary['cos_reconstructed_mean']:.4f}"
    if summary["cos_original_mean"] is not None:
        line += f", to the original {summary['cos_original_mean']:.4f}"
    print(line, file=sys.stderr)
    for failure in report.failed:
        print(f"  {failure.id}: {failure.reason}", file=sys.stderr)
    return (EXIT_PARTIAL if report.failed else EXIT_OK), summary
