"""Request and response bodies of campaign updates."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.core.campaigns.schemas import LANGUAGE_KEYS, canonical_language_keys
from services.core.schemas import NOT_BLANK, Patch, no_nul
from services.core.updates.models import BodyFormat, UpdateState


def _one_line(value: str) -> str:
    # A subject is one header line: newlines would be header injection; collapse all whitespace.
    return " ".join(value.split())


Subject = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=250, pattern=NOT_BLANK),
    AfterValidator(no_nul),
    AfterValidator(_one_line),
]
Body = Annotated[str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(no_nul)]


class UpdateText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    body: Body = Field(description="Plain text, or Markdown when the update's `format` is `markdown`.")


UpdateContent = Annotated[
    dict[str, UpdateText],
    Field(
        min_length=1,
        max_length=60,
        json_schema_extra=LANGUAGE_KEYS,
        description="Subject and body per language (BCP 47); must include the campaign's default language, "
        "which recipients whose language is missing get.",
    ),
    AfterValidator(canonical_language_keys),  # `pt-br` and `pt-BR` together are refused, not merged
]


class UpdateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: UpdateContent
    format: BodyFormat = Field(
        default=BodyFormat.text,
        description="`text`: plain text (escaped; blank lines separate paragraphs). `markdown`: CommonMark "
        "without raw HTML (it is escaped); links only to http(s) and mailto.",
    )


class UpdateChange(Patch):
    content: UpdateContent | None = None
    format: BodyFormat | None = None


class UpdateCounts(BaseModel):
    """The update's messages by state (test sends not included)."""

    pending: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = Field(default=0, description="Not sent: the address unsubscribed or bounced before.")
    total: int = 0


class UpdateRead(BaseModel):
    id: uuid.UUID
    campaign: uuid.UUID
    state: UpdateState = Field(description="`draft` (editable), `sending` (messages being queued), `sent`.")
    format: BodyFormat
    content: dict[str, UpdateText]
    created_at: datetime
    updated_at: datetime
    created_by: uuid.UUID | None
    send_requested_at: datetime | None
    finished_at: datetime | None = Field(description="When every recipient's message was queued.")
    recipients: int = Field(description="Recipients queued so far.")
    counts: UpdateCounts


class TestSent(BaseModel):
    message: uuid.UUID | None = Field(description="The queued message's id.")
    language: str = Field(description="The language the test was rendered in.")
