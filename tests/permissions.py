"""The shape of the permission matrix: one ``Case`` per endpoint, saying which callers may use it.

Callers are the staff roles plus ``anonymous``. A caller *not* in ``allowed`` must get 401 (anonymous)
or 403 (authenticated) as problem details; a caller in ``allowed`` must get neither.
A case with ``refused`` set expects that status from *every* caller not allowed, authenticated or not
(e.g. 401 for an endpoint authenticated by webhook signatures, where a user's token is no credential).
Paths may hold placeholders filled by the matrix's fixture: ``{own_org}`` (the partner caller's
organisation), ``{other_org}`` (another organisation), ``{coalition}``, ``{user}``, ``{api_key}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CALLERS = ("anonymous", "admin", "coordinator", "campaigner", "case_worker", "partner")
EVERYONE = frozenset(CALLERS)
STAFF = EVERYONE - {"anonymous"}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    allowed: frozenset[str]
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    note: str = field(default="", compare=False)
    refused: int | None = field(default=None, compare=False)
