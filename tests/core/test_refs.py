"""One type for "an id or a slug": parsed once, turned into a WHERE condition, read from parameters and
bodies with the string limits they declare."""

from __future__ import annotations

import uuid
from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.network.models import Organisation
from services.core.refs import Ref, RefText
from tests.factories import make_organisation


def test_an_id_in_any_spelling_a_slug_or_neither() -> None:
    spelled = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    by_id = Ref.parse(spelled)
    assert (by_id.id, by_id.slug, by_id.text) == (uuid.UUID(spelled), None, spelled)
    assert by_id.key == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    by_slug = Ref.parse("clean-clothes")
    assert (by_slug.id, by_slug.slug, by_slug.key) == (None, "clean-clothes", "clean-clothes")
    for nothing in ("", "Upper", "two  spaces", "a--b", "-a", "x" * 101, "naïve"):
        assert Ref.parse(nothing).names_nothing, nothing
    assert Ref.of_id(uuid.UUID(spelled)) == Ref.parse(str(uuid.UUID(spelled)))


async def test_the_condition_finds_the_record_by_id_or_slug_and_nothing_else(db: AsyncSession) -> None:
    organisation = await make_organisation(db)

    async def found(ref: Ref) -> list[uuid.UUID]:
        return list(await db.scalars(select(Organisation.id).where(ref.where(Organisation))))

    assert await found(Ref.parse(organisation.slug)) == [organisation.id]
    assert await found(Ref.parse(str(organisation.id).upper())) == [organisation.id]
    assert await found(Ref.parse("no-such-organisation")) == []
    assert await found(Ref.parse("NOT A SLUG")) == []


class _Body(BaseModel):
    organisation: Annotated[Ref, RefText(strip_whitespace=True, min_length=1, max_length=10)]


def test_limits_are_checked_as_strings_are_before_parsing() -> None:
    assert _Body(organisation="  union-a ").organisation == Ref.parse("union-a")
    with pytest.raises(ValidationError) as raised:
        _Body(organisation="x" * 11)
    [error] = raised.value.errors()
    assert (error["type"], error["msg"]) == ("string_too_long", "String should have at most 10 characters")
    assert _Body.model_json_schema()["properties"]["organisation"] == {
        "maxLength": 10,
        "minLength": 1,
        "title": "Organisation",
        "type": "string",
    }
