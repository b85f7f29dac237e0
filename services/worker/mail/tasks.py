"""Email in the worker: the sender loop (services/worker/mail/sender.py), one per worker process.

It runs as a periodic loop that does not return: it sends what is due, then waits for ``NOTIFY loom_mail``
(sent by ``queue()`` on commit) or the poll. If it fails it is started again after ``mail_poll_seconds``,
later while it keeps failing. With no ``LOOM_SMTP_URL`` it sends nothing (mail stays queued) and says so
once.
"""

from __future__ import annotations

import logging
import os

from redis.asyncio import Redis

from services.core.config import Environment
from services.core.mail.limits import SendLimits
from services.core.mail.smtp import SmtpConfig
from services.worker.mail.sender import Listener, Sender
from services.worker.periodic import LoopContext, periodic

log = logging.getLogger(__name__)

_said_unconfigured = False


@periodic("mail.sender", every=lambda settings: settings.mail_poll_seconds)
async def run_sender(ctx: LoopContext) -> None:
    global _said_unconfigured
    settings = ctx.settings
    smtp = SmtpConfig.from_settings(settings)
    if smtp is None:
        if not _said_unconfigured:
            _said_unconfigured = True
            level = logging.ERROR if settings.env is Environment.production else logging.INFO
            log.log(level, "mail: LOOM_SMTP_URL is not set; email stays queued (loom run catches it)")
        return
    redis_url = settings.redis_url or os.environ.get("REDIS_URL")
    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1) if redis_url else None
    limits = SendLimits(
        redis,
        per_second=settings.mail_rate_per_second,
        per_domain_minute=settings.mail_rate_per_domain_per_minute,
    )
    sender = Sender(ctx.sessionmaker, settings, smtp=smtp, limits=limits)
    engine = ctx.sessionmaker.kw["bind"]
    listener = Listener.for_engine(engine)
    log.info("mail: sender started (%s)", smtp.describe())
    try:
        await sender.run_forever(listener)
    finally:
        await listener.close()
        if redis is not None:
            await redis.aclose()
