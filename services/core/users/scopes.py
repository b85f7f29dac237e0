"""API key scopes: the one list of what a machine client may be allowed to do.

A scope is ``<resource>:<read|write>``. An endpoint admits an API key only if it names a scope
(``require_roles(..., scope=Scope.organisations_read)``) and the key holds it; ``write`` does not imply
``read``. Add new scopes here (with a description) and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    organisations_read = "organisations:read"
    organisations_write = "organisations:write"
    coalitions_read = "coalitions:read"
    coalitions_write = "coalitions:write"
    network_read = "network:read"
    campaigns_read = "campaigns:read"
    campaigns_write = "campaigns:write"
    petitions_read = "petitions:read"
    petitions_write = "petitions:write"
    signatures_read = "signatures:read"
    signatures_write = "signatures:write"
    pledges_read = "pledges:read"
    pledges_write = "pledges:write"
    cases_read = "cases:read"
    cases_write = "cases:write"


SCOPE_DESCRIPTIONS: dict[Scope, str] = {
    Scope.organisations_read: "Read the directory of member organisations.",
    Scope.organisations_write: "Create and update member organisations.",
    Scope.coalitions_read: "Read coalitions and their memberships.",
    Scope.coalitions_write: "Create and update coalitions and their memberships.",
    Scope.network_read: "Read figures about the network.",
    Scope.campaigns_read: "Read campaigns.",
    Scope.campaigns_write: "Create and update campaigns.",
    Scope.petitions_read: "Read petitions and their public counts.",
    Scope.petitions_write: "Create and update petitions.",
    Scope.signatures_read: "Read and export signatures (personal data).",
    Scope.signatures_write: "Add signatures (e.g. an integrator's webhook).",
    Scope.pledges_read: "Read pledges.",
    Scope.pledges_write: "Create and update pledges.",
    Scope.cases_read: "Read worker cases (urgent appeals).",
    Scope.cases_write: "Create and update worker cases.",
}


def scopes_markdown() -> str:
    """The scopes as a Markdown list, for API descriptions."""
    return "\n".join(f"- `{scope.value}`: {SCOPE_DESCRIPTIONS[scope]}" for scope in Scope)
