"""The development mail catcher: a real SMTP server (aiosmtpd) that writes each message it receives to
``<LOOM_DATA_DIR>/mail/<timestamp>-<n>.eml`` instead of delivering it.

``loom run`` starts one in its own process when ``LOOM_SMTP_URL`` is unset (outside production) and
points the worker at it; ``loom mail list`` / ``loom mail show`` read the files. Only file names are
logged, never addresses. aiosmtpd is a development dependency: it is imported only when a catcher starts.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)


def mail_dir(data_dir: Path) -> Path:
    return data_dir / "mail"


class _WriteToFiles:
    """aiosmtpd handler: one ``.eml`` file per message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self._lock:
            number = next(self._numbers)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{number:05d}.eml"
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        log.info("mail caught: %s", path.name)
        return "250 OK: caught"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Catcher:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 0
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?starttls=off"

    def start(self) -> str:
        from aiosmtpd.controller import Controller

        # aiosmtpd logs every envelope (addresses included) at INFO on "mail.log": keep only its warnings.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port(self.host)
        self.controller = Controller(_WriteToFiles(self.directory), hostname=self.host, port=self.port)
        self.controller.start()
        return self.url

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# --- reading caught mail (loom mail) -------------------------------------------------------------------


def caught(directory: Path) -> list[Path]:
    """Caught messages, newest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.eml"), key=lambda p: p.name, reverse=True)


def raw(path: Path) -> str:
    """A caught message as received, with plain ``\n`` line ends: SMTP's CRLF would put a ``\r`` at the
    end of every line printed on a terminal (and of every link copied from it)."""
    return path.read_bytes().replace(b"\r\n", b"\n").decode("utf-8", errors="replace")


def read(path: Path) -> EmailMessage:
    """A caught message, parsed; its parts' text has plain ``\n`` line ends."""
    data = path.read_bytes().replace(b"\r\n", b"\n")
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, *, html: bool = False) -> str:
    part = message.get_body(preferencelist=("html",) if html else ("plain",))
    if part is None:
        return ""
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    return content if isinstance(content, str) else ""
