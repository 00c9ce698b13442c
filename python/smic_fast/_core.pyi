"""
smic_fast C++ core (batch OMP, K-SVD, quantizer, range coder)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
import typing_extensions
__all__: list[str] = ['CodingDictionary', 'Collection', 'DecodeError', 'DictionaryMismatchError', 'FORMAT_VERSION', 'FormatError', 'ItemModels', 'OmpCoder', 'ResidualCode', 'SearchIndex', 'TRANSFORM_CONTEXTS', 'TRANSFORM_ESCAPE', 'TRANSFORM_GAINS', 'TRANSFORM_TARGET_MIN_COSINE', 'TransformModel', 'append_collection', 'atom_screening', 'atomic_write', 'choose_items', 'dequantize', 'encode_container', 'encode_residual', 'frequencies_from_counts', 'gemm_kernel', 'gemm_nt', 'learn_dictionary', 'learn_for_rate', 'omp', 'pack_varints', 'parse_container', 'quantize', 'range_decode_adaptive', 'range_decode_static', 'range_encode_adaptive', 'range_encode_static', 'refine', 'repack_collection', 'residual_levels', 'set_atom_screening', 'set_gemm_kernel', 'write_collection', 'write_collection_streaming']
class DecodeError(ValueError):
    """
    Coded data is truncated, corrupted or inconsistent with its model.
    """
class FormatError(DecodeError):
    """
    A .smic or .smicd file is truncated, corrupted, of another kind or of a newer version.
    """
class DictionaryMismatchError(FormatError):
    """
    A collection refers to a shared dictionary that was not given, or was given another one.
    """
class OmpCoder:
    """
    A dictionary prepared for batch OMP (packed atoms, Gram matrix).
    """
    def __init__(self, D: numpy.ndarray, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def encode(self, X: numpy.ndarray, n_nonzero: typing.SupportsInt | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex = -1.0, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
        """
        Code the rows of X; tol < 0 means no residual threshold. Returns (indices, coefs).
        """
    @property
    def dim(self) -> int:
        ...
    @property
    def n_atoms(self) -> int:
        ...
class ItemModels:
    """
    Static models of the item codec, built once and reused (immutable; safe to share across threads).
    
    ItemModels(count_freqs, first_freqs, index_freqs, level_freqs, s_max, paper=False)
    
    All tables are 1-D C-contiguous uint32 arrays, every entry >= 1, each summing to <= 2^31.
    K = len(index_freqs) (number of atoms), L = len(level_freqs) (number of level symbols).
    
    paper=False (SMIC's sorted layout): len(count_freqs) == s_max + 1, len(first_freqs) == 2K.
      Per item: count k in [0, s_max]; if k >= 1 the "first" symbol 2 * atom + sign of the atom of
      largest |coefficient|; then the k - 1 other atoms strictly ascending, each coded conditionally
      on exceeding the previous one, each followed by its level symbol.
      Use encode / decode / item_bits.
    paper=True (the paper's baseline): every item has exactly s_max atoms, coded in the given order
      as index then level, unconditionally. count_freqs and first_freqs are unused: pass None or
      empty arrays. Use encode_paper / decode_paper / item_bits_paper.
    
    Items are coded in independent chunks of chunk_size items (random access: decoding one item
    decodes only its chunk). n_threads: 0 = all available, else that many (chunks in parallel).
    Bad arguments raise ValueError naming the argument; corrupt data raises DecodeError.
    """
    def __init__(self, count_freqs: typing.Any, first_freqs: typing.Any, index_freqs: numpy.ndarray, level_freqs: numpy.ndarray, s_max: typing.SupportsInt | typing.SupportsIndex, paper: bool = False) -> None:
        ...
    def __repr__(self) -> str:
        ...
    def decode(self, data: typing_extensions.Buffer, offsets: numpy.ndarray, n_items: typing.SupportsInt | typing.SupportsIndex, chunk_size: typing.SupportsInt | typing.SupportsIndex, start: typing.SupportsInt | typing.SupportsIndex = 0, stop: typing.SupportsInt | typing.SupportsIndex | None = None, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
        """
        Decode items [start, stop) (stop=None: n_items) -> (counts, first, rest_index, rest_level).
        
        data: bytes-like (bytes, bytearray, memoryview, 1-D uint8 array) holding all chunks, exactly
        offsets[-1] bytes; offsets: uint64 (n_chunks + 1,) from encode; n_items, chunk_size as encoded.
        Only the chunks overlapping [start, stop) are decoded (each in full, with an exact end check).
        Unused rest slots and first of an empty item are -1. Raises DecodeError for bad offsets or a
        truncated / corrupt chunk, ValueError for a range outside [0, n_items] or bad argument types.
        """
    def decode_paper(self, data: typing_extensions.Buffer, offsets: numpy.ndarray, n_items: typing.SupportsInt | typing.SupportsIndex, chunk_size: typing.SupportsInt | typing.SupportsIndex, start: typing.SupportsInt | typing.SupportsIndex = 0, stop: typing.SupportsInt | typing.SupportsIndex | None = None, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
        """
        Decode items [start, stop) of the paper layout -> (index, level), each (stop - start, s_max) int32. Arguments and errors as decode.
        """
    def derive_remaining(self) -> ItemModels:
        """
        These models with the remaining-atoms index model (format version 3): each other atom coded with the table of the smallest of the atoms still to code, derived from the index table (docs/format.md).
        """
    def encode(self, counts: numpy.ndarray, first: numpy.ndarray, rest_index: numpy.ndarray, rest_level: numpy.ndarray, chunk_size: typing.SupportsInt | typing.SupportsIndex, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
        """
        Encode n items (sorted layout) -> (data: bytes, offsets: uint64 (n_chunks + 1,)).
        
        counts (n,) int32 in [0, s_max]; first (n,) int32 in [0, 2K) (ignored where count == 0);
        rest_index, rest_level (n, s_max - 1) int32: row i's first counts[i] - 1 slots hold the other
        atoms, strictly ascending in [0, K), and their level symbols in [0, L); later slots are ignored.
        Chunk c holds items [c * chunk_size, (c + 1) * chunk_size) as data[offsets[c]:offsets[c + 1]].
        """
    def encode_paper(self, index: numpy.ndarray, level: numpy.ndarray, chunk_size: typing.SupportsInt | typing.SupportsIndex, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
        """
        Encode n items (paper layout) -> (data: bytes, offsets: uint64 (n_chunks + 1,)).
        
        index (n, s_max) int32 in [0, K) and level (n, s_max) int32 in [0, L), coded in the given order.
        """
    def item_bits(self, counts: numpy.ndarray, first: numpy.ndarray, rest_index: numpy.ndarray, rest_level: numpy.ndarray, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
        """
        Ideal code length in bits of each item (float64 (n,)), arguments as encode.
        
        Sum of -log2(freq / total) over the item's coded symbols with the coder's conditional totals.
        A chunk's coded size in bits is the sum over its items plus 56 to 64 bits of flush.
        """
    def item_bits_paper(self, index: numpy.ndarray, level: numpy.ndarray, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
        """
        Ideal code length in bits of each item (float64 (n,)), arguments as encode_paper.
        """
    @property
    def index_model(self) -> str:
        """
        'order0' or 'remaining' (see derive_remaining).
        """
    @property
    def n_atoms(self) -> int:
        """
        K, the index alphabet.
        """
    @property
    def n_levels(self) -> int:
        """
        L, the level alphabet.
        """
    @property
    def paper(self) -> bool:
        """
        True for the paper layout.
        """
    @property
    def s_max(self) -> int:
        """
        Most atoms per item.
        """
class TransformModel:
    """
    The learned parts of a transform-coded refinement layer (C++; see smic_fast.coding.transform): each
    class's mean and principal axes of the residual after the atoms, the spread along each axis as
    round(4 log2 sigma), the class of every atom, the dead-zone rounding, the reconstruction bias and
    the context tables' counts. Immutable.
    """
    @staticmethod
    def from_bytes(data: bytes, quantiser: str = 'greedy') -> TransformModel:
        """
        Parse an XFRM payload of a transform with this quantiser (its XQNT section; FormatError when damaged).
        """
    @staticmethod
    def step_index(step: typing.SupportsFloat | typing.SupportsIndex) -> int:
        """
        round(-4 log2 step): where a step places the contexts.
        """
    def __init__(self, atom_class: numpy.ndarray, mean: numpy.ndarray, basis: numpy.ndarray, scale: numpy.ndarray, rounding: typing.SupportsFloat | typing.SupportsIndex, bias: typing.SupportsFloat | typing.SupportsIndex, counts: numpy.ndarray, gain_counts: numpy.ndarray, rdo: typing.SupportsFloat | typing.SupportsIndex = 0.0, quantiser: str = 'greedy') -> None:
        ...
    def bits(self, levels: numpy.ndarray, classes: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
        """
        Ideal code length in bits of each item's levels under the model's tables.
        """
    def count_contexts(self, levels: numpy.ndarray, classes: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.uint64], numpy.typing.NDArray[numpy.uint64]]:
        """
        (context counts, gain counts) of the levels: what a model's tables are fitted to.
        """
    def decode(self, data: bytes, classes: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int32]:
        """
        Levels (n, dim) of a stream made by encode (DecodeError when damaged).
        """
    def encode(self, levels: numpy.ndarray, classes: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> bytes:
        """
        One range-coded stream of the items' levels (a RESD chunk's bytes).
        """
    def levels(self, unit: numpy.ndarray, decoded: numpy.ndarray, classes: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int32]:
        """
        (n, dim) int32 levels of the residuals unit / cos - decoded in each item's class (smic_fast.coding.transform.aimed_residuals).
        """
    def refine(self, decoded: numpy.ndarray, levels: numpy.ndarray, classes: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        """
        decoded plus the levels' reconstruction, rows renormalised (a new array).
        """
    def to_bytes(self) -> bytes:
        """
        The XFRM payload.
        """
    @property
    def atom_class(self) -> numpy.typing.NDArray[numpy.uint16]:
        ...
    @property
    def basis(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        The stored (float16) axes as float32, (n_classes, rank, dim).
        """
    @property
    def bias(self) -> float:
        ...
    @property
    def counts(self) -> numpy.typing.NDArray[numpy.uint64]:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def gain_counts(self) -> numpy.typing.NDArray[numpy.uint64]:
        ...
    @property
    def mean(self) -> numpy.typing.NDArray[numpy.float32]:
        ...
    @property
    def n_atoms(self) -> int:
        ...
    @property
    def n_classes(self) -> int:
        ...
    @property
    def quantiser(self) -> str:
        """
        How levels are chosen: 'greedy' (level by level), 'trellis' (the whole item, gain included) or 'dependent' (dependent quantisation: two interleaved quantisers and a Viterbi search; it also changes how levels reconstruct).
        """
    @property
    def rank(self) -> int:
        ...
    @property
    def rdo(self) -> float:
        ...
    @property
    def rounding(self) -> float:
        ...
    @property
    def scale(self) -> numpy.typing.NDArray[numpy.int16]:
        ...
class ResidualCode:
    """
    A parsed RESD section (residual refinement).
    """
    @staticmethod
    def parse(payload: bytes, name: str = '<residual>') -> ResidualCode:
        ...
    def levels(self, start: typing.SupportsInt | typing.SupportsIndex = 0, stop: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.typing.NDArray[numpy.int32]:
        ...
    @property
    def data_size(self) -> int:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def n_items(self) -> int:
        ...
    @property
    def step(self) -> float:
        ...
class CodingDictionary:
    """
    A coding dictionary (C++): atoms, coding parameters and frequency tables; loads and saves the
    .smicd format. Immutable; smic_fast.Dictionary is the documented Python API over it.
    """
    @staticmethod
    def from_bytes(data: typing_extensions.Buffer, name: str = '<dictionary>') -> CodingDictionary:
        ...
    @staticmethod
    def load(path: str) -> CodingDictionary:
        """
        Read a .smicd file (FormatError if damaged or not a dictionary).
        """
    @staticmethod
    def with_tables(atoms: numpy.ndarray, unit: numpy.ndarray, params: dict, precision: str, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[CodingDictionary, tuple]:
        """
        Fit the tables of `atoms` on unit embeddings -> (dictionary, training item symbols).
        """
    def __init__(self, atoms: numpy.ndarray, params: dict, precision: str, counts: dict) -> None:
        ...
    def choose(self, unit: numpy.ndarray, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[tuple, typing.Any]:
        """
        Symbols of unit embeddings -> ((counts, first, rest_index, rest_level), cosine or None).
        """
    def classes(self, arg0: numpy.ndarray, arg1: numpy.ndarray, arg2: numpy.ndarray, arg3: numpy.ndarray) -> numpy.typing.NDArray[numpy.uint32]:
        """
        The transform class (uint32) of each item: its first atom's class.
        """
    def decode_items(self, data: typing_extensions.Buffer, offsets: numpy.ndarray, n_items: typing.SupportsInt | typing.SupportsIndex, chunk_size: typing.SupportsInt | typing.SupportsIndex, start: typing.SupportsInt | typing.SupportsIndex = 0, stop: typing.SupportsInt | typing.SupportsIndex | None = None) -> tuple:
        ...
    def decode_one(self, data: typing_extensions.Buffer, residual_step: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> numpy.typing.NDArray[numpy.float32]:
        """
        The unit-norm (d,) embedding of encode_one's bytes (at the step they were coded with).
        """
    def encode_bound_at(self, residual_step: typing.SupportsFloat | typing.SupportsIndex) -> int:
        """
        The most bytes encode_one can produce at residual_step.
        """
    def encode_items(self, arg0: numpy.ndarray, arg1: numpy.ndarray, arg2: numpy.ndarray, arg3: numpy.ndarray, arg4: typing.SupportsInt | typing.SupportsIndex) -> tuple[bytes, numpy.typing.NDArray[numpy.uint64]]:
        ...
    def encode_one(self, embedding: numpy.ndarray, residual_step: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> bytes:
        """
        Bytes of one embedding (what the batch path writes for it as a chunk of one), refined by the dictionary's transform layer at residual_step when it is above 0.
        """
    def reconstruct(self, arg0: numpy.ndarray, arg1: numpy.ndarray, arg2: numpy.ndarray, arg3: numpy.ndarray) -> numpy.typing.NDArray[numpy.float32]:
        """
        Unit-norm float32 (n, d) embeddings of item symbols.
        """
    def save(self, arg0: str) -> None:
        ...
    def to_bytes(self) -> bytes:
        ...
    def with_transform(self, transform: TransformModel | None) -> CodingDictionary:
        """
        This dictionary with a transform (None: without one); a new hash.
        """
    @property
    def atoms(self) -> numpy.typing.NDArray[numpy.float32]:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def encode_bound(self) -> int:
        ...
    @property
    def flat(self) -> bool:
        ...
    @property
    def hash(self) -> str:
        ...
    @property
    def models(self) -> ItemModels:
        """
        The item codec's models (ItemModels), e.g. for item_bits.
        """
    @property
    def n_atoms(self) -> int:
        ...
    @property
    def params(self) -> dict:
        ...
    @property
    def precision(self) -> str:
        ...
    @property
    def table_counts(self) -> dict:
        ...
    @property
    def transform(self) -> TransformModel | None:
        """
        The transform of a transform-coded refinement layer, or None.
        """
class Collection:
    """
    A .smic collection (C++ reader); see smic_fast.Collection.
    """
    @staticmethod
    def open(path: str, dictionary: CodingDictionary | None = None) -> Collection:
        ...
    def __len__(self) -> int:
        ...
    def append_in_place(self, embeddings: numpy.ndarray, ids: typing.Any = None, pixels: typing.Any = None, chunk_size: typing.SupportsInt | typing.SupportsIndex = 0, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
        """
        Append a batch at the end of the file in place (time proportional to the batch) and take it into this reader; returns the new items' cosines.
        """
    def codes(self, start: typing.SupportsInt | typing.SupportsIndex, stop: typing.SupportsInt | typing.SupportsIndex) -> tuple:
        """
        Decoded symbols of items [start, stop).
        """
    def decode(self, start: typing.SupportsInt | typing.SupportsIndex, stop: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        """
        Unit embeddings (stop - start, d) float32 of items [start, stop).
        """
    def decode_into(self, start: typing.SupportsInt | typing.SupportsIndex, stop: typing.SupportsInt | typing.SupportsIndex, out: numpy.ndarray) -> None:
        """
        Decode items [start, stop) into out, a writeable C-contiguous (stop - start, d) float32 array.
        """
    def find(self, arg0: str) -> int | None:
        ...
    def ids_range(self, start: typing.SupportsInt | typing.SupportsIndex, stop: typing.SupportsInt | typing.SupportsIndex) -> list:
        """
        The ids of items [start, stop).
        """
    @property
    def batch_sizes(self) -> list[int]:
        ...
    @property
    def chunk_size(self) -> int:
        ...
    @property
    def dictionary(self) -> CodingDictionary:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def file_bytes(self) -> int:
        ...
    @property
    def format_version(self) -> int:
        ...
    @property
    def header_json(self) -> str:
        ...
    @property
    def ids(self) -> list:
        ...
    @property
    def index_model(self) -> str:
        """
        How the items' other atoms are coded: 'order0' or 'remaining' (format version 3).
        """
    @property
    def pixel_terms(self) -> tuple[int, float]:
        """
        (items with a pixel count, sum of 1 / pixels): what bits-per-pixel figures need.
        """
    @property
    def pixels(self) -> list:
        ...
    @property
    def residual_step(self) -> float | None:
        ...
    @property
    def residual_transform(self) -> bool:
        ...
    @property
    def section_bytes(self) -> dict:
        ...
    @property
    def shared_dictionary(self) -> bool:
        ...
    @property
    def torn_bytes(self) -> int:
        ...
class SearchIndex:
    """
    In-memory search index of a collection's codes; see smic_fast.query.search.
    """
    def __init__(self, collection: Collection, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, gram_limit: typing.SupportsInt | typing.SupportsIndex = 4096, partition: str = 'kmeans', n_lists: typing.SupportsInt | typing.SupportsIndex = 0, iterations: typing.SupportsInt | typing.SupportsIndex = 10, train_items: typing.SupportsInt | typing.SupportsIndex = 0, seed: typing.SupportsInt | typing.SupportsIndex = 24301) -> None:
        """
        Build the index. partition: 'kmeans' (lists by a spherical k-means over the decoded embeddings, n_lists of them, 0: about sqrt(N)) or 'lead_atom' (one list per atom, by each item's largest atom); iterations, train_items (0: up to 256 per list) and seed steer the k-means.
        """
    def __len__(self) -> int:
        ...
    def scores(self, query: numpy.ndarray) -> numpy.typing.NDArray[numpy.float32]:
        """
        Atoms-only cosine (N,) float32 of every item with one (d,) query.
        """
    def search(self, queries: numpy.ndarray, k: typing.SupportsInt | typing.SupportsIndex, nprobe: typing.SupportsInt | typing.SupportsIndex = 0, rerank: typing.SupportsInt | typing.SupportsIndex = 0, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float32]]:
        """
        (positions (q, k) int64, scores (q, k) float32) of (q, d) float32 queries.
        """
    @property
    def centroids(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        The k-means centroids (n_lists, d) float32 unit rows (no rows for 'lead_atom').
        """
    @property
    def dim(self) -> int:
        ...
    @property
    def list_sizes(self) -> list[int]:
        ...
    @property
    def memory_bytes(self) -> int:
        ...
    @property
    def n_lists(self) -> int:
        ...
    @property
    def partition(self) -> str:
        ...
    @property
    def terms(self) -> int:
        ...
def append_collection(path: str, embeddings: numpy.ndarray, ids: typing.Any = None, pixels: typing.Any = None, replace: bool = False, chunk_size: typing.SupportsInt | typing.SupportsIndex = 0, dictionary: CodingDictionary | None = None, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
    """
    Append a batch atomically (earlier bytes untouched unless replace); returns cosines.
    """
def atom_screening() -> bool:
    """
    True when a one-item pursuit screens its atoms now (see set_atom_screening).
    """
def atomic_write(arg0: str, arg1: bytes) -> None:
    """
    Write bytes to path atomically (temporary file beside it, fsync, rename).
    """
def choose_items(coder: OmpCoder, X: numpy.ndarray, s_max: typing.SupportsInt | typing.SupportsIndex, step: typing.SupportsFloat | typing.SupportsIndex, rounding: typing.SupportsFloat | typing.SupportsIndex, rd_lambda: typing.SupportsFloat | typing.SupportsIndex, models: ItemModels, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
    """
    Rate-distortion choice of the item symbols of unit-norm embeddings (smic layout).
    
    choose_items(coder: OmpCoder, X, s_max, step, rounding, rd_lambda, models: ItemModels | None,
                 n_threads=0) -> (counts, first, rest_index, rest_level, cosine)
    
    X: (n, d) float32, C-contiguous, finite, rows of unit norm (zero rows allowed), d = coder.dim.
    Each item is OMP-coded with up to s_max atoms (1 <= s_max <= min(K, d)); each prefix of k atoms
    is quantized (ratio quantizer with step in (0, 1] and rounding in [0, 1)) and priced as
    (1 - cosine) + rd_lambda * bits, with bits from `models` (sorted layout, K atoms, this s_max,
    2 * floor(1 / step + rounding) + 1 level symbols) or flat models if None; the cheapest prefix
    wins, ties to the fewest atoms. Same result as smic_fast.coding.codec.choose_items up to float
    rounding at decision boundaries.
    
    Returns counts (n,) int32, first (n,) int32, rest_index and rest_level (n, s_max - 1) int32
    (unused slots -1) and the cosine of each reconstruction (n,) float64. An all-zero row gets
    count 1, first 0 and cosine 0. The result of a row does not depend on the other rows or on
    n_threads (0 = all cores; a call of at most 72 rows runs on the calling thread).
    Raises ValueError naming the bad argument.
    """
def dequantize(q: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex, bias: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> numpy.typing.NDArray[numpy.float32]:
    """
    x = sign(q) * (|q| - bias) * step (int32 in, float32 out).
    """
def encode_container(magic: bytes, version: typing.SupportsInt | typing.SupportsIndex, sections: collections.abc.Sequence[tuple[bytes, bytes]]) -> bytes:
    """
    A container's bytes: preamble, then each (tag, payload) with its length and CRC32.
    """
def encode_residual(levels: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex, chunk_size: typing.SupportsInt | typing.SupportsIndex) -> bytes:
    """
    The RESD payload of (n, d) int32 residual levels.
    """
def frequencies_from_counts(counts: numpy.ndarray, total_bits: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.uint32]:
    """
    uint32 frequency table from uint64 counts (total_bits = -1: rescale only past 2^31).
    """
def gemm_kernel() -> str:
    """
    Name of the product kernel in use.
    """
def gemm_nt(A: numpy.ndarray, B: numpy.ndarray, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float32]:
    """
    A @ B.T in float32 (internal).
    """
def learn_dictionary(X: numpy.ndarray, n_atoms: typing.SupportsInt | typing.SupportsIndex, n_nonzero: typing.SupportsInt | typing.SupportsIndex, n_iter: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex = 0, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, max_coherence: typing.SupportsFloat | typing.SupportsIndex = 0.99, progress: typing.Any = None, power_iterations: typing.SupportsInt | typing.SupportsIndex = 1, min_usage_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.25) -> tuple:
    """
    Approximate K-SVD; returns (D, mean squared error per iteration, replaced atoms).
    """
def learn_for_rate(X: numpy.ndarray, n_atoms: typing.SupportsInt | typing.SupportsIndex, params: dict, precision: str = 'float16', n_iter: typing.SupportsInt | typing.SupportsIndex = 10, seed: typing.SupportsInt | typing.SupportsIndex = 0, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, max_coherence: typing.SupportsFloat | typing.SupportsIndex = 0.99, progress: typing.Any = None, min_usage_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.25, sparsity_iterations: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    K-SVD coding its unit-norm training rows with s_max atoms for sparsity_iterations iterations (-1: half of n_iter), then with the coder's own rate-distortion choice (smic layout); returns (D, mean squared error per iteration, replaced atoms).
    """
def omp(X: numpy.ndarray, D: numpy.ndarray, n_nonzero: typing.SupportsInt | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex = -1.0, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
    """
    Batch OMP of the rows of X over the rows of D (strict types).
    """
def pack_varints(arg0: numpy.ndarray) -> bytes:
    """
    Unsigned LEB128 of each value: how the format stores its count tables.
    """
def parse_container(data: typing_extensions.Buffer, magic: bytes, kind: str = 'smic file', name: str = '<bytes>') -> tuple[int, list]:
    """
    Verify and split a container -> (version, [(tag, payload), ...]); FormatError if damaged.
    """
def quantize(values: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex, rounding: typing.SupportsFloat | typing.SupportsIndex = 0.5) -> numpy.typing.NDArray[numpy.int32]:
    """
    q = sign(x) * floor(|x| / step + rounding) (float32 in, int32 out).
    """
def range_decode_adaptive(data: bytes, count: typing.SupportsInt | typing.SupportsIndex, alphabet_size: typing.SupportsInt | typing.SupportsIndex, increment: typing.SupportsInt | typing.SupportsIndex, limit: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int32]:
    """
    Decode `count` symbols coded by range_encode_adaptive.
    """
def range_decode_static(data: bytes, freqs: numpy.ndarray, count: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int32]:
    """
    Decode `count` symbols coded by range_encode_static with the same `freqs`.
    """
def range_encode_adaptive(symbols: numpy.ndarray, alphabet_size: typing.SupportsInt | typing.SupportsIndex, increment: typing.SupportsInt | typing.SupportsIndex, limit: typing.SupportsInt | typing.SupportsIndex) -> bytes:
    """
    Range-code int32 `symbols` with an adaptive model.
    """
def range_encode_static(symbols: numpy.ndarray, freqs: numpy.ndarray) -> bytes:
    """
    Range-code int32 `symbols` with the static uint32 frequency table `freqs`.
    """
def refine(decoded: numpy.ndarray, levels: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    decoded + levels * step, rows renormalised (what a reader of a refined item gets).
    """
def repack_collection(path: str, dictionary: CodingDictionary | None = None, n_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Rewrite a collection atomically with its batches merged into one (items decode the same).
    """
def residual_levels(unit: numpy.ndarray, decoded: numpy.ndarray, step: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int32]:
    """
    int32 levels of unit / cos - decoded at step (round to nearest; cos = unit . decoded, unit - decoded where cos < TRANSFORM_TARGET_MIN_COSINE).
    """
def set_atom_screening(mode: str) -> None:
    """
    How one-item pursuits find their atoms (for tests and benchmarks; the codes are the same): 'auto' screens the atoms with an int8 product and proven bounds when the CPU has AVX-512 VNNI and the dictionary is large, 'on' always (plain C++ where VNNI is missing), 'off' computes every correlation.
    """
def set_gemm_kernel(name: str) -> None:
    """
    Select the product kernel: 'auto', 'avx512', 'avx2' or 'generic' (for tests).
    """
def write_collection(path: str, embeddings: numpy.ndarray, dictionary: CodingDictionary, ids: typing.Any = None, pixels: typing.Any = None, model: str | None = None, chunk_size: typing.SupportsInt | typing.SupportsIndex = 256, residual_step: typing.SupportsFloat | typing.SupportsIndex | None = None, writer: str = 'smic-fast', embed_dictionary: bool = True, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, codes: typing.Any = None, index_model: str = 'auto') -> numpy.typing.NDArray[numpy.float64]:
    """
    Write a new collection atomically; returns each item's reconstruction cosine. index_model: 'auto' (the smaller of the two), 'order0' or 'remaining'.
    """
def write_collection_streaming(path: str, blocks: list, dictionary: CodingDictionary, ids: typing.Any = None, pixels: typing.Any = None, model: str | None = None, chunk_size: typing.SupportsInt | typing.SupportsIndex = 256, residual_step: typing.SupportsFloat | typing.SupportsIndex | None = None, writer: str = 'smic-fast', embed_dictionary: bool = True, n_threads: typing.SupportsInt | typing.SupportsIndex = 0, codes: typing.Any = None, batch_items: typing.SupportsInt | typing.SupportsIndex = 0, index_model: str = 'auto', mean_norm: typing.SupportsFloat | typing.SupportsIndex | None = None) -> numpy.typing.NDArray[numpy.float64]:
    """
    write_collection from a list of (n_i, d) float16/32/64 arrays (memory maps welcome) read batch_items rows at a time; the same bytes in memory bounded by a batch. mean_norm: the header's, instead of the rows' (a merge of shards from their codes).
    """
FORMAT_VERSION: int = 4
TRANSFORM_CONTEXTS: int = 120
TRANSFORM_ESCAPE: int = 18
TRANSFORM_GAINS: int = 25
TRANSFORM_TARGET_MIN_COSINE: float = 0.5
__version__: str = '0.1.0'
