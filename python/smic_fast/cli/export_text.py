"""``smic export-text``: an open_clip text tower to ONNX beside its image tower, with the
tokenizer's vocabulary, for ``smic atoms`` (needs the ``[export]`` extra)."""
from __future__ import annotations

import argparse
import json

from .._extras import MissingExtraError
from ._shared import EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE, CliError

NAME = "export-text"
HELP = "export an open_clip text tower to ONNX (for naming atoms with smic atoms)"
EPILOG = EXIT_CODES_HELP
_PAIRING_NAMES = ("default", "small", "kandinsky", "fast", "tiny")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default",
                   help="pairing (default, small, kandinsky, fast, tiny) or open_clip architecture")
    p.add_argument("--pretrained", default=None, metavar="TAG|PATH",
                   help="open_clip pretrained tag or, as open_clip takes it, a local weights file (same as "
                        "--checkpoint PATH); 'none' for random weights")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="local weights file, for offline use")
    p.add_argument("-o", "--output", default=None, metavar="PATH.onnx",
                   help="output file (default: text.onnx in the image tower's cache folder)")
    p.add_argument("--model-config", action="append", default=[], metavar="PATH.json",
                   help="register an open_clip model config first (its file stem is the model name)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--cache-dir", default=None, help="cache of exported models (overrides $SMIC_HOME)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="fetch weights the machine lacks from the hub (default); --no-download: only weights "
                        "already on this machine")
    p.add_argument("--force", action="store_true", help="export again even if the cache has it")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights (as smic export-clip)")


def run(args: argparse.Namespace) -> int:
    from ..encode.clip_export import ExportCheckError
    from ..encode.clip_models import register_model_config
    from ..encode.text_tower import export_text_tower

    pretrained = args.pretrained
    if pretrained is None and args.checkpoint is None and args.model.split("/")[0] not in _PAIRING_NAMES:
        raise CliError(f"--model {args.model} is an architecture: say which weights with --pretrained TAG, "
                       "--pretrained PATH (or --checkpoint PATH), or --pretrained none for random weights", EXIT_USAGE)
    if pretrained is not None and pretrained.lower() == "none":
        pretrained = ""
    try:
        for path in args.model_config:
            register_model_config(path)
        path = export_text_tower(args.model, pretrained, args.output, checkpoint=args.checkpoint, opset=args.opset,
                                 cache=args.cache_dir, check=not args.no_check, force=args.force,
                                 download=args.download, seed=args.seed)
    except ExportCheckError as exc:
        raise CliError(f"check failed: {exc}") from None
    except MissingExtraError as exc:  # names the extra already
        raise CliError(str(exc)) from None
    except ImportError as exc:
        raise CliError(f"{exc} (the text export needs the [export] extra)") from None
    print(json.dumps({"command": "export-text", "path": str(path)}, indent=2))
    return EXIT_OK
