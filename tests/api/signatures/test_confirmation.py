"""Double opt-in: tokens issued by the worker, links checked by GET (which never confirms), confirmed by
POST; expired, tampered and reused links; a duplicate's confirmation confirming the counted signature."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import CountPolicy, Petition
from services.core.config import Settings
from services.core.outbox.registry import JobContext
from services.core.signatures import confirmation, tokens
from services.core.signatures.models import Signature, SignatureState
from services.worker.signatures import tasks
from tests.api.signatures.conftest import RunPipeline
from tests.api.signatures.test_signing import body
from tests.factories import make_petition


async def _signed(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline, petition: Petition, *emails: str
) -> list[Signature]:
    for email in emails:
        response = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body(email=email))
        assert response.status_code == 202, response.text
    await run_pipeline()
    rows = (
        await db.scalars(
            select(Signature).where(Signature.petition_id == petition.id).order_by(Signature.created_at)
        )
    ).all()
    for row in rows:
        await db.refresh(row)
    return list(rows)


async def _token(db: AsyncSession, settings: Settings, signature: Signature) -> str:
    [issued] = await confirmation.request(db, settings, [signature.id])
    await db.commit()
    return issued.token


async def _count(client: httpx.AsyncClient, petition: Petition) -> int:
    response = await client.get(f"/v1/petitions/{petition.slug}/count")
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


async def test_get_shows_post_confirms_once(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    await db.commit()
    [signature] = await _signed(client, db, run_pipeline, petition, "jane@example.org")
    token = await _token(db, settings, signature)

    for _ in range(2):  # a GET (a mail scanner, say) confirms nothing, however often
        shown = await client.get("/v1/signatures/confirm", params={"token": token})
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "confirmable"
        assert shown.json()["petition"] == str(petition.id)
        assert shown.json()["petition_slug"] == petition.slug
        assert shown.json()["expires_at"] is not None
    await db.refresh(signature)
    assert signature.confirmed_at is None
    assert await _count(client, petition) == 0

    confirmed = await client.post("/v1/signatures/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {
        "status": "confirmed",
        "petition": str(petition.id),
        "petition_slug": petition.slug,
    }
    await db.refresh(signature)
    assert signature.confirmed_at is not None

    again = await client.post("/v1/signatures/confirm", json={"token": token})
    assert again.status_code == 409
    assert again.json()["code"] == "confirmation-token-used"
    shown = await client.get("/v1/signatures/confirm", params={"token": token})
    assert shown.status_code == 200
    assert shown.json()["status"] == "confirmed"

    tick = await run_pipeline()
    assert petition.id in tick.refreshed
    assert await _count(client, petition) == 1


async def test_expired_link_is_410(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db)
    await db.commit()
    [signature] = await _signed(client, db, run_pipeline, petition, "late@example.org")
    issued = tokens.issue(
        settings,
        signature_id=signature.id,
        petition_id=petition.id,
        now=datetime.now(UTC) - timedelta(days=30),
    )
    await db.execute(
        text("UPDATE signatures SET confirmation_nonce_hash = :nonce WHERE id = :id"),
        {"nonce": issued.nonce_hash, "id": signature.id},
    )
    await db.commit()
    for response in (
        await client.get("/v1/signatures/confirm", params={"token": issued.token}),
        await client.post("/v1/signatures/confirm", json={"token": issued.token}),
    ):
        assert response.status_code == 410, response.text
        assert response.json()["code"] == "confirmation-token-expired"
    await db.refresh(signature)
    assert signature.confirmed_at is None


async def test_tampered_replaced_and_foreign_links_are_400(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db)
    await db.commit()
    [signature] = await _signed(client, db, run_pipeline, petition, "tamper@example.org")
    token = await _token(db, settings, signature)
    header, payload, signature_part = token.split(".")
    tampered = (
        f"{header}.{payload}.{signature_part[:-4]}{'AAAA' if signature_part[-4:] != 'AAAA' else 'BBBB'}"
    )
    # A genuine token for this signature that was never stored (a replaced link).
    replaced = tokens.issue(
        settings, signature_id=signature.id, petition_id=petition.id, now=datetime.now(UTC)
    )
    # A genuine token naming no signature.
    nothing = tokens.issue(
        settings, signature_id=uuid.uuid4(), petition_id=petition.id, now=datetime.now(UTC)
    )
    for bad in (tampered, "not-a-token", replaced.token, nothing.token):
        for response in (
            await client.get("/v1/signatures/confirm", params={"token": bad}),
            await client.post("/v1/signatures/confirm", json={"token": bad}),
        ):
            assert response.status_code == 400, response.text
            assert response.json()["code"] == "confirmation-token-invalid"
    await db.refresh(signature)
    assert signature.confirmed_at is None


async def test_confirming_a_duplicate_confirms_the_counted_signature(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    await db.commit()
    first, second = await _signed(
        client, db, run_pipeline, petition, "Jane.Doe@gmail.com", "janedoe+again@googlemail.com"
    )
    assert (first.state, second.state, second.duplicate_of) == (
        SignatureState.unique,
        SignatureState.duplicate,
        first.id,
    )
    token = await _token(db, settings, second)
    assert await _count(client, petition) == 0
    response = await client.post("/v1/signatures/confirm", json={"token": token})
    assert response.status_code == 200, response.text
    await db.refresh(first)
    await db.refresh(second)
    assert first.confirmed_at is not None
    assert second.confirmed_at is not None
    await run_pipeline()
    assert await _count(client, petition) == 1


async def test_the_worker_task_issues_tokens_once(
    client: httpx.AsyncClient,
    db: AsyncSession,
    settings: Settings,
    run_pipeline: RunPipeline,
) -> None:
    petition = await make_petition(db)
    await db.commit()
    signatures = await _signed(client, db, run_pipeline, petition, "a@example.org", "b@example.org")
    ids = [s.id for s in signatures]

    async def nonces() -> dict[uuid.UUID, str | None]:
        rows = await db.execute(
            text("SELECT id, confirmation_nonce_hash FROM signatures WHERE id = ANY(:ids)"), {"ids": ids}
        )
        return {row.id: row.confirmation_nonce_hash for row in rows}

    def context() -> JobContext:
        return JobContext(session=db, settings=settings, job_id=uuid.uuid4(), attempt=1)

    await tasks.request_confirmations(context(), signature_ids=ids)
    await db.commit()
    first = await nonces()
    assert all(first.values())
    assert len(set(first.values())) == 2

    await tasks.request_confirmations(context(), signature_ids=ids)  # the job delivered again
    await db.commit()
    second = await nonces()
    assert second == first
    assert await confirmation.request(db, settings, ids) == []


async def test_one_link_a_day_per_person_and_petition_until_confirmed(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    other = await make_petition(db, count_policy=CountPolicy.confirmed)
    await db.commit()
    start = datetime.now(UTC)

    async def sign_again(on: Petition = petition) -> Signature:
        rows = await _signed(client, db, run_pipeline, on, "Jane.Doe+again@gmail.com")
        return rows[-1]

    [first] = await _signed(client, db, run_pipeline, petition, "jane.doe@gmail.com")
    [issued] = await confirmation.request(db, settings, [first.id], now=start)
    again = await sign_again()
    assert await confirmation.request(db, settings, [again.id], now=start + timedelta(hours=23)) == []
    # another petition is another allowance
    elsewhere = await sign_again(other)
    assert len(await confirmation.request(db, settings, [elsewhere.id], now=start)) == 1
    # a day later: one new link, and not a second
    later = await sign_again()
    assert (
        len(await confirmation.request(db, settings, [again.id, later.id], now=start + timedelta(days=1)))
        == 1
    )
    await db.commit()
    response = await client.post("/v1/signatures/confirm", json={"token": issued.token})
    assert response.status_code == 200, response.text
    # confirmed: no link ever again
    last = await sign_again()
    assert await confirmation.request(db, settings, [last.id], now=start + timedelta(days=9)) == []
