"""The public count converges to the SQL count against a running worker, whatever the interleaving: rounds
of forty concurrent confirmations over HTTP, mixed with signing, invalidating, reverting and erasing, each
round's cached count checked against the database within five seconds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns.models import CountPolicy, Petition
from services.core.config import Settings
from services.core.signatures import tokens
from services.core.signatures.counts import COUNTED
from services.core.signatures.identity import canonical_email
from services.core.signatures.models import SignatureState
from services.core.users.models import Role, User
from services.worker import runtime
from services.worker.settings import load_tasks
from tests.factories import auth_headers, drop_petition, make_petition, make_signature, make_user

ROUNDS = 8
CONFIRMATIONS = 40  # per round, all at once


@pytest.fixture
async def petition(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[Petition]:
    async with factory.begin() as session:
        made = await make_petition(session, count_policy=CountPolicy.confirmed, goal=None)
    yield made
    async with factory.begin() as session:
        await drop_petition(session, made.id)


@pytest.fixture
async def admin(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[User]:
    async with factory.begin() as session:
        user = await make_user(session, Role.admin)
    yield user
    async with factory.begin() as session:
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})


async def _round_of_signatures(
    factory: async_sessionmaker[AsyncSession], settings: Settings, petition: Petition, n: int, source: str
) -> list[tuple[str, str]]:
    """``n`` deduplicated, unconfirmed signatures (committed); each one's email and confirmation token."""
    made: list[tuple[str, str]] = []
    async with factory.begin() as session:
        for _ in range(n):
            signature_id, email = uuid.uuid4(), f"signer-{uuid.uuid4().hex[:12]}@example.org"
            token = tokens.issue(
                settings, signature_id=signature_id, petition_id=petition.id, now=datetime.now(UTC)
            )
            await make_signature(
                session,
                petition,
                id=signature_id,
                email=email,
                state=SignatureState.unique,
                source=source,
                confirmation_nonce_hash=token.nonce_hash,
            )
            await session.execute(
                text("INSERT INTO petition_signers VALUES (:p, :e, :s)"),
                {"p": petition.id, "e": canonical_email(email), "s": signature_id},
            )
            made.append((email, token.token))
    return made


async def _sql_count(factory: async_sessionmaker[AsyncSession], petition: Petition) -> int:
    async with factory() as session:
        return int(
            await session.scalar(
                text(
                    "SELECT count(*) FROM signatures s JOIN petitions p ON p.id = s.petition_id "  # noqa: S608 - a constant
                    f"WHERE s.petition_id = :p AND {COUNTED}"
                ),
                {"p": petition.id},
            )
            or 0
        )


async def test_the_public_count_converges_after_any_interleaving(
    committing_client: httpx.AsyncClient,
    petition: Petition,
    admin: User,
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
) -> None:
    load_tasks()
    options: dict[str, Any] = runtime.worker_options(
        job_settings.model_copy(update={"signature_pipeline_seconds": 0.02}),
        database_url=database_url,
        redis_url=redis_url,
        queue_name=job_queue_name,
        relay=True,
    )
    staff = auth_headers(settings, admin)
    count_path = f"/v1/petitions/{petition.slug}/count"
    lagging: list[str] = []
    invalidation: str | None = None
    erasable: list[str] = []
    async with runtime.running_worker(options):

        async def confirm(token: str) -> int:
            response = await committing_client.post("/v1/signatures/confirm", json={"token": token})
            return response.status_code

        async def sign(n: int) -> int:
            response = await committing_client.post(
                f"/v1/petitions/{petition.slug}/signatures",
                json={
                    "name": "Jane Doe",
                    "email": f"web-{uuid.uuid4().hex[:10]}@example.org",
                    "country": "BD",
                },
            )
            return response.status_code

        async def invalidate(source: str) -> str:
            response = await committing_client.post(
                f"/v1/petitions/{petition.slug}/invalidations",
                json={"reason": "stress", "source": source},
                headers=staff,
            )
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        async def revert(invalidation_id: str) -> int:
            response = await committing_client.post(
                f"/v1/invalidations/{invalidation_id}/revert", headers=staff
            )
            return response.status_code

        async def erase(email: str) -> int:
            response = await committing_client.post(
                "/v1/privacy/erasure", json={"email": email}, headers=staff
            )
            return response.status_code

        for round_ in range(ROUNDS):
            source = f"round-{round_}"
            signers = await _round_of_signatures(factory, settings, petition, CONFIRMATIONS, source)
            work: list[Any] = [confirm(token) for _, token in signers]
            work += [sign(n) for n in range(3)]
            work.append(invalidate(source))  # this round's signatures, some confirmed at the same moment
            if invalidation is not None:
                work.append(revert(invalidation))
            work += [erase(email) for email in erasable]
            results = await asyncio.gather(*work)
            statuses = [r for r in results if isinstance(r, int)]
            assert set(statuses) <= {200, 202}, statuses
            invalidation = next(r for r in results if isinstance(r, str))
            erasable = [email for email, _ in signers[:2]]
            # every request has answered (and committed): the cached count must follow within 5 s
            done = time.monotonic()
            expected = await _sql_count(factory, petition)
            public = None
            while time.monotonic() - done < 5:
                public = (await committing_client.get(count_path)).json()["count"]
                if public == expected:
                    break
                await asyncio.sleep(0.05)
            if public != expected:
                lagging.append(f"round {round_}: count {public}, SQL count {expected}")
    assert not lagging, lagging
