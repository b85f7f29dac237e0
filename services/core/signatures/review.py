"""The review queue (issue 3 §5): paper signatures that may be someone who already signed.

The pipeline puts such a signature in ``state = 'review'`` with a ``signature_reviews`` row naming the
counted signature it resembles (``candidate_id``) and the name similarity (``score``). Staff decide:
``duplicate`` makes it a duplicate of the candidate, ``distinct`` counts it. Either way the petition is
marked for the pipeline to recount.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns import repository as campaigns
from services.core.campaigns.errors import PetitionNotFound
from services.core.errors import Conflict
from services.core.refs import Ref
from services.core.schemas import Page
from services.core.signatures.errors import ReviewNotFound
from services.core.signatures.models import ReviewResolution
from services.core.signatures.pipeline import pass_attestation
from services.core.signatures.recount import mark_for_recount


class ReviewAlreadyResolved(Conflict):
    code = "review-already-resolved"
    title = "This review is already resolved"


class ReviewedSignature(BaseModel):
    id: uuid.UUID
    name: str | None
    postal_code: str | None
    country: str | None
    created_at: datetime


class ReviewRead(BaseModel):
    signature: ReviewedSignature = Field(description="The signature under review.")
    candidate: ReviewedSignature = Field(description="The counted signature it may duplicate.")
    petition_id: uuid.UUID
    score: float = Field(description="Name similarity, 0 to 100.")
    created_at: datetime
    resolved_at: datetime | None
    resolution: ReviewResolution | None
    resolved_by: uuid.UUID | None


ReviewPage = Page[ReviewRead]


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["duplicate", "distinct"] = Field(
        description="`duplicate`: the same person as the candidate; `distinct`: another person (counted)."
    )


async def petition_id_of(session: AsyncSession, ref: Ref) -> uuid.UUID:
    found = await campaigns.petition_id(session, ref)
    if found is None:
        raise PetitionNotFound(f"No petition {ref.text!r}.")
    return found


_SELECT = (
    "SELECT r.signature_id, r.petition_id, r.candidate_id, r.score, r.created_at, r.resolved_at, "
    "r.resolution, r.resolved_by, "
    "s.name AS s_name, s.postal_code AS s_postal, s.country AS s_country, s.created_at AS s_created, "
    "c.name AS c_name, c.postal_code AS c_postal, c.country AS c_country, c.created_at AS c_created, "
    "count(*) OVER () AS total "
    "FROM signature_reviews r JOIN signatures s ON s.id = r.signature_id "
    "JOIN signatures c ON c.id = r.candidate_id "
)


def _read(row: Any) -> ReviewRead:
    return ReviewRead(
        signature=ReviewedSignature(
            id=row.signature_id,
            name=row.s_name,
            postal_code=row.s_postal,
            country=row.s_country,
            created_at=row.s_created,
        ),
        candidate=ReviewedSignature(
            id=row.candidate_id,
            name=row.c_name,
            postal_code=row.c_postal,
            country=row.c_country,
            created_at=row.c_created,
        ),
        petition_id=row.petition_id,
        score=row.score,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
        resolved_by=row.resolved_by,
    )


async def list_reviews(
    session: AsyncSession,
    *,
    petition: Ref | None,
    resolved: bool | None,
    limit: int,
    offset: int,
) -> ReviewPage:
    """Oldest first (then by signature id)."""
    conditions: list[str] = []
    params: dict[str, object] = {"limit": limit, "offset": offset}
    if petition is not None:
        conditions.append("r.petition_id = :petition")
        params["petition"] = await petition_id_of(session, petition)
    if resolved is not None:
        conditions.append("r.resolved_at IS NOT NULL" if resolved else "r.resolved_at IS NULL")
    where = ("WHERE " + " AND ".join(conditions) + " ") if conditions else ""
    rows = (
        await session.execute(
            text(_SELECT + where + "ORDER BY r.created_at, r.signature_id LIMIT :limit OFFSET :offset"),
            params,
        )
    ).all()
    total = rows[0].total if rows else 0
    if not rows and offset:
        total = (
            await session.scalar(
                text("SELECT count(*) FROM signature_reviews r " + where),  # noqa: S608 - constant fragments
                {k: v for k, v in params.items() if k == "petition"},
            )
            or 0
        )
    items = [_read(row) for row in rows]
    return ReviewPage(items=items, total=total, limit=limit, offset=offset)


async def resolve(
    session: AsyncSession,
    signature_id: uuid.UUID,
    decision: ReviewResolution,
    *,
    by: uuid.UUID | None,
    now: datetime | None = None,
) -> ReviewRead:
    """Decide a review: 404 if the signature has none, 409 if it is already decided."""
    now = now or datetime.now(UTC)
    review = (
        await session.execute(
            text(
                "SELECT signature_id, petition_id, candidate_id, resolved_at FROM signature_reviews "
                "WHERE signature_id = :id FOR UPDATE"
            ),
            {"id": signature_id},
        )
    ).one_or_none()
    if review is None:
        raise ReviewNotFound(f"No review for signature {signature_id}.")
    if review.resolved_at is not None:
        raise ReviewAlreadyResolved()
    if decision is ReviewResolution.duplicate:
        await session.execute(
            text("UPDATE signatures SET state = 'duplicate', duplicate_of = :candidate WHERE id = :id"),
            {"candidate": review.candidate_id, "id": signature_id},
        )
        await pass_attestation(session, [signature_id])
    else:
        await session.execute(
            text("UPDATE signatures SET state = 'unique', duplicate_of = NULL WHERE id = :id"),
            {"id": signature_id},
        )
    await session.execute(
        text(
            "UPDATE signature_reviews SET resolved_at = :now, resolved_by = :by, resolution = :resolution "
            "WHERE signature_id = :id"
        ),
        {"now": now, "by": by, "resolution": decision.value, "id": signature_id},
    )
    await mark_for_recount(session, {review.petition_id})
    row = (await session.execute(text(_SELECT + "WHERE r.signature_id = :id"), {"id": signature_id})).one()
    return _read(row)
