"""Schema pieces every domain uses: pages of results, partial updates, and text that PostgreSQL can store."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

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
