"""Schema pieces every domain uses: pages of results, partial updates, text that PostgreSQL can store,
times, and the patterns that let JSON schemas say what the validators check."""

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
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000


def no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL characters: refuse them here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# In a JSON schema: at least one character that Python's strip() keeps — what a non-empty text is once
# stripped (ECMA-262's \s, which schema validators use, lacks \x1c-\x1f and \x85, which strip() removes).
# Its runtime check is the stripping and the minimum length (this pattern then always holds).
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"

# For JSON schemas of URLs the server takes: http(s), a host and no credentials, no white space.
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+(?:[/?#]\S*)?$"


def _caseless(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# For JSON schemas of email addresses, which email-validator checks: no quoted local part, no IP literal, no
# leading, trailing or doubled dots, a dotted domain, and none of the special-use domains it refuses.
_SPECIAL_USE = "|".join(
    _caseless(name) for name in ("arpa", "invalid", "local", "localhost", "onion", "test")
)
EMAIL_PATTERN = (
    rf'^(?!\.)(?!.*\.\.)[^@\s"]+(?<!\.)@(?!(?:[^@]*\.)?(?:{_SPECIAL_USE})$)[^@\s\[\]"]+\.[^@\s\[\]".]+$'
)

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NOT_BLANK),
    AfterValidator(no_nul),
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
    """A partial update: only the fields sent are changed. ``null`` clears a field named in ``NULLABLE``
    and is refused (422, at the field) for every other; the JSON schema says the same (only ``NULLABLE``
    fields admit ``null``, and no field has a default: one left out stays as it is)."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A misspelt name would leave the field silently non-nullable.
        unknown = cls.NULLABLE - set(cls.model_fields)
        if unknown:
            raise TypeError(f"{cls.__name__}.NULLABLE names no field: {', '.join(sorted(unknown))}")

    @field_validator("*", mode="after")
    @classmethod
    def _null_only_where_nullable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError("cannot be null")
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        for name, prop in handler.resolve_ref_schema(schema).get("properties", {}).items():
            prop.pop("default", None)
            if name not in cls.NULLABLE:
                _drop_null(prop)
        return schema

    def changes(self) -> dict[str, Any]:
        """The fields sent, with their validated values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _drop_null(prop: dict[str, Any]) -> None:
    branches = [branch for branch in prop.get("anyOf", ()) if branch != {"type": "null"}]
    if "anyOf" not in prop or len(branches) == len(prop["anyOf"]):
        return
    del prop["anyOf"]
    if len(branches) == 1:
        prop.update({**branches[0], **prop})
    else:
        prop["anyOf"] = branches


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="How many items match the filters, over all pages.")
    limit: int
    offset: int
