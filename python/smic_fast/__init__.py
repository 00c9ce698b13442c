"""smic-fast: semantic multi-item compression of image collections (SMIC).

Collections: :func:`compress` embeddings into a .smic file, :func:`open` it again,
:class:`Dictionary` for a dictionary shared by many collections.

Search and semantic arithmetic on the codes: :meth:`Collection.search`
(:mod:`smic_fast.search`), :func:`smic_fast.semantics.combine`.

The C++ core exposed here: batch OMP (:func:`omp`), K-SVD dictionary learning
(:func:`learn_dictionary`), a dead-zone scalar quantizer (:func:`quantize`,
:func:`dequantize`) and a range coder with integer models (:mod:`smic_fast.range_coder`).
"""
from __future__ import annotations

from . import _core, range_coder, search, semantics
from ._core import DecodeError
from .clip_models import ModelNotFoundError
from .clip_onnx import ClipEncoder, EncodeResult
from .collection import Collection, compress
from .opener import open
from .device import CudaUnavailableError, cuda_status
from .dictionary import Dictionary
from .errors import DictionaryMismatchError, FormatError
from .ksvd import learn_dictionary, learn_for_rate
from .quantizer import dequantize, quantize
from .sparse_coding import OmpCoder, omp, reconstruct

from .version import __version__

__all__ = [
    "ClipEncoder",
    "Collection",
    "CudaUnavailableError",
    "DecodeError",
    "Dictionary",
    "DictionaryMismatchError",
    "EncodeResult",
    "FormatError",
    "ModelNotFoundError",
    "OmpCoder",
    "__version__",
    "dequantize",
    "compress",
    "cuda_status",
    "learn_dictionary",
    "learn_for_rate",
    "omp",
    "open",
    "quantize",
    "range_coder",
    "reconstruct",
    "search",
    "semantics",
]
