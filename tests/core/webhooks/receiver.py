"""A real HTTP receiver for webhook tests: a ``ThreadingHTTPServer`` on 127.0.0.1 that verifies every
request's Standard Webhooks signature with the secrets it is given (using the ``standardwebhooks``
package, as a receiver would) and answers with the statuses it is told to, in order."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_with: list[str]  # the secrets whose signature matched
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    secrets: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order; then ``default``
    default: int = 200
    answer_body: bytes = b'{"ok": true}'
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)  # set by every request

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else self.default

    def verify(self, headers: dict[str, str], body: bytes) -> list[str]:
        matched = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            matched.append(secret)
        return matched

    @property
    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified_with]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.next_status()
            with receiver.lock:
                receiver.received.append(Received(headers, body, receiver.verify(headers, body), status))
            receiver.arrived.set()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("location", receiver.url)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(receiver.answer_body)))
            self.end_headers()
            self.wfile.write(receiver.answer_body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def running_receiver(*, tls: tuple[str, str] | None = None, **options: Any) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 (a free port) for the duration of the block; with ``tls``
    (certificate and key files, for the name ``localhost``) it speaks https at ``https://localhost:…``."""
    receiver = Receiver(url="", **options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    port = server.server_address[1]
    receiver.url = f"http://127.0.0.1:{port}/hooks?source=loom"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        receiver.url = f"https://localhost:{port}/hooks?source=loom"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
