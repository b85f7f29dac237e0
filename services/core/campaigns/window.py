"""When a petition takes signatures: the one rule, in SQL and in Python side by side so they cannot drift.

While its campaign is published, from ``opens_at`` (if set) until ``closes_at`` (if set, exclusive). The SQL
form lets web signing write its row only where the rule holds; the Python form says why it does not (409
``petition-closed``). docs/signatures.md, "The signing window".
"""

from __future__ import annotations

from datetime import datetime

from services.core.campaigns.errors import PetitionClosed
from services.core.campaigns.models import CampaignStatus

OPEN_FOR_SIGNING_SQL = (
    "c.status = 'published' AND (p.opens_at IS NULL OR p.opens_at <= now()) "
    "AND (p.closes_at IS NULL OR p.closes_at > now())"
)


def signing_refusal(
    status: CampaignStatus, opens_at: datetime | None, closes_at: datetime | None, now: datetime
) -> PetitionClosed | None:
    """Why a petition of a campaign in ``status`` with this window takes no signatures at ``now``, or None
    when it takes them."""
    if status is not CampaignStatus.published:
        return PetitionClosed(f"The campaign is {status.value}.")
    if opens_at is not None and now < opens_at:
        return PetitionClosed("The petition is not open yet.", opens_at=opens_at.isoformat())
    if closes_at is not None and now >= closes_at:
        return PetitionClosed("The petition has closed.", closes_at=closes_at.isoformat())
    return None


def ensure_open_for_signing(
    status: CampaignStatus, opens_at: datetime | None, closes_at: datetime | None, now: datetime
) -> None:
    """Raise ``PetitionClosed`` (409 ``petition-closed``) unless the petition takes signatures at ``now``."""
    refusal = signing_refusal(status, opens_at, closes_at, now)
    if refusal is not None:
        raise refusal
