"""The shared schema pieces: partial updates and times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from services.core.schemas import Instant, Patch


class Example(Patch):
    NULLABLE = frozenset({"note"})

    name: str | None = None
    note: str | None = None


def test_null_clears_only_nullable_fields() -> None:
    assert Example.model_validate({"note": None}).changes() == {"note": None}
    assert Example.model_validate({}).changes() == {}
    with pytest.raises(ValidationError) as refused:
        Example.model_validate({"name": None})
    assert [error["loc"] for error in refused.value.errors()] == [("name",)]


def test_the_json_schema_says_which_fields_take_null() -> None:
    properties = Example.model_json_schema()["properties"]
    assert properties["name"] == {"type": "string", "title": "Name"}
    assert {"type": "null"} in properties["note"]["anyOf"]
    assert "default" not in properties["note"]


def test_a_patch_naming_no_field_nullable_is_a_mistake_caught_at_import() -> None:
    with pytest.raises(TypeError, match="NULLABLE names no field: nmae"):

        class Misspelt(Patch):
            NULLABLE = frozenset({"nmae"})

            name: str | None = None


@pytest.mark.parametrize(
    "text", ["2026-05-01T09:30:00Z", "2026-05-01T11:30:00+02:00", "2026-05-01 09:30:00.5+00:00"]
)
def test_an_instant_is_a_date_time_with_offset(text: str) -> None:
    value = TypeAdapter(Instant).validate_python(text)
    assert value.astimezone(UTC).replace(second=0, microsecond=0) == datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["1700000000", "1e10", "2026-05-01", "2026-05-01T09:30:00", "soon", 1700000000]
)
def test_numbers_dates_and_local_times_are_not_instants(text: object) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Instant).validate_python(text)
