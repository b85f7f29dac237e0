"""Request and response shapes of companies and facilities."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from typing_extensions import TypeAliasType

from services.core.network.schemas import CountryCode, Slug, Website
from services.core.refs import Ref, RefText
from services.core.registry.identifiers import LEI_PATTERN, OS_ID_PATTERN, normalise_lei, normalise_os_id
from services.core.registry.models import (
    CompanyKind,
    DisclosureFormat,
    DisclosureState,
    FacilityType,
    MatchMethod,
    ProcessingType,
    ProductType,
    RecordType,
    RowOutcome,
    WorkerBand,
)
from services.core.schemas import NOT_BLANK, Name, Page, Patch, no_nul

MAX_ALIASES = 50
FacilityName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=NOT_BLANK),
    AfterValidator(no_nul),
]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000), AfterValidator(no_nul)]
SourceLabel = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=NOT_BLANK),
    AfterValidator(no_nul),
    Field(
        description="Where the values sent come from (a report, a list, a visit), kept with each value's "
        "provenance besides who sent it.",
        examples=["Brand supplier list, retrieved 2026-11-30"],
    ),
]


def _unique_aliases(aliases: list[str]) -> list[str]:
    seen: set[str] = set()
    result = []
    for alias in aliases:
        if alias.casefold() not in seen:
            seen.add(alias.casefold())
            result.append(alias)
    return result


Aliases = Annotated[
    list[Name],
    Field(max_length=MAX_ALIASES, description="Other names it is known by (repeats are dropped)."),
    AfterValidator(_unique_aliases),
]
Lei = TypeAliasType(
    "Lei",
    Annotated[
        str,
        AfterValidator(normalise_lei),
        Field(
            description="Legal Entity Identifier (ISO 17442): 18 letters or digits and 2 check digits, "
            "checked (MOD 97-10); returned upper-case; unique.",
            examples=["5493001KJTIIGC8Y1R12"],
            min_length=20,
            max_length=20,
            json_schema_extra={"pattern": LEI_PATTERN},
        ),
    ],
)
OsId = TypeAliasType(
    "OsId",
    Annotated[
        str,
        AfterValidator(normalise_os_id),
        Field(
            description="Open Supply Hub's OS ID: country code, year and day of the year (7 digits), 5 "
            "Crockford base-32 characters and a check character, which is checked; hyphens between the "
            "parts are accepted; returned upper-case without them; unique.",
            examples=["BD2019189N7D07M"],
            min_length=15,
            max_length=18,
            json_schema_extra={"pattern": OS_ID_PATTERN},
        ),
    ],
)
ExternalId = Annotated[int, Field(ge=1, le=2**53)]
CompanyRefText = Annotated[
    Ref,
    RefText(strip_whitespace=True, min_length=1, max_length=100, pattern=NOT_BLANK),
    Field(description="A company's id or slug.", examples=["example-sportswear"]),
]
Latitude = Annotated[float, Field(ge=-90, le=90, description="WGS 84 degrees; with `longitude`.")]
Longitude = Annotated[float, Field(ge=-180, le=180, description="WGS 84 degrees; with `latitude`.")]
ProcessingTypes = Annotated[
    list[ProcessingType],
    Field(max_length=len(ProcessingType)),
    AfterValidator(lambda v: list(dict.fromkeys(v))),
]
ProductTypes = Annotated[
    list[ProductType], Field(max_length=len(ProductType)), AfterValidator(lambda v: list(dict.fromkeys(v)))
]
WORKER_BAND = (
    "Workers on site, in the Transparency Pledge's bands: ≤ 1,000, 1,001 to 5,000, 5,001 to 10,000, > 10,000."
)


def _coordinates_together(latitude: float | None, longitude: float | None, sent: set[str]) -> None:
    if ("latitude" in sent) != ("longitude" in sent) or (latitude is None) != (longitude is None):
        raise ValueError("latitude and longitude go together: send both, or both null")


# --- companies --------------------------------------------------------------------------------------


class CompanyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Unique, ignoring case, accents and punctuation.")
    slug: Slug | None = Field(default=None, description="Generated from the name when left out.")
    aliases: Aliases = Field(default_factory=list)
    kind: CompanyKind | None = None
    hq_country: CountryCode | None = Field(default=None, description="Headquarters (ISO 3166-1 alpha-2).")
    website: Website | None = None
    parent: CompanyRefText | None = Field(
        default=None, description="The group that owns it (id or slug); a group cannot own itself."
    )
    lei: Lei | None = None
    wikirate_id: ExternalId | None = Field(default=None, description="WikiRate's company id; unique.")
    os_hub_contributor_id: ExternalId | None = Field(
        default=None, description="Open Supply Hub's contributor id; unique."
    )
    source: SourceLabel | None = None


class CompanyUpdate(Patch):
    """Fields to change; ``null`` clears the optional ones. ``aliases`` is replaced whole."""

    NULLABLE = frozenset(
        {"kind", "hq_country", "website", "parent", "lei", "wikirate_id", "os_hub_contributor_id"}
    )

    name: Name | None = None
    slug: Slug | None = None
    aliases: Aliases | None = None
    kind: CompanyKind | None = None
    hq_country: CountryCode | None = None
    website: Website | None = None
    parent: CompanyRefText | None = None
    lei: Lei | None = None
    wikirate_id: ExternalId | None = None
    os_hub_contributor_id: ExternalId | None = None
    source: SourceLabel | None = None


class CompanyBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str


class CompanyRead(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    aliases: list[str]
    kind: CompanyKind | None
    hq_country: str | None = Field(description="ISO 3166-1 alpha-2, upper-case.")
    website: str | None
    parent: CompanyBrief | None = Field(description="The group that owns it.")
    lei: str | None
    wikirate_id: int | None
    os_hub_contributor_id: int | None
    created_at: datetime
    updated_at: datetime


class CompanyPage(Page[CompanyRead]):
    """A page of companies."""


@dataclass(frozen=True)
class CompanyFilters:
    q: str | None = None
    country: str | None = None
    kinds: tuple[CompanyKind, ...] = ()
    parent: Ref | None = None


# --- facilities -------------------------------------------------------------------------------------


class FacilityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: FacilityName
    native_name: FacilityName | None = Field(default=None, description="The name in the local script.")
    address: Address = ""
    country: CountryCode
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    parent_company: CompanyRefText | None = Field(
        default=None, description="The company that owns or runs the site (id or slug)."
    )
    facility_type: FacilityType | None = None
    processing_types: ProcessingTypes = Field(default_factory=list)
    product_types: ProductTypes = Field(default_factory=list)
    worker_band: WorkerBand | None = Field(default=None, description=WORKER_BAND)
    closed: bool = False
    aliases: Aliases = Field(default_factory=list)
    os_id: OsId | None = None
    source: SourceLabel | None = None

    @model_validator(mode="after")
    def _coordinates(self) -> FacilityCreate:
        sent = {n for n in ("latitude", "longitude") if getattr(self, n) is not None}
        _coordinates_together(self.latitude, self.longitude, sent)
        return self


class FacilityUpdate(Patch):
    """Fields to change; ``null`` clears the optional ones — ``null`` for ``latitude`` or ``longitude``
    clears both; a new one needs the other, sent or already there. Lists are replaced whole."""

    NULLABLE = frozenset(
        {"native_name", "latitude", "longitude", "parent_company", "facility_type", "worker_band", "os_id"}
    )

    name: FacilityName | None = None
    native_name: FacilityName | None = None
    address: Address | None = None
    country: CountryCode | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    parent_company: CompanyRefText | None = None
    facility_type: FacilityType | None = None
    processing_types: ProcessingTypes | None = None
    product_types: ProductTypes | None = None
    worker_band: WorkerBand | None = Field(default=None, description=WORKER_BAND)
    closed: bool | None = None
    aliases: Aliases | None = None
    os_id: OsId | None = None
    source: SourceLabel | None = None


class FacilityRead(BaseModel):
    id: uuid.UUID
    name: str
    native_name: str | None
    address: str
    country: str = Field(description="ISO 3166-1 alpha-2, upper-case.")
    latitude: float | None
    longitude: float | None
    parent_company: CompanyBrief | None
    facility_type: FacilityType | None
    processing_types: list[ProcessingType]
    product_types: list[ProductType]
    worker_band: WorkerBand | None = Field(description=WORKER_BAND)
    closed: bool
    aliases: list[str]
    os_id: str | None
    created_at: datetime
    updated_at: datetime


class FacilityPage(Page[FacilityRead]):
    """A page of facilities."""


@dataclass(frozen=True)
class FacilityFilters:
    q: str | None = None
    countries: tuple[str, ...] = ()
    os_id: str | None = None
    company: Ref | None = None
    closed: bool | None = None


# --- provenance -------------------------------------------------------------------------------------


class FieldSourceRead(BaseModel):
    """A value a field was given, and where it came from: the user or API key who sent it, the label
    they gave, or the disclosure it was read from."""

    model_config = ConfigDict(from_attributes=True)

    record_type: RecordType
    record_id: uuid.UUID
    field: str
    value: Any = Field(description="The value it was given (`null`: cleared).")
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    source_label: str | None
    disclosure_id: uuid.UUID | None
    recorded_at: datetime


class FieldSourcePage(Page[FieldSourceRead]):
    """A page of field values with their sources, newest first."""


# --- disclosures ------------------------------------------------------------------------------------


class SourcingRead(BaseModel):
    """A company that disclosed the facility as a supplier, and over which period."""

    company: CompanyBrief
    first_seen: date = Field(description="Retrieval date of the first list naming the facility.")
    last_seen: date = Field(description="Retrieval date of the latest list naming it.")


class FacilityWithSourcing(FacilityRead):
    sourced_by: list[SourcingRead] = Field(
        description="Companies whose published supplier lists name this facility, by name."
    )


class RowProblems(BaseModel):
    missing: int = 0
    invalid: int = 0


class DisclosureRead(BaseModel):
    id: uuid.UUID
    company: CompanyBrief
    url: str
    retrieved_on: date
    filename: str | None
    format: DisclosureFormat
    sha256: str = Field(description="SHA-256 of the file as uploaded (hex).")
    size_bytes: int
    row_count: int = Field(description="Data rows in the list (blank lines left out).")
    machine_readable: bool = Field(description="Read as a table with a recognised header.")
    state: DisclosureState
    rows_done: int = Field(description="Rows matched so far (of `row_count`).")
    outcomes: dict[RowOutcome, int] = Field(description="Rows per outcome so far.")
    problems: dict[str, RowProblems] = Field(
        description="Per Pledge field, how many rows lack it (`missing`) or have a value that cannot be "
        "read (`invalid`)."
    )
    error: str | None = Field(description="Why the worker could not read the list (state `failed`).")
    created_at: datetime
    processed_at: datetime | None


class DisclosurePage(Page[DisclosureRead]):
    """A page of a company's disclosures, newest first."""


class RowRead(BaseModel):
    disclosure_id: uuid.UUID
    row_number: int
    fields: dict[str, Any] = Field(description="The row in the Pledge's fields (`null`: missing).")
    problems: list[dict[str, str]]
    outcome: RowOutcome
    method: MatchMethod | None
    facility_id: uuid.UUID | None
    score: float | None


class ReviewRead(BaseModel):
    """A row whose best match is not sure enough: confirm it is the proposed facility, or reject it
    (a new facility is made from the row). Either is remembered for the company's later lists."""

    id: str = Field(description="`<disclosure id>:<row number>`")
    company: CompanyBrief
    disclosure_id: uuid.UUID
    row_number: int
    fields: dict[str, Any]
    candidate: FacilityRead | None
    score: float | None


class ReviewPage(Page[ReviewRead]):
    """A page of the review queue, oldest list first."""


class ReviewConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facility: uuid.UUID | None = Field(
        default=None, description="Another facility than the proposed one that the row is (its id)."
    )
