"""The service's Prometheus metrics (prometheus-client), in a registry of their own so that
several apps in one process (tests, a Ray replica) do not collide.

Names follow Triton's split of a request's time: queue (waiting for the worker), compute (the
model or the coder), and the whole request; plus batch sizes, group commits and outcomes by
status code.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:  # pragma: no cover
    from .batcher import BatchStats

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8192)


class Metrics:
    """Counters, gauges and histograms of one service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("smic_requests", "HTTP requests by endpoint and status code",
                                ("endpoint", "code"), registry=r)
        self.request_seconds = Histogram("smic_request_seconds", "time from request to response",
                                         ("endpoint",), buckets=_SECONDS, registry=r)
        self.queue_depth = Gauge("smic_queue_depth", "items waiting for a worker", ("stage",), registry=r)
        self.queue_wait = Histogram("smic_queue_wait_seconds", "time a batch's oldest item waited in the queue",
                                    ("stage",), buckets=_SECONDS, registry=r)
        self.batch_size = Histogram("smic_batch_size", "items per batch", ("stage",), buckets=_SIZES, registry=r)
        self.compute = Histogram("smic_compute_seconds", "time of one batch's work (inference or coding)",
                                 ("stage",), buckets=_SECONDS, registry=r)
        self.items = Counter("smic_items", "items processed", ("stage",), registry=r)
        self.commit_seconds = Histogram("smic_commit_seconds", "one group commit (append + fsync)",
                                        buckets=_SECONDS, registry=r)
        self.commit_requests = Histogram("smic_commit_requests", "requests per group commit", buckets=_SIZES,
                                         registry=r)
        self.appended = Counter("smic_appended_items", "items appended durably", registry=r)
        self.repacks = Counter("smic_repacks", "background repacks of a collection", registry=r)
        self.ready = Gauge("smic_ready", "1 when the service is ready (readyz 200)", registry=r)

    def track_depth(self, stage: str, depth: Callable[[], float]) -> None:
        self.queue_depth.labels(stage).set_function(depth)

    def batch(self, stage: str, stats: BatchStats) -> None:
        self.queue_wait.labels(stage).observe(stats.queue_wait_s)
        self.batch_size.labels(stage).observe(stats.size)
        self.compute.labels(stage).observe(stats.run_s)
        self.items.labels(stage).inc(stats.size)

    def commit(self, requests: int, items: int, seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_requests.observe(requests)
        self.appended.inc(items)

    def repack(self, seconds: float) -> None:
        self.repacks.inc()

    def request(self, endpoint: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(code)).inc()
        self.request_seconds.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
