"""What ``smic serve`` does, without the web framework: load the dictionary and the models,
batch the model and coder calls, keep the served collections, group-commit their appends.

:class:`Service` is driven by :mod:`smic_fast.serve.app` (FastAPI on uvicorn) and by the Ray
Serve deployment (:mod:`smic_fast.serve.ray`); everything here is plain asyncio + threads.

Threads: one for the image model (ONNX Runtime, ``intra_op_threads`` of its own), one for the
coder (the C++ core on one thread per batch), ``decode_workers`` for image decoding, one writer
per collection being appended to. Image decoding never runs on the event loop.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..coding.dictionary import Dictionary
from .batcher import Batcher, BatchStats, QueueFull, QueueTimeout

__all__ = ["ServeConfig", "Service", "ServiceError", "QueueFull", "QueueTimeout", "COLLECTION_NAME"]

log = logging.getLogger("smic_fast.serve")

#: what a collection name may be: one path component, no dot first (no "..", no hidden files)
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
#: a group commit takes at most this many items (a stream of large requests still commits often)
MAX_COMMIT_ITEMS = 8192
#: bytes one appended batch adds beyond its items (section headers, offsets, a coder flush;
#: measured: 90-130 bytes with ids): the repack rule's estimate
_BATCH_OVERHEAD = 100


class ServiceError(Exception):
    """A request the service refuses: HTTP ``status``, a short ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class ServeConfig:
    """The service's settings (the flags of ``smic serve``; docs/serve.md)."""

    collections: Path | None = None  # the served folder of NAME.smic files
    dictionary: Path | None = None  # a shared .smicd: /v1/encode, and new collections
    model: str | None = None  # image tower: pairing name, open_clip arch or .onnx path
    text_model: str | None = None  # text tower, for text search queries and /v1/embeddings
    model_name: str | None = None  # the name clients see (default: model)
    cache: str | None = None  # SMIC_HOME for model names
    max_batch_size: int = 32
    max_wait_ms: float = 0.0
    max_queue: int = 1024  # items queued per stage
    queue_timeout_ms: float = 10_000.0
    max_body_bytes: int = 16 << 20
    max_items: int = 256  # items per request
    max_pixels: int = 40_000_000  # per image (width x height)
    decode_workers: int | None = None
    threads: int | None = None  # ONNX Runtime intra-op threads
    token: str | None = None  # bearer token (None: no auth)
    repack_overhead: float = 0.05  # repack a collection when its batch overhead passes this share
    providers: str = "auto"
    warm: bool = True

    def __post_init__(self) -> None:
        cores = os.cpu_count() or 1
        for name in ("max_batch_size", "max_queue", "max_body_bytes", "max_items", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if not (self.queue_timeout_ms > 0):
            raise ValueError(f"queue_timeout_ms must be > 0, got {self.queue_timeout_ms}")
        if self.threads is not None and not 1 <= self.threads <= cores:
            # one model worker: its ONNX Runtime threads may use every core, never more
            raise ValueError(f"threads must be in [1, {cores}] (the cores), got {self.threads}")
        # Decoding and the model run side by side (a pipeline): split the cores between them
        # rather than let both take all of them (on 2 cores, 2 ONNX Runtime threads beside 2
        # decoders doubled a lone image's inference time).
        if self.decode_workers is None:
            self.decode_workers = max(1, min(4, cores // 4))
        if self.threads is None:
            self.threads = max(1, cores - self.decode_workers)
        elif self.threads + self.decode_workers > cores:
            log.warning("smic serve: %d model threads + %d decoders exceed the %d cores", self.threads,
                        self.decode_workers, cores)
        if self.collections is None and self.dictionary is None:
            raise ValueError("serve needs a collections folder or a dictionary (or both)")
        if self.collections is not None:
            self.collections = Path(self.collections)
            if not self.collections.is_dir():
                raise ValueError(f"{self.collections} is not a folder")


def warm_sizes(max_batch_size: int) -> list[int]:
    """The batch sizes the model runs before ready: 1, the powers of two below the largest
    and the largest. ONNX Runtime's CPU and CUDA providers compile nothing per shape; what a
    first call pays is the arena's growth, which the largest batch covers. (All sizes 1..32
    of ViT-B-32 took over a minute on 2 cores; these six take a tenth of it.)"""
    sizes = [1]
    while sizes[-1] * 2 < max_batch_size:
        sizes.append(sizes[-1] * 2)
    if max_batch_size > 1:
        sizes.append(max_batch_size)
    return sizes


# ------------------------------------------------------------------------- input decoding
def b64decode(text: object, what: str) -> bytes:
    """Standard or URL-safe base64 (padding optional), or a ``data:...;base64,`` URI."""
    if not isinstance(text, str):
        raise ServiceError(400, "bad_request", f"{what} must be a base64 string")
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ServiceError(400, "bad_request", f"{what}: only base64 data URIs are accepted")
    text = text.strip()
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(400, "bad_request", f"{what} is not valid base64") from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def embedding_rows(values: object, dim: int, what: str = "embeddings") -> np.ndarray:
    """A JSON list of embeddings (each a list of numbers, or base64 of little-endian float32)
    as unit float32 rows; dimension, NaN/Inf, zero rows and types refused with a 400."""
    if not isinstance(values, list) or not values:
        raise ServiceError(400, "bad_request", f"{what} must be a non-empty list")
    rows = np.empty((len(values), dim), np.float64)
    for i, value in enumerate(values):
        if isinstance(value, str):
            raw = b64decode(value, f"{what}[{i}]")
            if len(raw) != 4 * dim:
                raise ServiceError(400, "bad_dimension",
                                   f"{what}[{i}] holds {len(raw)} bytes; float32 x {dim} is {4 * dim}")
            rows[i] = np.frombuffer(raw, "<f4")
            continue
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise ServiceError(400, "bad_request", f"{what}[{i}] must be a list of numbers or a base64 string")
        if len(value) != dim:
            raise ServiceError(400, "bad_dimension", f"{what}[{i}] has {len(value)} values; the dictionary's "
                                                     f"dimension is {dim}")
        rows[i] = value
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise ServiceError(400, "not_finite", f"{what}[{int(np.flatnonzero(~finite)[0])}] holds NaN or infinity")
    norms = np.linalg.norm(rows, axis=1)
    if (norms == 0).any():
        raise ServiceError(400, "zero_vector", f"{what}[{int(np.flatnonzero(norms == 0)[0])}] is zero "
                                               "(a cosine needs a direction)")
    if not np.isfinite(norms).all():
        raise ServiceError(400, "not_finite", f"{what}: values too large")
    return np.ascontiguousarray(rows / norms[:, None], dtype=np.float32)


class _TooLarge(Exception):
    pass


def open_image(data: bytes, name: str, max_pixels: int, preprocess: Any, draft: tuple[int, int] | None
               ) -> tuple[np.ndarray, int]:
    """Decode one image held in memory into the model's input tensor, refusing more than
    `max_pixels` from the header alone, before any pixel is decoded (a decompression bomb
    costs nothing). Raises ServiceError 413 / 400."""
    from PIL import Image

    from ..encode.images import ImageLoadError, decode_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ServiceError(413, "too_many_pixels", f"{name}: decompression bomb refused ({exc})") from None
    except Exception as exc:
        raise ServiceError(400, "bad_image", f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    if width * height > max_pixels:
        raise ServiceError(413, "too_many_pixels",
                           f"{name}: {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
    try:
        image, pixels = decode_image(data, name, draft=draft)
    except ImageLoadError as exc:
        status = 413 if "decompression bomb" in exc.reason else 400
        raise ServiceError(status, "bad_image", str(exc)) from None
    return preprocess(image), pixels


# ------------------------------------------------------------------------- collections
@dataclass
class _Pending:
    rows: np.ndarray
    ids: list[str] | None
    pixels: list[int] | None
    future: asyncio.Future[Any]


@dataclass
class _Served:
    """One served collection: the open object, a lock for its core (reads and in-place
    appends; repacks run off it), and its pending appends."""

    name: str
    path: Path
    collection: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[_Pending] = field(default_factory=list)
    flushing: bool = False
    writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="smic-writer"))
    repacking: bool = False
    stat: tuple[int, int, int] | None = None
    task: Any = None


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Service:
    """The encoding service. ``await start()`` loads and warms everything (``ready`` turns
    True), ``await drain()`` waits for queued work, ``close()`` stops the threads."""

    def __init__(self, config: ServeConfig, metrics: Any = None, *, batcher: Any = Batcher,
                 appender: Any = None) -> None:
        """`batcher`: the class (or factory) of the two stages' batchers, :class:`Batcher`'s
        signature (the Ray deployment passes one on ``@serve.batch``). `appender`: an async
        ``(name, unit, ids, pixels) -> (ids, codes)`` that commits appends elsewhere (the Ray
        deployment's one writer per folder); collections are then re-read when their file
        changes."""
        self.config = config
        self._batcher = batcher
        self._appender = appender
        self.metrics = metrics
        self.ready = False
        self.draining = False
        self.dictionary: Dictionary | None = None
        self.encoder: Any = None
        self.text_encoder: Any = None
        self.model_name: str | None = config.model_name or config.model
        self._collections: dict[str, _Served] = {}
        self._collections_lock = threading.Lock()
        self._decode_pool = ThreadPoolExecutor(config.decode_workers, thread_name_prefix="smic-decode")
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="smic-read")
        self.coder: Batcher[tuple[Dictionary, np.ndarray], tuple[bytes, float]] = batcher(
            "coder", self._code_batch, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue, queue_timeout_s=config.queue_timeout_ms / 1000,
            on_batch=self._observer("coder"))
        self.image_model: Batcher[np.ndarray, np.ndarray] | None = None
        self._admitted_images = 0  # images being decoded, queued or run (event-loop thread only)
        self.started_at: float | None = None

    def _observer(self, stage: str):  # type: ignore[no-untyped-def]
        def observe(stats: BatchStats) -> None:
            if self.metrics is not None:
                self.metrics.batch(stage, stats)
        return observe

    # ---------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Load the dictionary and models, warm every batch size in use; then ready."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._load)
        if self.config.warm:
            await self._warm()
        self.ready = True
        self.started_at = time.time()
        log.info("smic serve: ready")

    def _load(self) -> None:
        config = self.config
        if config.dictionary is not None:
            self.dictionary = Dictionary.load(config.dictionary)
        if config.model is not None:
            from ..encode.clip_onnx import ClipEncoder

            self.encoder = ClipEncoder(config.model, providers=config.providers, batch_size=config.max_batch_size,
                                       workers=config.decode_workers, intra_op_threads=config.threads,
                                       cache=config.cache)
            if self.dictionary is not None and self.encoder.dim != self.dictionary.dim:
                raise ValueError(f"model {config.model} gives dimension {self.encoder.dim}, the dictionary "
                                 f"{config.dictionary} holds dimension {self.dictionary.dim}")
            self.image_model = self._batcher(
                "image_model", self._run_images,
                max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
                queue_timeout_s=config.queue_timeout_ms / 1000, on_batch=self._observer("image_model"))
        if config.text_model is not None:
            from ..encode.text_tower import TextEncoder

            self.text_encoder = TextEncoder(config.text_model, cache=config.cache)

    def _run_images(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.encoder._run(np.stack(tensors)))

    async def _warm(self) -> None:
        """Run the coder and the model before ready, so no request pays a first call's cost
        (session set-up, memory arenas grown to the largest batch): see :func:`warm_sizes`."""
        loop = asyncio.get_running_loop()
        dictionary = self.dictionary
        if dictionary is None:
            for name in self.collection_names()[:1]:
                dictionary = (await loop.run_in_executor(None, self._open, name)).collection.dictionary
        sizes = warm_sizes(self.config.max_batch_size)
        if dictionary is not None:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((self.config.max_batch_size, dictionary.dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            for n in (1, self.config.max_batch_size):
                await loop.run_in_executor(None, self._code_batch, [(dictionary, row) for row in x[:n]])
        if self.encoder is not None:
            size = self.encoder.preprocess.image_size
            zeros = np.zeros((3, size, size), np.float32)
            for n in sizes:
                await loop.run_in_executor(None, self._run_images, [zeros] * n)
        if self.text_encoder is not None:
            await loop.run_in_executor(None, self.text_encoder.encode, ["warm up"])

    def busy(self) -> bool:
        """Work is queued or running (drain waits for this to turn False)."""
        if not self.coder.idle or (self.image_model is not None and not self.image_model.idle):
            return True
        return any(s.pending or s.flushing for s in list(self._collections.values()))

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Turn not-ready and wait (at most `timeout_s`) until queued and in-flight work is done."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while self.busy() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def close(self) -> None:
        self.coder.close()
        if self.image_model is not None:
            self.image_model.close()
        for served in list(self._collections.values()):
            served.writer.shutdown(wait=True)
        self._decode_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)

    # ---------------------------------------------------------------- coding
    @staticmethod
    def _code_batch(items: list[tuple[Dictionary, np.ndarray]]) -> list[tuple[bytes, float]]:
        """Unit rows -> (code bytes, cosine of the decoded embedding), grouped by dictionary:
        one choice, one range coding and one reconstruction per dictionary in the batch."""
        out: list[tuple[bytes, float] | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, (dictionary, _) in enumerate(items):
            groups.setdefault(id(dictionary), []).append(i)
        for members in groups.values():
            dictionary = items[members[0]][0]
            unit = np.stack([items[i][1] for i in members])
            symbols = dictionary.items_symbols(unit, n_threads=1)
            data, offsets = dictionary.encode_items(symbols, 1)
            decoded = dictionary.reconstruct(symbols)
            cosine = np.einsum("ij,ij->i", decoded.astype(np.float64), unit.astype(np.float64))
            for j, i in enumerate(members):
                out[i] = (bytes(data[offsets[j]:offsets[j + 1]]), float(cosine[j]))
        return out  # type: ignore[return-value]

    def dictionary_for(self, collection: str | None) -> Dictionary:
        """The dictionary that codes for `collection` (None: the served shared dictionary)."""
        if collection is not None:
            if not isinstance(collection, str):
                raise ServiceError(400, "bad_request", "collection must be a string")
            dictionary: Dictionary = self._open(collection).collection.dictionary
            return dictionary
        if self.dictionary is None:
            raise ServiceError(400, "no_dictionary", "this server has no --dictionary: name a collection "
                                                     "(\"collection\": NAME) whose dictionary codes the items")
        return self.dictionary

    async def code(self, dictionary: Dictionary, unit: np.ndarray) -> list[tuple[bytes, float]]:
        """Code unit rows through the coder's batcher."""
        self._check_items(len(unit))
        return await self._queued(self.coder, [(dictionary, row) for row in unit])

    async def _queued(self, batcher: Batcher[Any, Any], values: list[Any]) -> list[Any]:
        try:
            return await batcher.submit(values)
        except QueueFull as exc:
            retry = max(1, math.ceil(exc.retry_after_s))
            raise ServiceError(429, "overloaded", str(exc), {"Retry-After": str(retry)}) from None
        except QueueTimeout as exc:
            raise ServiceError(503, "queue_timeout", str(exc), {"Retry-After": "1"}) from None

    def _check_items(self, n: int) -> None:
        if n > self.config.max_items:
            raise ServiceError(413, "too_many_items", f"{n} items in one request; the limit is {self.config.max_items}")

    def decode(self, dictionary: Dictionary, codes: Sequence[bytes]) -> np.ndarray:
        from .._core import DecodeError

        out = np.empty((len(codes), dictionary.dim), np.float32)
        for i, code in enumerate(codes):
            try:
                out[i] = dictionary.decode(code)
            except (DecodeError, ValueError) as exc:
                raise ServiceError(400, "bad_code", f"codes[{i}] does not decode with this dictionary ({exc})") from None
        return out

    # ---------------------------------------------------------------- images and text
    async def embed_images(self, blobs: Sequence[tuple[str, bytes]]) -> tuple[np.ndarray, list[int]]:
        """Images (name, bytes) -> (unit embeddings, pixel counts); decoding on the thread
        pool, the model through its batcher."""
        if self.encoder is None or self.image_model is None:
            raise ServiceError(400, "no_image_model", "this server has no image model (start it with --model)")
        self._check_items(len(blobs))
        # Admission before any work: the stage's bound counts images being decoded too, so
        # past it a request is refused at once instead of after its decoding.
        self.check_image_room(len(blobs))
        self._admitted_images += len(blobs)
        try:
            loop = asyncio.get_running_loop()
            preprocess = self.encoder.preprocess
            draft = preprocess.draft_size() if self.encoder.draft else None
            decoded = await asyncio.gather(*(
                loop.run_in_executor(self._decode_pool, open_image, data, name, self.config.max_pixels, preprocess,
                                     draft)
                for name, data in blobs))
            rows = await self._queued(self.image_model, [tensor for tensor, _ in decoded])
        finally:
            self._admitted_images -= len(blobs)
        return np.stack(rows).astype(np.float32), [pixels for _, pixels in decoded]

    def check_image_room(self, n: int = 1) -> None:
        """429 (with Retry-After) when `n` more images do not fit the image stage's bound;
        the handlers call it before reading an image body, so a refusal costs no upload."""
        if self.image_model is not None and self._admitted_images + n > self.config.max_queue:
            retry = max(1, math.ceil(self.image_model.retry_after_s()))
            raise ServiceError(429, "overloaded", f"the image queue is full ({self.config.max_queue} items); "
                                                  "retry later", {"Retry-After": str(retry)})

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.text_encoder is None:
            raise ServiceError(400, "no_text_model", "this server has no text model (start it with --text-model)")
        self._check_items(len(texts))
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, self.text_encoder.encode, list(texts))

    # ---------------------------------------------------------------- collections
    def collection_names(self) -> list[str]:
        folder = self.config.collections
        if folder is None:
            return []
        return sorted(p.stem for p in folder.glob("*.smic") if COLLECTION_NAME.match(p.stem) and p.is_file())

    def _path(self, name: str) -> Path:
        folder = self.config.collections
        if folder is None:
            raise ServiceError(404, "no_collections", "this server serves no collections folder (--collections)")
        if not COLLECTION_NAME.match(name) or ".." in name:
            raise ServiceError(400, "bad_name", f"collection names are letters, digits, '.', '_' and '-' "
                                                f"(not first, at most 128): {name[:140]!r}")
        path = (folder / f"{name}.smic").resolve()
        if path.parent != folder.resolve():
            raise ServiceError(400, "bad_name", f"collection {name!r} is outside the served folder")
        return path

    def _served(self, name: str) -> _Served:
        path = self._path(name)
        with self._collections_lock:
            served = self._collections.get(name)
            if served is None:
                served = self._collections[name] = _Served(name, path)
            return served

    def _open(self, name: str, create: bool = False) -> _Served:
        """The served collection `name`, opened on first use (404 when missing, unless the
        caller will create it)."""
        import smic_fast

        served = self._served(name)
        if self._appender is not None and served.collection is not None:
            self._refresh(served)
        if served.collection is None:
            with served.lock:
                if served.collection is None:
                    if not served.path.is_file():
                        if create:
                            return served
                        raise ServiceError(404, "no_such_collection", f"no collection {name!r}")
                    served.stat = _stat(served.path)
                    served.collection = smic_fast.open(served.path, dictionary=self.dictionary)
        return served

    def _refresh(self, served: _Served) -> None:
        """Another process appends: re-open the file when it changed since it was read."""
        import smic_fast

        now = _stat(served.path)
        if now != served.stat:
            fresh = smic_fast.open(served.path, dictionary=self.dictionary)
            with served.lock:
                served.collection, served.stat = fresh, now

    async def read(self, fn: Any, *args: Any) -> Any:
        """Run a reading call off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, *args)

    def get_item(self, name: str, item_id: str) -> tuple[bytes, np.ndarray]:
        served = self._open(name)
        with served.lock:
            col = served.collection
            position = col._core.find(item_id)
            if position is None:
                raise ServiceError(404, "no_such_item", f"collection {name!r} has no item {item_id!r}")
            from ..coding.codec import ItemSymbols

            symbols = ItemSymbols(*col._core.codes(position, position + 1))
            embedding = col._core.decode(position, position + 1)[0]
        data, _ = col.dictionary.encode_items(symbols, 1)
        return bytes(data), embedding

    def search(self, name: str, queries: np.ndarray, k: int, nprobe: int | None) -> list[list[dict[str, Any]]]:
        served = self._open(name)
        with served.lock:
            if len(served.collection) == 0:
                return [[] for _ in range(len(queries))]
            found: list[list[dict[str, Any]]] = served.collection.search(queries, k, nprobe=nprobe,
                                                                          n_threads=1).to_dicts()
            return found

    def info(self, name: str) -> dict[str, Any]:
        served = self._open(name)
        with served.lock:
            info: dict[str, Any] = served.collection.info()
        info["path"] = served.path.name
        return info

    async def append(self, name: str, unit: np.ndarray, ids: list[str] | None, pixels: list[int] | None
                     ) -> tuple[list[str], list[bytes]]:
        """Append unit rows to collection `name`; returns (ids, codes) once they are durable.

        Requests that arrive while a commit runs are committed together in the next one (one
        append, one fsync). A request whose ids clash fails alone (409)."""
        self._check_items(len(unit))
        if ids is not None:
            if len(ids) != len(unit):
                raise ServiceError(400, "bad_ids", f"{len(ids)} ids for {len(unit)} items")
            if any(not isinstance(i, str) or not i or len(i) > 1024 or "\0" in i for i in ids):
                raise ServiceError(400, "bad_ids",
                                   "ids must be non-empty strings without NUL (at most 1024 characters)")
            if len(set(ids)) != len(ids):
                raise ServiceError(409, "duplicate_id", "ids repeat within the request")
        if self._appender is not None:
            appended: tuple[list[str], list[bytes]] = await self._appender(name, unit, ids, pixels)
            return appended
        served = self._open(name, create=True)
        if served.collection is None and self.dictionary is None:
            raise ServiceError(404, "no_such_collection",
                               f"no collection {name!r} (a server with --dictionary creates collections on append)")
        dim = served.collection.dim if served.collection is not None else self.dictionary.dim  # type: ignore[union-attr]
        if unit.shape[1] != dim:
            raise ServiceError(400, "bad_dimension", f"items have dimension {unit.shape[1]}, collection {name!r} {dim}")
        waiting = sum(len(p.rows) for p in served.pending)
        if waiting + len(unit) > self.config.max_queue:
            raise ServiceError(429, "overloaded", f"{waiting} items wait to be appended to {name!r}; retry later",
                               {"Retry-After": "1"})
        pending = _Pending(unit, ids, pixels, asyncio.get_running_loop().create_future())
        served.pending.append(pending)
        if not served.flushing:
            served.flushing = True
            served.task = asyncio.get_running_loop().create_task(self._flush(served))  # kept: not GC'd
        return await asyncio.shield(pending.future)  # a client gone does not undo a commit

    async def _flush(self, served: _Served) -> None:
        loop = asyncio.get_running_loop()
        try:
            while served.pending:
                group: list[_Pending] = []
                items = 0
                while served.pending and (not group or items + len(served.pending[0].rows) <= MAX_COMMIT_ITEMS):
                    group.append(served.pending.pop(0))
                    items += len(group[-1].rows)
                try:
                    results = await loop.run_in_executor(served.writer, self._commit, served, group)
                except Exception as exc:  # the whole commit failed: nothing of it was acknowledged
                    log.exception("append to %s failed", served.name)
                    error = ServiceError(500, "append_failed", f"append to {served.name!r} failed: {exc}")
                    results = [error] * len(group)
                for pending, result in zip(group, results):
                    if pending.future.done():
                        continue
                    if isinstance(result, BaseException):
                        pending.future.set_exception(result)
                    else:
                        pending.future.set_result(result)
                if self._wants_repack(served):
                    try:
                        await loop.run_in_executor(served.writer, self._repack, served)
                    except Exception:  # the file is as it was (atomic rewrite): appends go on
                        log.exception("repack of %s failed", served.name)
        finally:
            served.flushing = False

    def _commit(self, served: _Served, group: list[_Pending]) -> list[Any]:
        """In the collection's writer thread: one append (one fsync) for the group; returns
        each request's (ids, codes) or its ServiceError."""
        import smic_fast

        col = served.collection

        def existing(item_id: str) -> bool:
            return col is not None and col._core.find(item_id) is not None

        start = len(col) if col is not None else 0
        results: list[Any] = [None] * len(group)
        taken: set[str] = set()
        for k, pending in enumerate(group):
            if pending.ids is not None:
                clash = next((i for i in pending.ids if i in taken or existing(i)), None)
                if clash is not None:
                    results[k] = ServiceError(409, "duplicate_id", f"collection {served.name!r} already has id {clash!r}")
                    continue
                taken.update(pending.ids)
        accepted = [k for k in range(len(group)) if results[k] is None]
        if not accepted:
            return results
        ids: list[str] = []
        position = start
        for k in accepted:
            pending = group[k]
            if pending.ids is not None:
                ids += pending.ids
                position += len(pending.ids)
                continue
            for _ in range(len(pending.rows)):
                candidate, n = str(position), 0
                while candidate in taken or existing(candidate):  # positions are the default ids
                    n += 1
                    candidate = f"{position}.{n}"
                taken.add(candidate)
                ids.append(candidate)
                position += 1
        rows = np.concatenate([group[k].rows for k in accepted])
        pixel_lists = [group[k].pixels for k in accepted]
        pixels = [p for ps in pixel_lists for p in ps] if all(ps is not None for ps in pixel_lists) else None  # type: ignore[union-attr]
        started = time.perf_counter()
        if col is None:
            smic_fast.compress(rows, served.path, dictionary=self.dictionary, ids=ids, pixels=pixels,
                               model=self.model_name, n_threads=1)
            with served.lock:
                served.collection = smic_fast.open(served.path, dictionary=self.dictionary)
            col = served.collection
        else:
            with served.lock:
                col.append(rows, ids=ids, pixels=pixels, n_threads=1)
        with served.lock:  # the codes as stored: what a later GET returns
            from ..coding.codec import ItemSymbols

            symbols = ItemSymbols(*col._core.codes(start, start + len(rows)))
        data, offsets = col.dictionary.encode_items(symbols, 1)
        codes = [bytes(data[offsets[j]:offsets[j + 1]]) for j in range(len(rows))]
        if self.metrics is not None:
            self.metrics.commit(len(accepted), len(rows), time.perf_counter() - started)
        at = 0
        for k in accepted:
            n = len(group[k].rows)
            results[k] = (ids[at:at + n], codes[at:at + n])
            at += n
        return results

    def _wants_repack(self, served: _Served) -> bool:
        """Each appended batch costs its own headers, offsets and coder flush (~100 bytes):
        repack once they pass `repack_overhead` of the file, so the rate per item stays
        within that share of one batch's."""
        col = served.collection
        if col is None:
            return False
        batches = len(col._batch_sizes())
        return batches >= 2 and (batches - 1) * _BATCH_OVERHEAD > self.config.repack_overhead * col._core.file_bytes

    def _repack(self, served: _Served) -> None:
        """Merge the batches into one (atomic rewrite, in the writer thread; readers keep the
        open object until the new one is swapped in)."""
        import smic_fast

        from .. import _core

        started = time.perf_counter()
        given = self.dictionary if served.collection.shared_dictionary else None
        _core.repack_collection(os.fspath(served.path), None if given is None else given._core, 1)
        fresh = smic_fast.open(served.path, dictionary=self.dictionary)
        with served.lock:
            served.collection = fresh
        if self.metrics is not None:
            self.metrics.repack(time.perf_counter() - started)
        log.info("repacked %s (%d items) in %.3f s", served.name, len(fresh), time.perf_counter() - started)
