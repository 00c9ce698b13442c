"""Run Python as if some installed packages were not: ``SMIC_TEST_WITHOUT=torch,open_clip`` with
this folder on ``PYTHONPATH`` (so Python imports this file at start-up, in every subprocess too).

Used to check that the tests which only *use* a CLIP model run where users run, without the
``[export]`` extra::

    PYTHONPATH=tests/without SMIC_TEST_WITHOUT=torch,torchvision,open_clip \\
        .venv/bin/python -m pytest tests/test_cli.py -q -rs

Each import finder on ``sys.meta_path`` is wrapped so that it finds nothing for a hidden top-level
name or its submodules: ``import torch`` raises ``ModuleNotFoundError: No module named 'torch'``
and ``importlib.util.find_spec("torch")`` is None, exactly as for a package that is not
installed (unlike ``sys.modules[name] = None``, which a ``find_spec`` probe sees as present).
Modules imported before this file runs are not affected (none of these are).
"""
from __future__ import annotations

import os
import sys

HIDDEN = frozenset(name.strip() for name in os.environ.get("SMIC_TEST_WITHOUT", "").split(",") if name.strip())


class _Hiding:
    """A meta-path finder that finds nothing for the hidden names and delegates the rest."""

    def __init__(self, finder) -> None:
        self._finder = finder

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in HIDDEN:
            return None
        find = getattr(self._finder, "find_spec", None)
        return None if find is None else find(fullname, path, target)

    def invalidate_caches(self) -> None:
        invalidate = getattr(self._finder, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()

    def __getattr__(self, name):  # find_distributions (importlib.metadata) and the like
        return getattr(self._finder, name)


if HIDDEN:
    sys.meta_path[:] = [f if isinstance(f, _Hiding) else _Hiding(f) for f in sys.meta_path]
