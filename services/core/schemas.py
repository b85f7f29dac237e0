"""Schema pieces every domain uses: pages of results, partial updates, and text that PostgreSQL can store."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000


def no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL characters: refuse them here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(no_nul)
]
SearchText = Annotated[str, StringConstraints(max_length=200), AfterValidator(no_nul)]

_DATE_TIME_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: object) -> object:
    # Pydantic would also take numbers (and numeric strings) as Unix times and a bare date as midnight: the
    # schema's `date-time` is neither, so neither is accepted.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME_START.match(value):
        raise ValueError("must be an ISO 8601 date and time with a time zone, e.g. 2026-05-01T09:30:00Z")
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_date_time_text),
    Field(description="An RFC 3339 date-time with its offset, e.g. `2026-05-01T09:30:00Z`."),
]


class Patch(BaseModel):
    """A partial update: only the fields sent are changed; ``null`` clears a nullable field."""

    REQUIRED: ClassVar[frozenset[str]] = frozenset()

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _required_not_null(self) -> Patch:
        nulls = sorted(f for f in self.REQUIRED & self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent."""
        return self.model_dump(include=self.model_fields_set)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="How many items match the filters, over all pages.")
    limit: int
    offset: int
