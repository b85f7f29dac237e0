"""Campaigns (texts per language, demands, targets, partner organisations, a lifecycle) and their
petitions (goal, consent text with its versions, count policy, signing window)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, Timestamps, UUIDPrimaryKey
from services.core.db.types import str_enum


class CampaignStatus(StrEnum):
    draft = "draft"
    published = "published"
    closed = "closed"
    archived = "archived"


class PartnerRole(StrEnum):
    lead = "lead"
    partner = "partner"


class CountPolicy(StrEnum):
    # Web signatures count once confirmed by double opt-in; imported and delivered ones (attested by the
    # organisation that collected them) at once.
    confirmed = "confirmed"
    all_unique = "all_unique"  # every unique signer counts, confirmed or not


class Campaign(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "campaigns"

    slug: Mapped[str] = mapped_column(String(100), unique=True)
    default_language: Mapped[str] = mapped_column(String(35))  # BCP 47
    # {language: {"title": …, "summary": …, "body": …}}; holds default_language.
    translations: Mapped[dict[str, Any]] = mapped_column(JSONB)
    demands: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default=text("'[]'::jsonb"))
    status: Mapped[CampaignStatus] = mapped_column(
        str_enum(CampaignStatus, "campaign_status"),
        default=CampaignStatus.draft,
        server_default=CampaignStatus.draft.value,
        index=True,
    )
    published_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]


class CampaignPartner(Base):
    """A member organisation running a campaign, as its lead or as a partner."""

    __tablename__ = "campaign_partners"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[PartnerRole] = mapped_column(str_enum(PartnerRole, "campaign_partner_role"))
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CampaignTarget(Base):
    """A company a campaign targets (in the registry), in order."""

    __tablename__ = "campaign_targets"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Petition(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "petitions"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="RESTRICT"), index=True
    )
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    default_language: Mapped[str] = mapped_column(String(35))  # BCP 47
    translations: Mapped[dict[str, Any]] = mapped_column(JSONB)  # {language: {"title": …}}
    goal: Mapped[int | None]
    consent_text: Mapped[str] = mapped_column(Text)
    # Bumped whenever consent_text changes; every version's text is kept in petition_consent_versions.
    consent_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    email_required: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    count_policy: Mapped[CountPolicy] = mapped_column(
        str_enum(CountPolicy, "petition_count_policy"),
        default=CountPolicy.confirmed,
        server_default=CountPolicy.confirmed.value,
    )
    opens_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]


class PetitionConsentVersion(Base):
    """Every consent text a petition has had; a signature records the version its signer agreed to."""

    __tablename__ = "petition_consent_versions"

    petition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("petitions.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
