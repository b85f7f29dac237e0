"""Signatures delivered by integrations: Loom's native batch or an Action Network webhook array, stored with
one ``INSERT … SELECT FROM unnest(…)`` statement.

Each item is validated on its own (errors never quote personal data); ``(integration_id, external_id)``
makes a retried delivery store nothing new. Delivered signatures are attested.
docs/signatures.md, "Webhooks in".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import jsonbody
from services.core.campaigns.schemas import LanguageTag
from services.core.campaigns.window import ensure_open_for_signing
from services.core.errors import Conflict, LoomError
from services.core.integrations.models import Integration
from services.core.refs import Ref
from services.core.schemas import no_nul
from services.core.signatures import store
from services.core.signatures.models import Channel
from services.core.signatures.schemas import SignatureFields
from services.core.signatures.store import PreparedSignature

MAX_ITEMS = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024

ExternalId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(no_nul),
    Field(description="The integrator's id of this signature: a retry with the same id is not stored twice."),
]


class WebhookUnsigned(LoomError):
    """A delivery without the Standard Webhooks headers: it has no credentials at all."""

    status = 401
    code = "webhook-unsigned"
    title = "The webhook-id, webhook-timestamp and webhook-signature headers are required"


class WebhookPayloadInvalid(LoomError):
    status = 422
    code = "webhook-payload-invalid"
    title = "The body is neither a native signature batch nor an Action Network webhook array"


class WebhookBatchTooLarge(LoomError):
    status = 422
    code = "webhook-batch-too-large"
    title = f"A delivery holds at most {MAX_ITEMS} items"


class WebhookBodyTooLarge(LoomError):
    status = 413
    code = "payload-too-large"
    title = "The body is too large"


class IntegrationWithoutPetition(Conflict):
    code = "integration-without-petition"
    title = "The integration has no default petition"


# --- the native batch ----------------------------------------------------------------------------------


class WebhookSignature(SignatureFields):
    """One signature of a native batch: the fields of the public form and the integrator's id."""

    external_id: ExternalId


class WebhookBatch(BaseModel):
    """Loom's native batch: up to 1,000 signatures for the integration's petition."""

    model_config = ConfigDict(extra="forbid")

    signatures: list[WebhookSignature] = Field(max_length=MAX_ITEMS)


# --- Action Network (only what Loom reads; everything else is ignored) ------------------------------------


class _AN(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ANEmailAddress(_AN):
    address: str | None = None
    primary: bool = False


class ANPostalAddress(_AN):
    postal_code: str | None = None
    country: str | None = None
    primary: bool = False


class ANPerson(_AN):
    given_name: str | None = None
    family_name: str | None = None
    email_addresses: list[ANEmailAddress] = []
    postal_addresses: list[ANPostalAddress] = []
    languages_spoken: list[str] = []


class ANReferrerData(_AN):
    source: str | None = None


class ANSponsor(_AN):
    title: str | None = None


class ANSignature(_AN):
    identifiers: list[str] = []
    person: ANPerson
    add_tags: list[str] = []
    referrer_data: ANReferrerData | None = Field(default=None, alias="action_network:referrer_data")


class ANElement(_AN):
    """One element of an Action Network webhook array. Only ``osdi:signature`` elements are stored."""

    signature: ANSignature | None = Field(default=None, alias="osdi:signature")
    sponsor: ANSponsor | None = Field(default=None, alias="action_network:sponsor")
    idempotency_key: str | None = None


# --- results ---------------------------------------------------------------------------------------------


class ItemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ItemResult(BaseModel):
    index: int = Field(description="The item's position in the delivered batch or array (from 0).")
    external_id: str | None
    status: Literal["accepted", "duplicate", "invalid", "ignored"] = Field(
        description="`accepted`: stored now; `duplicate`: this integration already delivered this "
        "external id (a retry), nothing stored; `invalid`: not stored, see `errors`; `ignored`: an Action "
        "Network element that is not a signature."
    )
    errors: list[ItemError] = []


class WebhookTotals(BaseModel):
    accepted: int = 0
    duplicate: int = 0
    invalid: int = 0
    ignored: int = 0


class WebhookResult(BaseModel):
    status: Literal["processed", "replayed"] = Field(
        description="`replayed`: this `webhook-id` was received before; the delivery is ignored."
    )
    format: Literal["native", "action_network"] | None = None
    results: list[ItemResult] = []
    totals: WebhookTotals = WebhookTotals()


REPLAYED = WebhookResult(status="replayed")


# --- parsing ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    index: int
    external_id: str | None
    fields: SignatureFields | None = None
    errors: list[ItemError] | None = None
    ignored: bool = False


def _errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[ItemError]:
    return [
        ItemError(
            loc=[*prefix, *(p if isinstance(p, int) else str(p) for p in e["loc"])],
            msg=e["msg"],
            type=e["type"],
        )
        for e in exc.errors(include_input=False, include_url=False)
    ]


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) and "\x00" not in value else None


