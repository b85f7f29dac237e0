"""The network directory: member organisations, regional coalitions and memberships."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, Timestamps, UUIDPrimaryKey
from services.core.db.types import str_enum


class OrganisationKind(StrEnum):
    trade_union = "trade_union"
    ngo = "ngo"
    womens_rights = "womens_rights"
    youth = "youth"
    consumer = "consumer"
    health = "health"
    faith = "faith"
    sociocultural = "sociocultural"
    labour_rights = "labour_rights"
    other = "other"


class MembershipStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    former = "former"


class Organisation(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "organisations"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[OrganisationKind] = mapped_column(str_enum(OrganisationKind, "organisation_kind"))
    country: Mapped[str] = mapped_column(String(2), index=True)  # ISO 3166-1 alpha-2
    city: Mapped[str | None] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[MembershipStatus] = mapped_column(
        str_enum(MembershipStatus, "membership_status"),
        default=MembershipStatus.active,
        server_default=MembershipStatus.active.value,
        index=True,
    )
    joined_on: Mapped[date | None]
    description: Mapped[str] = mapped_column(Text, default="", server_default="")


class Coalition(UUIDPrimaryKey, Timestamps, Base):
    """A regional coalition (Europe, South Asia, ...) or a custom grouping of organisations."""

    __tablename__ = "coalitions"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    region: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Seeded regional coalitions cannot be deleted.
    is_regional: Mapped[bool] = mapped_column(default=False, server_default=text("false"))


class CoalitionMembership(Base):
    __tablename__ = "coalition_memberships"

    coalition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("coalitions.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    joined_on: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
