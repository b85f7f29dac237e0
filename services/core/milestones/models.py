"""Milestones reached: one row per petition and percentage, ever (the primary key makes it once)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, func
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base


class PetitionMilestone(Base):
    __tablename__ = "petition_milestones"

    petition_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("petitions.id", ondelete="CASCADE"), primary_key=True
    )
    percent: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)  # the count when it was first seen crossed
    goal: Mapped[int] = mapped_column(Integer)  # the goal then
    reached_at: Mapped[datetime] = mapped_column(server_default=func.now())
