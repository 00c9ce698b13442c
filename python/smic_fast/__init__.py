"""smic-fast: semantic multi-item compression of image collections (SMIC).

Collections: :func:`compress` embeddings into a .smic file, :func:`open` it again,
:class:`Dictionary` for a dictionary shared by many collections.

Search and semantic arithmetic on the codes: :meth:`Collection.search`
(:mod:`smic_fast.query.search`), :func:`smic_fast.query.semantics.combine`.

The C++ core exposed here: batch OMP (:func:`omp`), K-SVD dictionary learning
(:func:`learn_dictionary`), a dead-zone scalar quantizer (:func:`quantize`,
:func:`dequantize`) and a range coder with integer models (:mod:`smic_fast.coding.range_coder`).
"""
from __future__ import annotations

from . import _core
from .coding import range_coder
from .query import search, semantics
from ._core import DecodeError
from .encode.clip_models import ModelNotFoundError
from .encode.clip_onnx import ClipEncoder, EncodeResult
from .store.collection import Collection, compress
from .store.opener import open
from .learn.device import CudaUnavailableError, cuda_status
from .coding.dictionary import Dictionary
from .errors import DictionaryMismatchError, FormatError
from .learn.ksvd import learn_dictionary, learn_for_rate
from .coding.quantizer import dequantize, quantize
from .learn.sparse_coding import OmpCoder, omp, reconstruct

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
