"""The same service on Ray Serve, for users who outgrow one machine (``[serve]`` + ``[ray]``
with Ray Serve: ``pip install 'smic-fast[serve-ray]'``).

    from ray import serve
    from smic_fast.serve import ServeConfig
    from smic_fast.serve.ray import deployment

    serve.run(deployment(ServeConfig(dictionary="shared.smicd", collections="/data/collections"),
                         num_replicas=2), route_prefix="/")

Each replica runs the FastAPI app of ``smic serve`` (same endpoints, same validation, same
metrics at /metrics per replica). Its two batching stages use Ray Serve's ``@serve.batch``
with ``max_batch_size`` and ``batch_wait_timeout_s = max_wait_ms / 1000``; ``max_queue``
bounds each stage (429 past it) and becomes the deployment's ``max_queued_requests``.

Appends go to **one writer per collections folder**: a named, restartable Ray actor
(:class:`CollectionWriter`) that group-commits them exactly as ``smic serve`` does and answers
only after the fsync. A replica that dies loses only requests it had not acknowledged; a
writer that dies fails the requests in flight (not acknowledged) and restarts. Replicas
re-read a collection when its file changes, so gets and searches see every committed item.
The folder must be shared by the replicas' machines (one machine, or a shared file system
with working ``flock``).
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .batcher import BatchStats, QueueFull
from .service import ServeConfig, Service, ServiceError

__all__ = ["CollectionWriter", "RayBatcher", "deployment", "writer_name"]


class RayBatcher:
    """:class:`~smic_fast.serve.batcher.Batcher`'s interface on ``@serve.batch``: the work runs
    on one thread of the replica, batches of at most ``max_batch_size`` formed by Ray Serve
    within ``max_wait_ms``; past ``max_queue`` queued items, :class:`QueueFull`."""

    def __init__(self, name: str, work: Callable[[list[Any]], Sequence[Any]], *, max_batch_size: int = 32,
                 max_wait_ms: float = 0.0, max_queue: int = 1024, queue_timeout_s: float | None = None,
                 on_batch: Callable[[BatchStats], None] | None = None) -> None:
        from ray import serve

        self.name = name
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"smic-{name}")
        self._queued = 0
        self._running = 0
        self._run_s = 0.001

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=max_wait_ms / 1000.0)
        async def run(values: list[Any]) -> list[Any]:
            loop = asyncio.get_running_loop()
            self._running += len(values)
            try:
                started = loop.time()
                results = await loop.run_in_executor(self._pool, lambda: list(work(values)))
                self._run_s = loop.time() - started
                if on_batch is not None:
                    on_batch(BatchStats(len(values), 0.0, self._run_s))
                return results
            finally:
                self._running -= len(values)

        self._run = run

    @property
    def depth(self) -> int:
        return max(0, self._queued - self._running)

    @property
    def idle(self) -> bool:
        return self._queued == 0

    async def submit(self, values: Sequence[Any]) -> list[Any]:
        if self._queued + len(values) > self.max_queue:
            batches = max(1, math.ceil(self._queued / self.max_batch_size))
            raise QueueFull(self.name, self.max_queue, batches * self._run_s)
        self._queued += len(values)
        try:
            return list(await asyncio.gather(*(self._run(v) for v in values)))
        finally:
            self._queued -= len(values)

    def close(self, timeout: float | None = 30.0) -> None:
        self._pool.shutdown(wait=True)


def writer_name(config: ServeConfig) -> str:
    """The writer actor's name: one per collections folder."""
    folder = str(config.collections.resolve()) if config.collections is not None else ""
    return "smic-writer-" + hashlib.sha256(folder.encode()).hexdigest()[:16]


class CollectionWriter:
    """The one writer of a collections folder (run as a Ray actor): group-committed, durable
    appends, as in ``smic serve``. Errors come back as ``("error", status, code, message)``."""

    def __init__(self, config: ServeConfig) -> None:
        config = dataclasses.replace(config, model=None, text_model=None, warm=False)
        self.service = Service(config)
        self.service._load()

    async def append(self, name: str, unit: np.ndarray, ids: list[str] | None, pixels: list[int] | None
                     ) -> tuple[Any, ...]:
        try:
            new_ids, codes = await self.service.append(name, unit, ids, pixels)
        except ServiceError as exc:
            return ("error", exc.status, exc.code, exc.message)
        return ("ok", new_ids, codes)

    def ping(self) -> bool:
        return True


def _remote_appender(config: ServeConfig) -> Callable[..., Any]:
    import ray

    actor = ray.remote(CollectionWriter).options(
        name=writer_name(config), namespace="smic", get_if_exists=True, lifetime="detached",
        max_restarts=-1, max_concurrency=1000, num_cpus=0)
    handle = actor.remote(config)

    async def append(name: str, unit: np.ndarray, ids: list[str] | None, pixels: list[int] | None
                     ) -> tuple[list[str], list[bytes]]:
        try:
            reply = await handle.append.remote(name, unit, ids, pixels)  # type: ignore[attr-defined]
        except Exception as exc:  # the writer died: not acknowledged, retry
            raise ServiceError(503, "writer_unavailable", f"the collection writer failed ({exc}); retry",
                               {"Retry-After": "1"}) from None
        if reply[0] == "error":
            raise ServiceError(reply[1], reply[2], reply[3])
        return reply[1], reply[2]

    return append


def deployment(config: ServeConfig, *, num_replicas: int = 2, max_ongoing_requests: int = 256,
               ray_actor_options: dict[str, Any] | None = None, name: str = "smic") -> Any:
    """A Ray Serve application of the service (``serve.run(deployment(config))``)."""
    from ray import serve

    from .app import create_app

    @serve.ingress()
    class SmicServe:
        def __init__(self, config: ServeConfig) -> None:
            self.config = config

        def __serve_build_asgi_app__(self) -> Any:
            appender = _remote_appender(self.config) if self.config.collections is not None else None
            service = Service(self.config, batcher=RayBatcher, appender=appender)
            return create_app(self.config, service=service)

    cls = serve.deployment(SmicServe, name=name, num_replicas=num_replicas,
                           max_ongoing_requests=max_ongoing_requests, max_queued_requests=config.max_queue,
                           ray_actor_options=ray_actor_options or {"num_cpus": 0})
    return cls.bind(config)  # type: ignore[attr-defined]
