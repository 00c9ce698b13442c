"""A small dynamic batcher: requests' items queue here, one worker thread runs them in batches.

Triton's two knobs, with its meanings: ``max_batch_size`` is the most items one call of the
work function receives (never more: a request larger than that is split across batches);
``max_wait_ms`` is how long a batch formed under load may wait for more items, counted from
its oldest item's arrival. An idle worker never waits: an item that finds the worker idle and
the queue empty runs at once, so batching adds no latency to a lone client (Triton's default
``max_queue_delay_microseconds`` of 0, and the rule for any value here). Batches form from what
queues while the worker is busy.

The queue is bounded (``max_queue`` items): past it :meth:`Batcher.submit` raises
:class:`QueueFull` at once (the service answers 429 with Retry-After), never blocks. An item
queued longer than ``queue_timeout_s`` fails with :class:`QueueTimeout` instead of running. A
caller that goes away (a cancelled task: the client disconnected) leaves its items in the queue
marked cancelled; the worker drops them without running them, so cancellations neither hang
the worker nor cost model time.
"""
from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Batcher", "BatchStats", "QueueFull", "QueueTimeout"]

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(Exception):
    """The queue holds ``max_queue`` items: retry after ``retry_after_s``."""

    def __init__(self, name: str, limit: int, retry_after_s: float) -> None:
        super().__init__(f"the {name} queue is full ({limit} items); retry later")
        self.retry_after_s = retry_after_s


class QueueTimeout(Exception):
    """An item waited in the queue longer than the deadline and was not run."""


@dataclass
class BatchStats:
    """What one batch cost: its size, the oldest item's queue wait and the work's seconds."""

    size: int
    queue_wait_s: float
    run_s: float


@dataclass
class _Item(Generic[T]):
    value: T
    future: asyncio.Future[Any]
    arrival: float
    loop: asyncio.AbstractEventLoop
    queue_wait_s: float = field(default=0.0)


class Batcher(Generic[T, R]):
    """Run ``work(values) -> results`` (one result per value, same order) in batches on one
    worker thread; ``submit`` from the event loop awaits each value's result.

    ``on_batch(stats)`` is called (in the worker thread) after every batch, for metrics.
    """

    def __init__(self, name: str, work: Callable[[list[T]], Sequence[R]], *, max_batch_size: int = 32,
                 max_wait_ms: float = 0.0, max_queue: int = 1024, queue_timeout_s: float | None = 30.0,
                 on_batch: Callable[[BatchStats], None] | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.name = name
        self.work = work
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.on_batch = on_batch
        self._queue: collections.deque[_Item[T]] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False  # the worker is running a batch
        self._closed = False
        self._run_s_ewma = 0.001  # seconds per batch, for Retry-After
        self._thread = threading.Thread(target=self._loop, name=f"smic-{name}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- state
    @property
    def depth(self) -> int:
        """Items queued (not yet taken by the worker)."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch running."""
        with self._cond:
            return not self._queue and not self._busy

    def retry_after_s(self) -> float:
        """A guess at when the queue will have room: the batches ahead times their cost."""
        batches = max(1, -(-len(self._queue) // self.max_batch_size))
        return max(0.001, batches * self._run_s_ewma)

    # ---------------------------------------------------------------- submitting
    async def submit(self, values: Sequence[T]) -> list[R]:
        """Queue `values` (all or none: :class:`QueueFull` when they do not fit) and await
        their results. Cancelling the awaiting task drops the values not yet run."""
        if not values:
            return []
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        items = [_Item(v, loop.create_future(), now, loop) for v in values]
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the {self.name} batcher is closed")
            if len(self._queue) + len(items) > self.max_queue:
                self._drop_cancelled()  # items whose clients went away hold no place
            if len(self._queue) + len(items) > self.max_queue:
                raise QueueFull(self.name, self.max_queue, self.retry_after_s())
            self._queue.extend(items)
            self._cond.notify()
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        except BaseException:
            for item in items:  # the worker skips cancelled items; finished ones are dropped
                item.future.cancel()
            with self._cond:  # and they leave the queue now, not when the worker reaches them
                self._drop_cancelled()
            raise

    def _drop_cancelled(self) -> None:
        """Remove cancelled items from the queue (the caller holds the lock)."""
        if any(item.future.cancelled() for item in self._queue):
            self._queue = collections.deque(item for item in self._queue if not item.future.cancelled())

    # ---------------------------------------------------------------- the worker
    def _take(self) -> list[_Item[T]] | None:
        """The next batch (blocking), or None once closed and empty."""
        with self._cond:
            self._busy = False
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            # Items that queued while the worker was busy form a batch under load: it may
            # wait up to max_wait from its oldest item for a fuller batch. An item that found
            # the worker idle runs at once.
            under_load = len(self._queue) > 1 or self._queue[0].arrival < self._last_done
            if under_load and self.max_wait_s > 0:
                deadline = self._queue[0].arrival + self.max_wait_s
                while len(self._queue) < self.max_batch_size and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch: list[_Item[T]] = []
            while self._queue and len(batch) < self.max_batch_size:
                batch.append(self._queue.popleft())
            self._busy = True
            return batch

    _last_done = 0.0

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            now = time.monotonic()
            live: list[_Item[T]] = []
            for item in batch:
                if item.future.cancelled():
                    continue
                if self.queue_timeout_s is not None and now - item.arrival > self.queue_timeout_s:
                    self._resolve(item, error=QueueTimeout(
                        f"queued {now - item.arrival:.3f} s in the {self.name} queue, over its "
                        f"{self.queue_timeout_s:g} s deadline"))
                    continue
                item.queue_wait_s = now - item.arrival
                live.append(item)
            if live:
                start = time.perf_counter()
                error: Exception | None = None
                try:
                    results = list(self.work([item.value for item in live]))
                    if len(results) != len(live):
                        raise RuntimeError(f"{self.name}: work returned {len(results)} results for {len(live)} items")
                except Exception as exc:  # every item of the batch gets the error
                    results, error = [None] * len(live), exc
                run_s = time.perf_counter() - start
                # Before any client sees its result: a request sent after it found the worker
                # idle and runs at once (set after, it could look queued behind this batch and
                # wait max_wait for company).
                self._last_done = time.monotonic()
                for item, result in zip(live, results):
                    self._resolve(item, result=result, error=error)
                self._run_s_ewma = 0.8 * self._run_s_ewma + 0.2 * run_s
                if self.on_batch is not None:
                    self.on_batch(BatchStats(len(live), max(i.queue_wait_s for i in live), run_s))
            else:
                self._last_done = time.monotonic()

    @staticmethod
    def _resolve(item: _Item[T], *, result: Any = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if item.future.done():
                return
            if error is not None:
                item.future.set_exception(error)
            else:
                item.future.set_result(result)

        try:
            item.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody waits for this item any more
            pass

    def close(self, timeout: float | None = 30.0) -> None:
        """Run what is queued, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)


def run_in_pool(pool: ThreadPoolExecutor, fn: Callable[..., R], *args: Any) -> asyncio.Future[R]:
    """``fn(*args)`` on `pool`, awaitable from the running loop."""
    return asyncio.get_running_loop().run_in_executor(pool, fn, *args)
