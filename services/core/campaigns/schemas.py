"""Request and response shapes of campaigns and petitions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from typing_extensions import TypeAliasType

from services.core.campaigns.languages import MAX_TAG_LENGTH, TAG_PATTERN, normalise_tag
from services.core.campaigns.models import CampaignStatus, CountPolicy, PartnerRole
from services.core.network.schemas import Slug
from services.core.refs import Ref, RefText
from services.core.registry.schemas import CompanyBrief, CompanyRefText
from services.core.schemas import NOT_BLANK, Instant, Page, Patch, no_nul

LanguageTag = TypeAliasType(
    "LanguageTag",
    Annotated[
        str,
        AfterValidator(normalise_tag),
        Field(
            description="A BCP 47 language tag of registered subtags; stored in its canonical form "
            "(`pt-br` → `pt-BR`).",
            examples=["en", "pt-BR"],
            min_length=2,
            max_length=MAX_TAG_LENGTH,
            json_schema_extra={"pattern": TAG_PATTERN},
        ),
    ],
)
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=NOT_BLANK),
    AfterValidator(no_nul),
]
Summary = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000), AfterValidator(no_nul)]
Body = Annotated[str, StringConstraints(max_length=100_000), AfterValidator(no_nul)]
Demand = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000, pattern=NOT_BLANK),
    AfterValidator(no_nul),
]
CompanyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NOT_BLANK),
    AfterValidator(no_nul),
]
ConsentText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000, pattern=NOT_BLANK),
    AfterValidator(no_nul),
]
OrganisationRefText = Annotated[
    Ref,
    RefText(strip_whitespace=True, min_length=1, max_length=100, pattern=NOT_BLANK),
    Field(description="The organisation's id or slug.", examples=["sramik-awaaz"]),
]

MAX_LANGUAGES = 50
MAX_DEMANDS = 50
MAX_TARGETS = 100
MAX_PARTNERS = 500


def canonical_language_keys(translations: dict[str, Any]) -> dict[str, Any]:
    """Language keys in canonical form; two keys naming the same language are refused."""
    result: dict[str, Any] = {}
    for key, value in translations.items():
        tag = normalise_tag(key)
        if tag in result:
            raise ValueError(f"the language {tag!r} is given twice")
        result[tag] = value
    return result


def _check_default(default: str | None, translations: dict[str, Any] | None) -> None:
    if default is not None and translations is not None and default not in translations:
        raise ValueError(f"translations must include the default language {default!r}")


# --- campaigns --------------------------------------------------------------------------------------


class CampaignText(BaseModel):
    """A campaign's texts in one language."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    summary: Summary = ""
    body: Body = Field(default="", description="The campaign's page (Markdown).")


# Keys of texts by language are checked by `canonical_language_keys`, after the dict is built, so that
# `pt-br` and `pt-BR` given together are refused rather than merged; the schema gives them a tag's shape.
LANGUAGE_KEYS: dict[str, Any] = {
    "propertyNames": {"pattern": TAG_PATTERN, "minLength": 2, "maxLength": MAX_TAG_LENGTH}
}

CampaignTranslations = Annotated[
    dict[str, CampaignText],
    Field(
        min_length=1,
        max_length=MAX_LANGUAGES,
        json_schema_extra=LANGUAGE_KEYS,
        description="Texts by BCP 47 language tag; must include the default language.",
        examples=[{"en": {"title": "Pay your workers", "summary": "…", "body": "…"}}],
    ),
    AfterValidator(
        canonical_language_keys
    ),  # after the size limits, which then say minProperties in the schema
]


class PartnerWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: OrganisationRefText
    role: PartnerRole = PartnerRole.partner


def _unique_partners(partners: list[PartnerWrite]) -> list[PartnerWrite]:
    refs = [p.organisation for p in partners]
    if len(refs) != len(set(refs)):
        raise ValueError("an organisation is listed twice")
    return partners


Partners = Annotated[
    list[PartnerWrite],
    AfterValidator(_unique_partners),
    Field(max_length=MAX_PARTNERS, description="Member organisations running the campaign, in order."),
]
Demands = Annotated[list[Demand], Field(max_length=MAX_DEMANDS, description="The demands, in order.")]
TARGET_NAMES = (
    "Deprecated (use `targets`; kept for one version): names of the companies targeted. A name matching "
    "a company's (ignoring case, accents and punctuation) targets it; any other becomes a new company."
)
Targets = Annotated[list[CompanyName], Field(max_length=MAX_TARGETS, description=TARGET_NAMES)]


def _unique_refs(refs: list[Ref]) -> list[Ref]:
    return list(dict.fromkeys(refs))


TargetRefs = Annotated[
    list[CompanyRefText],
    AfterValidator(_unique_refs),
    Field(
        max_length=MAX_TARGETS,
        description="The companies targeted, by id or slug (see `/v1/companies`), in order. Sent with "
        "`target_companies`, those named there follow.",
    ),
]


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug | None = Field(default=None, description="Generated from the default title when left out.")
    default_language: LanguageTag
    translations: CampaignTranslations
    demands: Demands = Field(default_factory=list)
    targets: TargetRefs = Field(default_factory=list)
    target_companies: Targets = Field(default_factory=list, json_schema_extra={"deprecated": True})
    partners: Partners = Field(default_factory=list)

    @model_validator(mode="after")
    def _default_present(self) -> CampaignCreate:
        _check_default(self.default_language, self.translations)
        return self


