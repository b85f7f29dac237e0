"""Writing signatures: the one ``INSERT INTO signatures`` builder, and the reads that decide what is written.

Web signing (:data:`WEB_INSERT`: the petition's rule checked and the row written in one round trip) and
batches from deliveries and imports (:func:`insert_batch`, ``unnest``) share the signer columns
(:class:`PreparedSignature`). Plain SQL, not the ORM. docs/signatures.md, "One insert builder".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import TextClause, func, null, select, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.core.campaigns.models import Campaign, CampaignStatus, Petition
from services.core.campaigns.window import OPEN_FOR_SIGNING_SQL
from services.core.network.models import Organisation
from services.core.refs import Ref
from services.core.signatures.identity import canonical_email, normalised_name, normalised_postal_code
from services.core.signatures.models import Channel
from services.core.signatures.schemas import CheckedEmail, SignatureFields

Connection = AsyncSession | AsyncConnection


@dataclass(frozen=True, slots=True)
class PreparedSignature:
    """A signature's column values, normalised for deduplication."""

    name: str
    email: str | None
    email_canonical: str | None
    postal_code: str | None
    name_key: str | None
    postal_key: str | None
    country: str | None
    language: str | None
    opt_in: bool
    partner: str | None
    source: str | None

    @classmethod
    def of(cls, fields: SignatureFields) -> PreparedSignature:
        email = fields.email or None
        postal_key = normalised_postal_code(fields.postal_code) or None
        return cls(
            name=fields.name,
            email=email,
            email_canonical=(
                email.canonical
                if isinstance(email, CheckedEmail)
                else canonical_email(email)
                if email
                else None
            ),
            postal_code=fields.postal_code or None,
            # Names are compared only for signatures without an email (paper).
            name_key=None if email else normalised_name(fields.name),
            postal_key=postal_key,
            country=fields.country,
            language=fields.language,
            opt_in=fields.opt_in,
            partner=fields.partner,
            source=fields.source or None,
        )


# The columns every channel writes from a PreparedSignature, with their SQL types.
SIGNER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "text"),
    ("email", "text"),
    ("email_canonical", "text"),
    ("postal_code", "text"),
    ("name_key", "text"),
    ("postal_key", "text"),
    ("country", "text"),
    ("language", "text"),
    ("opt_in", "boolean"),
    ("source", "text"),
)


def _insert(channel: Channel, values: Mapping[str, str], rows: str, tail: str) -> TextClause:
    """``INSERT INTO signatures (channel, <columns>) SELECT '<channel>', <values> FROM <rows> <tail>``,
    ``values`` mapping each column to its SQL expression (constants and bound parameters only)."""
    columns = ", ".join(["channel", *values])
    expressions = ", ".join([f"'{channel.value}'", *values.values()])
    return text(f"INSERT INTO signatures ({columns}) SELECT {expressions} FROM {rows} {tail}")  # noqa: S608 - constant fragments; values are bound


def _web_insert(petition: str) -> TextClause:
    return _insert(
        Channel.web,
        {
            "petition_id": "p.id",
            "consent_version": "p.consent_version",
            "organisation_id": "o.id",
            "ip_hash": ":ip_hash",
            **{column: f":{column}" for column, _ in SIGNER_COLUMNS},
        },
        "petitions p JOIN campaigns c ON c.id = p.campaign_id "
        "LEFT JOIN organisations o ON o.slug = CAST(:partner AS text)",
        f"WHERE {petition} AND {OPEN_FOR_SIGNING_SQL} "
        "AND (CAST(:email AS text) IS NOT NULL OR NOT p.email_required) "
        "AND (CAST(:partner AS text) IS NULL OR o.id IS NOT NULL) RETURNING id",
    )


# Web signing, by the petition's id or by its slug (``:petition``).
WEB_INSERT_BY_ID = _web_insert("p.id = CAST(:petition AS uuid)")
WEB_INSERT_BY_SLUG = _web_insert("p.slug = CAST(:petition AS text)")


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A text statement compiled once for asyncpg: its ``$n`` SQL and the parameter names in order."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, clause: TextClause) -> DriverStatement:
        compiled = clause.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        return cls(compiled.string, tuple(compiled.positiontup or ()))

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


