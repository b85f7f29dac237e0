from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.db.engine import create_sessionmaker
from tests.mail_helpers import clear_mail
from tests.smtp_server import SmtpServer


@pytest.fixture
async def mail_sessions(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions that really commit (the sender uses its own connections), on an empty mail queue."""
    sessions = create_sessionmaker(engine)
    await clear_mail(sessions)
    yield sessions
    await clear_mail(sessions)


@pytest.fixture
def mail_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": SecretStr(smtp_server.url),
            "smtp_timeout_seconds": 10.0,
            "mail_batch_size": 50,
            "mail_retry_base_seconds": 60.0,
            "mail_retry_max_seconds": 600.0,
            "mail_rate_per_second": 0,
            "mail_rate_per_domain_per_minute": 0,
            "mail_server_backoff_max_seconds": 60.0,
        }
    )
