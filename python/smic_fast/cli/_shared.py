"""What the subcommands share: exit codes, errors, progress bars, output checks, summaries.

Results go to stdout (a table, or one JSON object with ``--json``); progress bars, warnings
and errors go to stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

EXIT_OK = 0  # everything written
EXIT_FAILURE = 1  # nothing written (a missing model, an unreadable file, a failed check, ...)
EXIT_USAGE = 2  # bad command line (argparse's own code), an existing output without --force
EXIT_PARTIAL = 3  # written, but some inputs were skipped
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); nothing written

EXIT_CODES_HELP = ("exit codes: 0 all written; 3 written but some inputs were skipped; "
                   "2 usage error; 1 failure, nothing written; 130 interrupted, nothing written")


class CliError(Exception):
    """A failure to report in one line (no traceback) with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def add_output_flags(p: argparse.ArgumentParser, *, force: bool = True) -> None:
    """--json and --quiet (and --force for commands that write a file)."""
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on stdout (and nothing else there)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no warnings on stderr")
    if force:
        p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output file")


class _RenamedFlag(argparse.Action):
    """An old spelling of a renamed flag: stores into the new flag's dest and warns once on
    stderr. Hidden from --help; kept one release (docs/cli.md, "Renamed flags")."""

    def __init__(self, option_strings, dest, new: str, **kwargs) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"smic: {option_string} is now {self.new} (the old spelling goes in the next release)", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_renamed(p: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, dest: str,
                **kwargs: Any) -> None:
    """Accept `old` as a hidden alias of the flag `new` (same dest, type and choices), warning
    when used. For a switch, pass ``nargs=0, const=True``."""
    p.add_argument(old, dest=dest, action=_RenamedFlag, new=new, help=argparse.SUPPRESS,
                   default=argparse.SUPPRESS, **kwargs)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Refuse an existing output without --force and an output that cannot be written, before
    any long work starts."""
    out = Path(path)
    if out.is_dir():
        raise CliError(f"output {out} is a directory", EXIT_USAGE)
    if out.exists() and not force:
        raise CliError(f"output {out} exists; pass --force to overwrite it", EXIT_USAGE)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"cannot write {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {out}: folder {parent} is not writable")
    return out


def progress_bar(total: int | None, desc: str, quiet: bool, unit: str = "it"):
    """A tqdm bar on stderr, hidden with --quiet or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=quiet or not sys.stderr.isatty())


class Stages:
    """Wall time per named stage, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        return time.perf_counter() - self._start


def _plain(value: Any) -> Any:
    """JSON-ready copies of numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def emit(summary: dict[str, Any], rows: list[tuple[str, Any]], as_json: bool, title: str | None = None) -> None:
    """Print `summary` as JSON (``--json``) or `rows` as an aligned two-column table."""
    if as_json:
        print(json.dumps(summary, indent=2, default=_plain))
        return
    shown = [(k, _fmt(v)) for k, v in rows if v is not None]
    width = max((len(k) for k, _ in shown), default=0)
    if title:
        print(title)
    for key, value in shown:
        print(f"  {key:<{width}}  {value}")
    for entry in summary.get("skipped", []):
        print(f"  skipped {entry['path']}: {entry['reason']}")


def load_embeddings(path: str | os.PathLike, what: str = "embeddings", min_rows: int = 1) -> np.ndarray:
    """A (N, d) float array from a .npy file, or CliError saying what is wrong with it."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CliError(f"{what} file {path} does not exist", EXIT_USAGE) from None
    except (ValueError, OSError, EOFError) as exc:
        raise CliError(f"{path} is not a readable .npy array ({exc})") from None
    if array.ndim != 2 or array.shape[0] < min_rows or array.shape[1] < 1 or array.dtype.kind not in "fiu":
        raise CliError(f"{path}: expected a (N >= {min_rows}, d) numeric array of {what}, got shape {array.shape} "
                       f"dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise CliError(f"{path}: {what} contain NaN or infinity")
    return array.astype(np.float32, copy=False)


def seconds_rows(stages: dict[str, float]) -> list[tuple[str, str]]:
    """Table rows "time <stage>" for a Stages.seconds dict."""
    return [(f"time {name}", f"{value:.2f} s") for name, value in stages.items()]