# The hot path runs them on a plain asyncpg connection: the same SQL, without the ORM's per-call work.
_WEB_BY_ID = DriverStatement.of(WEB_INSERT_BY_ID)
_WEB_BY_SLUG = DriverStatement.of(WEB_INSERT_BY_SLUG)


async def insert_web(
    connection: asyncpg.Connection, petition: Ref, row: PreparedSignature, ip_hash: str | None
) -> uuid.UUID | None:
    """Write a web signature if the petition takes it now (one statement on an asyncpg connection in
    autocommit); its id, or None when the petition refused it (or ``petition`` names none)."""
    if petition.names_nothing:
        return None
    statement = _WEB_BY_ID if petition.id is not None else _WEB_BY_SLUG
    values = {
        "petition": petition.key,
        "name": row.name,
        "email": row.email,
        "email_canonical": row.email_canonical,
        "postal_code": row.postal_code,
        "name_key": row.name_key,
        "postal_key": row.postal_key,
        "ip_hash": ip_hash,
        "country": row.country,
        "language": row.language,
        "opt_in": row.opt_in,
        "partner": row.partner,
        "source": row.source,
    }
    signature_id: uuid.UUID | None = await connection.fetchval(statement.sql, *statement.args(values))
    return signature_id


def _batch_insert(channel: Channel, *, keyed: bool) -> TextClause:
    per_row = [*SIGNER_COLUMNS, ("organisation_id", "uuid"), *([("external_id", "text")] if keyed else [])]
    arrays = ", ".join(f"CAST(:{column} AS {kind}[])" for column, kind in per_row)
    return _insert(
        channel,
        {
            "petition_id": "CAST(:petition AS uuid)",
            "consent_version": "CAST(:consent_version AS integer)",
            "integration_id": "CAST(:integration AS uuid)",
            "attested": "true",
            "send_confirmation_mail": "CAST(:send_confirmation_mail AS boolean)",
            **{column: f"u.{column}" for column, _ in per_row},
        },
        f"unnest({arrays}) AS u({', '.join(column for column, _ in per_row)})",
        "ON CONFLICT (integration_id, external_id) DO NOTHING RETURNING external_id" if keyed else "",
    )


_BATCH_INSERTS = {
    Channel.webhook: _batch_insert(Channel.webhook, keyed=True),
    Channel.import_: _batch_insert(Channel.import_, keyed=False),
}


@dataclass(frozen=True, slots=True)
class Batch:
    """What the signatures of one batch share. Batches are attested: the organisation that collected them
    (an integration's, an import's) vouches for them, so they count without a confirmation."""

    channel: Channel  # webhook (rows keyed by external id) or import
    petition_id: uuid.UUID
    consent_version: int
    send_confirmation_mail: bool
    integration_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class BatchRow:
    signature: PreparedSignature
    organisation_id: uuid.UUID | None
    external_id: str | None = None


async def insert_batch(conn: Connection, batch: Batch, rows: Sequence[BatchRow]) -> set[str]:
    """Write ``rows`` in one statement; for a delivery (keyed rows), the external ids written — those
    the integration had not delivered before."""
    if not rows:
        return set()
    params: dict[str, Any] = {
        "petition": batch.petition_id,
        "consent_version": batch.consent_version,
        "integration": batch.integration_id,
        "send_confirmation_mail": batch.send_confirmation_mail,
        "organisation_id": [row.organisation_id for row in rows],
    }
    for column, _ in SIGNER_COLUMNS:
        params[column] = [getattr(row.signature, column) for row in rows]
    if batch.channel is Channel.webhook:
        params["external_id"] = [row.external_id for row in rows]
        return set((await conn.execute(_BATCH_INSERTS[batch.channel], params)).scalars())
    await conn.execute(_BATCH_INSERTS[batch.channel], params)
    return set()


# --- imports: one COPY ------------------------------------------------------------------------------------

# The columns an import writes, in the order of a CopyRecord; every other column takes its default.
IMPORT_COLUMNS: tuple[str, ...] = (
    "channel",
    "petition_id",
    "consent_version",
    "attested",
    "send_confirmation_mail",
    "organisation_id",
    *(column for column, _ in SIGNER_COLUMNS),
)
CopyRecord = tuple[Any, ...]


