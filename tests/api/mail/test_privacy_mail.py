"""Privacy requests cover email: the export lists the messages to the person and their suppression
entry; erasure blanks the messages' address and content (unsent ones never go out), leaving other
people's alone."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.mail.models import MessageCategory, MessageState
from services.core.mail.queue import NewMessage, queue
from services.core.users.models import Role
from tests.api.mail.conftest import queued
from tests.api.network.helpers import HeadersFor
from tests.factories import make_petition, make_signature


def _message(key: str, address: str, category: MessageCategory = MessageCategory.transactional) -> NewMessage:
    return NewMessage(
        dedup_key=key,
        kind="confirmation" if category is MessageCategory.transactional else "campaign_update",
        category=category,
        to_address=address,
        subject=f"Subject for {address}",
        text_body=f"Dear {address}",
        html_body=f"<p>Dear {address}</p>",
        headers={"List-Unsubscribe": "<https://example.org/u?token=t>"},
        language="en",
    )


async def test_export_and_erasure_cover_the_persons_email(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    await make_signature(db, petition, email="Jane.Doe@Gmail.com")
    await db.execute(
        text(
            "INSERT INTO email_suppressions (email_canonical, reason) "
            "VALUES ('janedoe@gmail.com', 'unsubscribed')"
        )
    )
    await queue(db, _message("privacy:sent", "jane.doe@gmail.com"))
    await queue(db, _message("privacy:pending", "janedoe@googlemail.com", MessageCategory.updates))
    await queue(db, _message("privacy:other", "someone@example.org"))
    await db.execute(
        text("UPDATE email_messages SET state = 'sent', sent_at = now() WHERE dedup_key = 'privacy:sent'")
    )
    headers = await headers_for(Role.admin)
    await db.commit()

    export = await client.post("/v1/privacy/export", json={"email": "JaneDoe@gmail.com"}, headers=headers)
    assert export.status_code == 200, export.text
    body = export.json()
    assert len(body["signatures"]) == 1
    assert sorted((m["kind"], m["state"]) for m in body["messages"]) == [
        ("campaign_update", "suppressed"),  # queued after the unsubscribe: never sent
        ("confirmation", "sent"),
    ]
    assert {m["subject"] for m in body["messages"]} == {
        "Subject for jane.doe@gmail.com",
        "Subject for janedoe@googlemail.com",
    }
    assert body["suppression"]["reason"] == "unsubscribed"

    erased = await client.post("/v1/privacy/erasure", json={"email": "janedoe@gmail.com"}, headers=headers)
    assert erased.json() == {"signatures": 1, "messages": 2}
    for key in ("privacy:sent", "privacy:pending"):
        assert await queued(db, dedup_key=key) == []  # the dedup key named nothing personal, but goes too
    rows = await queued(db, to_canonical="")
    mine = [m for m in rows if m.dedup_key.startswith("erased:")]
    assert len(mine) == 2
    for message in mine:
        assert (message.to_address, message.subject, message.text_body, message.html_body) == (
            "",
            "",
            "",
            None,
        )
        assert message.headers == {}
    assert sorted(m.state for m in mine) == [MessageState.sent, MessageState.suppressed]
    [other] = await queued(db, dedup_key="privacy:other")
    assert other.to_address == "someone@example.org"
    again = await client.post("/v1/privacy/export", json={"email": "janedoe@gmail.com"}, headers=headers)
    assert again.json()["messages"] == []
    assert again.json()["suppression"] is not None  # kept: it keeps the unsubscribe honoured
