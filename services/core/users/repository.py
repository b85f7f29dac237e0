"""Queries for users and API keys. Functions take the session first and never commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.network.models import Organisation
from services.core.users.models import ApiKey, Role, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    """Emails are unique case-insensitively (a unique index on ``lower(email)``)."""
    return await session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


async def email_in_use(session: AsyncSession, email: str, *, except_user: uuid.UUID | None = None) -> bool:
    query = select(User.id).where(func.lower(User.email) == email.strip().lower())
    if except_user is not None:
        query = query.where(User.id != except_user)
    return (await session.scalar(query.limit(1))) is not None


async def organisation_exists(session: AsyncSession, organisation_id: uuid.UUID) -> bool:
    found = await session.scalar(select(Organisation.id).where(Organisation.id == organisation_id))
    return found is not None


T = TypeVar("T")


async def _page(session: AsyncSession, query: Select[T], limit: int, offset: int) -> tuple[list[T], int]:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = await session.scalars(query.limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    role: Role | None = None,
    organisation_id: uuid.UUID | None = None,
    is_active: bool | None = None,
    search: str | None = None,
) -> tuple[list[User], int]:
    conditions: list[ColumnElement[bool]] = []
    if role is not None:
        conditions.append(User.role == role)
    if organisation_id is not None:
        conditions.append(User.organisation_id == organisation_id)
    if is_active is not None:
        conditions.append(User.is_active.is_(is_active))
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(or_(User.email.ilike(pattern), User.full_name.ilike(pattern)))
    query = select(User).where(*conditions).order_by(func.lower(User.email), User.id)
    return await _page(session, query, limit, offset)


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def get_api_key_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


async def list_api_keys(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    organisation_id: uuid.UUID | None = None,
    include_revoked: bool = True,
) -> tuple[list[ApiKey], int]:
    conditions: list[ColumnElement[bool]] = []
    if organisation_id is not None:
        conditions.append(ApiKey.organisation_id == organisation_id)
    if not include_revoked:
        conditions.append(ApiKey.revoked_at.is_(None))
    query = select(ApiKey).where(*conditions).order_by(ApiKey.created_at.desc(), ApiKey.id)
    return await _page(session, query, limit, offset)


async def touch_api_key(session: AsyncSession, key_id: uuid.UUID, when: datetime) -> None:
    """Record use without loading the row into the session (no ``updated_at`` bump)."""
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(last_used_at=when, updated_at=ApiKey.updated_at)
        .execution_options(synchronize_session=False)
    )
