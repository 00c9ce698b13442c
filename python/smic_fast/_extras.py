"""The optional extras of ``pyproject.toml`` and one check that their modules import.

A command that needs an extra calls :func:`require` before it starts any work, so a missing
module ends it at once with one line that names the extra to install (``smic`` prints
:class:`MissingExtraError` without a traceback and exits 1), not with a traceback after the
work is done.
"""
from __future__ import annotations

import importlib
from collections.abc import Sequence

__all__ = ["EXTRAS", "MissingExtraError", "require"]

# The modules smic_fast imports from each extra (import names, not distribution names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "export": ("torch", "open_clip", "onnx", "onnxscript"),
    "generate": ("torch", "diffusers", "transformers"),
    "eval": ("matplotlib", "faiss"),
    "ray": ("ray", "pyarrow"),
    "serve": ("fastapi", "uvicorn", "prometheus_client", "httpx"),
}


class MissingExtraError(ImportError):
    """An optional module cannot be imported; the message names the extra that installs it."""

    def __init__(self, message: str, extra: str, module: str) -> None:
        super().__init__(message, name=module)
        self.extra = extra


def require(extra: str, purpose: str, modules: Sequence[str] | None = None) -> None:
    """Import `modules` (default: all of `extra`'s) or raise :class:`MissingExtraError`.

    `purpose` completes "MODULE is needed for ...", e.g. "the report's plots". The message is one
    line: the module, why it failed to import, and ``pip install 'smic-fast[EXTRA]'``.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    for module in EXTRAS[extra] if modules is None else modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise MissingExtraError(f"{module} is needed for {purpose} ({reason}): "
                                    f"pip install 'smic-fast[{extra}]'", extra, module) from error
