"""Writing rows with unique keys: flushing so a lost race becomes a domain error, free slugs, and
LIKE patterns. Shared by every domain that has slugs or unique names."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import TypeVar

from slugify import slugify
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.core.db.base import Base

M = TypeVar("M", bound=Base)


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return re.sub(r"([\\%_])", r"\\\1", text)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint an INSERT/UPDATE broke (asyncpg reports it on the cause)."""
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if isinstance(name, str):
            return name
    return None


async def save_unique(
    session: AsyncSession,
    obj: M,
    errors: Mapping[str, Callable[[], Exception]],
    apply: Callable[[], None] = lambda: None,
) -> M:
    """Apply changes and flush them inside a savepoint, turning a violation of one of the named unique
    constraints into its domain error (other integrity errors propagate)."""
    try:
        async with session.begin_nested():
            apply()
            session.add(obj)
            await session.flush()
    except IntegrityError as exc:
        make_error = errors.get(violated_constraint(exc) or "")
        if make_error is None:
            raise
        raise make_error() from exc
    await session.refresh(obj)  # server-side timestamps
    return obj


async def free_slug(
    session: AsyncSession, slug: InstrumentedAttribute[str], text: str, fallback: str, *, max_length: int
) -> str:
    """A slug for ``text`` that ``slug``'s column does not hold yet: ``base``, else ``base-2``, … A slug
    that would read as a UUID gets ``fallback`` in front, so references by id or slug never clash."""
    base = slugify(text, max_length=max_length - 10, word_boundary=True) or fallback
    if is_uuid(base):
        base = f"{fallback}-{base}"
    rows = await session.scalars(
        select(slug).where(or_(slug == base, slug.like(f"{escape_like(base)}-%", escape="\\")))
    )
    taken = set(rows)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"
