"""Staff tools for signatures: listing and exporting them, and bulk invalidation.

Listing and the streamed CSV export share :class:`SignatureFilters` (partners see their organisation's
only; formula-like cells are escaped); an invalidation and its revert move exactly the same signatures
out of and back into the counts. docs/signatures.md, "Staff tools and privacy".
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns import repository as campaigns
from services.core.campaigns.errors import PetitionNotFound
from services.core.campaigns.models import Petition
from services.core.db.unique import escape_like
from services.core.errors import Conflict, NotFound
from services.core.network.models import Organisation
from services.core.refs import Ref
from services.core.signatures import policy
from services.core.signatures.identity import InvalidEmail, canonical_email, email_domain
from services.core.signatures.models import Channel, Signature, SignatureInvalidation, SignatureState
from services.core.signatures.recount import mark_for_recount
from services.core.signatures.schemas import (
    InvalidationIn,
    InvalidationPage,
    InvalidationRead,
    StaffSignaturePage,
    StaffSignatureRead,
)
from services.core.users.security import Principal


class InvalidationNotFound(NotFound):
    code = "invalidation-not-found"
    title = "Invalidation not found"


class InvalidationAlreadyReverted(Conflict):
    code = "invalidation-already-reverted"
    title = "Invalidation already reverted"


@dataclass(frozen=True)
class SignatureFilters:
    state: SignatureState | None = None
    country: str | None = None
    partner: str | None = None  # organisation slug
    channel: Channel | None = None
    email_domain: str | None = None
    q: str | None = None  # contained in the name or the email, case-insensitively
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    invalidated: bool | None = None


def normalised_domain(domain: str) -> str | None:
    """A domain as the canonical emails hold it (lower case, ASCII), or None if it cannot be one."""
    try:
        return email_domain(canonical_email(f"x@{domain.strip()}"))
    except InvalidEmail:
        return None


def _domain_is(domain: str) -> ColumnElement[bool]:
    normalised = normalised_domain(domain)
    if normalised is None:
        return false()
    return Signature.email_canonical.like(f"%@{escape_like(normalised)}", escape="\\")


async def staff_petition(session: AsyncSession, principal: Principal, ref: Ref) -> Petition:
    """The petition ``ref`` (id or slug). Partners see only petitions of public campaigns."""
    found = await campaigns.get_petition(session, ref)
    if found is None:
        raise PetitionNotFound(f"No petition {ref.text!r}.")
    petition, campaign = found
    if not policy.may_see_petition(principal, campaign.status):
        raise PetitionNotFound(f"No petition {ref.text!r}.")
    return petition


def _conditions(
    petition_id: uuid.UUID, principal: Principal, filters: SignatureFilters
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Signature.petition_id == petition_id]
    if not policy.sees_all_signatures(principal):
        own = principal.organisation_id
        conditions.append(Signature.organisation_id == own if own is not None else false())
    if filters.state is not None:
        conditions.append(Signature.state == filters.state)
    if filters.country is not None:
        conditions.append(Signature.country == filters.country.upper())
    if filters.partner is not None:
        org = select(Organisation.id).where(Organisation.slug == filters.partner).scalar_subquery()
        conditions.append(Signature.organisation_id == org)
    if filters.channel is not None:
        conditions.append(Signature.channel == filters.channel)
    if filters.email_domain is not None:
        conditions.append(_domain_is(filters.email_domain))
    if filters.q:
        pattern = f"%{escape_like(filters.q)}%"
        conditions.append(
            or_(Signature.name.ilike(pattern, escape="\\"), Signature.email.ilike(pattern, escape="\\"))
        )
    if filters.created_after is not None:
        conditions.append(Signature.created_at >= _aware(filters.created_after))
    if filters.created_before is not None:
        conditions.append(Signature.created_at < _aware(filters.created_before))
    if filters.invalidated is not None:
        conditions.append(
            Signature.invalidation_id.is_not(None)
            if filters.invalidated
            else Signature.invalidation_id.is_(None)
        )
    return conditions


def _aware(moment: datetime) -> datetime:
    # A moment without a time zone is taken as UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


_COLUMNS = (
    Signature.id,
    Signature.created_at,
    Signature.name,
    Signature.email,
    Signature.country,
    Signature.postal_code,
    Signature.language,
    Signature.opt_in,
    Organisation.slug.label("partner"),
    Signature.source,
    Signature.channel,
    Signature.state,
    Signature.duplicate_of,
    Signature.confirmed_at,
    Signature.attested,
    Signature.invalidation_id.is_not(None).label("invalidated"),
    Signature.erased_at.is_not(None).label("erased"),
)


def _query(conditions: Sequence[ColumnElement[bool]]) -> Select[*tuple[Any, ...]]:
    return (
        select(*_COLUMNS)
        .outerjoin(Organisation, Organisation.id == Signature.organisation_id)
        .where(and_(*conditions))
        .order_by(Signature.created_at.desc(), Signature.id.desc())
    )


def _read(row: Any) -> StaffSignatureRead:
    erased = bool(row.erased)
    return StaffSignatureRead(
        id=row.id,
        created_at=row.created_at,
        name=None if erased else row.name,
        email=None if erased else row.email,
        country=row.country,
        postal_code=None if erased else row.postal_code,
        language=row.language,
        opt_in=row.opt_in,
        partner=row.partner,
        source=row.source,
        channel=Channel(row.channel).value,
        state=SignatureState(row.state).value,
        duplicate_of=row.duplicate_of,
        confirmed_at=row.confirmed_at,
        attested=row.attested,
        invalidated=bool(row.invalidated),
        erased=erased,
    )


async def list_signatures(
    session: AsyncSession,
    principal: Principal,
    ref: Ref,
    filters: SignatureFilters,
    *,
    limit: int,
    offset: int,
) -> StaffSignaturePage:
    """A petition's signatures matching ``filters``, newest first (partners: their own only)."""
    petition = await staff_petition(session, principal, ref)
    conditions = _conditions(petition.id, principal, filters)
    total = (
        await session.execute(select(func.count()).select_from(Signature).where(and_(*conditions)))
    ).scalar_one()
    rows = await session.execute(_query(conditions).limit(limit).offset(offset))
    return StaffSignaturePage(items=[_read(row) for row in rows], total=total, limit=limit, offset=offset)