def _external_id(value: Any) -> str | None:
    found = _text(value)
    return found if found is not None and len(found) <= 200 else None


def _native(index: int, raw: Any) -> _Item:
    external_id = _external_id(raw.get("external_id")) if isinstance(raw, dict) else None
    try:
        item = WebhookSignature.model_validate(raw)
    except ValidationError as exc:
        return _Item(index, external_id, errors=_errors(exc))
    return _Item(index, item.external_id, fields=item)  # a WebhookSignature is a SignatureFields


def _primary(items: list[Any]) -> Any:
    return next((i for i in items if i.primary), items[0] if items else None)


_LANGUAGE = TypeAdapter(LanguageTag)


def _source(element: ANElement, signature: ANSignature) -> str | None:
    parts: list[tuple[str, str]] = []
    if signature.referrer_data and signature.referrer_data.source:
        parts.append(("source", signature.referrer_data.source))
    if element.sponsor and element.sponsor.title:
        parts.append(("sponsor", element.sponsor.title))
    tags = [t for t in signature.add_tags if isinstance(t, str) and t]
    if tags:
        parts.append(("tags", ",".join(tags)))
    return urlencode(parts)[:500] or None


def _action_network(index: int, raw: Any) -> _Item:
    if not isinstance(raw, dict) or "osdi:signature" not in raw:
        return _Item(index, None, ignored=True)
    key = _external_id(raw.get("idempotency_key"))
    try:
        element = ANElement.model_validate(raw)
    except ValidationError as exc:
        return _Item(index, key, errors=_errors(exc))
    signature = element.signature
    assert signature is not None
    if key is None:
        ids = [i for i in signature.identifiers if isinstance(i, str)]
        key = _external_id(next((i for i in ids if i.startswith("action_network:")), ids[0] if ids else None))
    if key is None:
        return _Item(
            index,
            None,
            errors=[
                ItemError(
                    loc=["idempotency_key"],
                    msg="An idempotency_key or an identifier is needed.",
                    type="missing",
                )
            ],
        )
    person = signature.person
    email = _primary(person.email_addresses)
    postal = _primary(person.postal_addresses)
    language = None
    if person.languages_spoken:
        try:
            language = _LANGUAGE.validate_python(person.languages_spoken[0])
        except ValidationError:
            language = None  # an unusual language never costs a signature
    fields = {
        "name": " ".join(n.strip() for n in (person.given_name, person.family_name) if n and n.strip()),
        "email": email.address if email else None,
        "country": postal.country.upper() if postal and postal.country else None,
        "postal_code": postal.postal_code if postal else None,
        "language": language,
        "source": _source(element, signature),
    }
    try:
        parsed = SignatureFields.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        return _Item(index, key, errors=_errors(exc, ("osdi:signature", "person")))
    return _Item(index, key, fields=parsed)


