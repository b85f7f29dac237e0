"""A real SMTP server for tests (aiosmtpd in a thread of its own, so it never shares the test's event loop),
recording what it receives and refusing on demand.

    server.messages          received messages (parsed), in order; .message_ids, .recipients
    server.connections       connections opened so far
    server.refuse(addr, "550 5.1.1 No such user")   refuse RCPT TO for addr (until .accept(addr))
    server.refuse_all("451 4.3.0 Try later")         refuse every RCPT (None: accept again)
    server.delay = 0.05      seconds spent on each message before accepting it
    server.stop() / .start() stop listening (connections refused) and start again on the same port

The ``smtp_server`` fixture (tests/conftest.py) yields one, started; ``server.url`` is its LOOM_SMTP_URL.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    data: bytes

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.server.refused.get(address.lower(), self.server.refuse_every)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        hook = self.server.before_accept
        if hook is not None:
            await hook(len(self.server.messages) + 1)
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        if server.transport is None or server.transport.is_closing():
            return "451 connection lost"  # the client is gone: it never learns of acceptance; keep nothing
        if self.server.refuse_data is not None:
            return self.server.refuse_data
        data = envelope.original_content or envelope.content
        parsed = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(parsed, EmailMessage)
        with self.server.lock:
            self.server.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, data))
        return "250 OK: queued"


class _Counting(SMTP):
    def __init__(self, owner: SmtpServer, *args: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():  # AUTH without TLS: deliberate, on loopback, in tests
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(*args, **kwargs)
        self._owner = owner

    def connection_made(self, transport: Any) -> None:
        with self._owner.lock:
            self._owner.connections += 1
        super().connection_made(transport)


class _Controller(Controller):
    def __init__(self, owner: SmtpServer, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        return _Counting(self._owner, self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class SmtpServer:
    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, *, credentials: tuple[str, str] | None = None
    ) -> None:
        self.host = host
        # With credentials, the server offers AUTH (without TLS, for tests) and refuses mail until a
        # client logs in with them; .logins records who did.
        self.credentials = credentials
        self.logins: list[str] = []
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.connections = 0
        self.refused: dict[str, str] = {}
        self.refuse_every: str | None = None
        self.refuse_data: str | None = None
        self.delay = 0.0
        # Awaited (in the server's loop) with the message's number before each message is accepted.
        self.before_accept: Callable[[int], Any] | None = None
        self._controller: _Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?starttls=off"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is None:
            auth: dict[str, Any] = {}
            if self.credentials is not None:
                auth = {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}
            with warnings.catch_warnings():  # AUTH without TLS: deliberate, on loopback, in tests
                warnings.simplefilter("ignore", UserWarning)
                self._controller = _Controller(
                    self, hostname=self.host, port=self.port, enable_SMTPUTF8=True, **auth
                )
            with self.lock:
                before = self.connections
            self._controller.start()
            with self.lock:  # aiosmtpd connects once itself to check the server is up: not a client
                self.connections = before

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        if (user, password) != self.credentials:
            return AuthResult(success=False, handled=False)
        self.logins.append(user)
        return AuthResult(success=True)

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.connections = 0
        self.refused.clear()
        self.refuse_every = self.refuse_data = None
        self.delay = 0.0
        self.before_accept = None

    def refuse(self, address: str, reply: str) -> None:
        self.refused[address.lower()] = reply

    def accept(self, address: str) -> None:
        self.refused.pop(address.lower(), None)

    def refuse_all(self, reply: str | None) -> None:
        self.refuse_every = reply

    @property
    def message_ids(self) -> list[str]:
        with self.lock:
            return [m.message_id for m in self.messages]

    @property
    def recipients(self) -> list[str]:
        with self.lock:
            return [r for m in self.messages for r in m.recipients]

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` messages arrived (for subprocess tests)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} messages arrived")
            time.sleep(0.02)
