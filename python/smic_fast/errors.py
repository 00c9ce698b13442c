"""Exceptions of smic_fast. All are ValueError subclasses, so a caller that only knows
"bad input" can catch ValueError; a caller that cares can tell a bad file from a bad argument.
They are defined by the C++ core (smic/error.hpp), which raises them, and re-exported here."""
from __future__ import annotations

from ._core import DecodeError, DictionaryMismatchError, FormatError

__all__ = ["DecodeError", "FormatError", "DictionaryMismatchError"]

DecodeError.__doc__ = "Coded data is truncated, corrupted or inconsistent with its model."
FormatError.__doc__ = "A .smic or .smicd file is truncated, corrupted, of another kind or of a newer version."
DictionaryMismatchError.__doc__ = (
    "A collection refers to a shared dictionary that was not given, or was given another one.")
