"""Exceptions of smic_fast. All are ValueError subclasses, so a caller that only knows
"bad input" can catch ValueError; a caller that cares can tell a bad file from a bad argument."""
from __future__ import annotations

from ._core import DecodeError

__all__ = ["DecodeError", "FormatError", "DictionaryMismatchError"]


class FormatError(DecodeError):
    """A .smic or .smicd file is truncated, corrupted, of another kind or of a newer version."""


class DictionaryMismatchError(FormatError):
    """A collection refers to a shared dictionary that was not given, or was given another one."""
