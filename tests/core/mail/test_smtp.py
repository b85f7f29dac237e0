"""LOOM_SMTP_URL: parsing, credentials kept out of logs, and a login against a real server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.mail.smtp import InvalidSmtpUrl, SmtpConfig, StartTls
from services.worker.mail.sender import Sender, Step
from tests.mail_helpers import enqueue, new_message
from tests.smtp_server import SmtpServer


def test_plain_smtp_uses_starttls_when_offered_by_default() -> None:
    config = SmtpConfig.from_url("smtp://mail.example.org")
    assert (config.host, config.port, config.implicit_tls, config.starttls) == (
        "mail.example.org",
        25,
        False,
        StartTls.auto,
    )
    assert config.username is None
    assert config.password is None


def test_submission_with_required_starttls_and_percent_encoded_credentials() -> None:
    config = SmtpConfig.from_url(
        "smtp://loom%40example.org:p%40ss%3Aword@smtp.example.org:587?starttls=required"
    )
    assert (config.port, config.starttls) == (587, StartTls.required)
    assert (config.username, config.password) == ("loom@example.org", "p@ss:word")
    assert "p@ss" not in repr(config)
    assert config.describe() == "smtp://smtp.example.org:587"


def test_smtps_is_implicit_tls_on_465() -> None:
    config = SmtpConfig.from_url("smtps://user:secret@smtp.example.org?verify=false")
    assert (config.port, config.implicit_tls, config.starttls, config.verify) == (
        465,
        True,
        StartTls.off,
        False,
    )
    assert "secret" not in config.describe()


def test_the_password_setting_overrides_the_urls() -> None:
    settings = Settings(smtp_url=SecretStr("smtp://user:old@host:2525"), smtp_password=SecretStr("new"))
    config = SmtpConfig.from_settings(settings)
    assert config is not None
    assert config.password == "new"
    assert SmtpConfig.from_settings(Settings(smtp_url=None)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://host",
        "smtp://",
        "smtp://host?starttls=maybe",
        "smtps://host?starttls=required",
        "smtp://host?tls=yes",
        "smtp://host:notaport",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidSmtpUrl):
        SmtpConfig.from_url(url)


@pytest.fixture
def auth_server() -> Iterator[SmtpServer]:
    server = SmtpServer(credentials=("loom", "s3cret-pass"))
    server.start()
    yield server
    server.stop()


async def test_credentials_from_the_url_log_in_and_never_reach_the_logs(
    mail_sessions: async_sessionmaker[AsyncSession],
    mail_settings: Settings,
    auth_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await enqueue(mail_sessions, [new_message("jane@example.org")])
    url = f"smtp://loom:s3cret-pass@{auth_server.host}:{auth_server.port}?starttls=off"
    settings = mail_settings.model_copy(update={"smtp_url": SecretStr(url)})
    config = SmtpConfig.from_settings(settings)
    assert config is not None
    with caplog.at_level(logging.DEBUG):
        sender = Sender(mail_sessions, settings, smtp=config)
        await sender.drain()
        await sender.close()
    assert auth_server.logins == ["loom"]
    assert len(auth_server.messages) == 1
    assert "s3cret-pass" not in caplog.text


async def test_wrong_credentials_pause_the_sender_without_failing_mail(
    mail_sessions: async_sessionmaker[AsyncSession],
    mail_settings: Settings,
    auth_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await enqueue(mail_sessions, [new_message("jane@example.org")])
    url = f"smtp://loom:wrong-pass@{auth_server.host}:{auth_server.port}?starttls=off"
    settings = mail_settings.model_copy(update={"smtp_url": SecretStr(url)})
    config = SmtpConfig.from_settings(settings)
    assert config is not None
    with caplog.at_level(logging.WARNING):
        sender = Sender(mail_sessions, settings, smtp=config)
        assert await sender.drain() is Step.paused
        await sender.close()
    assert auth_server.messages == []
    assert "wrong-pass" not in caplog.text
    assert "sender paused" in caplog.text
