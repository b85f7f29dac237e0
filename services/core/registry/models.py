"""Companies (brands, retailers, groups, agents; a group owns brands), facilities (production and
processing sites) and where each field's value came from."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, Timestamps, UUIDPrimaryKey
from services.core.db.types import str_enum

# Trigram indexes on ``search_text``, made by migration 0020 only where pg_trgm can be installed: no model
# declares them, and comparing the models with the database leaves them out.
OPTIONAL_INDEXES = frozenset({"ix_companies_search_trgm", "ix_facilities_search_trgm"})


class CompanyKind(StrEnum):
    brand = "brand"
    retailer = "retailer"
    manufacturer_group = "manufacturer_group"
    manufacturer = "manufacturer"
    agent = "agent"
    licensee = "licensee"
    other = "other"


class FacilityType(StrEnum):
    production = "production"  # final product assembly
    processing = "processing"  # printing, dyeing, laundry… for production sites
    raw_material = "raw_material"
    warehouse = "warehouse"
    office = "office"
    other = "other"


class ProcessingType(StrEnum):
    cut_make_trim = "cut_make_trim"
    cutting = "cutting"
    sewing = "sewing"
    knitting = "knitting"
    weaving = "weaving"
    spinning = "spinning"
    printing = "printing"
    embroidery = "embroidery"
    laundry = "laundry"
    washing = "washing"
    dyeing = "dyeing"
    finishing = "finishing"
    tanning = "tanning"
    packing = "packing"
    other = "other"


class ProductType(StrEnum):
    apparel = "apparel"
    footwear = "footwear"
    home_textile = "home_textile"
    accessories = "accessories"


class WorkerBand(StrEnum):
    """The Transparency Pledge's bands of worker numbers."""

    up_to_1000 = "1-1000"
    from_1001_to_5000 = "1001-5000"
    from_5001_to_10000 = "5001-10000"
    over_10000 = "10001+"


class RecordType(StrEnum):
    company = "company"
    facility = "facility"


class Company(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "companies"

    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Folded name without punctuation: two companies never share it (the same name is the same company).
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    aliases: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))
    kind: Mapped[CompanyKind | None] = mapped_column(str_enum(CompanyKind, "company_kind"))
    hq_country: Mapped[str | None] = mapped_column(String(2), index=True)  # ISO 3166-1 alpha-2
    website: Mapped[str | None] = mapped_column(String(500))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("companies.id", ondelete="RESTRICT"), index=True
    )
    lei: Mapped[str | None] = mapped_column(String(20), unique=True)  # ISO 17442
    wikirate_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    os_hub_contributor_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Folded name and aliases, one per line: what search matches (a trigram index where pg_trgm exists).
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")


class Facility(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "facilities"
    __table_args__ = (
        CheckConstraint("(latitude IS NULL) = (longitude IS NULL)", name="coordinates_together"),
        CheckConstraint("latitude BETWEEN -90 AND 90", name="latitude_range"),
        CheckConstraint("longitude BETWEEN -180 AND 180", name="longitude_range"),
        Index("ix_facilities_country_name", "country", "name"),
    )

    name: Mapped[str] = mapped_column(String(300))
    native_name: Mapped[str | None] = mapped_column(String(300))  # in the local script
    address: Mapped[str] = mapped_column(Text, default="", server_default="")
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    parent_company_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("companies.id", ondelete="RESTRICT"), index=True
    )
    facility_type: Mapped[FacilityType | None] = mapped_column(str_enum(FacilityType, "facility_type"))
    processing_types: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    product_types: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))
    worker_band: Mapped[WorkerBand | None] = mapped_column(str_enum(WorkerBand, "worker_band"))
    closed: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    aliases: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))
    os_id: Mapped[str | None] = mapped_column(String(15), unique=True)  # Open Supply Hub
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")


