"""Signatures and what the worker derives from them: ``signatures`` (every one received, duplicates
included), ``petition_signers`` (the signature that counts per person), ``signature_reviews``,
``signature_invalidations`` and ``petition_count_refresh`` (recount requests).
docs/signatures.md, "Tables".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base
from services.core.db.types import str_enum


class Channel(StrEnum):
    web = "web"  # the public signing endpoint
    webhook = "webhook"  # an integration (native batch or Action Network)
    import_ = "import"  # a CSV import (paper signatures, bulk)


class SignatureState(StrEnum):
    new = "new"  # not yet seen by the deduplication pipeline
    unique = "unique"  # the person's counted signature on this petition
    duplicate = "duplicate"  # the same person signed before: see duplicate_of
    review = "review"  # a paper signature that may be a duplicate: a person decides


class ReviewResolution(StrEnum):
    duplicate = "duplicate"
    distinct = "distinct"


class Signature(Base):
    """One signature. Indexes are few on purpose: every one slows the public signing path's insert.
    Staff filters (partner, IP hash, invalidation) run within one petition, on its created_at index."""

    __tablename__ = "signatures"
    __table_args__ = (
        UniqueConstraint("integration_id", "external_id"),
        Index("ix_signatures_petition_id_created_at", "petition_id", "created_at"),
        Index("ix_signatures_new", "created_at", postgresql_where=text("state = 'new'")),
        Index(
            "ix_signatures_paper",
            "petition_id",
            "country",
            "postal_key",
            postgresql_where=text("email_canonical IS NULL AND state = 'unique'"),
        ),
        # Paper signatures without a postal code: matched by petition, country and normalised name.
        Index(
            "ix_signatures_paper_name",
            "petition_id",
            "country",
            "name_key",
            postgresql_where=text("email_canonical IS NULL AND state = 'unique'"),
        ),
        # The public count: an index-only scan over a petition's counted signatures.
        Index(
            "ix_signatures_counted",
            "petition_id",
            "confirmed_at",
            "attested",
            postgresql_where=text("state = 'unique' AND invalidation_id IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    petition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("petitions.id", ondelete="RESTRICT"))
    # clock_timestamp(), not now(): signatures written in one transaction still get their own order.
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, "signature_channel"))
    state: Mapped[SignatureState] = mapped_column(
        str_enum(SignatureState, "signature_state"),
        default=SignatureState.new,
        server_default=SignatureState.new.value,
    )
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("signatures.id", ondelete="SET NULL"))

    # Personal data (null after erasure).
    name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    email_canonical: Mapped[str | None] = mapped_column(Text, index=True)  # identity.canonical_email
    postal_code: Mapped[str | None] = mapped_column(String(32))
    # For matching paper signatures: identity.normalised_name / normalised_postal_code.
    name_key: Mapped[str | None] = mapped_column(Text)
    postal_key: Mapped[str | None] = mapped_column(String(32))
    ip_hash: Mapped[str | None] = mapped_column(String(64))  # keyed hash, never the address

    country: Mapped[str | None] = mapped_column(CHAR(2))
    language: Mapped[str | None] = mapped_column(String(35))
    opt_in: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    consent_version: Mapped[int] = mapped_column(Integer)
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL")
    )
    source: Mapped[str | None] = mapped_column(String(500))
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL")
    )
    external_id: Mapped[str | None] = mapped_column(String(200))

    # Vouched for by the organisation that collected it (an import or an integration): it counts without
    # a confirmation. A duplicate passes it on to the person's counted signature, as a confirmation does.
    attested: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Whether the pipeline mails it a confirmation link: web signatures always; imports and integrations
    # only when they ask (their signatures are attested).
    send_confirmation_mail: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    confirmation_nonce_hash: Mapped[str | None] = mapped_column(String(64))
    confirmation_requested_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    invalidation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("signature_invalidations.id", ondelete="SET NULL")
    )
    erased_at: Mapped[datetime | None]


class PetitionSigner(Base):
    """The counted signature of one person (by canonical email) on one petition."""

    __tablename__ = "petition_signers"

    petition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("petitions.id", ondelete="CASCADE"), primary_key=True
    )
    email_canonical: Mapped[str] = mapped_column(Text, primary_key=True)
    signature_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("signatures.id", ondelete="CASCADE"), index=True
    )
    # When this person was last sent a confirmation link for this petition: at most one a day until they
    # confirm, so nobody can mail-bomb an address by signing with it.
    confirmation_mailed_at: Mapped[datetime | None]


class SignatureReview(Base):
    """A paper signature that may be the same person as ``candidate_id``: staff decide."""

    __tablename__ = "signature_reviews"

    signature_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("signatures.id", ondelete="CASCADE"), primary_key=True
    )
    petition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("petitions.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signatures.id", ondelete="CASCADE"))
    score: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[ReviewResolution | None] = mapped_column(
        str_enum(ReviewResolution, "signature_review_resolution")
    )
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class SignatureInvalidation(Base):
    """Signatures matching a filter, taken out of the counts for a reason; reverting puts them back."""

    __tablename__ = "signature_invalidations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    petition_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("petitions.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    signatures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reverted_at: Mapped[datetime | None]
    reverted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class PetitionCountRefresh(Base):
    """A request to recount a petition whose count changed other than by new signatures (those the
    pipeline sees itself). One row per request, never merged into an earlier one: a request becomes
    visible when the change that made it commits, so the recount that takes it (and counts after taking
    it) sees that change."""

    __tablename__ = "petition_count_refresh"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    petition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("petitions.id", ondelete="CASCADE"))
