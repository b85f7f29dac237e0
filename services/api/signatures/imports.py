"""Staff upload of a CSV of signatures (paper, bulk): the same import as ``loom import-signatures``.

The request body is the CSV itself (``Content-Type: text/csv``), read chunk by chunk as it arrives and
written in batches: a file of a million rows needs no more memory than one of ten. See
``services.core.signatures.imports`` for the rules (columns, closed petitions, rows without email).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from services.api.bodylimit import body_allowance
from services.api.deps import SessionDep, require_roles
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns.errors import CampaignArchived, PartnerOrganisationNotFound, PetitionNotFound
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.refs import Ref, RefText
from services.core.signatures import imports, policy
from services.core.signatures.errors import InvalidImportFile, UnsupportedImportType
from services.core.users.scopes import Scope
from services.core.users.security import Principal

router = make_router()

Importer = Annotated[Principal, Depends(require_roles(*policy.IMPORTERS, scope=Scope.signatures_write))]
_CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})


@router.post(
    "/v1/petitions/{petition}/imports",
    tags=["signatures"],
    response_model=imports.ImportReport,
    responses=problem_responses(
        Unauthenticated,
        InvalidToken,
        Forbidden,
        PetitionNotFound,
        PartnerOrganisationNotFound,
        CampaignArchived,
        InvalidImportFile,
        UnsupportedImportType,
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A UTF-8 CSV file with a header line; columns: " + ", ".join(imports.COLUMNS),
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **body_allowance(imports.MAX_UPLOAD_BYTES),
    },
    summary="Import signatures from a CSV file",
)
async def import_signatures(
    petition: Annotated[Ref, Path(description="The petition's id or slug.")],
    request: Request,
    session: SessionDep,
    principal: Importer,
    partner: Annotated[
        Annotated[Ref, RefText(max_length=200)] | None,
        Query(
            description="The member organisation (id or slug) that collected the signatures. Partners "
            "import for their own organisation only, which is the default for them.",
        ),
    ] = None,
    send_confirmation_mail: Annotated[
        bool,
        Query(
            description="Mail each row with an email a confirmation link. Imported signatures are "
            "attested by the organisation that collected them and count without it; confirming proves "
            "the address (needed for campaign updates)."
        ),
    ] = False,
) -> imports.ImportReport:
    """Import signatures from the CSV request body (columns `name`, `country` required; `email`,
    `postal_code`, `language`, `opt_in` (true/false/yes/no/1/0), `source` optional). Good rows are kept,
    bad rows are reported by line number with the reason. Closed petitions accept imports (paper collected
    earlier), and rows need no email even where the petition requires one online. The worker deduplicates
    imported signatures like any others; they are attested (vouched for by the organisation that
    collected them), so they count without confirmation, and get no confirmation mail unless
    `send_confirmation_mail` is set. Admins, coordinators, campaigners, and partners (for their
    organisation)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in _CSV_TYPES:
        raise UnsupportedImportType("Send the CSV file as the request body with Content-Type: text/csv.")
    target = await imports.resolve_target_for(session, principal, petition, partner)
    return await imports.import_csv(
        session, petition, request.stream(), target=target, send_confirmation_mail=send_confirmation_mail
    )