def import_row_maker(
    batch: Batch, organisation_id: uuid.UUID | None
) -> Callable[[PreparedSignature], CopyRecord]:
    """A function turning a prepared signature into its record for :func:`copy_imported`. Imported rows
    are attested, like every batch."""
    shared = (
        batch.channel.value,
        batch.petition_id,
        batch.consent_version,
        True,
        batch.send_confirmation_mail,
        organisation_id,
    )

    def record(row: PreparedSignature) -> CopyRecord:
        return (
            *shared,
            row.name,
            None if row.email is None else str(row.email),  # plain text, not a CheckedEmail: it pickles
            row.email_canonical,
            row.postal_code,
            row.name_key,
            row.postal_key,
            row.country,
            row.language,
            row.opt_in,
            row.source,
        )

    return record


async def copy_imported(conn: Connection, records: AsyncIterable[CopyRecord]) -> None:
    """Write ``records`` (from :func:`import_row_maker`) with one ``COPY … FROM STDIN``, in ``conn``'s
    transaction. The records are read as they come: asyncpg sends them in chunks, so PostgreSQL writes
    one chunk while the caller prepares the next, and memory holds one chunk."""
    connection = await conn.connection() if isinstance(conn, AsyncSession) else conn
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None  # an open connection's asyncpg connection
    # A savepoint: when ``records`` raises (a file found unreadable halfway), the COPY is undone and the
    # transaction stays usable, as it was before the import.
    async with connection.begin_nested():
        await driver.copy_records_to_table("signatures", columns=list(IMPORT_COLUMNS), records=records)


async def analyze_signatures(conn: Connection) -> None:
    """Refresh the planner's statistics of ``signatures`` after a large write (an import): where autovacuum
    is slow or off, the pipeline's queries over a grown table are otherwise planned as for the old one."""
    await conn.execute(text("ANALYZE signatures"))


# --- the petition and the partner a signature goes to -----------------------------------------------------


class SigningPetition(NamedTuple):
    """What decides whether a petition takes a signature now."""

    id: uuid.UUID
    consent_version: int
    email_required: bool
    opens_at: datetime | None
    closes_at: datetime | None
    status: CampaignStatus
    now: datetime  # the database's
    partner_id: uuid.UUID | None  # the partner organisation's, when a slug was given (null: none)


async def signing_petition(
    conn: Connection | asyncpg.Connection, petition: Ref, partner: str | None = None
) -> SigningPetition | None:
    """What decides whether ``petition`` takes a signature now: its id, consent version, window, whether
    it needs an email, its campaign's status, the database's ``now`` and, when ``partner`` (a slug) is
    given, that organisation's id (null if there is none). On a plain asyncpg connection too (the
    signing path's: the refusal is explained on the connection that was refused)."""
    if petition.names_nothing:
        return None
    partner_id = (
        select(Organisation.id).where(Organisation.slug == partner).scalar_subquery()
        if partner is not None
        else null()
    )
    query = (
        select(
            Petition.id,
            Petition.consent_version,
            Petition.email_required,
            Petition.opens_at,
            Petition.closes_at,
            Campaign.status,
            func.now().label("now"),
            partner_id.label("partner_id"),
        )
        .join(Campaign, Campaign.id == Petition.campaign_id)
        .where(petition.where(Petition))
    )
    if isinstance(conn, asyncpg.Connection):
        compiled = query.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        params = compiled.construct_params()
        record = await conn.fetchrow(compiled.string, *(params[name] for name in compiled.positiontup or ()))
        if record is None:
            return None
        values = list(record.values())
        values[5] = CampaignStatus(values[5])
        return SigningPetition(*values)
    row = (await conn.execute(query)).one_or_none()
    return None if row is None else SigningPetition(*row)


async def organisation_ids(conn: Connection, slugs: Sequence[str]) -> dict[str, uuid.UUID]:
    """The ids of the organisations with these slugs (those that exist)."""
    if not slugs:
        return {}
    rows = await conn.execute(select(Organisation.slug, Organisation.id).where(Organisation.slug.in_(slugs)))
    return {row.slug: row.id for row in rows}


async def organisation_id(conn: Connection, organisation: Ref) -> uuid.UUID | None:
    if organisation.names_nothing:
        return None
    return await conn.scalar(select(Organisation.id).where(organisation.where(Organisation)))
