"""``smic export-clip``: an open_clip image tower to a checked ONNX file (needs ``[export]``)."""
from __future__ import annotations

import argparse
import json
import sys

NAME = "export-clip"
_PAIRING_NAMES = ("default", "small", "kandinsky", "fast", "tiny")
HELP = "export an open_clip image tower to ONNX and check it against PyTorch"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default",
                   help="pairing (default, small, kandinsky, fast, tiny) or open_clip architecture "
                        "(default: %(default)s = ViT-H-14)")
    p.add_argument("--pretrained", default=None, metavar="TAG|PATH",
                   help="open_clip pretrained tag (a pairing supplies its own) or, as open_clip takes it, a local "
                        "weights file (same as --checkpoint PATH); 'none' for random weights")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="local weights file (.pt/.bin/.safetensors) for offline use")
    p.add_argument("-o", "--output", default=None, metavar="PATH.onnx",
                   help="output file (default: the cache, $SMIC_HOME or ~/.cache/smic)")
    p.add_argument("--model-config", action="append", default=[], metavar="PATH.json",
                   help="register an open_clip model config first (its file stem is the model name)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--cache-dir", default=None, help="cache of exported models (overrides $SMIC_HOME)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |difference| (fp32)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="fetch weights the machine lacks from the hub (default); --no-download: only weights "
                        "already on this machine")
    p.add_argument("--force", action="store_true", help="export again even if the cache has it")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights (no tag, no checkpoint)")
    p.add_argument("--no-fuse", action="store_true",
                   help="standard ONNX only: do not write attention and GELU as ONNX Runtime's fused "
                        "com.microsoft operators (slower on ONNX Runtime; for other runtimes)")


def run(args: argparse.Namespace) -> int:
    from ._shared import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
    from ..encode.clip_models import ModelNotFoundError, register_model_config

    try:
        from ..encode.clip_export import ExportCheckError, export_clip
    except ImportError as exc:  # pragma: no cover - depends on the install
        print(f"smic export-clip: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    pretrained = args.pretrained
    if pretrained is None and args.checkpoint is None and args.model.split("/")[0] not in _PAIRING_NAMES:
        print(f"smic export-clip: --model {args.model} is an architecture: say which weights with "
              "--pretrained TAG, --pretrained PATH (or --checkpoint PATH), or --pretrained none for random weights",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        for path in args.model_config:
            register_model_config(path)
        if pretrained is not None and pretrained.lower() == "none":
            pretrained = ""
        result = export_clip(
            args.model, pretrained, args.output, checkpoint=args.checkpoint, opset=args.opset,
            precision=args.precision, cache=args.cache_dir, check=not args.no_check,
            tolerance=args.tolerance, force=args.force, download=args.download, seed=args.seed,
            fuse=not args.no_fuse)
    except ModelNotFoundError as exc:
        print(f"smic export-clip: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ExportCheckError as exc:
        print(f"smic export-clip: check failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ImportError as exc:
        print(f"smic export-clip: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ValueError as exc:
        print(f"smic export-clip: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if result.max_abs_diff is not None:
        print(f"ONNX Runtime vs PyTorch on {result.check_images} photos: largest difference "
              f"{result.max_abs_diff:.3g}, smallest cosine {result.min_cosine:.7f}", file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2))
    return EXIT_OK
