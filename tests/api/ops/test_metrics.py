"""/metrics: request counters by route template, gauges read at scrape time, and a scrape that survives
failed reads."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.jobs import JobQueue
from services.core.mail.models import MessageCategory
from services.core.mail.queue import NewMessage, queue_many
from services.core.outbox.models import OutboxJob

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_by_route_template_method_and_status(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/healthz")).status_code == 200
    assert (await client.post("/healthz")).status_code == 405
    for path in (f"/no/such/{uuid.uuid4()}", f"/no/such/{uuid.uuid4()}"):
        assert (await client.get(path)).status_code == 404
    after = await scrape(client)

    def delta(**labels: str) -> float:
        return value(after, "loom_http_requests_total", **labels) - value(
            before, "loom_http_requests_total", **labels
        )

    assert delta(method="GET", route="/healthz", status="200") == 3
    assert delta(method="POST", route="/healthz", status="405") == 1
    # Unknown paths share one label value: raw paths never become labels.
    assert delta(method="GET", route="<unmatched>", status="404") == 2
    routes = {dict(labels).get("route") for (name, labels) in after if name == "loom_http_requests_total"}
    assert not any(route and route.startswith("/no/such/") for route in routes)
    latency = "loom_http_request_duration_seconds_count"
    assert value(after, latency, method="GET", route="/healthz", status="200") >= 3


async def test_unknown_methods_do_not_become_label_values(client: httpx.AsyncClient) -> None:
    await client.request("BREW", "/healthz")
    samples = await scrape(client)
    methods = {dict(labels).get("method") for (name, labels) in samples if name == "loom_http_requests_total"}
    assert "BREW" not in methods
    assert "OTHER" in methods


async def test_outbox_backlog_counts_unpublished_uncompleted_jobs(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    base = value(await scrape(client), "loom_outbox_backlog")
    now = datetime.now(UTC)
    db.add_all(
        [
            OutboxJob(id=uuid.uuid4(), task="test.noop", payload={}),
            OutboxJob(id=uuid.uuid4(), task="test.noop", payload={}),
            OutboxJob(id=uuid.uuid4(), task="test.noop", payload={}),
            OutboxJob(id=uuid.uuid4(), task="test.noop", payload={}, published_at=now),
            OutboxJob(id=uuid.uuid4(), task="test.noop", payload={}, completed_at=now),
        ]
    )
    await db.flush()
    samples = await scrape(client)
    assert value(samples, "loom_outbox_backlog") == base + 3
    assert value(samples, "loom_outbox_oldest_unpublished_age_seconds") >= 0
    assert value(samples, "loom_metrics_read_ok", source="outbox") == 1


async def test_mail_due_counts_pending_messages_that_are_due(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    base = value(await scrape(client), "loom_mail_due")
    await queue_many(
        db,
        [
            NewMessage(
                dedup_key=f"metrics:{uuid.uuid4()}",
                kind="test",
                category=MessageCategory.transactional,
                to_address=f"m{i}@example.org",
                subject="s",
                text_body="t",
            )
            for i in range(3)
        ],
    )
    await db.execute(
        text(
            "UPDATE email_messages SET next_attempt_at = now() + interval '1 hour' "
            "WHERE to_address = 'm2@example.org'"
        )
    )
    samples = await scrape(client)
    assert value(samples, "loom_mail_due") == base + 2  # the third is not due yet
    assert value(samples, "loom_mail_oldest_due_age_seconds") >= 0
    assert value(samples, "loom_metrics_read_ok", source="mail") == 1


async def test_queue_depth_is_read_from_the_queue(
    app: FastAPI, client: httpx.AsyncClient, redis_url: str
) -> None:
    real = app.state.queue
    queue = JobQueue.lazy(redis_url, queue_name=f"loom:test:depth:{uuid.uuid4().hex[:8]}")
    app.state.queue = queue
    try:
        for _ in range(4):
            await queue.publish(uuid.uuid4(), "test.noop", {})
        samples = await scrape(client)
    finally:
        app.state.queue = real
        await queue._pool.delete(queue.queue_name)
        await queue.close()
    assert value(samples, "loom_queue_depth") == 4
    assert value(samples, "loom_metrics_read_ok", source="queue") == 1


async def test_a_failed_read_does_not_fail_the_scrape(
    app: FastAPI, client: httpx.AsyncClient, closed_port: int
) -> None:
    real = app.state.queue
    app.state.queue = JobQueue.lazy(f"redis://127.0.0.1:{closed_port}/0")
    try:
        samples = await scrape(client)
    finally:
        await app.state.queue.close()
        app.state.queue = real
    assert math.isnan(value(samples, "loom_queue_depth"))
    assert value(samples, "loom_metrics_read_ok", source="queue") == 0
    # the other source is still read
    assert value(samples, "loom_metrics_read_ok", source="outbox") == 1
    assert not math.isnan(value(samples, "loom_outbox_backlog"))


async def test_openmetrics_on_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
