"""Signatures delivered by integrations: ``POST /v1/webhooks/signatures?integration=<id>``.

Authenticated per integration with Standard Webhooks headers over the raw body, then parsed
(:mod:`services.core.signatures.ingest`); the ``webhook-id`` replay record and the signatures share the
request's transaction, so a delivery refused as a whole is processed on retry. docs/signatures.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import TypeAdapter

from services.api.bodylimit import body_allowance
from services.api.deps import SessionDep
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns.errors import PetitionClosed
from services.core.integrations import repository as integrations
from services.core.integrations.errors import (
    WebhookHeadersMalformed,
    WebhookHeadersMissing,
    WebhookSignatureInvalid,
    WebhookTimestampOutOfTolerance,
)
from services.core.integrations.webhooks import remember_webhook_id, valid_secrets, verify_webhook
from services.core.signatures import ingest
from services.core.signatures.ingest import (
    ANElement,
    IntegrationWithoutPetition,
    WebhookBatch,
    WebhookBatchTooLarge,
    WebhookBodyTooLarge,
    WebhookPayloadInvalid,
    WebhookResult,
    WebhookUnsigned,
)

router = make_router()


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references inlined (the request body is documented by hand, since it
    is read raw)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]


_BODY_SCHEMA = _inlined(TypeAdapter(WebhookBatch | list[ANElement]).json_schema(by_alias=True))
# Read by verify_webhook, not by FastAPI (whose 422 would replace the Standard Webhooks problems).
_SIGNATURE_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "description": "The message's id, the same on retries.",
        "schema": {"type": "string"},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "description": "When it was signed, in Unix seconds.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "description": "One or more space-separated `v1,<base64>` signatures.",
        "schema": {"type": "string"},
    },
]


@router.post(
    "/v1/webhooks/signatures",
    tags=["webhooks"],
    response_model=WebhookResult,
    responses=problem_responses(
        WebhookUnsigned,
        WebhookHeadersMalformed,
        WebhookSignatureInvalid,
        WebhookTimestampOutOfTolerance,
        IntegrationWithoutPetition,
        PetitionClosed,
        WebhookBodyTooLarge,
        WebhookPayloadInvalid,
        WebhookBatchTooLarge,
    ),
    summary="Deliver signatures from an integration",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}},
        "parameters": _SIGNATURE_HEADERS,
        **body_allowance(ingest.MAX_BODY_BYTES),
    },
)
async def deliver_signatures(
    integration: Annotated[uuid.UUID, Query(description="The id of the integration delivering.")],
    request: Request,
    session: SessionDep,
) -> WebhookResult:
    """Signatures from an integrator, signed with the integration's secret by
    [Standard Webhooks](https://www.standardwebhooks.com/) (`webhook-id`, `webhook-timestamp` within five
    minutes, `webhook-signature`). An unknown or inactive integration gets the same 401 as a bad
    signature. A `webhook-id` received before is acknowledged with `"status": "replayed"` and ignored.

    The body is Loom's native batch `{"signatures": [{"external_id", …fields of signing}]}` or an Action
    Network webhook array (`osdi:signature` elements; others are reported as `ignored`); at most 1,000
    items, all for the integration's default petition and attributed to its organisation (unless a
    native item names a `partner`). Every item gets a result: `accepted`, `duplicate` (this integration
    already delivered its external id, or the Action Network `idempotency_key`: nothing stored),
    `invalid` (with `errors`; the valid items are kept) or `ignored`."""
    body = await request.body()  # at most MAX_BODY_BYTES: the route's body allowance
    now = datetime.now(UTC)
    found = await integrations.get_integration(session, integration)
    usable = found is not None and found.active
    try:
        webhook_id = verify_webhook(
            valid_secrets(found, now) if found and usable else [], request.headers, body, now
        )
    except WebhookHeadersMissing as exc:  # no credentials at all: a 401, like any unauthenticated call
        raise WebhookUnsigned(exc.detail, **exc.extra) from None
    assert found is not None  # verify_webhook refuses every signature without a secret
    if not await remember_webhook_id(session, found.id, webhook_id):
        return ingest.REPLAYED
    return await ingest.ingest(session, found, body)
