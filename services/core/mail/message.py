"""Building the MIME message for an ``email_messages`` row, and keeping addresses out of error texts.

The ``Message-ID`` is derived from the row id (``<row-id@sender-domain>``) and the ``Date`` is when the
message was queued, so a message sent again after a crash is byte-for-byte the same message and mail
clients recognise the copy.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import idna

# Headers the sender writes itself; a row's extra headers cannot replace them.
OWN_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "sender",
        "return-path",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)

_ADDRESS = re.compile(r"[^\s<>\"'()\[\],;:]+@[^\s<>\"'()\[\],;:]+")


def scrub(text: str, limit: int = 300) -> str:
    """``text`` (an SMTP reply, an exception message) with anything like an email address replaced, for
    ``last_error`` and logs: servers like to quote the recipient."""
    return _ADDRESS.sub("<address>", " ".join(text.split()))[:limit]


class InvalidMessage(ValueError):
    """The row cannot become a message (an unusable address or header); sending it again won't help."""


@dataclass(frozen=True)
class Sender:
    """``LOOM_MAIL_FROM``, parsed once: the From header, the envelope sender and the Message-ID domain."""

    header: str
    address: str
    domain: str

    @classmethod
    def parse(cls, mail_from: str) -> Sender:
        _, address = parseaddr(mail_from)
        if "@" not in address:
            raise ValueError("LOOM_MAIL_FROM must contain an address")
        return cls(mail_from, address, address.rpartition("@")[2].lower())


@dataclass(frozen=True)
class Envelope:
    recipient: str  # as given to RCPT TO (the domain in its ASCII form)
    smtputf8: bool  # the address's local part is not ASCII: needs the SMTPUTF8 extension
    data: bytes


def message_id(row_id: uuid.UUID, domain: str) -> str:
    return f"<{row_id}@{domain}>"


def recipient(to_address: str) -> tuple[str, bool]:
    """The envelope recipient (IDNA domain) and whether it needs SMTPUTF8."""
    local, at, domain = to_address.strip().rpartition("@")
    if not at or not local or not domain:
        raise InvalidMessage("invalid recipient address")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidMessage("invalid recipient domain") from exc
    return f"{local}@{domain}", not local.isascii()


def build(
    *,
    row_id: uuid.UUID,
    sender: Sender,
    to_address: str,
    subject: str,
    text_body: str,
    html_body: str | None,
    headers: Mapping[str, str] | None,
    created_at: datetime,
) -> Envelope:
    """The message for a row: From, To, Subject, Date, Message-ID, the row's extra headers, and a text
    part with an HTML alternative. Raises ``InvalidMessage`` if it cannot be built."""
    rcpt, utf8 = recipient(to_address)
    try:
        msg = EmailMessage(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
        msg["From"] = sender.header
        msg["To"] = rcpt
        msg["Subject"] = subject
        msg["Date"] = format_datetime(created_at)
        msg["Message-ID"] = message_id(row_id, sender.domain)
        for name, value in (headers or {}).items():
            if name.lower() not in OWN_HEADERS:
                msg[name] = value
        msg.set_content(text_body)
        if html_body is not None:
            msg.add_alternative(html_body, subtype="html")
            msg.set_boundary(f"=_loom_{row_id.hex}")  # not random: a resend is the same bytes
        data = msg.as_bytes()
    except (ValueError, TypeError, IndexError) as exc:  # header injection, unparseable address…
        raise InvalidMessage(f"invalid message ({type(exc).__name__})") from exc
    return Envelope(rcpt, utf8, data)
