"""Loom's settings, read from the environment (``LOOM_`` prefix, plus ``DATABASE_URL``/``REDIS_URL``).

Every setting is listed, with its default, in the README. Placeholder secrets are refused when
``LOOM_ENV=production``; elsewhere an unset ``LOOM_SECRET_KEY`` is the data directory's own secret,
made once (:func:`development_secret`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-in-production"  # noqa: S105 - a known placeholder, refused in production
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET_FILE = "secret_key"  # noqa: S105 - the name of the file under LOOM_DATA_DIR, not a secret
MIN_SECRET_LENGTH = 32  # HS256 wants a key of at least 32 bytes (RFC 7518 §3.2)


def development_secret(data_dir: Path) -> str:
    """The secret of a development data directory: 48 random bytes (URL-safe text) made on first use and
    kept in ``<data_dir>/secret_key`` (mode 0600), so tokens and links outlive a restart and every Loom
    process using the directory signs alike. Processes starting together agree on one: each writes its
    candidate to a file of its own and hard-links it into place, and only the first link succeeds."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        candidate = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_urlsafe(48) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            candidate.unlink()
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path} holds no usable secret: delete it and Loom makes a new one")
    return secret


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOM_", extra="ignore", env_file=None)

    env: Environment = Environment.development

    database_url: Annotated[
        str | None,
        Field(validation_alias=AliasChoices("DATABASE_URL", "LOOM_DATABASE_URL")),
    ] = None
    redis_url: Annotated[
        str | None,
        Field(validation_alias=AliasChoices("REDIS_URL", "LOOM_REDIS_URL")),
    ] = None

    # Where the embedded PostgreSQL and Redis keep their data when no URL is configured.
    data_dir: Path = PROJECT_ROOT / ".loom"

    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=14, ge=1, le=365)

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_echo: bool = False

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # `loom serve` runs this many API processes (uvicorn workers) on one port; about one per core.
    api_workers: int = Field(default=1, ge=1, le=64)
    public_url: str = "http://127.0.0.1:8000"
    cors_origins: list[str] = []
    # Largest request body accepted, in bytes (routes that take uploads declare their own allowance).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Reverse proxies (addresses or CIDR networks, JSON list) whose X-Forwarded-For / X-Forwarded-Proto are
    # believed: the client address for per-address limits is then the one they forwarded. None by default:
    # a forwarded header from anyone else is ignored, so rotating it cannot lift a limit.
    trusted_proxies: list[str] = []
    # When set, GET /metrics needs "Authorization: Bearer <this token>".
    metrics_token: SecretStr | None = None
    # FastAPI's built-in OpenTelemetry (traces, metrics, logs through the globally configured providers).
    # Off by default: Loom's own metrics are Prometheus (GET /metrics), and with it on, every request asks
    # whether a provider is configured (about 5 % of a cached public read's time).
    opentelemetry: bool = False

    log_level: str = "INFO"
    log_json: bool = True

    worker_max_jobs: int = Field(default=200, ge=1)
    worker_poll_delay: float = Field(default=0.05, gt=0)
    worker_job_timeout: int = Field(default=300, ge=1)
    worker_max_tries: int = Field(default=8, ge=1)
    # Transient failures are retried after base * 2**(attempt-1) seconds (capped), jittered to 50-100 %.
    worker_retry_base_seconds: float = Field(default=1.0, gt=0)
    worker_retry_max_seconds: float = Field(default=300.0, gt=0)
    # The worker refreshes a health key in Redis this often; `loom worker --check` reads it.
    worker_health_check_seconds: int = Field(default=30, ge=1)
    outbox_relay_seconds: int = Field(default=10, ge=1)
    outbox_relay_batch: int = Field(default=500, ge=1)
    # The relay leaves jobs younger than this to the request that wrote them (it publishes after commit).
    outbox_publish_grace_seconds: float = Field(default=5.0, ge=0)
    # Jobs published this long ago but neither completed nor failed are published again (Redis lost them?).
    outbox_republish_after_seconds: float = Field(default=600.0, ge=0)
    # Completed jobs are deleted after this many days; failed ones are kept for inspection.
    outbox_retention_days: int = Field(default=7, ge=1)

    login_rate_limit: str = "10/minute"

    # Public signing rate limits (``limits`` notation, e.g. "20/minute; 200/hour"; empty turns one off):
    # per client address (hashed), per email domain, per petition.
    signing_rate_limit_ip: str = "20/minute"
    signing_rate_limit_email_domain: str = "3000/minute"
    signing_rate_limit_petition: str = "60000/minute"
    # The worker's signature pipeline: how often it looks for new signatures, how many it deduplicates
    # per transaction, and for how long one tick may keep taking batches before refreshing counts.
    signature_pipeline_seconds: float = Field(default=0.25, gt=0)
    signature_batch_size: int = Field(default=5000, ge=1, le=100_000)
    signature_pipeline_budget_seconds: float = Field(default=3.0, gt=0)
    # Each API process keeps a petition's public count this long before asking Redis again (0: always ask).
    count_memo_seconds: float = Field(default=1.0, ge=0)
    # Public petition statistics are cached this long (in Redis; while the public read cache is on,
    # each API process keeps them until a write changes them instead).
    stats_cache_seconds: int = Field(default=30, ge=0)

    # Public reads (docs/caching.md): what anonymous answers say to browsers and CDNs (`max-age`,
    # `stale-while-revalidate`), and this process's cache of them, kept until a write changes their data
    # or `public_cache_seconds` have passed (answers that follow the clock, a petition's `is_open`:
    # `public_max_age`). 0 entries turns the process cache off (the headers stay).
    public_max_age: int = Field(default=5, ge=0, le=3600)
    public_stale_while_revalidate: int = Field(default=30, ge=0, le=86400)
    public_cache_seconds: float = Field(default=300.0, ge=0)
    public_cache_entries: int = Field(default=10_000, ge=0)
    public_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # How often each API process checks its connection listening for writes (and the generations).
    public_cache_poll_seconds: float = Field(default=5.0, gt=0)
    # Where that connection goes, when DATABASE_URL points at a pool that cannot LISTEN (PgBouncer in
    # transaction mode): PostgreSQL itself, the primary. Unset: DATABASE_URL.
    public_cache_listen_url: str | None = None

    # After a rotation, an integration's previous webhook secret is still accepted this long.
    webhook_secret_grace_hours: int = Field(default=24, ge=0, le=24 * 30)

    # Outbound webhooks (services/core/webhooks): URLs resolving to private, loopback, link-local,
    # multicast or reserved addresses are refused unless this is set (tests and local development).
    webhooks_allow_private_urls: bool = False
    # One attempt may take this long (connect, send, first bytes of the answer).
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Failed deliveries are retried for this long, after base * 2**(attempt-1) seconds (capped), jittered.
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # An endpoint whose every attempt failed for this long is disabled and its owner emailed.
    webhook_disable_after_hours: float = Field(default=120.0, gt=0)
    # The worker looks for due deliveries this often, takes up to a batch, and sends that many at once.
    webhook_poll_seconds: float = Field(default=0.5, gt=0)
    webhook_batch_size: int = Field(default=100, ge=1, le=10_000)
    webhook_concurrency: int = Field(default=20, ge=1, le=1000)
    # Events (with their deliveries and attempts) are deleted this long after they happened, once no
    # delivery of theirs is pending.
    webhook_retention_days: int = Field(default=30, ge=1)

    # Outgoing mail (services/core/mail/smtp.py): smtp://[user[:password]@]host[:port][?starttls=auto|required|off]
    # or smtps://… (implicit TLS); ``verify=false`` skips certificate checks (development only). Unset:
    # `loom run` catches mail in LOOM_DATA_DIR/mail; a lone worker leaves it queued.
    smtp_url: SecretStr | None = None
    smtp_password: SecretStr | None = None  # overrides the URL's password (keeps it out of the URL)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    mail_from: str = "Loom <no-reply@loom.localhost>"
    # The sender: messages per batch (one transaction claims them, one connection sends them), the poll
    # that backs up LISTEN/NOTIFY, and how long a claimed batch is left alone by other senders.
    mail_batch_size: int = Field(default=100, ge=1, le=10_000)
    mail_poll_seconds: float = Field(default=5.0, gt=0)
    mail_lease_seconds: float = Field(default=300.0, ge=5)
    # An idle SMTP connection is closed after this long.
    mail_idle_seconds: float = Field(default=30.0, gt=0)
    # Transient failures (4xx, connection lost mid-message): retried after base * 2**(attempt-1) seconds,
    # capped, jittered to 50-100 %; failed for good after this many attempts or once this old.
    mail_retry_base_seconds: float = Field(default=30.0, gt=0)
    mail_retry_max_seconds: float = Field(default=3600.0, gt=0)
    mail_max_attempts: int = Field(default=10, ge=1)
    mail_max_age_hours: float = Field(default=48.0, gt=0)
    # The whole server unreachable: the sender pauses (doubling up to this), messages keep their attempts.
    mail_server_backoff_max_seconds: float = Field(default=60.0, gt=0)
    # Rate limits across all workers (Redis; not applied while Redis is down). 0: no limit.
    mail_rate_per_second: int = Field(default=200, ge=0)
    mail_rate_per_domain_per_minute: int = Field(default=6000, ge=0)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Settings:
        # A sender stops starting messages `smtp timeout + 5 s` before its lease ends (sender.py).
        if self.mail_lease_seconds < self.smtp_timeout_seconds + 10:
            raise ValueError("LOOM_MAIL_LEASE_SECONDS must be at least LOOM_SMTP_TIMEOUT_SECONDS + 10")
        return self

    # Links in the email Loom sends. ``{public_url}`` is replaced by LOOM_PUBLIC_URL; the rest by the
    # link's own values. The defaults point at the small pages the API serves itself (``/confirm``,
    # ``/unsubscribe``), so a fresh install works; a campaign site sets its own front-end URLs.
    confirm_url: str = "{public_url}/confirm?token={token}"
    petition_url: str = "{public_url}/petitions/{slug}"
    unsubscribe_url: str = "{public_url}/unsubscribe?token={token}"
    # Milestones: the percentages of a petition's goal that, first crossed, tell its campaign's coordinators.
    milestone_percents: list[int] = Field(default=[50, 100])
    # Campaign updates are queued in batches of this many recipients, each batch its own transaction.
    update_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Supplier-list disclosures (issue 11 §3): most rows a list may have; rows matched per worker job (each
    # batch its own transaction); rapidfuzz scores (0-100) at or above which a row is linked to an existing
    # facility automatically, and at or above which it waits for review (below: a new facility).
    disclosure_max_rows: int = Field(default=100_000, ge=1)
    disclosure_batch_size: int = Field(default=1_000, ge=1, le=100_000)
    disclosure_match_auto: float = Field(default=92, ge=0, le=100)
    disclosure_match_review: float = Field(default=75, ge=0, le=100)

    @field_validator("confirm_url", "petition_url", "unsubscribe_url")
    @classmethod
    def _link_template(cls, value: str) -> str:
        try:
            value.format_map({"public_url": "", "token": "", "slug": ""})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"a link may use only {{public_url}}, {{token}} and {{slug}} ({type(exc).__name__}: {exc})"
            ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(entry.strip(), strict=False)) for entry in value]
        except ValueError as exc:
            raise ValueError(f"trusted proxies are IP addresses or networks (CIDR): {exc}") from None

    @field_validator("metrics_token")
    @classmethod
    def _no_empty_token(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty LOOM_METRICS_TOKEN (e.g. from compose's ${LOOM_METRICS_TOKEN:-}) means none.
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("LOOM_METRICS_TOKEN needs at least 16 characters (or none)")
        return value

    @field_validator("milestone_percents")
    @classmethod
    def _sensible_percents(cls, value: list[int]) -> list[int]:
        if any(not 0 < percent <= 1000 for percent in value):
            raise ValueError("milestone percentages must be between 1 and 1000")
        return sorted(set(value))

    def derived_key(self, purpose: str) -> bytes:
        """A key for one purpose only (confirmation tokens, unsubscribe tokens, …), derived from
        ``LOOM_SECRET_KEY``: a token made for one purpose never passes as another's."""
        return hmac.new(
            self.secret_key.get_secret_value().encode(), purpose.encode(), hashlib.sha256
        ).digest()

    def link(self, template: str, **values: str) -> str:
        """One of the link settings (``confirm_url``, …) filled in; values are URL-safe already."""
        return template.format_map({**values, "public_url": self.public_url.rstrip("/")})

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        secret = self.secret_key.get_secret_value()
        if self.env is not Environment.production and secret == PLACEHOLDER_SECRET:
            self.secret_key = SecretStr(development_secret(self.data_dir))
        if self.env is Environment.production:
            if secret == PLACEHOLDER_SECRET or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "LOOM_SECRET_KEY must be set to a random value of at least 32 characters "
                    "when LOOM_ENV=production"
                )
            if not self.database_url or not self.redis_url:
                raise ValueError("DATABASE_URL and REDIS_URL must be set when LOOM_ENV=production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