def parse(body: bytes) -> tuple[Literal["native", "action_network"], list[_Item]]:
    """The delivery's format and its items, each valid (with ``fields``), invalid or ignored."""
    if len(body) > MAX_BODY_BYTES:
        raise WebhookBodyTooLarge(f"A delivery is at most {MAX_BODY_BYTES} bytes.")
    try:
        data = jsonbody.loads(body)  # NUL characters are refused per item, like any other bad field
    except ValueError as exc:
        raise WebhookPayloadInvalid(f"The body is not JSON: {exc}.") from None
    if isinstance(data, dict) and isinstance(data.get("signatures"), list) and set(data) == {"signatures"}:
        items, kind = data["signatures"], "native"
    elif isinstance(data, list):
        items, kind = data, "action_network"
    else:
        raise WebhookPayloadInvalid('Send {"signatures": [...]} or an Action Network webhook array.')
    if len(items) > MAX_ITEMS:
        raise WebhookBatchTooLarge(f"{len(items)} items; send at most {MAX_ITEMS} per delivery.")
    if kind == "native":
        return "native", [_native(i, raw) for i, raw in enumerate(items)]
    return "action_network", [_action_network(i, raw) for i, raw in enumerate(items)]


# --- storing ---------------------------------------------------------------------------------------------


async def _open_petition(session: AsyncSession, integration: Integration) -> store.SigningPetition:
    if integration.default_petition_id is None:
        raise IntegrationWithoutPetition("Set the integration's default petition first.")
    found = await store.signing_petition(session, Ref.of_id(integration.default_petition_id))
    if found is None:  # pragma: no cover - the foreign key sets default_petition_id to null
        raise IntegrationWithoutPetition("Set the integration's default petition first.")
    ensure_open_for_signing(found.status, found.opens_at, found.closes_at, found.now)
    return found


def _invalid(item: _Item, loc: str, msg: str, kind: str) -> None:
    item.errors = [ItemError(loc=[loc], msg=msg, type=kind)]
    item.fields = None


async def ingest(session: AsyncSession, integration: Integration, body: bytes) -> WebhookResult:
    """Parse and store a delivery for ``integration`` (already verified): one insert for all valid items.
    Raises for the whole request when the body is not a delivery or the petition does not accept
    signatures."""
    kind, items = parse(body)
    petition = await _open_petition(session, integration)
    valid = [item for item in items if item.fields is not None]
    partners = await store.organisation_ids(
        session, sorted({item.fields.partner for item in valid if item.fields and item.fields.partner})
    )
    rows: list[store.BatchRow] = []
    seen: set[str] = set()
    first: set[int] = set()
    for item in valid:
        fields = item.fields
        assert fields is not None
        assert item.external_id is not None
        if fields.partner is not None and fields.partner not in partners:
            _invalid(
                item, "partner", f"No member organisation has the slug {fields.partner!r}.", "unknown_partner"
            )
            continue
        if fields.email is None and petition.email_required:
            _invalid(item, "email", "This petition needs an email address.", "missing")
            continue
        if item.external_id in seen:
            continue  # delivered twice in one batch: the later ones are duplicates
        seen.add(item.external_id)
        first.add(item.index)
        organisation = partners[fields.partner] if fields.partner else integration.organisation_id
        rows.append(store.BatchRow(PreparedSignature.of(fields), organisation, item.external_id))
    batch = store.Batch(
        channel=Channel.webhook,
        petition_id=petition.id,
        consent_version=petition.consent_version,
        send_confirmation_mail=integration.send_confirmation_mail,
        integration_id=integration.id,
    )
    inserted = await store.insert_batch(session, batch, rows)
    totals = WebhookTotals()
    results: list[ItemResult] = []
    for item in items:
        if item.ignored:
            status: Literal["accepted", "duplicate", "invalid", "ignored"] = "ignored"
        elif item.fields is None:
            status = "invalid"
        elif item.index in first and item.external_id in inserted:
            status = "accepted"
        else:
            status = "duplicate"
        setattr(totals, status, getattr(totals, status) + 1)
        results.append(
            ItemResult(
                index=item.index, external_id=item.external_id, status=status, errors=item.errors or []
            )
        )
    return WebhookResult(status="processed", format=kind, results=results, totals=totals)
