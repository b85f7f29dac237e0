"""Prometheus metrics: HTTP requests and latencies by route template, method and status, plus gauges
(outbox backlog, queue depth, email due) read at scrape time.

Each app has its own ``CollectorRegistry`` (``app.state.metrics``), so several apps in one process (tests)
never clash. One uvicorn worker per container is the deployment model; Prometheus multiprocess mode is
not used.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

from services.api.ops.checks import bounded, outbox_backlog
from services.core.mail import queue as mail_queue

# Request methods outside this set are counted as "OTHER", so clients cannot create label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        labels = ("method", "route", "status")
        self.requests = Counter(
            "loom_http_requests",
            "HTTP requests, by route template, method and status.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "loom_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template, method and status.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # The labelled series of each (method, route, status), looked up once rather than per request.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.in_progress = Gauge(
            "loom_http_requests_in_progress", "HTTP requests being answered.", registry=self.registry
        )
        self.outbox_backlog = Gauge(
            "loom_outbox_backlog",
            "Outbox jobs neither published to the queue nor completed (NaN when unreadable).",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "loom_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox job, 0 when there is none (NaN when unreadable).",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "loom_queue_depth",
            "Jobs waiting in the queue (NaN when Redis is unreadable).",
            registry=self.registry,
        )
        self.mail_due = Gauge(
            "loom_mail_due",
            "Email messages waiting to be sent and due now (NaN when unreadable).",
            registry=self.registry,
        )
        self.mail_oldest_due_age = Gauge(
            "loom_mail_oldest_due_age_seconds",
            "How long the longest-waiting due email message has been due, 0 when none (NaN when unreadable).",
            registry=self.registry,
        )
        self.read_ok = Gauge(
            "loom_metrics_read_ok",
            "1 when the gauge source could be read at this scrape, 0 when not.",
            ("source",),
            registry=self.registry,
        )

        self.public_cache = Gauge(
            "loom_public_cache",
            "This process's cache of public answers: `hits` and `misses` since start, `entries`, `bytes`, "
            "`live` (1 while it sees writes, 0: off).",
            ("what",),
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:  # a bounded set: methods x route templates x statuses
            labels = (method, route, str(status))
            series = self._series[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        series[0].inc()
        series[1].observe(seconds)

    async def refresh(self, state: Any) -> None:
        """Read the gauges' sources concurrently, each bounded; a failed read sets its gauges to NaN."""

        async def database() -> tuple[tuple[int, float], tuple[int, float]]:
            # One session, read in turn (a session's connection runs one statement at a time).
            async with state.sessionmaker() as session:
                return await outbox_backlog(session), await mail_queue.backlog(session)

        async def queue() -> int:
            depth: int = await state.queue.depth()
            return depth

        cache = getattr(state, "public_cache", None)
        if cache is not None:
            for what, value in cache.figures().items():
                self.public_cache.labels(what).set(value)
        read, depth = await asyncio.gather(
            bounded("database gauges", database()), bounded("queue depth", queue()), return_exceptions=True
        )
        if isinstance(read, BaseException):
            for gauge in (
                self.outbox_backlog,
                self.outbox_oldest_age,
                self.mail_due,
                self.mail_oldest_due_age,
            ):
                gauge.set(math.nan)
            self.read_ok.labels("outbox").set(0)
            self.read_ok.labels("mail").set(0)
        else:
            (backlog, oldest), (due, oldest_due) = read
            self.outbox_backlog.set(backlog)
            self.outbox_oldest_age.set(oldest)
            self.mail_due.set(due)
            self.mail_oldest_due_age.set(oldest_due)
            self.read_ok.labels("outbox").set(1)
            self.read_ok.labels("mail").set(1)
        if isinstance(depth, BaseException):
            self.queue_depth.set(math.nan)
            self.read_ok.labels("queue").set(0)
        else:
            self.queue_depth.set(depth)
            self.read_ok.labels("queue").set(1)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for (Prometheus text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
