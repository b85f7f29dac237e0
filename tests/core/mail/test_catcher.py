"""The development mail catcher and `loom mail`: what a newcomer reads their confirmation mail with."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import PROJECT_ROOT, Settings
from services.core.mail.catcher import Catcher, caught, mail_dir
from services.core.mail.smtp import SmtpConfig
from services.worker.mail.sender import Sender
from tests.mail_helpers import enqueue, new_message

LOOM = str(PROJECT_ROOT / ".venv" / "bin" / "loom")


def loom_mail(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`loom mail …`; its output decoded as is (no newline translation, so a stray ``\r`` shows)."""
    env = {**os.environ, "LOOM_DATA_DIR": str(data_dir)}
    result = subprocess.run([LOOM, "mail", *args], env=env, capture_output=True, timeout=60, check=False)
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


async def test_caught_mail_is_written_to_files_and_loom_mail_shows_it(
    mail_sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    catcher = Catcher(mail_dir(tmp_path))
    url = catcher.start()
    try:
        await enqueue(
            mail_sessions,
            [
                new_message("first@example.org", subject="First"),
                new_message(
                    "newcomer@example.org",
                    subject="Confirm your signature",
                    text_body="Confirm: https://example.org/confirm/abc\n",
                    html_body="<p><a href='https://example.org/confirm/abc'>Confirm</a></p>\n",
                ),
            ],
        )
        mail_settings = settings.model_copy(update={"smtp_url": SecretStr(url)})
        smtp = SmtpConfig.from_settings(mail_settings)
        assert smtp is not None
        sender = Sender(mail_sessions, mail_settings, smtp=smtp)
        with caplog.at_level(logging.INFO):
            await sender.drain()
            await sender.close()
    finally:
        catcher.stop()
    files = caught(mail_dir(tmp_path))
    assert len(files) == 2
    assert all(f.suffix == ".eml" for f in files)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert files[0].name in logged
    assert "@example.org" not in logged  # file names only, never addresses

    listing = loom_mail("list", data_dir=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "Confirm your signature" in listing.stdout
    assert "First" in listing.stdout

    # Both went in one batch (same queue time): pick the confirmation whichever number it got.
    number = next(
        str(n)
        for n in (1, 2)
        if "Confirm your signature" in loom_mail("show", str(n), data_dir=tmp_path).stdout
    )
    shown = loom_mail("show", number, data_dir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Subject: Confirm your signature" in shown.stdout
    assert "To: newcomer@example.org" in shown.stdout
    assert "Confirm: https://example.org/confirm/abc" in shown.stdout
    as_html = loom_mail("show", number, "--html", data_dir=tmp_path)
    assert "<a href='https://example.org/confirm/abc'>" in as_html.stdout
    as_received = loom_mail("show", number, "--raw", data_dir=tmp_path)
    assert "Subject: Confirm your signature" in as_received.stdout
    # SMTP carries CRLF line ends; on a terminal they are plain newlines (a link copied from the text
    # must not end in a carriage return).
    for output in (shown, as_html, as_received):
        assert "\r" not in output.stdout

    missing = loom_mail("show", "9", data_dir=tmp_path)
    assert missing.returncode == 1


def test_loom_mail_with_nothing_caught_says_so(tmp_path: Path) -> None:
    result = loom_mail("list", data_dir=tmp_path)
    assert result.returncode == 0
    assert "no mail caught yet" in result.stdout
