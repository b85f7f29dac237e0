"""How clients name a record that has a slug: by its id or by its slug, in one type.

:class:`Ref` is parsed once, where the text comes in (a path or query parameter, a body field): it is an
id (a UUID, in any spelling), a slug, or neither — a text that names nothing, which every lookup treats as
not found, as it would a slug nobody has. Repositories turn it into a ``WHERE`` condition
(:meth:`Ref.where`). Organisations, coalitions, campaigns and petitions are named this way.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema
from sqlalchemy import ColumnElement, false

from services.core.db.base import Base
from services.core.db.unique import is_uuid

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SLUG_MAX_LENGTH = 100
_SLUG_RE = re.compile(SLUG_PATTERN)
_UUID_HEX_DIGITS = 32  # a UUID is never written shorter (the check costs more than this length test)


def is_slug(value: str) -> bool:
    return len(value) <= SLUG_MAX_LENGTH and _SLUG_RE.fullmatch(value) is not None


class Ref:
    """A record's id or slug as a client gave it (``text``, for messages), parsed: ``id`` or ``slug`` is
    set, or neither when the text can be neither. A plain class, not a dataclass: FastAPI would take a
    dataclass parameter for a request body."""

    __slots__ = ("id", "slug", "text")

    def __init__(self, text: str, *, id: uuid.UUID | None = None, slug: str | None = None) -> None:
        self.text = text
        self.id = id
        self.slug = slug

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and self._fields() == other._fields()

    def _fields(self) -> tuple[str, uuid.UUID | None, str | None]:
        return self.text, self.id, self.slug

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Ref({self.text!r})"

    @classmethod
    def parse(cls, text: str) -> Ref:
        if len(text) >= _UUID_HEX_DIGITS and is_uuid(text):
            return cls(text, id=uuid.UUID(text))
        if is_slug(text):
            return cls(text, slug=text)
        return cls(text)

    @classmethod
    def of_id(cls, record_id: uuid.UUID) -> Ref:
        return cls(str(record_id), id=record_id)

    @property
    def names_nothing(self) -> bool:
        return self.id is None and self.slug is None

    @property
    def key(self) -> str:
        """The id (in its canonical spelling) or the slug; for a ref naming nothing, its text."""
        return str(self.id) if self.id is not None else self.slug if self.slug is not None else self.text

    def where(self, model: type[Base]) -> ColumnElement[bool]:
        """The condition matching the record this names in ``model``'s table, whose columns ``id`` and
        ``slug`` it reads (nothing, if it names none)."""
        columns = model.__table__.c
        if self.id is not None:
            return columns.id == self.id
        if self.slug is not None:
            return columns.slug == self.slug
        return false()

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # A path parameter: any text (one naming nothing is a 404, like a slug nobody has).
        return RefText().schema()


@dataclass(frozen=True, slots=True)
class RefText:
    """``Annotated[Ref, RefText(max_length=100)]``: a :class:`Ref` read from a string with these limits,
    checked (and shown in the JSON schema) as a string's, before it is parsed."""

    max_length: int | None = None
    min_length: int | None = None
    strip_whitespace: bool | None = None
    pattern: str | None = None

    def schema(self) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            Ref.parse,
            core_schema.str_schema(
                max_length=self.max_length,
                min_length=self.min_length,
                strip_whitespace=self.strip_whitespace,
                pattern=self.pattern,
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return self.schema()


# A query parameter naming a record by id or slug.
RefQuery = Annotated[Ref, RefText(max_length=SLUG_MAX_LENGTH)]
