"""Delivering events to a real HTTP receiver that verifies Standard Webhooks signatures: signed bodies, the
same webhook-id on every attempt, retries with backoff after failures, giving up after the retry window,
auto-disabling an endpoint that keeps failing (and mailing its owner), and the SSRF re-check at delivery
time. Time is passed explicitly (``now``), so no test waits for a retry."""

from __future__ import annotations

import itertools
import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.mail.models import EmailMessage, MessageCategory, MessageState
from services.core.users.models import Role
from services.core.users.security import Principal
from services.core.webhooks import delivery
from services.core.webhooks.events import emit
from services.core.webhooks.models import DeliveryState
from services.core.webhooks.service import rotate_secret
from services.worker.webhooks.delivery import deliver_due
from tests.core.webhooks.helpers import attempts, deliveries, emit_sample, endpoint_row, make_endpoint
from tests.core.webhooks.receiver import running_receiver
from tests.factories import make_user


async def test_an_event_is_posted_signed_to_a_real_receiver(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    with running_receiver() as receiver:
        endpoint = await make_endpoint(db, receiver.url)
        receiver.secrets = [endpoint.secret]
        event_id = await emit_sample(db, country="KH")

        assert await deliver_due(sessionmaker, settings) == 1

    [got] = receiver.received
    assert got.verified_with == [endpoint.secret]
    assert got.webhook_id == str(event_id)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == receiver.url.split("/")[2]  # the name, though Loom connected to the address
    body = got.json()
    assert body["type"] == "signature.confirmed"
    assert body["data"]["country"] == "KH"
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    [row] = await deliveries(sessionmaker, endpoint.id)
    assert row.state == DeliveryState.delivered
    assert row.attempts == 1
    assert row.last_status_code == 200
    [attempt] = await attempts(sessionmaker, row.id)
    assert attempt.succeeded
    assert attempt.number == 1
    assert attempt.status_code == 200
    assert attempt.latency_ms is not None
    assert attempt.latency_ms >= 0
    assert attempt.response_snippet == '{"ok": true}'
    assert await deliver_due(sessionmaker, settings) == 0  # nothing twice


async def test_a_failing_receiver_that_recovers_gets_the_event_once_with_the_same_id(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    with running_receiver(statuses=[500, 503]) as receiver:
        endpoint = await make_endpoint(db, receiver.url)
        receiver.secrets = [endpoint.secret]
        event_id = await emit_sample(db)
        t0 = datetime.now(UTC)

        assert await deliver_due(sessionmaker, settings, now=t0) == 1
        [row] = await deliveries(sessionmaker, endpoint.id)
        assert row.state == DeliveryState.pending
        first_wait = row.next_attempt_at - t0
        # jittered exponential backoff: base 5 s, jittered to 50-100 %
        assert timedelta(seconds=2.5) <= first_wait <= timedelta(seconds=5)
        assert (await endpoint_row(sessionmaker, endpoint.id)).failing_since == t0
        assert await deliver_due(sessionmaker, settings, now=t0 + timedelta(seconds=1)) == 0  # not yet

        assert await deliver_due(sessionmaker, settings, now=t0 + timedelta(minutes=1)) == 1
        [row] = await deliveries(sessionmaker, endpoint.id)
        second_wait = row.next_attempt_at - (t0 + timedelta(minutes=1))
        assert timedelta(seconds=5) <= second_wait <= timedelta(seconds=10)

        assert await deliver_due(sessionmaker, settings, now=t0 + timedelta(minutes=2)) == 1
        assert await deliver_due(sessionmaker, settings, now=t0 + timedelta(hours=30)) == 0

    assert [r.status for r in receiver.received] == [500, 503, 200]
    assert {r.webhook_id for r in receiver.received} == {str(event_id)}
    assert all(r.verified_with == [endpoint.secret] for r in receiver.received)
    assert len({r.body for r in receiver.received}) == 1  # the very same body every time
    [row] = await deliveries(sessionmaker, endpoint.id)
    assert row.state == DeliveryState.delivered
    assert row.attempts == 3
    log = await attempts(sessionmaker, row.id)
    assert [(a.number, a.succeeded, a.status_code, a.error) for a in log] == [
        (1, False, 500, "HTTP 500"),
        (2, False, 503, "HTTP 503"),
        (3, True, 200, None),
    ]
    assert (await endpoint_row(sessionmaker, endpoint.id)).failing_since is None  # healthy again


async def test_a_delivery_fails_for_good_after_the_retry_window(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    quick = settings.model_copy(update={"webhook_retry_hours": 1.0})
    with running_receiver(default=500, answer_body=b"x" * 5000) as receiver:
        endpoint = await make_endpoint(db, receiver.url)
        await emit_sample(db)
        t0 = datetime.now(UTC)
        now = t0
        for _ in range(30):  # retry whenever due, until it stops
            await deliver_due(sessionmaker, quick, now=now)
            [row] = await deliveries(sessionmaker, endpoint.id)
            if row.state != DeliveryState.pending:
                break
            now = row.next_attempt_at
        assert now - t0 <= timedelta(hours=1)

    [row] = await deliveries(sessionmaker, endpoint.id)
    assert row.state == DeliveryState.failed
    assert row.failed_at is not None
    assert row.attempts == len(receiver.received) > 5
    log = await attempts(sessionmaker, row.id)
    assert all(a.response_snippet == "x" * 200 for a in log)  # a short snippet, never the whole body
    # the waits grew exponentially up to the cap
    waits = [(b.attempted_at - a.attempted_at).total_seconds() for a, b in itertools.pairwise(log)]
    assert waits[0] <= 5
    assert max(waits) > 600
    assert await deliver_due(sessionmaker, quick, now=t0 + timedelta(days=2)) == 0


async def test_an_endpoint_failing_for_the_configured_time_is_disabled_and_its_owner_mailed(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    quick = settings.model_copy(update={"webhook_disable_after_hours": 2.0})
    owner = await make_user(db, Role.admin)
    with running_receiver(default=500) as receiver:
        endpoint = await make_endpoint(db, receiver.url, owner_id=owner.id, description="Partner CRM")
        await emit_sample(db)
        t0 = datetime.now(UTC)
        assert await deliver_due(sessionmaker, quick, now=t0) == 1
        assert (await endpoint_row(sessionmaker, endpoint.id)).enabled
        await emit_sample(db)  # a second event, while the first waits for its retry
        assert await deliver_due(sessionmaker, quick, now=t0 + timedelta(hours=1)) == 2
        assert (await endpoint_row(sessionmaker, endpoint.id)).enabled  # failing for 1 h of 2
        disabled_at = t0 + timedelta(hours=2)
        assert await deliver_due(sessionmaker, quick, now=disabled_at) == 2

        row = await endpoint_row(sessionmaker, endpoint.id)
        assert not row.enabled
        assert row.disabled_at == disabled_at
        assert row.failing_since == t0
        assert row.disabled_reason is not None
        assert "2 hours" in row.disabled_reason
        assert {d.state for d in await deliveries(sessionmaker, endpoint.id)} == {DeliveryState.failed}
        # nothing more is attempted, nor recorded for new events
        assert await deliver_due(sessionmaker, quick, now=t0 + timedelta(days=1)) == 0
        await emit_sample(db)
        assert len(await deliveries(sessionmaker, endpoint.id)) == 2
        assert len(receiver.received) == 5

    [mail] = (
        await db.scalars(select(EmailMessage).where(EmailMessage.kind == "webhook_endpoint_disabled"))
    ).all()
    assert mail.to_address == owner.email
    assert mail.category == MessageCategory.staff
    assert mail.state == MessageState.pending
    assert mail.reference_id == endpoint.id
    assert mail.dedup_key == f"webhook_endpoint_disabled:{endpoint.id}:{disabled_at.isoformat()}"
    assert "disabled" in mail.subject
    assert receiver.url.partition("?")[0] in mail.text_body
    assert "source=loom" not in mail.text_body  # the query (maybe a token) is left out
    assert "Partner CRM" in mail.text_body
    assert mail.html_body is not None
    assert "<!DOCTYPE html>" in mail.html_body
    assert f"/v1/webhook-endpoints/{endpoint.id}" in mail.text_body
    # disabling again (another worker's late attempt) queues nothing more
    async with sessionmaker() as session:
        assert not await delivery.disable_failing(session, quick, endpoint.id, disabled_at)


async def test_after_a_rotation_deliveries_carry_both_signatures_for_the_grace_period(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    admin = await make_user(db, Role.admin)
    principal = Principal(kind="user", id=admin.id, role=Role.admin)
    with running_receiver() as receiver:
        endpoint = await make_endpoint(db, receiver.url)
        old_secret = endpoint.secret
        rotated = await rotate_secret(db, principal, endpoint.id, grace=timedelta(hours=1))
        receiver.secrets = [old_secret, rotated.secret]
        await emit_sample(db)
        await deliver_due(sessionmaker, settings)

        later = datetime.now(UTC) + timedelta(hours=2)
        await emit_sample(db)
        await deliver_due(sessionmaker, settings, now=later)

    first, second = receiver.received
    assert first.verified_with == [old_secret, rotated.secret]
    assert len(first.headers["webhook-signature"].split()) == 2
    assert second.verified_with == [rotated.secret]  # the grace period is over


async def test_connection_failures_and_redirects_are_failed_attempts(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    with running_receiver() as receiver:
        closed_url = receiver.url
    refused = await make_endpoint(db, closed_url)  # nothing listens there any more
    with running_receiver(default=302) as redirecting:
        redirects = await make_endpoint(db, redirecting.url)
        await emit_sample(db)
        assert await deliver_due(sessionmaker, settings) == 2
    assert len(redirecting.received) == 1  # not followed

    [refused_delivery] = await deliveries(sessionmaker, refused.id)
    [attempt] = await attempts(sessionmaker, refused_delivery.id)
    assert (attempt.succeeded, attempt.status_code, attempt.error) == (False, None, "connection failed")
    [redirected] = await deliveries(sessionmaker, redirects.id)
    [attempt] = await attempts(sessionmaker, redirected.id)
    assert (attempt.succeeded, attempt.status_code, attempt.error) == (False, 302, "HTTP 302")


async def test_private_addresses_are_refused_again_at_delivery_time(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """A URL that was acceptable when registered but resolves to a private address now (DNS rebinding,
    or the setting turned off) is not called."""
    strict = settings.model_copy(update={"webhooks_allow_private_urls": False})
    with running_receiver() as receiver:
        endpoint = await make_endpoint(db, receiver.url.replace("127.0.0.1", "localhost"))
        await emit_sample(db)
        assert await deliver_due(sessionmaker, strict) == 1
    assert receiver.received == []
    [row] = await deliveries(sessionmaker, endpoint.id)
    [attempt] = await attempts(sessionmaker, row.id)
    assert not attempt.succeeded
    assert attempt.error is not None
    assert attempt.error.startswith("refused:")


async def test_a_claimed_delivery_is_left_alone_for_its_lease(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """A worker that dies after claiming leaves the delivery to be taken again when the lease ends (at
    least once), not at once by another worker (not twice concurrently)."""
    endpoint = await make_endpoint(db, "http://127.0.0.1:9/never")
    await emit_sample(db)
    t0 = datetime.now(UTC)
    async with sessionmaker() as session:
        [claimed] = await delivery.claim(session, settings, t0)
        await session.commit()
    assert claimed.number == 1
    async with sessionmaker() as session:
        assert await delivery.claim(session, settings, t0 + timedelta(seconds=30)) == []
        [again] = await delivery.claim(session, settings, t0 + timedelta(minutes=5))
        await session.rollback()
    assert again.delivery_id == claimed.delivery_id
    assert again.number == 2
    assert (await deliveries(sessionmaker, endpoint.id))[0].attempts == 1


async def test_only_enabled_subscribed_endpoints_get_a_delivery(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    subscribed = await make_endpoint(
        db, "http://127.0.0.1:9/a", event_types=("signature.confirmed", "campaign.published")
    )
    other_type = await make_endpoint(db, "http://127.0.0.1:9/b", event_types=("campaign.published",))
    disabled = await make_endpoint(db, "http://127.0.0.1:9/c", enabled=False)
    event_id = await emit(db, "signature.confirmed", {"signature_id": "x"}, key="signature.confirmed:x")
    assert event_id is not None
    assert await emit(db, "signature.confirmed", {"signature_id": "x"}, key="signature.confirmed:x") is None
    await db.commit()
    assert [d.event_id for d in await deliveries(sessionmaker, subscribed.id)] == [event_id]
    assert await deliveries(sessionmaker, other_type.id) == []
    assert await deliveries(sessionmaker, disabled.id) == []


async def test_old_events_are_purged_once_no_delivery_is_pending(
    db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    with running_receiver() as receiver:
        endpoint = await make_endpoint(db, receiver.url)
        await emit_sample(db)
        await deliver_due(sessionmaker, settings)
    waiting = await make_endpoint(db, "http://127.0.0.1:9/", event_types=("campaign.published",))
    [delivered] = await deliveries(sessionmaker, endpoint.id)
    later = datetime.now(UTC) + timedelta(days=1)
    async with sessionmaker() as session:
        pending_event = await emit(session, "campaign.published", {}, key=f"k:{waiting.id}")
        await session.commit()
    async with sessionmaker() as session:
        assert await delivery.purge_old(session, datetime.now(UTC) - timedelta(days=1)) == 0  # too young
        # the delivered event goes (with its log); the one still pending for `waiting` stays
        assert await delivery.purge_old(session, later) == 1
        await session.commit()
    assert await deliveries(sessionmaker, endpoint.id) == []
    assert await attempts(sessionmaker, delivered.id) == []
    [kept] = await deliveries(sessionmaker, waiting.id)
    assert kept.event_id == pending_event


@pytest.fixture(scope="module")
def localhost_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for the name ``localhost`` (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_connects_to_the_checked_address_and_still_verifies_the_name(
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    localhost_certificate: tuple[str, str],
) -> None:
    """Loom connects to the address it checked, yet TLS (SNI and the certificate check) uses the URL's
    name: a certificate for ``localhost`` is accepted at ``https://localhost``, and the same server at
    ``https://127.0.0.1`` is refused, since the certificate does not name that address."""
    trusted = ssl.create_default_context(cafile=localhost_certificate[0])
    with running_receiver(tls=localhost_certificate) as receiver:
        by_name = await make_endpoint(db, receiver.url)
        by_address = await make_endpoint(db, receiver.url.replace("localhost", "127.0.0.1"))
        receiver.secrets = [by_name.secret]
        await emit_sample(db)
        async with httpx.AsyncClient(verify=trusted, follow_redirects=False, trust_env=False) as client:
            assert await deliver_due(sessionmaker, settings, client=client) == 2

    [got] = receiver.verified
    assert got.headers["host"] == receiver.url.split("/")[2]
    [delivered] = await deliveries(sessionmaker, by_name.id)
    assert delivered.state == DeliveryState.delivered
    [refused] = await deliveries(sessionmaker, by_address.id)
    [attempt] = await attempts(sessionmaker, refused.id)
    assert (attempt.succeeded, attempt.status_code) == (False, None)
