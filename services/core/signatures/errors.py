"""Errors of signatures, each with its own stable problem ``code``."""

from __future__ import annotations

from typing import Any

from services.core.errors import LoomError, NotFound


class InvalidSignature(LoomError):
    """A signature that is well-formed but breaks one of its petition's rules (email required, unknown
    partner). Shaped like a schema validation error, so clients handle both alike."""

    status = 422
    code = "validation-error"
    title = "Request validation failed"

    def __init__(self, field: str, message: str, kind: str, **extra: Any) -> None:
        super().__init__(
            "One or more fields are invalid; see `errors`.",
            errors=[{"loc": ["body", field], "msg": message, "type": kind}],
            **extra,
        )


class ReviewNotFound(NotFound):
    code = "review-not-found"
    title = "No open review for this signature"


class InvalidImportFile(LoomError):
    """A CSV import that cannot be read at all: no header, unknown columns, not UTF-8, a runaway line.
    Nothing of the file is imported. (Bad *rows* are not this: they are reported and skipped.)"""

    status = 400
    code = "invalid-import-file"
    title = "The import file cannot be read"


class UnsupportedImportType(LoomError):
    status = 415
    code = "unsupported-media-type"
    title = "Send the import as text/csv"
