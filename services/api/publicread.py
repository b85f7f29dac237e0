"""Public reads: ``Cache-Control``, a strong ``ETag`` and 304s, and this process's cache of anonymous answers.

A route marked ``dependencies=[public_read(<domains>)]`` is answered by ``LoomRoute`` from here for callers
without credentials (kept until a write to one of its domains, services.core.generations); callers with
credentials get the endpoint's own answer, ``private, no-store``. Why and how: docs/caching.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from starlette.responses import Response
from starlette.types import Scope

from services.core.config import Settings
from services.core.generations import DOMAINS, Generations

PRIVATE = "private, no-store"
_CREDENTIALS = (b"authorization", b"x-api-key")


class PublicRead:
    """A route dependency that only marks the route as a public read of ``domains`` (it does nothing when
    called); ``languages``: the answer depends on ``Accept-Language``; ``clock``: on the time too (a
    petition's ``is_open``), so it is kept ``LOOM_PUBLIC_MAX_AGE`` seconds at most."""

    def __init__(self, domains: tuple[str, ...], languages: bool, clock: bool) -> None:
        unknown = set(domains) - set(DOMAINS)
        if not domains or unknown:
            raise ValueError(f"public_read needs domains among {DOMAINS}, not {sorted(unknown)}")
        self.domains = domains
        self.languages = languages
        self.clock = clock
        credentials = "Authorization, X-API-Key"
        self.vary = f"Accept-Language, {credentials}" if languages else credentials

    async def __call__(self) -> None:
        return None


def public_read(*domains: str, languages: bool = False, clock: bool = False) -> Any:
    """``dependencies=[public_read("campaigns", "network", languages=True)]`` on a GET route."""
    return Depends(PublicRead(tuple(domains), languages, clock))


NOT_MODIFIED = "Not modified: `If-None-Match` names this answer's `ETag` (anonymous callers)."


def openapi_extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    """What a public read's operation says in the OpenAPI: ``If-None-Match``, and the 200's caching
    headers (merged into what FastAPI generates: lists are appended, mappings merged)."""
    header = {"schema": {"type": "string"}}
    return {
        **(extra or {}),
        "parameters": [
            *(extra or {}).get("parameters", []),
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "An `ETag` of an earlier answer: 304 if the answer is still the same.",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": {
                "headers": {
                    "ETag": {"description": "A strong tag of this answer's bytes.", **header},
                    "Cache-Control": {
                        "description": "`public, max-age=…, stale-while-revalidate=…` to anonymous "
                        "callers; `private, no-store` to callers with credentials.",
                        **header,
                    },
                }
            }
        },
    }


def declared_public_read(dependant: Dependant) -> PublicRead | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, PublicRead):
            return dependency.call
        found = declared_public_read(dependency)
        if found is not None:
            return found
    return None


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: ``*`` or any listed tag, compared weakly (``W/`` ignored)."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


@dataclass(frozen=True, slots=True)
class Ask:
    """What a request's headers say that matters here, from one pass over them."""

    anonymous: bool
    if_none_match: str | None
    accept_language: str

    @classmethod
    def of(cls, scope: Scope) -> Ask:
        anonymous, if_none_match, accept_language = True, None, ""
        for name, value in scope["headers"]:
            if name in _CREDENTIALS:
                anonymous = False
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"accept-language":
                accept_language = value.decode("latin-1")
        return cls(anonymous, if_none_match, accept_language)


class KeptResponse(Response):
    """A kept answer, sent as is: its headers were encoded once, when it was kept."""

    def __init__(self, status_code: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = list(raw_headers)  # the middleware adds to the list it is sent


@dataclass(slots=True)
class Answer:
    """A public answer as sent: its body and headers (encoded), and the 304's headers."""

    body: bytes
    etag: str
    full: list[tuple[bytes, bytes]]
    not_modified: list[tuple[bytes, bytes]]
    tokens: tuple[int, ...] | None = None
    expires: float = 0.0

    @classmethod
    def of(cls, response: Response, spec: PublicRead, cache_control: str) -> Answer:
        body = bytes(response.body)
        etag = etag_of(body)
        validators = [
            (b"cache-control", cache_control.encode()),
            (b"vary", spec.vary.encode()),
            (b"etag", etag.encode()),
        ]
        language = response.headers.get("content-language")
        if language is not None:
            validators.append((b"content-language", language.encode("latin-1")))
        content_type = response.headers.get("content-type", "application/json").encode("latin-1")
        full = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            *validators,
        ]
        return cls(body, etag, full, validators)

    def response(self, ask: Ask) -> Response:
        if ask.if_none_match is not None and _matches(ask.if_none_match, self.etag):
            return KeptResponse(304, b"", self.not_modified)
        return KeptResponse(200, self.body, self.full)


