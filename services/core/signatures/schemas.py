"""What signers, integrators and staff send and get back about signatures."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.core.campaigns.schemas import LanguageTag
from services.core.network.schemas import CountryCode, Slug
from services.core.schemas import EMAIL_PATTERN, NOT_BLANK, Instant, Page, no_nul
from services.core.signatures.identity import InvalidEmail, canonical_email
from services.core.signatures.names import SignerName

MAX_EMAIL_LENGTH = 320


class CheckedEmail(str):
    """An email address as given (trimmed) that passed validation, carrying its canonical form: working it
    out (``email-validator``, IDNA, provider rules) is the costliest step of taking a signature, so it is
    done once, here, and reused when the signature is stored."""

    canonical: str

    def __new__(cls, value: str, canonical: str) -> CheckedEmail:
        checked = super().__new__(cls, value)
        checked.canonical = canonical
        return checked


def _email(value: str) -> str:
    try:
        canonical = canonical_email(value)
    except InvalidEmail as exc:
        raise ValueError(str(exc)) from None
    return CheckedEmail(value.strip(), canonical)


Email = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_LENGTH),
    AfterValidator(no_nul),
    AfterValidator(_email),
    Field(examples=["jane.doe@example.org"], json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN}),
]
PostalCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=32),
    AfterValidator(no_nul),
    Field(examples=["1212"]),
]
Source = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=500),
    AfterValidator(no_nul),
    Field(description="Where the signer came from: free text or UTM parameters.", examples=["utm_source=x"]),
]


class SignatureFields(BaseModel):
    """The fields of one signature, shared by the public form, the native webhook batch and imports."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: SignerName
    email: Email | None = Field(
        default=None, description="Required unless the petition accepts signatures without email."
    )
    country: CountryCode
    postal_code: PostalCode | None = None
    language: LanguageTag | None = Field(default=None, description="BCP 47 tag of the signer's language.")
    opt_in: bool = Field(default=False, description="Explicit consent to receive campaign updates.")
    partner: Slug | None = Field(
        default=None, description="Slug of the member organisation that collected this signature."
    )
    source: Source | None = None


class SignatureIn(SignatureFields):
    website: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None,
        description="Honeypot: leave it out or empty. Hide it from people; bots fill it in. A signature with "
        "it filled in is answered like any other and never stored.",
    )


class SignatureAccepted(BaseModel):
    status: Literal["pending_confirmation", "received"] = Field(
        description="`pending_confirmation`: a confirmation email will be sent; `received`: recorded. "
        "The same answer whether or not this person had signed before."
    )


class PetitionCount(BaseModel):
    petition: uuid.UUID
    slug: str
    count: int = Field(description="Counted signatures: unique signers, by the petition's count policy.")
    goal: int | None
    updated_at: datetime = Field(description="When the count was computed.")


class CountryCount(BaseModel):
    country: str | None
    count: int


class PartnerCount(BaseModel):
    partner: str | None = Field(description="Organisation slug; null for signatures without a partner.")
    count: int


class DayCount(BaseModel):
    day: date
    count: int


class PetitionStats(BaseModel):
    petition: uuid.UUID
    count: int
    by_country: list[CountryCount]
    by_partner: list[PartnerCount]
    by_day: list[DayCount]
    updated_at: datetime


class ConfirmationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class ConfirmationStatus(BaseModel):
    status: Literal["confirmable", "confirmed"]
    petition: uuid.UUID
    petition_slug: str
    expires_at: datetime | None = None


class Confirmed(BaseModel):
    status: Literal["confirmed"] = "confirmed"
    petition: uuid.UUID
    petition_slug: str


# --- staff tools ----------------------------------------------------------------------------------------


class StaffSignatureRead(BaseModel):
    """One signature as staff see it. Personal data (name, email, postal code) is null once erased."""

    id: uuid.UUID
    created_at: datetime
    name: str | None
    email: str | None
    country: str | None
    postal_code: str | None
    language: str | None
    opt_in: bool
    partner: str | None = Field(description="Slug of the organisation that collected it.")
    source: str | None
    channel: Literal["web", "webhook", "import"]
    state: Literal["new", "unique", "duplicate", "review"]
    duplicate_of: uuid.UUID | None
    confirmed_at: datetime | None
    invalidated: bool
    erased: bool


class StaffSignaturePage(Page[StaffSignatureRead]):
    """A page of signatures, newest first."""


def _email_domain(value: str) -> str:
    # The domain as canonical emails hold it (lower case, IDNA-encoded).
    try:
        return canonical_email(f"x@{value}").rpartition("@")[2]
    except InvalidEmail:
        raise ValueError("not an email domain") from None


EmailDomain = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=253),
    AfterValidator(no_nul),
    AfterValidator(_email_domain),
    Field(examples=["example.org"], json_schema_extra={"format": "idn-hostname"}),
]
IpHash = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9a-f]{1,64}$")]


_INVALIDATION_FILTERS = ("email_domain", "ip_hash", "created_after", "created_before", "source")


class InvalidationIn(BaseModel):
    """Invalidate the signatures of a petition matching *all* the filters given (at least one)."""

    model_config = ConfigDict(
        extra="forbid",
        # At least one filter, not null: what `_some_filter` checks, said in the schema.
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                for name in _INVALIDATION_FILTERS
            ]
        },
    )

    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NOT_BLANK)
    ] = Field(description="Why: kept with the invalidation.", examples=["Bot wave from a throwaway domain"])
    email_domain: EmailDomain | None = Field(default=None, description="Signers' email domain (exact).")
    ip_hash: IpHash | None = Field(default=None, description="The keyed hash of the signers' address.")
    created_after: Instant | None = Field(default=None, description="Signed at or after (inclusive).")
    created_before: Instant | None = Field(default=None, description="Signed before (exclusive).")
    source: Source | None = Field(default=None, description="Exactly this source.")

    @model_validator(mode="after")
    def _some_filter(self) -> InvalidationIn:
        if not self.filters():
            raise ValueError(f"give at least one filter: {', '.join(_INVALIDATION_FILTERS)}")
        return self

    def filters(self) -> dict[str, str]:
        return self.model_dump(mode="json", exclude={"reason"}, exclude_none=True)


class InvalidationRead(BaseModel):
    id: uuid.UUID
    petition: uuid.UUID | None
    reason: str
    filters: dict[str, str]
    signatures: int = Field(description="How many signatures it invalidated.")
    created_at: datetime
    created_by: uuid.UUID | None
    reverted_at: datetime | None
    reverted_by: uuid.UUID | None


class InvalidationPage(Page[InvalidationRead]):
    """A page of invalidations, newest first."""
