"""The SMTP server Loom sends through, from ``LOOM_SMTP_URL`` (``smtp://`` with STARTTLS ``auto``,
``required`` or ``off``, ``smtps://`` for TLS from the first byte, ``verify=false`` for development).

``LOOM_SMTP_PASSWORD`` overrides the URL's password; credentials are never logged
(:meth:`SmtpConfig.describe` and ``repr`` leave them out). docs/email.md, "The SMTP server".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from services.core.config import Settings


class StartTls(StrEnum):
    auto = "auto"  # upgrade when the server offers STARTTLS
    required = "required"  # fail (transiently) when it does not
    off = "off"


class InvalidSmtpUrl(ValueError):
    pass


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: StartTls = StartTls.auto
    verify: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, *, password: str | None = None, timeout: float = 30.0) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise InvalidSmtpUrl("LOOM_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise InvalidSmtpUrl("LOOM_SMTP_URL has no host")
        options = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
        unknown = set(options) - {"starttls", "verify"}
        if unknown:
            raise InvalidSmtpUrl(f"unknown LOOM_SMTP_URL option(s): {', '.join(sorted(unknown))}")
        implicit = parts.scheme == "smtps"
        try:
            starttls = StartTls(options.get("starttls", "off" if implicit else "auto"))
        except ValueError as exc:
            raise InvalidSmtpUrl("starttls must be auto, required or off") from exc
        if implicit and starttls is not StartTls.off:
            raise InvalidSmtpUrl("smtps:// is TLS already; starttls applies to smtp:// only")
        verify = options.get("verify", "true")
        if verify not in ("true", "false", "1", "0", "yes", "no"):
            raise InvalidSmtpUrl("verify must be true or false")
        try:
            port = parts.port or (465 if implicit else 25)
        except ValueError as exc:
            raise InvalidSmtpUrl("LOOM_SMTP_URL has an invalid port") from exc
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=implicit,
            starttls=starttls,
            verify=verify in ("true", "1", "yes"),
            username=unquote(parts.username) if parts.username else None,
            password=password
            if password is not None
            else (unquote(parts.password) if parts.password else None),
            timeout=timeout,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """The configured server, or None when ``LOOM_SMTP_URL`` is unset."""
        if settings.smtp_url is None:
            return None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls.from_url(
            settings.smtp_url.get_secret_value(), password=password, timeout=settings.smtp_timeout_seconds
        )

    def describe(self) -> str:
        """The server for logs and messages: scheme, host and port, never credentials."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"

    def client(self) -> aiosmtplib.SMTP:
        """A (not yet connected) client for this server."""
        start_tls: bool | None = {StartTls.auto: None, StartTls.required: True, StartTls.off: False}[
            self.starttls
        ]
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.implicit_tls,
            start_tls=False if self.implicit_tls else start_tls,
            validate_certs=self.verify,
            timeout=self.timeout,
        )