class CampaignUpdate(Patch):
    """Fields to change. ``translations``, ``demands``, ``targets`` (with or without the deprecated
    ``target_companies``) and ``partners`` replace the whole list or map; the translations must then
    include the (new or current) default language."""

    slug: Slug | None = None
    default_language: LanguageTag | None = None
    translations: CampaignTranslations | None = None
    demands: Demands | None = None
    targets: TargetRefs | None = None
    target_companies: Targets | None = Field(default=None, json_schema_extra={"deprecated": True})
    partners: Partners | None = None

    @model_validator(mode="after")
    def _default_present(self) -> CampaignUpdate:
        _check_default(self.default_language, self.translations)
        return self


class OrganisationBrief(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    country: str


class PartnerRead(BaseModel):
    organisation: OrganisationBrief
    role: PartnerRole


class CampaignRead(BaseModel):
    """A campaign with its texts in one language: the one asked for (``?lang=`` or
    ``Accept-Language``) when available, else the default language."""

    id: uuid.UUID
    slug: str
    status: CampaignStatus
    language: str = Field(description="The language of `title`, `summary` and `body`.")
    languages: list[str] = Field(description="Every language the campaign is available in.")
    default_language: str
    title: str
    summary: str
    body: str
    demands: list[str]
    targets: list[CompanyBrief] = Field(description="The companies targeted, in order.")
    target_companies: list[str] = Field(
        description="Deprecated (use `targets`; kept for one version): the targeted companies' names.",
        json_schema_extra={"deprecated": True},
    )
    partners: list[PartnerRead]
    published_at: datetime | None
    closed_at: datetime | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignTranslationsRead(BaseModel):
    default_language: str
    translations: dict[str, CampaignText]


class CampaignPage(Page[CampaignRead]):
    """A page of campaigns."""


@dataclass(frozen=True)
class CampaignFilters:
    statuses: tuple[CampaignStatus, ...] = ()
    organisation: Ref | None = None  # a partner organisation
    q: str | None = None


# --- petitions --------------------------------------------------------------------------------------


class PetitionText(BaseModel):
    """A petition's texts in one language."""

    model_config = ConfigDict(extra="forbid")

    title: Title


PetitionTranslations = Annotated[
    dict[str, PetitionText],
    Field(
        min_length=1,
        max_length=MAX_LANGUAGES,
        json_schema_extra=LANGUAGE_KEYS,
        description="Texts by BCP 47 language tag; must include the default language.",
        examples=[{"en": {"title": "Sign for the workers"}}],
    ),
    AfterValidator(
        canonical_language_keys
    ),  # after the size limits, which then say minProperties in the schema
]
Goal = Annotated[int, Field(ge=1, le=1_000_000_000, description="Signatures aimed for.")]


def _check_window(opens_at: datetime | None, closes_at: datetime | None) -> None:
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise ValueError("closes_at must be after opens_at")


COUNT_POLICY = (
    "Which signatures count (each person once, however often and however spelled they sign): "
    "`confirmed` (the default) counts web signatures once confirmed by email (double opt-in), and "
    "signatures from an import or an integration at once — they are attested by the organisation that "
    "collected them, and are mailed no confirmation unless the import or integration asks; `all_unique` "
    "counts every signer at once."
)


class PetitionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign: OrganisationRefText = Field(description="The campaign's id or slug.", examples=["pay-up"])
    slug: Slug | None = Field(default=None, description="Generated from the default title when left out.")
    default_language: LanguageTag
    translations: PetitionTranslations
    goal: Goal | None = None
    consent_text: ConsentText = Field(description="What signers agree to; its version starts at 1.")
    email_required: bool = True
    count_policy: CountPolicy = Field(default=CountPolicy.confirmed, description=COUNT_POLICY)
    opens_at: Instant | None = Field(default=None, description="Signing opens (open now when null).")
    closes_at: Instant | None = Field(
        default=None, description="Signing closes, after `opens_at` (never when null)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PetitionCreate:
        _check_default(self.default_language, self.translations)
        _check_window(self.opens_at, self.closes_at)
        return self


class PetitionUpdate(Patch):
    """Fields to change; `null` clears `goal`, `opens_at` or `closes_at`. A new `consent_text` gets the
    next consent version (earlier versions are kept)."""

    NULLABLE = frozenset({"goal", "opens_at", "closes_at"})

    slug: Slug | None = None
    default_language: LanguageTag | None = None
    translations: PetitionTranslations | None = None
    goal: Goal | None = None
    consent_text: ConsentText | None = None
    email_required: bool | None = None
    count_policy: CountPolicy | None = Field(default=None, description=COUNT_POLICY)
    opens_at: Instant | None = None
    closes_at: Instant | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PetitionUpdate:
        _check_default(self.default_language, self.translations)
        _check_window(self.opens_at, self.closes_at)
        return self


class CampaignBrief(BaseModel):
    id: uuid.UUID
    slug: str
    status: CampaignStatus


class PetitionRead(BaseModel):
    id: uuid.UUID
    slug: str
    campaign: CampaignBrief
    language: str = Field(description="The language of `title`.")
    languages: list[str]
    default_language: str
    title: str
    goal: int | None
    consent_text: str
    consent_version: int = Field(description="Signatures record the version their signer agreed to.")
    email_required: bool
    count_policy: CountPolicy = Field(description=COUNT_POLICY)
    opens_at: datetime | None
    closes_at: datetime | None
    is_open: bool = Field(description="Whether the petition accepts signatures right now.")
    created_at: datetime
    updated_at: datetime


class PetitionTranslationsRead(BaseModel):
    default_language: str
    translations: dict[str, PetitionText]


class ConsentVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    text: str
    created_at: datetime


class PetitionPage(Page[PetitionRead]):
    """A page of petitions."""


@dataclass(frozen=True)
class PetitionFilters:
    campaign: Ref | None = None
    q: str | None = None
