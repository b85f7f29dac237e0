"""Queries of integrations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, exists, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Petition
from services.core.integrations.models import Integration
from services.core.network.models import Organisation


async def get_integration(
    session: AsyncSession, integration_id: uuid.UUID, *, for_update: bool = False
) -> Integration | None:
    query = select(Integration).where(Integration.id == integration_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def list_integrations(
    session: AsyncSession, *, active: bool | None, limit: int, offset: int
) -> tuple[Sequence[Integration], int]:
    """A page of integrations, newest first (then by id, a total order), and how many match in all."""
    condition: ColumnElement[bool] = true() if active is None else Integration.active.is_(active)
    total = await session.scalar(select(func.count()).select_from(Integration).where(and_(condition)))
    items = (
        await session.scalars(
            select(Integration)
            .where(condition)
            .order_by(Integration.created_at.desc(), Integration.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return items, total or 0


async def petition_exists(session: AsyncSession, petition_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Petition.id == petition_id))))


async def organisation_exists(session: AsyncSession, organisation_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Organisation.id == organisation_id))))
