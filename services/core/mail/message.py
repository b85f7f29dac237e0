"""Building the MIME message for an ``email_messages`` row, and keeping addresses out of error texts.

The ``Message-ID`` is derived from the row id (``<row-id@sender-domain>``) and the ``Date`` is when the
message was queued, so a message sent again after a crash is byte-for-byte the same message and mail
clients recognise the copy.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email._policybase import Compat32
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

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
    encoded_header: str  # the From header in ASCII (a non-ASCII name RFC 2047-encoded)

    @classmethod
    def parse(cls, mail_from: str) -> Sender:
        name, address = parseaddr(mail_from)
        if "@" not in address or not address.isascii():
            raise ValueError("LOOM_MAIL_FROM must contain an ASCII address")
        encoded = formataddr((name, address), charset="utf-8") if name else address
        return cls(mail_from, address, address.rpartition("@")[2].lower(), encoded)


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


class _Plain(Compat32):
    """compat32, writing a short ASCII header line as it is (the stock policy runs every header through
    the ``Header`` folding machinery, most of the cost of a message)."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii() and len(name) + len(value) < 76 and "\n" not in value:
            return f"{name}: {value}{self.linesep}"
        return str(super()._fold(name, value, sanitize))  # type: ignore[misc]


_FAST = _Plain(linesep="\r\n")  # headers kept as given (encoded here): no parse per header
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' (RFC 5322 field name)


def _header_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise InvalidMessage("invalid message (line break in a header)")
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name).encode()  # RFC 2047 encoded words


def _text_part(body: str, subtype: str) -> EmailMessage:
    part = EmailMessage(policy=_FAST)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    if body.isascii() and all(len(line) <= 990 for line in body.splitlines()):
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(body)
    else:
        part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(base64.encodebytes(body.encode("utf-8")).decode("ascii"))
    return part


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
    part with an HTML alternative. Raises ``InvalidMessage`` if it cannot be built.

    Built as an ``EmailMessage`` under the ``compat32`` policy with headers encoded here (RFC 2047 for
    non-ASCII text, base64 for non-ASCII bodies): the modern policy parses every header it is given and
    costs ten times as much, more than sending the message. Addresses that need SMTPUTF8 (a non-ASCII
    local part) go through the modern ``SMTPUTF8`` policy instead.
    """
    rcpt, utf8 = recipient(to_address)
    extra = {}
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name):
            raise InvalidMessage("invalid message (header name)")
        if name.lower() not in OWN_HEADERS:
            extra[name] = value
    if utf8:
        return Envelope(
            rcpt, True, _build_utf8(row_id, sender, rcpt, subject, text_body, html_body, extra, created_at)
        )
    try:
        msg = EmailMessage(policy=_FAST)
        msg["From"] = sender.encoded_header
        msg["To"] = rcpt
        msg["Subject"] = _header_value("Subject", subject)
        msg["Date"] = format_datetime(created_at)
        msg["Message-ID"] = message_id(row_id, sender.domain)
        for name, value in extra.items():
            msg[name] = _header_value(name, value)
        msg["MIME-Version"] = "1.0"
        text_part = _text_part(text_body, "plain")
        if html_body is None:
            for name, value in text_part.items():
                msg[name] = value
            msg.set_payload(text_part.get_payload())
        else:
            # Not random: a message sent again is the same bytes.
            msg["Content-Type"] = f'multipart/alternative; boundary="=_loom_{row_id.hex}"'
            msg.set_payload([text_part, _text_part(html_body, "html")])
        data = msg.as_bytes()
    except InvalidMessage:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise InvalidMessage(f"invalid message ({type(exc).__name__})") from exc
    return Envelope(rcpt, False, data)


def _build_utf8(
    row_id: uuid.UUID,
    sender: Sender,
    rcpt: str,
    subject: str,
    text_body: str,
    html_body: str | None,
    headers: Mapping[str, str],
    created_at: datetime,
) -> bytes:
    """The same message for an address that needs SMTPUTF8, with the email package's modern policy."""
    try:
        msg = EmailMessage(policy=policy.SMTPUTF8)
        msg["From"] = sender.header
        msg["To"] = rcpt
        msg["Subject"] = subject
        msg["Date"] = format_datetime(created_at)
        msg["Message-ID"] = message_id(row_id, sender.domain)
        for name, value in headers.items():
            msg[name] = value
        msg.set_content(text_body)
        if html_body is not None:
            msg.add_alternative(html_body, subtype="html")
            msg.set_boundary(f"=_loom_{row_id.hex}")
        return msg.as_bytes()
    except (ValueError, TypeError, IndexError) as exc:  # header injection, unparseable address…
        raise InvalidMessage(f"invalid message ({type(exc).__name__})") from exc
