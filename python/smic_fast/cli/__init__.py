"""The ``smic`` command line: ``smic SUBCOMMAND [options]`` (also ``python -m smic_fast``).

One module per subcommand, each with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; add a module to ``SUBCOMMANDS`` to add a command. Progress and logs go
to stderr, results as JSON to stdout. Exit codes: 0 success, 1 a check failed, 2 bad usage,
3 a model or file is missing.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import export_clip

__all__ = ["EXIT_CHECK_FAILED", "EXIT_MISSING", "EXIT_OK", "EXIT_USAGE", "SUBCOMMANDS", "main", "setup_args"]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3
SUBCOMMANDS = (export_clip,)


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smic", description="Semantic compression of image collections (SMIC).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (to stderr)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; `argv` without the program name (None: sys.argv[1:])."""
    parser = setup_args()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    if args.verbose and not logging.getLogger("smic_fast").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("smic: %(message)s"))
        logging.getLogger("smic_fast").addHandler(handler)
        logging.getLogger("smic_fast").setLevel(logging.INFO)
        logging.getLogger("smic_fast").propagate = False
    return int(args._run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
