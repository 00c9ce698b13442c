"""The ``smic`` command line: ``smic SUBCOMMAND [options]`` (also ``python -m smic_fast``).

One module per subcommand, each with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` (optionally ``EPILOG``); add a module to ``SUBCOMMANDS`` to add a
command. Results go to stdout (a table, or JSON with ``--json``); progress bars, warnings and
errors go to stderr.

Exit codes: 0 all written; 3 written, but some inputs were skipped; 2 usage error (including
an existing output without ``--force``); 1 failure, nothing written (a missing optional module
among them: a command checks its extra before it starts work, see ``smic_fast._extras``); 130
interrupted (Ctrl-C), nothing written.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import append, compress, decompress, dictionary, doctor, export_clip, info, repack
from . import atoms, explain, export_text  # issue 6: evaluation and the atoms' meaning
from . import eval as eval_  # (a module named eval; the alias keeps the builtin visible)
from . import arith, search  # issue 16: search and semantic arithmetic on the codes
from . import merge  # issue 17: distributed runs write shards
from . import encode, serve  # issue 29: the encoding service and its client
from ._shared import (EXIT_CODES_HELP, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE,
                      CliError)

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "SUBCOMMANDS", "main",
           "setup_args"]


SUBCOMMANDS = (compress, append, repack, info, decompress, dictionary, export_clip, doctor, eval_, atoms, explain,
               export_text, search, arith, merge, serve, encode)


def setup_args() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(prog="smic", description="Semantic compression of image collections (SMIC).",
                                     epilog=EXIT_CODES_HELP)
    parser.add_argument("--version", action="version", version=f"smic-fast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (to stderr)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                           epilog=getattr(module, "EPILOG", None))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    logger = logging.getLogger("smic_fast")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("smic: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; `argv` without the program name (None: sys.argv[1:]). Returns the exit code."""
    from ..encode.clip_models import ModelNotFoundError
    from ..errors import DecodeError, DictionaryMismatchError, FormatError

    parser = setup_args()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help / --version
        return int(exc.code or 0)
    _setup_logging(args.verbose, getattr(args, "quiet", False))
    name = f"smic {args.command}"
    try:
        return int(args._run(args))
    except CliError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ImportError as exc:  # an optional module (MissingExtraError names its extra): one line, no traceback
        print(f"{name}: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}", file=sys.stderr)
        return EXIT_FAILURE
    except (FormatError, DecodeError, DictionaryMismatchError, ModelNotFoundError, OSError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ValueError as exc:  # an option value the library refused (e.g. --step 2)
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
