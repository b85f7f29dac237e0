"""Column types shared by models."""

from __future__ import annotations

from enum import Enum as PyEnum

from sqlalchemy import Enum


def str_enum(enum: type[PyEnum], name: str) -> Enum:
    """A VARCHAR column with a CHECK constraint of the enum's values (easier to extend than a PG enum)."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )
