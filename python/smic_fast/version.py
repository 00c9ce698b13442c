"""The package's version, read from the compiled core (one version: smic.h's SMIC_VERSION_*)."""
from __future__ import annotations

from . import _core

__version__: str = _core.__version__