Key = tuple[str, tuple[tuple[str, str], ...], str]


@dataclass(slots=True)
class Lookup:
    """A look-up that found nothing: where the answer goes once there is one."""

    key: Key
    tokens: tuple[int, ...]


class PublicCache:
    """This process's public answers, least recently used dropped first past ``max_entries`` or
    ``max_bytes``."""

    def __init__(self, settings: Settings, generations: Generations | None) -> None:
        self.generations = generations
        self.max_entries = settings.public_cache_entries
        self.max_bytes = settings.public_cache_bytes
        self.clock_ttl = float(settings.public_max_age)
        self.ttl = float(settings.public_cache_seconds)
        self.cache_control = (
            f"public, max-age={settings.public_max_age}, "
            f"stale-while-revalidate={settings.public_stale_while_revalidate}"
        )
        self._entries: OrderedDict[Key, Answer] = OrderedDict()
        self._bytes = 0
        self._pending: dict[Key, tuple[tuple[int, ...], asyncio.Future[Answer | None]]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def on(self) -> bool:
        return self.max_entries > 0 and self.generations is not None and self.generations.live

    def figures(self) -> dict[str, float]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "entries": len(self._entries),
            "bytes": self._bytes,
            "live": 1.0 if self.on else 0.0,
        }

    @staticmethod
    def key(scope: Scope, spec: PublicRead, ask: Ask) -> Key:
        query = scope["query_string"]
        items: tuple[tuple[str, str], ...] = ()
        if query:  # parsed as Starlette does, in order but for the names'; the cache-buster left out
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            items = tuple(sorted((item for item in pairs if item[0] != "_"), key=lambda item: item[0]))
        return (scope["path"], items, ask.accept_language if spec.languages else "")

    def lookup(self, scope: Scope, spec: PublicRead, ask: Ask) -> Response | Lookup | None:
        """The kept answer to an anonymous request; else where to keep it (None: no cache now).

        Only 200s are kept, so a kept answer's request passed the operation's checks, and so does any
        request of the same key (same path, parameters and values): hits skip them."""
        generations = self.generations
        if generations is None or self.max_entries <= 0:
            return None
        tokens = generations.snapshot(spec.domains)
        if tokens is None:
            return None
        key = self.key(scope, spec, ask)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.tokens == tokens and entry.expires > time.monotonic():
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.response(ask)
            self._drop(key)
        return Lookup(key, tokens)

    async def answer(
        self,
        spec: PublicRead,
        ask: Ask,
        found: Lookup | None,
        run: Callable[[], Awaitable[Response]],
    ) -> Response:
        """The anonymous answer after a look-up found nothing: shared with a request in flight, or run
        (and kept when ``found`` says where)."""
        if found is None or self.generations is None:  # no cache: the headers only
            response = await run()
            if response.status_code != 200:
                return response
            return Answer.of(response, spec, self.cache_control).response(ask)
        key, tokens = found.key, found.tokens
        pending = self._pending.get(key)
        if pending is not None and pending[0] == tokens:
            # Its read began after every write this request could know of: its answer will do, even if
            # a write commits meanwhile (that write is concurrent with this request).
            shared = await asyncio.shield(pending[1])
            if shared is not None:
                self.hits += 1
                return shared.response(ask)
        self.misses += 1
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = (tokens, future)
        kept: Answer | None = None
        try:
            response = await run()
            if response.status_code != 200:
                return response
            kept = Answer.of(response, spec, self.cache_control)
            kept.tokens = tokens
            kept.expires = time.monotonic() + (self.clock_ttl if spec.clock else self.ttl)
            if tokens == self.generations.snapshot(spec.domains):  # else a write came meanwhile
                self._keep(key, kept)
            return kept.response(ask)
        finally:
            if self._pending.get(key, (None, None))[1] is future:
                del self._pending[key]
            future.set_result(kept)

    def _keep(self, key: Key, answer: Answer) -> None:
        if answer.expires <= time.monotonic() or len(answer.body) > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = answer
        self._bytes += len(answer.body)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.body)

    def _drop(self, key: Key) -> None:
        dropped = self._entries.pop(key, None)
        if dropped is not None:
            self._bytes -= len(dropped.body)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


def private(response: Response) -> Response:
    response.headers["Cache-Control"] = PRIVATE
    return response
