"""smic-fast: semantic multi-item compression of image collections (SMIC).

The C++ core exposed here: batch OMP (:func:`omp`), K-SVD dictionary learning
(:func:`learn_dictionary`), a dead-zone scalar quantizer (:func:`quantize`,
:func:`dequantize`) and a range coder with integer models (:mod:`smic_fast.range_coder`).
"""
from __future__ import annotations

from . import _core, range_coder
from ._core import DecodeError
from .ksvd import learn_dictionary
from .quantizer import dequantize, quantize
from .sparse_coding import OmpCoder, omp, reconstruct

__version__: str = _core.__version__

__all__ = [
    "DecodeError",
    "OmpCoder",
    "__version__",
    "dequantize",
    "learn_dictionary",
    "omp",
    "quantize",
    "range_coder",
    "reconstruct",
]