CSV_HEADER = (
    "id",
    "created_at",
    "name",
    "email",
    "country",
    "postal_code",
    "language",
    "opt_in",
    "partner",
    "source",
    "channel",
    "state",
    "duplicate_of",
    "confirmed_at",
    "invalidated",
    "attested",  # last: added later, so columns read by position stay where they were
)
CHUNK_ROWS = 1000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _csv_row(signature: StaffSignatureRead) -> list[str]:
    data = signature.model_dump()
    return [_cell(data[column]) for column in CSV_HEADER]


async def prepare_export(
    session: AsyncSession, principal: Principal, ref: Ref, filters: SignatureFilters
) -> tuple[Petition, list[ColumnElement[bool]]]:
    """Check the caller may export from this petition (before any byte is sent); the export's query."""
    petition = await staff_petition(session, principal, ref)
    return petition, _conditions(petition.id, principal, filters)


async def export_csv(
    sessionmaker: async_sessionmaker[AsyncSession], conditions: Sequence[ColumnElement[bool]]
) -> AsyncIterator[bytes]:
    """The CSV, header first, in chunks of :data:`CHUNK_ROWS` rows read from a server-side cursor."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    yield buffer.getvalue().encode()
    async with sessionmaker() as session:
        result = await session.stream(_query(conditions).execution_options(yield_per=CHUNK_ROWS))
        async for partition in result.partitions():
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(_csv_row(_read(row)) for row in partition)
            yield buffer.getvalue().encode()
        await result.close()


# --- invalidations ----------------------------------------------------------------------------------------


def _invalidation(row: SignatureInvalidation) -> InvalidationRead:
    return InvalidationRead(
        id=row.id,
        petition=row.petition_id,
        reason=row.reason,
        filters=row.filters,
        signatures=row.signatures,
        created_at=row.created_at,
        created_by=row.created_by,
        reverted_at=row.reverted_at,
        reverted_by=row.reverted_by,
    )


def _user_id(principal: Principal) -> uuid.UUID | None:
    return principal.id if principal.kind == "user" else None


async def invalidate(
    session: AsyncSession, principal: Principal, ref: Ref, body: InvalidationIn
) -> InvalidationRead:
    """Invalidate the petition's not yet invalidated signatures matching all of ``body``'s filters."""
    petition = await staff_petition(session, principal, ref)
    filters = body.filters()
    if body.email_domain is not None:
        normalised = normalised_domain(body.email_domain)
        if normalised is not None:
            filters["email_domain"] = normalised
    invalidation = SignatureInvalidation(
        id=uuid.uuid4(),
        petition_id=petition.id,
        reason=body.reason,
        filters=filters,
        created_by=_user_id(principal),
    )
    session.add(invalidation)
    await session.flush()
    conditions: list[ColumnElement[bool]] = [
        Signature.petition_id == petition.id,
        Signature.invalidation_id.is_(None),
    ]
    if body.email_domain is not None:
        conditions.append(_domain_is(body.email_domain))
    if body.ip_hash is not None:
        conditions.append(Signature.ip_hash == body.ip_hash)
    if body.created_after is not None:
        conditions.append(Signature.created_at >= _aware(body.created_after))
    if body.created_before is not None:
        conditions.append(Signature.created_at < _aware(body.created_before))
    if body.source is not None:
        conditions.append(Signature.source == body.source)
    result = await session.execute(
        update(Signature)
        .where(and_(*conditions))
        .values(invalidation_id=invalidation.id)
        .execution_options(synchronize_session=False)
    )
    invalidation.signatures = result.rowcount  # type: ignore[attr-defined]
    await mark_for_recount(session, {petition.id})
    await session.flush()
    await session.refresh(invalidation)
    return _invalidation(invalidation)


async def list_invalidations(
    session: AsyncSession, principal: Principal, ref: Ref, *, limit: int, offset: int
) -> InvalidationPage:
    petition = await staff_petition(session, principal, ref)
    condition = SignatureInvalidation.petition_id == petition.id
    total = (
        await session.execute(select(func.count()).select_from(SignatureInvalidation).where(condition))
    ).scalar_one()
    rows = await session.scalars(
        select(SignatureInvalidation)
        .where(condition)
        .order_by(SignatureInvalidation.created_at.desc(), SignatureInvalidation.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return InvalidationPage(
        items=[_invalidation(row) for row in rows], total=total, limit=limit, offset=offset
    )


async def revert(session: AsyncSession, principal: Principal, invalidation_id: uuid.UUID) -> InvalidationRead:
    """Put the invalidation's signatures back into the counts. 409 if it was reverted already."""
    invalidation = await session.scalar(
        select(SignatureInvalidation).where(SignatureInvalidation.id == invalidation_id).with_for_update()
    )
    if invalidation is None:
        raise InvalidationNotFound(f"No invalidation {invalidation_id}.")
    if invalidation.reverted_at is not None:
        raise InvalidationAlreadyReverted("This invalidation was reverted already.")
    await session.execute(
        update(Signature)
        .where(Signature.invalidation_id == invalidation.id)
        .values(invalidation_id=None)
        .execution_options(synchronize_session=False)
    )
    invalidation.reverted_at = datetime.now(UTC)
    invalidation.reverted_by = _user_id(principal)
    if invalidation.petition_id is not None:
        await mark_for_recount(session, {invalidation.petition_id})
    await session.flush()
    return _invalidation(invalidation)
