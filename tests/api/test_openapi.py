"""The OpenAPI document: readable, unique operation ids, a summary on every operation, errors as
problem details, and the committed file equal to the generated one."""

from __future__ import annotations

import json

from services.api.openapi import render_openapi
from services.cli import OPENAPI_PATH

DOCUMENT = json.loads(render_openapi())
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in {"get", "post", "put", "patch", "delete"}
]


def test_the_committed_document_is_up_to_date() -> None:
    assert OPENAPI_PATH.read_text() == render_openapi(), "run `make openapi` and commit the result"


def test_operation_ids_are_unique_and_readable() -> None:
    ids = [operation["operationId"] for _, _, operation in OPERATIONS]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert operation_id.replace("-", "").isalnum(), operation_id
        assert len(operation_id) <= 60, operation_id  # no path-derived monsters


def test_every_operation_has_a_summary_and_a_tag() -> None:
    for path, method, operation in OPERATIONS:
        assert operation.get("summary"), f"{method.upper()} {path}"
        assert operation.get("tags"), f"{method.upper()} {path}"


def test_every_error_response_is_a_problem() -> None:
    for path, method, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            if status[0] in "45":
                assert list(response["content"]) == ["application/problem+json"], (path, method, status)
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]


# Writes open to anyone: signing, confirming (and, later, unsubscribing) need no credentials.
PUBLIC_WRITES = {
    ("post", "/v1/petitions/{petition}/signatures"),
    ("post", "/v1/signatures/confirm"),
    ("post", "/v1/unsubscribe"),  # RFC 8058 one-click: no login by design
}


# Writes authenticated by Standard Webhooks signatures, not by users or API keys: 401 only, never 403.
SIGNED_WEBHOOKS = {("post", "/v1/webhooks/signatures")}


def test_writes_declare_their_auth_errors() -> None:
    for path, method, operation in OPERATIONS:
        if (method, path) in SIGNED_WEBHOOKS:
            assert "401" in operation["responses"], f"{method.upper()} {path}"
        elif (method, path) in PUBLIC_WRITES:
            assert not {"401", "403"} & set(operation["responses"]), f"{method.upper()} {path}"
        elif method != "get" and path.startswith("/v1/") and not path.startswith("/v1/auth/"):
            assert {"401", "403"} <= set(operation["responses"]), f"{method.upper()} {path}"
