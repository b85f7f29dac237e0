"""Two concurrent parent changes cannot make a cycle between them (real, committing sessions)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.core.refs import Ref
from services.core.registry import service
from services.core.registry.errors import CompanyParentCycle
from services.core.registry.models import Company, FieldSource
from services.core.registry.schemas import CompanyUpdate


async def test_concurrent_parent_changes_cannot_make_a_cycle(engine: AsyncEngine) -> None:
    maker = async_sessionmaker(engine, expire_on_commit=False)
    suffix = uuid.uuid4().hex[:8]
    a, b = (
        Company(slug=f"{n}-{suffix}", name=f"{n} {suffix}", name_key=f"{n} {suffix}", search_text=n)
        for n in ("a", "b")
    )
    async with maker() as setup:
        setup.add_all([a, b])
        await setup.commit()
    try:
        async with maker() as first, maker() as second:
            # A under B, not committed yet ...
            await service.update_company(
                first, None, Ref.of_id(a.id), CompanyUpdate.model_validate({"parent": str(b.id)})
            )
            # ... while B under A waits for it, then sees it and refuses.
            attempt = asyncio.create_task(
                service.update_company(
                    second, None, Ref.of_id(b.id), CompanyUpdate.model_validate({"parent": str(a.id)})
                )
            )
            await asyncio.sleep(0.5)
            assert not attempt.done()
            await first.commit()
            with pytest.raises(CompanyParentCycle):
                await attempt
            await second.rollback()
    finally:
        async with maker() as cleanup:
            ids = [a.id, b.id]
            await cleanup.execute(delete(FieldSource).where(FieldSource.record_id.in_(ids)))
            await cleanup.execute(update(Company).where(Company.id.in_(ids)).values(parent_id=None))
            await cleanup.execute(delete(Company).where(Company.id.in_(ids)))
            await cleanup.commit()