class FieldSource(Base):
    """One value a field of a company or facility was given, by whom or from what, and when. The latest
    row of a field is where its current value came from. A source is the person (user) or machine client
    (API key) who wrote it, with an optional label (a report, a list), or — later — a disclosure."""

    __tablename__ = "registry_field_sources"
    __table_args__ = (Index("ix_registry_field_sources_record", "record_type", "record_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    record_type: Mapped[RecordType] = mapped_column(str_enum(RecordType, "registry_record_type"))
    record_id: Mapped[uuid.UUID]
    field: Mapped[str] = mapped_column(String(50))
    value: Mapped[Any] = mapped_column(JSONB, nullable=False)  # JSON null when the field was cleared
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    source_label: Mapped[str | None] = mapped_column(String(500))
    # The supplier-list disclosure the value was read from.
    disclosure_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("disclosures.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())


# --- supplier-list disclosures (issue 11 §3) ---------------------------------------------------------


class DisclosureFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    json = "json"


class DisclosureState(StrEnum):
    queued = "queued"  # stored, waiting for the worker
    processing = "processing"  # rows read; matching batch by batch
    processed = "processed"
    failed = "failed"  # the file could not be read by the worker (``error`` says why)


class RowOutcome(StrEnum):
    pending = "pending"  # not matched yet
    invalid = "invalid"  # no name or no country: nothing to match
    matched = "matched"  # linked to an existing facility (exactly, fuzzily, or by an earlier decision)
    review = "review"  # a possible match, waiting for staff to confirm or reject it
    created = "created"  # a new facility was made from it
    confirmed = "confirmed"  # staff confirmed the proposed facility
    rejected = "rejected"  # staff rejected the proposed facility: a new one was made from the row


class MatchMethod(StrEnum):
    exact = "exact"
    fuzzy = "fuzzy"
    decision = "decision"  # a decision remembered from an earlier row of the same company


class Disclosure(UUIDPrimaryKey, Timestamps, Base):
    """A company's published supplier list as uploaded: the snapshot and how far the worker got."""

    __tablename__ = "disclosures"
    __table_args__ = (UniqueConstraint("company_id", "sha256", name="uq_disclosures_company_id_sha256"),)

    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    retrieved_on: Mapped[date]
    filename: Mapped[str | None] = mapped_column(String(300))
    format: Mapped[DisclosureFormat] = mapped_column(str_enum(DisclosureFormat, "disclosure_format"))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int]
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    row_count: Mapped[int]
    machine_readable: Mapped[bool]
    state: Mapped[DisclosureState] = mapped_column(
        str_enum(DisclosureState, "disclosure_state"), default=DisclosureState.queued
    )
    rows_done: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Row number of the last row matched: the next batch starts after it.
    cursor: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    processed_at: Mapped[datetime | None]


class DisclosureRow(Base):
    """One row of a disclosure, read into the Pledge's fields, with what is missing or invalid and what
    matching made of it."""

    __tablename__ = "disclosure_rows"
    __table_args__ = (
        Index("ix_disclosure_rows_review", "outcome", postgresql_where=text("outcome = 'review'")),
    )

    disclosure_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("disclosures.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(primary_key=True)  # 1 = the first row after the header
    row_key: Mapped[str | None] = mapped_column(String(64))  # the cleaned row identity (None: invalid)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB)
    problems: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    outcome: Mapped[RowOutcome] = mapped_column(str_enum(RowOutcome, "disclosure_row_outcome"))
    method: Mapped[MatchMethod | None] = mapped_column(str_enum(MatchMethod, "disclosure_match_method"))
    facility_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("facilities.id", ondelete="SET NULL"))
    candidate_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("facilities.id", ondelete="SET NULL"))
    score: Mapped[float | None]
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]


class MatchDecision(Base):
    """What a row of a company's lists is, remembered by its cleaned identity: the facility it was linked
    to (automatically, or by staff confirming or rejecting a proposed match). A later row with the same
    identity, in this list or the next version, is linked to it without asking again."""

    __tablename__ = "disclosure_decisions"

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    row_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    facility_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    outcome: Mapped[RowOutcome] = mapped_column(str_enum(RowOutcome, "disclosure_row_outcome"))
    disclosure_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("disclosures.id", ondelete="SET NULL"))
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SourcingLink(Base):
    """A company sources from a facility: the disclosures that say so, first and last, and the period
    (their retrieval dates)."""

    __tablename__ = "sourcing_links"

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    facility_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    first_disclosure_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("disclosures.id", ondelete="SET NULL")
    )
    last_disclosure_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("disclosures.id", ondelete="SET NULL")
    )
    first_seen: Mapped[date]
    last_seen: Mapped[date]
