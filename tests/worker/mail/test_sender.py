"""The sender against a real SMTP server (aiosmtpd) and real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.mail.limits import SendLimits
from services.core.mail.models import MessageCategory, MessageState, Suppression, SuppressionReason
from services.core.mail.smtp import SmtpConfig
from services.worker.mail.sender import Listener, Sender, Step
from tests.mail_helpers import enqueue, enqueue_many, make_due, new_message, rows
from tests.smtp_server import SmtpServer

Sessions = async_sessionmaker[AsyncSession]


def sender_for(settings: Settings, sessions: Sessions, limits: SendLimits | None = None) -> Sender:
    smtp = SmtpConfig.from_settings(settings)
    assert smtp is not None
    return Sender(sessions, settings, smtp=smtp, limits=limits)


async def test_a_batch_goes_over_one_connection_and_every_row_ends_sent(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    ids = await enqueue_many(mail_sessions, 120)  # more than one batch of 50
    sender = sender_for(mail_settings, mail_sessions)
    assert await sender.drain() is Step.idle
    await sender.close()
    assert len(smtp_server.messages) == 120
    assert smtp_server.connections == 1
    assert sorted(smtp_server.message_ids) == sorted(f"<{i}@loom.localhost>" for i in ids)
    assert {(r.state, r.attempts, r.last_error) for r in await rows(mail_sessions)} == {
        (MessageState.sent, 1, None)
    }
    assert all(r.sent_at is not None for r in await rows(mail_sessions))


async def test_the_message_has_its_headers_and_a_text_and_an_html_part(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    [row_id] = await enqueue(
        mail_sessions,
        [
            new_message(
                "Zoë@example.org",
                subject="Ihre Unterschrift bestätigen",
                text_body="Bitte bestätigen: https://example.org/c\n",
                html_body="<p>Bitte <a href='https://example.org/c'>bestätigen</a></p>\n",
                headers={
                    "List-Unsubscribe": "<https://example.org/u/abc>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                    "From": "Someone Else <evil@example.com>",  # the sender's own headers win
                },
            )
        ],
    )
    sender = sender_for(mail_settings, mail_sessions)
    await sender.drain()
    await sender.close()
    [received] = smtp_server.messages
    msg = received.message
    assert received.envelope_from == "no-reply@loom.localhost"
    assert received.recipients == ["Zoë@example.org"]
    assert msg["From"] == "Loom <no-reply@loom.localhost>"
    assert msg["To"] == "Zoë@example.org"
    assert msg["Subject"] == "Ihre Unterschrift bestätigen"
    assert msg["Message-ID"] == f"<{row_id}@loom.localhost>"
    [row] = await rows(mail_sessions)
    assert msg["Date"].datetime == row.created_at.replace(microsecond=0)
    assert msg["List-Unsubscribe"] == "<https://example.org/u/abc>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(msg.get_all("From") or []) == 1
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().replace("\r\n", "\n") == "Bitte bestätigen: https://example.org/c\n"
    assert "bestätigen</a>" in html.get_content()


async def test_a_message_sent_again_is_recognisably_the_same_message(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    await enqueue(mail_sessions, [new_message("jane@example.org")])
    sender = sender_for(mail_settings, mail_sessions)
    await sender.drain()
    async with mail_sessions.begin() as session:  # as if the crash window hit: still pending
        await session.execute(text("UPDATE email_messages SET state = 'pending', next_attempt_at = now()"))
    await sender.drain()
    await sender.close()
    first, second = smtp_server.messages
    assert first.message_id == second.message_id
    assert first.data == second.data


async def test_a_4xx_leaves_the_message_pending_with_a_backoff_and_it_goes_out_later(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse("busy@example.org", "451 4.7.1 <busy@example.org>: greylisted, try later")
    await enqueue(mail_sessions, [new_message("busy@example.org"), new_message("fine@example.org")])
    sender = sender_for(mail_settings, mail_sessions)
    before = datetime.now(UTC)
    assert await sender.drain() is Step.idle
    assert smtp_server.recipients == ["fine@example.org"]
    busy = next(r for r in await rows(mail_sessions) if r.to_address == "busy@example.org")
    assert (busy.state, busy.attempts) == (MessageState.pending, 1)
    assert busy.last_error is not None
    assert "451" in busy.last_error
    assert "busy@example.org" not in busy.last_error  # no addresses in last_error
    wait = (busy.next_attempt_at - before).total_seconds()
    assert 0.5 * 60 - 1 <= wait <= 60 + 1  # base 60 s, jittered to 50-100 %

    smtp_server.accept("busy@example.org")
    assert await sender.drain() is Step.idle  # not due yet
    assert smtp_server.recipients == ["fine@example.org"]
    await make_due(mail_sessions)
    await sender.drain()
    await sender.close()
    assert smtp_server.recipients == ["fine@example.org", "busy@example.org"]
    busy = next(r for r in await rows(mail_sessions) if r.to_address == "busy@example.org")
    assert (busy.state, busy.attempts, busy.last_error) == (MessageState.sent, 2, None)


async def test_the_backoff_doubles_and_a_message_out_of_attempts_fails(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    settings = mail_settings.model_copy(update={"mail_max_attempts": 3, "mail_retry_base_seconds": 100.0})
    smtp_server.refuse_all("450 4.2.0 mailbox busy")
    await enqueue(mail_sessions, [new_message("slow@example.org")])
    sender = sender_for(settings, mail_sessions)
    waits = []
    for _ in range(3):
        start = datetime.now(UTC)
        await sender.drain()
        [row] = await rows(mail_sessions)
        waits.append((row.next_attempt_at - start).total_seconds())
        await make_due(mail_sessions)
    await sender.close()
    [row] = await rows(mail_sessions)
    assert (row.state, row.attempts) == (MessageState.failed, 3)
    assert row.failed_at is not None
    assert 49 <= waits[0] <= 101
    assert 99 <= waits[1] <= 201


async def test_a_5xx_on_rcpt_fails_the_message_and_suppresses_the_address(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse("gone@example.org", "550 5.1.1 <gone@example.org>: no such user")
    await enqueue(mail_sessions, [new_message("Gone@Example.org"), new_message("here@example.org")])
    sender = sender_for(mail_settings, mail_sessions)
    await sender.drain()
    await sender.close()
    assert smtp_server.recipients == ["here@example.org"]
    gone = next(r for r in await rows(mail_sessions) if r.to_canonical == "gone@example.org")
    assert (gone.state, gone.attempts) == (MessageState.failed, 1)
    assert gone.last_error is not None
    assert "550" in gone.last_error
    assert "gone@" not in gone.last_error
    async with mail_sessions() as session:
        suppression = await session.get(Suppression, "gone@example.org")
    assert suppression is not None
    assert suppression.reason == SuppressionReason.bounced
    # Later mail to that address is not even queued as pending.
    await enqueue(mail_sessions, [new_message("gone@example.org")])
    assert sorted(
        r.state for r in await rows(mail_sessions) if r.to_canonical == "gone@example.org"
    ) == sorted([MessageState.failed, MessageState.suppressed])


async def test_a_5xx_on_data_fails_the_message_without_suppressing_the_address(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse_data = "554 5.6.0 content refused"
    await enqueue(mail_sessions, [new_message("jane@example.org")])
    sender = sender_for(mail_settings, mail_sessions)
    await sender.drain()
    await sender.close()
    [row] = await rows(mail_sessions)
    assert row.state == MessageState.failed
    async with mail_sessions() as session:
        assert await session.get(Suppression, "jane@example.org") is None


async def test_with_the_server_down_messages_wait_without_using_attempts_and_drain_when_it_is_back(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    await enqueue_many(mail_sessions, 10)
    sender = sender_for(mail_settings, mail_sessions)
    assert await sender.drain() is Step.paused
    assert sender.paused_until > time.monotonic()
    assert await sender.drain() is Step.paused  # backing off as a whole: no new attempt yet
    assert {(r.state, r.attempts) for r in await rows(mail_sessions)} == {(MessageState.pending, 0)}

    smtp_server.start()
    sender.paused_until = 0.0  # the backoff is over
    assert await sender.drain() is Step.idle
    await sender.close()
    assert len(smtp_server.messages) == 10
    assert {(r.state, r.attempts) for r in await rows(mail_sessions)} == {(MessageState.sent, 1)}


async def test_a_server_closing_the_connection_mid_batch_costs_one_message_an_attempt(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    async def stop_on_third(number: int) -> None:
        if number == 3:
            raise ConnectionResetError  # aiosmtpd drops the connection

    smtp_server.before_accept = stop_on_third
    await enqueue_many(mail_sessions, 6)
    sender = sender_for(mail_settings, mail_sessions)
    assert await sender.drain() is Step.paused
    states = sorted((r.state, r.attempts) for r in await rows(mail_sessions))
    assert states == sorted(
        [(MessageState.sent, 1)] * 2 + [(MessageState.pending, 1)] + [(MessageState.pending, 0)] * 3
    )
    smtp_server.before_accept = None
    sender.paused_until = 0.0
    await make_due(mail_sessions)
    await sender.drain()
    await sender.close()
    assert len(set(smtp_server.message_ids)) == 6


async def test_suppression_is_checked_again_at_send_time(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    await enqueue(
        mail_sessions,
        [
            new_message("bounced@example.org"),
            new_message("left@example.org", category=MessageCategory.updates),
            new_message("left@example.org", category=MessageCategory.transactional),
        ],
    )
    async with mail_sessions.begin() as session:  # after queueing, before sending
        session.add(Suppression(email_canonical="bounced@example.org", reason=SuppressionReason.bounced))
        session.add(Suppression(email_canonical="left@example.org", reason=SuppressionReason.unsubscribed))
    sender = sender_for(mail_settings, mail_sessions)
    await sender.drain()
    await sender.close()
    assert smtp_server.recipients == ["left@example.org"]  # the transactional one
    states = {(r.to_address, r.category, r.state) for r in await rows(mail_sessions)}
    assert states == {
        ("bounced@example.org", "transactional", "suppressed"),
        ("left@example.org", "updates", "suppressed"),
        ("left@example.org", "transactional", "sent"),
    }


async def test_per_domain_limit_defers_the_rest_to_later_minutes_without_failing_them(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer, redis_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    limits = SendLimits(redis, per_second=0, per_domain_minute=3, namespace=uuid.uuid4().hex)
    domain = f"{uuid.uuid4().hex[:8]}.example"
    await enqueue_many(mail_sessions, 8, domain=domain)
    await enqueue_many(mail_sessions, 2, domain="other.example")
    sender = sender_for(mail_settings, mail_sessions, limits)
    await sender.drain()
    await sender.close()
    await redis.aclose()
    assert len(smtp_server.messages) == 5
    waiting = [r for r in await rows(mail_sessions) if r.state == MessageState.pending]
    assert len(waiting) == 5
    assert {r.attempts for r in waiting} == {0}
    assert {r.to_canonical.rpartition("@")[2] for r in waiting} == {domain}
    now = time.time()
    minute_end = (now // 60 + 1) * 60
    later = sorted(r.next_attempt_at.timestamp() for r in waiting)
    assert all(at >= minute_end - 1 for at in later)
    # 3 per minute: the first three wait for the next window, the other two for the one after
    assert later[3] - later[0] == pytest.approx(60, abs=1)


async def test_the_global_limit_holds_across_several_senders(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer, redis_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    namespace = uuid.uuid4().hex
    await enqueue_many(mail_sessions, 40)
    senders = [
        sender_for(
            mail_settings,
            mail_sessions,
            SendLimits(redis, per_second=7, per_domain_minute=0, namespace=namespace),
        )
        for _ in range(3)
    ]
    await asyncio.sleep(1.0 - time.time() % 1)  # start early in a second, so one window covers the round
    window = int(time.time())
    await asyncio.gather(*(s.step() for s in senders))
    same_window = int(time.time()) == window
    for s in senders:
        await s.close()
    await redis.aclose()
    if same_window:
        assert len(smtp_server.messages) == 7
    waiting = [r for r in await rows(mail_sessions) if r.state == MessageState.pending]
    assert len(waiting) == 40 - len(smtp_server.messages)
    assert {r.attempts for r in waiting} == {0}


async def test_with_redis_down_the_limits_are_not_applied(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens there
    limits = SendLimits(redis, per_second=1, per_domain_minute=1)
    await enqueue_many(mail_sessions, 5)
    sender = sender_for(mail_settings, mail_sessions, limits)
    await sender.drain()
    await sender.close()
    await redis.aclose()
    assert len(smtp_server.messages) == 5


async def test_several_senders_at_once_never_send_a_message_twice(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    settings = mail_settings.model_copy(update={"mail_batch_size": 7})
    ids = await enqueue_many(mail_sessions, 300)
    senders = [sender_for(settings, mail_sessions) for _ in range(5)]
    await asyncio.gather(*(s.drain() for s in senders))
    for s in senders:
        await s.close()
    received = smtp_server.message_ids
    assert len(received) == 300
    assert sorted(received) == sorted(f"<{i}@loom.localhost>" for i in ids)
    assert sum(1 for s in senders if s.recorder.counts["sent"]) > 1  # they really shared the work
    assert {r.state for r in await rows(mail_sessions)} == {MessageState.sent}


async def test_a_message_that_cannot_be_built_fails_without_stopping_the_batch(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    await enqueue(
        mail_sessions,
        [
            new_message("a@example.org", headers={"X-Bad": "one\r\nBcc: victim@example.com"}),
            new_message("b@example.org"),
        ],
    )
    sender = sender_for(mail_settings, mail_sessions)
    await sender.drain()
    await sender.close()
    assert smtp_server.recipients == ["b@example.org"]
    bad = next(r for r in await rows(mail_sessions) if r.to_address == "a@example.org")
    assert bad.state == MessageState.failed
    assert bad.last_error is not None
    assert "invalid message" in bad.last_error


async def test_notify_wakes_the_running_sender(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer, engine: AsyncEngine
) -> None:
    settings = mail_settings.model_copy(update={"mail_poll_seconds": 3600.0, "mail_idle_seconds": 3600.0})
    sender = sender_for(settings, mail_sessions)
    listener = Listener.for_engine(engine)
    running = asyncio.create_task(sender.run_forever(listener))
    try:
        await asyncio.sleep(0.3)  # the sender is now waiting (its poll is an hour)
        assert await listener.ensure()
        await enqueue(mail_sessions, [new_message("soon@example.org")])
        for _ in range(200):
            if smtp_server.messages:
                break
            await asyncio.sleep(0.05)
        assert smtp_server.recipients == ["soon@example.org"]
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await listener.close()


async def test_a_sender_hands_back_what_its_lease_leaves_no_time_for(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    # A lease shorter than a send could take: each batch sends its first message, hands back the rest.
    settings = mail_settings.model_copy(update={"mail_lease_seconds": 1.0, "mail_batch_size": 5})
    await enqueue_many(mail_sessions, 5)
    sender = sender_for(settings, mail_sessions)
    assert await sender.step() is Step.worked
    await sender.close()
    assert len(smtp_server.messages) == 1
    now = datetime.now(UTC)
    handed_back = [r for r in await rows(mail_sessions) if r.state == MessageState.pending]
    assert len(handed_back) == 4
    assert all(r.attempts == 0 and r.next_attempt_at <= now for r in handed_back)  # due again, no attempt


def test_the_lease_must_outlast_a_send() -> None:
    with pytest.raises(ValueError, match="LOOM_MAIL_LEASE_SECONDS"):
        Settings(smtp_timeout_seconds=30, mail_lease_seconds=20)


@pytest.mark.timeout(120)
async def test_a_cancelled_sender_stops_at_once_in_the_middle_of_a_backlog(
    mail_sessions: Sessions, mail_settings: Settings, smtp_server: SmtpServer
) -> None:
    """The worker's shutdown cancels the sender. aiosmtplib waits for each reply with ``asyncio.wait_for``,
    which on Python 3.11 swallows a cancellation that lands as the reply arrives: a sender that did not
    notice kept sending its whole backlog and held Ctrl-C up for as long."""
    await enqueue_many(mail_sessions, 3000)
    for _ in range(5):  # the race is a matter of timing: cancel several times in the middle of batches
        sender = sender_for(mail_settings, mail_sessions)  # batches of 100 (a cancelled one stays leased)
        running = asyncio.create_task(sender.run_forever())
        target = len(smtp_server.messages) + 50
        for _ in range(6000):  # at most 30 s
            if len(smtp_server.messages) >= target:
                break
            await asyncio.sleep(0.005)
        running.cancel()
        cancelled_at = len(smtp_server.messages)
        started = time.monotonic()
        done, _ = await asyncio.wait({running}, timeout=3)
        assert done, f"the sender went on: {len(smtp_server.messages) - cancelled_at} more messages sent"
        assert running.cancelled()
        assert time.monotonic() - started < 3
        assert len(smtp_server.messages) - cancelled_at <= 2  # the one on the wire, at most
