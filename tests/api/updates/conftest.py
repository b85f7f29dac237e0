"""Fixtures of the campaign update tests: a campaign with signers in every situation an update must
tell apart."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Campaign, CountPolicy, Petition
from services.core.signatures import privacy
from tests.api.mail.conftest import job
from tests.api.network.conftest import headers_for
from tests.api.signatures.conftest import RunPipeline, run_pipeline
from tests.factories import make_petition, make_signature

__all__ = ["headers_for", "job", "run_pipeline", "signers"]


@dataclass
class Signers:
    campaign: Campaign
    petitions: list[Petition]
    recipients: dict[str, str]  # canonical email -> the language their update is in
    other: Petition  # another campaign's petition


async def _confirm(db: AsyncSession, *emails: str) -> None:
    await db.execute(
        text("UPDATE signatures SET confirmed_at = now() WHERE email_canonical = ANY(:emails)"),
        {"emails": list(emails)},
    )


@pytest.fixture
async def signers(db: AsyncSession, run_pipeline: RunPipeline) -> Signers:
    one = await make_petition(db, count_policy=CountPolicy.all_unique)
    campaign = await db.get(Campaign, one.campaign_id)
    assert campaign is not None
    campaign.translations = {"en": {"title": "Clean Clothes"}, "fr": {"title": "Vêtements propres"}}
    two = await make_petition(db, count_policy=CountPolicy.all_unique)
    two.campaign_id = campaign.id
    other = await make_petition(db, count_policy=CountPolicy.all_unique)
    await db.flush()
    # ana signed both petitions; her latest signature is in Spanish
    await make_signature(db, one, email="ana@example.org", opt_in=True, language="fr")
    await make_signature(db, one, email="bo@example.org", opt_in=True, language="de")  # no German update
    await make_signature(db, one, email="cy@example.org", opt_in=True)  # never confirms
    await make_signature(db, one, email="di@example.org", opt_in=False)  # no updates, thanks
    await make_signature(db, one, email="ed@example.org", opt_in=True)  # erased later
    await make_signature(db, one, email="fa@example.org", opt_in=True)  # unsubscribed before
    await make_signature(db, one, email="gu@example.org", opt_in=True, language="en")
    await make_signature(db, other, email="ho@example.org", opt_in=True)  # another campaign's signer
    await db.commit()
    await run_pipeline()
    await make_signature(db, two, email="Ana@Example.org", opt_in=True, language="es")
    await db.commit()
    await run_pipeline()
    await _confirm(
        db,
        "ana@example.org",
        "bo@example.org",
        "di@example.org",
        "ed@example.org",
        "fa@example.org",
        "gu@example.org",
        "ho@example.org",
    )
    await privacy.erase(db, "ed@example.org")
    await db.execute(
        text(
            "INSERT INTO email_suppressions (email_canonical, reason) "
            "VALUES ('fa@example.org', 'unsubscribed')"
        )
    )
    await db.commit()
    return Signers(
        campaign=campaign,
        petitions=[one, two],
        recipients={
            "ana@example.org": "es",
            "bo@example.org": "en",
            "fa@example.org": "en",
            "gu@example.org": "en",
        },
        other=other,
    )
