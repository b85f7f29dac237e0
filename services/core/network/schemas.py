"""Request and response shapes of the network directory."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, ClassVar

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypeAliasType

from services.core.db.unique import is_uuid
from services.core.network.models import MembershipStatus, OrganisationKind
from services.core.refs import SLUG_MAX_LENGTH, SLUG_PATTERN, Ref
from services.core.schemas import (
    HTTP_URL_PATTERN,
    NOT_BLANK,
    Name,
    Page,
    Patch,
    no_nul,
)


def _country(value: str) -> str:
    code = value.strip().upper()
    if code not in _COUNTRY_SET:  # a set look-up: pycountry's own takes ~10 µs, per signature
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _slug(value: str) -> str:
    if is_uuid(value):
        raise ValueError("a slug must not look like an id (UUID)")
    return value


COUNTRY_CODES = tuple(sorted(country.alpha_2 for country in pycountry.countries))
_COUNTRY_SET = frozenset(COUNTRY_CODES)
CountryCode = TypeAliasType(
    "CountryCode",
    Annotated[
        str,
        AfterValidator(_country),
        Field(
            description="ISO 3166-1 alpha-2 country code; accepted in any case, returned upper-case.",
            examples=["BD"],
            min_length=2,
            max_length=2,
            json_schema_extra={"enum": list(COUNTRY_CODES)},
        ),
    ],
)
# What `_slug` refuses, for the JSON schema: a slug that is also an id — 32 hex digits, hyphens between.
_NOT_AN_ID = r"(?!(?:[0-9a-f]-?){31}[0-9a-f]$)"
Slug = TypeAliasType(
    "Slug",
    Annotated[
        str,
        StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=SLUG_MAX_LENGTH),
        AfterValidator(_slug),
        Field(
            description="Lower-case letters, digits and single hyphens, not shaped like an id (UUID); "
            "unique.",
            examples=["sramik-awaaz"],
            json_schema_extra={"pattern": "^" + _NOT_AN_ID + SLUG_PATTERN[1:]},
        ),
    ],
)
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NOT_BLANK),
    AfterValidator(no_nul),
]
RegionText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NOT_BLANK),
    AfterValidator(no_nul),
]
LongText = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(no_nul)]
WEBSITE_MAX_LENGTH = 500


_http_url: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _website(value: str) -> str:
    try:
        url = str(_http_url.validate_python(value))
    except ValidationError as exc:
        raise ValueError("must be an http(s) URL, e.g. https://example.org/") from exc
    if len(url) > WEBSITE_MAX_LENGTH:
        raise ValueError(f"URLs longer than {WEBSITE_MAX_LENGTH} characters are not accepted")
    return url


Website = Annotated[
    str,
    AfterValidator(_website),
    Field(
        description="An http(s) URL; stored normalised.",
        examples=["https://example.org/"],
        max_length=WEBSITE_MAX_LENGTH,
        json_schema_extra={"format": "uri", "pattern": HTTP_URL_PATTERN},
    ),
]


# --- organisations ----------------------------------------------------------------------------------


class OrganisationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    slug: Slug | None = Field(default=None, description="Generated from the name when left out.")
    kind: OrganisationKind
    country: CountryCode
    city: ShortText | None = None
    website: Website | None = None
    status: MembershipStatus = MembershipStatus.active
    joined_on: date | None = Field(default=None, description="When the organisation joined the network.")
    description: LongText = Field(default="", description="Public description.")


class OrganisationUpdate(Patch):
    """Fields to change. Partners may only change their own organisation's public fields
    (``PARTNER_FIELDS``); ``status``, ``slug`` and ``joined_on`` are for coordinators and admins."""

    NULLABLE = frozenset({"city", "website", "joined_on"})
    PARTNER_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"name", "kind", "country", "city", "website", "description"}
    )

    name: Name | None = None
    slug: Slug | None = None
    kind: OrganisationKind | None = None
    country: CountryCode | None = None
    city: ShortText | None = None
    website: Website | None = None
    status: MembershipStatus | None = None
    joined_on: date | None = None
    description: LongText | None = None


class CoalitionRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    is_regional: bool


class OrganisationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    kind: OrganisationKind
    country: str = Field(description="ISO 3166-1 alpha-2, upper-case.")
    city: str | None
    website: str | None
    status: MembershipStatus
    joined_on: date | None
    description: str
    coalitions: list[CoalitionRef] = Field(default_factory=list, description="Coalitions it belongs to.")
    created_at: datetime
    updated_at: datetime


# --- coalitions -------------------------------------------------------------------------------------


class CoalitionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    slug: Slug | None = Field(default=None, description="Generated from the name when left out.")
    region: RegionText | None = None
    description: LongText = ""


class CoalitionUpdate(Patch):
    """Fields to change. Regional coalitions keep their name, slug and region."""

    NULLABLE = frozenset({"region"})
    REGIONAL_FIXED: ClassVar[frozenset[str]] = frozenset({"name", "slug", "region"})

    name: Name | None = None
    slug: Slug | None = None
    region: RegionText | None = None
    description: LongText | None = None


class CoalitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    region: str | None
    description: str
    is_regional: bool = Field(description="One of the network's regional coalitions (cannot be deleted).")
    created_at: datetime
    updated_at: datetime


class MembershipWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    joined_on: date | None = Field(default=None, description="When the organisation joined the coalition.")


class MembershipRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    coalition_id: uuid.UUID
    organisation_id: uuid.UUID
    joined_on: date | None
    created_at: datetime


# --- lists and figures ------------------------------------------------------------------------------


class OrganisationPage(Page[OrganisationRead]):
    """A page of organisations."""


class CoalitionPage(Page[CoalitionRead]):
    """A page of coalitions."""


@dataclass(frozen=True)
class OrganisationFilters:
    countries: tuple[str, ...] = ()
    kinds: tuple[OrganisationKind, ...] = ()
    statuses: tuple[MembershipStatus, ...] = ()
    coalition: Ref | None = None
    q: str | None = None


class CoalitionFigures(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    is_regional: bool
    organisations: int = Field(description="Active member organisations.")
    countries: int = Field(description="Countries of its active member organisations.")


class NetworkStats(BaseModel):
    organisations: int = Field(description="Active member organisations in the network.")
    countries: int = Field(description="Countries with at least one active member organisation.")
    coalitions: list[CoalitionFigures]
