"""A realistic supplier list processed by the real worker: rows read with header variants, matched to
existing facilities (exactly, fuzzily, or queued for review), the rest created once; a re-upload asks
nothing again and creates nothing twice; a crash midway resumes without duplicates."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.refs import Ref
from services.core.registry import disclosures
from services.core.registry.errors import DisclosureDuplicate
from services.core.registry.models import Company, Disclosure, Facility, SourcingLink
from services.core.registry.schemas import ReviewConfirm
from services.core.users.models import Role
from services.core.users.security import Principal
from services.worker import runtime
from services.worker.settings import load_tasks

STAFF = Principal(kind="api_key", id=uuid.uuid4(), role=Role.coordinator, scopes=frozenset({"pledges:write"}))
COUNTRIES = ("Bangladesh", "VN", "KHM")


def _existing(token: str) -> list[dict[str, str]]:
    """Forty facilities the registry knows: Bangladesh, Vietnam, Cambodia."""
    return [
        {
            "name": f"{token} {word} Knit Composite Ltd",
            "address": f"Plot {i}, BSCIC Industrial Area, Gazipur",
            "country": ("BD", "VN", "KH")[i % 3],
        }
        for i, word in enumerate(_words(40))
    ]


def _words(n: int) -> list[str]:
    syllables = ["ra", "man", "to", "ki", "su", "lo", "ve", "ni", "da", "po"]
    return [
        (syllables[i % 10] + syllables[(i // 10) % 10] + syllables[(i * 7) % 10]).title() for i in range(n)
    ]


def supplier_list(token: str) -> list[dict[str, str]]:
    """300 rows as a brand publishes them: the known factories written another way (punctuation, legal
    form), a few misspelt, a few spelt differently enough to need a person, 250 new ones; some rows lack
    the parent company or the worker band, two lack the country."""
    known = _existing(token)
    country = {"BD": "Bangladesh", "VN": "VN", "KH": "KHM"}
    rows: list[dict[str, str]] = []
    for i, f in enumerate(known):
        name = f["name"].replace("Ltd", "Limited").upper() if i < 30 else f["name"].replace("Knit", "Knitt")
        if i >= 36:  # different enough to ask staff
            name = f["name"].replace("Knit Composite Ltd", "Knitwear Composite Mills")
        address = f["address"].replace(",", "") if i < 36 else "BSCIC Gazipur"
        rows.append(_row(name, address, country[f["country"]], i))
    for i in range(250):
        rows.append(
            _row(f"{token} Garments Unit {i:03d} Ltd", f"Road {i}, Zone {i % 7}", COUNTRIES[i % 3], i)
        )
    rows.append(_row(f"{token} Nowhere Apparel", "Unknown road", "", 1))
    rows.append(_row(f"{token} Atlantis Apparel", "Unknown road", "Atlantis", 2))
    return rows


def _row(name: str, address: str, country: str, i: int) -> dict[str, str]:
    return {
        "Factory Name": name,
        "Full Address": address,
        "Country": country,
        "Parent Company": "" if i % 4 == 0 else "Example Group",
        "Product Type": ("Apparel", "Footwear", "Home textiles; Accessories")[i % 3],
        "Number of Workers": "" if i % 5 == 0 else ("850", "1001-5000", "> 10000", "about 6,200")[i % 4],
    }


def as_csv(rows: list[dict[str, str]], title: bool = False) -> bytes:
    out = io.StringIO()
    if title:
        out.write("Supplier list of Example Sportswear, November 2026\n\n")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.fixture(autouse=True)
async def _no_events_left(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """The worker commits its ``disclosure.processed`` events; other tests count events (the purge), so
    they go with the test."""
    yield
    async with factory.begin() as session:
        await session.execute(text("DELETE FROM webhook_events WHERE type = 'disclosure.processed'"))


async def _setup(factory: async_sessionmaker[AsyncSession]) -> tuple[str, Company]:
    token = f"T{uuid.uuid4().hex[:8]}"
    async with factory.begin() as session:
        company = Company(id=uuid.uuid4(), slug=token.lower(), name=token, name_key=token.lower())
        session.add(company)
        await session.flush()
        for f in _existing(token):
            session.add(Facility(id=uuid.uuid4(), search_text="", **f))
    return token, company


async def _upload(
    factory: async_sessionmaker[AsyncSession], settings: Settings, company: Company, content: bytes
) -> uuid.UUID:
    async with factory.begin() as session:
        read = await disclosures.upload(
            session,
            settings,
            STAFF,
            Ref.of_id(company.id),
            content=content,
            filename="suppliers.csv",
            url="https://example.org/suppliers.csv",
            retrieved_on=date(2026, 11, 30),
        )
    return read.id


async def _facilities(factory: async_sessionmaker[AsyncSession], token: str) -> int:
    async with factory() as session:
        return await session.scalar(select(func.count()).where(Facility.name.ilike(f"{token}%"))) or 0


async def _links(factory: async_sessionmaker[AsyncSession], company: Company) -> int:
    async with factory() as session:
        query = select(func.count()).where(SourcingLink.company_id == company.id)
        return await session.scalar(query) or 0


async def _run_worker(
    settings: Settings, factory: async_sessionmaker[AsyncSession], disclosure_id: uuid.UUID, **worker: Any
) -> None:
    options: dict[str, Any] = runtime.worker_options(settings, relay=True, loops=False, **worker)
    async with runtime.running_worker(options):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with factory() as session:
                state = await session.scalar(select(Disclosure.state).where(Disclosure.id == disclosure_id))
            if state in ("processed", "failed"):
                return
            await asyncio.sleep(0.1)
    pytest.fail("the disclosure was not processed within 60 seconds")


async def test_a_supplier_list_is_matched_and_a_new_version_asks_nothing_again(
    factory: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
) -> None:
    assert "services.worker.registry.tasks" in load_tasks()
    settings = job_settings.model_copy(update={"disclosure_batch_size": 64})
    worker = {"database_url": database_url, "redis_url": redis_url, "queue_name": job_queue_name}
    token, company = await _setup(factory)
    rows = supplier_list(token)
    first = await _upload(factory, settings, company, as_csv(rows, title=True))
    await _run_worker(settings, factory, first, **worker)

    async with factory() as session:
        read = await disclosures.get_disclosure(session, STAFF, Ref.of_id(company.id), str(first))
    assert read.state == "processed"
    assert read.row_count == 292
    assert read.rows_done == 292
    assert read.outcomes == {"matched": 36, "review": 4, "created": 250, "invalid": 2}
    assert read.problems["country"].missing == 1
    assert read.problems["country"].invalid == 1
    assert read.problems["parent_company"].missing == 73  # every fourth row
    assert read.problems["worker_band"].missing == 58  # every fifth row
    assert await _facilities(factory, token) == 40 + 250
    assert await _links(factory, company) == 36 + 250

    async with factory() as session:
        queue = await disclosures.review_queue(session, STAFF, Ref.of_id(company.id), limit=50, offset=0)
    assert queue.total == 4
    assert all(item.candidate is not None for item in queue.items)
    async with factory.begin() as session:  # two are the proposed factory, two are not
        for item in queue.items[:2]:
            await disclosures.confirm(session, STAFF, item.id, ReviewConfirm())
        for item in queue.items[2:]:
            await disclosures.reject(session, STAFF, item.id)
    assert await _facilities(factory, token) == 40 + 250 + 2
    assert await _links(factory, company) == 36 + 250 + 4

    async with factory.begin() as session:  # the same file again is refused
        with pytest.raises(DisclosureDuplicate):
            await disclosures.upload(
                session,
                settings,
                STAFF,
                Ref.of_id(company.id),
                content=as_csv(rows, title=True),
                filename=None,
                url="https://example.org/suppliers.csv",
                retrieved_on=date(2026, 12, 1),
            )
    second = await _upload(factory, settings, company, as_csv(list(reversed(rows))))  # the next version
    await _run_worker(settings, factory, second, **worker)
    async with factory() as session:
        read = await disclosures.get_disclosure(session, STAFF, Ref.of_id(company.id), str(second))
        queue = await disclosures.review_queue(session, STAFF, Ref.of_id(company.id), limit=50, offset=0)
        event = await session.scalar(
            text("SELECT count(*) FROM webhook_events WHERE key IN (:a, :b)"),
            {"a": f"disclosure.processed:{first}", "b": f"disclosure.processed:{second}"},
        )
    assert read.outcomes == {"matched": 290, "invalid": 2}, "a decided row was asked about again"
    assert queue.total == 0
    assert await _facilities(factory, token) == 40 + 250 + 2, "a facility was created twice"
    assert await _links(factory, company) == 36 + 250 + 4
    assert event == 2


async def test_a_crash_midway_resumes_without_duplicates(
    factory: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    settings = job_settings.model_copy(update={"disclosure_batch_size": 50})
    token, company = await _setup(factory)
    disclosure_id = await _upload(factory, settings, company, as_csv(supplier_list(token)))
    async with factory.begin() as session:
        await disclosures.process_batch(session, settings, disclosure_id)  # rows read
    async with factory.begin() as session:
        await disclosures.process_batch(session, settings, disclosure_id)  # first batch
    created_after_one = await _facilities(factory, token)

    class Crash(Exception):
        pass

    async def crash_after_second_batch() -> None:
        async with factory.begin() as session:
            await disclosures.process_batch(session, settings, disclosure_id)
            raise Crash

    with pytest.raises(Crash):  # the worker dies after matching the second batch, before committing
        await crash_after_second_batch()
    assert await _facilities(factory, token) == created_after_one
    for _ in range(20):
        async with factory.begin() as session:
            if (await disclosures.process_batch(session, settings, disclosure_id)).done:
                break
    async with factory() as session:
        read = await disclosures.get_disclosure(session, STAFF, Ref.of_id(company.id), str(disclosure_id))
    assert read.state == "processed"
    assert read.rows_done == read.row_count == 292
    assert await _facilities(factory, token) == 40 + 250
    assert await _links(factory, company) == 36 + 250
