"""Public reads: HTTP caching headers, ``If-None-Match``, and this process's cache of anonymous answers.

A route marks itself with ``dependencies=[public_read("network", ...)]``, naming the domains its answer
shows (services.core.generations). ``LoomRoute`` then, for anonymous callers (no ``Authorization``, no
``X-API-Key``):

- answers from this process's cache when an answer to the same path, query and ``Accept-Language`` was
  kept under the domains' current generations (no session, no dependencies, no serialisation);
- else runs the endpoint once per key and generations at a time (requests asking meanwhile share its
  answer) and keeps a 200 under the generations read *before* the endpoint ran, so a write committed
  meanwhile makes it stale at once;
- sends ``Cache-Control: public, max-age, stale-while-revalidate``, ``Vary`` and a strong ``ETag``
  (a hash of the body), and answers ``If-None-Match`` with 304.

Callers with credentials get the endpoint's own answer (staff see drafts) with ``Cache-Control:
private, no-store``: nothing that depends on who asks is kept or shared. docs/caching.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from starlette.requests import Request
from starlette.responses import Response

from services.core.config import Settings
from services.core.generations import DOMAINS, Generations

PRIVATE = "private, no-store"
_CREDENTIALS = (b"authorization", b"x-api-key")
_KEPT_HEADERS = ("content-type", "content-language")


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


@dataclass(slots=True)
class Answer:
    """A public answer as sent: body, the endpoint's headers worth keeping, and its validators."""

    body: bytes
    headers: dict[str, str]
    tokens: tuple[int, ...] | None = None
    expires: float = 0.0

    @classmethod
    def of(cls, response: Response, spec: PublicRead, cache_control: str) -> Answer:
        body = bytes(response.body)
        headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        headers["Cache-Control"] = cache_control
        headers["Vary"] = spec.vary
        headers["ETag"] = etag_of(body)
        return cls(body, headers)

    def response(self, request: Request) -> Response:
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and _matches(if_none_match, self.headers["ETag"]):
            headers = {k: v for k, v in self.headers.items() if k != "content-type"}
            return Response(status_code=304, headers=headers)
        return Response(self.body, headers=self.headers)


Key = tuple[str, str, str]


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

    @staticmethod
    def key(request: Request, spec: PublicRead) -> Key:
        query = request.scope["query_string"]
        if query:
            items = sorted(
                ((n, v) for n, v in request.query_params.multi_items() if n != "_"), key=lambda i: i[0]
            )
            query_key = "&".join(f"{n}={v}" for n, v in items)
        else:
            query_key = ""
        language = request.headers.get("accept-language", "") if spec.languages else ""
        return (request.scope["path"], query_key, language)

    async def answer(
        self, request: Request, spec: PublicRead, run: Callable[[], Awaitable[Response]]
    ) -> Response:
        """The anonymous answer to ``request``: kept, shared with a request in flight, or run."""
        generations = self.generations
        tokens = None
        if generations is not None and self.max_entries > 0:
            tokens = generations.snapshot(spec.domains)
        if generations is None or tokens is None:  # no cache: the headers only
            return self._answer_of(await run(), spec, request)
        key = self.key(request, spec)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.tokens == tokens and entry.expires > time.monotonic():
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.response(request)
            self._drop(key)
        pending = self._pending.get(key)
        if pending is not None and pending[0] == tokens:
            # Its read began after every write this request could know of: its answer will do, even if
            # a write commits meanwhile (that write is concurrent with this request).
            shared = await asyncio.shield(pending[1])
            if shared is not None:
                self.hits += 1
                return shared.response(request)
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
            if tokens == generations.snapshot(spec.domains):  # else a write came meanwhile: don't keep
                self._keep(key, kept)
            return kept.response(request)
        finally:
            if self._pending.get(key, (None, None))[1] is future:
                del self._pending[key]
            future.set_result(kept)

    def _answer_of(self, response: Response, spec: PublicRead, request: Request) -> Response:
        if response.status_code != 200:
            return response
        return Answer.of(response, spec, self.cache_control).response(request)

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


def anonymous(request: Request) -> bool:
    return not any(name in _CREDENTIALS for name, _ in request.scope["headers"])


def private(response: Response) -> Response:
    response.headers["Cache-Control"] = PRIVATE
    return response
